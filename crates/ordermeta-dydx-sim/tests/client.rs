//! The real `dydx` 0.3 client against the simulator: flows end to end.

mod common;

use common::*;
use dydx::indexer::Height;
use dydx::node::sequencer::Nonce;
use dydx::node::{ChainId, NodeClient, NodeConfig, OrderBuilder, OrderSide};
use dydx_proto::ToAny;
use dydx_proto::cosmos_sdk_proto::cosmos::tx::v1beta1::{BroadcastMode, BroadcastTxRequest, TxRaw};
use dydx_proto::dydxprotocol::clob::{MsgPlaceOrder, OrderBatch};
use ordermeta_dydx_sim::{
    ChainError, Fill, GoodTil, MsgKind, OrderStatus, RateLimit, RateLimits, SimConfig, SimNode,
};
use prost::Message;

#[tokio::test]
async fn connect_account_and_height() {
    let mut env = env().await;
    let info = env
        .sim
        .account(env.account.address().as_ref())
        .expect("funded account");
    assert_eq!(env.account.account_number(), info.account_number);
    assert_eq!(env.account.account_number(), 1);
    assert_eq!(env.account.sequence_number(), 0);
    assert_eq!(env.client.latest_block_height().await.expect("height").0, 1);
    assert_eq!(env.sim.advance_blocks(3), 4);
    assert_eq!(env.client.latest_block_height().await.expect("height").0, 4);
    let block = env.client.latest_block().await.expect("block");
    let header = block.header.expect("header");
    assert_eq!(header.chain_id, "dydx-testnet-4");
    assert_eq!(
        header.time.expect("time").seconds,
        env.sim.block_time().timestamp()
    );
}

#[tokio::test]
async fn short_term_place_then_cancel_with_order_gtb() {
    let mut env = env().await;
    let height = env.client.latest_block_height().await.expect("height");
    let gtb = height.ahead(10);
    let (id, order) = short_order(&env.account, 1, gtb.0);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    let state = env.sim.order(&id).expect("order on book");
    assert_eq!(state.status, OrderStatus::Open);
    assert_eq!(state.good_til, GoodTil::Block(gtb.0));

    env.client
        .cancel_order(&mut env.account, id.clone(), gtb)
        .await
        .expect("cancel");
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::Canceled
    );
    // Short-term txs neither check nor bump the sequence.
    let info = env
        .sim
        .account(env.account.address().as_ref())
        .expect("account");
    assert_eq!(info.sequence, 0);
}

#[tokio::test]
async fn short_term_cancel_with_lower_gtb_leaves_order_live() {
    let mut env = env().await;
    let height = env.client.latest_block_height().await.expect("height");
    let (id, order) = short_order(&env.account, 2, height.0 + 10);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");

    let result = env
        .client
        .cancel_order(&mut env.account, id.clone(), height.ahead(5))
        .await;
    assert_eq!(code_of(&result), 0, "a lower cancel GTB is accepted");
    assert_eq!(env.sim.order(&id).expect("order").status, OrderStatus::Open);
    assert_eq!(env.sim.short_term_cancel(&id), Some(height.0 + 5));

    // Still live at GTB 6..9, expired once the height reaches its GTB.
    env.sim.advance_blocks(9);
    assert_eq!(env.sim.order(&id).expect("order").status, OrderStatus::Open);
    env.sim.advance_blocks(1);
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::Expired
    );
}

