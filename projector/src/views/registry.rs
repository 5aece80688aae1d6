//! What the log has registered: the ledger's name, parties, facilities, lots and reference
//! figures. Learned from the events themselves, so the log alone is enough to answer queries
//! and cut reports.
//!
//! Entries live in append-only [`Table`]s addressed by a dense `u32` index, so a position
//! names its party, lot and facility in four bytes each and a query compares integers.
//! Nothing is ever removed (the ledger cannot unregister anything); the only removal is the
//! undo of an insert when a record fails half way (see `views::Undo`).

use super::{ReleaseRules, Withholding};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use stockpile_ledger::domain::state::FigureKey;
use stockpile_ledger::domain::{
    Country, Facility, FacilityId, FigureKind, Form, LotId, LotSpec, MaterialId, Party, PartyId,
};

/// Most entries of one table: indexes are `u32` (four bytes per reference in every position).
/// Four billion lots is far beyond any stockpile; reaching it is reported, never wrapped.
pub const TABLE_ENTRIES_MAX: usize = u32::MAX as usize;

/// An append-only table: key → dense index → value.
#[derive(Debug, Clone)]
pub(crate) struct Table<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
    /// Derived from `keys`; equality ignores it.
    index: HashMap<K, u32>,
}

impl<K: PartialEq, V: PartialEq> PartialEq for Table<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys && self.values == other.values
    }
}

impl<K: Eq, V: Eq> Eq for Table<K, V> {}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table { keys: Vec::new(), values: Vec::new(), index: HashMap::new() }
    }
}

/// Why an insert did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsertError {
    Exists,
    Full,
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn get(&self, key: &K) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// Appends a new entry; its index is the old length.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Result<u32, InsertError> {
        if self.index.contains_key(&key) {
            return Err(InsertError::Exists);
        }
        if self.keys.len() >= TABLE_ENTRIES_MAX {
            return Err(InsertError::Full);
        }
        let idx = self.keys.len() as u32;
        self.index.insert(key.clone(), idx);
        self.keys.push(key);
        self.values.push(value);
        Ok(idx)
    }

    /// Removes the newest entry: the undo of the last `insert`.
    pub(crate) fn pop(&mut self) {
        if let Some(key) = self.keys.pop() {
            self.index.remove(&key);
            self.values.pop();
        }
    }

    pub(crate) fn key(&self, idx: u32) -> &K {
        &self.keys[idx as usize]
    }

    pub(crate) fn value(&self, idx: u32) -> &V {
        &self.values[idx as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.keys.iter().zip(self.values.iter())
    }
}

