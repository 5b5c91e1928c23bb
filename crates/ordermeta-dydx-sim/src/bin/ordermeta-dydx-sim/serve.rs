//! `serve` (the default command): runs the simulator until Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ordermeta_dydx_sim::{
    BlockClock, BlockProduction, IndexerConfig, SimConfig, SimNode, TESTNET_CHAIN_ID,
};

/// The indexer / admin port the binary binds by default, and its subcommands call.
pub const DEFAULT_HTTP_PORT: u16 = 9091;

/// Where block times come from.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Clock {
    /// The wall clock, as on a real chain (timestamp nonces signed with the local time work).
    Wall,
    /// The previous block time plus one second (deterministic).
    Step,
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind (gRPC, and the indexer / admin server).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// gRPC port to bind (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Port of the indexer (REST, websocket) and admin API (0 picks a free one). The
    /// subcommands call 9091 unless given `--url`.
    #[arg(long, default_value_t = DEFAULT_HTTP_PORT)]
    indexer_port: u16,
    /// Serve gRPC only: no indexer, no admin API (the subcommands then cannot reach it).
    #[arg(long)]
    no_indexer: bool,
    /// Chain id (dydx 0.3 clients know only dydx-testnet-4 and dydx-mainnet-1).
    #[arg(long, default_value = TESTNET_CHAIN_ID)]
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

impl ServeArgs {
    fn config(&self) -> SimConfig {
        let mut config = SimConfig::default()
            .with_chain_id(&self.chain_id)
            .with_listen(SocketAddr::new(self.host, self.port))
            .with_short_block_window(self.short_block_window)
            .with_block_clock(match self.block_clock {
                Clock::Wall => BlockClock::WallClock,
                Clock::Step => BlockClock::Step,
            })
            .with_blocks(if self.block_ms == 0 {
                BlockProduction::Manual
            } else {
                BlockProduction::Interval(Duration::from_millis(self.block_ms))
            });
        config = if self.no_indexer {
            config.without_indexer()
        } else {
            config.with_indexer(IndexerConfig {
                listen: SocketAddr::new(self.host, self.indexer_port),
                ..IndexerConfig::default()
            })
        };
        if let Some(mnemonic) = &self.mnemonic {
            config = config.with_mnemonic(mnemonic, self.accounts);
        }
        for address in &self.addresses {
            config = config.with_address(address);
        }
        config
    }
}

/// Serves until Ctrl-C or SIGTERM; prints where, one `key=value` per line.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let sim = SimNode::start(args.config()).await.with_context(|| {
        format!(
            "starting the simulator (is port {} or {} taken? see --port / --indexer-port)",
            args.port, args.indexer_port
        )
    })?;
    // Scripts read these lines to find the ports; `endpoint=` stays first.
    println!("endpoint={}", sim.endpoint());
    if let (Some(rest), Some(ws), Some(admin)) =
        (sim.indexer_url(), sim.indexer_ws_url(), sim.admin_url())
    {
        println!("indexer={rest}");
        println!("indexer_ws={ws}");
        println!("admin={admin}");
    }
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
