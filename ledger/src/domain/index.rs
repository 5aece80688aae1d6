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
//!
//! Most entries sit in `frozen`, a vector sorted by hash (16 bytes an entry, nothing empty);
//! the latest ones in a hash table (`first`, `more`), whose buckets are a power of two and
//! up to half empty. When the table holds an eighth of what is frozen or more (and at
//! least [`FREEZE_MIN`] entries), it is merged into `frozen`. A directory over `frozen`
//! (`dir`, rebuilt at each merge) gives, for each value of a hash's top `dir_bits` bits,
//! where its entries start: about eight entries each, half a byte per entry. A look-up reads
//! the directory and binary-searches that bucket alone: two or three cache misses, not the
//! ten of a binary search across the whole vector. Hashes are uniform, so buckets stay
//! small; ids ground to share top bits only make their bucket a longer binary search. Every
//! frozen seq is older than every seq in the table, so the candidates under one hash are
//! still listed oldest first.

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

/// Entries the table holds before it may be merged into the frozen part (fewer with fewer
/// hash bits: see [`EventIndex::with_hash_bits`]).
pub const FREEZE_MIN: usize = 1 << 16;

/// Most bits of a hash the directory over the frozen part resolves: 2^24 + 1 starts of
/// 4 bytes, 64 MiB, reached at 2^27 frozen entries. Past 2^32 frozen entries the directory
/// is one bucket (a plain binary search), since its starts are `u32`: the end of the last
/// bucket is always `frozen.len()`, never read from the directory.
const DIR_BITS_MAX: u32 = 24;

/// Where an id was recorded: its seq and the SHA-256 of its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub seq: u64,
    pub digest: [u8; 32],
}

/// One step of undo for the index (see [`crate::domain::state::Undo`]).
#[derive(Debug, Clone)]
pub(crate) enum IndexUndo {
    /// Forget the last seq added under `hash`; first, when adding it merged the table into
    /// the frozen part, take back out of it every entry newer than `merged_after` (the
    /// newest seq frozen before), so the table is as it was and a rollback costs one pass
    /// over the frozen part, not one per event.
    Added { hash: u64, merged_after: Option<u64> },
    /// Restore what `reversed` held for this seq.
    Reversal(u64, Option<EventId>),
}

/// Every event id recorded, by hash (see the module's documentation).
#[derive(Debug, Clone)]
pub struct EventIndex {
    /// `(hash, seq)` sorted, every seq older than those in `first` and `more`.
    frozen: Vec<(u64, u64)>,
    /// `dir[b]`: the first frozen entry whose hash's top `dir_bits` bits are at least `b`;
    /// `2^dir_bits + 1` starts, the last `frozen.len()` (empty while nothing is frozen).
    dir: Vec<u32>,
    dir_bits: u32,
    /// The newest seq in `frozen` (0 while it is empty).
    frozen_through: u64,
    /// Hash → seq of the first id recorded with that hash since the last merge.
    first: U64Map<u64>,
    /// Hash → seqs of later ids with the same hash, in seq order (collisions: rare).
    more: U64Map<Vec<u64>>,
    /// Seq of a reversed event → the id of the reversal.
    reversed: U64Map<EventId>,
    /// Bits of the hash kept: 64, fewer only in tests, to make collisions common.
    bits: u32,
    /// Entries `first` and `more` hold together.
    recent: usize,
}

/// Equal when they hold the same entries and reversals, however they are split between
/// the frozen part and the table.
impl PartialEq for EventIndex {
    fn eq(&self, other: &Self) -> bool {
        self.bits == other.bits && self.reversed == other.reversed && self.entries() == other.entries()
    }
}

impl Eq for EventIndex {}

impl Default for EventIndex {
    fn default() -> Self {
        EventIndex::with_hash_bits(64)
    }
}

impl EventIndex {
    /// An index keeping `bits` (1..=64) bits of each id's hash: tests shrink it to force
    /// collisions. Such an index also merges its table into the frozen part from 8 entries
    /// on instead of [`FREEZE_MIN`], so that the tests' short logs exercise both parts.
    pub fn with_hash_bits(bits: u32) -> EventIndex {
        assert!((1..=64).contains(&bits), "hash bits out of range: {bits}");
        EventIndex {
            frozen: Vec::new(),
            dir: Vec::new(),
            dir_bits: 0,
            frozen_through: 0,
            first: U64Map::default(),
            more: U64Map::default(),
            reversed: U64Map::default(),
            bits,
            recent: 0,
        }
    }

