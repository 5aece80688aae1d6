//! A position's balance over business time, so `decide` can refuse a back-dated debit that
//! would leave the position below zero on any date from its `occurred_at` on.
//!
//! A [`Timeline`] holds one net change per business instant (nanoseconds since the epoch,
//! `occurred_at`); the balance at instant `t` is the sum of the changes at or before `t`.
//! Changes at one instant are netted: the log orders them by seq, but an as-of balance sees
//! only whole instants, so an intermediate sum inside one instant is no balance anyone reads.
//!
//! Every position ever posted to keeps its timeline, so timelines are most of the ledger's
//! resident state, and most positions see only a few instants (2.6 on average in the bench's
//! generated history). A timeline therefore has two forms:
//!
//! - **few** (up to [`FEW_MAX`] instants): the non-zero net changes in instant order, one
//!   16-byte pair each, the first held inline (no allocation for a position posted to once);
//!   every query is a scan of at most [`FEW_MAX`] pairs.
//! - **tree** (once a position has seen more): a treap (a binary search tree by instant,
//!   heap-ordered by a hash of the instant) in one arena, each node carrying its subtree's sum
//!   and the minimum of its in-order prefix sums. "The lowest balance from `t` on" and "the
//!   first instant from `t` on where the balance is below `x`" are then one walk down the
//!   tree: O(log n) expected, not a scan of the position's history. The tree's shape depends
//!   only on the set of instants, not on the order they arrived in. A timeline that became a
//!   tree stays one.
//!
//! Both forms answer every query alike for every `grams` a debit can ask about (`grams ≥ 1`):
//! an instant whose changes net to zero (the few form drops it, the tree keeps a node of zero)
//! has the balance of the instant before it, so it is never the first instant below, never
//! the last, and never lowers a minimum.

use std::cmp::Ordering;
use std::sync::OnceLock;

/// The most instants a timeline holds in its few form; one more makes it a tree. Scans of
/// this many pairs cost less than a walk down a treap of them.
pub const FEW_MAX: usize = 8;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    at_ns: i64,
    delta: i64,
    /// Sum of `delta` over the subtree.
    sum: i64,
    /// Lowest in-order prefix sum within the subtree (over non-empty prefixes).
    min_prefix: i64,
    left: u32,
    right: u32,
    priority: u64,
}

/// The treap of a timeline past [`FEW_MAX`] instants (`root` is `NIL` while it is empty).
#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
    root: u32,
}

/// The few form is `One` or `Few`: the non-zero net changes `(instant, grams)` in instant
/// order, at most [`FEW_MAX`]; a single change is held inline (`Few` then holds none or two
/// and more), so a position posted to once allocates nothing. 24 bytes, whatever the form.
#[derive(Debug, Clone)]
enum Form {
    One((i64, i64)),
    Few(Vec<(i64, i64)>),
    Tree(Box<Tree>),
}

impl Default for Form {
    fn default() -> Self {
        Form::Few(Vec::new())
    }
}

impl Form {
    /// The few form's changes, `None` for a tree.
    fn pairs(&self) -> Option<&[(i64, i64)]> {
        match self {
            Form::One(pair) => Some(std::slice::from_ref(pair)),
            Form::Few(pairs) => Some(pairs),
            Form::Tree(_) => None,
        }
    }
}

/// One position's net changes by business instant. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    form: Form,
    /// Sum of |delta| over every change ever added: while it fits in an `i64`, so does every
    /// partial sum the tree keeps, whatever the order of the changes.
    turnover: u64,
}

/// Where a debit would take a position below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// The first business instant, at or after the debit's own, whose balance is below the debit.
    pub at_ns: i64,
    /// The balance at that instant before the debit, in grams (never negative under the rule
    /// that decides against timelines; an older log may hold one that is).
    pub balance_g: i64,
}

/// A change would carry the position's turnover past what the timeline can sum exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the position's total movements exceed {} g", i64::MAX)]
pub struct TurnoverOverflow;

