//! A seeded history for the recomputation: the projector's generator (acquisitions, stores,
//! transfers between and within partners, releases, conversions, adjustments, in-transit
//! legs, back-dated movements) with figures, release rules and withholdings registered
//! between its movements at scattered business times, then reversals of every kind of
//! movement, dated between their target and the end.

use super::super::harness::Harness;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use stockpile_ledger::domain::{Action, EventId, FigureKind, LotId, Unit};
use stockpile_ledger::testkit::{amount, at, command, World};
use stockpile_ledger::Outcome;
use stockpile_projector::bench::generator::Generator;

/// Ledger time throughout: the period 2026 and its second half, last quarter and December
/// have not ended by it.
pub const LEDGER_NOW: &str = "2026-12-06T12:00:00Z";

const MOVEMENTS: usize = 700;
const REVERSAL_ATTEMPTS: usize = 240;
const PARTNERS: [&str; 3] = ["NL", "DE", "BE"];
const MATERIALS: [&str; 9] = [
    "cobalt",
    "gallium",
    "germanium",
    "tungsten",
    "copper",
    "neodymium",
    "lithium_battery_grade",
    "graphite_battery_grade",
    "platinum",
];

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).expect("in range")
}

fn admin(h: &mut Harness, id: &str, t: i64, action: Action) {
    let signed = h.world.admin.sign(command(id, time(t), action));
    let out = h.submit(vec![signed]);
    assert!(matches!(out[..], [Outcome::Appended { .. }]), "{id}: {out:?}");
}

/// What the generated history holds, for the test to check it covers every case.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Reversals applied, by the kind of event reversed.
    pub reversed: BTreeMap<String, usize>,
    pub withholdings: usize,
}

pub fn generate(seed: u64) -> (Harness, Coverage) {
    let mut h = Harness::new();
    h.clock.set(at(LEDGER_NOW));
    let world = World::new();
    let mut gen = Generator::new(seed);
    gen.back_dated = 0.2;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let (first, now) = (at("2021-03-01T00:00:00Z").timestamp(), at(LEDGER_NOW).timestamp());
    let end = at("2026-12-01T00:00:00Z").timestamp();
    let mut coverage = Coverage::default();
    for i in 0..MOVEMENTS {
        let t = first + (end - first) * i as i64 / MOVEMENTS as i64;
        let (party, cmd) = gen.next(&world, &format!("m-{i}"), t);
        let signed = world.key(world.parties[party].0).sign(cmd);
        let out = h.submit(vec![signed]);
        assert!(matches!(out[..], [Outcome::Appended { .. }]), "generated m-{i}: {out:?}");
        let any_time = rng.gen_range(first..now);
        match i % 7 {
            0 | 3 => {
                let kind = if rng.gen_bool(0.5) { FigureKind::Consumption } else { FigureKind::NetImports };
                let tonnes = rng.gen_range(1..=400);
                let action = Action::RegisterFigure {
                    figure: kind,
                    partner: PARTNERS[rng.gen_range(0..3)].into(),
                    material: MATERIALS[rng.gen_range(0..MATERIALS.len())].into(),
                    year: rng.gen_range(2022..=2025),
                    quantity: amount(&tonnes.to_string(), Unit::T),
                };
                admin(&mut h, &format!("fig-{i}"), any_time, action);
            }
            1 => {
                let action = Action::RegisterReleaseRules {
                    partner: PARTNERS[rng.gen_range(0..3)].into(),
                    material: MATERIALS[rng.gen_range(0..MATERIALS.len())].into(),
                    text: format!("rules version {i}"),
                    confidential: rng.gen_bool(0.3),
                };
                admin(&mut h, &format!("rules-{i}"), any_time, action);
            }
            5 if gen.model.lots > 0 => {
                let party = world.parties[rng.gen_range(0..world.parties.len())].0;
                let lot = LotId::new(format!("lot-{}", rng.gen_range(1..=gen.model.lots)));
                let reason = format!("defence stock {i}: disclosure would harm national security");
                let action = if rng.gen_bool(0.65) {
                    Action::Withhold { party: party.into(), lot, reason }
                } else {
                    Action::Unwithhold { party: party.into(), lot, reason }
                };
                admin(&mut h, &format!("withhold-{i}"), rng.gen_range(t - 200 * 86_400..now), action);
                coverage.withholdings += 1;
            }
            _ => {}
        }
    }
    reverse_some(&mut h, &world, &mut rng, now, &mut coverage);
    (h, coverage)
}

/// Tries to reverse movements of each kind in turn; a reversal the ledger refuses (its stock
/// has moved on) writes nothing and is skipped.
fn reverse_some(h: &mut Harness, world: &World, rng: &mut ChaCha8Rng, now: i64, coverage: &mut Coverage) {
    let mut targets: BTreeMap<String, Vec<(String, i64, String)>> = BTreeMap::new();
    for bytes in h.records() {
        let record: Value = serde_json::from_slice(&bytes).expect("record JSON");
        let body = &record["body"];
        let e = &body["event"];
        let kind = e["kind"].as_str().unwrap().to_string();
        let postings = stockpile_ledger::domain::Event::from_json(&e.to_string()).expect("event").effects().postings;
        if postings.is_empty() || kind == "reversed" {
            continue;
        }
        // the reversal debits what the target credited; if it credited nothing, it credits
        // what the target debited: either way that party's key signs
        let signer = postings
            .iter()
            .find(|p| p.direction == stockpile_ledger::domain::Direction::Increase)
            .unwrap_or(&postings[0])
            .position
            .party
            .to_string();
        let occurred: DateTime<Utc> = body["occurred_at"].as_str().unwrap().parse().unwrap();
        targets.entry(kind).or_default().push((
            body["event_id"].as_str().unwrap().into(),
            occurred.timestamp(),
            signer,
        ));
    }
    let kinds: Vec<String> = targets.keys().cloned().collect();
    for i in 0..REVERSAL_ATTEMPTS {
        let list = &targets[&kinds[i % kinds.len()]];
        let (target, occurred, signer) = &list[rng.gen_range(0..list.len())];
        let when = rng.gen_range(*occurred..=now);
        let action = Action::Reverse { target: EventId::new(target.as_str()), reason: "entered in error".into() };
        let signed = world.key(signer).sign(command(&format!("rev-{i}"), time(when), action));
        if let [Outcome::Appended { .. }] = h.submit(vec![signed])[..] {
            *coverage.reversed.entry(kinds[i % kinds.len()].clone()).or_default() += 1;
        }
    }
}
