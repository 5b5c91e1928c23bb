//! `transition`: compare-and-set of one order's status and claim lease, with the fields it
//! sets on the way (hashes, the request's [`FieldPatch`](ordermeta_core::FieldPatch)) and a
//! history append, written by `lua/cas.lua` ([`cas`](super::cas)).
//!
//! The request's condition (status and lease) is checked on the record this store remembers
//! or reads (decoded whole, so a record with any malformed field is `InvalidMetadata` and is
//! never written), the new record computed with the reference [`TransitionRequest::apply`]
//! (the version saturating at `i64::MAX`), and the script writes the fields that change if the
//! HASH is still exactly that record. The index moves: out of the old status set into the
//! new one; an open order (re)enters its open index (which heals an entry lost to
//! corruption); a terminal one leaves it for `{ns}:terminal` (score `updated_at`) and gets the
//! retention TTL.

use ordermeta_core::{GoodTil, OrderMetadata, StoreError, TransitionRequest, to_micros};

use super::cas::{self, Decision, Move};
use super::{Deadline, Shared};
use crate::codec;

/// Runs `req` (checked first) within `deadline` and returns the order as it now is.
pub(crate) async fn run(
    shared: &Shared,
    req: &TransitionRequest,
    deadline: &Deadline,
) -> Result<OrderMetadata, StoreError> {
    req.check()?;
    let id = req.order_id.as_str();
    cas::run(shared, id, "transition", deadline, |current| {
        if !req.allows(current) {
            return Err(StoreError::conflict(id, current.status, &req.from));
        }
        let mut next = current.clone();
        req.apply(&mut next);
        next.version = codec::next_version(current.version);
        next.validate()?;
        let moves = moves(shared, current, &next);
        let ttl_ms = if next.status.is_terminal() {
            shared.ttl_ms
        } else {
            0
        };
        Ok(Decision {
            next,
            moves,
            ttl_ms,
        })
    })
    .await
}

/// The index moves from `current` to `next` (same order, good-til and identity).
fn moves(shared: &Shared, current: &OrderMetadata, next: &OrderMetadata) -> Vec<Move> {
    let keys = &shared.keys;
    let mut m = Vec::with_capacity(4);
    if current.status != next.status {
        m.push(Move {
            key: keys.status(current.status),
            score: None,
            undo: Some(0),
        });
        m.push(Move {
            key: keys.status(next.status),
            score: Some(0),
            undo: None,
        });
    }
    let (open, good_til) = match next.good_til {
        GoodTil::Block(b) => (keys.open_by_block(), i64::from(b)),
        GoodTil::BlockTime(t) => (keys.open_by_time(), i64::from(t)),
    };
    if next.status.is_terminal() {
        if !current.status.is_terminal() {
            m.push(Move {
                key: open,
                score: None,
                undo: Some(good_til),
            });
        }
        m.push(Move {
            key: keys.terminal(),
            score: Some(to_micros(next.updated_at)),
            // A terminal order (cancelled -> filled) was there with its old updated_at.
            undo: current
                .status
                .is_terminal()
                .then(|| to_micros(current.updated_at)),
        });
    } else {
        m.push(Move {
            key: open,
            score: Some(good_til),
            undo: None,
        });
    }
    m
}
