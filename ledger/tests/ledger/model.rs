//! Model test: random sequences of valid and invalid commands, in atomic and per-command
//! batches, with reopenings of the store, checked after every step against a simple
//! in-memory model of balances. Failures print the seed; rerun one with `MODEL_SEED=<n>`.
//!
//! Commands are dated at random business times (`occurred_at`), many of them back-dated —
//! before the lot's acquisition too — and the model decides by rules 2 with a plain scan:
//! a position's balance at instant `t` is the sum of its postings at or before `t`, and a
//! debit at `T` must leave every balance from `T` on ≥ 0. After every step, every position's
//! balance at every instant it changes must equal the model's, and be ≥ 0.

use super::harness::Harness;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use stockpile_ledger::audit::{checkpoint, LedgerKey};
use stockpile_ledger::canonical;
use stockpile_ledger::domain::{
    Action, AdjustReason, ConvertInto, Direction, EventId, Form, Holding, LotId, PositionKey, Programme, ReleaseReason,
    Unit,
};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::testkit::{amount, at, command, deterministic_key, holding, lot};
use stockpile_ledger::Clock as _;
use stockpile_ledger::{LedgerOptions, Outcome};

const PARTIES: [&str; 3] = ["nl-covra", "nl-mod", "de-rohstoff"];
const LOCATIONS: [&str; 3] = ["in_transit", "nl-vlissingen", "be-antwerp"];
const PROGRAMMES: [Programme; 2] = [Programme::National, Programme::Nato];
const LOTS: [&str; 3] = ["lot-a", "lot-b", "lot-c"];
const SEEDS: u64 = 12;
const STEPS: usize = 120;

#[derive(Clone)]
struct ModelEvent {
    content: Vec<u8>,
    seq: u64,
    effects: Vec<(PositionKey, i128)>,
    /// Business time (`occurred_at`), in nanoseconds: where the effects land.
    at_ns: i64,
    movement: bool,
    reversed: bool,
}

#[derive(Clone, Default)]
struct Model {
    positions: HashMap<PositionKey, i128>,
    /// Every posting to each position, `(instant ns, grams)`, in the order applied.
    postings: HashMap<PositionKey, Vec<(i64, i128)>>,
    lots: HashSet<String>,
    events: HashMap<String, ModelEvent>,
    head: u64,
}

enum Predicted {
    Appended(ModelEvent),
    Duplicate(u64),
    Rejected,
}

impl Model {
    /// The balance of `k` at instant `t`: every posting at or before `t`.
    fn balance_at(&self, k: &PositionKey, t: i64) -> i128 {
        self.postings.get(k).map_or(0, |ps| ps.iter().filter(|(at, _)| *at <= t).map(|(_, g)| g).sum())
    }

    /// Rules 2, by a scan: with `effects` added at `t`, every position they take from is ≥ 0
    /// at `t` and at every later instant it has a posting.
    fn fits(&self, effects: &[(PositionKey, i128)], t: i64) -> bool {
        effects.iter().filter(|(_, d)| *d < 0).all(|(k, d)| {
            let later = self.postings.get(k).into_iter().flatten().map(|(at, _)| *at).filter(|at| *at > t);
            std::iter::once(t).chain(later).all(|at| self.balance_at(k, at) + d >= 0)
        })
    }

