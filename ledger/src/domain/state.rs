//! The ledger's state: everything `decide` needs, derived purely from the log by `apply`.

use super::command::{Direction, FigureKind};
use super::decide::History;
use super::event::{EffectRefs, Event, FlowKind};
use super::ids::{Country, EventId, FacilityId, KeyId, LotId, MaterialId, PartyId};
use super::index::{EventIndex, IndexUndo};
use super::model::{Facility, KeyEntry, LotSpec, Party, PositionKey};
use super::rules;
use super::timeline::{Timeline, TurnoverOverflow};
use super::timelines::Timelines;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// The state's hash maps: keyed by operator-chosen ids, so with a randomly seeded hasher (no
/// crafted collisions), but a faster one than the standard library's SipHash.
pub type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// A lot and its flow counters. Conservation: inflows − outflows = sum of its positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotState {
    pub spec: LotSpec,
    /// Grams per flow kind (acquired, released, converted in/out, adjusted up/down).
    pub flows: FlowCounters,
}

impl LotState {
    pub fn new(spec: LotSpec) -> Self {
        LotState { spec, flows: FlowCounters::default() }
    }

    /// Inflows minus outflows: what the lot's positions must add up to.
    pub fn balance_g(&self) -> i128 {
        self.flows.iter().map(|(k, g)| if k.is_inflow() { i128::from(g) } else { -i128::from(g) }).sum()
    }
}

/// A lot's flow counters, one slot per [`FlowKind`]: copied, not allocated, when an event
/// changes them. Serialized as the map of the non-zero ones, `{"acquired": 5000, …}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounters([u64; FlowKind::ALL.len()]);

impl FlowCounters {
    pub fn get(&self, kind: FlowKind) -> u64 {
        self.0[kind as usize]
    }

    /// The non-zero counters, in [`FlowKind`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FlowKind, u64)> + '_ {
        FlowKind::ALL.into_iter().map(|k| (k, self.get(k))).filter(|(_, g)| *g != 0)
    }
}

impl Serialize for FlowCounters {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for FlowCounters {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut counters = FlowCounters::default();
        for (kind, grams) in BTreeMap::<FlowKind, u64>::deserialize(deserializer)? {
            counters.0[kind as usize] = grams;
        }
        Ok(counters)
    }
}

/// The chain head: last sequence number, its hash and its ledger time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
    pub recorded_at: Option<DateTime<Utc>>,
}

/// A figure key: which figure, for which partner, material and year.
pub type FigureKey = (FigureKind, Country, MaterialId, i32);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub head: Head,
    pub ledger: Option<String>,
    /// The decision rules in force ([`rules`]); 0 before the genesis.
    pub rules: u32,
    pub parties: BTreeMap<PartyId, Party>,
    pub facilities: BTreeMap<FacilityId, Facility>,
    pub keys: BTreeMap<KeyId, KeyEntry>,
    pub figures: BTreeMap<FigureKey, u64>,
    pub lots: HashMap<LotId, LotState>,
    /// Every position ever posted to, with its net changes by business time (kept when the
    /// position is back at zero: a back-dated debit must still find the history it falls in).
    /// A position's balance now is its timeline's total ([`State::position`]): the state
    /// keeps no second map of balances.
    pub timelines: Timelines,
    /// Every event id recorded, by hash, and which events were reversed ([`EventIndex`]):
    /// the id, digest and kind are read back from the log when a look-up needs them.
    pub events: EventIndex,
}

/// One step of undo: the value an entry had before `apply` changed it.
#[derive(Debug, Clone)]
pub(crate) enum Undo {
    Head(Head),
    Ledger(Option<String>),
    Rules(u32),
    Party(PartyId, Option<Party>),
    Facility(FacilityId, Option<Facility>),
    Key(KeyId, Option<KeyEntry>),
    Figure(FigureKey, Option<u64>),
    Lot(LotId, Option<LotState>),
    /// A lot's flow counters before an event changed them (the lot itself is unchanged).
    LotFlows(LotId, FlowCounters),
    /// A change added to a position's timeline at an instant; `created` when the event made
    /// the timeline (rollback then removes it).
    Timeline {
        key: PositionKey,
        at_ns: i64,
        delta: i64,
        created: bool,
    },
    Event(IndexUndo),
}