impl<K: Hash + Eq + Clone> Table<K, ()> {
    /// The index of `key`, adding it if new. `Ok((idx, true))` when it was added.
    pub(crate) fn intern(&mut self, key: &K) -> Result<(u32, bool), InsertError> {
        match self.get(key) {
            Some(idx) => Ok((idx, false)),
            None => self.insert(key.clone(), ()).map(|idx| (idx, true)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartyEntry {
    pub(crate) party: Party,
    pub(crate) partner: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FacilityEntry {
    pub(crate) facility: Facility,
    pub(crate) country: u32,
}

/// A lot's spec without its strings: there are many lots, and every query reads these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LotEntry {
    pub(crate) material: u32,
    pub(crate) form: Form,
    pub(crate) purity_ppm: u32,
    pub(crate) origin: u32,
    pub(crate) certificate: Option<Box<str>>,
}

/// A registered value, in force from business time `at_ns` (ns since the epoch) on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered<T> {
    pub at_ns: i64,
    pub value: T,
}

/// The registration in force at the end of business time `cutoff_ns` (exclusive): the last one
/// dated before it, the later record among equal times. `list` is in business-time order.
fn in_force<T>(list: &[T], at_ns: impl Fn(&T) -> i64, cutoff_ns: i64) -> Option<&T> {
    let k = list.partition_point(|r| at_ns(r) < cutoff_ns);
    list[..k].last()
}

/// Everything registered so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    pub(crate) ledger: Option<String>,
    /// Partners, facility countries and origins share one table of country codes.
    pub(crate) countries: Table<Country, ()>,
    pub(crate) materials: Table<MaterialId, ()>,
    pub(crate) parties: Table<PartyId, PartyEntry>,
    pub(crate) facilities: Table<FacilityId, FacilityEntry>,
    pub(crate) lots: Table<LotId, LotEntry>,
    /// Every registration of each figure, in business-time order (record order among equals).
    pub(crate) figures: BTreeMap<FigureKey, Vec<Registered<u64>>>,
    /// Every registration of release rules per (partner, material), ordered as `figures`.
    pub(crate) rules: BTreeMap<(Country, MaterialId), Vec<ReleaseRules>>,
    /// Withholdings per (party, lot), in business-time order (record order among equals).
    pub(crate) withholds: BTreeMap<(PartyId, LotId), Vec<Withholding>>,
}

impl Registry {
    /// The ledger's name, from its genesis record.
    pub fn ledger(&self) -> Option<&str> {
        self.ledger.as_deref()
    }

    pub fn party(&self, id: &PartyId) -> Option<&Party> {
        self.parties.get(id).map(|i| &self.parties.value(i).party)
    }

    /// Every party, in registration order.
    pub fn parties(&self) -> impl Iterator<Item = &Party> {
        self.parties.iter().map(|(_, e)| &e.party)
    }

    pub fn facility(&self, id: &FacilityId) -> Option<&Facility> {
        self.facilities.get(id).map(|i| &self.facilities.value(i).facility)
    }

    /// Every facility, in registration order.
    pub fn facilities(&self) -> impl Iterator<Item = &Facility> {
        self.facilities.iter().map(|(_, e)| &e.facility)
    }

    /// A lot's spec as its acquire or convert recorded it.
    pub fn lot(&self, id: &LotId) -> Option<LotSpec> {
        self.lots.get(id).map(|i| self.lot_spec(i))
    }

    /// Every lot's spec, in the order the log created them.
    pub fn lots(&self) -> impl Iterator<Item = LotSpec> + '_ {
        (0..self.lots.len() as u32).map(|i| self.lot_spec(i))
    }

    pub fn lot_count(&self) -> usize {
        self.lots.len()
    }

    pub(crate) fn lot_spec(&self, idx: u32) -> LotSpec {
        let e = self.lots.value(idx);
        LotSpec {
            id: self.lots.key(idx).clone(),
            material: self.materials.key(e.material).clone(),
            form: e.form,
            purity_ppm: e.purity_ppm,
            origin: self.countries.key(e.origin).clone(),
            certificate: e.certificate.as_deref().map(str::to_string),
        }
    }

    /// A reference figure (annual consumption or net imports of `year`), in grams, as in
    /// force at the end of business time `cutoff_ns` (exclusive): the last registration dated
    /// before it. A registration dated later, even one recorded earlier, does not count.
    pub fn figure(
        &self,
        figure: FigureKind,
        partner: &Country,
        material: &MaterialId,
        year: i32,
        cutoff_ns: i64,
    ) -> Option<u64> {
        let list = self.figures.get(&(figure, partner.clone(), material.clone(), year))?;
        in_force(list, |r| r.at_ns, cutoff_ns).map(|r| r.value)
    }

    /// The release rules of a partner for a material in force at the end of business time
    /// `cutoff_ns` (exclusive), chosen as [`Registry::figure`] chooses.
    pub fn release_rules(&self, partner: &Country, material: &MaterialId, cutoff_ns: i64) -> Option<&ReleaseRules> {
        let list = self.rules.get(&(partner.clone(), material.clone()))?;
        in_force(list, |r| r.at_ns, cutoff_ns)
    }

    /// Whether `party`'s stock of `lot` is withheld at the end of business time `cutoff_ns`
    /// (exclusive, like as-of queries), and the withholding in force.
    pub fn withheld_at(&self, party: &PartyId, lot: &LotId, cutoff_ns: i64) -> Option<&Withholding> {
        let list = self.withholds.get(&(party.clone(), lot.clone()))?;
        let k = list.partition_point(|w| w.at_ns < cutoff_ns);
        list[..k].last().filter(|w| w.withheld)
    }

    /// Every registration of every figure, sorted by (figure, partner, material, year), each
    /// key's in business-time order.
    pub fn figures(&self) -> &BTreeMap<FigureKey, Vec<Registered<u64>>> {
        &self.figures
    }
}
