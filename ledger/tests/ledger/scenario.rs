//! The four movements and the corrections, end to end, with numbers worked out by hand.

use super::harness::Harness;
use stockpile_ledger::domain::{
    Action, AdjustReason, ConvertInto, Direction, EventId, Form, LotId, PositionKey, Programme, Rejection,
    ReleaseReason, Unit,
};
use stockpile_ledger::record;
use stockpile_ledger::testkit::{amount, at, command, deterministic_key, holding, lot};
use stockpile_ledger::Outcome;

fn pos(party: &str, lot_id: &str, location: &str, programme: Programme) -> PositionKey {
    holding(party, location, programme).position(&LotId::new(lot_id))
}

#[test]
fn movements_corrections_and_idempotency() {
    let mut h = Harness::new();
    let t = at("2026-02-01T10:00:00Z");
    h.clock.set(at("2026-02-02T00:00:00Z"));
    let covra = deterministic_key("nl-covra-ops");
    let nl_mod = deterministic_key("nl-mod-ops");
    let acquire = covra.sign(command(
        "acq-1",
        t,
        Action::Acquire {
            lot: lot("ga-001", "gallium", Form::Metal, 999_990, "JP"),
            to: holding("nl-covra", "in_transit", Programme::National),
            quantity: amount("2.5", Unit::T),
            supplier: Some("Dowa".into()),
            contract: None,
            price: None,
        },
    ));
    let store = covra.sign(command(
        "store-1",
        t,
        Action::Store {
            lot: LotId::new("ga-001"),
            party: "nl-covra".into(),
            programme: Programme::National,
            from: holding("x", "in_transit", Programme::National).location,
            to: "be-antwerp".into(),
            quantity: amount("2000", Unit::Kg),
        },
    ));
    let transfer = covra.sign(command(
        "xfer-1",
        t,
        Action::Transfer {
            lot: LotId::new("ga-001"),
            from: holding("nl-covra", "be-antwerp", Programme::National),
            to: holding("nl-mod", "be-antwerp", Programme::Nato),
            quantity: amount("750", Unit::Kg),
        },
    ));
    let outcomes = h.submit(vec![acquire.clone(), store, transfer], true);
    let seqs: Vec<u64> = outcomes.iter().map(|o| o.seq().expect("appended")).collect();
    let base = seqs[0];
    assert_eq!(seqs, vec![base, base + 1, base + 2]);

    assert_eq!(h.state().position(&pos("nl-covra", "ga-001", "in_transit", Programme::National)), 500_000);
    assert_eq!(h.state().position(&pos("nl-covra", "ga-001", "be-antwerp", Programme::National)), 1_250_000);
    assert_eq!(h.state().position(&pos("nl-mod", "ga-001", "be-antwerp", Programme::Nato)), 750_000);

    // Resending the same command answers with the original seq and writes nothing.
    let head = h.state().head.seq;
    assert_eq!(h.submit_one(acquire.clone()), Outcome::Duplicate { seq: base, event_id: EventId::new("acq-1") });
    assert_eq!(h.state().head.seq, head);
    // Same id, other content: a conflict.
    let mut changed = acquire.command.clone();
    changed.action = Action::Acquire {
        lot: lot("ga-002", "gallium", Form::Metal, 999_990, "JP"),
        to: holding("nl-covra", "in_transit", Programme::National),
        quantity: amount("1", Unit::T),
        supplier: None,
        contract: None,
        price: None,
    };
    let conflict = h.submit_one(covra.sign(changed));
    assert!(
        matches!(conflict, Outcome::Rejected(Rejection::IdConflict { seq, .. }) if seq == Some(base)),
        "{conflict:?}"
    );

    // Release 100 kg in an emergency, convert 500 kg in transit into oxide, stock-take finds 3 kg short.
    let release = nl_mod.sign(command(
        "rel-1",
        t,
        Action::Release {
            lot: LotId::new("ga-001"),
            from: holding("nl-mod", "be-antwerp", Programme::Nato),
            quantity: amount("100", Unit::Kg),
            reason: ReleaseReason::EmergencyDrawdown,
            recipient: "Thales Nederland".into(),
        },
    ));
    let convert = covra.sign(command(
        "conv-1",
        t,
        Action::Convert {
            lot: LotId::new("ga-001"),
            from: holding("nl-covra", "in_transit", Programme::National),
            consumed: amount("500", Unit::Kg),
            into: ConvertInto {
                id: LotId::new("ga-ox-001"),
                form: Form::Oxide,
                purity_ppm: 999_999,
                to: "nl-vlissingen".parse_location(),
                certificate: None,
            },
            produced: amount("672", Unit::Kg),
        },
    ));
    let adjust = covra.sign(command(
        "adj-1",
        t,
        Action::Adjust {
            lot: LotId::new("ga-001"),
            at: holding("nl-covra", "be-antwerp", Programme::National),
            direction: Direction::Decrease,
            quantity: amount("3", Unit::Kg),
            reason: AdjustReason::StockTake,
            note: "annual count 2026".into(),
        },
    ));
    for o in h.submit(vec![release, convert, adjust], false) {
        assert!(matches!(o, Outcome::Appended { .. }), "{o:?}");
    }
    assert_eq!(h.state().position(&pos("nl-mod", "ga-001", "be-antwerp", Programme::Nato)), 650_000);
    assert_eq!(h.state().position(&pos("nl-covra", "ga-001", "in_transit", Programme::National)), 0);
    assert_eq!(h.state().position(&pos("nl-covra", "ga-ox-001", "nl-vlissingen", Programme::National)), 672_000);
    assert_eq!(h.state().position(&pos("nl-covra", "ga-001", "be-antwerp", Programme::National)), 1_247_000);

    // Reverse the mistaken transfer: the compensating event debits nl-mod, so nl-mod signs.
    let by_covra = h.submit_one(covra.sign(command(
        "rev-1",
        t,
        Action::Reverse { target: EventId::new("xfer-1"), reason: "wrong programme".into() },
    )));
    assert!(matches!(by_covra, Outcome::Rejected(Rejection::NotOwner { .. })), "{by_covra:?}");
    let reverse = nl_mod.sign(command(
        "rev-2",
        t,
        Action::Reverse { target: EventId::new("xfer-1"), reason: "wrong programme".into() },
    ));
    // 750 kg were transferred but 100 kg were released since: only 650 kg remain.
    let too_much = h.submit_one(reverse);
    assert!(
        matches!(
            &too_much,
            Outcome::Rejected(Rejection::InsufficientStock { requested_g: 750_000, available_g: 650_000, .. })
        ),
        "{too_much:?}"
    );
    let reverse_release = nl_mod.sign(command(
        "rev-3",
        t,
        Action::Reverse { target: EventId::new("rel-1"), reason: "drawdown cancelled".into() },
    ));
    assert!(matches!(h.submit_one(reverse_release.clone()), Outcome::Appended { .. }));
    assert_eq!(h.state().position(&pos("nl-mod", "ga-001", "be-antwerp", Programme::Nato)), 750_000);
    let again =
        nl_mod.sign(command("rev-4", t, Action::Reverse { target: EventId::new("rel-1"), reason: "twice".into() }));
    assert!(matches!(h.submit_one(again), Outcome::Rejected(Rejection::AlreadyReversed { .. })));
    let not_movement = nl_mod.sign(command(
        "rev-5",
        t,
        Action::Reverse { target: EventId::new("reg-party-nl-mod"), reason: "no".into() },
    ));
    assert!(matches!(h.submit_one(not_movement), Outcome::Rejected(Rejection::NotReversible { .. })));

    // Lot conservation: 2.5 t acquired; 500 kg converted out; 3 kg adjusted down; release reversed.
    let lot_state = &h.state().lots[&LotId::new("ga-001")];
    assert_eq!(lot_state.balance_g(), 2_500_000 - 500_000 - 3_000);
    h.check_invariants();

    // Records chain, carry the operator's stated amount and survive a reopen.
    let head_before = h.state().head.clone();
    h.reopen();
    assert_eq!(h.state().head, head_before);
    h.check_invariants();
    let bytes = h.ledger().store().record(base).unwrap().unwrap();
    let rec = record::decode(&bytes).unwrap();
    assert_eq!(rec.body.kind, "acquire");
    assert_eq!(rec.body.scope.partners, vec!["NL".into()]);
    match rec.body.event {
        stockpile_ledger::domain::Event::Acquired { quantity, .. } => {
            assert_eq!(quantity.grams, 2_500_000);
            assert_eq!(quantity.stated, amount("2.5", Unit::T));
        }
        other => panic!("expected an acquire, got {other:?}"),
    }
    assert_eq!(rec.body.recorded_at, at("2026-02-02T00:00:00Z"));
}

