//! `update`: compare-and-set of one order's status and version that sets a
//! [`FieldPatch`](ordermeta_core::FieldPatch) without a status change, written by
//! `lua/cas.lua` ([`cas`](super::cas)).
//!
//! Like `transition`: the request's condition (status, version) is checked on the record this
//! store remembers or reads (decoded whole: a record with any malformed field is
//! `InvalidMetadata` and is never written), the new record computed with the reference
//! [`UpdateRequest::apply`] (the version saturating at `i64::MAX`), and the script writes the
//! fields that change if the HASH is still exactly that record. No history entry, the lease
//! untouched; a terminal order's `{ns}:terminal` score follows its new `updated_at`, and its
//! retention TTL restarts.

use ordermeta_core::{OrderMetadata, StoreError, UpdateRequest, to_micros};

use super::cas::{self, Decision, Move};
use super::{Deadline, Shared};
use crate::codec;

/// Runs `req` (checked first) within `deadline` and returns the order as it now is.
pub(crate) async fn run(
    shared: &Shared,
    req: &UpdateRequest,
    deadline: &Deadline,
) -> Result<OrderMetadata, StoreError> {
    req.check()?;
    cas::run(shared, &req.order_id, "update", deadline, |current| {
        if !req.allows(current) {
            return Err(req.conflict(current));
        }
        let mut next = current.clone();
        req.apply(&mut next);
        next.version = codec::next_version(current.version);
        next.validate()?;
        let terminal = next.status.is_terminal();
        let moves = if terminal {
            // Purge picks candidates by this score: keep it the record's updated_at.
            vec![Move {
                key: shared.keys.terminal(),
                score: Some(to_micros(next.updated_at)),
                undo: Some(to_micros(current.updated_at)),
            }]
        } else {
            Vec::new()
        };
        Ok(Decision {
            next,
            moves,
            ttl_ms: if terminal { shared.ttl_ms } else { 0 },
        })
    })
    .await
}
