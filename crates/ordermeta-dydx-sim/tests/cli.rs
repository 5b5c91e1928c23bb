//! The binary from a second terminal: a spawned `ordermeta-dydx-sim serve`, driven by the
//! unmodified `dydx` client, inspected and filled through the binary's own subcommands.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use common::{MNEMONIC, indexer_id, init_crypto, long_order, short_order};
use dydx::indexer::{Height, IndexerClient, OrderId as IndexerOrderId};
use dydx::node::{NodeClient, Wallet};
use ordermeta_dydx_sim::fixtures;
use predicates::prelude::*;

/// A spawned simulator, killed when dropped.
struct Served {
    child: Child,
    endpoint: String,
    indexer: String,
    ws: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on free ports with manual blocks and reads the URLs it prints.
fn serve() -> Served {
    let mut child = Command::new(cargo_bin!("ordermeta-dydx-sim"))
        .args([
            "serve",
            "--port",
            "0",
            "--indexer-port",
            "0",
            "--accounts",
            "2",
            "--block-ms",
            "0",
            "--block-clock",
            "step",
        ])
        .env("DYDX_SIM_MNEMONIC", MNEMONIC)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the simulator");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut served = Served {
        child,
        endpoint: String::new(),
        indexer: String::new(),
        ws: String::new(),
    };
    while served.endpoint.is_empty() || served.indexer.is_empty() || served.ws.is_empty() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the simulator prints its URLs");
        if let Some((key, value)) = line.split_once('=') {
            match key {
                "endpoint" => served.endpoint = value.to_owned(),
                "indexer" => served.indexer = value.to_owned(),
                "indexer_ws" => served.ws = value.to_owned(),
                _ => {}
            }
        }
    }
    served
}

/// `ordermeta-dydx-sim <args> --url <indexer>`.
fn sub(served: &Served, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(cargo_bin!("ordermeta-dydx-sim"));
    cmd.args(args)
        .args(["--url", &served.indexer])
        .timeout(Duration::from_secs(30));
    cmd
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    let output = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(output).expect("utf-8")
}

#[tokio::test]
async fn subcommands_show_and_fill_what_a_running_simulator_holds() {
    init_crypto();
    let served = serve();
    let mut client = NodeClient::connect(fixtures::node_config(served.endpoint.clone()))
        .await
        .expect("connect");
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let mut account = wallet.account(0, &mut client).await.expect("account 0");
    let second = wallet.account_offline(1).expect("account 1");
    let owner = account.address().to_string();

    let status = stdout_of(&mut sub(&served, &["status"]));
    assert!(
        status.contains("chain_id=dydx-testnet-4 height=1 "),
        "{status}"
    );

    let (short_id, short) = short_order(&account, 7, 11);
    let hash = client
        .place_order(&mut account, short)
        .await
        .expect("place short-term");
    let (long_id, long) = long_order(
        &account,
        8,
        chrono::Utc::now() + chrono::TimeDelta::hours(1),
    );
    client
        .place_order(&mut account, long)
        .await
        .expect("place long-term");

    // The orders with their full OrderId, good-til and status.
    let orders = stdout_of(&mut sub(&served, &["orders"]));
    let short_line = format!(
        "order={owner}/0/7/0/0 owner={owner} subaccount=0 client_id=7 clob_pair=0 flags=0 good_til=block:11 status=open side=buy quantums=100000000 filled=0"
    );
    assert!(orders.contains(&short_line), "{orders}");
    assert!(orders.contains(&format!("indexer_id={}", indexer_id(&short_id))));
    assert!(
        orders.contains(&format!("order={owner}/0/8/0/64 ")),
        "{orders}"
    );
    assert!(orders.contains("status=place_pending"), "{orders}");

    let accounts = stdout_of(&mut sub(&served, &["accounts"]));
    assert!(
        accounts.contains(&format!("address={owner} account_number=1 ")),
        "{accounts}"
    );
    assert!(
        accounts.contains(&format!("address={} account_number=2 ", second.address())),
        "{accounts}"
    );

    let txs = stdout_of(&mut sub(&served, &["txs"]));
    assert!(
        txs.contains(&format!(
            "hash={hash} kind=place order={owner}/0/7/0/0 height=1 code=0 codespace=- included_height=- delivered_code=-"
        )),
        "{txs}"
    );

    // A block executes the long-term place; `txs` shows where.
    let blocks = stdout_of(&mut sub(&served, &["blocks", "1"]));
    assert!(blocks.contains("height=2 "), "{blocks}");
    let txs = stdout_of(&mut sub(&served, &["txs", "--limit", "1"]));
    assert!(
        txs.contains("kind=place") && txs.contains("included_height=2 delivered_code=0"),
        "{txs}"
    );

    // Fill by selector (part), then by indexer id (the rest).
    let part = stdout_of(&mut sub(
        &served,
        &["fill", &format!("{owner}/0/7/0/0"), "40000000"],
    ));
    assert!(
        part.contains("status=open") && part.contains("filled=40000000"),
        "{part}"
    );
    let rest = stdout_of(&mut sub(&served, &["fill", &indexer_id(&short_id)]));
    assert!(
        rest.contains("status=filled") && rest.contains("filled=100000000"),
        "{rest}"
    );
    let live = stdout_of(&mut sub(&served, &["orders"]));
    assert!(
        !live.contains("client_id=7 "),
        "a filled order is not live: {live}"
    );
    let all = stdout_of(&mut sub(&served, &["orders", "--all"]));
    assert!(
        all.contains("client_id=7 ") && all.contains("status=filled"),
        "{all}"
    );

    // The fills reach the indexer with the next block.
    stdout_of(&mut sub(&served, &["blocks"]));
    let indexer = IndexerClient::new(fixtures::indexer_config(
        served.indexer.clone(),
        served.ws.clone(),
    ));
    let order = indexer
        .accounts()
        .get_order(&IndexerOrderId(indexer_id(&short_id)))
        .await
        .expect("order at the indexer");
    assert_eq!(order.total_filled.to_string(), "0.01");
    assert_eq!(order.good_til_block, Some(Height(11)));
    let long = indexer
        .accounts()
        .get_order(&IndexerOrderId(indexer_id(&long_id)))
        .await
        .expect("long-term order at the indexer");
    assert_eq!(long.created_at_height, Some(Height(2)));

    // Errors say what went wrong.
    sub(&served, &["fill", &format!("{owner}/0/99/0/0")])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no order"));
    sub(&served, &["fill", &format!("{owner}/0/7/0/0")])
        .assert()
        .failure()
        .stderr(predicate::str::contains("409").and(predicate::str::contains("Filled")));
    assert_cmd::Command::new(cargo_bin!("ordermeta-dydx-sim"))
        .args(["orders", "--url", "http://127.0.0.1:9"])
        .timeout(Duration::from_secs(30))
        .assert()
        .failure()
        .stderr(predicate::str::contains("is the simulator running"));
}

#[test]
fn json_output_is_the_admin_api() {
    let served = serve();
    let output = stdout_of(&mut sub(&served, &["accounts", "--json"]));
    let accounts: Vec<ordermeta_dydx_sim::admin::AccountView> =
        serde_json::from_str(&output).expect("JSON");
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0].account_number, 1);
    assert!(accounts.iter().all(|a| a.pubkey_known));
}