/// The instant's place in the heap order: a hash seeded once per process, so no sequence of
/// business times chosen by an operator can be known to degrade the tree.
fn priority(at_ns: i64) -> u64 {
    static SEED: OnceLock<ahash::RandomState> = OnceLock::new();
    SEED.get_or_init(ahash::RandomState::new).hash_one(at_ns)
}

/// The non-zero net changes of either form, in instant order.
enum Entries<'a> {
    Few(std::slice::Iter<'a, (i64, i64)>),
    Tree { tree: &'a Tree, stack: Vec<u32>, cursor: Option<u32> },
}

impl Iterator for Entries<'_> {
    type Item = (i64, i64);

    fn next(&mut self) -> Option<(i64, i64)> {
        match self {
            Entries::Few(pairs) => pairs.next().copied(),
            Entries::Tree { tree, stack, cursor } => loop {
                while let Some(n) = *cursor {
                    stack.push(n);
                    *cursor = tree.link(tree.node(n).left);
                }
                let n = stack.pop()?;
                *cursor = tree.link(tree.node(n).right);
                let node = tree.node(n);
                if node.delta != 0 {
                    return Some((node.at_ns, node.delta));
                }
            },
        }
    }
}

impl Timeline {
    /// Whether no instant holds a non-zero net change (none was added, or they all netted
    /// to zero).
    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }

    /// Whether the timeline is in its few form (tests and the resident-memory example).
    pub fn is_few(&self) -> bool {
        !matches!(self.form, Form::Tree(_))
    }

    /// The balance after every change: the position now.
    pub fn total(&self) -> i64 {
        match (&self.form, self.form.pairs()) {
            (Form::Tree(tree), _) => tree.sum(tree.root),
            (_, pairs) => pairs.unwrap_or_default().iter().map(|(_, d)| d).sum(),
        }
    }

    /// The non-zero net changes in business-time order: `(instant, grams)`.
    pub fn entries(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        match (&self.form, self.form.pairs()) {
            (Form::Tree(tree), _) => Entries::Tree { tree, stack: Vec::new(), cursor: tree.link(tree.root) },
            (_, pairs) => Entries::Few(pairs.unwrap_or_default().iter()),
        }
    }

    /// Sum of |change| over every change ever added, in grams: [`Timeline::add`] refuses a
    /// change that would carry it past `i64::MAX`.
    pub fn turnover(&self) -> u64 {
        self.turnover
    }

    fn turnover_after(&self, delta: i64) -> Result<u64, TurnoverOverflow> {
        self.turnover.checked_add(delta.unsigned_abs()).filter(|t| *t <= i64::MAX as u64).ok_or(TurnoverOverflow)
    }

    /// A timeline with these net changes and `turnover` (as a snapshot keeps them).
    pub fn from_parts(turnover: u64, entries: &[(i64, i64)]) -> Result<Timeline, TurnoverOverflow> {
        let mut timeline = Timeline::default();
        for (at_ns, delta) in entries {
            timeline.add(*at_ns, *delta)?;
        }
        if turnover < timeline.turnover || turnover > i64::MAX as u64 {
            return Err(TurnoverOverflow);
        }
        timeline.turnover = turnover;
        Ok(timeline)
    }

    /// Adds `delta` grams at business instant `at_ns`.
    pub fn add(&mut self, at_ns: i64, delta: i64) -> Result<(), TurnoverOverflow> {
        self.turnover = self.turnover_after(delta)?;
        self.net(at_ns, delta);
        Ok(())
    }

    /// Takes back a change [`Timeline::add`] made (a batch rolled back). In the tree the
    /// instant's node stays, with its net change restored; a node of zero is no change.
    pub fn undo(&mut self, at_ns: i64, delta: i64) {
        self.net(at_ns, -delta);
        self.turnover = self.turnover.saturating_sub(delta.unsigned_abs());
    }

    /// Nets `delta` into the change at `at_ns`; the few form drops a change that nets to zero
    /// and becomes a tree when it would hold more than [`FEW_MAX`] instants.
    fn net(&mut self, at_ns: i64, delta: i64) {
        let mut pairs = match std::mem::take(&mut self.form) {
            Form::Tree(mut tree) => {
                tree.root = tree.insert(tree.root, at_ns, delta);
                self.form = Form::Tree(tree);
                return;
            }
            Form::One(pair) => {
                // Room for the second change, the likely reason to be here.
                let mut pairs = Vec::with_capacity(2);
                pairs.push(pair);
                pairs
            }
            Form::Few(pairs) if pairs.is_empty() => {
                if delta != 0 {
                    self.form = Form::One((at_ns, delta));
                }
                return;
            }
            Form::Few(pairs) => pairs,
        };
        match pairs.binary_search_by_key(&at_ns, |(at, _)| *at) {
            Ok(i) => {
                pairs[i].1 += delta;
                if pairs[i].1 == 0 {
                    pairs.remove(i);
                }
            }
            Err(_) if delta == 0 => {}
            Err(i) if pairs.len() < FEW_MAX => {
                // Grow one pair at a time: `insert` would double, and this is resident.
                if pairs.len() == pairs.capacity() {
                    pairs.reserve_exact(1);
                }
                pairs.insert(i, (at_ns, delta));
            }
            Err(_) => {
                let mut tree = Tree { nodes: Vec::with_capacity(FEW_MAX * 2), root: NIL };
                for (at, d) in pairs.into_iter().chain([(at_ns, delta)]) {
                    tree.root = tree.insert(tree.root, at, d);
                }
                self.form = Form::Tree(Box::new(tree));
                return;
            }
        }
        self.form = match pairs[..] {
            [pair] => Form::One(pair),
            [] => Form::Few(Vec::new()),
            _ => Form::Few(pairs),
        };
    }

    /// The balance at instant `at_ns`: the sum of the changes at or before it.
    pub fn balance_at(&self, at_ns: i64) -> i64 {
        match (&self.form, self.form.pairs()) {
            (Form::Tree(tree), _) => tree.balance_at(at_ns),
            (_, pairs) => pairs.unwrap_or_default().iter().take_while(|(at, _)| *at <= at_ns).map(|(_, d)| d).sum(),
        }
    }

    /// The lowest balance at any instant from `at_ns` on (the balance at `at_ns` itself
    /// included).
    pub fn min_from(&self, at_ns: i64) -> i64 {
        match (&self.form, self.form.pairs()) {
            (Form::Tree(tree), _) => tree.min_from(at_ns),
            (_, pairs) => {
                let mut balance = 0;
                let mut lowest = i64::MAX;
                for (at, d) in pairs.unwrap_or_default() {
                    if *at > at_ns {
                        lowest = lowest.min(balance);
                    }
                    balance += d;
                    if *at > at_ns {
                        lowest = lowest.min(balance);
                    }
                }
                lowest.min(balance)
            }
        }
    }

    /// The first instant from `at_ns` on at which the balance is below `grams`, if any: where
    /// a debit of `grams` at `at_ns` would take the position below zero.
    pub fn first_below(&self, at_ns: i64, grams: i64) -> Option<Shortfall> {
        match (&self.form, self.form.pairs()) {
            (Form::Tree(tree), _) => tree.first_below(at_ns, grams),
            (_, pairs) => {
                let at_itself = self.balance_at(at_ns);
                if at_itself < grams {
                    return Some(Shortfall { at_ns, balance_g: at_itself });
                }
                let mut balance = at_itself;
                pairs.unwrap_or_default().iter().skip_while(|(at, _)| *at <= at_ns).find_map(|(at, d)| {
                    balance += d;
                    (balance < grams).then_some(Shortfall { at_ns: *at, balance_g: balance })
                })
            }
        }
    }

    /// The earliest instant from which the balance is at least `grams` at every instant on,
    /// if there is one: the first instant with a change after the last instant whose balance
    /// is below `grams` (the first change of all when none is). `None` when the balance is
    /// below `grams` after the last change, so no date works. Asked with `grams ≥ 1` (a
    /// debit), both forms give the same answer (see the module documentation).
    pub fn holds_from(&self, grams: i64) -> Option<i64> {
        match (&self.form, self.form.pairs()) {
            (Form::Tree(tree), _) => tree.holds_from(grams),
            (_, pairs) => {
                let pairs = pairs.unwrap_or_default();
                let mut balance = 0;
                let mut last_below = None;
                for (i, (_, d)) in pairs.iter().enumerate() {
                    balance += d;
                    if balance < grams {
                        last_below = Some(i);
                    }
                }
                match last_below {
                    Some(i) => pairs.get(i + 1).map(|(at, _)| *at),
                    None => pairs.first().map(|(at, _)| *at),
                }
            }
        }
    }
}

