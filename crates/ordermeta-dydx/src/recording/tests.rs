//! The switch, the scope rules, their text and serde forms, and the share's determinism.

use std::collections::BTreeSet;

use ordermeta_core::OrderId;

use super::*;

const ME: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn";
const OTHER: &str = "dydx1zg69v7ys40x77y352eufp27daufrg4ncnjqz7q";

fn id(owner: &str, sub: u32, clob: u32, client: u32) -> OrderId {
    OrderId {
        owner: owner.into(),
        subaccount_number: sub,
        client_id: client,
        order_flags: 0,
        clob_pair_id: clob,
    }
}

#[test]
fn parse_settings() {
    assert_eq!(RecordingSwitch::parse("ON"), Ok(true));
    assert_eq!(RecordingSwitch::parse(" off "), Ok(false));
    assert_eq!(RecordingSwitch::parse("0"), Ok(false));
    let err = RecordingSwitch::parse("maybe").expect_err("rejects");
    assert!(err.to_string().contains("maybe"));
}

#[test]
fn clones_share_the_flag_across_threads() {
    let s = RecordingSwitch::new(true);
    let c = s.clone();
    std::thread::spawn(move || c.set(false))
        .join()
        .expect("thread");
    assert!(!s.is_on());
    s.set(true);
    assert_eq!(s.is_on(), RecordingSwitch::compiled_in());
}

/// The rollback build: without the feature nothing turns recording on.
#[cfg(not(feature = "recording"))]
#[test]
fn compiled_out_is_always_off() {
    assert!(!RecordingSwitch::compiled_in());
    assert!(!RecordingSwitch::new(true).is_on());
    let s = RecordingSwitch::new(false);
    s.set(true);
    assert!(!s.is_on());
    s.set_scope(RolloutScope::clob_pairs([0]));
    assert!(s.scope().is_none());
    assert!(!s.admits(&id(ME, 0, 0, 1)));
    assert!(!RecordingSwitch::with_scope(RolloutScope::all()).is_on());
}

#[cfg(feature = "recording")]
#[test]
fn scope_changes_are_seen_by_every_clone_from_any_thread() {
    let s = RecordingSwitch::with_scope(RolloutScope::clob_pairs([0]));
    let order = id(ME, 0, 1, 7);
    assert!(!s.admits(&order));
    let c = s.clone();
    let before = std::thread::spawn(move || c.set_scope(RolloutScope::clob_pairs([0, 1])))
        .join()
        .expect("thread");
    assert_eq!(before, RolloutScope::clob_pairs([0]));
    assert!(s.admits(&order));
    assert!(s.set(false), "was recording some orders");
    assert!(!s.is_on() && !s.admits(&order));
    assert_eq!(s.scope(), RolloutScope::none());
}

#[test]
fn every_criterion_must_admit_the_order() {
    let markets = RolloutScope::clob_pairs([0, 2]);
    assert!(markets.admits(&id(ME, 0, 0, 1)));
    assert!(markets.admits(&id(OTHER, 5, 2, 1)));
    assert!(!markets.admits(&id(ME, 0, 1, 1)));

    let subs = RolloutScope::subaccounts([SubaccountRef::number(1), SubaccountRef::of(ME, 3)]);
    assert!(subs.admits(&id(OTHER, 1, 9, 1)), "number alone: any owner");
    assert!(subs.admits(&id(ME, 3, 9, 1)));
    assert!(
        !subs.admits(&id(OTHER, 3, 9, 1)),
        "owner/number: that owner only"
    );
    assert!(!subs.admits(&id(ME, 0, 9, 1)));

    let both = RolloutScope::clob_pairs([0]).with_subaccounts([SubaccountRef::number(1)]);
    assert!(both.admits(&id(ME, 1, 0, 1)));
    assert!(!both.admits(&id(ME, 0, 0, 1)), "market in, subaccount out");
    assert!(!both.admits(&id(ME, 1, 1, 1)), "subaccount in, market out");

    let share_of_market =
        RolloutScope::clob_pairs([0]).with_share(Share::percent(50).expect("50%"));
    for client in 0..2_000 {
        let in_market = id(ME, 0, 0, client);
        assert_eq!(
            share_of_market.admits(&in_market),
            Share::percent(50).expect("50%").admits(&in_market)
        );
        assert!(!share_of_market.admits(&id(ME, 0, 1, client)));
    }

    assert!(RolloutScope::all().admits(&id(ME, 0, 0, 0)));
    assert!(RolloutScope::all().is_all());
    for none in [
        RolloutScope::none(),
        RolloutScope::clob_pairs([]),
        RolloutScope::subaccounts([]),
        RolloutScope::share(Share::NONE),
        RolloutScope {
            enabled: false,
            ..RolloutScope::clob_pairs([0])
        },
    ] {
        assert!(none.is_none(), "{none}");
        assert!(!none.admits(&id(ME, 0, 0, 0)), "{none}");
    }
    assert!(RolloutScope::share(Share::ALL).is_all());
}

