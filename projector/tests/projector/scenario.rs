//! Every movement and correction through a real ledger, then holdings now and as of several
//! dates, with numbers worked out by hand.

use super::harness::{query, row, rows, Harness, Rows};
use stockpile_ledger::domain::{
    Action, AdjustReason, Amount, ConvertInto, Direction, EventId, Form, Holding, LotId, Programme, ReleaseReason, Unit,
};
use stockpile_ledger::testkit::{amount, at, holding, lot};
use stockpile_projector::{Dimension, HoldingsQuery, Projector};
use Dimension::*;
use Programme::{Eu, National, Nato};

fn t(text: &str) -> Amount {
    amount(text, Unit::T)
}

fn kg(text: &str) -> Amount {
    amount(text, Unit::Kg)
}

fn acquire(lot_id: &str, material: &str, form: Form, purity_ppm: u32, origin: &str, to: Holding, q: Amount) -> Action {
    Action::Acquire {
        lot: lot(lot_id, material, form, purity_ppm, origin),
        to,
        quantity: q,
        supplier: None,
        contract: None,
        price: None,
    }
}

/// One step of the scenario: who signs, the event id, when it occurred, what it does.
pub struct Event {
    pub party: &'static str,
    pub id: &'static str,
    pub occurred_at: &'static str,
    pub action: Action,
}

fn ev(party: &'static str, id: &'static str, occurred_at: &'static str, action: Action) -> Event {
    Event { party, id, occurred_at, action }
}

/// The scenario, in the order it is recorded. The last two are back-dated: recorded after
/// everything else, dated in February.
pub fn events() -> Vec<Event> {
    let ga = || LotId::new("ga-001");
    vec![
        ev(
            "nl-covra",
            "acq-ga",
            "2026-02-01T10:00:00Z",
            acquire(
                "ga-001",
                "gallium",
                Form::Metal,
                999_990,
                "JP",
                holding("nl-covra", "in_transit", National),
                t("2.5"),
            ),
        ),
        ev(
            "nl-covra",
            "store-ga",
            "2026-02-05T10:00:00Z",
            Action::Store {
                lot: ga(),
                party: "nl-covra".into(),
                programme: National,
                from: holding("nl-covra", "in_transit", National).location,
                to: "be-antwerp".into(),
                quantity: kg("2000"),
            },
        ),
        ev(
            "nl-covra",
            "xfer-ga",
            "2026-02-10T10:00:00Z",
            Action::Transfer {
                lot: ga(),
                from: holding("nl-covra", "be-antwerp", National),
                to: holding("de-rohstoff", "de-hamburg", Eu),
                quantity: kg("750"),
            },
        ),
        ev(
            "de-rohstoff",
            "acq-co",
            "2026-03-01T10:00:00Z",
            acquire(
                "co-001",
                "cobalt",
                Form::Hydroxide,
                300_000,
                "CD",
                holding("de-rohstoff", "de-hamburg", Eu),
                t("10"),
            ),
        ),
        ev(
            "nl-private",
            "acq-cu",
            "2026-03-05T10:00:00Z",
            acquire(
                "cu-001",
                "copper",
                Form::Metal,
                999_900,
                "CL",
                holding("nl-private", "nl-rotterdam", National),
                t("20"),
            ),
        ),
        ev(
            "de-rohstoff",
            "rel-ga",
            "2026-03-10T10:00:00Z",
            Action::Release {
                lot: ga(),
                from: holding("de-rohstoff", "de-hamburg", Eu),
                quantity: kg("100"),
                reason: ReleaseReason::EmergencyDrawdown,
                recipient: "Infineon".into(),
            },
        ),
        ev(
            "de-rohstoff",
            "conv-co",
            "2026-03-15T10:00:00Z",
            Action::Convert {
                lot: LotId::new("co-001"),
                from: holding("de-rohstoff", "de-hamburg", Eu),
                consumed: t("4"),
                into: ConvertInto {
                    id: LotId::new("co-m-001"),
                    form: Form::Metal,
                    purity_ppm: 998_000,
                    to: holding("x", "de-hamburg", Eu).location,
                    certificate: None,
                },
                produced: t("1.2"),
            },
        ),
        ev(
            "nl-covra",
            "adj-ga",
            "2026-03-20T10:00:00Z",
            Action::Adjust {
                lot: ga(),
                at: holding("nl-covra", "be-antwerp", National),
                direction: Direction::Decrease,
                quantity: kg("3"),
                reason: AdjustReason::StockTake,
                note: "annual count".into(),
            },
        ),
        ev(
            "de-rohstoff",
            "rev-rel",
            "2026-04-01T10:00:00Z",
            Action::Reverse { target: EventId::new("rel-ga"), reason: "drawdown cancelled".into() },
        ),
        // back-dated: recorded last
        ev(
            "be-defence",
            "acq-ge",
            "2026-02-20T10:00:00Z",
            acquire(
                "ge-001",
                "germanium",
                Form::Metal,
                999_999,
                "CN",
                holding("be-defence", "be-antwerp", Nato),
                kg("500"),
            ),
        ),
        ev(
            "nl-covra",
            "xfer-late",
            "2026-02-03T10:00:00Z",
            Action::Transfer {
                lot: ga(),
                from: holding("nl-covra", "in_transit", National),
                to: holding("nl-mod", "in_transit", Nato),
                quantity: kg("250"),
            },
        ),
    ]
}

