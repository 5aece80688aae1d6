//! No stock below zero on any date (rules 2), end to end: a real ledger is fed random
//! commands dated anywhere from before their lot's acquisition to now — acquisitions,
//! transfers (in-transit legs too), releases, conversions, adjustments and reversals — and
//! then, for every partner, day and position, the projector's as-of holdings must be ≥ 0 and
//! equal the ledger's own balance over business time, and no stock figure of any report
//! (EU, IEA, NATO; months, quarters, the year) may be negative.
//!
//! Seeded: a failure prints the seed; rerun it with `BUSINESS_TIME_SEED=<n>`.

use chrono::{Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use stockpile_ledger::domain::{
    Action, AdjustReason, ConvertInto, Direction, EventId, Form, Holding, LotId, PositionKey, Programme, ReleaseReason,
    Unit,
};
use stockpile_ledger::signing::{self, SignedCommand};
use stockpile_ledger::testkit::{amount, at, command, deterministic_key, holding, lot, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerOptions, Outcome, Submission};
use stockpile_projector::query::{AsOf, Dimension, HoldingsQuery};
use stockpile_projector::report::{self, Framework, ReportRequest};
use stockpile_projector::{LedgerSource, Projector};

const SEEDS: u64 = 3;
const COMMANDS: usize = 300;
const PARTIES: [&str; 4] = ["nl-mod", "nl-covra", "de-rohstoff", "be-defence"];
const LOCATIONS: [&str; 4] = ["in_transit", "nl-vlissingen", "be-antwerp", "de-hamburg"];
const PROGRAMMES: [Programme; 3] = [Programme::National, Programme::Nato, Programme::Eu];
/// The first and last day commands are dated on; the ledger's clock stands after the last.
const FIRST_DAY: &str = "2026-01-01";
const DAYS: i64 = 150;

fn random_holding(rng: &mut ChaCha8Rng) -> Holding {
    holding(
        PARTIES[rng.gen_range(0..PARTIES.len())],
        LOCATIONS[rng.gen_range(0..LOCATIONS.len())],
        PROGRAMMES[rng.gen_range(0..PROGRAMMES.len())],
    )
}

/// A command dated at a random second of the period, against a position that holds stock now
/// (most of the time), so back-dating is what decides it.
fn random_command(rng: &mut ChaCha8Rng, ledger: &Ledger, step: usize, accepted: &[EventId]) -> (SignedCommand, String) {
    let occurred_at = at(FIRST_DAY) + Duration::seconds(rng.gen_range(0..DAYS * 86_400));
    let mut held: Vec<(PositionKey, u64)> = ledger.state().positions().collect();
    held.sort();
    let source = (!held.is_empty()).then(|| &held[rng.gen_range(0..held.len())]);
    let kg =
        |rng: &mut ChaCha8Rng, held_g: u64| amount(&rng.gen_range(1..=(held_g / 1000).max(1)).to_string(), Unit::Kg);
    let action = match (rng.gen_range(0..10), source) {
        (0..=2, _) | (_, None) => Action::Acquire {
            lot: lot(&format!("co-{step}"), "cobalt", Form::Metal, 995_000, "CD"),
            to: random_holding(rng),
            quantity: amount(&rng.gen_range(10..=100).to_string(), Unit::Kg),
            supplier: None,
            contract: None,
            price: None,
        },
        (k, Some((position, g))) => {
            let from = Holding {
                party: position.party.clone(),
                location: position.location.clone(),
                programme: position.programme,
            };
            let lot_id = position.lot.clone();
            let quantity = kg(rng, *g);
            match k {
                3 | 4 => Action::Transfer { lot: lot_id, from, to: random_holding(rng), quantity },
                5 => Action::Release {
                    lot: lot_id,
                    from,
                    quantity,
                    reason: ReleaseReason::Sale,
                    recipient: "industry".into(),
                },
                6 => Action::Convert {
                    lot: lot_id,
                    from,
                    consumed: quantity,
                    into: ConvertInto {
                        id: LotId::new(format!("cv-{step}")),
                        form: Form::Oxide,
                        purity_ppm: 990_000,
                        to: random_holding(rng).location,
                        certificate: None,
                    },
                    produced: amount(&rng.gen_range(1..=20).to_string(), Unit::Kg),
                },
                7 => Action::Adjust {
                    lot: lot_id,
                    at: from,
                    direction: if rng.gen_bool(0.5) { Direction::Increase } else { Direction::Decrease },
                    quantity,
                    reason: AdjustReason::StockTake,
                    note: "count".into(),
                },
                _ if !accepted.is_empty() => Action::Reverse {
                    target: accepted[rng.gen_range(0..accepted.len())].clone(),
                    reason: "booked in error".into(),
                },
                _ => Action::Transfer { lot: lot_id, from, to: random_holding(rng), quantity },
            }
        }
    };
    // The party whose stock the command takes (or, for an acquisition, receives) signs; for a
    // reversal, the one whose stock the reversed event credited, mostly.
    let signer = match &action {
        Action::Acquire { to, .. } => to.party.to_string(),
        Action::Transfer { from, .. } | Action::Release { from, .. } | Action::Convert { from, .. } => {
            from.party.to_string()
        }
        Action::Adjust { at, .. } => at.party.to_string(),
        _ => PARTIES[rng.gen_range(0..PARTIES.len())].to_string(),
    };
    let key = deterministic_key(&format!("{signer}-ops"));
    (key.sign(command(&format!("bt-{step}"), occurred_at, action)), signer)
}

struct Outcomes {
    accepted: usize,
    refused_for_the_date: usize,
}

fn fill(ledger: &mut Ledger, rng: &mut ChaCha8Rng) -> Outcomes {
    let mut out = Outcomes { accepted: 0, refused_for_the_date: 0 };
    let mut accepted: Vec<EventId> = Vec::new();
    for step in 0..COMMANDS {
        let (signed, _) = random_command(rng, ledger, step, &accepted);
        let id = signed.command.id.clone();
        let submission = Submission { commands: signing::verify_all(vec![signed]), atomic: true };
        let outcome = ledger.commit_group(vec![submission]).expect("commit").remove(0).remove(0);
        match outcome {
            Outcome::Appended { .. } => {
                out.accepted += 1;
                accepted.push(id);
            }
            Outcome::Rejected(r) if r.code() == "insufficient_stock_at" => out.refused_for_the_date += 1,
            _ => {}
        }
    }
    out
}

/// End of `day` (exclusive), in ns: what an as-of date counts.
fn end_of_day_ns(day: NaiveDate) -> i64 {
    day.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_nanos_opt().unwrap()
}

fn check_seed(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(FIRST_DAY) + Duration::days(DAYS + 1));
    let mut ledger = Ledger::open(dir.path(), Box::new(clock.clone()), LedgerOptions::default()).unwrap();
    let setup = Submission { commands: signing::verify_all(World::new().setup(at("2025-12-01"))), atomic: true };
    ledger.commit_group(vec![setup]).unwrap();
    let outcomes = fill(&mut ledger, &mut rng);
    let ctx = format!("seed {seed} (rerun with BUSINESS_TIME_SEED={seed})");
    assert!(outcomes.accepted > COMMANDS / 3, "{ctx}: too few commands accepted ({})", outcomes.accepted);
    assert!(outcomes.refused_for_the_date > 0, "{ctx}: no back-dated debit was refused for its date");

    let pdir = tempfile::tempdir().unwrap();
    let mut projector = Projector::open(pdir.path()).unwrap();
    projector.catch_up(&mut LedgerSource::new(ledger.store().clone())).unwrap();
    let state = ledger.state();

    // Every day, every position: the projector's as-of balance is the ledger's, and ≥ 0.
    let first = NaiveDate::parse_from_str(FIRST_DAY, "%Y-%m-%d").unwrap();
    let by_position = vec![Dimension::Party, Dimension::Lot, Dimension::Facility, Dimension::Programme];
    for day in (-1..=DAYS).map(|d| first + Duration::days(d)) {
        let query =
            HoldingsQuery { as_of: Some(AsOf::Date(day)), group_by: by_position.clone(), ..HoldingsQuery::default() };
        let holdings = projector.holdings(&query).unwrap();
        let mut seen: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
        for row in &holdings.rows {
            let value = |d: Dimension| row.key.get(d).and_then(|v| v.as_str()).unwrap_or("in_transit").to_string();
            let key = (
                value(Dimension::Party),
                value(Dimension::Lot),
                value(Dimension::Facility),
                value(Dimension::Programme),
            );
            assert!(row.totals.gross_g >= 0, "{ctx}: {key:?} holds {} g on {day}", row.totals.gross_g);
            seen.insert(key, row.totals.gross_g);
        }
        let cut = end_of_day_ns(day);
        for (position, timeline) in state.timelines.iter() {
            let key = (
                position.party.to_string(),
                position.lot.to_string(),
                position.location.as_str().to_string(),
                position.programme.as_str().to_string(),
            );
            let ledger_g = timeline.balance_at(cut - 1);
            assert!(ledger_g >= 0, "{ctx}: the ledger has {key:?} at {ledger_g} g on {day}");
            assert_eq!(seen.get(&key).copied().unwrap_or(0), ledger_g, "{ctx}: {key:?} on {day}");
        }
    }

    // Every report's stock figures: never negative.
    let views = projector.snapshot();
    let mut reported = 0;
    let periods = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-Q1", "2026-Q2", "2026"];
    for partner in ["NL", "DE", "BE"] {
        for framework in [Framework::Eu, Framework::Iea, Framework::Nato] {
            for period in periods {
                let req = ReportRequest {
                    partner: partner.into(),
                    period: period.parse().unwrap(),
                    framework,
                    materials: None,
                };
                let built = report::build(&views, &req).unwrap_or_else(|e| panic!("{ctx}: {partner} {period}: {e}"));
                reported += built.body.materials.iter().filter(|m| m.stock.gross_g > 0).count();
                let value = serde_json::to_value(&built).unwrap();
                no_negative_stock(&value, &format!("{ctx}: {partner} {framework:?} {period}"), false);
            }
        }
    }
    assert!(reported > 20, "{ctx}: only {reported} material lines with stock: the reports check little");
}

/// Every `gross_g` / `contained_g` outside the movement lines, and the movements' opening and
/// closing, are ≥ 0. (Flows inside a period may be signed by reversals.)
fn no_negative_stock(value: &serde_json::Value, ctx: &str, in_movements: bool) {
    match value {
        serde_json::Value::Object(map) => {
            let line = map.get("line").and_then(|l| l.as_str());
            let stock_like = !in_movements || matches!(line, Some("opening" | "closing"));
            for field in ["gross_g", "contained_g"] {
                if let (true, Some(g)) = (stock_like, map.get(field).and_then(|g| g.as_i64())) {
                    assert!(g >= 0, "{ctx}: {field} {g} in {value}");
                }
            }
            for (k, v) in map {
                no_negative_stock(v, ctx, in_movements || k == "movements");
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| no_negative_stock(v, ctx, in_movements)),
        _ => {}
    }
}

#[test]
fn no_position_is_below_zero_on_any_date_in_the_ledger_the_views_or_the_reports() {
    let seeds: Vec<u64> = match std::env::var("BUSINESS_TIME_SEED") {
        Ok(s) => vec![s.parse().expect("BUSINESS_TIME_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    };
    for seed in seeds {
        check_seed(seed);
    }
}