#[test]
fn the_share_is_a_fixed_function_of_the_identity() {
    // Pinned values: the bucket must never change between versions or processes, or an
    // order recorded by one would be looked for as unrecorded by another.
    assert_eq!(
        Share::bucket(&id(ME, 0, 0, 0)),
        Share::bucket(&id(ME, 0, 0, 0))
    );
    let pinned: Vec<u32> = (0..4).map(|c| Share::bucket(&id(ME, 0, 0, c))).collect();
    assert_eq!(pinned, PINNED_BUCKETS);
    // The good-til is not part of the identity; the flags are.
    let stateful = OrderId {
        order_flags: 64,
        ..id(ME, 0, 0, 0)
    };
    assert_ne!(Share::bucket(&stateful), Share::bucket(&id(ME, 0, 0, 0)));

    // Roughly uniform over consecutive client ids, and monotone in the share.
    let ten = Share::percent(10).expect("10%");
    let twenty = Share::percent(20).expect("20%");
    let mut in_ten = 0;
    for client in 0..10_000 {
        let order = id(ME, 0, client % 4, client);
        if ten.admits(&order) {
            in_ten += 1;
            assert!(twenty.admits(&order), "widening only adds orders");
        }
    }
    assert!((800..=1_200).contains(&in_ten), "10% of 10 000: {in_ten}");
}

/// `Share::bucket` of `ME/0/0/0/{0,1,2,3}`, computed independently (FNV-1a 64, fmix64,
/// mod 10 000, in Python).
const PINNED_BUCKETS: [u32; 4] = [6496, 541, 821, 1169];

#[test]
fn text_form_round_trips_and_refuses_guesses() {
    for (text, scope) in [
        ("on", RolloutScope::all()),
        ("ALL", RolloutScope::all()),
        ("off", RolloutScope::none()),
        ("none", RolloutScope::none()),
        ("clob_pairs=0", RolloutScope::clob_pairs([0])),
        (
            " clob_pairs = 2, 0 ; share = 12.5% ",
            RolloutScope::clob_pairs([0, 2])
                .with_share(Share::from_basis_points(1250).expect("bp")),
        ),
        (
            &format!("subaccounts=0,{ME}/2"),
            RolloutScope::subaccounts([SubaccountRef::number(0), SubaccountRef::of(ME, 2)]),
        ),
        (
            "Share=0.01%",
            RolloutScope::share(Share::from_basis_points(1).expect("bp")),
        ),
        ("share=100%", RolloutScope::share(Share::ALL)),
    ] {
        let parsed: RolloutScope = text.parse().expect(text);
        assert_eq!(parsed, scope, "{text}");
        assert_eq!(
            parsed.to_string().parse::<RolloutScope>(),
            Ok(scope),
            "{parsed}"
        );
    }
    assert_eq!(
        RolloutScope::clob_pairs([1, 0])
            .with_share(Share::percent(5).expect("5%"))
            .to_string(),
        "clob_pairs=0,1;share=5%"
    );
    for bad in [
        "",
        "maybe",
        "clob_pairs",
        "clob_pairs=",
        "clob_pairs=x",
        "clob_pairs=0;clob_pairs=1",
        "markets=0",
        "share=10",
        "share=101%",
        "share=1.234%",
        "share=-1%",
        "subaccounts=a b/1",
        "subaccounts=/1",
    ] {
        let err = bad.parse::<RolloutScope>().expect_err(bad);
        assert!(err.to_string().contains("clob_pairs=0,1"), "{err}");
    }
}

#[test]
fn serde_reads_text_switch_and_table() {
    let read = |json: &str| serde_json::from_str::<RolloutScope>(json);
    assert_eq!(read("true").expect("bool"), RolloutScope::all());
    assert_eq!(read("false").expect("bool"), RolloutScope::none());
    assert_eq!(
        read("\"clob_pairs=1;share=25%\"").expect("text"),
        RolloutScope::clob_pairs([1]).with_share(Share::percent(25).expect("25%"))
    );
    let table = format!(r#"{{"clob_pairs":[0,3],"subaccounts":["0","{ME}/1"],"share":"50%"}}"#);
    let scope = read(&table).expect("table");
    assert_eq!(
        scope,
        RolloutScope::clob_pairs([0, 3])
            .with_subaccounts([SubaccountRef::number(0), SubaccountRef::of(ME, 1)])
            .with_share(Share::percent(50).expect("50%"))
    );
    assert_eq!(
        read(r#"{"enabled":false}"#).expect("off"),
        RolloutScope::none()
    );
    assert_eq!(read("{}").expect("empty table"), RolloutScope::all());
    // It writes the table and reads it back.
    let written = serde_json::to_string(&scope).expect("serialize");
    assert_eq!(read(&written).expect("round trip"), scope);
    for bad in [
        r#"{"markets":[0]}"#,
        r#"{"share":"half"}"#,
        "\"maybe\"",
        "3",
    ] {
        assert!(read(bad).is_err(), "{bad}");
    }
    let sets: BTreeSet<u32> = [3, 0].into();
    assert_eq!(scope.clob_pairs, Some(sets));
}
