#!/usr/bin/env bash
# Runs every test of the workspace. Makes sure a PostgreSQL and a Redis server are reachable
# first: uses DATABASE_URL / REDIS_URL when set, else the local default servers, else installs
# (Debian packages) and starts private ones on loopback. Tests that stop, kill or cluster
# servers start their own instances from the same binaries (PG_BIN, redis-server on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }
state_dir="${ORDERMETA_STATE_DIR:-/var/tmp/ordermeta-test}"
mkdir -p "$state_dir"

apt_install() {
  if [ "$(id -u)" != 0 ]; then log "need root to install $*"; exit 1; fi
  if [ ! -f "$state_dir/apt-updated" ]; then apt-get update -qq && touch "$state_dir/apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL --------------------------------------------------------------------------
pg_bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin_dir)" ] || ! command -v psql >/dev/null; then
  log "installing postgresql"; apt_install postgresql postgresql-client
fi
export PG_BIN="${PG_BIN:-$(pg_bin_dir)}"

pg_ok() { psql "$1" -qtAc 'select 1' >/dev/null 2>&1; }
if [ -z "${DATABASE_URL:-}" ]; then
  if pg_ok "postgres://postgres@127.0.0.1:5432/postgres"; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    # A private trust-auth cluster: the packaged one may use peer/scram auth we cannot pass.
    port=55432 data="$state_dir/pg"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    if ! pg_ok "$DATABASE_URL"; then
      log "starting a private PostgreSQL on 127.0.0.1:$port"
      run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
      if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown postgres "$data" "$state_dir"
        run_pg "$PG_BIN/initdb" -D "$data" -U postgres -A trust >/dev/null
      fi
      run_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
    fi
  fi
fi
pg_ok "$DATABASE_URL" || { log "PostgreSQL at $DATABASE_URL does not answer"; exit 1; }
log "PostgreSQL: $DATABASE_URL"

# --- Redis -------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  log "installing redis"; apt_install redis-server redis-tools
fi
redis_ok() { [ "$(redis-cli -u "$1" ping 2>/dev/null)" = PONG ]; }
if [ -z "${REDIS_URL:-}" ]; then
  if redis_ok "redis://127.0.0.1:6379"; then
    export REDIS_URL="redis://127.0.0.1:6379"
  else
    export REDIS_URL="redis://127.0.0.1:56379"
    if ! redis_ok "$REDIS_URL"; then
      log "starting a private Redis on 127.0.0.1:56379"
      redis-server --daemonize yes --bind 127.0.0.1 --port 56379 --save "" --appendonly no \
        --dir "$state_dir" --logfile "$state_dir/redis.log"
      for _ in $(seq 50); do redis_ok "$REDIS_URL" && break; sleep 0.1; done
    fi
  fi
fi
redis_ok "$REDIS_URL" || { log "Redis at $REDIS_URL does not answer"; exit 1; }
log "Redis: $REDIS_URL"

# Only the servers (scripts/soak.sh): print their environment for `eval`, run no test.
if [ "${ORDERMETA_SERVERS_ONLY:-}" = 1 ]; then
  printf 'export DATABASE_URL=%q REDIS_URL=%q PG_BIN=%q\n' "$DATABASE_URL" "$REDIS_URL" "$PG_BIN"
  exit 0
fi

# --- Tests -------------------------------------------------------------------------------
# The rollback build first (no backends, recording compiled out): its own cfg branches.
cargo test -p ordermeta-core -p ordermeta -p ordermeta-dydx --no-default-features --lib
exec cargo test --workspace --all-features "$@"
