//! What the README's *Use it in your bot* promises a bot author, checked.
//!
//! - The fresh crate: the section's dependency lines and client example, extracted from
//!   README.md at test time, become a new crate outside this workspace (ordermeta as a path
//!   dependency on this checkout, tokio, nothing else), which is built and run against the
//!   simulator. It shares this build's target directory, so only the first run compiles much.
//! - The stated `dydx` version is the one ordermeta is built against.
//! - The helpers the example uses, end to end against the simulator: the chain clock and
//!   good-til values at the edges of the chain's windows, details read from the order, and a
//!   store that says which one it is when a bot looks in the wrong place.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordermeta::dydx::{
    CancelError, ChainSettings, ClientId, DydxGateway, GoodTilError, Market, OrderBuilder,
    OrderMetaClient, OrderSide, Quantity, RecordingSwitch, STATEFUL_ORDER_TIME_WINDOW, TimeDelta,
    Wallet,
};
use ordermeta::dydx_sim::fixtures::{MNEMONIC, market, node_config};
use ordermeta::dydx_sim::{SimConfig, SimHandle, SimNode};
use ordermeta::{MetadataStore, MetadataStoreExt, OrderStatus, OrderType, Side};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SECTION: &str = "## Use it in your bot";
/// Deadline of building the fresh crate: generous, the first build on a cold target dir
/// compiles the dependency graph again with the fresh crate's features.
const BUILD_DEADLINE: Duration = Duration::from_secs(40 * 60);
/// Deadline of running the example.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