/// Records every event, calling `after` after each (to catch up, reopen, …).
pub fn run(h: &mut Harness, mut after: impl FnMut(&mut Harness, usize)) {
    h.clock.set(at("2026-04-02T00:00:00Z"));
    for (i, e) in events().into_iter().enumerate() {
        if e.id == "acq-ge" {
            h.clock.set(at("2026-04-05T00:00:00Z"));
        }
        h.ok(e.party, e.id, e.occurred_at, e.action);
        after(h, i);
    }
}

fn check(p: &Projector, q: &HoldingsQuery, want: Rows) {
    let got = p.holdings(q).expect("query");
    assert_eq!(rows(&got), want, "query {}", serde_json::to_string(q).unwrap());
    let gross: i64 = want.iter().map(|r| r.1).sum();
    assert_eq!(got.total.gross_g, gross, "total of {}", serde_json::to_string(q).unwrap());
}

#[test]
fn holdings_now_and_as_of_dates() {
    let mut h = Harness::new();
    run(&mut h, |_, _| {});
    let (_dir, p) = h.fresh_projector();
    assert_eq!(p.head().seq, h.head());

    // Now. Gallium 99.999 %: contained = Σ gross × 999 990 ppm, rounded down once per row.
    let now = p.holdings(&query(None, &[Partner])).unwrap();
    assert_eq!(
        rows(&now),
        vec![row(&["BE"], 500_000, 499_999), row(&["DE"], 7_950_000, 3_747_592), row(&["NL"], 21_747_000, 21_744_982),]
    );
    assert_eq!((now.total.gross_g, now.total.contained_g), (30_197_000, 25_992_574));
    assert_eq!((now.total.gross_t.as_str(), now.total.contained_t.as_str()), ("30.197000", "25.992574"));
    assert_eq!(now.seq, h.head());
    check(
        &p,
        &query(None, &[Material]),
        vec![
            row(&["cobalt"], 7_200_000, 2_997_600),
            row(&["copper"], 20_000_000, 19_998_000),
            row(&["gallium"], 2_497_000, 2_496_975),
            row(&["germanium"], 500_000, 499_999),
        ],
    );
    check(
        &p,
        &query(None, &[HolderType]),
        vec![
            row(&["mandated_operator"], 1_497_000, 1_496_985),
            row(&["private"], 20_000_000, 19_998_000),
            row(&["public_authority"], 750_000, 749_997),
            row(&["public_undertaking"], 7_950_000, 3_747_592),
        ],
    );
    check(
        &p,
        &query(None, &[FacilityCountry]),
        vec![
            row(&["-"], 500_000, 499_995),
            row(&["BE"], 1_747_000, 1_746_987),
            row(&["DE"], 7_950_000, 3_747_592),
            row(&["NL"], 20_000_000, 19_998_000),
        ],
    );
    // Held abroad: partner against facility country.
    check(
        &p,
        &query(None, &[Partner, FacilityCountry]),
        vec![
            row(&["BE", "BE"], 500_000, 499_999),
            row(&["DE", "DE"], 7_950_000, 3_747_592),
            row(&["NL", "-"], 500_000, 499_995),
            row(&["NL", "BE"], 1_247_000, 1_246_987),
            row(&["NL", "NL"], 20_000_000, 19_998_000),
        ],
    );
    // The conversion: 6 t of hydroxide left at 30 %, 1.2 t of metal at 99.8 %.
    check(
        &p,
        &query(None, &[Lot, Form, Purity]),
        vec![
            row(&["co-001", "hydroxide", "300000"], 6_000_000, 1_800_000),
            row(&["co-m-001", "metal", "998000"], 1_200_000, 1_197_600),
            row(&["cu-001", "metal", "999900"], 20_000_000, 19_998_000),
            row(&["ga-001", "metal", "999990"], 2_497_000, 2_496_975),
            row(&["ge-001", "metal", "999999"], 500_000, 499_999),
        ],
    );

    // Filters.
    let crma_scope = HoldingsQuery {
        holder_type: vec![
            stockpile_ledger::domain::HolderType::PublicAuthority,
            stockpile_ledger::domain::HolderType::PublicUndertaking,
            stockpile_ledger::domain::HolderType::MandatedOperator,
        ],
        ..query(None, &[Partner])
    };
    check(
        &p,
        &crma_scope,
        vec![row(&["BE"], 500_000, 499_999), row(&["DE"], 7_950_000, 3_747_592), row(&["NL"], 1_747_000, 1_746_982)],
    );
    let nl_gallium =
        HoldingsQuery { partner: vec!["NL".into()], material: vec!["gallium".into()], ..query(None, &[Party]) };
    check(&p, &nl_gallium, vec![row(&["nl-covra"], 1_497_000, 1_496_985), row(&["nl-mod"], 250_000, 249_997)]);
    let in_transit = HoldingsQuery { facility: vec![holding("x", "in_transit", Eu).location], ..query(None, &[]) };
    check(&p, &in_transit, vec![row(&[], 500_000, 499_995)]);
    let eu_in_de =
        HoldingsQuery { programme: vec![Eu], facility_country: vec!["DE".into()], ..query(None, &[Programme]) };
    check(&p, &eu_in_de, vec![row(&["EU"], 7_950_000, 3_747_592)]);
    let one_lot = HoldingsQuery { lot: vec![LotId::new("ga-001")], ..query(Some("2026-02-04"), &[Party]) };
    check(&p, &one_lot, vec![row(&["nl-covra"], 2_250_000, 2_249_977), row(&["nl-mod"], 250_000, 249_997)]);
    let unknown = HoldingsQuery { material: vec!["unobtainium".into()], ..query(None, &[]) };
    check(&p, &unknown, vec![]);

    // As of dates: business time, end of day UTC, back-dated records on their own dates.
    check(&p, &query(Some("2026-01-31"), &[Partner]), vec![]);
    check(&p, &query(Some("2026-02-01"), &[Partner]), vec![row(&["NL"], 2_500_000, 2_499_975)]);
    check(
        &p,
        &query(Some("2026-02-03"), &[Party, Facility]),
        vec![row(&["nl-covra", "in_transit"], 2_250_000, 2_249_977), row(&["nl-mod", "in_transit"], 250_000, 249_997)],
    );
    check(&p, &query(Some("2026-02-03T09:59:59Z"), &[Party]), vec![row(&["nl-covra"], 2_500_000, 2_499_975)]);
    check(
        &p,
        &query(Some("2026-02-03T10:00:00Z"), &[Party]),
        vec![row(&["nl-covra"], 2_250_000, 2_249_977), row(&["nl-mod"], 250_000, 249_997)],
    );
    check(
        &p,
        &query(Some("2026-02-15"), &[Partner]),
        vec![row(&["DE"], 750_000, 749_992), row(&["NL"], 1_750_000, 1_749_982)],
    );
    check(
        &p,
        &query(Some("2026-02-20"), &[Partner]),
        vec![row(&["BE"], 500_000, 499_999), row(&["DE"], 750_000, 749_992), row(&["NL"], 1_750_000, 1_749_982)],
    );
    check(
        &p,
        &query(Some("2026-03-12"), &[Material]),
        vec![
            row(&["cobalt"], 10_000_000, 3_000_000),
            row(&["copper"], 20_000_000, 19_998_000),
            row(&["gallium"], 2_400_000, 2_399_976),
            row(&["germanium"], 500_000, 499_999),
        ],
    );
    check(
        &p,
        &query(Some("2026-03-12"), &[Partner]),
        vec![row(&["BE"], 500_000, 499_999), row(&["DE"], 10_650_000, 3_649_993), row(&["NL"], 21_750_000, 21_747_982)],
    );
    // After the conversion the contained cobalt is lower: 3 t became 2.9976 t.
    check(
        &p,
        &query(Some("2026-03-31"), &[Material]),
        vec![
            row(&["cobalt"], 7_200_000, 2_997_600),
            row(&["copper"], 20_000_000, 19_998_000),
            row(&["gallium"], 2_397_000, 2_396_976),
            row(&["germanium"], 500_000, 499_999),
        ],
    );
    check(
        &p,
        &query(Some("2026-03-31"), &[Partner]),
        vec![row(&["BE"], 500_000, 499_999), row(&["DE"], 7_850_000, 3_647_593), row(&["NL"], 21_747_000, 21_744_982)],
    );
    // The reversal restores the released 100 kg on its own date; a future date is now.
    for day in ["2026-04-01", "2030-12-31"] {
        assert_eq!(rows(&p.holdings(&query(Some(day), &[Partner])).unwrap()), rows(&now), "as of {day}");
    }
    let by_lot_then = p.holdings(&query(Some("2026-03-12"), &[Lot, Party])).unwrap();
    assert_eq!(
        rows(&by_lot_then),
        vec![
            row(&["co-001", "de-rohstoff"], 10_000_000, 3_000_000),
            row(&["cu-001", "nl-private"], 20_000_000, 19_998_000),
            row(&["ga-001", "de-rohstoff"], 650_000, 649_993),
            row(&["ga-001", "nl-covra"], 1_500_000, 1_499_985),
            row(&["ga-001", "nl-mod"], 250_000, 249_997),
            row(&["ge-001", "be-defence"], 500_000, 499_999),
        ]
    );

    // The projector's current positions are the ledger's.
    let ledger: Vec<_> = h.state().positions_sorted().collect();
    assert_eq!(p.snapshot().positions(), ledger);
}

