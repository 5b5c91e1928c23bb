#!/usr/bin/env bash
# The long run of issue 15's hardening: every fuzzer at a million cases, the bulk work of
# the SQL stores at a million orders with a writer in another process, then the
# fault-injection soak for ten minutes. CI runs the same tests bounded (256 fuzz cases,
# 20,000 orders, a 60 s soak) as part of scripts/test.sh; this script is for a release, or
# after touching a decoder, a store's scripts, its bulk work or the cancel path.
#
#   ./scripts/soak.sh                 # everything (about an hour and a half on 2 cores)
#   ORDERMETA_FUZZ_CASES=10000 ORDERMETA_BULK_ORDERS=20000 ORDERMETA_SOAK_SECS=60 \
#     ./scripts/soak.sh               # a quick pass
#
# Environment:
#   ORDERMETA_FUZZ_CASES   cases per property of every pure decoder (default 1000000): the
#                          printable order id, OrderId protobuf/base64, store URLs, chain
#                          error replies, Redis hashes, SQLite cursors, PostgreSQL timestamps.
#   ORDERMETA_STORE_CASES  cases per property of the fuzzers that write each case into a real
#                          store (SQLite rows, PostgreSQL rows, Redis hashes; default 20000:
#                          each case is a few round trips to the server).
#   ORDERMETA_BULK_ORDERS  open orders that the bulk tests (crates/ordermeta-sqlite and
#                          crates/ordermeta-postgres, tests/bulk.rs) expire and then purge
#                          while another process records orders (default 1000000); the
#                          target: no record of that process fails, its worst wait < 250 ms.
#   ORDERMETA_SOAK_SECS    length of the fault-injection soak, tests/soak.rs (default 600).
#   ORDERMETA_SOAK_SEED    replays the soak's faults (the seed is printed at its start).
#
# PostgreSQL and Redis come from scripts/test.sh (DATABASE_URL / REDIS_URL when set, else
# the local servers, else private ones); this script starts nothing else. Everything is built
# with --release (a debug build runs a case several times slower). It prints the cases run
# per decoder and the soak's summary, and exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[soak.sh] %s\n' "$*" >&2; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
fuzz_cases="${ORDERMETA_FUZZ_CASES:-1000000}"
store_cases="${ORDERMETA_STORE_CASES:-20000}"
bulk_orders="${ORDERMETA_BULK_ORDERS:-1000000}"
soak_secs="${ORDERMETA_SOAK_SECS:-600}"

eval "$(ORDERMETA_SERVERS_ONLY=1 ./scripts/test.sh)"
log "PostgreSQL: $DATABASE_URL  Redis: $REDIS_URL"

summary=()
# fuzz NAME CASES CARGO-ARGS... [-- TEST-ARGS...]: runs one fuzzer, records its count.
fuzz() {
  local name="$1" cases="$2"; shift 2
  log "fuzzing $name: $cases cases per property"
  local out started=$SECONDS
  if ! out=$(ORDERMETA_FUZZ_CASES="$cases" cargo test --release --all-features "$@" 2>&1); then
    printf '%s\n' "$out" | tail -n 60 >&2
    log "FAILED: $name"
    exit 1
  fi
  local props
  props=$(printf '%s\n' "$out" | sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' \
    | awk '{s += $1} END {print s + 0}')
  if [ "$props" = 0 ]; then
    printf '%s\n' "$out" | tail -n 20 >&2
    log "FAILED: $name ran no test (a filter that no longer matches?)"
    exit 1
  fi
  summary+=("$(printf '%-44s %2d properties x %8d cases = %10d cases  (%ds)' \
    "$name" "$props" "$cases" $((props * cases)) $((SECONDS - started)))")
}

fuzz "OrderId protobuf/base64, store URLs"  "$fuzz_cases"  -p ordermeta-core --test fuzz
fuzz "printable order id (parse_order_key)" "$fuzz_cases"  -p ordermeta-dydx --lib -- \
  convert::tests::order_key_round_trips convert::tests::garbage_never_panics \
  convert::tests::near_misses_never_panic
fuzz "chain error replies (cancel mapping)" "$fuzz_cases"  -p ordermeta-dydx --test fuzz
fuzz "Redis hash codec"                     "$fuzz_cases"  -p ordermeta-redis --lib -- codec_fuzz
fuzz "PostgreSQL timestamps"                "$fuzz_cases"  -p ordermeta-postgres --lib -- fuzz::
fuzz "SQLite byte cursors"                  "$fuzz_cases"  -p ordermeta-sqlite --lib -- fuzz::byte_cursors
fuzz "SQLite rows (real files)"             "$store_cases" -p ordermeta-sqlite --lib -- fuzz::any_stored
fuzz "PostgreSQL rows (real server)"        "$store_cases" -p ordermeta-postgres --test corrupt_fuzz
fuzz "Redis records (real server)"          "$store_cases" -p ordermeta-redis --test corrupt_fuzz

bulk=()
# bulk_run NAME CRATE: expires and purges $bulk_orders orders while a child process records.
bulk_run() {
  local name="$1" crate="$2"
  log "bulk work, $name: $bulk_orders orders"
  local out started=$SECONDS
  if ! out=$(ORDERMETA_BULK_ORDERS="$bulk_orders" cargo test --release -p "$crate" \
      --test bulk -- --nocapture 2>&1); then
    printf '%s\n' "$out" | tail -n 60 >&2
    log "FAILED: bulk work, $name"
    exit 1
  fi
  bulk+=("$name ($((SECONDS - started))s):")
  while IFS= read -r line; do bulk+=("  $line"); done \
    < <(printf '%s\n' "$out" | grep -E '^(loaded|expired|the other|…|  slow)')
}
bulk_run SQLite ordermeta-sqlite
bulk_run PostgreSQL ordermeta-postgres

log "fault-injection soak: $soak_secs s"
soak_out=$(mktemp)
trap 'rm -f "$soak_out"' EXIT
if ! ORDERMETA_SOAK_SECS="$soak_secs" cargo test --release -p ordermeta --all-features \
    --test soak -- --nocapture 2>&1 | tee "$soak_out" | grep --line-buffered '^soak'; then
  :
fi
if ! grep -q '^test result: ok' "$soak_out"; then
  tail -n 80 "$soak_out" >&2
  log "FAILED: the soak"
  exit 1
fi

printf '\n== fuzz cases per decoder ==\n'
printf '%s\n' "${summary[@]}"
printf '\n== bulk work: another process writing during expire and purge ==\n'
printf '%s\n' "${bulk[@]}"
printf '\n== soak ==\n'
grep '^soak' "$soak_out"
log "all passed"
