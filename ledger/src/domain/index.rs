//! The event-id index: which seq holds an event id, for idempotency and reversals, in 16
//! bytes of table per event rather than the id, its digest and flags.
//!
//! An id is kept as a 64-bit hash of it (the first 8 bytes of its SHA-256, so the same on
//! every machine and in every snapshot) with the seq of its record; the id itself and its
//! command digest are in that record, which [`History::recorded_id`] reads back. Two ids
//! with one hash are both kept (the later seqs in `more`), and a look-up compares the
//! recorded id of each candidate, so a collision costs a read, never a wrong answer. A
//! look-up of an id never recorded (every new command) reads nothing, short of a collision.
//! What `decide` learned from the old per-id entry is read from the log too: the digest from
//! the record, whether the event moved stock from the event. Only reversals are kept apart
//! (`reversed`, one entry per reversed event), because they are rare and a record cannot
//! say it was reversed later.

use super::decide::History;
use super::ids::EventId;
use sha2::{Digest, Sha256};
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for keys that are already uniform hashes: passes the `u64` through.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (keys are `u64`); anything else is folded in, correctly if slowly.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type U64Map<V> = std::collections::HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// Where an id was recorded: its seq and the SHA-256 of its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub seq: u64,
    pub digest: [u8; 32],
}

/// One step of undo for the index (see [`crate::domain::state::Undo`]).
#[derive(Debug, Clone)]
pub(crate) enum IndexUndo {
    /// Forget the last seq added under this hash.
    Added(u64),
    /// Restore what `reversed` held for this seq.
    Reversal(u64, Option<EventId>),
}

/// Every event id recorded, by hash (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIndex {
    /// Hash → seq of the first id recorded with that hash.
    first: U64Map<u64>,
    /// Hash → seqs of later ids with the same hash, in seq order (collisions: rare).
    more: U64Map<Vec<u64>>,
    /// Seq of a reversed event → the id of the reversal.
    reversed: U64Map<EventId>,
    /// Bits of the hash kept: 64, fewer only in tests, to make collisions common.
    bits: u32,
}

impl Default for EventIndex {
    fn default() -> Self {
        EventIndex::with_hash_bits(64)
    }
}

impl EventIndex {
    /// An index keeping `bits` (1..=64) bits of each id's hash: tests shrink it to force
    /// collisions.
    pub fn with_hash_bits(bits: u32) -> EventIndex {
        assert!((1..=64).contains(&bits), "hash bits out of range: {bits}");
        EventIndex { first: U64Map::default(), more: U64Map::default(), reversed: U64Map::default(), bits }
    }

    pub fn hash_bits(&self) -> u32 {
        self.bits
    }

    /// The hash an id is kept under.
    pub fn hash(&self, id: &EventId) -> u64 {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let h = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        if self.bits == 64 {
            h
        } else {
            h & ((1u64 << self.bits) - 1)
        }
    }

    /// Ids recorded.
    pub fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// Room for `additional` more ids without growing the table step by step.
    pub fn reserve(&mut self, additional: usize) {
        self.first.reserve(additional);
    }