#[tokio::test]
async fn long_term_place_then_cancel() {
    let mut env = env().await;
    let gtbt = env.sim.block_time() + secs(3600);
    let (id, order) = long_order(&env.account, 10, gtbt);
    let hash = env
        .client
        .place_order(&mut env.account, order)
        .await
        .expect("place long-term");
    // Accepted by CheckTx; executed (and on the book) only once the next block is produced.
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::PlacePending
    );
    assert_eq!(env.sim.pending_txs(), vec![hash.clone()]);
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.order(&id).expect("order").status, OrderStatus::Open);
    assert_eq!(env.sim.tx_result(&hash).map(|r| r.code()), Some(0));

    // Wrong: cancel GTBT below the order's GTBT.
    let result = env
        .client
        .cancel_order(&mut env.account, id.clone(), gtbt - secs(1))
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 29));

    // Wrong kind: a block height for a stateful order.
    let height = env.client.latest_block_height().await.expect("height");
    let result = env
        .client
        .cancel_order(&mut env.account, id.clone(), height.ahead(5))
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 3001));

    // Right: the order's own GTBT.
    env.client
        .cancel_order(&mut env.account, id.clone(), gtbt)
        .await
        .expect("cancel long-term");
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::CancelPending
    );

    // Duplicate while uncommitted: clob/32 (not the sdk/32 sequence mismatch).
    let result = env
        .client
        .cancel_order(&mut env.account, id.clone(), gtbt)
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 32));

    env.sim.advance_blocks(1);
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::Canceled
    );
    let result = env
        .client
        .cancel_order(&mut env.account, id.clone(), gtbt)
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 3006));
}

#[tokio::test]
async fn batch_cancel_short_term_orders() {
    let mut env = env().await;
    let height = env.client.latest_block_height().await.expect("height");
    let gtb = height.0 + 10;
    let mut ids = Vec::new();
    for client_id in [21, 22, 23] {
        let (id, order) = short_order(&env.account, client_id, gtb);
        env.client
            .place_order(&mut env.account, order)
            .await
            .expect("place");
        ids.push(id);
    }
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let batch = OrderBatch {
        clob_pair_id: 0,
        client_ids: vec![21, 22, 23, 99],
    };
    env.client
        .batch_cancel_orders(
            &mut env.account,
            subaccount.clone(),
            vec![batch.clone()],
            Height(gtb),
        )
        .await
        .expect("batch cancel");
    for id in &ids {
        assert_eq!(
            env.sim.order(id).expect("order").status,
            OrderStatus::Canceled
        );
    }
    let last = env.sim.messages().pop().expect("logged");
    assert!(matches!(
        &last.kind,
        MsgKind::BatchCancel { batches, good_til_block, .. }
            if batches == &vec![(0, vec![21, 22, 23, 99])] && *good_til_block == gtb
    ));

    // Same batch again: every cancel already exists, so nothing succeeds.
    let result = env
        .client
        .batch_cancel_orders(&mut env.account, subaccount, vec![batch], Height(gtb))
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 46));
}

#[tokio::test]
async fn expiry_by_height_and_by_time() {
    let mut env = env().await;
    let height = env.sim.height();
    let (short_id, short) = short_order(&env.account, 30, height + 3);
    env.client
        .place_order(&mut env.account, short)
        .await
        .expect("place short");
    let start = env.sim.block_time();
    let gtbt = start + secs(60);
    let (long_id, long) = long_order(&env.account, 31, gtbt);
    env.client
        .place_order(&mut env.account, long)
        .await
        .expect("place long");

    env.sim.advance_blocks(2);
    assert_eq!(
        env.sim.order(&short_id).expect("o").status,
        OrderStatus::Open
    );
    env.sim.advance_blocks(1);
    assert_eq!(
        env.sim.order(&short_id).expect("o").status,
        OrderStatus::Expired
    );
    // A short-term cancel of an expired order is still accepted (recorded as a pre-cancel).
    let h = env.client.latest_block_height().await.expect("height");
    let result = env
        .client
        .cancel_order(&mut env.account, short_id, h.ahead(1))
        .await;
    assert_eq!(code_of(&result), 0);

    env.sim
        .set_block_time(gtbt - secs(1))
        .expect("set block time");
    env.sim.advance_blocks(1);
    assert_eq!(
        env.sim.order(&long_id).expect("o").status,
        OrderStatus::Open
    );
    env.sim.set_block_time(gtbt).expect("set block time");
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.block_time(), gtbt);
    assert_eq!(
        env.sim.order(&long_id).expect("o").status,
        OrderStatus::Expired
    );
    let result = env
        .client
        .cancel_order(&mut env.account, long_id, gtbt + secs(10))
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 3006));
}