    fn freeze_min(&self) -> usize {
        if self.bits == 64 {
            FREEZE_MIN
        } else {
            8
        }
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
        self.frozen.len() + self.recent
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room for `additional` more ids in the frozen part, so that folding a long log does
    /// not grow it merge by merge.
    pub fn reserve(&mut self, additional: usize) {
        self.frozen.reserve_exact(additional);
    }

    /// The directory bucket of `hash`: its top `dir_bits` bits (of the `bits` kept).
    fn bucket(&self, hash: u64) -> usize {
        if self.dir_bits == 0 {
            0
        } else {
            (hash >> (self.bits - self.dir_bits)) as usize
        }
    }

    /// Where the frozen entries of `hash` start (the first entry not below it): a binary
    /// search of its directory bucket.
    fn frozen_from(&self, hash: u64) -> usize {
        if self.dir.is_empty() {
            return 0;
        }
        let b = self.bucket(hash);
        let lo = self.dir[b] as usize;
        let hi = if b + 2 < self.dir.len() { self.dir[b + 1] as usize } else { self.frozen.len() };
        lo + self.frozen[lo..hi].partition_point(|(h, _)| *h < hash)
    }

    /// Builds the directory over `frozen`: about eight entries a bucket.
    fn rebuild_dir(&mut self) {
        let n = self.frozen.len();
        self.dir_bits = if n > u32::MAX as usize { 0 } else { (n / 8).max(1).ilog2().min(self.bits).min(DIR_BITS_MAX) };
        let buckets = 1usize << self.dir_bits;
        self.dir.clear();
        self.dir.reserve_exact(buckets + 1);
        let mut i = 0;
        for b in 0..buckets {
            while i < n && self.bucket(self.frozen[i].0) < b {
                i += 1;
            }
            self.dir.push(i as u32);
        }
        self.dir.push(n as u32);
    }

    /// The seqs recorded under `hash`, oldest first.
    fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        let frozen = self.frozen[self.frozen_from(hash)..].iter().take_while(move |(h, _)| *h == hash).map(|(_, s)| *s);
        let more = self.more.get(&hash).map(Vec::as_slice).unwrap_or(&[]);
        frozen.chain(self.first.get(&hash).copied()).chain(more.iter().copied())
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
        self.add_recent(hash, seq);
        let mut merged_after = None;
        if self.recent >= self.freeze_min().max(self.frozen.len() / 8) {
            merged_after = Some(self.frozen_through);
            self.freeze();
        }
        IndexUndo::Added { hash, merged_after }
    }