    /// The seqs recorded under `hash`, oldest first.
    fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        let more = self.more.get(&hash).map(Vec::as_slice).unwrap_or(&[]);
        self.first.get(&hash).copied().into_iter().chain(more.iter().copied())
    }

    /// Where `id` was recorded, reading the candidates' ids from `history`. `None` when it
    /// was not (or when `history` could not read a candidate: it keeps that error).
    pub fn find(&self, id: &EventId, history: &dyn History) -> Option<Recorded> {
        self.find_hashed(self.hash(id), id, history)
    }

    fn find_hashed(&self, hash: u64, id: &EventId, history: &dyn History) -> Option<Recorded> {
        self.candidates(hash).find_map(|seq| match history.recorded_id(seq) {
            Some((recorded, digest)) if recorded == *id => Some(Recorded { seq, digest }),
            _ => None,
        })
    }

    /// The seq where a reversal's `target` was recorded, given the `target_seq` the reversal names:
    /// `target_seq` when it is the one seq recorded under `target`'s hash (nothing read: a
    /// record names its target's seq, and replay folds one reversal in fifty events, each of
    /// whose reads costs its whole frame), else whatever [`EventIndex::find`] reads. With 64
    /// bits a second seq under one hash is a collision, so the reading path is the tests' (2
    /// bits) and an accident's. What this accepts differs from `find` only for an id whose
    /// hash equals that of the id recorded at `target_seq`: a 64-bit SHA-256 prefix
    /// collision with a given id. `decide` always reads (`find`), so no new reversal and no
    /// audit re-execution depends on it.
    pub fn find_target(&self, target: &EventId, target_seq: u64, history: &dyn History) -> Option<u64> {
        let hash = self.hash(target);
        let mut candidates = self.candidates(hash);
        match (candidates.next(), candidates.next()) {
            (Some(only), None) if only == target_seq && self.bits == 64 => Some(only),
            _ => self.find_hashed(hash, target, history).map(|found| found.seq),
        }
    }

    /// The id of the event that reversed the one at `seq`, if any.
    pub fn reversed_by(&self, seq: u64) -> Option<&EventId> {
        self.reversed.get(&seq)
    }

    /// Records `id` at `seq` (after every seq already in the index). The caller has checked
    /// that `id` is not recorded yet.
    pub(crate) fn add(&mut self, hash: u64, seq: u64) -> IndexUndo {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.more.entry(hash).or_default().push(seq),
        }
        IndexUndo::Added(hash)
    }

    /// Marks the event at `seq` reversed by `by`.
    pub(crate) fn set_reversed(&mut self, seq: u64, by: EventId) -> IndexUndo {
        IndexUndo::Reversal(seq, self.reversed.insert(seq, by))
    }

    pub(crate) fn undo(&mut self, step: IndexUndo) {
        match step {
            IndexUndo::Added(hash) => {
                if let Some(later) = self.more.get_mut(&hash) {
                    later.pop();
                    if later.is_empty() {
                        self.more.remove(&hash);
                    }
                } else {
                    self.first.remove(&hash);
                }
            }
            IndexUndo::Reversal(seq, Some(by)) => {
                self.reversed.insert(seq, by);
            }
            IndexUndo::Reversal(seq, None) => {
                self.reversed.remove(&seq);
            }
        }
    }

    /// Every `(hash, seq)`, in seq order: what a snapshot stores.
    pub fn entries(&self) -> Vec<(u64, u64)> {
        let mut all: Vec<(u64, u64)> = self.first.iter().map(|(h, s)| (*h, *s)).collect();
        all.extend(self.more.iter().flat_map(|(h, seqs)| seqs.iter().map(|s| (*h, *s))));
        all.sort_unstable_by_key(|(_, s)| *s);
        all
    }

    /// Every reversal, `(seq of the reversed event, id of the reversal)`, in seq order.
    pub fn reversals(&self) -> Vec<(u64, EventId)> {
        let mut all: Vec<(u64, EventId)> = self.reversed.iter().map(|(s, id)| (*s, id.clone())).collect();
        all.sort_unstable_by_key(|(s, _)| *s);
        all
    }

    /// The index [`EventIndex::entries`] and [`EventIndex::reversals`] describe; `entries`
    /// must be in seq order.
    pub fn from_parts(
        bits: u32,
        entries: impl IntoIterator<Item = (u64, u64)>,
        reversals: impl IntoIterator<Item = (u64, EventId)>,
    ) -> EventIndex {
        let mut index = EventIndex::with_hash_bits(bits);
        for (hash, seq) in entries {
            index.add(hash, seq);
        }
        index.reversed.extend(reversals);
        index
    }

    /// Bytes of table the index holds (capacity, not length: what it costs resident).
    pub fn table_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(u64, u64)>() + 1;
        self.first.capacity() * slot
            + self.more.values().map(|v| v.capacity() * 8 + 40).sum::<usize>()
            + self.reversed.capacity() * (std::mem::size_of::<(u64, EventId)>() + 1)
    }
}

/// Whether an event may be reversed: it moved stock and is not itself a reversal.
pub fn reversible(event: &super::event::Event) -> bool {
    !matches!(event, super::event::Event::Reversed { .. }) && !event.effect_refs().postings.is_empty()
}
