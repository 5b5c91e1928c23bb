//! Replay protection as the chain keeps it (`app/ante/replay_protection.go`,
//! `x/accountplus/keeper/timestampnonce.go`): sequences checked against the CheckTx copy and
//! served from committed state, timestamp nonces, short-term txs exempt. Driven by the
//! unmodified `dydx` client over real gRPC.

mod common;

use std::sync::Arc;

use common::*;
use dydx::node::sequencer::{Nonce, TimestamperSequencer};
use dydx::node::{Account, NodeClient, Wallet};
use ordermeta_dydx_sim::{
    BlockClock, MAX_TIMESTAMP_NONCES, RateLimits, SimConfig, SimHandle, TIMESTAMP_NONCE_MAX_SKEW_MS,
};

fn unlimited() -> SimConfig {
    SimConfig::default().with_rate_limits(RateLimits::unlimited())
}

/// Places long-term order `client_id` signed with exactly `nonce`; returns `(codespace, code)`.
async fn place_with(
    sim: &SimHandle,
    client: &mut NodeClient,
    account: &mut Account,
    client_id: u32,
    nonce: Nonce,
) -> (String, u32) {
    let (_, order) = long_order(account, client_id, sim.block_time() + secs(3600));
    account.set_next_nonce(nonce);
    let result = client.place_order(account, order).await;
    outcome(sim, &result)
}

fn ok() -> (String, u32) {
    (String::new(), 0)
}

fn wrong_sequence() -> (String, u32) {
    ("sdk".to_owned(), 32)
}

#[tokio::test]
async fn sequences_are_admitted_by_check_tx_and_queried_from_committed_state() {
    let mut env = env_with(unlimited()).await;
    let address = env.account.address().clone();
    let mut client = manual_client(&env.sim).await;
    let account = &mut env.account;

    assert_eq!(
        place_with(&env.sim, &mut client, account, 1, Nonce::Sequence(0)).await,
        ok()
    );
    // The node's query serves committed state: still 0 until a block includes the tx.
    assert_eq!(client.query_address(&address).await.expect("query").1, 0);
    let info = env.sim.account(address.as_ref()).expect("account");
    assert_eq!((info.sequence, info.check_tx_sequence), (0, 1));

    // A second stateful tx with the same sequence before the block: refused.
    assert_eq!(
        place_with(&env.sim, &mut client, account, 2, Nonce::Sequence(0)).await,
        wrong_sequence()
    );
    let last = env.sim.messages().pop().expect("logged");
    let log = &last.result.as_ref().expect_err("refused").log;
    assert!(log.contains("expected 1, got 0"), "{log}");
    // The next one is admitted by the CheckTx copy.
    assert_eq!(
        place_with(&env.sim, &mut client, account, 2, Nonce::Sequence(1)).await,
        ok()
    );

    // A process re-reading its sequence from the node (the client's default sequencer) gets
    // the committed 0 and collides until the next block.
    let mut querying = NodeClient::connect(node_config(&env.sim, dydx::node::ChainId::Testnet4))
        .await
        .expect("connect");
    let (_, order) = long_order(account, 3, env.sim.block_time() + secs(3600));
    let result = querying.place_order(account, order.clone()).await;
    assert_eq!(outcome(&env.sim, &result), wrong_sequence());

    env.sim.advance_blocks(1);
    assert_eq!(client.query_address(&address).await.expect("query").1, 2);
    let info = env.sim.account(address.as_ref()).expect("account");
    assert_eq!((info.sequence, info.check_tx_sequence), (2, 2));
    let result = querying.place_order(account, order).await;
    assert_eq!(
        outcome(&env.sim, &result),
        ok(),
        "re-synced after the block"
    );

    // Short-term txs skip sequence validation: any value is fine, and nothing is consumed.
    let (_, short) = short_order(account, 4, env.sim.height() + 5);
    account.set_next_nonce(Nonce::Sequence(999));
    let result = client.place_order(account, short).await;
    assert_eq!(outcome(&env.sim, &result), ok());
    assert_eq!(
        env.sim
            .account(address.as_ref())
            .expect("account")
            .check_tx_sequence,
        3
    );
}

