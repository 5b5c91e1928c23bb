//! Property test of the timestamp conversion every decode uses: any microsecond count the
//! SQL can produce (including the `-infinity` / `infinity` sentinels) is a time or an
//! `InvalidMetadata`, never a panic, and whatever is accepted round-trips.
//!
//! Cases: 256, or `ORDERMETA_FUZZ_CASES`. The decoder over real rows is fuzzed against the
//! server in `tests/corrupt_fuzz.rs`.

use ordermeta_core::{ErrorKind, to_micros};
use proptest::prelude::*;

use crate::row::time_from_micros;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("ORDERMETA_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_micros_is_a_time_or_invalid(us in prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        // Around chrono's ends.
        (8_210_266_000_000_000_000i64..8_300_000_000_000_000_000),
        (-8_300_000_000_000_000_000i64..-8_200_000_000_000_000_000),
    ]) {
        match time_from_micros(us, "placed_at") {
            Ok(t) => prop_assert_eq!(to_micros(t), us),
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata);
                prop_assert!(e.to_string().contains("placed_at"), "{e}");
            }
        }
    }
}