impl Tree {
    fn balance_at(&self, at_ns: i64) -> i64 {
        let mut sum = 0;
        let mut cursor = self.link(self.root);
        while let Some(n) = cursor {
            let node = self.node(n);
            if node.at_ns <= at_ns {
                sum += self.sum(node.left) + node.delta;
                cursor = self.link(node.right);
            } else {
                cursor = self.link(node.left);
            }
        }
        sum
    }

    fn min_from(&self, at_ns: i64) -> i64 {
        // Walk the path of `at_ns`: everything right of the path is after it, and each such
        // subtree contributes its own lowest prefix, offset by what lies before it.
        let mut before = 0i64; // sum of every change left of the current subtree
        let mut lowest = i64::MAX;
        let mut cursor = self.link(self.root);
        while let Some(n) = cursor {
            let node = self.node(n);
            let through = before + self.sum(node.left) + node.delta;
            if node.at_ns <= at_ns {
                before = through;
                cursor = self.link(node.right);
            } else {
                lowest = lowest.min(through);
                if let Some(r) = self.link(node.right) {
                    lowest = lowest.min(through + self.node(r).min_prefix);
                }
                cursor = self.link(node.left);
            }
        }
        // `before` is now the balance at `at_ns`.
        lowest.min(before)
    }

    fn first_below(&self, at_ns: i64, grams: i64) -> Option<Shortfall> {
        let at_itself = self.balance_at(at_ns);
        if at_itself < grams {
            return Some(Shortfall { at_ns, balance_g: at_itself });
        }
        if self.min_from(at_ns) >= grams {
            return None;
        }
        self.first_after(self.link(self.root), at_ns, 0, grams)
    }