#[tokio::test]
async fn timestamp_nonces_follow_the_accountplus_rules() {
    let mut env = env_with(unlimited()).await;
    let address = env.account.address().to_string();
    let mut client = manual_client(&env.sim).await;
    let account = &mut env.account;
    let now = block_ms(&env.sim);
    let skew = TIMESTAMP_NONCE_MAX_SKEW_MS;
    let mut cid = 0;
    let mut place = async |nonce: u64| {
        cid += 1;
        place_with(&env.sim, &mut client, account, cid, Nonce::Timestamp(nonce)).await
    };

    assert_eq!(place(now).await, ok(), "the block time itself");
    assert_eq!(place(now).await, wrong_sequence(), "reused");
    assert_eq!(
        place(now + skew + 1).await,
        wrong_sequence(),
        "> 30 s ahead"
    );
    assert_eq!(
        place(now - skew - 1).await,
        wrong_sequence(),
        "> 30 s behind"
    );
    assert_eq!(place(now + skew).await, ok(), "30 s ahead");
    assert_eq!(place(now - skew).await, ok(), "30 s behind");
    let info = env.sim.account(&address).expect("account");
    assert_eq!(info.check_tx_sequence, 0, "nonces never bump the sequence");
    assert!(
        info.timestamp_nonces.is_empty(),
        "committed only by a block"
    );

    // Fill the 20 kept nonces. Once 20 are kept, a larger nonce replaces the smallest, which
    // becomes the floor; one below every kept nonce is refused, and so is the floor itself.
    for i in 1..=(MAX_TIMESTAMP_NONCES as u64 - 3) {
        assert_eq!(place(now + i).await, ok(), "nonce {i}");
    }
    assert_eq!(place(now + 100).await, ok(), "replaces the smallest kept");
    assert_eq!(
        place(now - skew + 5).await,
        wrong_sequence(),
        "older than every kept nonce once 20 are kept"
    );
    assert_eq!(
        place(now - skew).await,
        wrong_sequence(),
        "at the floor (ejected from the kept list)"
    );

    // The block executes them again at its own time; at the same time, with the same results.
    env.sim
        .set_block_time(env.sim.block_time())
        .expect("same block time");
    env.sim.advance_blocks(1);
    let info = env.sim.account(&address).expect("account");
    assert_eq!(info.timestamp_nonces.len(), MAX_TIMESTAMP_NONCES);
    assert_eq!(info.max_ejected_nonce, Some(now - skew));
    assert_eq!(info.sequence, 0);
    assert_eq!(
        env.sim.open_orders().len(),
        MAX_TIMESTAMP_NONCES + 1,
        "every accepted place was executed (one nonce was replaced in the kept list)"
    );
}

/// Four signers (tasks with their own connection and `Account`) for one account, each with its
/// own distinct millisecond nonces, all accepted; with plain sequences read from the node the
/// same four collide and only one gets through.
#[tokio::test]
async fn four_signers_share_one_account_with_timestamp_nonces() {
    let env = env_with(unlimited()).await;
    let sim = Arc::new(env.sim);
    let wallet = Arc::new(Wallet::from_mnemonic(MNEMONIC).expect("wallet"));
    let base = block_ms(&sim);
    let per_signer = MAX_TIMESTAMP_NONCES as u32 / 4;

    let tasks: Vec<_> = (0..4u32)
        .map(|signer| {
            let sim = sim.clone();
            let wallet = wallet.clone();
            tokio::spawn(async move {
                let mut client = manual_client(&sim).await;
                let mut account = wallet.account(0, &mut client).await.expect("account");
                let mut codes = Vec::new();
                for i in 0..per_signer {
                    let cid = 100 + signer * 10 + i;
                    let (_, order) = long_order(&account, cid, sim.block_time() + secs(3600));
                    account.set_next_nonce(Nonce::Timestamp(base + u64::from(signer * 10 + i)));
                    codes.push(code_of(&client.place_order(&mut account, order).await));
                }
                codes
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("join"), vec![0; per_signer as usize]);
    }
    sim.advance_blocks(1);
    assert_eq!(sim.open_orders().len(), 4 * per_signer as usize);

    // The same with the client's default sequencer (sequence read from the node): all four
    // read the committed sequence and sign the same number.
    let tasks: Vec<_> = (0..4u32)
        .map(|signer| {
            let sim = sim.clone();
            let wallet = wallet.clone();
            tokio::spawn(async move {
                let mut client =
                    NodeClient::connect(node_config(&sim, dydx::node::ChainId::Testnet4))
                        .await
                        .expect("connect");
                let mut account = wallet.account(0, &mut client).await.expect("account");
                let (_, order) = long_order(&account, 200 + signer, sim.block_time() + secs(3600));
                code_of(&client.place_order(&mut account, order).await)
            })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.expect("join"));
    }
    codes.sort_unstable();
    assert_eq!(codes, vec![0, 32, 32, 32], "one wins, three collide");
}

/// With block times from the wall clock (as on a real chain), the `dydx` crate's own
/// `TimestamperSequencer` (unix ms of the local clock) signs accepted stateful txs.
#[tokio::test]
async fn wall_clock_blocks_accept_the_clients_timestamp_sequencer() {
    let mut env = env_with(SimConfig::default().with_block_clock(BlockClock::WallClock)).await;
    let mut client = NodeClient::connect(node_config(&env.sim, dydx::node::ChainId::Testnet4))
        .await
        .expect("connect");
    client.with_sequencer(TimestamperSequencer);
    let genesis = env.sim.block_time();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    env.sim.advance_blocks(1);
    assert!(env.sim.block_time() > genesis);
    assert!((chrono::Utc::now() - env.sim.block_time()) < secs(1));

    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 1, gtbt);
    let hash = client
        .place_order(&mut env.account, order)
        .await
        .expect("accepted");
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.tx_result(&hash).map(|r| r.code()), Some(0));
    assert!(env.sim.order(&id).expect("order").status.is_live());
    let nonces = env
        .sim
        .account(env.account.address().as_ref())
        .expect("account")
        .timestamp_nonces;
    assert_eq!(nonces.len(), 1);
}