    /// What the ledger must do with `signed` (signed by `signer_party`'s key).
    fn predict(&self, signed: &SignedCommand, signer_party: &str) -> Predicted {
        let content = canonical::to_vec(&signed.command).unwrap();
        let id = signed.command.id.as_str();
        if let Some(e) = self.events.get(id) {
            return if e.content == content { Predicted::Duplicate(e.seq) } else { Predicted::Rejected };
        }
        let lot_known = |l: &LotId| self.lots.contains(l.as_str());
        let at_ns = signed.command.occurred_at.timestamp_nanos_opt().unwrap();
        let mut ev =
            ModelEvent { content, seq: self.head + 1, effects: vec![], at_ns, movement: true, reversed: false };
        let ok = match &signed.command.action {
            Action::Acquire { lot, to, .. } => {
                ev.effects.push((to.position(&lot.id), grams(&signed.command.action)));
                !lot_known(&lot.id) && to.party.as_str() == signer_party
            }
            Action::Transfer { lot, from, to, .. } => {
                let g = grams(&signed.command.action);
                let (f, t) = (from.position(lot), to.position(lot));
                ev.effects = vec![(f.clone(), -g), (t.clone(), g)];
                lot_known(lot) && from.party.as_str() == signer_party && f != t && self.fits(&ev.effects, at_ns)
            }
            Action::Release { lot, from, .. } => {
                let g = grams(&signed.command.action);
                let f = from.position(lot);
                ev.effects = vec![(f, -g)];
                lot_known(lot) && from.party.as_str() == signer_party && self.fits(&ev.effects, at_ns)
            }
            Action::Adjust { lot, at, direction, .. } => {
                let g = grams(&signed.command.action);
                let p = at.position(lot);
                let delta = if *direction == Direction::Increase { g } else { -g };
                ev.effects = vec![(p, delta)];
                lot_known(lot) && at.party.as_str() == signer_party && self.fits(&ev.effects, at_ns)
            }
            Action::Convert { lot, from, into, consumed, produced } => {
                let (c, p) = (parse(consumed), parse(produced));
                let f = from.position(lot);
                let t = Holding { party: from.party.clone(), location: into.to.clone(), programme: from.programme }
                    .position(&into.id);
                ev.effects = vec![(f, -c), (t, p)];
                lot_known(lot)
                    && !lot_known(&into.id)
                    && from.party.as_str() == signer_party
                    && self.fits(&ev.effects, at_ns)
            }
            Action::Reverse { target, .. } => {
                ev.movement = false;
                match self.events.get(target.as_str()) {
                    Some(t) if t.movement && !t.reversed => {
                        ev.effects = t.effects.iter().map(|(k, d)| (k.clone(), -d)).collect();
                        let debits: Vec<&(PositionKey, i128)> = ev.effects.iter().filter(|(_, d)| *d < 0).collect();
                        let parties_ok = if debits.is_empty() {
                            ev.effects.iter().all(|(k, _)| k.party.as_str() == signer_party)
                        } else {
                            debits.iter().all(|(k, _)| k.party.as_str() == signer_party)
                        };
                        parties_ok && self.fits(&ev.effects, at_ns)
                    }
                    _ => false,
                }
            }
            other => panic!("model does not generate {other:?}"),
        };
        if ok {
            Predicted::Appended(ev)
        } else {
            Predicted::Rejected
        }
    }

    fn apply(&mut self, id: &str, ev: ModelEvent, action: &Action) {
        for (k, d) in &ev.effects {
            let v = self.positions.entry(k.clone()).or_insert(0);
            *v += d;
            assert!(*v >= 0, "model went negative");
            if *v == 0 {
                self.positions.remove(k);
            }
            self.postings.entry(k.clone()).or_default().push((ev.at_ns, *d));
            for (t, _) in &self.postings[k] {
                assert!(self.balance_at(k, *t) >= 0, "model went negative at {t} ns in {k}");
            }
        }
        match action {
            Action::Acquire { lot, .. } => {
                self.lots.insert(lot.id.to_string());
            }
            Action::Convert { into, .. } => {
                self.lots.insert(into.id.to_string());
            }
            Action::Reverse { target, .. } => {
                self.events.get_mut(target.as_str()).unwrap().reversed = true;
            }
            _ => {}
        }
        self.head = ev.seq;
        self.events.insert(id.to_string(), ev);
    }
}

fn parse(a: &stockpile_ledger::domain::Amount) -> i128 {
    i128::from(a.to_grams().unwrap())
}

fn grams(action: &Action) -> i128 {
    match action {
        Action::Acquire { quantity, .. }
        | Action::Transfer { quantity, .. }
        | Action::Release { quantity, .. }
        | Action::Adjust { quantity, .. } => parse(quantity),
        _ => unreachable!(),
    }
}