    fn holds_from(&self, grams: i64) -> Option<i64> {
        match self.last_below(self.link(self.root), 0, grams) {
            Some(at_ns) => self.next_after(at_ns),
            None => self.first_instant(),
        }
    }

    /// The last instant in subtree `n` whose balance (with `before` left of it) is below `grams`.
    fn last_below(&self, n: Option<u32>, before: i64, grams: i64) -> Option<i64> {
        let node = self.node(n?);
        if before + node.min_prefix >= grams {
            return None;
        }
        let through = before + self.sum(node.left) + node.delta;
        if let Some(found) = self.last_below(self.link(node.right), through, grams) {
            return Some(found);
        }
        if through < grams {
            return Some(node.at_ns);
        }
        self.last_below(self.link(node.left), before, grams)
    }

    /// The first instant with a change after `at_ns`.
    fn next_after(&self, at_ns: i64) -> Option<i64> {
        let mut found = None;
        let mut cursor = self.link(self.root);
        while let Some(n) = cursor {
            let node = self.node(n);
            if node.at_ns > at_ns {
                found = Some(node.at_ns);
                cursor = self.link(node.left);
            } else {
                cursor = self.link(node.right);
            }
        }
        found
    }

    fn first_instant(&self) -> Option<i64> {
        let mut cursor = self.link(self.root)?;
        while let Some(l) = self.link(self.node(cursor).left) {
            cursor = l;
        }
        Some(self.node(cursor).at_ns)
    }