#[tokio::test]
async fn fills_partial_and_full() {
    let mut env = env().await;
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 40, gtbt);
    let quantums = order.quantums;
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    // A stateful order can fill once a block has put it on the book.
    env.sim.advance_blocks(1);
    let state = env
        .sim
        .fill(&id, Fill::Quantums(quantums / 4))
        .expect("fill");
    assert_eq!(state.status, OrderStatus::Open);
    assert_eq!(state.filled_quantums, quantums / 4);
    let state = env.sim.fill(&id, Fill::Full).expect("fill rest");
    assert_eq!(state.status, OrderStatus::Filled);
    assert_eq!(state.filled_quantums, quantums);
    let result = env.client.cancel_order(&mut env.account, id, gtbt).await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 3006));

    // A fully filled short-term id cannot be placed again before its GTB passes.
    let h = env.sim.height();
    let (sid, short) = short_order(&env.account, 41, h + 5);
    env.client
        .place_order(&mut env.account, short.clone())
        .await
        .expect("place short");
    env.sim.fill(&sid, Fill::Full).expect("fill short");
    let (_, again) = short_order(&env.account, 41, h + 6);
    let result = env.client.place_order(&mut env.account, again).await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 24));
    // A short-term cancel of a filled order still says OK: it never reports "not found".
    let result = env
        .client
        .cancel_order(&mut env.account, sid, Height(h + 5))
        .await;
    assert_eq!(code_of(&result), 0);
}

#[tokio::test]
async fn sequence_mismatch_then_resync() {
    let mut env = env().await;
    let address = env.account.address().to_string();
    // A client that does not query the sequence itself.
    let mut config = node_config(&env.sim, ChainId::Testnet4);
    config.manage_sequencing = false;
    let mut client = NodeClient::connect(config).await.expect("connect");

    let gtbt = env.sim.block_time() + secs(600);
    let (_, order) = long_order(&env.account, 50, gtbt);
    env.account.set_next_nonce(Nonce::Sequence(5));
    let result = client.place_order(&mut env.account, order.clone()).await;
    assert_eq!(outcome(&env.sim, &result), ("sdk".to_owned(), 32));
    let last = env.sim.messages().pop().expect("logged");
    assert!(
        last.result
            .as_ref()
            .expect_err("rejected")
            .log
            .contains("expected 0, got 5")
    );
    assert_eq!(env.sim.account(&address).expect("account").sequence, 0);

    // Re-sync from the node and retry once.
    let (_, seq) = client
        .query_address(env.account.address())
        .await
        .expect("query");
    env.account.set_next_nonce(Nonce::Sequence(seq));
    client
        .place_order(&mut env.account, order)
        .await
        .expect("retry with synced sequence");
    // Admitted by the CheckTx copy; committed (and queried) once a block includes it.
    let info = env.sim.account(&address).expect("account");
    assert_eq!((info.sequence, info.check_tx_sequence), (0, 1));
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.account(&address).expect("account").sequence, 1);
}

