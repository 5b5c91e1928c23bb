//! Stateful txs after CheckTx: executed by the next block, where they can still fail
//! (`x/clob/keeper/msg_server_place_order.go`, `x/clob/keeper/msg_server_cancel_orders.go`),
//! with the result queryable by hash (`cosmos.tx.v1beta1.Service/GetTx`) as on a node.

mod common;

use common::*;
use dydx::node::sequencer::Nonce;
use ordermeta_dydx_sim::{ChainError, Fill, OrderStatus, TIMESTAMP_NONCE_MAX_SKEW_MS};

/// `(codespace, code, raw_log, height)` of a tx found by `GetTx`.
async fn tx_outcome(env: &mut Env, hash: &str) -> (String, u32, String, i64) {
    let response = get_tx(&mut env.client, hash)
        .await
        .unwrap_or_else(|code| panic!("GetTx {hash}: {code:?}"));
    let r = response.tx_response.expect("tx response");
    assert_eq!(r.txhash, hash.to_ascii_uppercase());
    assert_eq!(
        response.tx.expect("tx").body.expect("body").messages.len(),
        1
    );
    (r.codespace, r.code, r.raw_log, r.height)
}

#[tokio::test]
async fn a_stateful_place_is_executed_by_the_next_block_and_found_by_hash() {
    let mut env = env().await;
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 1, gtbt);
    let hash = env
        .client
        .place_order(&mut env.account, order)
        .await
        .expect("CheckTx accepts");
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::PlacePending
    );
    assert_eq!(
        get_tx(&mut env.client, &hash).await.err(),
        Some(tonic::Code::NotFound),
        "not in a block yet"
    );
    let height = env.sim.advance_blocks(1);
    assert_eq!(env.sim.order(&id).expect("order").status, OrderStatus::Open);
    assert_eq!(
        tx_outcome(&mut env, &hash).await,
        (String::new(), 0, String::new(), i64::from(height))
    );
    // The client's own lookup finds it too.
    let tx = env.client.query_transaction(&hash).await.expect("found");
    assert_eq!(tx.body.messages.len(), 1);
    let last = env.sim.messages().pop().expect("logged");
    assert_eq!(last.final_result(), Some(&Ok(())));
    assert_eq!(last.delivered.map(|d| d.height), Some(height));

    // A short-term tx is never in a block.
    let (_, short) = short_order(&env.account, 2, env.sim.height() + 5);
    let short_hash = env
        .client
        .place_order(&mut env.account, short)
        .await
        .expect("short-term");
    env.sim.advance_blocks(1);
    assert_eq!(
        get_tx(&mut env.client, &short_hash).await.err(),
        Some(tonic::Code::NotFound)
    );
    assert!(env.sim.tx_result(&short_hash).is_none());
}

#[tokio::test]
async fn a_place_fails_at_block_execution_on_command() {
    let mut env = env().await;
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 3, gtbt);
    env.sim.fail_next_block_execution(ChainError::new(
        "clob",
        3007,
        "PlaceStatefulOrder: collateral check",
    ));
    let hash = env
        .client
        .place_order(&mut env.account, order)
        .await
        .expect("CheckTx accepts");
    let last = env.sim.messages().pop().expect("logged");
    assert_eq!(last.final_result(), None, "waiting for its block");
    let height = env.sim.advance_blocks(1);
    let (codespace, code, log, at) = tx_outcome(&mut env, &hash).await;
    assert_eq!(
        (codespace.as_str(), code, at),
        ("clob", 3007, i64::from(height))
    );
    assert!(
        log.starts_with("failed to execute message; message index: 0:"),
        "{log}"
    );
    assert!(env.sim.order(&id).is_none(), "no order was written");
    let last = env.sim.messages().pop().expect("logged");
    assert_eq!((last.codespace(), last.code()), ("", 0), "CheckTx said OK");
    assert_eq!(
        last.final_result()
            .and_then(|r| r.as_ref().err())
            .map(|e| e.code),
        Some(3007)
    );
    // The id is free again.
    let (_, order) = long_order(&env.account, 3, gtbt);
    let hash = env
        .client
        .place_order(&mut env.account, order)
        .await
        .expect("placed again");
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.tx_result(&hash).map(|r| r.code()), Some(0));
}