    /// The first node after `at_ns` in subtree `n` whose prefix sum (with `before`, the sum of
    /// everything left of the subtree) is below `grams`.
    fn first_after(&self, n: Option<u32>, at_ns: i64, before: i64, grams: i64) -> Option<Shortfall> {
        let node = self.node(n?);
        let through = before + self.sum(node.left) + node.delta;
        if node.at_ns <= at_ns {
            return self.first_after(self.link(node.right), at_ns, through, grams);
        }
        if let Some(found) = self.first_after(self.link(node.left), at_ns, before, grams) {
            return Some(found);
        }
        if through < grams {
            return Some(Shortfall { at_ns: node.at_ns, balance_g: through });
        }
        self.first_in(self.link(node.right), through, grams)
    }

    /// The first node in subtree `n` (all of it after the instant asked about) whose prefix
    /// sum is below `grams`, found by the subtrees' lowest prefixes without a scan.
    fn first_in(&self, n: Option<u32>, before: i64, grams: i64) -> Option<Shortfall> {
        let node = self.node(n?);
        if before + node.min_prefix >= grams {
            return None;
        }
        if let Some(found) = self.first_in(self.link(node.left), before, grams) {
            return Some(found);
        }
        let through = before + self.sum(node.left) + node.delta;
        if through < grams {
            return Some(Shortfall { at_ns: node.at_ns, balance_g: through });
        }
        self.first_in(self.link(node.right), through, grams)
    }

    fn node(&self, n: u32) -> &Node {
        &self.nodes[n as usize]
    }

    fn link(&self, n: u32) -> Option<u32> {
        (n != NIL).then_some(n)
    }

    fn sum(&self, n: u32) -> i64 {
        self.link(n).map_or(0, |n| self.node(n).sum)
    }

    /// Recomputes `n`'s sum and lowest prefix from its children.
    fn pull(&mut self, n: u32) {
        let (left, right, delta) = {
            let node = self.node(n);
            (node.left, node.right, node.delta)
        };
        let left_sum = self.sum(left);
        let mut min_prefix = left_sum + delta;
        if let Some(l) = self.link(left) {
            min_prefix = min_prefix.min(self.node(l).min_prefix);
        }
        let mut sum = left_sum + delta;
        if let Some(r) = self.link(right) {
            let right = self.node(r);
            min_prefix = min_prefix.min(sum + right.min_prefix);
            sum += right.sum;
        }
        let node = &mut self.nodes[n as usize];
        node.sum = sum;
        node.min_prefix = min_prefix;
    }

    /// Adds `delta` at `at_ns` in subtree `n`; returns the subtree's new root.
    fn insert(&mut self, n: u32, at_ns: i64, delta: i64) -> u32 {
        if n == NIL {
            let index = u32::try_from(self.nodes.len()).expect("fewer than 2^32 instants in one position");
            self.nodes.push(Node {
                at_ns,
                delta,
                sum: delta,
                min_prefix: delta,
                left: NIL,
                right: NIL,
                priority: priority(at_ns),
            });
            return index;
        }
        match at_ns.cmp(&self.node(n).at_ns) {
            Ordering::Equal => self.nodes[n as usize].delta += delta,
            Ordering::Less => {
                let child = self.insert(self.node(n).left, at_ns, delta);
                self.nodes[n as usize].left = child;
                if self.node(child).priority > self.node(n).priority {
                    return self.rotate_right(n);
                }
            }
            Ordering::Greater => {
                let child = self.insert(self.node(n).right, at_ns, delta);
                self.nodes[n as usize].right = child;
                if self.node(child).priority > self.node(n).priority {
                    return self.rotate_left(n);
                }
            }
        }
        self.pull(n);
        n
    }

    fn rotate_right(&mut self, n: u32) -> u32 {
        let l = self.node(n).left;
        self.nodes[n as usize].left = self.node(l).right;
        self.nodes[l as usize].right = n;
        self.pull(n);
        self.pull(l);
        l
    }

    fn rotate_left(&mut self, n: u32) -> u32 {
        let r = self.node(n).right;
        self.nodes[n as usize].right = self.node(r).left;
        self.nodes[r as usize].left = n;
        self.pull(n);
        self.pull(r);
        r
    }
}

