//! A local dYdX v4 node over real gRPC, for tests, examples and CI.
//!
//! The **unmodified** `dydx` client crate (0.3) talks to it exactly as to a full node:
//! `NodeClient::connect`, `Wallet::account`, `latest_block_height`, `place_order`,
//! `cancel_order` and `batch_cancel_orders` work unchanged. Every tx is decoded and
//! authenticated (signature, chain id, account number, sequence) and its clob message is
//! applied with the chain's rules; rejections come back as a non-zero `code` with `codespace`
//! and `raw_log` in the `TxResponse`, so the client sees what it would see on mainnet
//! (`dydx::node::NodeError::Broadcast` with `code: Some(..)`).
//!
//! # Use in tests
//!
//! ```no_run
//! use ordermeta_dydx_sim::{SimConfig, SimNode};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! const MNEMONIC: &str = "mirror actor skill push coach wait confirm orchard lunch mobile athlete gossip awake miracle matter bus reopen team ladder lazy list timber render wait";
//! let sim = SimNode::start(SimConfig::default().with_mnemonic(MNEMONIC, 1)).await?;
//! // dydx::node::NodeConfig { endpoint: sim.endpoint(), chain_id: ChainId::Testnet4, .. }
//! sim.advance_blocks(1);
//! for msg in sim.messages() {
//!     println!("{:?} -> {}/{}", msg.kind, msg.codespace(), msg.code());
//! }
//! sim.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Notes for `dydx` 0.3 clients:
//! - Its `ChainId` only knows `dydx-testnet-4` and `dydx-mainnet-1`; the simulator defaults to
//!   `dydx-testnet-4`.
//! - `NodeClient::connect` builds a TLS config with native roots, which needs a process-wide
//!   rustls crypto provider: call `rustls::crypto::ring::default_provider().install_default()`
//!   once first. The `http://` endpoint then connects in cleartext.
//! - Blocks are manual by default ([`BlockProduction::Manual`]): call
//!   [`SimHandle::advance_blocks`] instead of sleeping.
//!
//! # Use in CI (binary)
//!
//! `cargo run -p ordermeta-dydx-sim -- --port 9090 --mnemonic "…" --accounts 2 --block-ms 500`
//! prints `endpoint=http://127.0.0.1:9090` on stdout and serves until Ctrl-C.
//!
//! # Rules enforced, and the v4-chain source each mirrors
//!
//! Files are in `dydxprotocol/v4-chain`, under `protocol/`. "next height" is the latest block
//! height + 1, as CheckTx sees it.
//!
//! | Rule | Result | v4-chain file, function |
//! |---|---|---|
//! | tx bytes must decode (TxRaw, TxBody, AuthInfo, known msgs) | sdk/2 | cosmos-sdk `x/auth/tx/decoder.go`, `DefaultTxDecoder` |
//! | a clob msg must be alone in its tx | sdk/18 | `x/clob/ante/clob.go`, `IsShortTermClobMsgTx` / `ValidateMsgsInClobTx` |
//! | signer account must exist | sdk/9 | cosmos-sdk `x/auth/ante/sigverify.go`, `GetSignerAcc` |
//! | tx public key must hash to the signer address | sdk/8 | cosmos-sdk `x/auth/ante/sigverify.go`, `SetPubKeyDecorator.AnteHandle` |
//! | stateful txs: signed sequence == account sequence | sdk/32 | `app/ante/replay_protection.go`, `ReplayProtectionDecorator.AnteHandle` |
//! | short-term place/cancel and batch cancel skip the sequence check and increment | — | `app/ante/util.go`, `ShouldSkipSequenceValidation`; `app/ante.go`, `clobAnteHandle` |
//! | signature over SignDoc(body, auth info, chain id, account number) | sdk/4 | `app/ante/sigverify.go`, `SigVerificationDecorator.AnteHandle` |
//! | sequence increments only if the whole tx passes (cache store written on success) | — | `app/ante.go`, `clobAnteHandle` |
//! | order id: valid owner, flags 0/32/64; side, quantums, subticks set | sdk/7, clob/3000, 3, 4, 6 | `x/clob/types/message_place_order.go`, `MsgPlaceOrder.ValidateBasic` |
//! | short-term place/cancel need GTB > 0; stateful need GTBT > 0 | clob/5, clob/3001 | `x/clob/types/message_cancel_order.go`, `MsgCancelOrder.ValidateBasic` |
//! | long-term orders cannot be IOC/FOK | clob/3002 | `x/clob/types/message_place_order.go`, `MsgPlaceOrder.ValidateBasic` |
//! | GTB window: next height <= GTB <= next height + ShortBlockWindow (default 40) | clob/10, clob/11 | `x/clob/keeper/orders.go`, `validateGoodTilBlock` |
//! | GTBT window: previous block time < GTBT <= previous block time + 95 days | clob/3003, clob/3004 | `x/clob/keeper/orders.go`, `PerformStatefulOrderValidation`, `PerformOrderCancellationStatefulValidation` |
//! | short-term place/cancel share a per-account budget (batch cancel weighs 2), GTB checked first; rejected requests count | clob/5001 | `x/clob/keeper/rate_limit.go`, `RateLimitPlaceOrder`/`RateLimitCancelOrder`/`RateLimitBatchCancel`; `x/clob/rate_limit/multi_block_rate_limiter.go`, `RateLimitIncrBy` |
//! | stateful placements per account (default 2/block, 20/100 blocks); stateful cancels not limited | clob/5001 | `x/clob/rate_limit/order_rate_limiter.go`, `RateLimitPlaceOrder`/`RateLimitCancelOrder` |
//! | re-placing a short-term id with GTB <= a recorded cancel's GTB | clob/7 | `x/clob/memclob/memclob.go`, `validateNewOrder` |
//! | short-term replacement needs a later GTB (or same GTB, greater hash) and same side/TIF/reduce-only | clob/20 | `x/clob/memclob/memclob.go`, `validateReplacement`; `x/clob/types/order.go`, `MustCmpReplacementOrder` |
//! | fully filled order id cannot be placed again until its good-til passes | clob/24 | `x/clob/memclob/memclob.go`, `validateNewOrder` |
//! | short-term cancel: removes the order only if cancel GTB >= order GTB; a lower GTB is accepted and leaves it live; never "not found" (pre-cancel recorded until its GTB) | code 0 | `x/clob/memclob/memclob.go`, `CancelOrder` |
//! | second short-term cancel with GTB <= the recorded one | clob/9 | `x/clob/memclob/memclob.go`, `CancelOrder` |
//! | stateful cancel of a missing (filled, expired, cancelled, removed) order | clob/3006 | `x/clob/keeper/orders.go`, `PerformOrderCancellationStatefulValidation` |
//! | stateful cancel GTBT must be >= the order's GTBT | clob/29 | same |
//! | a second stateful cancel while the first is uncommitted | clob/32 | same (`GetUncommittedStatefulOrderCancellation`) |
//! | stateful cancel is uncommitted until the next block, which removes the order | — | `x/clob/keeper/orders.go`, `CancelStatefulOrder`; `x/clob/keeper/msg_server_cancel_orders.go`, `HandleMsgCancelOrder` |
//! | stateful place: same id live → 3005; uncommitted cancel pending → 3008 | clob/3005, clob/3008 | `x/clob/keeper/orders.go`, `PerformStatefulOrderValidation` |
//! | batch cancel: >= 1 batch, no duplicate pairs or client ids, <= 100 ids | clob/45 | `x/clob/types/message_batch_cancel.go`, `MsgBatchCancel.ValidateBasic` |
//! | batch cancel: each id cancelled like a short-term cancel; fails only if none succeeded | clob/46 | `x/clob/keeper/orders.go`, `BatchCancelShortTermOrder`; `x/clob/ante/clob.go`, `ClobDecorator.AnteHandle` |
//! | short-term order expires once the latest height >= GTB; cancels likewise | — | `x/clob/memclob/memclob.go`, `PurgeInvalidMemclobState` |
//! | stateful order expires in the first block whose time >= GTBT | — | `x/clob/keeper/stateful_order_state.go`, `RemoveExpiredStatefulOrders` (from `x/clob/abci.go`, `EndBlocker`) |
//! | short-term place with a tx timeout height below its GTB | sdk/18 | `x/clob/ante/clob.go`, `ClobDecorator.AnteHandle` |
//!
//! Not simulated: matching, collateral and equity-tier checks, clob pair parameters,
//! authenticators (permissioned keys), timestamp nonces, fees.
#![deny(missing_docs)]

mod config;
mod error;
mod node;
mod server;
mod state;
mod tx;
mod types;

pub use config::{
    BlockProduction, DEFAULT_SHORT_BLOCK_WINDOW, GenesisAccount, MAINNET_CHAIN_ID,
    MAX_BATCH_CANCEL_SIZE, RateLimit, RateLimits, STATEFUL_ORDER_TIME_WINDOW_SECS, SimConfig,
    TESTNET_CHAIN_ID,
};
pub use error::{ChainError, SimError, codes};
pub use node::{SimHandle, SimNode};
pub use types::{
    AccountInfo, Fill, GoodTil, MsgKind, OrderState, OrderStatus, ReceivedMsg, order_flags,
};

/// Re-export of the protobuf types used in this API (`OrderId`, `Order`, …).
pub use dydx_proto;
