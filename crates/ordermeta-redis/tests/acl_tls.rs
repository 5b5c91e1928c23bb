//! ACL user and password, and TLS (`rediss://`), taken from the URL, against private servers.

use std::process::Command;
use std::time::{Duration, Instant};

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ErrorKind, ExpireRequest, ListQuery, MetadataStore, MetadataStoreExt, OrderStatus,
};
use ordermeta_redis::RedisStore;
use ordermeta_testkit::redis::RedisServer;

async fn exercise(store: &RedisStore) {
    store
        .record_many(&[
            short_term("a-1", OrderStatus::Active, 5),
            short_term("a-2", OrderStatus::Filled, 5),
        ])
        .await
        .expect("record");
    store.claim_for_cancel("a-1").await.expect("claim");
    assert_eq!(
        store
            .list(&ListQuery::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    assert_eq!(
        store
            .expire(&ExpireRequest::new(Some(9), None))
            .await
            .expect("expire"),
        1
    );
    assert_eq!(store.purge(ordermeta_core::now()).await.expect("purge"), 2);
    store.health().await.expect("health");
    store.delete_namespace().await.expect("cleanup");
}

/// An ACL user allowed only the keys `{acl-ns}:*` can do everything in that namespace — so no
/// script touches a key outside it — and nothing in any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_confined_to_its_namespace() {
    let server = RedisServer::start_private(&[
        "--user",
        "default",
        "off",
        "--user",
        "bot",
        "on",
        ">s3cret",
        "~{acl-ns}:*",
        "+@all",
    ]);
    let port = server.port;
    let url = format!("redis://bot:s3cret@127.0.0.1:{port}");
    let store = RedisStore::options()
        .namespace("acl-ns")
        .connect(&url)
        .await
        .expect("ACL login from the URL");
    exercise(&store).await;

    let other = RedisStore::options()
        .namespace("other-ns")
        .connect(&url)
        .await
        .expect("connect");
    let err = other
        .record(&short_term("x", OrderStatus::Pending, 1))
        .await
        .expect_err("outside its keys");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");

    let wrong = RedisStore::options()
        .namespace("acl-ns")
        .connect(&format!("redis://bot:wrong@127.0.0.1:{port}"))
        .await;
    assert_eq!(wrong.err().map(|e| e.kind()), Some(ErrorKind::Backend));
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be on PATH for the TLS test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rediss://` with a private CA; the password comes from the URL too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ordermeta test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = ordermeta_testkit::net::free_port();
    let path = |f: &str| d.join(f).display().to_string();
    let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let _server = RedisServer::start(
        port,
        &d.join("data"),
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "tlspw",
        ],
    );
    let pem = std::fs::read(d.join("ca.crt")).expect("ca");
    let url = format!("rediss://:tlspw@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let store = loop {
        match RedisStore::options()
            .namespace(ordermeta_testkit::unique_name("tls"))
            .tls_root_cert(pem.clone())
            .connect(&url)
            .await
        {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "TLS server never answered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    exercise(&store).await;
    // Without the CA, the server's certificate is not trusted.
    let untrusted = RedisStore::options().namespace("tls-x").connect(&url).await;
    assert_eq!(untrusted.err().map(|e| e.kind()), Some(ErrorKind::Backend));
}
