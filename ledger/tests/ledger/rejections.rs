//! Every rejection path: the typed error, and that nothing changed — not the state, not the log.

use super::harness::Harness;
use stockpile_ledger::domain::{
    Action, Amount, Country, Direction, EventId, FacilityId, FigureKind, Form, HolderType, KeyId, KeyRole, LotId,
    MaterialId, PartyId, Price, Programme, Rejection, ReleaseReason, Unit,
};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::testkit::{amount, at, command, deterministic_key, holding, lot};
use stockpile_ledger::{Outcome, Submission};

const T: &str = "2026-03-01T12:00:00Z";

/// A ledger holding 10 t of cobalt for nl-covra at nl-vlissingen, and a revoked key.
fn fixture() -> Harness {
    let mut h = Harness::new();
    h.clock.set(at("2026-03-02T00:00:00Z"));
    let acquire = h.world.key("nl-covra").sign(command(
        "acq-co",
        at(T),
        Action::Acquire {
            lot: lot("co-001", "cobalt", Form::Metal, 998_000, "CD"),
            to: holding("nl-covra", "nl-vlissingen", Programme::National),
            quantity: amount("10", Unit::T),
            supplier: None,
            contract: None,
            price: None,
        },
    ));
    let old = deterministic_key("nl-covra-old");
    let register_old = h.world.admin.sign(command(
        "reg-old",
        at(T),
        Action::RegisterKey {
            key: old.id.clone(),
            public_key: old.public_key_hex(),
            role: KeyRole::Operator,
            party: Some("nl-covra".into()),
        },
    ));
    let revoke_old = h.world.key("nl-covra").sign(command(
        "revoke-old",
        at(T),
        Action::RevokeKey { key: old.id.clone(), reason: "laptop lost".into() },
    ));
    for o in h.submit(vec![acquire, register_old, revoke_old], true) {
        assert!(matches!(o, Outcome::Appended { .. }), "fixture: {o:?}");
    }
    h
}

fn rules(partner: &str, material: &str, text: &str) -> Action {
    Action::RegisterReleaseRules {
        partner: Country::new(partner),
        material: MaterialId::new(material),
        text: text.into(),
        confidential: false,
    }
}

fn release(qty: Amount) -> Action {
    Action::Release {
        lot: LotId::new("co-001"),
        from: holding("nl-covra", "nl-vlissingen", Programme::National),
        quantity: qty,
        reason: ReleaseReason::Sale,
        recipient: "Umicore".into(),
    }
}

fn acquire(lot_id: &str, material: &str, purity: u32, origin: &str, qty: Amount) -> Action {
    let mut spec = lot(lot_id, material, Form::Metal, purity, origin);
    spec.origin = Country::new(origin);
    Action::Acquire {
        lot: spec,
        to: holding("nl-covra", "nl-vlissingen", Programme::National),
        quantity: qty,
        supplier: None,
        contract: None,
        price: None,
    }
}

struct Case {
    name: &'static str,
    commands: fn(&Harness) -> Vec<SignedCommand>,
    atomic: bool,
    expect: &'static str,
}

fn covra(h: &Harness, id: &str, action: Action) -> SignedCommand {
    h.world.key("nl-covra").sign(command(id, at(T), action))
}

