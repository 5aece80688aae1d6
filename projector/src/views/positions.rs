//! Positions, and their history by business time: the as-of index.
//!
//! **Classes.** Positions are grouped into *classes*: every position of one party, at one
//! location, in one programme, of lots of one material, form, purity and origin. A class
//! holds everything a query filters or groups by except the lot itself, so a query that does
//! not name lots reads classes, not positions. A million events make hundreds of thousands
//! of positions (each lot splits over parties and places) but only thousands of classes,
//! which is what keeps an as-of query over five years in a millisecond or two.
//!
//! **History.** Each class keeps its postings in business-time order, with the running
//! balance of the class after each: the balance at the end of any instant is a binary
//! search. Each point also names its position, so a query by lot sums a class's points
//! per position instead. Points live in blocks of at most [`BLOCK_POINTS_MAX`]; a block knows
//! the class balance before it. A back-dated posting is inserted in time order into its
//! block, shifting the running balances after it within the block and the `before` of
//! the blocks after it: O(block + blocks) work however far back it is dated, never a shift of
//! the whole history. A full block is split after its record is applied (so undoing a
//! failed record never meets a split).
//!
//! Order among points of equal time is record order (a new point goes after its equals),
//! which is what replaying the same log reproduces.
//!
//! **Signs.** In record order a position never goes below zero (the ledger refuses it, and
//! the fold checks it again), but business time is what operators wrote: a move dated
//! before the acquisition it moves makes a balance between those dates negative. Balances
//! here are signed and reported as they are.

use super::fxhash::FxHashMap;
use super::registry::{Registry, TABLE_ENTRIES_MAX};
use stockpile_ledger::domain::{Form, HolderType, Location, PositionKey, Programme};

/// The `location` index of stock in transit; facilities are `1 + facility index`.
pub(crate) const IN_TRANSIT_LOCATION: u32 = 0;

/// `facility_country` of stock in transit: it is in no country.
pub(crate) const NO_COUNTRY: u32 = u32::MAX;

/// Points per block before it is split in two. A back-dated posting shifts at most a block
/// (8 KiB of points) plus one `i64` per later block; a query by lot reads whole blocks.
pub const BLOCK_POINTS_MAX: usize = 512;

/// What a class is, as interned registry indexes: everything a query filters and groups by
/// except the lot. Fixed when the class is first seen (registrations never change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClassKey {
    pub(crate) party: u32,
    pub(crate) location: u32,
    pub(crate) material: u32,
    pub(crate) purity_ppm: u32,
    pub(crate) origin: u32,
    pub(crate) form: Form,
    pub(crate) programme: Programme,
}

/// A class's key and what follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub(crate) key: ClassKey,
    pub(crate) partner: u32,
    pub(crate) facility_country: u32,
    pub(crate) holder_type: HolderType,
}

/// One posting: when, the class balance after it (within its block: relative to the
/// block's `before`), and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    /// `occurred_at` in nanoseconds since the Unix epoch.
    pub(crate) at: i64,
    pub(crate) run: i64,
    pub(crate) position: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    /// The class balance before this block's first point.
    pub(crate) before: i64,
    /// Never empty.
    pub(crate) points: Vec<Point>,
}

impl Block {
    /// The posting of point `i` (its run minus the run before it).
    pub(crate) fn delta(&self, i: usize) -> i64 {
        self.points[i].run - if i == 0 { 0 } else { self.points[i - 1].run }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    pub(crate) attrs: Attrs,
    /// Balance after every applied record.
    pub(crate) current: i64,
    /// Σ |posting| over every point. While it fits `i64`, so does every running sum — a
    /// bound checked in O(1) per posting instead of re-adding a history.
    volume: u64,
    pub(crate) blocks: Vec<Block>,
}

impl Class {
    /// The class balance from every posting with `at < cutoff` (nanoseconds).
    pub(crate) fn balance_before(&self, cutoff: i64) -> i64 {
        let b = self.blocks.partition_point(|b| b.points[0].at < cutoff);
        if b == 0 {
            return 0;
        }
        let block = &self.blocks[b - 1];
        let k = block.points.partition_point(|p| p.at < cutoff);
        // k >= 1: the block's first point is before the cutoff
        block.before + block.points[k - 1].run
    }

