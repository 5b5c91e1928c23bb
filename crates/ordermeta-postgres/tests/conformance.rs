//! The whole conformance suite against a real PostgreSQL server, each test (and each
//! model-based case) in its own schema, dropped afterwards.

mod common;

ordermeta_core::conformance_tests!(common::conformance_setup);
