//! Every position ever posted to, with its [`Timeline`], keyed compactly.
//!
//! The ledger keeps one timeline per position ever posted to (577k in the bench's generated
//! history of a million records), so the table that holds them is most of its resident
//! state. A [`PositionKey`] is 80 bytes (three ids of 24 bytes and the programme), and a hash
//! table's buckets are a power of two, up to half of them empty. Parties and facilities are
//! few (an admin registers each), lots are many: so the table keys a position by its lot id
//! and by the numbers its party and facility got in two interners, 40 bytes instead of 80
//! (an entry with its timeline: 72 bytes, not 112). A look-up by [`PositionKey`] copies
//! nothing: it finds the party's and facility's numbers (a position whose party or facility
//! has none was never posted to) and compares the lot id in place.
//!
//! Numbers are handed out in the order parties and facilities are first posted to and are
//! never taken back (a rolled-back batch may leave one unused): they are this process's, not
//! part of the state's meaning, so equality and snapshots go by [`PositionKey`].

use super::ids::{FacilityId, LotId, PartyId};
use super::model::{Location, PositionKey, Programme};
use super::state::HashMap;
use super::timeline::Timeline;
use hashbrown::HashTable;
use std::hash::Hash;

/// Hands out a number per distinct value, in the order first seen.
#[derive(Debug, Clone)]
struct Interner<T> {
    values: Vec<T>,
    numbers: HashMap<T, u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner { values: Vec::new(), numbers: HashMap::default() }
    }
}

impl<T: Clone + Eq + Hash> Interner<T> {
    fn number(&self, value: &T) -> Option<u32> {
        self.numbers.get(value).copied()
    }

    fn intern(&mut self, value: &T) -> u32 {
        if let Some(n) = self.number(value) {
            return n;
        }
        // `u32::MAX` stays unused: a facility's number + 1 names its location.
        let n = u32::try_from(self.values.len())
            .ok()
            .filter(|n| *n < u32::MAX)
            .expect("fewer than 2^32 - 1 parties or facilities");
        self.values.push(value.clone());
        self.numbers.insert(value.clone(), n);
        n
    }

    fn value(&self, number: u32) -> &T {
        &self.values[number as usize]
    }
}

/// A position as the table keys it: the lot's id, the party's number, the location's number
/// (0 in transit, a facility's number + 1 at a facility) and the programme.
#[derive(Debug, Clone)]
struct Key {
    lot: LotId,
    party: u32,
    location: u32,
    programme: Programme,
}

/// Every position ever posted to and its timeline (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Timelines {
    table: HashTable<(Key, Timeline)>,
    parties: Interner<PartyId>,
    facilities: Interner<FacilityId>,
    /// Hashes keys: randomly seeded, so no crafted ids collide.
    hasher: ahash::RandomState,
}

fn hash(hasher: &ahash::RandomState, lot: &str, party: u32, location: u32, programme: Programme) -> u64 {
    hasher.hash_one((lot, party, location, programme))
}

fn hash_key(hasher: &ahash::RandomState, key: &Key) -> u64 {
    hash(hasher, key.lot.as_str(), key.party, key.location, key.programme)
}

impl Timelines {
    /// Positions with a timeline.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The party's and location's numbers, if both have one (else no position of theirs has
    /// a timeline).
    fn numbers(&self, key: &PositionKey) -> Option<(u32, u32)> {
        let party = self.parties.number(&key.party)?;
        let location = match &key.location {
            Location::InTransit => 0,
            Location::Facility(f) => self.facilities.number(f)? + 1,
        };
        Some((party, location))
    }

    fn find(&self, key: &PositionKey) -> Option<(u64, u32, u32)> {
        let (party, location) = self.numbers(key)?;
        Some((hash(&self.hasher, key.lot.as_str(), party, location, key.programme), party, location))
    }

