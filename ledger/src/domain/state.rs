//! The ledger's state: everything `decide` needs, derived purely from the log by `apply`.

use super::command::{Direction, FigureKind};
use super::event::{Effects, Event, FlowKind};
use super::ids::{Country, EventId, FacilityId, KeyId, LotId, MaterialId, PartyId};
use super::model::{Facility, KeyEntry, LotSpec, Party, PositionKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state's hash maps: keyed by operator-chosen ids, so with a randomly seeded hasher (no
/// crafted collisions), but a faster one than the standard library's SipHash.
pub type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// A lot and its flow counters. Conservation: inflows − outflows = sum of its positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotState {
    pub spec: LotSpec,
    /// Grams per flow kind (acquired, released, converted in/out, adjusted up/down).
    pub flows: BTreeMap<FlowKind, u64>,
}

impl LotState {
    pub fn new(spec: LotSpec) -> Self {
        LotState { spec, flows: BTreeMap::new() }
    }

    /// Inflows minus outflows: what the lot's positions must add up to.
    pub fn balance_g(&self) -> i128 {
        self.flows.iter().map(|(k, g)| if k.is_inflow() { i128::from(*g) } else { -i128::from(*g) }).sum()
    }
}

/// What the ledger remembers of each event id: enough for idempotency and reversal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEntry {
    pub seq: u64,
    /// SHA-256 of the canonical command, for "same id, same content?".
    pub digest: [u8; 32],
    /// Whether the event moved stock (only those may be reversed).
    pub movement: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversed_by: Option<EventId>,
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
    pub parties: BTreeMap<PartyId, Party>,
    pub facilities: BTreeMap<FacilityId, Facility>,
    pub keys: BTreeMap<KeyId, KeyEntry>,
    pub figures: BTreeMap<FigureKey, u64>,
    pub lots: HashMap<LotId, LotState>,
    /// Non-zero positions only: a position that reaches zero is removed.
    pub positions: HashMap<PositionKey, u64>,
    pub events: HashMap<EventId, EventEntry>,
}

/// One step of undo: the value an entry had before `apply` changed it.
#[derive(Debug, Clone)]
pub(crate) enum Undo {
    Head(Head),
    Ledger(Option<String>),
    Party(PartyId, Option<Party>),
    Facility(FacilityId, Option<Facility>),
    Key(KeyId, Option<KeyEntry>),
    Figure(FigureKey, Option<u64>),
    Lot(LotId, Option<LotState>),
    /// A lot's flow counters before an event changed them (the lot itself is unchanged).
    LotFlows(LotId, BTreeMap<FlowKind, u64>),
    Position(PositionKey, Option<u64>),
    Event(EventId, Option<EventEntry>),
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
    pub recorded_at: DateTime<Utc>,
    pub event_id: &'a EventId,
    pub digest: [u8; 32],
}

impl State {
    pub fn position(&self, key: &PositionKey) -> u64 {
        self.positions.get(key).copied().unwrap_or(0)
    }

    /// Applies one event. Pure and deterministic; checks every invariant it touches.
    pub fn apply(&mut self, at: &Applied<'_>, event: &Event) -> Result<(), Violation> {
        self.apply_logged(at, event, &mut Vec::new())
    }

    /// Applies one event, pushing the previous value of everything it changes onto `undo`,
    /// so a batch can be rolled back exactly.
    pub(crate) fn apply_logged(
        &mut self,
        at: &Applied<'_>,
        event: &Event,
        undo: &mut Vec<Undo>,
    ) -> Result<(), Violation> {
        let start = undo.len();
        let result = self.apply_unchecked(at, event, undo);
        if result.is_err() {
            let tail = undo.split_off(start);
            self.rollback(tail);
        }
        result
    }

    fn apply_unchecked(&mut self, at: &Applied<'_>, event: &Event, undo: &mut Vec<Undo>) -> Result<(), Violation> {
        let violation = |what: String| Violation { seq: at.seq, event_id: at.event_id.clone(), what };
        if at.seq != self.head.seq + 1 {
            return Err(violation(format!("seq follows {} (gap or repeat)", self.head.seq)));
        }
        if self.events.contains_key(at.event_id) {
            return Err(violation("event id used twice".into()));
        }
        self.apply_registry(event, at.seq, undo).map_err(violation)?;
        let effects = event.effects();
        self.apply_effects(&effects, undo).map_err(violation)?;
        if let Event::Reversed { target, .. } = event {
            let entry = self.events.get_mut(target).ok_or_else(|| violation(format!("reverses unknown {target}")))?;
            undo.push(Undo::Event(target.clone(), Some(entry.clone())));
            entry.reversed_by = Some(at.event_id.clone());
        }
        let movement = !effects.postings.is_empty() && !matches!(event, Event::Reversed { .. });
        undo.push(Undo::Event(at.event_id.clone(), None));
        self.events
            .insert(at.event_id.clone(), EventEntry { seq: at.seq, digest: at.digest, movement, reversed_by: None });
        undo.push(Undo::Head(self.head.clone()));
        self.head = Head { seq: at.seq, hash: at.hash, recorded_at: Some(at.recorded_at) };
        Ok(())
    }