#[tokio::test]
async fn a_cancel_fails_at_block_execution_on_command_and_the_order_stays_live() {
    let mut env = env().await;
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 4, gtbt);
    let (other_id, other) = long_order(&env.account, 5, gtbt);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    env.client
        .place_order(&mut env.account, other)
        .await
        .expect("place");
    env.sim.advance_blocks(1);

    env.sim
        .fail_block_execution_of(&id, ChainError::new("clob", 3006, "forced by the test"));
    // The hook is for `id` only: the other cancel, executed first, succeeds.
    let other_hash = env
        .client
        .cancel_order(&mut env.account, other_id.clone(), gtbt)
        .await
        .expect("cancel other");
    let hash = env
        .client
        .cancel_order(&mut env.account, id.clone(), gtbt)
        .await
        .expect("CheckTx accepts");
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::CancelPending
    );
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.tx_result(&other_hash).map(|r| r.code()), Some(0));
    let (codespace, code, _, _) = tx_outcome(&mut env, &hash).await;
    assert_eq!((codespace.as_str(), code), ("clob", 3006));
    assert_eq!(env.sim.order(&id).expect("order").status, OrderStatus::Open);
    assert_eq!(
        env.sim.order(&other_id).expect("order").status,
        OrderStatus::Canceled
    );
    // Cancelling again works.
    let hash = env
        .client
        .cancel_order(&mut env.account, id.clone(), gtbt)
        .await
        .expect("cancel again");
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.tx_result(&hash).map(|r| r.code()), Some(0));
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::Canceled
    );
}

#[tokio::test]
async fn a_cancel_fails_at_block_execution_when_the_order_fills_first() {
    let mut env = env().await;
    let gtbt = env.sim.block_time() + secs(600);
    let (filled, order) = long_order(&env.account, 6, gtbt);
    let (partly, other) = long_order(&env.account, 7, gtbt);
    let (removed, third) = long_order(&env.account, 8, gtbt);
    for o in [order, other, third] {
        env.client
            .place_order(&mut env.account, o)
            .await
            .expect("place");
        // Stateful placements: 2 per block by default.
        env.sim.advance_blocks(1);
    }
    let mut hashes = Vec::new();
    for id in [&filled, &partly, &removed] {
        hashes.push(
            env.client
                .cancel_order(&mut env.account, id.clone(), gtbt)
                .await
                .expect("CheckTx accepts"),
        );
    }
    // Between CheckTx and the block: one fills, one fills partly, one is removed.
    let quantums = env.sim.order(&partly).expect("order").quantums;
    env.sim.fill(&filled, Fill::Full).expect("fill");
    env.sim
        .fill(&partly, Fill::Quantums(quantums / 2))
        .expect("partial fill");
    env.sim.remove_order(&removed).expect("remove");
    env.sim.advance_blocks(1);

    let (codespace, code, log, _) = tx_outcome(&mut env, &hashes[0]).await;
    assert_eq!((codespace.as_str(), code), ("clob", 3010), "{log}");
    assert_eq!(
        env.sim.order(&filled).expect("order").status,
        OrderStatus::Filled
    );
    assert_eq!(env.sim.tx_result(&hashes[1]).map(|r| r.code()), Some(0));
    assert_eq!(
        env.sim.order(&partly).expect("order").status,
        OrderStatus::Canceled
    );
    assert_eq!(
        env.sim
            .tx_result(&hashes[2])
            .map(|r| (r.codespace().to_owned(), r.code())),
        Some(("clob".to_owned(), 3010))
    );
    // A cancel sent after that block sees the order gone at CheckTx already.
    let result = env
        .client
        .cancel_order(&mut env.account, filled, gtbt)
        .await;
    assert_eq!(outcome(&env.sim, &result), ("clob".to_owned(), 3006));
}

#[tokio::test]
async fn a_timestamp_nonce_can_fall_out_of_the_window_at_block_time() {
    let mut env = env().await;
    let mut client = manual_client(&env.sim).await;
    let now = block_ms(&env.sim);
    let (id, order) = long_order(&env.account, 9, env.sim.block_time() + secs(600));
    // 29 s behind the latest block: accepted by CheckTx...
    env.account
        .set_next_nonce(Nonce::Timestamp(now - TIMESTAMP_NONCE_MAX_SKEW_MS + 1_000));
    let hash = client
        .place_order(&mut env.account, order)
        .await
        .expect("CheckTx accepts");
    // ...but the next block comes 5 s later: 34 s behind, so its execution fails in the ante.
    env.sim
        .set_block_time(env.sim.block_time() + secs(5))
        .expect("block time");
    env.sim.advance_blocks(1);
    let (codespace, code, log, _) = tx_outcome(&mut env, &hash).await;
    assert_eq!((codespace.as_str(), code), ("sdk", 32), "{log}");
    assert!(log.contains("not within valid time window"), "{log}");
    assert!(env.sim.order(&id).is_none());
}

#[tokio::test]
async fn place_and_cancel_in_one_block_and_a_place_after_its_cancel() {
    let mut env = env().await;
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 10, gtbt);
    let place = env
        .client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    // A cancel of an uncommitted placement is accepted by CheckTx.
    let cancel = env
        .client
        .cancel_order(&mut env.account, id.clone(), gtbt)
        .await
        .expect("cancel");
    assert_eq!(env.sim.pending_txs(), vec![place.clone(), cancel.clone()]);
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.tx_result(&place).map(|r| r.code()), Some(0));
    assert_eq!(env.sim.tx_result(&cancel).map(|r| r.code()), Some(0));
    assert_eq!(
        env.sim.order(&id).expect("order").status,
        OrderStatus::Canceled
    );
    assert!(env.sim.pending_txs().is_empty());
}
