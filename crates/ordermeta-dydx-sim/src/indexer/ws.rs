//! The websocket feed (`GET /v4/ws`), as socks serves it (`services/socks/src/websocket/
//! index.ts`, `lib/subscription.ts`, `lib/message-forwarder.ts`, `helpers/message.ts`):
//!
//! - on connect: `{"type":"connected","connection_id":…,"message_id":0}`;
//! - `{"type":"subscribe","channel":"v4_subaccounts","id":"<address>/<number>","batched":b}`
//!   answers `subscribed` with the subaccount, its open / untriggered / best-effort-opened
//!   orders (and those best-effort-cancelled in the last 20 blocks) and the block height; an
//!   unknown subaccount gets empty contents `{}`, as the real indexer sends on a 404;
//! - then every update of that subaccount, in order: `channel_data` (one per update) or, if
//!   subscribed batched, `channel_batch_data` (the updates of one chain step in one message),
//!   with `version` [`SUBACCOUNTS_MESSAGE_VERSION`](super::SUBACCOUNTS_MESSAGE_VERSION);
//! - `message_id` counts every message of the connection from 0.
//!
//! The snapshot is taken and the subscription registered under the indexer lock, under which
//! updates are published too: no update is lost or sent twice around a subscribe.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::state::Update;
use super::{Indexer, SUBACCOUNTS_MESSAGE_VERSION};

const CHANNEL: &str = "v4_subaccounts";

/// What a connection sends next (its id and message id are added when it is sent).
#[derive(Debug)]
pub(crate) enum Outgoing {
    Connected,
    Subscribed {
        id: String,
        contents: Value,
    },
    Data {
        id: String,
        number: u32,
        batched: bool,
        contents: Vec<Value>,
    },
    Unsubscribed {
        channel: String,
        id: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug)]
struct Connection {
    tx: mpsc::UnboundedSender<Outgoing>,
    kill: Option<oneshot::Sender<()>>,
    /// Subscribed subaccounts → batched.
    subscriptions: HashMap<(String, u32), bool>,
}

/// The open connections and their subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    next_id: u64,
    connections: HashMap<u64, Connection>,
}

impl Hub {
    pub(crate) fn len(&self) -> usize {
        self.connections.len()
    }

    /// Subscriptions over all connections.
    pub(crate) fn subscriptions(&self) -> usize {
        self.connections
            .values()
            .map(|c| c.subscriptions.len())
            .sum()
    }

    fn register(&mut self, tx: mpsc::UnboundedSender<Outgoing>, kill: oneshot::Sender<()>) -> u64 {
        self.next_id += 1;
        let _ = tx.send(Outgoing::Connected);
        self.connections.insert(
            self.next_id,
            Connection {
                tx,
                kill: Some(kill),
                subscriptions: HashMap::new(),
            },
        );
        self.next_id
    }

    pub(crate) fn kill_all(&mut self) -> usize {
        let count = self.connections.len();
        for (_, mut connection) in self.connections.drain() {
            if let Some(kill) = connection.kill.take() {
                let _ = kill.send(());
            }
        }
        count
    }

    /// Queues each update for the connections subscribed to its subaccount.
    pub(crate) fn publish(&mut self, updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        for connection in self.connections.values() {
            for (key, batched) in &connection.subscriptions {
                let contents: Vec<Value> = updates
                    .iter()
                    .filter(|u| (&u.address, u.number) == (&key.0, key.1))
                    .filter_map(|u| serde_json::to_value(&u.contents).ok())
                    .collect();
                if contents.is_empty() {
                    continue;
                }
                let id = format!("{}/{}", key.0, key.1);
                let chunks = if *batched {
                    vec![contents]
                } else {
                    contents.into_iter().map(|c| vec![c]).collect()
                };
                for chunk in chunks {
                    let _ = connection.tx.send(Outgoing::Data {
                        id: id.clone(),
                        number: key.1,
                        batched: *batched,
                        contents: chunk,
                    });
                }
            }
        }
    }
}

/// `GET /v4/ws`: upgrades unless new connections are refused (503).
pub(crate) async fn upgrade(State(indexer): State<Arc<Indexer>>, ws: WebSocketUpgrade) -> Response {
    if !indexer.accepting() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "websocket connections refused",
        )
            .into_response();
    }
    ws.on_upgrade(move |socket| serve(socket, indexer))
}