/// Two timelines are equal when they hold the same net changes and turnover, whatever their
/// form or tree's shape.
impl PartialEq for Timeline {
    fn eq(&self, other: &Self) -> bool {
        self.turnover == other.turnover && self.entries().eq(other.entries())
    }
}

impl Eq for Timeline {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The definition, by a scan: the balance at `t` is the sum of the changes at or before it.
    struct Model(Vec<(i64, i64)>);

    impl Model {
        fn balance_at(&self, t: i64) -> i64 {
            self.0.iter().filter(|(at, _)| *at <= t).map(|(_, d)| d).sum()
        }
        fn instants_from(&self, t: i64) -> Vec<i64> {
            let mut ts: Vec<i64> = self.0.iter().map(|(at, _)| *at).filter(|at| *at > t).collect();
            ts.push(t);
            ts.sort_unstable();
            ts.dedup();
            ts
        }
        fn min_from(&self, t: i64) -> i64 {
            self.instants_from(t).into_iter().map(|at| self.balance_at(at)).min().unwrap_or(0)
        }
        fn holds_from(&self, grams: i64) -> Option<i64> {
            let mut ts: Vec<i64> = self.0.iter().map(|(at, _)| *at).collect();
            ts.sort_unstable();
            ts.dedup();
            ts.into_iter().find(|t| self.instants_from(*t).into_iter().all(|at| self.balance_at(at) >= grams))
        }
        fn first_below(&self, t: i64, grams: i64) -> Option<Shortfall> {
            self.instants_from(t)
                .into_iter()
                .map(|at| Shortfall { at_ns: at, balance_g: self.balance_at(at) })
                .find(|s| s.balance_g < grams)
        }
    }

    /// A timeline in the tree form from its first change, to hold the few form to it.
    fn tree() -> Timeline {
        Timeline { form: Form::Tree(Box::new(Tree { nodes: Vec::new(), root: NIL })), turnover: 0 }
    }

    #[test]
    fn queries_agree_with_a_scan_over_random_histories() {
        let seed = 0x5eed_7153;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut became_tree = 0;
        for round in 0..300 {
            // Both forms, changed alike (the first becomes a tree only past FEW_MAX instants).
            let mut timeline = Timeline::default();
            let mut as_tree = tree();
            let mut model = Model(Vec::new());
            let span = rng.gen_range(1..60);
            for _ in 0..rng.gen_range(0..80) {
                let at = rng.gen_range(0..span);
                let delta = rng.gen_range(-50..100);
                timeline.add(at, delta).expect("small");
                as_tree.add(at, delta).expect("small");
                model.0.push((at, delta));
                if rng.gen_bool(0.1) {
                    // A change taken back, as a rolled-back batch does.
                    timeline.undo(at, delta);
                    as_tree.undo(at, delta);
                    model.0.pop();
                }
                for _ in 0..3 {
                    let t = rng.gen_range(-1..span + 1);
                    let g = rng.gen_range(0..200);
                    let what = format!("seed {seed:#x} round {round} t {t} g {g}");
                    for (form, tl) in [("default", &timeline), ("tree", &as_tree)] {
                        assert_eq!(tl.balance_at(t), model.balance_at(t), "{form} {what}");
                        assert_eq!(tl.min_from(t), model.min_from(t), "{form} {what}");
                        assert_eq!(tl.first_below(t, g), model.first_below(t, g), "{form} {what}");
                        // A debit asks with at least one gram (see the module documentation).
                        let g = g.max(1);
                        assert_eq!(tl.holds_from(g), model.holds_from(g), "{form} {what}");
                    }
                }
            }
            let mut netted: std::collections::BTreeMap<i64, i64> = Default::default();
            for (at, d) in &model.0 {
                *netted.entry(*at).or_default() += d;
            }
            let expected: Vec<(i64, i64)> = netted.into_iter().filter(|(_, d)| *d != 0).collect();
            assert_eq!(timeline.entries().collect::<Vec<_>>(), expected, "round {round}");
            assert_eq!(timeline, as_tree, "round {round}");
            assert_eq!(timeline.total(), model.0.iter().map(|(_, d)| d).sum::<i64>());
            assert_eq!(timeline.turnover(), as_tree.turnover());
            became_tree += usize::from(!timeline.is_few());
            if timeline.is_few() {
                assert!(expected.len() <= FEW_MAX, "round {round}");
            }
        }
        assert!((30..290).contains(&became_tree), "both forms are exercised: {became_tree} trees of 300");
    }

