//! A seeded generator of commands that apply: acquisitions, stores, transfers across
//! partners, releases, conversions, adjustments and reversals over the test world, with a
//! share of movements back-dated. It keeps a model of the ledger's positions so every
//! command it emits is one the ledger accepts. Shared by the model test and the benchmarks
//! ([`super::generate_history`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use stockpile_ledger::domain::{
    Action, AdjustReason, Command, ConvertInto, Direction, EventId, Form, Holding, LotId, Programme, ReleaseReason,
    Unit,
};
use stockpile_ledger::testkit::{amount, command, lot, World};

/// A position in the generator's terms: (party index, lot id, facility index or in transit,
/// programme).
pub type Pos = (usize, String, Option<usize>, Programme);

/// The generator's model of the ledger's non-empty positions.
#[derive(Default)]
pub struct Model {
    pub balances: HashMap<Pos, u64>,
    /// Non-empty positions, for picking one at random, and where each is in `live`.
    live: Vec<Pos>,
    live_index: HashMap<Pos, usize>,
    /// The latest business time (seconds) stock was credited to each position: a debit dated
    /// at or after it never takes the position below zero on any date (from then on the
    /// balance is at least what it holds now), so back-dating stays after it (the ledger's
    /// rules 2 refuse anything earlier that would).
    credited: HashMap<Pos, i64>,
    /// Recent upward adjustments (position, grams, event id) that may be reversed.
    adjustments: Vec<(Pos, u64, String)>,
    pub lots: u64,
}

impl Model {
    fn add(&mut self, p: &Pos, g: u64, t: i64) {
        let latest = self.credited.entry(p.clone()).or_insert(t);
        *latest = (*latest).max(t);
        let b = self.balances.entry(p.clone()).or_insert(0);
        if *b == 0 {
            self.live_index.insert(p.clone(), self.live.len());
            self.live.push(p.clone());
        }
        *b += g;
    }

    fn sub(&mut self, p: &Pos, g: u64) {
        let b = self.balances.get_mut(p).expect("position exists");
        *b -= g;
        if *b == 0 {
            self.balances.remove(p);
            let i = self.live_index.remove(p).expect("live position");
            self.live.swap_remove(i);
            if let Some(moved) = self.live.get(i) {
                self.live_index.insert(moved.clone(), i);
            }
        }
    }

    pub fn live_positions(&self) -> usize {
        self.live.len()
    }
}

const MATERIALS: [(&str, Form, u32); 10] = [
    ("cobalt", Form::Hydroxide, 300_000),
    ("cobalt", Form::Metal, 998_000),
    ("gallium", Form::Metal, 999_990),
    ("germanium", Form::Metal, 999_999),
    ("tungsten", Form::Concentrate, 650_000),
    ("copper", Form::Metal, 999_900),
    ("neodymium", Form::Oxide, 995_000),
    ("lithium_battery_grade", Form::Carbonate, 995_000),
    ("graphite_battery_grade", Form::Powder, 999_500),
    ("platinum", Form::Metal, 999_500),
];
const PROGRAMMES: [Programme; 4] = [Programme::Eu, Programme::Iea, Programme::Nato, Programme::National];

/// Longest back-dating, in seconds.
const BACK_DATE_S_MAX: i64 = 30 * 86_400;

pub struct Generator {
    pub model: Model,
    rng: ChaCha8Rng,
    /// Share of movements dated up to [`BACK_DATE_S_MAX`] before their turn.
    pub back_dated: f64,
}

fn holding(world: &World, p: &Pos) -> Holding {
    let location = p.2.map_or("in_transit", |f| world.facilities[f].0);
    stockpile_ledger::testkit::holding(world.parties[p.0].0, location, p.3)
}

fn grams(g: u64) -> stockpile_ledger::domain::Amount {
    amount(&g.to_string(), Unit::G)
}