#[test]
fn query_and_answer_wire_shapes() {
    let q: HoldingsQuery = serde_json::from_str(
        r#"{"as_of":"2026-03-31","partner":"NL","material":["gallium","cobalt"],"facility":["in_transit","be-antwerp"],"group_by":["partner","facility_country"]}"#,
    )
    .unwrap();
    assert_eq!(q.partner, vec!["NL".into()]);
    assert_eq!(q.material.len(), 2);
    let back: HoldingsQuery = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
    assert_eq!(back, q);
    assert!(serde_json::from_str::<HoldingsQuery>(r#"{"colour":"red"}"#).is_err(), "unknown fields are refused");
    assert!(serde_json::from_str::<HoldingsQuery>(r#"{"as_of":"31/03/2026"}"#).is_err());
    assert!(serde_json::from_str::<HoldingsQuery>(r#"{"group_by":["planet"]}"#).is_err());
    let twice = HoldingsQuery { group_by: vec![Partner, Partner], ..HoldingsQuery::default() };
    assert!(matches!(twice.validate(), Err(stockpile_projector::QueryError::DuplicateDimension { .. })));

    let mut h = Harness::new();
    run(&mut h, |_, _| {});
    let (_dir, p) = h.fresh_projector();
    let answer = p.holdings(&q).unwrap();
    let json = serde_json::to_string(&answer).unwrap();
    assert!(json.contains(r#"{"key":{"partner":"NL","facility_country":null},"totals":{"gross_g":500000,"contained_g":499995,"gross_t":"0.500000","contained_t":"0.499995"}}"#), "{json}");
    let back: stockpile_projector::Holdings = serde_json::from_str(&json).unwrap();
    assert_eq!(back, answer);
}
