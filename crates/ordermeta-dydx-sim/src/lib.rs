//! A local dYdX v4 node over real gRPC, with its indexer (REST and websocket), for tests,
//! examples and CI.
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
//! use ordermeta_dydx_sim::{SimConfig, SimNode, fixtures};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = SimNode::start(SimConfig::default().with_mnemonic(fixtures::MNEMONIC, 1)).await?;
//! // With feature `dydx`: fixtures::node_config(sim.endpoint()) is the client's NodeConfig.
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
//! - The account query serves **committed** state, as a node does: after a stateful tx is
//!   accepted, `query_address` / `Wallet::account` (and the client's default
//!   `QueryingSequencer`) still return the old sequence until the next block. Sign several
//!   stateful txs per block with a locally tracked sequence or with timestamp nonces.
//! - [`fixtures`] holds what tests and examples share: the test mnemonic, a market and (with
//!   the feature `dydx`) the client's `NodeConfig`.
//!
//! # Sequences, timestamp nonces and blocks
//!
//! - **Sequences**: each account exists in committed state (served by
//!   `cosmos.auth.v1beta1.Query/Account` and [`SimHandle::account`]`.sequence`) and in the
//!   CheckTx copy ([`AccountInfo::check_tx_sequence`]) that admits txs. A stateful tx must carry
//!   the CheckTx sequence; two stateful txs signed with the same sequence before a block: the
//!   second gets sdk/32. Short-term txs (short-term place/cancel, batch cancel) skip sequence
//!   checks entirely.
//! - **Timestamp nonces**: a signed sequence >= 2^40 ([`TIMESTAMP_NONCE_CUTOFF`]) is a unix-ms
//!   nonce, accepted within 30 s ([`TIMESTAMP_NONCE_MAX_SKEW_MS`]) of the block time on either
//!   side, if not among the account's last 20 ([`MAX_TIMESTAMP_NONCES`]) accepted nonces and
//!   above the highest one ejected from them; it never bumps the sequence. Else sdk/32. CheckTx
//!   measures against the latest block's time, execution against the new block's time. With
//!   the default [`BlockClock::Step`] block time is the genesis time plus one step per block,
//!   so derive nonces from the latest block's header time (or [`SimHandle::block_time`]); with
//!   [`BlockClock::WallClock`] block time follows the wall clock, as on a real chain, so
//!   `dydx::node::sequencer::TimestamperSequencer` works.
//! - **Execution in the next block**: a stateful place or cancel accepted by CheckTx waits in
//!   the mempool ([`SimHandle::pending_txs`]); the order shows [`OrderStatus::PlacePending`] /
//!   [`OrderStatus::CancelPending`]. The next produced block executes every waiting tx in order:
//!   a place then rests on the book ([`OrderStatus::Open`]), a cancel removes its order. The
//!   execution can fail although CheckTx accepted it: the order filled or was removed in between
//!   (a cancel gets clob/3010), a timestamp nonce fell out of the new block's window (sdk/32),
//!   or on command ([`SimHandle::fail_next_block_execution`],
//!   [`SimHandle::fail_block_execution_of`]).
//! - **Tx results by hash**: `cosmos.tx.v1beta1.Service/GetTx` (and [`SimHandle::tx_result`])
//!   returns a stateful tx with its execution `code`/`codespace`/`raw_log` and `height` once a
//!   block included it; before that, and always for short-term or rejected txs (no block
//!   includes those), it answers NotFound. The message log records the execution result in
//!   [`ReceivedMsg::delivered`]; [`ReceivedMsg::final_result`] gives the final outcome.
//!
//! # The indexer
//!
//! Unless [`SimConfig::without_indexer`], the simulator also serves the dYdX indexer on its own
//! loopback port ([`SimHandle::indexer_url`], [`SimHandle::indexer_ws_url`]; a free port in
//! tests, 9091 for the binary), in the wire format of the real indexer (`dydxprotocol/v4-chain`,
//! `indexer/services`), so the unmodified `dydx::indexer::IndexerClient` (config:
//! `fixtures::indexer_config`) works on it:
//!
//! - REST: `accounts().get_subaccount_orders` (filters `ticker`, `side`, `status`, `type`,
//!   `limit`, `goodTilBlockBeforeOrAt`, `goodTilBlockTimeBeforeOrAt`, `returnLatestOrders`),
//!   `get_order`, `get_subaccount_fills`, `get_subaccount`, `get_subaccounts`;
//!   `utility().get_height`, `get_time`; `markets().get_perpetual_market(s)`.
//! - Websocket: `feed().subaccounts(subaccount, batched)` (channel `v4_subaccounts`).
//! - Ids: the real indexer's uuids ([`indexer_order_id`], [`indexer_subaccount_id`]).
//!
//! It is built only from the chain's events, as the real one is built from the node's
//! off-chain updates and each block's events; what each chain event sends:
//!
//! | Chain event | Feed update (`contents.orders[0]`) | REST (the order) |
//! |---|---|---|
//! | short-term place (CheckTx) | `BEST_EFFORT_OPENED` | `BEST_EFFORT_OPENED` (no heights: no row yet) |
//! | short-term replacement | `BEST_EFFORT_CANCELED` (`removalReason` `…_REPLACED`), then `BEST_EFFORT_OPENED` | the new good-til |
//! | IOC place (no liquidity) | `BEST_EFFORT_OPENED`, then `BEST_EFFORT_CANCELED` (`…_IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK`) | gone |
//! | long-term place (its block) | `OPEN` | `OPEN`, `createdAtHeight` = that block |
//! | conditional place (its block) | `UNTRIGGERED` with `triggerPrice` | `UNTRIGGERED` |
//! | fill ([`SimHandle::fill`]; reported with the **next block**) | the order (`OPEN` with `totalFilled`, or `FILLED`) and `fills[0]` (own id, size, price, side, `MAKER`, `createdAtHeight`) | `totalFilled`, status; `get_subaccount_fills` |
//! | short-term cancel / batch cancel (CheckTx) | `BEST_EFFORT_CANCELED` (`…_USER_CANCELED`), also for an order already gone | gone if it never filled, else `BEST_EFFORT_CANCELED` |
//! | short-term expiry (GTB reached, order still on the book) | `CANCELED` (`…_EXPIRED`) | gone if it never filled, else `CANCELED` |
//! | stateful cancel (its block) | `CANCELED` (`…_USER_CANCELED`) | `CANCELED` |
//! | stateful expiry (first block at its GTBT) | `CANCELED` (`…_EXPIRED`) | `CANCELED` |
//! | [`SimHandle::remove_order`] | `BEST_EFFORT_CANCELED` (`…_UNDERCOLLATERALIZED`); stateful: `CANCELED` with the next block | as for a cancel |
//!
//! A short-term order cancelled best effort is never confirmed `CANCELED` later: as on
//! mainnet, it is final once the height passes its good-til-block. A fill of an order
//! cancelled meanwhile ends `FILLED` if complete, else keeps `BEST_EFFORT_CANCELED`.
//! The `subscribed` snapshot holds the open, untriggered and best-effort-opened orders (and
//! those best-effort-cancelled whose GTB is within the last 20 blocks); `message_id` counts
//! the connection's messages from 0 (`connected`); updates carry `version` `3.0.0`.
//!
//! For tests of a client's resilience: [`SimHandle::drop_indexer_sockets`] kills every socket
//! without a close frame (the `dydx` client reconnects, resubscribes and gets a new
//! snapshot on the same feed), [`SimHandle::pause_indexer_ws`] / [`SimHandle::resume_indexer_ws`]
//! hold the feed back without losing anything (drop while paused: the held updates are lost),
//! [`SimHandle::set_indexer_ws_accepting`] refuses reconnects (the client's feeds then end),
//! [`SimHandle::indexer_ws_subscriptions`] tells when a subscription is registered.
//!
//! Not modelled: collateral, positions, transfers, funding and fees (equity, free collateral
//! and fees are 0, no `perpetualPositions` / `assetPositions` in updates), the taker side of a
//! fill (every fill is the resting order's, as maker), conditional triggering, the other
//! channels (`v4_orderbook`, `v4_trades`, `v4_markets`, `v4_candles`, `v4_block_height`,
//! `v4_parent_subaccounts`: subscribing answers an error), parent-subaccount routes,
//! pagination (`page`), rate limits, heartbeats, the real indexer's lag (updates are sent
//! as the chain moves), and fields the `dydx` 0.3 client does not declare (e.g. an order's
//! `createdAt`, a fill's `fee` in the feed).
//!
//! # Layout
//!
//! `chain/` is the simulated chain: its state and lock (`mod.rs`), CheckTx and the ante
//! handlers (`ante.rs`), sequences and timestamp nonces (`replay.rs`), `ValidateBasic`
//! (`validate_basic.rs`, one cited rule per check), rate limits (`rate_limit.rs`), the
//! place/cancel rules at CheckTx (`clob.rs`), block execution of stateful txs and tx results
//! (`deliver.rs`), the orders and their expiry (`book.rs`), block production
//! (`blocks.rs`) and the events it tells the indexer (`events.rs`). `grpc.rs` serves the
//! node's gRPC services over it; `indexer/` the indexer (`state.rs` applies the chain's events,
//! `query.rs` the REST views, `wire.rs` the JSON, `ids.rs` the ids, `rest.rs` and `ws.rs` the
//! routes); [`admin`] the admin API; `http.rs` serves those two; `node.rs` starts, controls
//! and stops a simulator. Servers read the chain, never each other.
//!
//! # The binary: run it, inspect and drive it from another terminal
//!
//! Install it with `cargo install --path crates/ordermeta-dydx-sim` (or run it in the
//! workspace with `cargo run -p ordermeta-dydx-sim --`). More in the crate's `README.md`.
//!
//! ```text
//! $ ordermeta-dydx-sim --mnemonic "…" --accounts 2 --block-ms 500
//! endpoint=http://127.0.0.1:41523
//! indexer=http://127.0.0.1:9091
//! indexer_ws=ws://127.0.0.1:9091/v4/ws
//! admin=http://127.0.0.1:9091/sim
//! ```
//!
//! It serves until Ctrl-C or SIGTERM (`serve` is the default command; `--port` picks the gRPC
//! port, 0 = free; `--indexer-port` the indexer / admin port, 9091 by default, 0 = free). Block
//! times follow the wall clock (`--block-clock wall`, the default; `step` for +1 s per block);
//! `--block-ms 0` makes blocks manual. From a second terminal (`--url` or
//! `ORDERMETA_DYDX_SIM_URL` for another port; `--json` for JSON):
//!
//! - `ordermeta-dydx-sim status`: chain id, height, block time;
//! - `ordermeta-dydx-sim orders [--all]`: each order's `owner/subaccount/client_id/clob_pair/flags`,
//!   good-til, status, side, size, filled, indexer id (live ones unless `--all`);
//! - `ordermeta-dydx-sim accounts`: addresses, account numbers, sequences;
//! - `ordermeta-dydx-sim txs [--limit N]`: hash, kind, order, CheckTx code, block and
//!   execution code of the latest txs;
//! - `ordermeta-dydx-sim fill <owner/subaccount/client_id/clob_pair/flags | indexer id> [QUANTUMS]`:
//!   fills an order as a match would;
//! - `ordermeta-dydx-sim blocks [COUNT]`: produces blocks now.
//!
//! # Rules enforced, and the v4-chain source each mirrors
//!
//! Files are in `dydxprotocol/v4-chain`, under `protocol/`. "next height" is the latest block
//! height + 1, as CheckTx sees it.
//!
//! | Rule | Result | v4-chain file, function |
//! |---|---|---|
//! | tx bytes must decode (TxRaw, TxBody, AuthInfo, known msgs) | sdk/2 | cosmos-sdk `x/auth/tx/decoder.go`, `DefaultTxDecoder` |
//! | every msg's `ValidateBasic` first (the full table is in `chain/validate_basic.rs`): fill-or-kill, subaccount, enums, flags, good-til, long-term IOC, reduce-only non-IOC, subticks, condition type and trigger, builder code, TWAP parameters; cancel and batch rules | clob/48, subaccounts/200-201, clob/3, 44, 6000, 4, 11000, 5, 3001, 3000, 3002, 9003, 6, 6001, 50, 12, 45 | cosmos-sdk `baseapp/baseapp.go`, `validateBasicTxMsgs`; `x/clob/types/message_place_order.go`, `message_cancel_order.go`, `message_batch_cancel.go` |
//! | a clob msg must be alone in its tx | sdk/18 | `x/clob/ante/clob.go`, `IsShortTermClobMsgTx` / `ValidateMsgsInClobTx` |
//! | one signer info and one signature | sdk/4 | cosmos-sdk `x/auth/ante/basic.go`, `ValidateBasicDecorator` |
//! | signer account must exist | sdk/9 | cosmos-sdk `x/auth/ante/sigverify.go`, `GetSignerAcc` |
//! | tx public key must hash to the signer address | sdk/8 | cosmos-sdk `x/auth/ante/sigverify.go`, `SetPubKeyDecorator.AnteHandle` |
//! | stateful txs: signed sequence == CheckTx account sequence | sdk/32 | `app/ante/replay_protection.go`, `ReplayProtectionDecorator.AnteHandle` |
//! | stateful txs: a sequence >= 2^40 is a timestamp nonce: within 30 s of block time, not among the last 20, above the highest ejected | sdk/32 | `x/accountplus/keeper/timestampnonce.go`, `ProcessTimestampNonce` |
//! | short-term place/cancel and batch cancel skip the sequence check and increment | — | `app/ante/util.go`, `ShouldSkipSequenceValidation`; `app/ante.go`, `clobAnteHandle` |
//! | signature over SignDoc(body, auth info, chain id, account number) | sdk/4 | `app/ante/sigverify.go`, `SigVerificationDecorator.AnteHandle` |
//! | sequence increments (plain sequences only) only if the whole tx passes (cache store written on success) | — | `app/ante.go`, `clobAnteHandle`; `app/ante/timestampnonce.go`, `DydxIncrementSequenceDecorator` |
//! | the account query serves committed state; CheckTx admits against its own copy, reset after each block | — | cosmos-sdk `baseapp/abci.go`, `Commit` (check state reset) |
//! | stateful place/cancel accepted by CheckTx executes in the next block and can fail there (order filled/removed meanwhile: 3010; gone: 3006; cancelled/removed in the block before a place: 3008/3009) | clob/3010, 3006, 3008, 3009 | `x/clob/keeper/msg_server_place_order.go`, `HandleMsgPlaceOrder`; `x/clob/keeper/msg_server_cancel_orders.go`, `HandleMsgCancelOrder` |
//! | short-term messages never enter a block: `GetTx` does not find them | — | `app/process/utils_disallow_msgs.go`, `IsDisallowClobOrderMsgInOtherTxs` |
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
//! | stateful place: same id live or uncommitted → 3005; uncommitted cancel pending → 3008 | clob/3005, clob/3008 | `x/clob/keeper/orders.go`, `PerformStatefulOrderValidation` |
//! | stateful cancel of an uncommitted placement is accepted | — | `x/clob/keeper/orders.go`, `PerformOrderCancellationStatefulValidation` |
//! | batch cancel: each id cancelled like a short-term cancel; fails only if none succeeded | clob/46 | `x/clob/keeper/orders.go`, `BatchCancelShortTermOrder`; `x/clob/ante/clob.go`, `ClobDecorator.AnteHandle` |
//! | short-term order expires once the latest height >= GTB; cancels likewise | — | `x/clob/memclob/memclob.go`, `PurgeInvalidMemclobState` |
//! | stateful order expires in the first block whose time >= GTBT | — | `x/clob/keeper/stateful_order_state.go`, `RemoveExpiredStatefulOrders` (from `x/clob/abci.go`, `EndBlocker`) |
//! | short-term place with a tx timeout height below its GTB | sdk/18 | `x/clob/ante/clob.go`, `ClobDecorator.AnteHandle` |
//!
//! Not simulated: matching, collateral and equity-tier checks, clob pair parameters,
//! authenticators (permissioned keys), fees, TWAP orders (they pass `ValidateBasic`, then get
//! sdk/18), stateful txs with several msgs (allowed on chain, refused here with sdk/18),
//! conditional triggering (a conditional order rests untriggered until cancelled or expired),
//! mempool eviction and block size limits (every waiting tx goes into the next block).
#![deny(missing_docs)]

