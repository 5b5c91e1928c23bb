//! The conformance suite on the reference `MemoryStore`.

use std::sync::Arc;

use ordermeta_core::MemoryStore;
use ordermeta_core::conformance::TestStore;

async fn setup() -> TestStore {
    TestStore::new(Arc::new(MemoryStore::new()))
}

ordermeta_core::conformance_tests!(setup);
