//! Fuzzing the decoders of core that see outside bytes: `OrderId` protobuf and base64 (a
//! stored `dydx_order_id`, whatever wrote it) and the store-URL helpers every backend parses
//! its URL with (a configuration value, whatever the operator typed).
//!
//! Each property is "no panic; a typed error, or an exact round trip". Cases per property:
//! 256, or `ORDERMETA_FUZZ_CASES` (`scripts/soak.sh` runs 1,000,000).

use ordermeta_core::backend::{ORDERMETA_PARAMS, check_scheme, no_params, scheme_of, take_param};
use ordermeta_core::{ErrorKind, OrderId};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property: `ORDERMETA_FUZZ_CASES`, else 256.
fn cases() -> u32 {
    std::env::var("ORDERMETA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // Shrinking a million-case run is not what a soak is for; a failure prints its seed.
        max_shrink_iters: 1024,
        failure_persistence: None,
        ..Config::default()
    }
}

fn arb_order_id() -> impl Strategy<Value = OrderId> {
    (
        "[a-z0-9]{1,64}|\\PC{1,20}",
        any::<u32>(),
        any::<u32>(),
        prop_oneof![Just(0u32), Just(32), Just(64), Just(128), any::<u32>()],
        any::<u32>(),
    )
        .prop_map(|(owner, n, c, f, p)| OrderId {
            owner,
            subaccount_number: n,
            client_id: c,
            order_flags: f,
            clob_pair_id: p,
        })
}

/// Bytes near valid encodings: a valid id's bytes with a few flipped, cut or extended.
fn arb_mangled() -> impl Strategy<Value = Vec<u8>> {
    (
        arb_order_id(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        any::<usize>(),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(id, flips, cut, tail)| {
            let mut bytes = id.to_protobuf();
            for (at, b) in flips {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] ^= b;
                }
            }
            bytes.truncate(cut % (bytes.len() + 1));
            bytes.extend(tail);
            bytes
        })
}

/// A decoded id is either refused as `InvalidMetadata`, or stable: encoding it and decoding
/// again gives the same id (the bytes need not match: protobuf allows unknown fields).
fn check_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    match OrderId::from_protobuf(bytes) {
        Ok(id) => {
            prop_assert!(!id.owner.is_empty());
            let again = OrderId::from_protobuf(&id.to_protobuf());
            prop_assert_eq!(again.as_ref().ok(), Some(&id));
            prop_assert_eq!(OrderId::from_base64(&id.to_base64()).ok(), Some(id));
        }
        Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "{}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn protobuf_valid_round_trips_exactly(id in arb_order_id()) {
        let bytes = id.to_protobuf();
        prop_assert_eq!(OrderId::from_protobuf(&bytes).ok(), Some(id.clone()));
        prop_assert_eq!(OrderId::from_base64(&id.to_base64()).ok(), Some(id));
    }

    #[test]
    fn protobuf_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        check_bytes(&bytes)?;
    }

    #[test]
    fn protobuf_mangled_bytes(bytes in arb_mangled()) {
        check_bytes(&bytes)?;
    }

    #[test]
    fn base64_arbitrary_text(text in "\\PC{0,64}|[A-Za-z0-9+/=\\s]{0,96}") {
        match OrderId::from_base64(&text) {
            Ok(id) => prop_assert_eq!(OrderId::from_base64(&id.to_base64()).ok(), Some(id)),
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "{}", e),
        }
    }

    #[test]
    fn base64_of_mangled_bytes(bytes in arb_mangled()) {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        match (OrderId::from_base64(&text), OrderId::from_protobuf(&bytes)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.kind(), ErrorKind::InvalidMetadata);
                prop_assert_eq!(b.kind(), ErrorKind::InvalidMetadata);
            }
            (a, b) => prop_assert!(false, "base64 {:?} vs protobuf {:?}", a, b),
        }
    }

    #[test]
    fn url_scheme_of(url in "\\PC{0,48}|[a-zA-Z][a-zA-Z0-9+.-]{0,12}:[^?]{0,16}") {
        if let Some(s) = scheme_of(&url) {
            // The scheme is the URL's own prefix, lowercased, and nothing else.
            let prefix = format!("{s}:");
            prop_assert!(url.to_ascii_lowercase().starts_with(&prefix));
            prop_assert!(!s.is_empty());
            prop_assert_eq!(check_scheme(&url, &[s.as_str()], "Test"), Ok(()));
        } else {
            prop_assert!(check_scheme(&url, &["sqlite"], "Test").is_err());
        }
    }

    #[test]
    fn url_params(
        base in "[a-z]{1,8}://[a-z0-9.:@/]{0,24}",
        pairs in proptest::collection::vec(
            (prop_oneof![
                Just("schema".to_owned()),
                Just("namespace".to_owned()),
                Just("sslmode".to_owned()),
                "[a-z=&#]{0,6}",
            ],
             "[a-zA-Z0-9_%=&#]{0,8}"),
            0..5,
        ),
        name in prop_oneof![Just("schema"), Just("namespace")],
    ) {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = if query.is_empty() { base.clone() } else { format!("{base}?{}", query.join("&")) };
        match take_param(&url, name) {
            Ok((rest, value)) => {
                // What is left holds no ordermeta parameter, and taking again finds nothing.
                prop_assert_eq!(no_params(&rest, "a test"), Ok(()));
                prop_assert_eq!(take_param(&rest, name), Ok((rest.clone(), None)));
                if let Some(v) = value {
                    prop_assert!(!v.is_empty());
                    let pair = format!("{name}={v}");
                    prop_assert!(url.contains(&pair));
                }
            }
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
        let has_ours = url
            .split_once('?')
            .map(|(_, q)| q.split_once('#').map_or(q, |(q, _)| q))
            .is_some_and(|q| q.split('&').any(|p| {
                ORDERMETA_PARAMS.contains(&p.split_once('=').map_or(p, |(k, _)| k))
            }));
        prop_assert_eq!(no_params(&url, "a test").is_err(), has_ours);
    }

    #[test]
    fn url_helpers_arbitrary_text(url in "\\PC{0,64}", name in "\\PC{0,8}") {
        let _ = scheme_of(&url);
        let _ = check_scheme(&url, &["postgres", "redis"], "Test");
        let _ = take_param(&url, &name);
        let _ = no_params(&url, "a test");
    }
}