    fn apply_registry(&mut self, event: &Event, seq: u64, undo: &mut Vec<Undo>) -> Result<(), String> {
        match event {
            Event::Genesis { ledger, admin_key, .. } => {
                undo.push(Undo::Ledger(self.ledger.clone()));
                self.ledger = Some(ledger.clone());
                undo.push(Undo::Key(admin_key.id.clone(), self.keys.insert(admin_key.id.clone(), admin_key.clone())));
            }
            Event::PartyRegistered { party } => {
                undo.push(Undo::Party(party.id.clone(), self.parties.insert(party.id.clone(), party.clone())));
            }
            Event::FacilityRegistered { facility } => {
                let prev = self.facilities.insert(facility.id.clone(), facility.clone());
                undo.push(Undo::Facility(facility.id.clone(), prev));
            }
            Event::KeyRegistered { key } => {
                undo.push(Undo::Key(key.id.clone(), self.keys.insert(key.id.clone(), key.clone())));
            }
            Event::KeyRevoked { key, .. } => {
                let entry = self.keys.get_mut(key).ok_or_else(|| format!("revokes unknown key {key}"))?;
                undo.push(Undo::Key(key.clone(), Some(entry.clone())));
                entry.revoked_at = Some(seq);
            }
            Event::FigureRegistered { figure, partner, material, year, quantity } => {
                let k = (*figure, partner.clone(), material.clone(), *year);
                undo.push(Undo::Figure(k.clone(), self.figures.insert(k, quantity.grams)));
            }
            Event::Acquired { lot, .. } => self.create_lot(lot, undo)?,
            Event::Converted { lot, .. } => self.create_lot(lot, undo)?,
            _ => {}
        }
        Ok(())
    }

    fn create_lot(&mut self, lot: &LotSpec, undo: &mut Vec<Undo>) -> Result<(), String> {
        if self.lots.contains_key(&lot.id) {
            return Err(format!("lot {} created twice", lot.id));
        }
        undo.push(Undo::Lot(lot.id.clone(), None));
        self.lots.insert(lot.id.clone(), LotState::new(lot.clone()));
        Ok(())
    }

    /// Applies postings and flows. On error nothing is changed (all checks run first). Keys
    /// are borrowed from `effects` until written, and a lot's flow counters are copied, not
    /// the lot: this runs for every event of a replay or an audit.
    fn apply_effects(&mut self, effects: &Effects, undo: &mut Vec<Undo>) -> Result<(), String> {
        // Compute every new value first, then write: an invariant failure changes nothing.
        let mut new_positions: Vec<(&PositionKey, u64)> = Vec::with_capacity(effects.postings.len());
        for p in &effects.postings {
            let current = new_positions
                .iter()
                .rev()
                .find(|(k, _)| **k == p.position)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| self.position(&p.position));
            let next = step(current, p.direction, p.grams)
                .ok_or_else(|| format!("position {} would go below zero or overflow", p.position))?;
            new_positions.push((&p.position, next));
        }
        let mut new_flows: Vec<(&LotId, BTreeMap<FlowKind, u64>)> = Vec::new();
        for f in &effects.flows {
            let idx = match new_flows.iter().position(|(id, _)| **id == f.lot) {
                Some(i) => i,
                None => {
                    let lot = self.lots.get(&f.lot).ok_or_else(|| format!("flow on unknown lot {}", f.lot))?;
                    new_flows.push((&f.lot, lot.flows.clone()));
                    new_flows.len() - 1
                }
            };
            let flows = &mut new_flows[idx].1;
            let counter = flows.entry(f.kind).or_insert(0);
            *counter =
                step(*counter, f.direction, f.grams).ok_or_else(|| format!("lot {} counter underflow", f.lot))?;
            flows.retain(|_, g| *g != 0);
        }
        for (key, value) in new_positions {
            let prev = if value == 0 {
                self.positions.remove(key)
            } else if let Some(held) = self.positions.get_mut(key) {
                Some(std::mem::replace(held, value))
            } else {
                self.positions.insert(key.clone(), value)
            };
            undo.push(Undo::Position(key.clone(), prev));
        }
        for (id, flows) in new_flows {
            if let Some(lot) = self.lots.get_mut(id) {
                undo.push(Undo::LotFlows(id.clone(), std::mem::replace(&mut lot.flows, flows)));
            }
        }
        Ok(())
    }

    /// Restores the values recorded in `undo`, newest first.
    pub(crate) fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Head(h) => self.head = h,
                Undo::Ledger(l) => self.ledger = l,
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
                Undo::Position(k, v) => restore_hash(&mut self.positions, k, v),
                Undo::Event(k, v) => restore_hash(&mut self.events, k, v),
            }
        }
    }

    /// Checks conservation for every lot: inflows − outflows = sum of its positions, and no
    /// position is zero or negative (zero positions are removed; u64 cannot be negative).
    pub fn check_conservation(&self) -> Result<(), String> {
        let mut sums: HashMap<&LotId, i128> = HashMap::default();
        for (key, grams) in &self.positions {
            if *grams == 0 {
                return Err(format!("zero position {key} kept"));
            }
            if !self.lots.contains_key(&key.lot) {
                return Err(format!("position {key} on unknown lot"));
            }
            *sums.entry(&key.lot).or_insert(0) += i128::from(*grams);
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