#[tokio::test]
async fn rate_limit_short_term_and_stateful() {
    let mut env = env_with(SimConfig::default().with_rate_limits(RateLimits {
        short_term: vec![RateLimit {
            num_blocks: 2,
            limit: 3,
        }],
        stateful: vec![RateLimit {
            num_blocks: 1,
            limit: 2,
        }],
    }))
    .await;
    let h = env.sim.height();
    for client_id in 60..63 {
        let (_, order) = short_order(&env.account, client_id, h + 10);
        env.client
            .place_order(&mut env.account, order)
            .await
            .expect("within budget");
    }
    let (_, order) = short_order(&env.account, 63, h + 10);
    let result = env
        .client
        .place_order(&mut env.account, order.clone())
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 5001));
    // The window covers 2 blocks and rejected requests count too.
    env.sim.advance_blocks(1);
    let result = env
        .client
        .place_order(&mut env.account, order.clone())
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 5001));
    env.sim.advance_blocks(1);
    let result = env.client.place_order(&mut env.account, order).await;
    assert_eq!(code_of(&result), 0);

    // Stateful: 2 per block.
    let gtbt = env.sim.block_time() + secs(600);
    for client_id in 70..72 {
        let (_, order) = long_order(&env.account, client_id, gtbt);
        env.client
            .place_order(&mut env.account, order)
            .await
            .expect("within stateful budget");
    }
    let (_, order) = long_order(&env.account, 72, gtbt);
    let result = env
        .client
        .place_order(&mut env.account, order.clone())
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 5001));
    env.sim.advance_blocks(1);
    let result = env.client.place_order(&mut env.account, order).await;
    assert_eq!(code_of(&result), 0);
}

#[tokio::test]
async fn reject_next_placement_and_message_log() {
    let mut env = env().await;
    env.sim
        .reject_next_placement(ChainError::new("clob", 3007, "collateral check"));
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 80, gtbt);
    let result = env
        .client
        .place_order(&mut env.account, order.clone())
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 3007));
    assert!(env.sim.order(&id).is_none());
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("next placement passes");

    let messages = env.sim.messages();
    assert_eq!(messages.len(), 2);
    let first = &messages[0];
    assert_eq!(
        first.signer.as_deref(),
        Some(env.account.address().as_ref())
    );
    assert_eq!(first.kind.order_id(), Some(&id));
    assert!(matches!(
        first.kind,
        MsgKind::PlaceOrder { good_til: Some(GoodTil::BlockTime(t)), .. } if i64::from(t) == gtbt.timestamp()
    ));
    assert_eq!((first.codespace(), first.code()), ("clob", 3007));
    assert_eq!((messages[1].codespace(), messages[1].code()), ("", 0));
    // The removed order can no longer be cancelled.
    env.sim.advance_blocks(1);
    env.sim.remove_order(&id).expect("remove");
    let result = env.client.cancel_order(&mut env.account, id, gtbt).await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 3006));
}

#[tokio::test]
async fn wrong_chain_id_is_rejected() {
    let env = env().await;
    let mut mainnet = NodeClient::connect(node_config(&env.sim, ChainId::Mainnet1))
        .await
        .expect("connect");
    let mut account = env.wallet.account(0, &mut mainnet).await.expect("account");
    let h = env.sim.height();
    let (id, order) = short_order(&account, 90, h + 5);
    let result = mainnet.place_order(&mut account, order).await;
    assert_eq!(outcome(&env.sim, &result), ("sdk".to_owned(), 4));
    assert!(env.sim.order(&id).is_none());
}