    /// Inserts a posting in time order, after points of equal time. Returns where, for
    /// [`Class::remove`]. The caller has checked that every running sum stays in `i64`.
    fn insert(&mut self, point_at: i64, delta: i64, position: u32) -> (usize, usize) {
        // Most postings are the newest of their class: append without searching.
        let blocks = self.blocks.len();
        if let Some(last) = self.blocks.last_mut() {
            let tail = last.points[last.points.len() - 1];
            if tail.at <= point_at {
                last.points.push(Point { at: point_at, run: tail.run + delta, position });
                let k = last.points.len() - 1;
                self.current += delta;
                self.volume += delta.unsigned_abs();
                return (blocks - 1, k);
            }
        }
        let b = self.blocks.partition_point(|b| b.points[0].at <= point_at).saturating_sub(1);
        if self.blocks.is_empty() {
            self.blocks.push(Block { before: 0, points: Vec::new() });
        }
        let block = &mut self.blocks[b];
        let k = block.points.partition_point(|p| p.at <= point_at);
        let run = if k == 0 { 0 } else { block.points[k - 1].run } + delta;
        for p in &mut block.points[k..] {
            p.run += delta;
        }
        block.points.insert(k, Point { at: point_at, run, position });
        for later in &mut self.blocks[b + 1..] {
            later.before += delta;
        }
        self.current += delta;
        self.volume += delta.unsigned_abs();
        (b, k)
    }

    /// Undoes the [`Class::insert`] that put `delta` at block `b`, index `k`.
    fn remove(&mut self, (b, k): (usize, usize), delta: i64) {
        let block = &mut self.blocks[b];
        block.points.remove(k);
        for p in &mut block.points[k..] {
            p.run -= delta;
        }
        if block.points.is_empty() {
            self.blocks.remove(b);
        } else {
            for later in &mut self.blocks[b + 1..] {
                later.before -= delta;
            }
        }
        self.current -= delta;
        self.volume -= delta.unsigned_abs();
    }