fn random_holding(rng: &mut ChaCha8Rng) -> Holding {
    holding(
        PARTIES[rng.gen_range(0..PARTIES.len())],
        LOCATIONS[rng.gen_range(0..LOCATIONS.len())],
        PROGRAMMES[rng.gen_range(0..PROGRAMMES.len())],
    )
}

/// A source position: usually one the model says holds stock, sometimes any (to overdraw or miss).
fn random_source(rng: &mut ChaCha8Rng, model: &Model) -> (LotId, Holding, i128) {
    let mut held: Vec<(&PositionKey, &i128)> = model.positions.iter().collect();
    held.sort();
    if !held.is_empty() && rng.gen_bool(0.75) {
        let (k, g) = held[rng.gen_range(0..held.len())];
        let h = Holding { party: k.party.clone(), location: k.location.clone(), programme: k.programme };
        return (k.lot.clone(), h, *g);
    }
    (LotId::new(LOTS[rng.gen_range(0..LOTS.len())]), random_holding(rng), 0)
}

/// A quantity in kg: mostly within what is held, sometimes more (an overdraw).
fn random_kg(rng: &mut ChaCha8Rng, held_g: i128) -> stockpile_ledger::domain::Amount {
    let held_kg = (held_g / 1000).max(1) as u64;
    let kg = if rng.gen_bool(0.85) { rng.gen_range(1..=held_kg) } else { held_kg + rng.gen_range(1..=10) };
    amount(&kg.to_string(), Unit::Kg)
}

fn random_action(rng: &mut ChaCha8Rng, model: &Model, step: usize) -> Action {
    let (lot_id, from, held) = random_source(rng, model);
    let qty = random_kg(rng, held);
    match rng.gen_range(0..8) {
        0 | 1 => Action::Acquire {
            lot: lot(
                if rng.gen_bool(0.7) { format!("acq-{step}") } else { LOTS[rng.gen_range(0..LOTS.len())].to_string() }
                    .as_str(),
                "cobalt",
                Form::Metal,
                995_000,
                "CD",
            ),
            to: random_holding(rng),
            quantity: amount(&rng.gen_range(20..=100).to_string(), Unit::Kg),
            supplier: None,
            contract: None,
            price: None,
        },
        2 => Action::Transfer { lot: lot_id, from, to: random_holding(rng), quantity: qty },
        3 => Action::Release {
            lot: lot_id,
            from,
            quantity: qty,
            reason: ReleaseReason::EmergencyDrawdown,
            recipient: "industry".into(),
        },
        4 => Action::Adjust {
            lot: lot_id,
            at: from,
            direction: if rng.gen_bool(0.5) { Direction::Increase } else { Direction::Decrease },
            quantity: qty,
            reason: AdjustReason::StockTake,
            note: "count".into(),
        },
        5 => Action::Convert {
            lot: lot_id,
            from,
            consumed: qty,
            into: ConvertInto {
                id: LotId::new(format!("conv-{step}")),
                form: Form::Oxide,
                purity_ppm: 999_000,
                to: random_holding(rng).location,
                certificate: None,
            },
            produced: amount(&rng.gen_range(1..=50).to_string(), Unit::Kg),
        },
        _ => {
            let mut ids: Vec<&String> = model.events.keys().collect();
            ids.sort();
            let target = if ids.is_empty() || rng.gen_bool(0.1) {
                EventId::new("no-such-event")
            } else {
                EventId::new(ids[rng.gen_range(0..ids.len())].as_str())
            };
            Action::Reverse { target, reason: "mistake".into() }
        }
    }
}

/// Business time: a third of commands on one common date, the rest anywhere in the five
/// months before it, to the second (so before the lot arrived, too).
fn random_occurred_at(rng: &mut ChaCha8Rng) -> chrono::DateTime<chrono::Utc> {
    let common = at("2026-05-01T00:00:00Z");
    if rng.gen_bool(0.33) {
        return common;
    }
    common - chrono::Duration::seconds(rng.gen_range(0..150 * 86_400))
}