fn admin(h: &Harness, id: &str, action: Action) -> SignedCommand {
    h.world.admin.sign(command(id, at(T), action))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "overdraw",
            atomic: false,
            expect: "insufficient_stock",
            commands: |h| vec![covra(h, "r1", release(amount("10.000001", Unit::T)))],
        },
        Case {
            name: "unknown lot",
            atomic: false,
            expect: "unknown_reference",
            commands: |h| {
                vec![covra(
                    h,
                    "r1",
                    Action::Release {
                        lot: LotId::new("nope"),
                        from: holding("nl-covra", "nl-vlissingen", Programme::National),
                        quantity: amount("1", Unit::T),
                        reason: ReleaseReason::Sale,
                        recipient: "x".into(),
                    },
                )]
            },
        },
        Case {
            name: "unknown party",
            atomic: false,
            expect: "unknown_reference",
            commands: |h| {
                vec![covra(
                    h,
                    "t1",
                    Action::Transfer {
                        lot: LotId::new("co-001"),
                        from: holding("nl-covra", "nl-vlissingen", Programme::National),
                        to: holding("nobody", "nl-vlissingen", Programme::National),
                        quantity: amount("1", Unit::T),
                    },
                )]
            },
        },
        Case {
            name: "unknown facility",
            atomic: false,
            expect: "unknown_reference",
            commands: |h| {
                vec![covra(
                    h,
                    "s1",
                    Action::Store {
                        lot: LotId::new("co-001"),
                        party: "nl-covra".into(),
                        programme: Programme::National,
                        from: holding("x", "nl-vlissingen", Programme::National).location,
                        to: FacilityId::new("atlantis"),
                        quantity: amount("1", Unit::T),
                    },
                )]
            },
        },
        Case {
            name: "unknown material",
            atomic: false,
            expect: "unknown_material",
            commands: |h| vec![covra(h, "a1", acquire("u-1", "unobtainium", 990_000, "US", amount("1", Unit::T)))],
        },
        Case {
            name: "unknown partner",
            atomic: false,
            expect: "unknown_partner",
            commands: |h| {
                vec![admin(
                    h,
                    "p1",
                    Action::RegisterParty {
                        party: "cn-x".into(),
                        partner: Country::new("CN"),
                        name: "x".into(),
                        holder_type: HolderType::Private,
                    },
                )]
            },
        },
        Case {
            name: "zero amount",
            atomic: false,
            expect: "bad_quantity",
            commands: |h| vec![covra(h, "r1", release(amount("0", Unit::Kg)))],
        },
        Case {
            name: "negative amount",
            atomic: false,
            expect: "bad_quantity",
            commands: |h| vec![covra(h, "r1", release(amount("-5", Unit::Kg)))],
        },
        Case {
            name: "exponent amount",
            atomic: false,
            expect: "bad_quantity",
            commands: |h| vec![covra(h, "r1", release(amount("1e3", Unit::Kg)))],
        },
        Case {
            name: "finer than a gram",
            atomic: false,
            expect: "bad_quantity",
            commands: |h| vec![covra(h, "r1", release(amount("0.0001", Unit::Kg)))],
        },
        Case {
            name: "overflowing amount",
            atomic: false,
            expect: "bad_quantity",
            commands: |h| vec![covra(h, "a1", acquire("big", "cobalt", 990_000, "CD", amount("99999999999", Unit::T)))],
        },
        Case {
            name: "wrong party's key",
            atomic: false,
            expect: "not_owner",
            commands: |h| vec![h.world.key("nl-mod").sign(command("r1", at(T), release(amount("1", Unit::T))))],
        },
        Case {
            name: "acquire for another party",
            atomic: false,
            expect: "not_owner",
            commands: |h| {
                vec![h.world.key("de-rohstoff").sign(command(
                    "a1",
                    at(T),
                    acquire("co-9", "cobalt", 990_000, "CD", amount("1", Unit::T)),
                ))]
            },
        },
        Case {
            name: "admin moving stock",
            atomic: false,
            expect: "no_party",
            commands: |h| vec![admin(h, "r1", release(amount("1", Unit::T)))],
        },
        Case {
            name: "operator registering",
            atomic: false,
            expect: "not_admin",
            commands: |h| {
                vec![covra(
                    h,
                    "p1",
                    Action::RegisterParty {
                        party: "nl-x".into(),
                        partner: Country::new("NL"),
                        name: "x".into(),
                        holder_type: HolderType::Private,
                    },
                )]
            },
        },
        Case {
            name: "revoked key",
            atomic: false,
            expect: "key_revoked",
            commands: |_| {
                vec![deterministic_key("nl-covra-old").sign(command("r1", at(T), release(amount("1", Unit::T))))]
            },
        },
        Case {
            name: "changed after signing",
            atomic: false,
            expect: "bad_signature",
            commands: |h| {
                let mut c = covra(h, "r1", release(amount("1", Unit::T)));
                c.command.action = release(amount("9", Unit::T));
                vec![c]
            },
        },
        Case {
            name: "signature from another key",
            atomic: false,
            expect: "key_mismatch",
            commands: |_| {
                let mut impostor = deterministic_key("impostor");
                impostor.id = KeyId::new("nl-covra-ops");
                vec![impostor.sign(command("r1", at(T), release(amount("1", Unit::T))))]
            },
        },
        Case {
            name: "unknown key",
            atomic: false,
            expect: "unknown_reference",
            commands: |_| vec![deterministic_key("stranger").sign(command("r1", at(T), release(amount("1", Unit::T))))],
        },
        Case {
            name: "id reused with other content",
            atomic: false,
            expect: "id_conflict",
            commands: |h| vec![covra(h, "acq-co", release(amount("1", Unit::T)))],
        },
        Case {
            name: "occurred in the future",
            atomic: false,
            expect: "occurred_in_future",
            commands: |h| {
                vec![h.world.key("nl-covra").sign(command(
                    "r1",
                    at("2026-03-02T00:10:00Z"),
                    release(amount("1", Unit::T)),
                ))]
            },
        },
        Case {
            name: "absurd date",
            atomic: false,
            expect: "occurred_too_early",
            commands: |h| {
                vec![h.world.key("nl-covra").sign(command(
                    "r1",
                    at("1900-01-01T00:00:00Z"),
                    release(amount("1", Unit::T)),
                ))]
            },
        },
        Case {
            name: "lot id taken",
            atomic: false,
            expect: "already_registered",
            commands: |h| vec![covra(h, "a1", acquire("co-001", "cobalt", 990_000, "CD", amount("1", Unit::T)))],
        },
        Case {
            name: "same position",
            atomic: false,
            expect: "same_position",
            commands: |h| {
                vec![covra(
                    h,
                    "t1",
                    Action::Transfer {
                        lot: LotId::new("co-001"),
                        from: holding("nl-covra", "nl-vlissingen", Programme::National),
                        to: holding("nl-covra", "nl-vlissingen", Programme::National),
                        quantity: amount("1", Unit::T),
                    },
                )]
            },
        },
        Case {
            name: "purity zero",
            atomic: false,
            expect: "invalid_field",
            commands: |h| vec![covra(h, "a1", acquire("co-2", "cobalt", 0, "CD", amount("1", Unit::T)))],
        },
        Case {
            name: "purity above a million",
            atomic: false,
            expect: "invalid_field",
            commands: |h| vec![covra(h, "a1", acquire("co-2", "cobalt", 1_000_001, "CD", amount("1", Unit::T)))],
        },
        Case {
            name: "look-alike id",
            atomic: false,
            expect: "invalid_id",
            commands: |h| vec![covra(h, "a1", acquire("co-\u{0430}", "cobalt", 990_000, "CD", amount("1", Unit::T)))],
        },
        Case {
            name: "control character in id",
            atomic: false,
            expect: "invalid_id",
            commands: |h| vec![covra(h, "a\u{7}1", release(amount("1", Unit::T)))],
        },
        Case {
            name: "control character in text",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                vec![covra(
                    h,
                    "r1",
                    Action::Release {
                        lot: LotId::new("co-001"),
                        from: holding("nl-covra", "nl-vlissingen", Programme::National),
                        quantity: amount("1", Unit::T),
                        reason: ReleaseReason::Sale,
                        recipient: "Umi\u{1b}[31mcore".into(),
                    },
                )]
            },
        },
        Case {
            name: "origin not a country code",
            atomic: false,
            expect: "invalid_id",
            commands: |h| vec![covra(h, "a1", acquire("co-2", "cobalt", 990_000, "Congo", amount("1", Unit::T)))],
        },
        Case {
            name: "price not a decimal",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                let mut a = acquire("co-2", "cobalt", 990_000, "CD", amount("1", Unit::T));
                if let Action::Acquire { price, .. } = &mut a {
                    *price = Some(Price { amount: "3.1e4".into(), currency: "EUR".into() });
                }
                vec![covra(h, "a1", a)]
            },
        },
        Case {
            name: "second genesis",
            atomic: false,
            expect: "already_initialised",
            commands: |h| {
                vec![admin(
                    h,
                    "g2",
                    Action::Genesis {
                        ledger: "again".into(),
                        admin_key: h.world.admin.id.clone(),
                        public_key: h.world.admin.public_key_hex(),
                        rules: None,
                    },
                )]
            },
        },
        Case {
            name: "reverse unknown event",
            atomic: false,
            expect: "unknown_reference",
            commands: |h| {
                vec![covra(h, "v1", Action::Reverse { target: EventId::new("never-happened"), reason: "x".into() })]
            },
        },
        Case {
            name: "facility named in_transit",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                vec![admin(
                    h,
                    "f1",
                    Action::RegisterFacility {
                        facility: "in_transit".into(),
                        name: "x".into(),
                        country: Country::new("NL"),
                    },
                )]
            },
        },
        Case {
            name: "operator key without party",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                vec![admin(
                    h,
                    "k1",
                    Action::RegisterKey {
                        key: "k-1".into(),
                        public_key: deterministic_key("k-1").public_key_hex(),
                        role: KeyRole::Operator,
                        party: None,
                    },
                )]
            },
        },
        Case {
            name: "public key not a key",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                vec![admin(
                    h,
                    "k1",
                    Action::RegisterKey {
                        key: "k-1".into(),
                        public_key: "ab".repeat(16),
                        role: KeyRole::Admin,
                        party: None,
                    },
                )]
            },
        },
        Case {
            name: "public key of small order",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                let small = curve25519_dalek::constants::EIGHT_TORSION[2].compress();
                vec![admin(
                    h,
                    "k1",
                    Action::RegisterKey {
                        key: "k-1".into(),
                        public_key: hex::encode(small.as_bytes()),
                        role: KeyRole::Admin,
                        party: None,
                    },
                )]
            },
        },
        Case {
            name: "public key with a small-order component",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                use curve25519_dalek::{constants::EIGHT_TORSION, edwards::CompressedEdwardsY};
                let honest = deterministic_key("k-1").public_key_hex();
                let point = CompressedEdwardsY(hex::decode(honest).unwrap().try_into().unwrap()).decompress().unwrap();
                vec![admin(
                    h,
                    "k1",
                    Action::RegisterKey {
                        key: "k-1".into(),
                        public_key: hex::encode((point + EIGHT_TORSION[1]).compress().as_bytes()),
                        role: KeyRole::Admin,
                        party: None,
                    },
                )]
            },
        },
        Case {
            name: "figure for an absurd year",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                vec![admin(
                    h,
                    "f1",
                    Action::RegisterFigure {
                        figure: FigureKind::Consumption,
                        partner: Country::new("NL"),
                        material: MaterialId::new("cobalt"),
                        year: 3000,
                        quantity: amount("1", Unit::T),
                    },
                )]
            },
        },
        Case {
            name: "release rules of an unknown partner",
            atomic: false,
            expect: "unknown_partner",
            commands: |h| vec![admin(h, "rr1", rules("XX", "cobalt", "release by order"))],
        },
        Case {
            name: "release rules of an unknown material",
            atomic: false,
            expect: "unknown_material",
            commands: |h| vec![admin(h, "rr2", rules("NL", "unobtainium", "release by order"))],
        },
        Case {
            name: "empty release rules",
            atomic: false,
            expect: "invalid_field",
            commands: |h| vec![admin(h, "rr3", rules("NL", "cobalt", "   "))],
        },
        Case {
            name: "release rules longer than the limit",
            atomic: false,
            expect: "invalid_field",
            commands: |h| vec![admin(h, "rr4", rules("NL", "cobalt", &"x".repeat(4097)))],
        },
        Case {
            name: "release rules signed by an operator",
            atomic: false,
            expect: "not_admin",
            commands: |h| vec![covra(h, "rr5", rules("NL", "cobalt", "release by order"))],
        },
        Case {
            name: "withhold an unknown lot",
            atomic: false,
            expect: "unknown_reference",
            commands: |h| {
                vec![admin(
                    h,
                    "wh1",
                    Action::Withhold { party: "nl-covra".into(), lot: LotId::new("nope"), reason: "defence".into() },
                )]
            },
        },
        Case {
            name: "withhold for an unknown party",
            atomic: false,
            expect: "unknown_reference",
            commands: |h| {
                vec![admin(
                    h,
                    "wh2",
                    Action::Unwithhold { party: "nobody".into(), lot: LotId::new("co-001"), reason: "defence".into() },
                )]
            },
        },
        Case {
            name: "withhold without a reason",
            atomic: false,
            expect: "invalid_field",
            commands: |h| {
                vec![admin(
                    h,
                    "wh3",
                    Action::Withhold { party: "nl-covra".into(), lot: LotId::new("co-001"), reason: "".into() },
                )]
            },
        },
        Case {
            name: "withhold by the holder's own operator key",
            atomic: false,
            expect: "not_admin",
            commands: |h| {
                vec![covra(
                    h,
                    "wh4",
                    Action::Withhold { party: "nl-covra".into(), lot: LotId::new("co-001"), reason: "defence".into() },
                )]
            },
        },
        Case {
            name: "adjust below zero",
            atomic: false,
            expect: "insufficient_stock",
            commands: |h| {
                vec![covra(
                    h,
                    "j1",
                    Action::Adjust {
                        lot: LotId::new("co-001"),
                        at: holding("nl-covra", "nl-vlissingen", Programme::Nato),
                        direction: Direction::Decrease,
                        quantity: amount("1", Unit::Kg),
                        reason: stockpile_ledger::domain::AdjustReason::StockTake,
                        note: "count".into(),
                    },
                )]
            },
        },
        Case {
            name: "atomic batch with one overdraw",
            atomic: true,
            expect: "batch_aborted",
            commands: |h| {
                vec![covra(h, "ok-1", release(amount("1", Unit::T))), covra(h, "bad-2", release(amount("20", Unit::T)))]
            },
        },
    ]
}

