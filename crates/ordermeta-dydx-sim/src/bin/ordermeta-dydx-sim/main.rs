//! `ordermeta-dydx-sim`: a local dYdX v4 node (gRPC), its indexer (REST, websocket) and an
//! admin API; and the subcommands that inspect and drive a running one from another terminal.
//!
//! ```text
//! ordermeta-dydx-sim [serve] [--port P] [--indexer-port 9091] [--mnemonic …] …
//! ordermeta-dydx-sim status | orders [--all] | accounts | txs [--limit N]
//! ordermeta-dydx-sim fill <owner/subaccount/client_id/clob_pair/flags | indexer id> [QUANTUMS]
//! ordermeta-dydx-sim blocks [COUNT]
//! ```
//!
//! The subcommands call `--url` (env `ORDERMETA_DYDX_SIM_URL`), by default
//! `http://127.0.0.1:9091`, where `serve` binds its indexer / admin server by default.

mod client;
mod serve;

use clap::{Parser, Subcommand};

/// A local dYdX v4 node over gRPC, with its indexer, for the `dydx` client crate.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `serve` (the default command).
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the simulator (the default): prints `endpoint=`, `indexer=`, `indexer_ws=` and
    /// `admin=` lines, serves until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Chain id, height and block time of a running simulator.
    Status(client::Target),
    /// The orders it holds, with their full OrderId, good-til and status (live ones unless
    /// `--all`).
    Orders(client::OrdersArgs),
    /// Its accounts, with account numbers and sequences.
    Accounts(client::Target),
    /// The latest txs it received: hash, kind, order, CheckTx code, block and execution code.
    Txs(client::TxsArgs),
    /// Fill an order (fully, or QUANTUMS base quantums), as a match would; the indexer reports
    /// the fill with the next block.
    Fill(client::FillArgs),
    /// Produce blocks now (COUNT, default 1).
    Blocks(client::BlocksArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => serve::run(cli.serve).await,
        Some(Command::Serve(args)) => serve::run(args).await,
        Some(Command::Status(target)) => client::status(&target).await,
        Some(Command::Orders(args)) => client::orders(&args).await,
        Some(Command::Accounts(target)) => client::accounts(&target).await,
        Some(Command::Txs(args)) => client::txs(&args).await,
        Some(Command::Fill(args)) => client::fill(&args).await,
        Some(Command::Blocks(args)) => client::blocks(&args).await,
    }
}
