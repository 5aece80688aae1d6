//! The views a fold builds: the [`Registry`] (what the log registered), the positions with
//! their history by business time (module `positions`), and the chain [`Head`].
//!
//! Views change only through [`Change`]s: the fold turns each record into a list of them
//! ([`crate::fold`]), the store persists the same list ([`crate::store`]), and reopening
//! replays it. One vocabulary for the live path and the persisted path is what makes a
//! reopened projector equal to a live one by construction (and the tests check it).
//!
//! A record's changes apply all or nothing: each change logs how to undo itself, and a
//! failure rolls back the ones before it.

pub(crate) mod fxhash;
pub(crate) mod journal;
pub(crate) mod positions;
pub(crate) mod registry;

pub use registry::Registry;

use crate::fold::FoldError;
use chrono::{DateTime, Utc};
use journal::JournalEntry;
use positions::{NewPositionError, Positions, PostError, Posted};
use registry::{FacilityEntry, InsertError, LotEntry, PartyEntry, Registered};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stockpile_ledger::canonical::{hex_hash, Hash};
use stockpile_ledger::domain::model::PURITY_PPM_MAX;
use stockpile_ledger::domain::state::FigureKey;
use stockpile_ledger::domain::{
    Country, Facility, FigureKind, LotId, LotSpec, MaterialId, Party, PartyId, PositionKey, ReleaseReason,
};

/// The last record folded: the projector's checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// 0 before the first record.
    pub seq: u64,
    /// The record's hash; all zeros before the first record (the first `prev_hash`).
    #[serde(with = "hex_hash")]
    pub hash: Hash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
}

/// What a posting was, kept with it in the store so a movements view (acquired, transferred
/// in/out, released, adjusted per period) can be built from the store without the log.
/// Holdings ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    Acquire,
    Store,
    Transfer,
    Release,
    Convert,
    Adjust,
    ReverseAcquire,
    ReverseStore,
    ReverseTransfer,
    ReverseRelease,
    ReverseConvert,
    ReverseAdjust,
}

impl Movement {
    /// The movement that reverses this one; `None` for a reversal (reversals are not reversed).
    pub fn reversed(self) -> Option<Movement> {
        use Movement::*;
        Some(match self {
            Acquire => ReverseAcquire,
            Store => ReverseStore,
            Transfer => ReverseTransfer,
            Release => ReverseRelease,
            Convert => ReverseConvert,
            Adjust => ReverseAdjust,
            ReverseAcquire | ReverseStore | ReverseTransfer | ReverseRelease | ReverseConvert | ReverseAdjust => {
                return None
            }
        })
    }

    /// Whether this is the reversal of another movement.
    pub fn is_reversal(self) -> bool {
        self.reversed().is_none()
    }
}

/// A reference figure as registered, in force from business time `at_ns` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    pub figure: FigureKind,
    pub partner: Country,
    pub material: MaterialId,
    pub year: i32,
    pub grams: u64,
    /// The registration's `occurred_at`, ns since the epoch. Stores written before it was
    /// kept read [`IN_FORCE_ALWAYS`]: rebuild the projector to get the real times.
    #[serde(default = "in_force_always")]
    pub at_ns: i64,
}

/// Release, allocation and distribution rules as registered (CRMA Art. 22(2)(c)), in force
/// from business time `at_ns` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRules {
    pub partner: Country,
    pub material: MaterialId,
    pub text: String,
    pub confidential: bool,
    /// As [`Figure::at_ns`].
    #[serde(default = "in_force_always")]
    pub at_ns: i64,
}

/// The registration time read for a figure or rules persisted without one (a store written
/// before registrations kept their business time): in force at every date.
pub const IN_FORCE_ALWAYS: i64 = i64::MIN;

fn in_force_always() -> i64 {
    IN_FORCE_ALWAYS
}

/// A position (party, lot) withheld from reports on national-security grounds, or reported
/// again, from business time `at_ns` (nanoseconds since the epoch) on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withholding {
    pub party: PartyId,
    pub lot: LotId,
    pub at_ns: i64,
    pub withheld: bool,
    pub reason: String,
}

/// One change to the views. A record makes a few; the store keeps them compactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// The genesis record names the ledger.
    Ledger(String),
    Party(Party),
    Facility(Facility),
    Lot(LotSpec),
    Figure(Figure),
    /// A position seen for the first time; it takes the next position index.
    Position(PositionKey),
    /// `[position index, occurred_at in ns since the epoch, signed grams, movement]`: a tuple,
    /// because postings are most of what the store holds.
    Post(u32, i64, i64, Movement),
    /// Release rules of a partner for a material, in force from their business time.
    Rules(ReleaseRules),
    Withholding(Withholding),
    /// Why the stock this record's postings take out leaves the stockpile (a release, or the
    /// reversal of one): kept with the postings in the journal.
    Reason(ReleaseReason),
}