#[test]
fn every_rejection_is_typed_and_changes_nothing() {
    let mut h = fixture();
    for case in cases() {
        let before = h.state().clone();
        let log_before = h.ledger().store().records(1, u64::MAX).unwrap();
        let commands = (case.commands)(&h);
        let outcomes = h.submit(commands, case.atomic);
        let codes: Vec<&str> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Rejected(r) => r.code(),
                other => panic!("{}: expected a rejection, got {other:?}", case.name),
            })
            .collect();
        assert!(codes.contains(&case.expect), "{}: expected {}, got {codes:?}", case.name, case.expect);
        for o in &outcomes {
            if let Outcome::Rejected(r) = o {
                let message = r.to_string();
                assert!(!message.is_empty() && !message.ends_with('.'), "{}: message {message:?}", case.name);
            }
        }
        assert_eq!(h.state(), &before, "{}: state changed", case.name);
        assert_eq!(h.ledger().store().records(1, u64::MAX).unwrap(), log_before, "{}: log changed", case.name);
    }
    h.check_invariants();
}

#[test]
fn a_batch_is_atomic_even_when_the_culprit_is_last() {
    let mut h = fixture();
    let head = h.state().head.seq;
    let cmds: Vec<SignedCommand> =
        (0..5).map(|i| covra(&h, &format!("r{i}"), release(amount("2.5", Unit::T)))).collect();
    // 4 × 2.5 t = 10 t empties the position; the fifth overdraws, so none applies.
    let outcomes = h.submit(cmds, true);
    assert!(matches!(outcomes[4], Outcome::Rejected(Rejection::InsufficientStock { .. })), "{outcomes:?}");
    assert!(outcomes[..4].iter().all(|o| matches!(o, Outcome::Rejected(Rejection::BatchAborted { index: 4 }))));
    assert_eq!(h.state().head.seq, head);
    // Not atomic: the first four apply and the fifth alone is refused.
    let cmds: Vec<SignedCommand> =
        (0..5).map(|i| covra(&h, &format!("r{i}"), release(amount("2.5", Unit::T)))).collect();
    let outcomes = h.submit(cmds, false);
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Outcome::Appended { .. })).count(), 4);
    assert_eq!(h.state().head.seq, head + 4);
    h.check_invariants();
}