pub mod admin;
mod chain;
mod config;
mod error;
pub mod fixtures;
mod grpc;
mod http;
mod indexer;
mod node;
mod tx;
mod types;

pub use config::{
    BlockClock, BlockProduction, DEFAULT_SHORT_BLOCK_WINDOW, GenesisAccount, IndexerConfig,
    MAINNET_CHAIN_ID, MAX_BATCH_CANCEL_SIZE, MAX_TIMESTAMP_NONCES, RateLimit, RateLimits,
    STATEFUL_ORDER_TIME_WINDOW_SECS, SimConfig, TESTNET_CHAIN_ID, TIMESTAMP_NONCE_CUTOFF,
    TIMESTAMP_NONCE_MAX_SKEW_MS,
};
pub use error::{ChainError, SimError, codes};
pub use indexer::ids::{order_uuid as indexer_order_id, subaccount_uuid as indexer_subaccount_id};
pub use indexer::{Market, SUBACCOUNTS_MESSAGE_VERSION};
pub use node::{SimHandle, SimNode};
pub use types::{
    AccountInfo, Fill, GoodTil, MsgKind, OrderState, OrderStatus, ReceivedMsg, TxResult,
    order_flags,
};

/// Re-export of the protobuf types used in this API (`OrderId`, `Order`, …).
pub use dydx_proto;