/// What a fold has built. Compare two with `==`: a live, a reopened and a rebuilt
/// projector over the same log hold equal views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Views {
    pub(crate) head: Head,
    pub(crate) registry: Registry,
    pub(crate) positions: Positions,
    /// Every posting in record order, with its movement: what the report's period flows read.
    pub(crate) journal: Vec<JournalEntry>,
}

/// How to take back one applied change.
enum Undo {
    Ledger,
    Country,
    Material,
    Party,
    Facility,
    Lot,
    /// Where the registration went in its key's list.
    Figure(FigureKey, usize),
    Position {
        new_class: bool,
    },
    Post(Posted),
    Rules((Country, MaterialId), usize),
    Withholding((PartyId, LotId), usize),
}

impl Views {
    pub fn new() -> Views {
        Views::default()
    }

    /// The last record folded.
    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// How many positions the log has ever touched (including those now empty).
    pub fn position_count(&self) -> usize {
        self.positions.len()
    }

    /// How many position classes (positions alike in all but their lot) the index holds.
    pub fn class_count(&self) -> usize {
        self.positions.classes.len()
    }

    /// A position's balance after every folded record; 0 for a position never touched.
    pub fn balance(&self, key: &PositionKey) -> u64 {
        let row = self.positions.find(&self.registry, key).map(|i| &self.positions.rows[i as usize]);
        row.map_or(0, |r| r.current as u64)
    }

    /// Every non-empty position and its balance, sorted by position key.
    pub fn positions(&self) -> Vec<(PositionKey, u64)> {
        let mut out: Vec<(PositionKey, u64)> = (0..self.positions.len() as u32)
            .filter(|&i| self.positions.rows[i as usize].current != 0)
            .map(|i| (self.positions.position_key(&self.registry, i), self.positions.rows[i as usize].current as u64))
            .collect();
        out.sort();
        out
    }

    /// Applies one record's changes, all or nothing. `seq` is for error reports; the head is
    /// the caller's to move.
    pub(crate) fn apply_changes(&mut self, seq: u64, changes: &[Change]) -> Result<(), FoldError> {
        let mut undo = Vec::with_capacity(changes.len());
        let reason = changes.iter().find_map(|c| match c {
            Change::Reason(r) => Some(*r),
            _ => None,
        });
        for change in changes {
            if let Err(e) = self.apply_change(seq, change, reason, &mut undo) {
                self.rollback(undo);
                self.positions.forget_touched();
                return Err(e);
            }
        }
        self.positions.settle();
        Ok(())
    }

    fn apply_change(
        &mut self,
        seq: u64,
        change: &Change,
        reason: Option<ReleaseReason>,
        undo: &mut Vec<Undo>,
    ) -> Result<(), FoldError> {
        let inconsistent = |what: String| FoldError::Inconsistent { seq, what };
        let inserted = |what: &str, id: &str, e: InsertError| match e {
            InsertError::Exists => FoldError::Inconsistent { seq, what: format!("{what} {id} is registered twice") },
            InsertError::Full => FoldError::Overflow { seq, what: format!("too many {what} entries") },
        };
        match change {
            Change::Ledger(name) => {
                if self.registry.ledger.is_some() {
                    return Err(inconsistent("a second genesis record".into()));
                }
                self.registry.ledger = Some(name.clone());
                undo.push(Undo::Ledger);
            }
            Change::Party(party) => {
                let partner = self.country(&party.partner, undo).map_err(|e| inserted("country", "", e))?;
                let entry = PartyEntry { party: party.clone(), partner };
                self.registry
                    .parties
                    .insert(party.id.clone(), entry)
                    .map_err(|e| inserted("party", party.id.as_str(), e))?;
                undo.push(Undo::Party);
            }
            Change::Facility(facility) => {
                let country = self.country(&facility.country, undo).map_err(|e| inserted("country", "", e))?;
                let entry = FacilityEntry { facility: facility.clone(), country };
                let id = facility.id.clone();
                self.registry
                    .facilities
                    .insert(id, entry)
                    .map_err(|e| inserted("facility", facility.id.as_str(), e))?;
                undo.push(Undo::Facility);
            }
            Change::Lot(spec) => self.add_lot(seq, spec, undo)?,
            Change::Figure(f) => {
                let key = (f.figure, f.partner.clone(), f.material.clone(), f.year);
                let list = self.registry.figures.entry(key.clone()).or_default();
                // business-time order, record order among equal times
                let i = list.partition_point(|r| r.at_ns <= f.at_ns);
                list.insert(i, Registered { at_ns: f.at_ns, value: f.grams });
                undo.push(Undo::Figure(key, i));
            }
            Change::Position(key) => {
                let new_class = self.positions.create(&self.registry, key).map_err(|e| match e {
                    NewPositionError::Exists => inconsistent(format!("position {key} is created twice")),
                    NewPositionError::Unknown { what, id } => {
                        inconsistent(format!("position {key} names unknown {what} {id}"))
                    }
                    NewPositionError::Full => FoldError::Overflow { seq, what: "the position count".into() },
                })?;
                undo.push(Undo::Position { new_class });
            }
            Change::Post(position, at, delta, movement) => {
                let posted = self.positions.post(*position, *at, *delta).map_err(|e| match e {
                    PostError::UnknownPosition => inconsistent(format!("posting to unknown position index {position}")),
                    PostError::Negative { current } => {
                        inconsistent(format!("posting {delta} g takes a position holding {current} g below zero"))
                    }
                    PostError::Overflow => FoldError::Overflow { seq, what: "a running balance".into() },
                })?;
                self.journal.push(JournalEntry {
                    seq,
                    at: *at,
                    position: *position,
                    delta: *delta,
                    movement: *movement,
                    reason,
                });
                undo.push(Undo::Post(posted));
            }
            Change::Rules(rules) => {
                let key = (rules.partner.clone(), rules.material.clone());
                let list = self.registry.rules.entry(key.clone()).or_default();
                let i = list.partition_point(|r| r.at_ns <= rules.at_ns);
                list.insert(i, rules.clone());
                undo.push(Undo::Rules(key, i));
            }
            Change::Withholding(w) => {
                let key = (w.party.clone(), w.lot.clone());
                let list = self.registry.withholds.entry(key.clone()).or_default();
                // time order, after equal times: what replaying the same log reproduces
                let i = list.partition_point(|t| t.at_ns <= w.at_ns);
                list.insert(i, w.clone());
                undo.push(Undo::Withholding(key, i));
            }
            Change::Reason(_) => {}
        }
        Ok(())
    }