    fn matches(key: &PositionKey, party: u32, location: u32) -> impl Fn(&(Key, Timeline)) -> bool + '_ {
        move |(k, _)| k.party == party && k.location == location && k.programme == key.programme && k.lot == key.lot
    }

    pub fn get(&self, key: &PositionKey) -> Option<&Timeline> {
        let (h, party, location) = self.find(key)?;
        self.table.find(h, Self::matches(key, party, location)).map(|(_, t)| t)
    }

    pub fn get_mut(&mut self, key: &PositionKey) -> Option<&mut Timeline> {
        let (h, party, location) = self.find(key)?;
        self.table.find_mut(h, Self::matches(key, party, location)).map(|(_, t)| t)
    }

    /// Sets `key`'s timeline, returning the one it had.
    pub fn insert(&mut self, key: &PositionKey, timeline: Timeline) -> Option<Timeline> {
        if let Some(held) = self.get_mut(key) {
            return Some(std::mem::replace(held, timeline));
        }
        let party = self.parties.intern(&key.party);
        let location = match &key.location {
            Location::InTransit => 0,
            Location::Facility(f) => self.facilities.intern(f) + 1,
        };
        let stored = Key { lot: key.lot.clone(), party, location, programme: key.programme };
        let hasher = &self.hasher;
        self.table.insert_unique(hash_key(hasher, &stored), (stored, timeline), |(k, _)| hash_key(hasher, k));
        None
    }

    pub fn remove(&mut self, key: &PositionKey) -> Option<Timeline> {
        let (h, party, location) = self.find(key)?;
        let entry = self.table.find_entry(h, Self::matches(key, party, location)).ok()?;
        Some(entry.remove().0 .1)
    }

    /// The position a stored key stands for.
    fn position(&self, key: &Key) -> PositionKey {
        PositionKey {
            party: self.parties.value(key.party).clone(),
            lot: key.lot.clone(),
            location: match key.location {
                0 => Location::InTransit,
                n => Location::Facility(self.facilities.value(n - 1).clone()),
            },
            programme: key.programme,
        }
    }

    /// Every position and its timeline, in no particular order. Each key is built from its
    /// parts (a copy of three ids, allocating only for an id longer than 24 bytes).
    pub fn iter(&self) -> impl Iterator<Item = (PositionKey, &Timeline)> + '_ {
        self.table.iter().map(|(k, t)| (self.position(k), t))
    }

    /// Every position and its timeline in [`PositionKey`] order, each key built only as it
    /// is reached (a snapshot writes them so: a sorted list of owned keys would hold a copy of
    /// every key at once).
    pub fn sorted(&self) -> impl Iterator<Item = (PositionKey, &Timeline)> + '_ {
        let mut entries: Vec<&(Key, Timeline)> = self.table.iter().collect();
        entries.sort_unstable_by(|(a, _), (b, _)| self.compare(a, b));
        entries.into_iter().map(|(k, t)| (self.position(k), t))
    }

    /// The order of the positions two keys stand for ([`PositionKey`]'s: party, lot,
    /// location with transit first, programme), read through the interners.
    fn compare(&self, a: &Key, b: &Key) -> std::cmp::Ordering {
        let location = |k: &Key| k.location.checked_sub(1).map(|n| self.facilities.value(n));
        self.parties
            .value(a.party)
            .cmp(self.parties.value(b.party))
            .then_with(|| a.lot.cmp(&b.lot))
            .then_with(|| location(a).cmp(&location(b)))
            .then_with(|| a.programme.cmp(&b.programme))
    }

    pub fn values(&self) -> impl Iterator<Item = &Timeline> + '_ {
        self.table.iter().map(|(_, t)| t)
    }

    /// Each position's balance now with its lot, without building its key: what
    /// conservation needs.
    pub fn totals_by_lot(&self) -> impl Iterator<Item = (&LotId, i64, &Timeline)> + '_ {
        self.table.iter().map(|(k, t)| (&k.lot, t.total(), t))
    }

    /// Room for `additional` more positions.
    pub fn reserve(&mut self, additional: usize) {
        let hasher = &self.hasher;
        self.table.reserve(additional, |(k, _)| hash_key(hasher, k));
    }
}

/// Equal when they hold the same positions with equal timelines, whatever numbers their
/// parties and facilities got.
impl PartialEq for Timelines {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, t)| other.get(&k) == Some(t))
    }
}

impl Eq for Timelines {}

impl FromIterator<(PositionKey, Timeline)> for Timelines {
    fn from_iter<I: IntoIterator<Item = (PositionKey, Timeline)>>(iter: I) -> Self {
        let mut timelines = Timelines::default();
        for (key, timeline) in iter {
            timelines.insert(&key, timeline);
        }
        timelines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn key(party: &str, lot: &str, facility: Option<&str>, programme: Programme) -> PositionKey {
        PositionKey {
            party: PartyId::new(party),
            lot: LotId::new(lot),
            location: facility.map_or(Location::InTransit, Location::facility),
            programme,
        }
    }

    #[test]
    fn behaves_as_a_map_by_position_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7173_e11e);
        let programmes = [Programme::Eu, Programme::Iea, Programme::Nato, Programme::National];
        let mut timelines = Timelines::default();
        let mut model: std::collections::HashMap<PositionKey, Timeline> = Default::default();
        for step in 0..5_000 {
            let k = key(
                ["nl", "de", "fr"][rng.gen_range(0..3)],
                // Some lot ids longer than 24 bytes, held out of line.
                &format!(
                    "lot-{}{}",
                    rng.gen_range(0..40),
                    if rng.gen_bool(0.2) { "-with-a-long-certificate-id" } else { "" }
                ),
                [None, Some("nl-vlissingen"), Some("de-hamburg")][rng.gen_range(0..3)],
                programmes[rng.gen_range(0..4)],
            );
            let what = format!("step {step} {k}");
            match rng.gen_range(0..4) {
                0 => assert_eq!(timelines.remove(&k), model.remove(&k), "{what}"),
                1 => {
                    let mut t = Timeline::default();
                    t.add(step, 1).unwrap();
                    assert_eq!(timelines.insert(&k, t.clone()), model.insert(k.clone(), t), "{what}");
                }
                2 => {
                    if let (Some(a), Some(b)) = (timelines.get_mut(&k), model.get_mut(&k)) {
                        a.add(-step, 2).unwrap();
                        b.add(-step, 2).unwrap();
                    }
                }
                _ => {}
            }
            assert_eq!(timelines.get(&k), model.get(&k), "{what}");
            assert_eq!(timelines.len(), model.len(), "{what}");
        }
        let mut listed: Vec<(PositionKey, Timeline)> = timelines.iter().map(|(k, t)| (k, t.clone())).collect();
        let mut expected: Vec<(PositionKey, Timeline)> = model.into_iter().collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listed, expected);
        let sorted: Vec<(PositionKey, Timeline)> = timelines.sorted().map(|(k, t)| (k, t.clone())).collect();
        assert_eq!(sorted, expected, "sorted() lists in PositionKey order");
        // Built again in another order, parties and facilities get other numbers: still equal.
        let again: Timelines = expected.iter().rev().cloned().collect();
        assert_eq!(again, timelines);
        // A position whose party or facility was never posted to has no timeline.
        assert_eq!(timelines.get(&key("xx", "lot-1", None, Programme::Eu)), None);
        assert_eq!(timelines.get(&key("nl", "lot-1", Some("xx-nowhere"), Programme::Eu)), None);
        assert_eq!(std::mem::size_of::<(Key, Timeline)>(), 72, "an entry stays small");
    }
}