/// A ledger with a random history of `STEPS` batches (checked against the model as it goes),
/// with a signed checkpoint every [`CHECKPOINT_EVERY_STEPS`] steps.
pub fn random_ledger(seed: u64) -> Harness {
    run_seed(seed)
}

pub const CHECKPOINT_EVERY_STEPS: usize = 25;

/// The ledger key the model test signs checkpoints with.
pub fn ledger_key() -> LedgerKey {
    LedgerKey::from_secret([42; 32])
}

fn run_seed(seed: u64) -> Harness {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Snapshots every few events, so reopenings exercise snapshot + tail recovery.
    let mut h =
        Harness::with_options(LedgerOptions { snapshot_every_events: 1 + seed % 9, ..LedgerOptions::default() });
    h.clock.set(at("2026-06-01T00:00:00Z"));
    let mut model = Model { head: h.state().head.seq, ..Model::default() };
    let mut history: Vec<(SignedCommand, String)> = Vec::new();
    let mut counts = [0usize; 3]; // appended, duplicate, rejected
    let mut short_at_a_date = 0usize; // refused as insufficient_stock_at
    for step in 0..STEPS {
        let batch_len = rng.gen_range(1..=4);
        let atomic = rng.gen_bool(0.3);
        let mut batch: Vec<(SignedCommand, String)> = Vec::new();
        for i in 0..batch_len {
            let roll = rng.gen_range(0..10);
            if roll == 0 && !history.is_empty() {
                // Resend an earlier command unchanged (idempotent) …
                batch.push(history[rng.gen_range(0..history.len())].clone());
                continue;
            }
            let action = random_action(&mut rng, &model, step);
            let id = if roll == 1 && !history.is_empty() {
                // … or reuse an earlier id with new content (conflict).
                history[rng.gen_range(0..history.len())].0.command.id.to_string()
            } else {
                format!("s{step}-{i}")
            };
            // Usually the party the action debits signs; sometimes another party's key.
            let owner = match &action {
                Action::Acquire { to, .. } => to.party.to_string(),
                Action::Transfer { from, .. } | Action::Release { from, .. } | Action::Convert { from, .. } => {
                    from.party.to_string()
                }
                Action::Adjust { at, .. } => at.party.to_string(),
                _ => PARTIES[rng.gen_range(0..PARTIES.len())].to_string(),
            };
            let signer = if rng.gen_bool(0.1) { PARTIES[rng.gen_range(0..PARTIES.len())].to_string() } else { owner };
            let key = deterministic_key(&format!("{signer}-ops"));
            batch.push((key.sign(command(&id, random_occurred_at(&mut rng), action)), signer));
        }
        // Predict the batch against a scratch copy of the model.
        let mut next = model.clone();
        let mut predicted = Vec::new();
        for (signed, signer) in &batch {
            let p = next.predict(signed, signer);
            if let Predicted::Appended(ev) = &p {
                next.apply(signed.command.id.as_str(), ev.clone(), &signed.command.action);
            }
            predicted.push(p);
        }
        let any_rejected = predicted.iter().any(|p| matches!(p, Predicted::Rejected));
        let outcomes = h.submit(batch.iter().map(|(s, _)| s.clone()).collect(), atomic);
        for o in &outcomes {
            match o {
                Outcome::Appended { .. } => counts[0] += 1,
                Outcome::Duplicate { .. } => counts[1] += 1,
                Outcome::Rejected(r) => {
                    counts[2] += 1;
                    if r.code() == "insufficient_stock_at" {
                        short_at_a_date += 1;
                    }
                }
            }
        }
        let ctx = format!("seed {seed} step {step} (rerun with MODEL_SEED={seed})");
        if atomic && any_rejected {
            assert!(outcomes.iter().all(|o| matches!(o, Outcome::Rejected(_))), "{ctx}: {outcomes:?}");
        } else if atomic {
            model = next;
            check_outcomes(&ctx, &predicted, &outcomes);
        } else {
            // Per-command: each is predicted against the state its predecessors left.
            let mut seq_model = model.clone();
            for ((signed, signer), outcome) in batch.iter().zip(&outcomes) {
                let p = seq_model.predict(signed, signer);
                check_outcomes(&ctx, std::slice::from_ref(&p), std::slice::from_ref(outcome));
                if let Predicted::Appended(ev) = p {
                    seq_model.apply(signed.command.id.as_str(), ev, &signed.command.action);
                }
            }
            model = seq_model;
        }
        for (signed, signer) in batch {
            history.push((signed, signer));
        }
        compare(&ctx, &h, &model);
        if step % CHECKPOINT_EVERY_STEPS == CHECKPOINT_EVERY_STEPS - 1 {
            let head = h.state().head.seq;
            checkpoint::create(h.ledger.as_ref().unwrap().store(), &ledger_key(), head, h.clock.now())
                .expect("checkpoint");
        }
        if rng.gen_range(0..10) == 0 {
            h.reopen();
            compare(&ctx, &h, &model);
            h.check_invariants();
        }
    }
    h.check_invariants();
    // The generator must exercise every path, or the test proves little.
    assert!(counts.iter().all(|c| *c > 0), "seed {seed}: appended/duplicate/rejected = {counts:?}");
    assert!(counts[0] * 4 > counts[2], "seed {seed}: too few commands applied: {counts:?}");
    assert!(short_at_a_date > 0, "seed {seed}: no back-dated debit was refused for the date alone");
    h
}