/// Where `apply` writes down the previous value of what it changes: a batch's undo log, or
/// nowhere (`()`) when the event stands alone. The step is built only when it is kept.
pub(crate) trait Journal {
    fn note(&mut self, step: impl FnOnce() -> Undo);
}

impl Journal for Vec<Undo> {
    fn note(&mut self, step: impl FnOnce() -> Undo) {
        self.push(step());
    }
}

impl Journal for () {
    fn note(&mut self, _: impl FnOnce() -> Undo) {}
}

/// The positions and lot counters one event leaves, checked and not yet written.
#[derive(Default)]
struct StockChange<'e> {
    /// Each posted position's balance after the posting: checked (never below zero, never
    /// past `u64`), not written, since the position is its timeline's total.
    positions: SmallVec<[(&'e PositionKey, u64); 2]>,
    /// Each posting as a signed change, at the event's business instant.
    timeline: SmallVec<[(&'e PositionKey, i64); 2]>,
    at_ns: i64,
    flows: SmallVec<[(&'e LotId, FlowCounters); 2]>,
}

/// The lot an event creates, if any.
fn created_lot(event: &Event) -> Option<&LotId> {
    match event {
        Event::Acquired { lot, .. } | Event::Converted { lot, .. } => Some(&lot.id),
        _ => None,
    }
}

/// The log names a state the invariants forbid. Only a corrupt or forged log gets here:
/// `decide` never emits such an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id} at seq {seq} breaks an invariant: {what}")]
pub struct Violation {
    pub seq: u64,
    pub event_id: EventId,
    pub what: String,
}

/// What the record around an event contributes to state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<'a> {
    pub seq: u64,
    pub hash: [u8; 32],
    /// The event's business time: where its postings land on the positions' timelines.
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub event_id: &'a EventId,
    pub digest: [u8; 32],
}

impl State {
    /// Makes room for `additional` more event ids (one per record), so that folding a long
    /// log does not grow the table step by step, moving every entry each time.
    pub fn reserve_events(&mut self, additional: usize) {
        self.events.reserve(additional);
    }

    /// Where `id` was recorded, if it was: its seq and command digest (read from `history`).
    pub fn recorded(&self, id: &EventId, history: &dyn History) -> Option<super::index::Recorded> {
        self.events.find(id, history)
    }

    /// A position's balance now, in grams: its timeline's total (0 for a position never
    /// posted to). Never negative: `apply` refuses a change that would take it below zero.
    pub fn position(&self, key: &PositionKey) -> u64 {
        self.timelines.get(key).map_or(0, |t| u64::try_from(t.total()).unwrap_or(0))
    }

    /// The non-zero positions and their balances, in no particular order.
    pub fn positions(&self) -> impl Iterator<Item = (PositionKey, u64)> + '_ {
        self.timelines.iter().filter_map(|(k, t)| non_zero(t).map(|g| (k, g)))
    }

    /// The non-zero positions and their balances in [`PositionKey`] order, each key built only
    /// as it is reached.
    pub fn positions_sorted(&self) -> impl Iterator<Item = (PositionKey, u64)> + '_ {
        self.timelines.sorted().filter_map(|(k, t)| non_zero(t).map(|g| (k, g)))
    }

    /// Applies one event. Pure and deterministic; checks every invariant it touches, all
    /// before it changes anything, so an event that breaks one changes nothing. `history`
    /// holds the records before `at.seq`: the index reads an earlier record's id from it
    /// only when the event's id, or its reversal's target, hashes like one recorded.
    pub fn apply(&mut self, at: &Applied<'_>, event: &Event, history: &dyn History) -> Result<(), Violation> {
        self.apply_journaled(at, event, history, &mut ())
    }

    /// Applies one event, pushing the previous value of everything it changes onto `undo`,
    /// so a batch can be rolled back exactly.
    pub(crate) fn apply_logged(
        &mut self,
        at: &Applied<'_>,
        event: &Event,
        history: &dyn History,
        undo: &mut Vec<Undo>,
    ) -> Result<(), Violation> {
        self.apply_journaled(at, event, history, undo)
    }

    fn apply_journaled(
        &mut self,
        at: &Applied<'_>,
        event: &Event,
        history: &dyn History,
        journal: &mut impl Journal,
    ) -> Result<(), Violation> {
        let violation = |what: String| Violation { seq: at.seq, event_id: at.event_id.clone(), what };
        if at.seq != self.head.seq + 1 {
            return Err(violation(format!("seq follows {} (gap or repeat)", self.head.seq)));
        }
        let hash = self.events.hash(at.event_id);
        if self.events.find(at.event_id, history).is_some() {
            return Err(violation("event id used twice".into()));
        }
        self.check_registry(event).map_err(violation)?;
        let effects = event.effect_refs();
        let stock = self.stock_change(&effects, created_lot(event), at.occurred_at).map_err(violation)?;
        let reversed = match event {
            Event::Reversed { target, target_seq, .. } => match self.events.find_target(target, *target_seq, history) {
                Some(seq) => Some(seq),
                None => return Err(violation(format!("reverses unknown {target}"))),
            },
            _ => None,
        };
        // Every check has passed: from here on nothing fails.
        self.write_registry(event, at.seq, journal);
        self.write_stock(stock, journal);
        if let Some(target_seq) = reversed {
            let step = self.events.set_reversed(target_seq, at.event_id.clone());
            journal.note(|| Undo::Event(step));
        }
        let step = self.events.add(hash, at.seq);
        journal.note(|| Undo::Event(step));
        journal.note(|| Undo::Head(self.head.clone()));
        self.head = Head { seq: at.seq, hash: at.hash, recorded_at: Some(at.recorded_at) };
        Ok(())
    }

    /// What in the registry `event` would change, checked.
    fn check_registry(&self, event: &Event) -> Result<(), String> {
        match event {
            Event::KeyRevoked { key, .. } if !self.keys.contains_key(key) => Err(format!("revokes unknown key {key}")),
            Event::Genesis { rules: Some(r), .. } if !rules::known(*r) => {
                Err(format!("starts under unknown rules {r}"))
            }
            Event::RulesRaised { rules: r } if *r <= self.rules || !rules::known(*r) => {
                Err(format!("raises the rules from {} to {r}", self.rules))
            }
            Event::Acquired { lot, .. } | Event::Converted { lot, .. } if self.lots.contains_key(&lot.id) => {
                Err(format!("lot {} created twice", lot.id))
            }
            _ => Ok(()),
        }
    }

    /// Writes what `event` changes in the registry; [`State::check_registry`] has passed.
    fn write_registry(&mut self, event: &Event, seq: u64, journal: &mut impl Journal) {
        match event {
            Event::Genesis { ledger, admin_key, rules: starts_under, .. } => {
                let prev = self.ledger.replace(ledger.clone());
                journal.note(|| Undo::Ledger(prev));
                let prev = std::mem::replace(&mut self.rules, starts_under.unwrap_or(rules::SEQUENCE_ORDER));
                journal.note(|| Undo::Rules(prev));
                let prev = self.keys.insert(admin_key.id.clone(), admin_key.clone());
                journal.note(|| Undo::Key(admin_key.id.clone(), prev));
            }
            Event::RulesRaised { rules: raised } => {
                let prev = std::mem::replace(&mut self.rules, *raised);
                journal.note(|| Undo::Rules(prev));
            }
            Event::PartyRegistered { party } => {
                let prev = self.parties.insert(party.id.clone(), party.clone());
                journal.note(|| Undo::Party(party.id.clone(), prev));
            }
            Event::FacilityRegistered { facility } => {
                let prev = self.facilities.insert(facility.id.clone(), facility.clone());
                journal.note(|| Undo::Facility(facility.id.clone(), prev));
            }
            Event::KeyRegistered { key } => {
                let prev = self.keys.insert(key.id.clone(), key.clone());
                journal.note(|| Undo::Key(key.id.clone(), prev));
            }
            Event::KeyRevoked { key, .. } => {
                if let Some(entry) = self.keys.get_mut(key) {
                    let prev = entry.clone();
                    entry.revoked_at = Some(seq);
                    journal.note(|| Undo::Key(key.clone(), Some(prev)));
                }
            }
            Event::FigureRegistered { figure, partner, material, year, quantity } => {
                let k = (*figure, partner.clone(), material.clone(), *year);
                let prev = self.figures.insert(k.clone(), quantity.grams);
                journal.note(|| Undo::Figure(k, prev));
            }
            Event::Acquired { lot, .. } | Event::Converted { lot, .. } => {
                self.lots.insert(lot.id.clone(), LotState::new(lot.clone()));
                journal.note(|| Undo::Lot(lot.id.clone(), None));
            }
            _ => {}
        }
    }

    /// The positions and lot counters `effects` would leave, computed and checked without
    /// changing anything. Keys are borrowed from the event; `created` is the lot the event
    /// itself creates (its counters start at zero).
    fn stock_change<'e>(
        &self,
        effects: &EffectRefs<'e>,
        created: Option<&LotId>,
        occurred_at: DateTime<Utc>,
    ) -> Result<StockChange<'e>, String> {
        let mut change = StockChange::default();
        if !effects.postings.is_empty() {
            change.at_ns = occurred_at
                .timestamp_nanos_opt()
                .ok_or_else(|| format!("occurred_at {occurred_at} is outside the years 1677..2262"))?;
        }
        for p in &effects.postings {
            // Each posting is at most 2^63 − 1 g (an event's own quantities are far below).
            let grams = i64::try_from(p.grams).map_err(|_| format!("a posting of {} g overflows", p.grams))?;
            let delta = match p.direction {
                Direction::Increase => grams,
                Direction::Decrease => -grams,
            };
            change.timeline.push((p.position, delta));
            // What the event adds to the position's turnover, with what it had, must fit.
            let mut moved = change.timeline.iter().filter(|(k, _)| *k == p.position).map(|(_, d)| d.unsigned_abs());
            let had = self.timelines.get(p.position).map_or(0, Timeline::turnover);
            moved
                .try_fold(had, u64::checked_add)
                .filter(|t| *t <= i64::MAX as u64)
                .ok_or_else(|| format!("position {}: {}", p.position, TurnoverOverflow))?;
            let current = change
                .positions
                .iter()
                .rev()
                .find(|(k, _)| *k == p.position)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| self.position(p.position));
            let next = step(current, p.direction, p.grams)
                .ok_or_else(|| format!("position {} would go below zero or overflow", p.position))?;
            change.positions.push((p.position, next));
        }
        for f in &effects.flows {
            let idx = match change.flows.iter().position(|(id, _)| *id == f.lot) {
                Some(i) => i,
                None => {
                    let counters = match self.lots.get(f.lot) {
                        Some(lot) => lot.flows,
                        None if created == Some(f.lot) => FlowCounters::default(),
                        None => return Err(format!("flow on unknown lot {}", f.lot)),
                    };
                    change.flows.push((f.lot, counters));
                    change.flows.len() - 1
                }
            };
            let counter = &mut change.flows[idx].1 .0[f.kind as usize];
            *counter =
                step(*counter, f.direction, f.grams).ok_or_else(|| format!("lot {} counter underflow", f.lot))?;
        }
        Ok(change)
    }

    /// Writes the timelines and counters [`State::stock_change`] computed.
    fn write_stock(&mut self, change: StockChange<'_>, journal: &mut impl Journal) {
        for (key, delta) in change.timeline {
            let at_ns = change.at_ns;
            let created = match self.timelines.get_mut(key) {
                Some(timeline) => {
                    timeline.add(at_ns, delta).expect("checked by stock_change");
                    false
                }
                None => {
                    let mut timeline = Timeline::default();
                    timeline.add(at_ns, delta).expect("a first change always fits");
                    self.timelines.insert(key, timeline);
                    true
                }
            };
            journal.note(|| Undo::Timeline { key: key.clone(), at_ns, delta, created });
        }
        for (id, flows) in change.flows {
            if let Some(lot) = self.lots.get_mut(id) {
                let prev = std::mem::replace(&mut lot.flows, flows);
                journal.note(|| Undo::LotFlows(id.clone(), prev));
            }
        }
    }

    /// Restores the values recorded in `undo`, newest first.
    pub(crate) fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Head(h) => self.head = h,
                Undo::Ledger(l) => self.ledger = l,
                Undo::Rules(r) => self.rules = r,
                Undo::Party(k, v) => restore(&mut self.parties, k, v),
                Undo::Facility(k, v) => restore(&mut self.facilities, k, v),
                Undo::Key(k, v) => restore(&mut self.keys, k, v),
                Undo::Figure(k, v) => restore(&mut self.figures, k, v),
                Undo::Lot(k, v) => restore_hash(&mut self.lots, k, v),
                Undo::LotFlows(k, flows) => {
                    if let Some(lot) = self.lots.get_mut(&k) {
                        lot.flows = flows;
                    }
                }
                Undo::Timeline { key, at_ns, delta, created } => {
                    if created {
                        self.timelines.remove(&key);
                    } else if let Some(timeline) = self.timelines.get_mut(&key) {
                        timeline.undo(at_ns, delta);
                    }
                }
                Undo::Event(step) => self.events.undo(step),
            }
        }
    }

    /// Checks conservation for every lot: inflows − outflows = sum of its positions, and no
    /// position is negative.
    pub fn check_conservation(&self) -> Result<(), String> {
        let mut sums: HashMap<&LotId, i128> = HashMap::default();
        for (lot, grams, _) in self.timelines.totals_by_lot() {
            if grams < 0 {
                return Err(format!("a position of lot {lot} is negative: {grams} g"));
            }
            if grams == 0 {
                continue;
            }
            if !self.lots.contains_key(lot) {
                return Err(format!("a position on unknown lot {lot}"));
            }
            *sums.entry(lot).or_insert(0) += i128::from(grams);
        }
        for (id, lot) in &self.lots {
            let held = sums.get(id).copied().unwrap_or(0);
            if held != lot.balance_g() {
                return Err(format!("lot {id}: positions hold {held} g, flows say {} g", lot.balance_g()));
            }
        }
        Ok(())
    }
}