    #[test]
    fn the_few_form_keeps_only_non_zero_changes_and_grows_one_at_a_time() {
        let mut t = Timeline::default();
        t.add(5, 10).unwrap();
        // One change is held inline.
        assert!(matches!(t.form, Form::One((5, 10))));
        t.add(5, -10).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.turnover(), 20);
        assert_eq!(t.first_below(0, 1), Some(Shortfall { at_ns: 0, balance_g: 0 }));
        assert_eq!(t.holds_from(1), None);
        for i in 0..FEW_MAX as i64 {
            t.add(i * 10, 1).unwrap();
            match &t.form {
                Form::One(_) => assert_eq!(i, 0),
                Form::Few(pairs) => {
                    assert_eq!(pairs.len(), (i + 1) as usize);
                    assert_eq!(pairs.capacity(), pairs.len(), "grows one pair at a time");
                }
                Form::Tree(_) => panic!("a tree at {} instants", i + 1),
            }
        }
        assert!(t.is_few());
        // A change at an instant already there nets; a new instant past FEW_MAX makes a tree.
        t.add(0, 4).unwrap();
        assert!(t.is_few());
        t.add(-1, 1).unwrap();
        assert!(!t.is_few());
        assert_eq!(t.entries().next(), Some((-1, 1)));
        assert_eq!(t.total(), FEW_MAX as i64 + 5);
        assert_eq!(std::mem::size_of::<Timeline>(), 32, "a map entry's value stays small");
    }

    #[test]
    fn undo_restores_the_same_changes_and_equality_ignores_shape() {
        let mut a = Timeline::default();
        let mut b = Timeline::default();
        for (at, d) in [(5, 10), (1, 3), (9, -2)] {
            a.add(at, d).unwrap();
        }
        for (at, d) in [(9, -2), (5, 10), (1, 3)] {
            b.add(at, d).unwrap();
        }
        assert_eq!(a, b);
        let before = a.clone();
        a.add(3, -1).unwrap();
        a.add(5, 4).unwrap();
        assert_ne!(a, before);
        a.undo(5, 4);
        a.undo(3, -1);
        assert_eq!(a, before);
    }

    #[test]
    fn a_long_forward_history_stays_shallow_enough_to_answer_fast() {
        let mut t = Timeline::default();
        for i in 0..200_000 {
            t.add(i, if i % 2 == 0 { 10 } else { -9 }).unwrap();
        }
        assert_eq!(t.total(), 100_000);
        // After change 2k the balance is 10 + k, after 2k + 1 it is 1 + k.
        assert_eq!(t.min_from(0), 1);
        assert_eq!(t.min_from(150_000), 75_001);
        assert_eq!(t.first_below(150_000, 75_005), Some(Shortfall { at_ns: 150_001, balance_g: 75_001 }));
        assert_eq!(t.first_below(150_000, 75_001), None);
        // The depth of the recursive walks is logarithmic in expectation.
        fn depth(t: &Tree, n: Option<u32>) -> usize {
            n.map_or(0, |n| 1 + depth(t, t.link(t.node(n).left)).max(depth(t, t.link(t.node(n).right))))
        }
        let Form::Tree(tree) = &t.form else { panic!("200,000 instants make a tree") };
        assert!(depth(tree, Some(tree.root)) < 100, "depth {}", depth(tree, Some(tree.root)));
    }

    #[test]
    fn turnover_past_i64_is_refused_before_anything_changes() {
        let mut t = Timeline::default();
        t.add(0, i64::MAX - 5).unwrap();
        let before = t.clone();
        assert_eq!(t.add(1, -6), Err(TurnoverOverflow));
        assert_eq!(t, before);
        t.add(1, -5).unwrap();
    }
}