    /// Puts `(hash, seq)` in the table of recent entries.
    fn add_recent(&mut self, hash: u64, seq: u64) {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.more.entry(hash).or_default().push(seq),
        }
        self.recent += 1;
    }

    /// Merges the table into the frozen part (in place, from the back) and empties it.
    fn freeze(&mut self) {
        let mut recent: Vec<(u64, u64)> = self.first.drain().collect();
        recent.extend(self.more.drain().flat_map(|(h, seqs)| seqs.into_iter().map(move |s| (h, s))));
        recent.sort_unstable();
        self.recent = 0;
        self.frozen_through = self.frozen_through.max(recent.iter().map(|(_, s)| *s).max().unwrap_or(0));
        let old = self.frozen.len();
        self.frozen.reserve_exact(recent.len());
        self.frozen.resize(old + recent.len(), (0, 0));
        // Merge from the back into the room just made: `(hash, seq)` order, and a frozen
        // seq is older than any recent one, so equal hashes keep their seqs in order.
        let (mut i, mut j, mut out) = (old, recent.len(), self.frozen.len());
        while j > 0 {
            out -= 1;
            if i > 0 && self.frozen[i - 1] > recent[j - 1] {
                i -= 1;
                self.frozen[out] = self.frozen[i];
            } else {
                j -= 1;
                self.frozen[out] = recent[j];
            }
        }
        // The table's buckets go: it starts again small.
        self.first = U64Map::default();
        self.more = U64Map::default();
        self.rebuild_dir();
    }

    /// Takes a merge back: every frozen entry newer than `through` returns to the table, in
    /// seq order, as it was before the merge (the table was empty since that merge, which
    /// was the latest: later steps are undone first).
    fn unfreeze_after(&mut self, through: u64) {
        let mut back = Vec::new();
        self.frozen.retain(|entry| {
            let newer = entry.1 > through;
            if newer {
                back.push(*entry);
            }
            !newer
        });
        back.sort_unstable_by_key(|(_, seq)| *seq);
        for (hash, seq) in back {
            self.add_recent(hash, seq);
        }
        self.frozen_through = through;
        self.rebuild_dir();
    }

    /// Marks the event at `seq` reversed by `by`.
    pub(crate) fn set_reversed(&mut self, seq: u64, by: EventId) -> IndexUndo {
        IndexUndo::Reversal(seq, self.reversed.insert(seq, by))
    }

    pub(crate) fn undo(&mut self, step: IndexUndo) {
        match step {
            IndexUndo::Added { hash, merged_after } => {
                if let Some(through) = merged_after {
                    self.unfreeze_after(through);
                }
                // Undone newest first, so the entry is in the table: a merge after it was
                // undone (above) before it.
                if let Some(later) = self.more.get_mut(&hash) {
                    later.pop();
                    if later.is_empty() {
                        self.more.remove(&hash);
                    }
                    self.recent -= 1;
                } else if self.first.remove(&hash).is_some() {
                    self.recent -= 1;
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
        let mut all: Vec<(u64, u64)> = self.frozen.clone();
        all.extend(self.first.iter().map(|(h, s)| (*h, *s)));
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
        index.frozen = entries.into_iter().collect();
        index.frozen.sort_unstable();
        index.frozen.shrink_to_fit();
        index.frozen_through = index.frozen.iter().map(|(_, s)| *s).max().unwrap_or(0);
        index.rebuild_dir();
        index.reversed.extend(reversals);
        index
    }

    /// Bytes of table the index holds (capacity, not length: what it costs resident).
    pub fn table_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(u64, u64)>() + 1;
        self.frozen.capacity() * std::mem::size_of::<(u64, u64)>()
            + self.dir.capacity() * 4
            + self.first.capacity() * slot
            + self.more.values().map(|v| v.capacity() * 8 + 40).sum::<usize>()
            + self.reversed.capacity() * (std::mem::size_of::<(u64, EventId)>() + 1)
    }
}

/// Whether an event may be reversed: it moved stock and is not itself a reversal.
pub fn reversible(event: &super::event::Event) -> bool {
    !matches!(event, super::event::Event::Reversed { .. }) && !event.effect_refs().postings.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    #[test]
    fn frozen_and_recent_entries_answer_as_one_list_through_batches_rolled_back() {
        let seed = 0x1d3c_5eed;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for (bits, batches) in [(2, 2_000), (7, 2_000), (20, 4_000), (64, 70_000)] {
            let mut index = EventIndex::with_hash_bits(bits);
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            // The definition: every hash's seqs, oldest first.
            let mut model: HashMap<u64, Vec<u64>> = HashMap::new();
            let mut in_order: Vec<(u64, u64)> = Vec::new();
            let (mut seq, mut merges, mut undone_frozen) = (0, 0, 0);
            for batch in 0..batches {
                let n = rng.gen_range(1..=5);
                let mut undo = Vec::new();
                for _ in 0..n {
                    seq += 1;
                    let hash = rng.gen::<u64>() & mask;
                    let recent = index.recent;
                    undo.push(index.add(hash, seq));
                    merges += usize::from(index.recent < recent);
                    model.entry(hash).or_default().push(seq);
                    in_order.push((hash, seq));
                }
                if rng.gen_bool(0.25) {
                    // The batch is rolled back, newest first, as `State::rollback` does.
                    for step in undo.into_iter().rev() {
                        let frozen = index.frozen.len();
                        index.undo(step);
                        undone_frozen += usize::from(index.frozen.len() < frozen);
                        assert!(
                            index.frozen.len() == frozen || index.recent > 0,
                            "a merge taken back refills the table"
                        );
                        let (hash, _) = in_order.pop().expect("added");
                        model.get_mut(&hash).expect("added").pop();
                    }
                    seq -= n;
                }
                let what = format!("seed {seed:#x} bits {bits} batch {batch}");
                let known = in_order.get(rng.gen_range(0..in_order.len().max(1))).map_or(0, |(h, _)| *h);
                for hash in [known, rng.gen::<u64>() & mask, 0, mask] {
                    let expected = model.get(&hash).cloned().unwrap_or_default();
                    assert_eq!(index.candidates(hash).collect::<Vec<_>>(), expected, "{what} hash {hash:#x}");
                    let from = index.frozen.partition_point(|(h, _)| *h < hash);
                    assert_eq!(index.frozen_from(hash), from, "{what} hash {hash:#x}");
                }
            }
            assert_eq!(index.len(), in_order.len(), "bits {bits}");
            assert_eq!(index.entries(), in_order, "bits {bits}");
            assert!(merges >= 2, "bits {bits}: {merges} merges");
            if bits < 64 {
                assert!(undone_frozen > 0, "bits {bits}: no merge was taken back");
            }
            // Rebuilt from what a snapshot keeps, split otherwise: equal.
            let again = EventIndex::from_parts(bits, index.entries(), index.reversals());
            assert_eq!(again, index, "bits {bits}");
            assert!(again.recent == 0 && again.frozen.len() == in_order.len());
        }
    }
}