/// A position's balance now when it is above zero.
fn non_zero(timeline: &Timeline) -> Option<u64> {
    u64::try_from(timeline.total()).ok().filter(|g| *g != 0)
}

fn step(current: u64, direction: Direction, grams: u64) -> Option<u64> {
    match direction {
        Direction::Increase => current.checked_add(grams),
        Direction::Decrease => current.checked_sub(grams),
    }
}

fn restore<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: Option<V>) {
    match value {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

fn restore_hash<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: Option<V>) {
    match value {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::{AdjustReason, Direction};
    use crate::domain::model::{Location, Programme};
    use crate::domain::quantity::{Amount, Quantity};
    use crate::domain::Form;
    use crate::testkit::{at, lot, MemoryHistory};

    fn grams(g: u64) -> Quantity {
        Quantity { grams: g, stated: Amount::grams(g) }
    }

    fn pos(lot: &str, facility: &str) -> PositionKey {
        PositionKey {
            party: PartyId::new("nl-covra"),
            lot: LotId::new(lot),
            location: Location::facility(facility),
            programme: Programme::National,
        }
    }

    fn acquired(id: &str, g: u64) -> Event {
        Event::Acquired {
            lot: lot(id, "cobalt", Form::Metal, 999_000, "CD"),
            to: pos(id, "nl-vlissingen"),
            quantity: grams(g),
            supplier: None,
            contract: None,
            price: None,
        }
    }

    /// Applies `event` as the next record, under the event id `id`, and adds it to `log`
    /// when it applies.
    fn next(state: &mut State, log: &mut MemoryHistory, id: &str, event: &Event) -> Result<(), Violation> {
        let event_id = EventId::new(id);
        let at = Applied {
            seq: state.head.seq + 1,
            hash: [state.head.seq as u8 + 1; 32],
            occurred_at: at("2026-06-01T00:00:00Z"),
            recorded_at: at("2026-06-01T00:00:00Z"),
            event_id: &event_id,
            digest: [7; 32],
        };
        state.apply(&at, event, log)?;
        log.push(&event_id, [7; 32], event);
        Ok(())
    }

    /// Every check of `apply` runs before it writes: an event that breaks an invariant
    /// leaves the state exactly as it was, even where part of the event would have applied
    /// (the lot a failed conversion creates, the positions of a reversal of nothing).
    #[test]
    fn an_event_that_breaks_an_invariant_changes_nothing() {
        let mut state = State::default();
        let mut log = MemoryHistory::default();
        next(&mut state, &mut log, "acq-a", &acquired("lot-a", 10)).expect("acquire");
        let before = state.clone();
        let overdrawn = Event::Converted {
            from: pos("lot-a", "nl-vlissingen"),
            consumed: grams(11),
            lot: lot("lot-b", "cobalt", Form::Powder, 990_000, "CD"),
            to: pos("lot-b", "nl-vlissingen"),
            produced: grams(9),
        };
        let reversal_of_nothing = Event::Reversed {
            target: EventId::new("never-recorded"),
            target_seq: 1,
            reason: "test".into(),
            effects: acquired("lot-a", 5).effects().inverted(),
        };
        let overflow = Event::Adjusted {
            at: pos("lot-a", "nl-vlissingen"),
            direction: Direction::Increase,
            quantity: grams(u64::MAX - 5),
            reason: AdjustReason::StockTake,
            note: String::new(),
        };
        let cases = [
            ("conv-b", overdrawn, "below zero"),
            ("acq-a-again", acquired("lot-a", 1), "created twice"),
            ("rev-x", reversal_of_nothing, "reverses unknown"),
            ("revoke-x", Event::KeyRevoked { key: KeyId::new("no-such-key"), reason: "test".into() }, "unknown key"),
            ("adj-a", overflow, "overflow"),
            ("acq-a", acquired("lot-c", 1), "event id used twice"),
        ];
        for (id, event, what) in cases {
            let v = next(&mut state, &mut log, id, &event).expect_err(what);
            assert!(v.what.contains(what), "{id}: {v}");
            assert_eq!(state, before, "{id} changed the state");
        }
        // And the valid ones still apply, after the failures.
        next(
            &mut state,
            &mut log,
            "conv-b",
            &Event::Converted {
                from: pos("lot-a", "nl-vlissingen"),
                consumed: grams(10),
                lot: lot("lot-b", "cobalt", Form::Powder, 990_000, "CD"),
                to: pos("lot-b", "nl-vlissingen"),
                produced: grams(9),
            },
        )
        .expect("a conversion within the position");
        assert_eq!(state.position(&pos("lot-a", "nl-vlissingen")), 0);
        assert!(state.positions().all(|(k, _)| k != pos("lot-a", "nl-vlissingen")), "a zero position is not listed");
        assert_eq!(state.lots[&LotId::new("lot-b")].flows.get(FlowKind::ConvertedIn), 9);
        assert_eq!(state.lots[&LotId::new("lot-a")].flows.get(FlowKind::ConvertedOut), 10);
        state.check_conservation().expect("conservation");
    }

    /// A batch's journal undoes exactly what its events did, newest first.
    #[test]
    fn a_journal_rolls_a_batch_back_exactly() {
        let mut state = State::default();
        let mut log = MemoryHistory::default();
        next(&mut state, &mut log, "acq-a", &acquired("lot-a", 10)).expect("acquire");
        let before = state.clone();
        let mut undo = Vec::new();
        let events = [
            ("acq-b", acquired("lot-b", 4)),
            (
                "move-a",
                Event::Transferred {
                    from: pos("lot-a", "nl-vlissingen"),
                    to: pos("lot-a", "nl-rotterdam"),
                    quantity: grams(10),
                },
            ),
            (
                "rev-move-a",
                Event::Reversed {
                    target: EventId::new("move-a"),
                    target_seq: 3,
                    reason: "test".into(),
                    effects: Event::Transferred {
                        from: pos("lot-a", "nl-vlissingen"),
                        to: pos("lot-a", "nl-rotterdam"),
                        quantity: grams(10),
                    }
                    .effects()
                    .inverted(),
                },
            ),
        ];
        for (id, event) in &events {
            let event_id = EventId::new(*id);
            let applied = Applied {
                seq: state.head.seq + 1,
                hash: [1; 32],
                occurred_at: at("2026-06-02T00:00:00Z"),
                recorded_at: at("2026-06-02T00:00:00Z"),
                event_id: &event_id,
                digest: [2; 32],
            };
            state.apply_logged(&applied, event, &log, &mut undo).expect(id);
            log.push(&event_id, [2; 32], event);
        }
        let move_a = state.recorded(&EventId::new("move-a"), &log).expect("recorded");
        assert_eq!(move_a.seq, 3);
        assert_eq!(state.events.reversed_by(move_a.seq), Some(&EventId::new("rev-move-a")));
        assert_eq!(state.position(&pos("lot-a", "nl-vlissingen")), 10);
        assert_ne!(state, before);
        state.rollback(undo);
        assert_eq!(state, before);
    }
}
