//! Quickstart — the README's main job: place, restart, cancel by id.
//!
//! Run: `cargo run --example quickstart --features dydx,dydx-sim`
//!
//! The run is three processes. This one starts the local dYdX node simulator (producing a
//! block every 250 ms, like a chain) and then runs itself twice more, as a bot would run after
//! a restart:
//!
//! 1. `quickstart place`: connects, places two short-term and two long-term orders — each
//!    recorded in the store before it is broadcast — writes their ids to a file and exits;
//! 2. `quickstart cancel`: a new process with nothing in memory but that file: opens the same
//!    store, cancels every order by its id alone and exits.
//!
//! Then this process prints each order's record and what the node still holds. Each child
//! has a deadline (60 s): the example stops by itself.
//!
//! Any store works the same: pass its URL (see `ordermeta::open`), e.g.
//! `cargo run --example quickstart --features dydx,dydx-sim,postgres -- 'postgres://postgres@127.0.0.1/postgres?schema=quickstart'`
//! or `cargo run --example quickstart --features dydx,dydx-sim,redis -- redis://127.0.0.1:6379?namespace=quickstart`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use ordermeta::MetadataStoreExt;
use ordermeta::dydx::{
    ClientId, Market, OrderBuilder, OrderMetaClient, OrderSide, TimeDelta, Wallet,
};
use ordermeta::dydx_sim::fixtures::{MNEMONIC, market, node_config};
use ordermeta::dydx_sim::{BlockClock, BlockProduction, SimConfig, SimNode};

type Error = Box<dyn std::error::Error>;

/// How long each child process may run.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);
/// The store URL, handed to the child processes in the environment rather than on their
/// command line, where `ps` would show a password in it.
const STORE_URL_ENV: &str = "ORDERMETA_QUICKSTART_STORE";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = || std::env::var(STORE_URL_ENV);
    match args.as_slice() {
        [step, node, ids] if step == "place" => place(node, &url()?, Path::new(ids)).await,
        [step, node, ids] if step == "cancel" => cancel(node, &url()?, Path::new(ids)).await,
        [] => run(None).await,
        [url] => run(Some(url.clone())).await,
        _ => Err("usage: quickstart [store URL]".into()),
    }
}

/// The parent: the node, the two runs of the bot, the result.
async fn run(url: Option<String>) -> Result<(), Error> {
    let sim = SimNode::start(
        SimConfig::default()
            .with_mnemonic(MNEMONIC, 1)
            .with_blocks(BlockProduction::Interval(Duration::from_millis(250)))
            .with_block_clock(BlockClock::WallClock),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let ids = dir.path().join("order-ids.txt");
    // The store's URL: the first argument, else a new SQLite file.
    let url = url.unwrap_or_else(|| format!("sqlite:{}", dir.path().join("orders.db").display()));
    println!(
        "node simulator: {}   store: {}   ids file: {}",
        sim.endpoint(),
        url.split('@').next_back().unwrap_or_default(), // no password on screen
        ids.display()
    );

    for step in ["place", "cancel"] {
        println!("\n$ quickstart {step}   (a new process)");
        let status = child(step, &sim.endpoint(), &url, &ids).await?;
        if !status.success() {
            return Err(format!("`quickstart {step}` failed: {status}").into());
        }
    }

    // This process's own view: the records the two runs left in the store.
    let store = ordermeta::open(&url).await?;
    println!("\n{:<76} {:<10} cancel tx", "order id", "status");
    for id in read_ids(&ids)? {
        let m = store.get_required(&id).await?;
        println!(
            "{:<76} {:<10} {}",
            m.order_id,
            m.status,
            m.cancel_tx_hash.as_deref().unwrap_or("-")
        );
    }
    println!(
        "\nlive on the node after cancel-by-id: {}",
        sim.open_orders().len()
    );
    sim.shutdown().await?;
    Ok(())
}

/// Runs this example again as `quickstart <step> …`, within [`CHILD_DEADLINE`].
async fn child(step: &str, node: &str, url: &str, ids: &Path) -> Result<ExitStatus, Error> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([step, node])
        .arg(ids)
        .env(STORE_URL_ENV, url)
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(CHILD_DEADLINE, child.wait()).await {
        Ok(status) => Ok(status?),
        Err(_) => Err(format!("`quickstart {step}` still running after {CHILD_DEADLINE:?}").into()),
    }
}

/// Process 1: place orders, keep their ids in a file.
async fn place(node: &str, url: &str, ids: &Path) -> Result<(), Error> {
    let wallet = Wallet::from_mnemonic(MNEMONIC)?;
    let client =
        OrderMetaClient::connect(node_config(node), &wallet, ordermeta::open(url).await?).await?;
    let btc = Market::new("BTC-USD", market());
    let sub = wallet.account_offline(0)?.subaccount(0)?;
    let mut placed = Vec::new();
    for price in [50_000, 50_001] {
        let (_, order) = OrderBuilder::new(&btc, sub.clone())
            .limit(OrderSide::Buy, price, 1)
            .until(client.good_til_block(40).await?) // short-term: ~20-40 s on dYdX
            .build(ClientId::random())?;
        placed.push(client.place(order, &btc).await?.order_id);
    }
    for price in [70_000, 70_001] {
        let (_, order) = OrderBuilder::new(&btc, sub.clone())
            .limit(OrderSide::Sell, price, 1)
            .long_term()
            .until(client.good_til_time(TimeDelta::days(7)).await?)
            .build(ClientId::random())?;
        placed.push(client.place(order, &btc).await?.order_id);
    }
    for id in &placed {
        println!("placed {id}");
    }
    std::fs::write(ids, placed.join("\n"))?;
    println!("{} ids written; exiting", placed.len());
    Ok(())
}

/// Process 2: nothing in memory but the ids file.
async fn cancel(node: &str, url: &str, ids: &Path) -> Result<(), Error> {
    let wallet = Wallet::from_mnemonic(MNEMONIC)?;
    let client =
        OrderMetaClient::connect(node_config(node), &wallet, ordermeta::open(url).await?).await?;
    for id in read_ids(ids)? {
        let done = client.cancel_order(&id).await?;
        println!("cancelled {id}  tx {}", done.tx_hash);
    }
    // A stateful cancel is final once a block executed it; the supervisor confirms this on
    // its own, here we wait for it before exiting.
    let report = client.confirm_all(Duration::from_secs(20)).await;
    println!("confirmed after their block: {report:?}");
    Ok(())
}

fn read_ids(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(PathBuf::from(path))?;
    Ok(text.lines().map(str::to_owned).collect())
}