    /// Splits blocks that grew past [`BLOCK_POINTS_MAX`].
    fn split_full_blocks(&mut self) {
        let mut b = 0;
        while b < self.blocks.len() {
            if self.blocks[b].points.len() > BLOCK_POINTS_MAX {
                let block = &mut self.blocks[b];
                let mid = block.points.len() / 2;
                let mut tail = block.points.split_off(mid);
                let base = block.points[mid - 1].run;
                for p in &mut tail {
                    p.run -= base;
                }
                let before = block.before + base;
                self.blocks.insert(b + 1, Block { before, points: tail });
            } else {
                b += 1;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PositionRow {
    pub(crate) class: u32,
    pub(crate) lot: u32,
    /// Balance after every applied record (record order): never negative.
    pub(crate) current: i64,
}

/// Why a posting cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostError {
    UnknownPosition,
    /// The position would go below zero in record order.
    Negative {
        current: i64,
    },
    /// A running balance would leave `i64`.
    Overflow,
}

/// Why a position cannot be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NewPositionError {
    Exists,
    Unknown { what: &'static str, id: String },
    Full,
}

/// Where an applied posting went, to undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Posted {
    position: u32,
    at: (usize, usize),
    delta: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Positions {
    pub(crate) rows: Vec<PositionRow>,
    pub(crate) classes: Vec<Class>,
    /// (class, lot) → position.
    index: FxHashMap<(u32, u32), u32>,
    classes_index: FxHashMap<ClassKey, u32>,
    /// Classes that got a point since the last [`Positions::settle`].
    touched: Vec<u32>,
}

impl Positions {
    /// The class key and lot of a position named in the ledger's terms.
    fn resolve(registry: &Registry, key: &PositionKey) -> Result<(ClassKey, u32), NewPositionError> {
        let unknown = |what: &'static str, id: &str| NewPositionError::Unknown { what, id: id.to_string() };
        let party = registry.parties.get(&key.party).ok_or_else(|| unknown("party", key.party.as_str()))?;
        let lot = registry.lots.get(&key.lot).ok_or_else(|| unknown("lot", key.lot.as_str()))?;
        let location = match &key.location {
            Location::InTransit => IN_TRANSIT_LOCATION,
            Location::Facility(f) => 1 + registry.facilities.get(f).ok_or_else(|| unknown("facility", f.as_str()))?,
        };
        let l = registry.lots.value(lot);
        let class = ClassKey {
            party,
            location,
            material: l.material,
            purity_ppm: l.purity_ppm,
            origin: l.origin,
            form: l.form,
            programme: key.programme,
        };
        Ok((class, lot))
    }

    /// The index of an existing position; `None` when it is new (or names something
    /// unknown: creating it then says what).
    pub(crate) fn find(&self, registry: &Registry, key: &PositionKey) -> Option<u32> {
        let (class, lot) = Positions::resolve(registry, key).ok()?;
        let class = *self.classes_index.get(&class)?;
        self.index.get(&(class, lot)).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Creates a position (and its class, if new). Returns whether a class was created, for
    /// [`Positions::pop`].
    pub(crate) fn create(&mut self, registry: &Registry, key: &PositionKey) -> Result<bool, NewPositionError> {
        let (class_key, lot) = Positions::resolve(registry, key)?;
        if self.rows.len() >= TABLE_ENTRIES_MAX || self.classes.len() >= TABLE_ENTRIES_MAX {
            return Err(NewPositionError::Full);
        }
        let (class, new_class) = match self.classes_index.get(&class_key) {
            Some(c) => (*c, false),
            None => {
                let party = registry.parties.value(class_key.party);
                let facility_country = match class_key.location {
                    IN_TRANSIT_LOCATION => NO_COUNTRY,
                    l => registry.facilities.value(l - 1).country,
                };
                let attrs = Attrs {
                    key: class_key,
                    partner: party.partner,
                    facility_country,
                    holder_type: party.party.holder_type,
                };
                let c = self.classes.len() as u32;
                self.classes.push(Class { attrs, current: 0, volume: 0, blocks: Vec::new() });
                self.classes_index.insert(class_key, c);
                (c, true)
            }
        };
        if self.index.contains_key(&(class, lot)) {
            return Err(NewPositionError::Exists);
        }
        self.index.insert((class, lot), self.rows.len() as u32);
        self.rows.push(PositionRow { class, lot, current: 0 });
        Ok(new_class)
    }

    /// Removes the newest position (and its class, if it created one): the undo of `create`.
    pub(crate) fn pop(&mut self, new_class: bool) {
        if let Some(row) = self.rows.pop() {
            self.index.remove(&(row.class, row.lot));
            if new_class {
                if let Some(class) = self.classes.pop() {
                    self.classes_index.remove(&class.attrs.key);
                }
            }
        }
    }

    /// Posts `delta` to a position at business time `at`. All checks run before anything
    /// changes.
    pub(crate) fn post(&mut self, position: u32, at: i64, delta: i64) -> Result<Posted, PostError> {
        let row = self.rows.get(position as usize).ok_or(PostError::UnknownPosition)?;
        let current = row.current.checked_add(delta).ok_or(PostError::Overflow)?;
        if current < 0 {
            return Err(PostError::Negative { current: row.current });
        }
        let class = &self.classes[row.class as usize];
        let volume = class.volume.checked_add(delta.unsigned_abs()).ok_or(PostError::Overflow)?;
        if volume > i64::MAX as u64 {
            return Err(PostError::Overflow);
        }
        let class_idx = row.class;
        self.rows[position as usize].current = current;
        let at = self.classes[class_idx as usize].insert(at, delta, position);
        self.touched.push(class_idx);
        Ok(Posted { position, at, delta })
    }

    /// Undoes a [`Positions::post`].
    pub(crate) fn unpost(&mut self, p: Posted) {
        let row = &mut self.rows[p.position as usize];
        row.current -= p.delta;
        self.classes[row.class as usize].remove(p.at, p.delta);
    }

    /// Finishes a record: splits the blocks it filled.
    pub(crate) fn settle(&mut self) {
        for c in std::mem::take(&mut self.touched) {
            self.classes[c as usize].split_full_blocks();
        }
    }

    /// Forgets the classes touched by a record that was rolled back.
    pub(crate) fn forget_touched(&mut self) {
        self.touched.clear();
    }

    /// The position's key in the ledger's terms.
    pub(crate) fn position_key(&self, registry: &Registry, idx: u32) -> PositionKey {
        let row = &self.rows[idx as usize];
        let class = &self.classes[row.class as usize].attrs.key;
        PositionKey {
            party: registry.parties.key(class.party).clone(),
            lot: registry.lots.key(row.lot).clone(),
            location: location(registry, class.location),
            programme: class.programme,
        }
    }
}

pub(crate) fn location(registry: &Registry, location: u32) -> Location {
    match location {
        IN_TRANSIT_LOCATION => Location::InTransit,
        l => Location::Facility(registry.facilities.key(l - 1).clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class() -> Class {
        let key = ClassKey {
            party: 0,
            location: 0,
            material: 0,
            purity_ppm: 1_000_000,
            origin: 0,
            form: Form::Metal,
            programme: Programme::National,
        };
        let attrs = Attrs { key, partner: 0, facility_country: NO_COUNTRY, holder_type: HolderType::Private };
        Class { attrs, current: 0, volume: 0, blocks: Vec::new() }
    }

    fn points(c: &Class) -> Vec<(i64, i64, i64)> {
        c.blocks
            .iter()
            .flat_map(|b| (0..b.points.len()).map(move |i| (b.points[i].at, b.before + b.points[i].run, b.delta(i))))
            .collect()
    }

    #[test]
    fn back_dated_postings_shift_the_running_balances_after_them() {
        let mut c = class();
        c.insert(10, 100, 0);
        c.insert(30, -40, 0);
        assert_eq!(c.balance_before(31), 60);
        c.insert(5, 7, 1); // dated before both: every later balance moves
        c.insert(10, 1, 1); // equal time as an existing point: after it
        assert_eq!(points(&c), vec![(5, 7, 7), (10, 107, 100), (10, 108, 1), (30, 68, -40)]);
        let cases = [(i64::MIN, 0), (5, 0), (6, 7), (10, 7), (11, 108), (30, 108), (31, 68), (i64::MAX, 68)];
        for (cutoff, want) in cases {
            assert_eq!(c.balance_before(cutoff), want, "before {cutoff}");
        }
        assert_eq!(c.current, 68);
    }

    #[test]
    fn blocks_split_and_back_dated_inserts_stay_exact() {
        let mut c = class();
        let mut model: Vec<(i64, i64)> = Vec::new();
        // a deterministic scatter of times, many back-dated, some equal
        for i in 0..5_000i64 {
            let at = (i * 7_919) % 1_000;
            let delta = (i % 13) - 4;
            c.insert(at, delta, 0);
            c.split_full_blocks();
            model.push((at, delta));
        }
        assert!(c.blocks.len() > 10 && c.blocks.iter().all(|b| b.points.len() <= BLOCK_POINTS_MAX));
        for cutoff in [-1, 0, 1, 17, 500, 999, 1_000, 5_000] {
            let want: i64 = model.iter().filter(|(at, _)| *at < cutoff).map(|(_, d)| d).sum();
            assert_eq!(c.balance_before(cutoff), want, "before {cutoff}");
        }
        assert_eq!(c.current, model.iter().map(|(_, d)| d).sum::<i64>());
    }

    #[test]
    fn remove_restores_the_class_exactly() {
        let mut c = class();
        c.insert(10, 100, 0);
        c.insert(30, -40, 0);
        let before = c.clone();
        for at in [1, 10, 20, 30, 40] {
            let where_ = c.insert(at, 5, 1);
            c.remove(where_, 5);
            assert_eq!(c, before, "insert at {at} undone");
        }
        let mut empty = class();
        let where_ = empty.insert(3, 9, 0);
        empty.remove(where_, 9);
        assert_eq!(empty, class());
    }
}
