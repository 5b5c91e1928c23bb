//! The subcommands: HTTP calls to a running simulator's admin API, printed one record per
//! line as `key=value` pairs (`--json` prints the API's JSON instead).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ordermeta_dydx_sim::admin::{
    AccountView, AdminError, BlocksRequest, FillRequest, OrderView, StatusView, TxView,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every call's deadline.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Which simulator to talk to.
#[derive(Debug, Args)]
pub struct Target {
    /// Base URL of the simulator's indexer / admin server (its `indexer=` line).
    #[arg(
        long,
        env = "ORDERMETA_DYDX_SIM_URL",
        default_value = "http://127.0.0.1:9091"
    )]
    url: String,
    /// Print the admin API's JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `orders`.
#[derive(Debug, Args)]
pub struct OrdersArgs {
    #[command(flatten)]
    target: Target,
    /// Every order ever accepted, not only the live ones.
    #[arg(long)]
    all: bool,
}

/// Options of `txs`.
#[derive(Debug, Args)]
pub struct TxsArgs {
    #[command(flatten)]
    target: Target,
    /// How many of the latest txs.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

/// Options of `fill`.
#[derive(Debug, Args)]
pub struct FillArgs {
    #[command(flatten)]
    target: Target,
    /// `owner/subaccount/client_id/clob_pair/flags` (as `orders` prints it) or the indexer id.
    order: String,
    /// Base quantums to fill (default: the rest of the order).
    quantums: Option<u64>,
}

/// Options of `blocks`.
#[derive(Debug, Args)]
pub struct BlocksArgs {
    #[command(flatten)]
    target: Target,
    /// How many blocks.
    #[arg(default_value_t = 1)]
    count: u32,
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .context("building the HTTP client")
}

fn url(target: &Target, path: &str) -> String {
    format!("{}/sim/{path}", target.url.trim_end_matches('/'))
}

/// Decodes an answer, or turns an error answer into a message.
async fn decode<T: DeserializeOwned>(response: reqwest::Response, what: &str) -> anyhow::Result<T> {
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let error = serde_json::from_str::<AdminError>(&body).map_or(body, |e| e.error);
        bail!("{what}: {status}: {error}");
    }
    response
        .json()
        .await
        .with_context(|| format!("{what}: unexpected answer"))
}

async fn get<T: DeserializeOwned>(target: &Target, path: &str) -> anyhow::Result<T> {
    let address = url(target, path);
    let response = client()?
        .get(&address)
        .send()
        .await
        .with_context(|| format!("calling {address} (is the simulator running? see --url)"))?;
    decode(response, &address).await
}

async fn post<B: Serialize, T: DeserializeOwned>(
    target: &Target,
    path: &str,
    body: &B,
) -> anyhow::Result<T> {
    let address = url(target, path);
    let response = client()?
        .post(&address)
        .json(body)
        .send()
        .await
        .with_context(|| format!("calling {address} (is the simulator running? see --url)"))?;
    decode(response, &address).await
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn order_line(o: &OrderView) -> String {
    format!(
        "order={} owner={} subaccount={} client_id={} clob_pair={} flags={} good_til={} status={} side={} quantums={} filled={} subticks={} placed_at={} indexer_id={}",
        o.selector(),
        o.owner,
        o.subaccount,
        o.client_id,
        o.clob_pair,
        o.flags,
        o.good_til,
        o.status,
        o.side,
        o.quantums,
        o.filled_quantums,
        o.subticks,
        o.placed_at_height,
        o.indexer_id
    )
}

fn status_line(s: &StatusView) -> String {
    format!(
        "chain_id={} height={} block_time={}",
        s.chain_id, s.height, s.block_time
    )
}

/// `status`.
pub async fn status(target: &Target) -> anyhow::Result<()> {
    let status: StatusView = get(target, "status").await?;
    if target.json {
        return print_json(&status);
    }
    println!("{}", status_line(&status));
    Ok(())
}

/// `orders`.
pub async fn orders(args: &OrdersArgs) -> anyhow::Result<()> {
    let path = if args.all {
        "orders?all=true"
    } else {
        "orders"
    };
    let orders: Vec<OrderView> = get(&args.target, path).await?;
    if args.target.json {
        return print_json(&orders);
    }
    for order in &orders {
        println!("{}", order_line(order));
    }
    if orders.is_empty() {
        eprintln!("no orders");
    }
    Ok(())
}

/// `accounts`.
pub async fn accounts(target: &Target) -> anyhow::Result<()> {
    let accounts: Vec<AccountView> = get(target, "accounts").await?;
    if target.json {
        return print_json(&accounts);
    }
    for a in &accounts {
        println!(
            "address={} account_number={} sequence={} check_tx_sequence={} pubkey_known={}",
            a.address, a.account_number, a.sequence, a.check_tx_sequence, a.pubkey_known
        );
    }
    Ok(())
}

/// `txs`.
pub async fn txs(args: &TxsArgs) -> anyhow::Result<()> {
    let txs: Vec<TxView> = get(&args.target, &format!("txs?limit={}", args.limit)).await?;
    if args.target.json {
        return print_json(&txs);
    }
    for t in &txs {
        let opt = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        println!(
            "hash={} kind={} order={} height={} code={} codespace={} included_height={} delivered_code={}",
            t.hash,
            t.kind,
            t.order.as_deref().unwrap_or("-"),
            t.height,
            t.code,
            if t.codespace.is_empty() {
                "-"
            } else {
                &t.codespace
            },
            opt(t.included_height),
            opt(t.delivered_code)
        );
    }
    Ok(())
}

/// `fill`.
pub async fn fill(args: &FillArgs) -> anyhow::Result<()> {
    let order: OrderView = post(
        &args.target,
        "fill",
        &FillRequest {
            order: args.order.clone(),
            quantums: args.quantums,
        },
    )
    .await?;
    if args.target.json {
        return print_json(&order);
    }
    println!("{}", order_line(&order));
    Ok(())
}

/// `blocks`.
pub async fn blocks(args: &BlocksArgs) -> anyhow::Result<()> {
    let status: StatusView =
        post(&args.target, "blocks", &BlocksRequest { count: args.count }).await?;
    if args.target.json {
        return print_json(&status);
    }
    println!("{}", status_line(&status));
    Ok(())
}