fn check_outcomes(ctx: &str, predicted: &[Predicted], outcomes: &[Outcome]) {
    for (p, o) in predicted.iter().zip(outcomes) {
        match (p, o) {
            (Predicted::Appended(ev), Outcome::Appended { seq, .. }) => assert_eq!(ev.seq, *seq, "{ctx}"),
            (Predicted::Duplicate(s), Outcome::Duplicate { seq, .. }) => assert_eq!(s, seq, "{ctx}"),
            (Predicted::Rejected, Outcome::Rejected(_)) => {}
            (p, o) => panic!(
                "{ctx}: model predicted {}, ledger said {o:?}",
                match p {
                    Predicted::Appended(_) => "appended",
                    Predicted::Duplicate(_) => "duplicate",
                    Predicted::Rejected => "rejected",
                }
            ),
        }
    }
}

fn compare(ctx: &str, h: &Harness, model: &Model) {
    let live: HashMap<PositionKey, i128> = h.state().positions().map(|(k, v)| (k.clone(), i128::from(v))).collect();
    assert_eq!(live, model.positions, "{ctx}: positions differ from the model");
    // Every position's balance over business time: the same net change at each instant as the
    // model's postings, and (the model asserts it) never below zero.
    for (k, postings) in &model.postings {
        let mut netted: std::collections::BTreeMap<i64, i128> = Default::default();
        for (t, g) in postings {
            *netted.entry(*t).or_default() += g;
        }
        netted.retain(|_, g| *g != 0);
        let timeline = h.state().timelines.get(k);
        let live: Vec<(i64, i128)> =
            timeline.map(|t| t.entries().map(|(at, g)| (at, i128::from(g))).collect()).unwrap_or_default();
        assert_eq!(live, netted.into_iter().collect::<Vec<_>>(), "{ctx}: timeline of {k} differs from the model");
        for (t, _) in postings {
            let b = timeline.map_or(0, |tl| tl.balance_at(*t));
            assert!(b >= 0, "{ctx}: {k} is {b} g at {t} ns");
        }
    }
    assert_eq!(h.state().timelines.len(), model.postings.len(), "{ctx}: positions with a timeline");
    assert_eq!(h.state().head.seq, model.head, "{ctx}: head differs from the model");
}

#[test]
fn ledger_agrees_with_a_simple_model_across_reopenings() {
    let seeds: Vec<u64> = match std::env::var("MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("MODEL_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    };
    for seed in seeds {
        run_seed(seed);
    }
}
