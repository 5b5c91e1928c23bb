//! The whole conformance suite with group commit off (every `record` and transition its own
//! single statement) and with group commit eager (a write joins a batch as soon as any other
//! is in progress, so the suite's races run through batch statements). The default store's
//! run is `conformance.rs`.

mod common;

mod without_group_commit {
    ordermeta_core::conformance_tests!(super::common::conformance_setup_without_group_commit);
}

mod eager_group_commit {
    ordermeta_core::conformance_tests!(super::common::conformance_setup_eager_group_commit);
}
