//! `ordermeta-dydx-sim`: runs the local dYdX node until Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ordermeta_dydx_sim::{BlockClock, BlockProduction, SimConfig, SimNode};

/// Where block times come from.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Clock {
    /// The wall clock, as on a real chain (timestamp nonces signed with the local time work).
    Wall,
    /// The previous block time plus one second (deterministic).
    Step,
}

/// A local dYdX v4 node over gRPC for the `dydx` client crate.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Chain id (dydx 0.3 clients know only dydx-testnet-4 and dydx-mainnet-1).
    #[arg(long, default_value = ordermeta_dydx_sim::TESTNET_CHAIN_ID)]
    chain_id: String,
    /// Mnemonic whose first `--accounts` accounts are funded.
    #[arg(long, env = "DYDX_SIM_MNEMONIC")]
    mnemonic: Option<String>,
    /// How many accounts to derive from the mnemonic.
    #[arg(long, default_value_t = 1)]
    accounts: u32,
    /// Extra funded addresses (dydx1…), repeatable.
    #[arg(long = "address")]
    addresses: Vec<String>,
    /// Block interval in milliseconds; 0 means blocks never advance on their own.
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// ShortBlockWindow.
    #[arg(long, default_value_t = ordermeta_dydx_sim::DEFAULT_SHORT_BLOCK_WINDOW)]
    short_block_window: u32,
    /// Where block times come from.
    #[arg(long, value_enum, default_value_t = Clock::Wall)]
    block_clock: Clock,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut config = SimConfig::default()
        .with_chain_id(&args.chain_id)
        .with_listen(SocketAddr::new(args.host, args.port))
        .with_short_block_window(args.short_block_window)
        .with_block_clock(match args.block_clock {
            Clock::Wall => BlockClock::WallClock,
            Clock::Step => BlockClock::Step,
        })
        .with_blocks(if args.block_ms == 0 {
            BlockProduction::Manual
        } else {
            BlockProduction::Interval(Duration::from_millis(args.block_ms))
        });
    if let Some(mnemonic) = &args.mnemonic {
        config = config.with_mnemonic(mnemonic, args.accounts);
    }
    for address in &args.addresses {
        config = config.with_address(address);
    }

    let sim = SimNode::start(config)
        .await
        .context("starting the simulator")?;
    // Scripts read this line to find the port.
    println!("endpoint={}", sim.endpoint());
    wait_for_stop_signal().await?;
    sim.shutdown().await.context("stopping the simulator")?;
    Ok(())
}

/// Ctrl-C, or SIGTERM on unix (what CI runners and `docker stop` send).
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}