trait ParseLocation {
    fn parse_location(self) -> stockpile_ledger::domain::Location;
}

impl ParseLocation for &str {
    fn parse_location(self) -> stockpile_ledger::domain::Location {
        holding("x", self, Programme::National).location
    }
}

#[test]
fn troy_ounces_keep_the_stated_amount() {
    let mut h = Harness::new();
    let t = at("2026-02-01T10:00:00Z");
    h.clock.set(at("2026-02-02T00:00:00Z"));
    let o = h.submit_one(deterministic_key("nl-mod-ops").sign(command(
        "pt-1",
        t,
        Action::Acquire {
            lot: lot("pt-001", "platinum", Form::Metal, 999_500, "ZA"),
            to: holding("nl-mod", "nl-vlissingen", Programme::National),
            quantity: amount("1000", Unit::Ozt),
            supplier: None,
            contract: None,
            price: None,
        },
    )));
    assert!(matches!(o, Outcome::Appended { .. }));
    // 1000 ozt = 31103.4768 g -> 31103 g (round half to even)
    assert_eq!(h.state().position(&pos("nl-mod", "pt-001", "nl-vlissingen", Programme::National)), 31_103);
}

/// Replay reads the fields it folds straight off a record's canonical layout. Operator text
/// that spells the keys it looks for (in the signed command and in the event), and bodies
/// in any other layout, must give exactly what decoding the whole body gives — or nothing,
/// so the caller decodes it whole.
#[test]
fn replay_reads_the_same_fields_from_the_layout_as_from_the_json() {
    let mut h = Harness::new();
    let t = at("2026-02-01T10:00:00Z");
    h.clock.set(at("2026-02-02T00:00:00Z"));
    let covra = deterministic_key("nl-covra-ops");
    let spelled = r#"","event_id":"forged","command_digest":"00","event":{"kind":"acquired"},"seq":1}\"},"#;
    let commands = vec![
        covra.sign(command(
            "acq-layout",
            t,
            Action::Acquire {
                lot: lot("co-layout", "cobalt", Form::Metal, 998_000, "CD"),
                to: holding("nl-covra", "in_transit", Programme::National),
                quantity: amount("3", Unit::T),
                supplier: Some(spelled.into()),
                contract: None,
                price: None,
            },
        )),
        covra.sign(command(
            "adj-layout",
            t,
            Action::Adjust {
                lot: LotId::new("co-layout"),
                at: holding("nl-covra", "in_transit", Programme::National),
                direction: Direction::Decrease,
                quantity: amount("2", Unit::Kg),
                reason: AdjustReason::StockTake,
                note: spelled.into(),
            },
        )),
        covra.sign(command(
            "rev-layout",
            t,
            Action::Reverse { target: EventId::new("adj-layout"), reason: spelled.into() },
        )),
    ];
    for o in h.submit(commands, true) {
        assert!(matches!(o, Outcome::Appended { .. }), "{o:?}");
    }
    let head = h.state().head.seq;
    let store = h.ledger().store();
    for seq in 1..=head {
        let line = store.record(seq).unwrap().expect("stored");
        let (body, _) = record::split_sealed(&line).expect("sealed layout");
        let whole: record::ReplayBody = serde_json::from_slice(body).unwrap();
        assert_eq!(record::ReplayBody::from_canonical(body).as_ref(), Some(&whole), "seq {seq}");
        // The same body in other layouts: pretty-printed, and with its keys in reverse order.
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        let reversed = {
            let object = value.as_object().unwrap();
            let members: Vec<String> =
                object.iter().rev().map(|(k, v)| format!("{}:{v}", serde_json::json!(k))).collect();
            format!("{{{}}}", members.join(","))
        };
        for other in [serde_json::to_string_pretty(&value).unwrap(), reversed] {
            if let Some(fields) = record::ReplayBody::from_canonical(other.as_bytes()) {
                assert_eq!(fields, whole, "seq {seq} read off {other}");
            }
            assert_eq!(record::ReplayBody::decode(other.as_bytes()).unwrap(), whole, "seq {seq}");
        }
        // Forged bodies, still sorted and without whitespace: a key given twice, and a later
        // member holding look-alikes of the keys the layout reader looks for. Whatever it
        // reads must be what the JSON decoder reads; where that refuses, it must too.
        let text = std::str::from_utf8(body).unwrap();
        let look_alikes = format!(
            r#""scope":{{"command_digest":"{}","event":{},"event_id":"B","key":"q","prev_hash":"{}","recorded_at":"1999-01-01T00:00:00Z","#,
            "1".repeat(64),
            value["event"],
            "3".repeat(64)
        );
        for forged in [text.replace(r#","seq":"#, r#","seq":7,"seq":"#), text.replace(r#""scope":{"#, &look_alikes)] {
            assert_ne!(forged, text);
            if let Some(fields) = record::ReplayBody::from_canonical(forged.as_bytes()) {
                assert_eq!(serde_json::from_str::<record::ReplayBody>(&forged).ok(), Some(fields), "{forged}");
            }
        }
    }
    h.check_invariants();
}

/// Rules 1 decide a back-dated release against the balance in seq order and accept it; an
/// admin raises the rules to 2, after which the same kind of release is refused for its date,
/// a reversal of an acquisition whose stock has moved on is refused, and the log re-executes
/// (replay equals the live state) with each record under the rules that decided it.
#[test]
fn rules_are_raised_by_a_signed_record_and_decide_from_the_next_record_on() {
    use stockpile_ledger::domain::rules;
    let mut h = Harness::under(Default::default(), None);
    assert_eq!(h.state().rules, rules::SEQUENCE_ORDER);
    h.clock.set(at("2026-06-01T00:00:00Z"));
    let covra = deterministic_key("nl-covra-ops");
    let admin = deterministic_key("admin");
    let site = || holding("nl-covra", "nl-vlissingen", Programme::National);
    let release = |id: &str, day: &str, kg: &str| {
        covra.sign(command(
            id,
            at(day),
            Action::Release {
                lot: LotId::new("co-1"),
                from: site(),
                quantity: amount(kg, Unit::Kg),
                reason: ReleaseReason::Sale,
                recipient: "industry".into(),
            },
        ))
    };
    let acquire = covra.sign(command(
        "acq-co-1",
        at("2026-03-01"),
        Action::Acquire {
            lot: lot("co-1", "cobalt", Form::Metal, 995_000, "CD"),
            to: site(),
            quantity: amount("10", Unit::T),
            supplier: None,
            contract: None,
            price: None,
        },
    ));
    assert!(h.submit_one(acquire).seq().is_some());
    // Rules 1: a release dated in January, before the lot arrived in March, is accepted.
    assert!(h.submit_one(release("rel-jan", "2026-01-15", "1000")).seq().is_some());
    // Only upwards, and only by an admin key.
    let raise = |id: &str, to: u32| admin.sign(command(id, at("2026-06-01"), Action::RaiseRules { rules: to }));
    let by_operator = covra.sign(command("raise-op", at("2026-06-01"), Action::RaiseRules { rules: 2 }));
    assert!(matches!(h.submit_one(by_operator), Outcome::Rejected(Rejection::NotAdmin { .. })));
    assert!(matches!(
        h.submit_one(raise("raise-9", 9)),
        Outcome::Rejected(Rejection::InvalidField { field: "rules", .. })
    ));
    assert!(h.submit_one(raise("raise-2", 2)).seq().is_some());
    assert_eq!(h.state().rules, rules::BUSINESS_TIME);
    assert!(matches!(h.submit_one(raise("raise-2-again", 2)), Outcome::Rejected(Rejection::InvalidField { .. })));
    // Rules 2: the same release, dated in February, is refused for its date.
    match h.submit_one(release("rel-feb", "2026-02-15", "1000")) {
        Outcome::Rejected(Rejection::InsufficientStockAt(short)) => {
            assert_eq!(short.at, at("2026-02-15"));
            // January's release, accepted under rules 1, left the position at -1 t then.
            assert_eq!(short.balance_g, -1_000_000);
            assert_eq!(short.requested_g, 1_000_000);
            assert_eq!(short.holds_from, Some(at("2026-03-01")));
        }
        other => panic!("expected insufficient_stock_at, got {other:?}"),
    }
    // Dated after the arrival it is fine; all 9 t moved on in April, a reversal of the
    // acquisition (which would take 10 t out from March on) is refused.
    assert!(h.submit_one(release("rel-apr", "2026-04-01", "9000")).seq().is_some());
    let reverse = covra.sign(command(
        "rev-acq",
        at("2026-05-01"),
        Action::Reverse { target: EventId::new("acq-co-1"), reason: "booked twice".into() },
    ));
    assert!(matches!(h.submit_one(reverse), Outcome::Rejected(Rejection::InsufficientStock { .. })));
    let live = h.state().clone();
    h.reopen();
    assert_eq!(h.state(), &live, "replay re-derives rules and timelines");
}
