//! [`RecordingSwitch`]: the rollout and rollback switch for metadata recording, holding a
//! [`RolloutScope`] (in `scope.rs`: which orders are recorded).

use std::sync::{Arc, PoisonError, RwLock};

use ordermeta_core::OrderId;

mod scope;

pub use scope::{RolloutScope, Share, SubaccountRef};

/// Environment variable read by [`RecordingSwitch::from_env`]: `on`, `off`, or a rollout
/// scope in its [text form](RolloutScope), e.g. `clob_pairs=0` or `share=10%`.
pub const RECORDING_ENV: &str = "ORDERMETA_RECORDING";

/// Which new orders placement records, changeable at run time: the rollout and rollback flag.
///
/// Two levels, as the original design's rollback plan asks:
/// - the Cargo feature `recording` of this crate (default on; the facade's `recording`
///   forwards to it) decides whether recording is compiled in at all; without it the switch
///   always holds [`RolloutScope::none`] and nothing changes that;
/// - at run time the switch holds a [`RolloutScope`] — all, none, some markets, some
///   subaccounts, a share of orders — read from [`RECORDING_ENV`] at start (or from a serde
///   configuration) and replaceable from any thread without a restart
///   ([`set_scope`](Self::set_scope), [`set`](Self::set)). Clones share one scope: a change
///   is seen by every clone, and by every client holding one, at its next placement.
///
/// The switch governs **recording new orders** only. An order outside the scope is placed
/// exactly as without ordermeta (and counted as such); cancelling keeps working whatever the
/// switch says — from the record when there is one, else from the order id itself (see
/// [`OrderMetaClient::cancel_order`](crate::OrderMetaClient::cancel_order)).
#[derive(Clone)]
pub struct RecordingSwitch {
    scope: Arc<RwLock<Arc<RolloutScope>>>,
}

impl std::fmt::Debug for RecordingSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSwitch")
            .field("scope", &self.current().to_string())
            .field("compiled_in", &Self::compiled_in())
            .finish()
    }
}

/// A recording setting that could not be read: [`RECORDING_ENV`], a [`RolloutScope`] or one
/// of its parts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{RECORDING_ENV} / rollout scope {value:?}: {reason}; expected on, off, or criteria such as \
     clob_pairs=0,1;subaccounts=0;share=10%"
)]
pub struct InvalidRecordingSetting {
    /// What the setting held.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Default for RecordingSwitch {
    /// On for every order (when compiled in).
    fn default() -> Self {
        Self::new(true)
    }
}

impl RecordingSwitch {
    /// A switch recording every order (`true`) or none (always none without the `recording`
    /// feature).
    pub fn new(on: bool) -> Self {
        Self::with_scope(if on {
            RolloutScope::all()
        } else {
            RolloutScope::none()
        })
    }

    /// A switch holding `scope` (none without the `recording` feature).
    pub fn with_scope(scope: RolloutScope) -> Self {
        RecordingSwitch {
            scope: Arc::new(RwLock::new(Arc::new(Self::effective(scope)))),
        }
    }

    /// Reads [`RECORDING_ENV`]: unset means every order; otherwise the [text
    /// form](RolloutScope) of a scope (`on`, `off`, `clob_pairs=0`, `share=10%`, …). Anything
    /// unreadable is an error rather than a silent guess.
    pub fn from_env() -> Result<Self, InvalidRecordingSetting> {
        match std::env::var(RECORDING_ENV) {
            Err(_) => Ok(Self::new(true)),
            Ok(v) => v.parse().map(Self::with_scope),
        }
    }

    /// Parses an on/off setting: `on`/`off`, `true`/`false`, `1`/`0`, any case. (A scope is
    /// read with [`RolloutScope`]'s `FromStr`.)
    pub fn parse(value: &str) -> Result<bool, InvalidRecordingSetting> {
        match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(InvalidRecordingSetting {
                value: value.to_owned(),
                reason: "not on or off".to_owned(),
            }),
        }
    }

    /// Whether recording is compiled in (Cargo feature `recording`).
    pub const fn compiled_in() -> bool {
        cfg!(feature = "recording")
    }

    /// Whether placement records at least some orders now (the scope is not none).
    pub fn is_on(&self) -> bool {
        !self.current().is_none()
    }

    /// Records every order (`true`) or none (`false`), for every clone; returns whether it
    /// recorded any before. Without the `recording` feature it stays off.
    pub fn set(&self, on: bool) -> bool {
        let before = self.set_scope(if on {
            RolloutScope::all()
        } else {
            RolloutScope::none()
        });
        !before.is_none()
    }

    /// The scope in force.
    pub fn scope(&self) -> RolloutScope {
        RolloutScope::clone(&self.current())
    }

    /// Replaces the scope for every clone, from any thread; the next placement of every
    /// client holding a clone sees it. Returns the scope it replaced. Without the
    /// `recording` feature the scope stays none.
    pub fn set_scope(&self, scope: RolloutScope) -> RolloutScope {
        let new = Arc::new(Self::effective(scope));
        let mut guard = self.scope.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *guard, new);
        RolloutScope::clone(&old)
    }

    /// Whether an order with this chain identity is recorded now.
    pub fn admits(&self, id: &OrderId) -> bool {
        self.current().admits(id)
    }

    fn current(&self) -> Arc<RolloutScope> {
        // A panic elsewhere while holding the lock cannot leave a half-written Arc.
        Arc::clone(&self.scope.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn effective(scope: RolloutScope) -> RolloutScope {
        if Self::compiled_in() {
            scope
        } else {
            RolloutScope::none()
        }
    }
}

#[cfg(test)]
mod tests;