#[tokio::test]
async fn tampered_and_garbage_txs_are_rejected_and_server_keeps_serving() {
    let mut env = env().await;
    let h = env.sim.height();
    let (id, order) = short_order(&env.account, 91, h + 5);
    env.account.set_next_nonce(Nonce::Sequence(0));
    let raw = env
        .client
        .builder
        .build_transaction(
            &env.account,
            std::iter::once(MsgPlaceOrder { order: Some(order) }.to_any()),
            None,
            None,
        )
        .expect("build tx");
    let bytes = raw.to_bytes().expect("tx bytes");
    let mut tampered = TxRaw::decode(bytes.as_slice()).expect("decode");
    tampered.signatures[0][10] ^= 0x01;

    let cases: Vec<(&str, Vec<u8>, &str, u32)> = vec![
        ("tampered signature", tampered.encode_to_vec(), "sdk", 4),
        (
            "garbage bytes",
            vec![0xff, 0x13, 0x37, 0x00, 0x42],
            "sdk",
            2,
        ),
        (
            "garbage body",
            TxRaw {
                body_bytes: vec![0x0a, 0xff, 0xff],
                auth_info_bytes: vec![],
                signatures: vec![vec![0; 64]],
            }
            .encode_to_vec(),
            "sdk",
            2,
        ),
    ];
    for (name, tx_bytes, codespace, code) in cases {
        // Straight to the gRPC service: the full TxResponse, codespace included.
        let response = env
            .client
            .tx
            .broadcast_tx(BroadcastTxRequest {
                tx_bytes,
                mode: BroadcastMode::Sync.into(),
            })
            .await
            .expect("rpc succeeds")
            .into_inner()
            .tx_response
            .expect("tx response");
        assert_eq!(
            (response.codespace.as_str(), response.code),
            (codespace, code),
            "{name}: {}",
            response.raw_log
        );
    }
    assert!(env.sim.order(&id).is_none());

    // Still serving, and the untampered tx is accepted.
    assert_eq!(env.client.latest_block_height().await.expect("height").0, h);
    let response = env
        .client
        .tx
        .broadcast_tx(BroadcastTxRequest {
            tx_bytes: bytes,
            mode: BroadcastMode::Sync.into(),
        })
        .await
        .expect("rpc")
        .into_inner()
        .tx_response
        .expect("tx response");
    assert_eq!(response.code, 0, "{}", response.raw_log);
    assert_eq!(env.sim.order(&id).expect("order").status, OrderStatus::Open);
    // A short-term tx never goes into a block: a node never finds it by hash.
    env.sim.advance_blocks(1);
    assert_eq!(
        get_tx(&mut env.client, &response.txhash).await.err(),
        Some(tonic::Code::NotFound)
    );
}

#[tokio::test]
async fn unknown_account_and_foreign_key_are_rejected() {
    init_crypto();
    let sim = SimNode::start(SimConfig::default().with_mnemonic(MNEMONIC, 1))
        .await
        .expect("start");
    let mut client = NodeClient::connect(node_config(&sim, ChainId::Testnet4))
        .await
        .expect("connect");
    let wallet = dydx::node::Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    // Account 1 is not funded: the query fails like on chain (NotFound).
    assert!(wallet.account(1, &mut client).await.is_err());
    let mut stranger = wallet.account_offline(1).expect("offline account");
    let (_, order) = short_order(&stranger, 1, sim.height() + 5);
    let result = client.place_order(&mut stranger, order).await;
    assert_eq!(outcome(&sim, &result), ("sdk".to_owned(), 9));

    // Account 0 signing an order for account 1's subaccount: the key does not match the owner.
    sim.add_account(stranger.address().as_ref()).expect("add");
    let mut owner = wallet.account(0, &mut client).await.expect("account 0");
    // On this path the client does not set a nonce itself.
    owner.set_next_nonce(Nonce::Sequence(0));
    let (_, order) = OrderBuilder::new(market(), stranger.subaccount(0).expect("sub"))
        .limit(
            OrderSide::Sell,
            50_000,
            "0.01".parse::<dydx::indexer::Quantity>().expect("q"),
        )
        .until(Height(sim.height() + 5))
        .build(2u32)
        .expect("build");
    let result = client.place_order(&mut owner, order).await;
    // The client treats it as a permissioned-key order but, with no authenticator, signs with
    // account 0's own key: that key does not hash to the owner address.
    assert_eq!(outcome(&sim, &result), ("sdk".to_owned(), 8));
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    init_crypto();
    let sim = SimNode::start(SimConfig::default()).await.expect("start");
    let endpoint = sim.endpoint();
    sim.shutdown().await.expect("shutdown");
    let config = NodeConfig {
        timeout: 2_000,
        ..ordermeta_dydx_sim::fixtures::node_config(endpoint)
    };
    assert!(NodeClient::connect(config).await.is_err());
}