async fn serve(mut socket: WebSocket, indexer: Arc<Indexer>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (kill_tx, mut kill_rx) = oneshot::channel();
    let conn = indexer.lock().hub.register(tx.clone(), kill_tx);
    let connection_id = uuid::Uuid::new_v4().to_string();
    let mut paused_rx = indexer.paused();
    let mut paused = *paused_rx.borrow_and_update();
    // `connected` is message 0.
    let mut message_id: u64 = 0;
    loop {
        tokio::select! {
            // In this order: a kill wins over anything held back, so what a dropped socket
            // held is lost, as on a real disconnect.
            biased;
            // Killed: drop the socket without a close frame.
            _ = &mut kill_rx => break,
            changed = paused_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                paused = *paused_rx.borrow_and_update();
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => handle_request(&indexer, conn, &tx, text.as_str()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            outgoing = rx.recv(), if !paused => {
                let Some(outgoing) = outgoing else { break };
                let text = render(outgoing, &connection_id, message_id);
                message_id += 1;
                // A kill also ends a send stuck on a client that stopped reading.
                tokio::select! {
                    _ = &mut kill_rx => break,
                    sent = socket.send(Message::Text(text.into())) => {
                        if sent.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
    indexer.lock().hub.connections.remove(&conn);
}

fn render(outgoing: Outgoing, connection_id: &str, message_id: u64) -> String {
    let value = match outgoing {
        Outgoing::Connected => json!({
            "type": "connected",
            "connection_id": connection_id,
            "message_id": message_id,
        }),
        Outgoing::Subscribed { id, contents } => json!({
            "type": "subscribed",
            "connection_id": connection_id,
            "message_id": message_id,
            "channel": CHANNEL,
            "id": id,
            "contents": contents,
        }),
        Outgoing::Data {
            id,
            number,
            batched,
            mut contents,
        } => {
            let (kind, contents) = if batched {
                ("channel_batch_data", Value::Array(contents))
            } else {
                ("channel_data", contents.pop().unwrap_or(Value::Null))
            };
            json!({
                "type": kind,
                "connection_id": connection_id,
                "message_id": message_id,
                "id": id,
                "channel": CHANNEL,
                "version": SUBACCOUNTS_MESSAGE_VERSION,
                "contents": contents,
                "subaccountNumber": number,
            })
        }
        Outgoing::Unsubscribed { channel, id } => json!({
            "type": "unsubscribed",
            "connection_id": connection_id,
            "message_id": message_id,
            "channel": channel,
            "id": id,
        }),
        Outgoing::Error { message } => json!({
            "type": "error",
            "message": message,
            "connection_id": connection_id,
            "message_id": message_id,
        }),
    };
    value.to_string()
}

/// `"<address>/<number>"`.
fn parse_subaccount(id: &str) -> Option<(String, u32)> {
    let (address, number) = id.split_once('/')?;
    Some((address.to_owned(), number.parse().ok()?))
}

fn handle_request(indexer: &Indexer, conn: u64, tx: &mpsc::UnboundedSender<Outgoing>, text: &str) {
    let error = |message: String| {
        let _ = tx.send(Outgoing::Error { message });
    };
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return error(format!("Invalid message: could not parse message: {text}"));
    };
    let kind = request["type"].as_str().unwrap_or_default();
    let channel = request["channel"].as_str().unwrap_or_default().to_owned();
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    match kind {
        "subscribe" | "unsubscribe" if channel != CHANNEL => error(format!(
            "Invalid subscribe message: channel {channel} is not served by ordermeta-dydx-sim (only {CHANNEL})"
        )),
        "subscribe" => {
            let Some(key) = parse_subaccount(&id) else {
                return error(format!(
                    "Invalid subscription id for channel: ({channel}-{id})"
                ));
            };
            let batched = request["batched"].as_bool().unwrap_or(false);
            let mut inner = indexer.lock();
            let inner = &mut *inner;
            let Some(connection) = inner.hub.connections.get_mut(&conn) else {
                return;
            };
            if connection.subscriptions.contains_key(&key) {
                return error(format!(
                    "Invalid subscribe message: already subscribed ({channel}-{id})"
                ));
            }
            let contents = match inner.state.subaccount(&key.0, key.1) {
                Some(subaccount) => json!({
                    "subaccount": subaccount,
                    "orders": inner.state.snapshot_orders(&key.0, key.1),
                    "blockHeight": inner.state.height.to_string(),
                }),
                None => json!({}),
            };
            let _ = tx.send(Outgoing::Subscribed { id, contents });
            connection.subscriptions.insert(key, batched);
        }
        "unsubscribe" => {
            if let Some(key) = parse_subaccount(&id)
                && let Some(connection) = indexer.lock().hub.connections.get_mut(&conn)
            {
                connection.subscriptions.remove(&key);
            }
            let _ = tx.send(Outgoing::Unsubscribed { channel, id });
        }
        "ping" => {}
        other => error(format!("Invalid message type: {other}")),
    }
}
