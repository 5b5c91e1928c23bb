//! The whole conformance suite with group commit off (the default store's run is
//! `conformance.rs`): every `record` and transition its own single statement.

mod common;

ordermeta_core::conformance_tests!(common::conformance_setup_without_group_commit);