fn readme_section() -> String {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let start = readme.find(SECTION).expect("the README has the section");
    let rest = &readme[start + SECTION.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// The first fenced block of `lang` in `text`.
fn block(text: &str, lang: &str) -> String {
    let fence = format!("```{lang}\n");
    let start = text.find(&fence).expect("a fenced block") + fence.len();
    let len = text[start..].find("```").expect("its closing fence");
    text[start..start + len].to_owned()
}

/// The code as rustdoc compiles it: hidden lines (`# …`) shown.
fn as_compiled(code: &str) -> String {
    code.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix("# ") {
                Some(hidden) => hidden.to_owned(),
                None if trimmed == "#" => String::new(),
                None => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The root of this build's target directory (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// Runs `cmd` to completion within `deadline`, killing it past it.
fn run_within(mut cmd: Command, deadline: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

#[test]
fn the_readme_example_runs_in_a_fresh_crate_that_depends_on_ordermeta_alone() {
    let section = readme_section();
    let deps = block(&section, "toml");
    let code = block(&section, "rust");

    // Exactly two dependencies: ordermeta and tokio.
    let names: Vec<&str> = deps
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('['))
        .filter_map(|l| l.split('=').next().map(str::trim))
        .collect();
    assert_eq!(names, ["ordermeta", "tokio"], "{deps}");
    // ordermeta from this checkout instead of the registry, with the README's features.
    let version = r#"version = "0.1""#;
    assert!(
        deps.contains(&format!("ordermeta = {{ {version}")),
        "{deps}"
    );
    let deps = deps.replacen(version, &format!("path = {ROOT:?}"), 1);

    let dir = tempfile::tempdir().expect("tempdir");
    let krate = dir.path().join("readme-bot");
    std::fs::create_dir_all(krate.join("src")).expect("src dir");
    let manifest = format!(
        "[package]\nname = \"readme-bot\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         # A workspace of its own: nothing of ordermeta's workspace applies.\n[workspace]\n\n{deps}"
    );
    std::fs::write(krate.join("Cargo.toml"), manifest).expect("Cargo.toml");
    std::fs::write(krate.join("src/main.rs"), as_compiled(&code)).expect("main.rs");
    // The versions this checkout is tested with, and no network: the lock file's entries
    // pin every registry package; cargo adds the new root package.
    std::fs::copy(Path::new(ROOT).join("Cargo.lock"), krate.join("Cargo.lock")).expect("lock");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let started = Instant::now();
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--offline", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", target_dir());
    // What cargo set for this test process describes ordermeta, not the fresh crate; and some
    // build scripts (ring's) rerun when they change, so left in they would rebuild shared
    // dependencies in the target dir on every run, and this build's after it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref())
        {
            build.env_remove(name.as_ref());
        }
    }
    let built = run_within(build, BUILD_DEADLINE, "cargo build of the fresh crate");
    assert!(
        built.status.success(),
        "the README example does not build in a fresh crate:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let build_time = started.elapsed();

    let started = Instant::now();
    let exe = target_dir().join("debug").join("readme-bot");
    let mut run = Command::new(&exe);
    run.current_dir(&krate);
    let ran = run_within(run, RUN_DEADLINE, "the README example");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "the README example failed: {}\n{stdout}\n{}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(stdout.contains("by its id alone: tx "), "{stdout}");
    eprintln!(
        "fresh crate: built in {:.1} s, ran in {:.1} s: {}",
        build_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        stdout.trim()
    );
}

/// The version the README and `DYDX_VERSION` state is the workspace's `dydx` requirement.
#[test]
fn the_stated_dydx_version_is_the_one_built_against() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("manifest");
    let required = manifest
        .lines()
        .find_map(|l| l.strip_prefix("dydx = \""))
        .and_then(|rest| rest.split('"').next())
        .expect("dydx in [workspace.dependencies]");
    assert_eq!(ordermeta::dydx::DYDX_VERSION, required);
    let section = readme_section();
    assert!(
        section.contains(&format!("crate **{required}**")),
        "the README states another dydx version"
    );
}

/// A simulator with one funded account of [`MNEMONIC`], and its wallet.
async fn node() -> (SimHandle, Wallet) {
    let sim = SimNode::start(SimConfig::default().with_mnemonic(MNEMONIC, 1))
        .await
        .expect("simulator");
    (sim, Wallet::from_mnemonic(MNEMONIC).expect("wallet"))
}

async fn connect(
    sim: &SimHandle,
    wallet: &Wallet,
    store: Arc<dyn MetadataStore>,
) -> OrderMetaClient {
    OrderMetaClient::connect(node_config(sim.endpoint()), wallet, store)
        .await
        .expect("connect")
}

fn btc() -> Market {
    Market::new("BTC-USD", market())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_clock_is_the_nodes() {
    let (sim, wallet) = node().await;
    sim.advance_blocks(3);
    let client = connect(&sim, &wallet, Arc::new(ordermeta::MemoryStore::new())).await;
    let now = client.chain_time().await.expect("clock");
    assert_eq!(now.height.0, sim.height());
    assert_eq!(now.block_time, sim.block_time());
    assert_eq!(
        now.short_block_window,
        ChainSettings::default().short_block_window
    );
}

/// The edges of the windows the helpers allow are exactly what the node accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_til_values_at_the_window_edges_are_accepted_and_beyond_refused() {
    let (sim, wallet) = node().await;
    let client = connect(&sim, &wallet, Arc::new(ordermeta::MemoryStore::new())).await;
    let sub = wallet
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("sub");
    let window = client.settings().short_block_window;

    let last_block = client.good_til_block(window + 1).await.expect("window end");
    assert_eq!(last_block.0, sim.height() + window + 1);
    let (_, order) = OrderBuilder::new(btc(), sub.clone())
        .limit(OrderSide::Buy, 50_000, 1)
        .until(last_block)
        .build(ClientId(1))
        .expect("order");
    client
        .place(order, &btc())
        .await
        .expect("the node accepts the window's end");
    assert!(matches!(
        client.good_til_block(window + 2).await,
        Err(GoodTilError::BlockOutsideWindow { .. })
    ));
    assert!(matches!(
        client.good_til_block(0).await,
        Err(GoodTilError::BlockOutsideWindow { .. })
    ));

    let last_time = client
        .good_til_time(STATEFUL_ORDER_TIME_WINDOW)
        .await
        .expect("95 days");
    assert_eq!(last_time - sim.block_time(), STATEFUL_ORDER_TIME_WINDOW);
    let (_, order) = OrderBuilder::new(btc(), sub)
        .limit(OrderSide::Sell, 70_000, 1)
        .long_term()
        .until(last_time)
        .build(ClientId(2))
        .expect("order");
    client
        .place(order, &btc())
        .await
        .expect("the node accepts 95 days");
    assert!(matches!(
        client
            .good_til_time(STATEFUL_ORDER_TIME_WINDOW + TimeDelta::seconds(1))
            .await,
        Err(GoodTilError::TimeOutsideWindow { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_records_the_details_the_order_holds() {
    let (sim, wallet) = node().await;
    let store = Arc::new(ordermeta::MemoryStore::new());
    let client = connect(&sim, &wallet, store.clone()).await;
    let sub = wallet
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("sub");
    let size: Quantity = "0.0015".parse().expect("size");
    let (_, order) = OrderBuilder::new(btc(), sub)
        .limit(OrderSide::Sell, 65_001, size)
        .until(client.good_til_block(20).await.expect("gtb"))
        .build(ClientId(3))
        .expect("order");
    let placed = client.place(order, &btc()).await.expect("placed");
    // `active` is written by the client's background writer: run it before reading.
    assert_eq!(client.flush_active_writes(Duration::from_secs(5)).await, 0);
    let m = store.get_required(&placed.order_id).await.expect("record");
    assert_eq!(m.status, OrderStatus::Active);
    assert_eq!(
        (
            m.symbol.as_str(),
            m.side,
            m.quantity.as_str(),
            m.price.as_deref(),
            m.order_type
        ),
        (
            "BTC-USD",
            Side::Sell,
            "0.0015",
            Some("65001"),
            OrderType::Limit
        )
    );
}

/// A bot started in another directory opens (and creates) another store: the cancel's error
/// names that store's absolute path, and says it was created empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_in_the_wrong_store_names_the_store_it_searched() {
    let (sim, wallet) = node().await;
    let right = tempfile::tempdir().expect("tempdir");
    let wrong = tempfile::tempdir().expect("tempdir");
    let url =
        |dir: &tempfile::TempDir| format!("sqlite:{}", dir.path().join("orders.db").display());

    let client = connect(
        &sim,
        &wallet,
        ordermeta::open(&url(&right)).await.expect("open"),
    )
    .await;
    let sub = wallet
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("sub");
    let (_, order) = OrderBuilder::new(btc(), sub)
        .limit(OrderSide::Buy, 50_000, 1)
        .until(client.good_til_block(20).await.expect("gtb"))
        .build(ClientId(4))
        .expect("order");
    let id = client.place(order, &btc()).await.expect("placed").order_id;
    drop(client);

    // `mode=rw` refuses the missing store outright, naming the path it looked for.
    let wrong_path = wrong.path().join("orders.db");
    let refused = ordermeta::open(&format!("{}?mode=rw", url(&wrong)))
        .await
        .err()
        .expect("mode=rw refuses a missing file");
    let text = refused.to_string();
    assert!(text.contains(&wrong_path.display().to_string()), "{text}");
    assert!(!wrong_path.exists());

    // The default creates it; with cancel_from_id off, the cancel says where it looked.
    let store = ordermeta::open(&url(&wrong)).await.expect("created");
    let gateway = DydxGateway::connect(node_config(sim.endpoint()), &wallet, 0)
        .await
        .expect("gateway");
    let client = OrderMetaClient::new(
        Arc::new(gateway),
        store,
        RecordingSwitch::new(true),
        ChainSettings {
            cancel_from_id: false,
            ..ChainSettings::default()
        },
    );
    let err = client.cancel_order(&id).await.expect_err("no record there");
    assert!(
        matches!(err, CancelError::MetadataNotFound { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&wrong_path.display().to_string()), "{text}");
    assert!(text.contains("created empty"), "{text}");
    assert!(sim.open_orders().len() == 1, "the order is still live");
}
