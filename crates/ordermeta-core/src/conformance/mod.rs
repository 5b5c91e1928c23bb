//! The behaviour every [`MetadataStore`](crate::MetadataStore) must show, as plain async
//! functions.
//!
//! Each function takes an **empty** store, panics (like `assert!`) on the first deviation, and
//! leaves data behind for the caller to clean up. A backend crate runs the whole suite with
//! [`conformance_tests!`](crate::conformance_tests) against a real server; a new backend is
//! done when the suite passes.
//!
//! ```
//! use std::sync::Arc;
//! use ordermeta_core::MemoryStore;
//! use ordermeta_core::conformance::TestStore;
//!
//! async fn setup() -> TestStore {
//!     // A real backend connects to a fresh, isolated schema or namespace here, and passes
//!     // its removal to `TestStore::with_cleanup`.
//!     TestStore::new(Arc::new(MemoryStore::new()))
//! }
//! ordermeta_core::conformance_tests!(setup);
//! # fn main() {}
//! ```
//!
//! The suite, by group (each function's docs say what it proves):
//!
//! | group | functions |
//! |---|---|
//! | fixtures | [`TestStore`], [`t0`], [`short_term`], [`long_term`] (also used by the stores' own tests) |
//! | records | [`round_trip`], [`record_many_all_or_nothing`], [`duplicate_ids`], [`health`] |
//! | transitions | [`legal_transitions`], [`illegal_transitions`], [`transition_patch_and_conflicts`], [`claim_race`] |
//! | listing | [`paging`], [`list_filters`] |
//! | expiry | [`expire_by_height`], [`expire_by_time`], [`purge`] |
//! | leases | [`leases_round_trip`], [`lease_boundaries`], [`stale_reclaim_race`], [`fresh_claim_not_stolen`], [`expire_clears_lease`] |
//! | lookup | [`find_by_client_id_newest`], [`find_by_label_newest`], [`update_patch_and_conflicts`], [`transition_with_patch`], [`update_race`] |
//! | model-based | [`model_based`] (a random operation sequence compared with [`MemoryStore`](crate::MemoryStore)) |

mod crud;
mod expiry;
mod fixtures;
mod leases;
mod listing;
mod lookup;
mod model_based;
mod transitions;

pub use crud::{duplicate_ids, health, record_many_all_or_nothing, round_trip};
pub use expiry::{expire_by_height, expire_by_time, purge};
pub use fixtures::{TestStore, long_term, short_term, short_term_at_limits, t0};
pub use leases::{
    expire_clears_lease, foreign_lease_is_honoured, fresh_claim_not_stolen, lease_boundaries,
    leases_round_trip, stale_reclaim_race,
};
pub use listing::{list_filters, paging};
pub use lookup::{
    find_by_client_id_newest, find_by_label_newest, transition_with_patch,
    update_patch_and_conflicts, update_race,
};
pub use model_based::{Op, model_based};
pub use transitions::{
    claim_race, illegal_transitions, legal_transitions, transition_patch_and_conflicts,
};

/// Generates one `#[tokio::test]` per conformance function plus the model-based property
/// test, each on a fresh store from `$setup` (an `async fn() -> TestStore`).
///
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@each $setup;
            round_trip, record_many_all_or_nothing, duplicate_ids, legal_transitions,
            illegal_transitions, transition_patch_and_conflicts, paging, list_filters,
            expire_by_height, expire_by_time, purge, claim_race, health, leases_round_trip,
            lease_boundaries, stale_reclaim_race, fresh_claim_not_stolen, expire_clears_lease,
            find_by_client_id_newest, find_by_label_newest, update_patch_and_conflicts,
            transition_with_patch, update_race);
        #[test]
        fn conformance_model_based() {
            $crate::conformance::model_based($setup, $crate::conformance::MODEL_CASES);
        }
    };
    (@each $setup:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $setup()
                    .await
                    .run(|s| async move { $crate::conformance::$name(&*s).await })
                    .await;
            }
        )*
    };
}

/// Cases the model-based test runs by default (`ORDERMETA_MODEL_CASES` overrides).
pub const MODEL_CASES: u32 = 48;