    fn add_lot(&mut self, seq: u64, spec: &LotSpec, undo: &mut Vec<Undo>) -> Result<(), FoldError> {
        if spec.purity_ppm == 0 || spec.purity_ppm > PURITY_PPM_MAX {
            let what = format!("lot {} has purity {} ppm, outside 1..={PURITY_PPM_MAX}", spec.id, spec.purity_ppm);
            return Err(FoldError::Inconsistent { seq, what });
        }
        let full = |what: &str| FoldError::Overflow { seq, what: format!("too many {what} entries") };
        let (material, new) = self.registry.materials.intern(&spec.material).map_err(|_| full("material"))?;
        if new {
            undo.push(Undo::Material);
        }
        let origin = self.country(&spec.origin, undo).map_err(|_| full("country"))?;
        let entry = LotEntry {
            material,
            form: spec.form,
            purity_ppm: spec.purity_ppm,
            origin,
            certificate: spec.certificate.as_deref().map(Box::from),
        };
        self.registry.lots.insert(spec.id.clone(), entry).map_err(|e| match e {
            InsertError::Exists => FoldError::Inconsistent { seq, what: format!("lot {} is created twice", spec.id) },
            InsertError::Full => full("lot"),
        })?;
        undo.push(Undo::Lot);
        Ok(())
    }

    fn country(&mut self, code: &Country, undo: &mut Vec<Undo>) -> Result<u32, InsertError> {
        let (idx, new) = self.registry.countries.intern(code)?;
        if new {
            undo.push(Undo::Country);
        }
        Ok(idx)
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        let r = &mut self.registry;
        for step in undo.into_iter().rev() {
            match step {
                Undo::Ledger => r.ledger = None,
                Undo::Country => r.countries.pop(),
                Undo::Material => r.materials.pop(),
                Undo::Party => r.parties.pop(),
                Undo::Facility => r.facilities.pop(),
                Undo::Lot => r.lots.pop(),
                Undo::Figure(key, i) => remove_at(&mut r.figures, &key, i),
                Undo::Position { new_class } => self.positions.pop(new_class),
                Undo::Post(posted) => {
                    self.journal.pop();
                    self.positions.unpost(posted)
                }
                Undo::Rules(key, i) => remove_at(&mut r.rules, &key, i),
                Undo::Withholding(key, i) => remove_at(&mut r.withholds, &key, i),
            }
        }
    }
}

/// Removes entry `i` of `key`'s list (the undo of an insert), and the list once empty.
fn remove_at<K: Ord, V>(map: &mut BTreeMap<K, Vec<V>>, key: &K, i: usize) {
    if let Some(list) = map.get_mut(key) {
        list.remove(i);
        if list.is_empty() {
            map.remove(key);
        }
    }
}