#[test]
fn a_group_of_submissions_commits_together_and_each_gets_its_own_outcome() {
    let mut h = fixture();
    let subs = vec![
        Submission {
            commands: stockpile_ledger::signing::verify_all(vec![covra(&h, "g1", release(amount("1", Unit::T)))]),
            atomic: true,
        },
        Submission {
            commands: stockpile_ledger::signing::verify_all(vec![covra(&h, "g2", release(amount("50", Unit::T)))]),
            atomic: true,
        },
        Submission {
            commands: stockpile_ledger::signing::verify_all(vec![covra(&h, "g3", release(amount("2", Unit::T)))]),
            atomic: true,
        },
    ];
    let head = h.state().head.seq;
    let out = h.ledger().commit_group(subs).unwrap();
    assert_eq!(out[0], vec![Outcome::Appended { seq: head + 1, event_id: EventId::new("g1") }]);
    assert!(matches!(out[1][0], Outcome::Rejected(Rejection::InsufficientStock { .. })));
    assert_eq!(out[2], vec![Outcome::Appended { seq: head + 2, event_id: EventId::new("g3") }]);
    h.reopen();
    h.check_invariants();
    assert_eq!(h.state().head.seq, head + 2);
    let _ = PartyId::new("unused");
}

/// On a partner's channel a refusal names nothing of another partner's records: a taken id
/// without its seq, another partner's party not by name, a reversal not by id. Off the
/// channel (the operator's own ledger) the same refusals name them.
#[test]
fn a_partners_channel_learns_nothing_of_other_partners_records() {
    let mut h = fixture();
    // DE's records: an acquisition, a transfer to NL's nl-mod, and its reversal.
    let de = h.world.key("de-rohstoff");
    let de_site = || holding("de-rohstoff", "de-hamburg", Programme::National);
    let de_records = vec![
        de.sign(command(
            "de-acq",
            at(T),
            Action::Acquire {
                lot: lot("w-de", "tungsten", Form::Metal, 999_000, "CN"),
                to: de_site(),
                quantity: amount("5", Unit::T),
                supplier: None,
                contract: None,
                price: None,
            },
        )),
        de.sign(command(
            "de-move",
            at(T),
            Action::Release {
                lot: LotId::new("w-de"),
                from: de_site(),
                quantity: amount("1", Unit::T),
                reason: ReleaseReason::Sale,
                recipient: "industry".into(),
            },
        )),
        de.sign(command("de-undo", at(T), Action::Reverse { target: EventId::new("de-move"), reason: "x".into() })),
    ];
    for o in h.submit(de_records, true) {
        assert!(matches!(o, Outcome::Appended { .. }), "{o:?}");
    }
    let nl = h.world.key("nl-mod");
    let attempts = [
        // DE's id, other content.
        nl.sign(command("de-acq", at(T), release(amount("1", Unit::Kg)))),
        // DE's stock.
        nl.sign(command(
            "nl-take",
            at(T),
            Action::Transfer {
                lot: LotId::new("w-de"),
                from: de_site(),
                to: holding("nl-mod", "nl-vlissingen", Programme::National),
                quantity: amount("1", Unit::T),
            },
        )),
        // DE's reversed event, reversed again.
        nl.sign(command("nl-undo", at(T), Action::Reverse { target: EventId::new("de-move"), reason: "x".into() })),
    ];
    let submit_as = |h: &mut Harness, origin: Option<&str>| -> Vec<Rejection> {
        attempts
            .iter()
            .map(|signed| {
                let mut verified = stockpile_ledger::signing::verify_all(vec![signed.clone()]);
                if let Some(Ok(v)) = verified.first_mut() {
                    v.signer.origin = origin.map(Country::new);
                }
                let submission = Submission { commands: verified, atomic: true };
                match h.ledger().commit_group(vec![submission]).unwrap().remove(0).remove(0) {
                    Outcome::Rejected(r) => r,
                    other => panic!("{signed:?} was not refused: {other:?}"),
                }
            })
            .collect()
    };
    let head = h.state().head.seq;
    let on_channel = submit_as(&mut h, Some("NL"));
    assert!(matches!(on_channel[0], Rejection::IdConflict { seq: None, .. }), "{:?}", on_channel[0]);
    assert!(matches!(on_channel[1], Rejection::NotOwner { party: None, .. }), "{:?}", on_channel[1]);
    assert!(matches!(on_channel[2], Rejection::AlreadyReversed { by: None, .. }), "{:?}", on_channel[2]);
    let de_seqs: Vec<String> = (head - 2..=head).map(|s| format!("seq {s}")).collect();
    for r in &on_channel {
        let message = r.to_string();
        for secret in ["de-rohstoff", "de-undo"].iter().map(|s| s.to_string()).chain(de_seqs.clone()) {
            assert!(!message.contains(&secret), "{message:?} names {secret}");
        }
    }
    let off_channel = submit_as(&mut h, None);
    assert!(off_channel[0].to_string().contains(&format!("seq {}", head - 2)), "{}", off_channel[0]);
    assert!(off_channel[1].to_string().contains("de-rohstoff"), "{}", off_channel[1]);
    assert!(off_channel[2].to_string().contains("de-undo"), "{}", off_channel[2]);
    assert_eq!(h.state().head.seq, head, "nothing was written");
}