fn time(t: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t, 0).expect("in range")
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator { model: Model::default(), rng: ChaCha8Rng::seed_from_u64(seed), back_dated: 0.1 }
    }

    /// The next command, in its turn at business time `t` (seconds), and the index of the
    /// party whose key signs it.
    pub fn next(&mut self, world: &World, id: &str, t: i64) -> (usize, Command) {
        let roll: u32 = self.rng.gen_range(0..100);
        let m = &self.model;
        let from = if m.live.is_empty() || roll < 12 {
            None
        } else {
            Some(m.live[self.rng.gen_range(0..m.live.len())].clone())
        };
        match from {
            None => self.acquire(world, id, t),
            Some(from) => {
                let t = if self.rng.gen_bool(self.back_dated) {
                    (t - self.rng.gen_range(0..BACK_DATE_S_MAX)).max(self.model.credited[&from])
                } else {
                    t
                };
                let (party, action) = self.movement(world, roll, from, id, t);
                (party, command(id, time(t), action))
            }
        }
    }

    fn acquire(&mut self, world: &World, id: &str, t: i64) -> (usize, Command) {
        let rng = &mut self.rng;
        let party = rng.gen_range(0..world.parties.len());
        let (material, form, purity) = MATERIALS[rng.gen_range(0..MATERIALS.len())];
        self.model.lots += 1;
        let lot_id = format!("lot-{}", self.model.lots);
        let location = if rng.gen_bool(0.7) { None } else { Some(rng.gen_range(0..world.facilities.len())) };
        let to: Pos = (party, lot_id.clone(), location, PROGRAMMES[rng.gen_range(0..4)]);
        let g = rng.gen_range(1..=100) * 1_000_000;
        self.model.add(&to, g, t);
        let action = Action::Acquire {
            lot: lot(&lot_id, material, form, purity, "CD"),
            to: holding(world, &to),
            quantity: grams(g),
            supplier: None,
            contract: None,
            price: None,
        };
        (party, command(id, time(t), action))
    }

    fn movement(&mut self, world: &World, roll: u32, from: Pos, id: &str, t: i64) -> (usize, Action) {
        let (parties, facilities) = (world.parties.len(), world.facilities.len());
        let rng = &mut self.rng;
        let m = &mut self.model;
        let balance = m.balances[&from];
        let g = if rng.gen_bool(0.3) { balance } else { rng.gen_range(1..=balance) };
        let lot_id = LotId::new(from.1.as_str());
        let action = match roll {
            12..=29 => {
                let f = match from.2 {
                    None => rng.gen_range(0..facilities),
                    Some(f) => (f + 1 + rng.gen_range(0..facilities - 1)) % facilities,
                };
                let to: Pos = (from.0, from.1.clone(), Some(f), from.3);
                m.sub(&from, g);
                m.add(&to, g, t);
                Action::Store {
                    lot: lot_id,
                    party: world.parties[from.0].0.into(),
                    programme: from.3,
                    from: holding(world, &from).location,
                    to: world.facilities[f].0.into(),
                    quantity: grams(g),
                }
            }
            30..=59 => {
                let party = (from.0 + 1 + rng.gen_range(0..parties - 1)) % parties;
                let location = if rng.gen_bool(0.5) { from.2 } else { Some(rng.gen_range(0..facilities)) };
                let to: Pos = (party, from.1.clone(), location, PROGRAMMES[rng.gen_range(0..4)]);
                m.sub(&from, g);
                m.add(&to, g, t);
                Action::Transfer {
                    lot: lot_id,
                    from: holding(world, &from),
                    to: holding(world, &to),
                    quantity: grams(g),
                }
            }
            60..=74 => {
                m.sub(&from, g);
                let reason = ReleaseReason::Rotation;
                Action::Release {
                    lot: lot_id,
                    from: holding(world, &from),
                    quantity: grams(g),
                    reason,
                    recipient: "market".into(),
                }
            }
            75..=79 => {
                m.lots += 1;
                let new_lot = format!("lot-{}", m.lots);
                let to: Pos = (from.0, new_lot.clone(), from.2, from.3);
                let produced = (g / 2).max(1);
                m.sub(&from, g);
                m.add(&to, produced, t);
                let into = ConvertInto {
                    id: LotId::new(new_lot),
                    form: Form::Metal,
                    purity_ppm: 999_000,
                    to: holding(world, &to).location,
                    certificate: None,
                };
                Action::Convert {
                    lot: lot_id,
                    from: holding(world, &from),
                    consumed: grams(g),
                    into,
                    produced: grams(produced),
                }
            }
            80..=97 => {
                let up = rng.gen_bool(0.5);
                let g = if up { rng.gen_range(1..=1_000) } else { g.min(1_000) };
                if up {
                    m.add(&from, g, t);
                    m.adjustments.push((from.clone(), g, id.to_string()));
                } else {
                    m.sub(&from, g);
                }
                Action::Adjust {
                    lot: lot_id,
                    at: holding(world, &from),
                    direction: if up { Direction::Increase } else { Direction::Decrease },
                    quantity: grams(g),
                    reason: AdjustReason::StockTake,
                    note: "count".into(),
                }
            }
            _ => match m.adjustments.pop() {
                // reverse a recent upward adjustment whose stock is still there
                // and was credited no later than the reversal's date
                Some((p, g, target)) if m.balances.get(&p).copied().unwrap_or(0) >= g && m.credited[&p] <= t => {
                    m.sub(&p, g);
                    return (p.0, Action::Reverse { target: EventId::new(target), reason: "recount".into() });
                }
                _ => {
                    m.sub(&from, g);
                    let reason = ReleaseReason::Sale;
                    Action::Release {
                        lot: lot_id,
                        from: holding(world, &from),
                        quantity: grams(g),
                        reason,
                        recipient: "market".into(),
                    }
                }
            },
        };
        (from.0, action)
    }
}
