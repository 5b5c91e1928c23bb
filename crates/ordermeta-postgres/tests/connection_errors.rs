//! Misconfiguration gives clear, classified errors: a bad URL, an unreachable server, an
//! unknown database, a bad schema name, a wrong password, a role without rights on the
//! schema; and TLS follows the URL's `sslmode`.

mod common;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{ErrorKind, MetadataStore, OrderStatus, StoreError};
use ordermeta_postgres::{PgError, PgStore, PgStoreOptions, sqlx};

use ordermeta_testkit::pg::PrivatePg;

fn expect_err(r: Result<PgStore, StoreError>) -> StoreError {
    match r {
        Ok(s) => panic!("connected to schema {} but should not have", s.schema()),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
            e
        }
    }
}

#[tokio::test]
async fn bad_url_is_a_clear_error() {
    for url in [
        "postgres://postgres@127.0.0.1:notaport/postgres",
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=sometimes",
    ] {
        let e = expect_err(PgStore::connect(url).await);
        assert!(
            matches!(common::pg_error(&e), PgError::InvalidUrl { .. }),
            "{url}: {e:?}"
        );
        assert!(
            e.to_string().contains("invalid PostgreSQL connection URL"),
            "{e}"
        );
    }
    // Nothing listens on port 1: refused at once, not after a pool timeout.
    let started = std::time::Instant::now();
    let e = expect_err(PgStore::connect("postgres://postgres@127.0.0.1:1/postgres").await);
    match common::pg_error(&e) {
        PgError::Connect { target, .. } => assert_eq!(target, "127.0.0.1:1/postgres"),
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{e}"
    );
    assert!(started.elapsed() < ordermeta_postgres::DEFAULT_ACQUIRE_TIMEOUT);

    let e = expect_err(
        PgStoreOptions::new()
            .schema("bad-name; DROP TABLE x")
            .connect(&ordermeta_testkit::database_url())
            .await,
    );
    assert!(
        matches!(common::pg_error(&e), PgError::InvalidSchemaName { .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn unknown_database_is_a_connect_error() {
    let mut opts: sqlx::postgres::PgConnectOptions = ordermeta_testkit::database_url()
        .parse()
        .expect("DATABASE_URL parses");
    opts = opts.database("ordermeta_no_such_database");
    let e = expect_err(PgStoreOptions::new().connect_with(opts).await);
    assert!(
        matches!(common::pg_error(&e), PgError::Connect { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("ordermeta_no_such_database"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_authentication_error() {
    let pg = PrivatePg::start(Some("s3cret"));
    let e = expect_err(PgStore::connect(&pg.url_as("postgres", Some("wrong"))).await);
    match common::pg_error(&e) {
        PgError::Authentication { role, .. } => assert_eq!(role, "postgres"),
        other => panic!("expected Authentication, got {other:?}"),
    }
    assert!(
        e.to_string()
            .contains("refused to authenticate role \"postgres\""),
        "{e}"
    );
    let e = expect_err(PgStore::connect(&pg.url_as("postgres", None)).await);
    assert!(
        matches!(common::pg_error(&e), PgError::Authentication { .. }),
        "no password: {e:?}"
    );
    // The right password works.
    let store = PgStore::connect(&pg.url()).await.expect("right password");
    store.health().await.expect("health");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_without_rights_is_a_permission_error() {
    let pg = PrivatePg::start(None);
    let admin = PgStoreOptions::new()
        .schema("locked")
        .connect(&pg.url())
        .await
        .expect("admin connects and migrates");
    sqlx::query("CREATE ROLE bot LOGIN")
        .execute(admin.pool())
        .await
        .expect("create role");

    // An existing, migrated schema the role may not use.
    let e = expect_err(
        PgStoreOptions::new()
            .schema("locked")
            .connect(&pg.url_as("bot", None))
            .await,
    );
    match common::pg_error(&e) {
        PgError::PermissionDenied { role, schema, .. } => {
            assert_eq!((role.as_str(), schema.as_str()), ("bot", "locked"));
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert!(e.to_string().contains("grant it USAGE"), "{e}");

    // A schema the role would have to create, without CREATE on the database.
    let e = expect_err(
        PgStoreOptions::new()
            .schema("bots_own")
            .connect(&pg.url_as("bot", None))
            .await,
    );
    assert!(
        matches!(common::pg_error(&e), PgError::PermissionDenied { .. }),
        "{e:?}"
    );

    // Usage on the schema but no table privileges: start-up still refuses, clearly.
    sqlx::query("GRANT USAGE ON SCHEMA locked TO bot")
        .execute(admin.pool())
        .await
        .expect("grant usage");
    let e = expect_err(
        PgStoreOptions::new()
            .schema("locked")
            .connect(&pg.url_as("bot", None))
            .await,
    );
    assert!(
        matches!(common::pg_error(&e), PgError::PermissionDenied { .. }),
        "{e:?}"
    );

    // Read-only rights: the store starts, a write is a PermissionDenied Backend error.
    sqlx::raw_sql(
        "GRANT SELECT ON locked.ordermeta_migrations TO bot; \
         GRANT SELECT ON locked.dydx_order_metadata TO bot",
    )
    .execute(admin.pool())
    .await
    .expect("grant select");
    let bot = PgStoreOptions::new()
        .schema("locked")
        .connect(&pg.url_as("bot", None))
        .await
        .expect("read-only role starts");
    let e = bot
        .record(&short_term("ro-1", OrderStatus::Pending, 5))
        .await
        .expect_err("no INSERT privilege");
    assert!(
        matches!(common::pg_error(&e), PgError::PermissionDenied { role, .. } if role == "bot"),
        "{e:?}"
    );
    assert_eq!(bot.get("ro-1").await.expect("get"), None);

    // The documented grants are enough.
    sqlx::query("GRANT INSERT, UPDATE, DELETE ON locked.dydx_order_metadata TO bot")
        .execute(admin.pool())
        .await
        .expect("grant dml");
    bot.record(&short_term("ro-1", OrderStatus::Pending, 5))
        .await
        .expect("record with DML rights");
    bot.close().await;
    admin.close().await;
}

#[tokio::test]
async fn tls_follows_sslmode() {
    let url = ordermeta_testkit::database_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let probe = PgStoreOptions::new()
        .schema("ordermeta_tls_probe")
        .migrate(false);
    let ssl_on = {
        let store = common::fresh_store("tls", PgStoreOptions::new()).await;
        let on: String = sqlx::query_scalar("SHOW ssl")
            .fetch_one(store.pool())
            .await
            .expect("show ssl");
        common::drop_store(store).await;
        on == "on"
    };
    // `migrate(false)` on a schema that does not exist: the connection itself is what is
    // tested, so the outcome is NotMigrated after a successful TLS (or plain) handshake.
    for (mode, want_tls) in [("disable", false), ("require", true)] {
        let r = probe
            .clone()
            .connect(&format!("{url}{sep}sslmode={mode}"))
            .await;
        let e = match r {
            Ok(_) => panic!("schema ordermeta_tls_probe must not exist"),
            Err(e) => e,
        };
        match common::pg_error(&e) {
            PgError::NotMigrated { .. } => assert!(!want_tls || ssl_on, "{mode}: {e}"),
            PgError::Connect { .. } => assert!(want_tls && !ssl_on, "{mode}: {e}"),
            other => panic!("{mode}: {other:?}"),
        }
    }
    if ssl_on {
        let store = common::fresh_store("tls", PgStoreOptions::new()).await;
        let mut conn_opts: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
        conn_opts = conn_opts.ssl_mode(sqlx::postgres::PgSslMode::Require);
        let tls_store = PgStoreOptions::new()
            .schema(store.schema())
            .connect_with(conn_opts)
            .await
            .expect("sslmode=require");
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(tls_store.pool())
                .await
                .expect("pg_stat_ssl");
        assert!(encrypted, "sslmode=require gives a TLS connection");
        tls_store.close().await;
        common::drop_store(store).await;
    }
}
