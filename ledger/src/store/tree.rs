//! The Merkle node file: every complete (perfect) subtree root of the RFC 6962 tree over the
//! records, so a proof or a root at any size reads O(log n) nodes instead of every record.
//!
//! `merkle.nodes` is a flat array of 32-byte digests in the order they complete, as in a
//! Merkle mountain range: appending leaf `L` (0-based) writes the leaf hash, then the root of
//! every perfect subtree that leaf completes, lowest first (one per trailing one-bit of `L`).
//! So the nodes of `n` leaves are the first `2n − popcount(n)` digests, and the root of the
//! perfect subtree of `2^h` leaves whose last leaf is `L` sits at
//! `2L − popcount(L) + h` ([`position`]).
//!
//! Why a file of our own and not a sled tree: sled 0.34 keeps every page it writes in memory
//! (see [`super::log`]), and two nodes per record would grow the process with the log again.
//!
//! The file is derived from the record log and never synced: [`Store::commit`](super::Store)
//! writes a group's nodes (one positional write) before the group's frame, so they are in the
//! page cache by the time readers see the records. Opening checks it against the log and
//! rebuilds what it lacks: it keeps the longest prefix of whole leaves with no all-zero node
//! (what an extending write can leave after power loss; SHA-256 never gives zero), cuts
//! nodes past the log's head (a commit that failed), checks that the last kept leaf is the
//! leaf hash of its record (else rebuilds from the start), and appends the nodes of every
//! record after it — so a ledger written before this file existed gets it at its first open.

use crate::error::LedgerError;
use crate::merkle::{self, Digest, ProofError};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The node file's name in the data directory.
pub const NODES_FILE: &str = "merkle.nodes";

/// Bytes of one node.
const NODE_BYTES: u64 = 32;

/// Nodes read per call when the file is checked at open: 1 MiB.
const CHECK_CHUNK_NODES: u64 = 32 << 10;

/// Where the node file stands.
#[derive(Debug)]
struct Edge {
    /// Leaves whose nodes are written.
    leaves: u64,
    /// The roots of the perfect subtrees of those leaves, largest first (one per set bit).
    frontier: Vec<Digest>,
}

/// The node file of one data directory. Appends are serialized by the store's commit path;
/// reads run concurrently with them.
#[derive(Debug)]
pub struct Nodes {
    path: PathBuf,
    file: File,
    edge: Mutex<Edge>,
}

/// Digests written for the first `leaves` leaves.
pub fn nodes_for(leaves: u64) -> u64 {
    2 * leaves - u64::from(leaves.count_ones())
}

/// Index in the file of the root of the perfect subtree of `2^level` leaves starting at leaf
/// `start` (a multiple of `2^level`).
pub fn position(level: u32, start: u64) -> u64 {
    let last = start + (1 << level) - 1;
    nodes_for(last) + u64::from(level)
}

impl Nodes {
    /// Opens (or creates) the node file and brings it up to `head` records;
    /// `leaves(from, to, visit)` calls `visit` with the leaf of every record `from..=to`.
    pub fn open(
        dir: &Path,
        head: u64,
        mut leaves: impl FnMut(u64, u64, &mut dyn FnMut(Digest)) -> Result<(), LedgerError>,
    ) -> Result<Nodes, LedgerError> {
        let path = dir.join(NODES_FILE);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LedgerError::io("open", &path, e))?;
        let nodes = Nodes { path, file, edge: Mutex::new(Edge { leaves: 0, frontier: Vec::new() }) };
        let mut kept = nodes.whole_prefix()?.min(head);
        if kept > 0 {
            let mut stored = None;
            leaves(kept, kept, &mut |leaf| {
                if stored.is_none() {
                    stored = Some(leaf);
                }
            })?;
            if stored != Some(nodes.read(position(0, kept - 1))?) {
                tracing::warn!(path = %nodes.path.display(), "the Merkle node file does not match the record log; rebuilding it");
                kept = 0;
            }
        }
        nodes.cut(kept)?;
        if kept < head {
            let mut batch = Vec::new();
            let mut failure = None;
            leaves(kept + 1, head, &mut |leaf| {
                batch.push(leaf);
                if batch.len() as u64 == CHECK_CHUNK_NODES {
                    if let Err(e) = nodes.append(&batch) {
                        failure.get_or_insert(e);
                    }
                    batch.clear();
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            nodes.append(&batch)?;
        }
        let leaves = nodes.leaves();
        if leaves != head {
            return Err(LedgerError::Corrupt {
                seq: leaves + 1,
                what: format!("the Merkle node file holds {leaves} leaves, the log {head} records"),
            });
        }
        Ok(nodes)
    }

    /// Leaves whose nodes are written.
    pub fn leaves(&self) -> u64 {
        self.edge.lock().unwrap_or_else(|p| p.into_inner()).leaves
    }

    /// Leaves in the longest prefix of the file made of whole leaves and no all-zero node.
    fn whole_prefix(&self) -> Result<u64, LedgerError> {
        let len = self.file.metadata().map_err(|e| LedgerError::io("stat", &self.path, e))?.len();
        let total = len / NODE_BYTES;
        let mut buf = vec![0u8; (CHECK_CHUNK_NODES * NODE_BYTES) as usize];
        let mut good = 0;
        while good < total {
            let count = (total - good).min(CHECK_CHUNK_NODES);
            let chunk = &mut buf[..(count * NODE_BYTES) as usize];
            self.file.read_exact_at(chunk, good * NODE_BYTES).map_err(|e| LedgerError::io("read", &self.path, e))?;
            match chunk.chunks_exact(NODE_BYTES as usize).position(|n| n.iter().all(|b| *b == 0)) {
                Some(zero) => {
                    good += zero as u64;
                    break;
                }
                None => good += count,
            }
        }
        // The largest n with nodes_for(n) <= good: nodes_for grows by at least 1 per leaf.
        let mut leaves = good / 2;
        while nodes_for(leaves + 1) <= good {
            leaves += 1;
        }
        Ok(leaves)
    }

    /// Keeps the nodes of the first `leaves` leaves and rebuilds the frontier from them.
    fn cut(&self, leaves: u64) -> Result<(), LedgerError> {
        self.file.set_len(nodes_for(leaves) * NODE_BYTES).map_err(|e| LedgerError::io("truncate", &self.path, e))?;
        let mut frontier = Vec::new();
        let mut start = 0;
        for level in (0..64).rev() {
            if leaves & (1 << level) != 0 {
                frontier.push(self.read(position(level, start))?);
                start += 1 << level;
            }
        }
        *self.edge.lock().unwrap_or_else(|p| p.into_inner()) = Edge { leaves, frontier };
        Ok(())
    }

    /// Appends the nodes of `leaves` (leaf hashes, continuing the tree) with one write.
    pub fn append(&self, leaves: &[Digest]) -> Result<(), LedgerError> {
        if leaves.is_empty() {
            return Ok(());
        }
        let mut edge = self.edge.lock().unwrap_or_else(|p| p.into_inner());
        let offset = nodes_for(edge.leaves) * NODE_BYTES;
        let mut bytes = Vec::with_capacity(leaves.len() * 2 * NODE_BYTES as usize);
        let (mut size, mut frontier) = (edge.leaves, edge.frontier.clone());
        for leaf in leaves {
            bytes.extend_from_slice(leaf);
            let mut node = *leaf;
            let mut carry = size;
            while carry & 1 == 1 {
                let left = frontier.pop().expect("one node per set bit");
                node = merkle::node_hash(&left, &node);
                bytes.extend_from_slice(&node);
                carry >>= 1;
            }
            frontier.push(node);
            size += 1;
        }
        self.file.write_all_at(&bytes, offset).map_err(|e| LedgerError::io("write", &self.path, e))?;
        *edge = Edge { leaves: size, frontier };
        Ok(())
    }

    /// Forgets the nodes past `leaves` (a commit whose frame failed).
    pub fn truncate(&self, leaves: u64) -> Result<(), LedgerError> {
        if leaves < self.leaves() {
            self.cut(leaves)?;
        }
        Ok(())
    }

    fn read(&self, index: u64) -> Result<Digest, LedgerError> {
        let mut node = [0u8; NODE_BYTES as usize];
        self.file.read_exact_at(&mut node, index * NODE_BYTES).map_err(|e| LedgerError::io("read", &self.path, e))?;
        Ok(node)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let len = self.leaves();
        if size > len {
            return Err(ProofError::SizeOutOfRange { size, len });
        }
        Ok(())
    }

    /// Root of the tree of the first `size` leaves: at most log2 `size` reads.
    pub fn root_at(&self, size: u64) -> Result<Result<Digest, ProofError>, LedgerError> {
        if let Err(e) = self.check_size(size) {
            return Ok(Err(e));
        }
        Ok(Ok(merkle::range_root(&mut |level, start| self.read(position(level, start)), 0, size)?))
    }

    /// RFC 6962 inclusion proof of leaf `index` in the tree of `size` leaves: O(log size) reads.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Result<Vec<Digest>, ProofError>, LedgerError> {
        if let Err(e) = self.check_size(size) {
            return Ok(Err(e));
        }
        merkle::inclusion_path(&mut |level, start| self.read(position(level, start)), index, size)
    }

    /// RFC 6962 consistency proof from `old_size` to `new_size`: O(log new_size) reads.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Result<Vec<Digest>, ProofError>, LedgerError> {
        if let Err(e) = self.check_size(new_size) {
            return Ok(Err(e));
        }
        merkle::consistency_path(&mut |level, start| self.read(position(level, start)), old_size, new_size)
    }

    /// The leaf hash of record `seq`.
    pub fn leaf(&self, seq: u64) -> Result<Option<Digest>, LedgerError> {
        if seq == 0 || seq > self.leaves() {
            return Ok(None);
        }
        self.read(position(0, seq - 1)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, MerkleLog};

    #[test]
    fn positions_follow_the_order_nodes_complete_in() {
        // Leaves 0..8: l0 l1 n(0,1) l2 l3 n(2,3) n(0..3) l4 l5 n(4,5) l6 l7 n(6,7) n(4..7) n(0..7)
        let expected =
            [(0, 0, 0), (0, 1, 1), (1, 0, 2), (0, 2, 3), (0, 3, 4), (1, 2, 5), (2, 0, 6), (0, 4, 7), (3, 0, 14)];
        for (level, start, pos) in expected {
            assert_eq!(position(level, start), pos, "level {level} start {start}");
        }
        assert_eq!(nodes_for(8), 15);
        assert_eq!(nodes_for(5), 8);
    }

    fn leaf(i: u64) -> Digest {
        leaf_hash(&i.to_be_bytes())
    }

    fn open(dir: &Path, all: &[Digest]) -> Nodes {
        Nodes::open(dir, all.len() as u64, |from, to, visit| {
            all[(from - 1) as usize..to as usize].iter().for_each(|l| visit(*l));
            Ok(())
        })
        .unwrap()
    }

    /// Proofs and roots from the file equal those of the in-memory tree, for every size
    /// written in uneven batches and after reopening, for many (index, size, old, new).
    #[test]
    fn proofs_from_the_file_equal_the_in_memory_tree() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<Digest> = (0..300).map(leaf).collect();
        let nodes = open(dir.path(), &[]);
        let mut memory = MerkleLog::new();
        let mut at = 0;
        for batch in [1usize, 2, 3, 7, 1, 16, 31, 64, 100, 75] {
            nodes.append(&all[at..at + batch]).unwrap();
            all[at..at + batch].iter().for_each(|l| memory.push(*l));
            at += batch;
            check_against(&nodes, &memory);
        }
        drop(nodes);
        let reopened = open(dir.path(), &all);
        check_against(&reopened, &memory);
    }

    fn check_against(nodes: &Nodes, memory: &MerkleLog) {
        let n = memory.len();
        assert_eq!(nodes.leaves(), n);
        for size in 1..=n {
            assert_eq!(nodes.root_at(size).unwrap(), memory.root_at(size), "root at {size}");
            for index in [0, size / 3, size / 2, size - 1] {
                assert_eq!(
                    nodes.inclusion_proof(index, size).unwrap(),
                    memory.inclusion_proof(index, size),
                    "inclusion {index} in {size}"
                );
            }
            for old in [1, size / 2, size.saturating_sub(1), size] {
                assert_eq!(
                    nodes.consistency_proof(old, size).unwrap(),
                    memory.consistency_proof(old, size),
                    "consistency {old}..{size}"
                );
            }
        }
        assert_eq!(nodes.root_at(n + 1).unwrap(), memory.root_at(n + 1));
        assert_eq!(nodes.inclusion_proof(n, n).unwrap(), memory.inclusion_proof(n, n));
    }

    #[test]
    fn opening_rebuilds_a_missing_torn_or_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<Digest> = (0..100).map(leaf).collect();
        let mut memory = MerkleLog::new();
        all.iter().for_each(|l| memory.push(*l));
        let expected = memory.root_at(100).unwrap();
        let path = dir.path().join(NODES_FILE);

        // Missing (a ledger written before the file existed).
        assert_eq!(open(dir.path(), &all).root_at(100).unwrap(), Ok(expected));
        // Zeros from an extending write lost to power: everything from the first one is rebuilt.
        let file = File::options().write(true).open(&path).unwrap();
        file.write_all_at(&[0u8; 64], 50 * NODE_BYTES).unwrap();
        assert_eq!(open(dir.path(), &all).root_at(100).unwrap(), Ok(expected));
        // A half-written node at the end, and nodes past the head of the log.
        let len = file.metadata().unwrap().len();
        file.set_len(len - 7).unwrap();
        assert_eq!(open(dir.path(), &all).root_at(100).unwrap(), Ok(expected));
        assert_eq!(open(dir.path(), &all[..60]).root_at(60).unwrap(), memory.root_at(60));
        // Another log's nodes: the last leaf does not match, so all is rebuilt.
        let other: Vec<Digest> = (1000..1100).map(leaf).collect();
        open(dir.path(), &other);
        assert_eq!(open(dir.path(), &all).root_at(100).unwrap(), Ok(expected));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Random batch cuts and random (index, size, old, new): the file's answers equal
        /// the in-memory tree's, before and after reopening.
        #[test]
        fn random_proofs_equal_the_in_memory_tree(
            batches in proptest::collection::vec(1usize..200, 1..12),
            picks in proptest::collection::vec((0u64..u64::MAX, 0u64..u64::MAX, 0u64..u64::MAX), 32),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let total: usize = batches.iter().sum();
            let all: Vec<Digest> = (0..total as u64).map(leaf).collect();
            let nodes = open(dir.path(), &[]);
            let mut memory = MerkleLog::new();
            let mut at = 0;
            for batch in &batches {
                nodes.append(&all[at..at + batch]).unwrap();
                all[at..at + batch].iter().for_each(|l| memory.push(*l));
                at += batch;
            }
            let n = memory.len();
            let check = |nodes: &Nodes| -> Result<(), proptest::test_runner::TestCaseError> {
                for (a, b, c) in &picks {
                    let size = 1 + a % n;
                    let index = b % (size + 1);
                    let old = c % (size + 1);
                    proptest::prop_assert_eq!(nodes.root_at(size).unwrap(), memory.root_at(size));
                    proptest::prop_assert_eq!(nodes.inclusion_proof(index, size).unwrap(), memory.inclusion_proof(index, size));
                    proptest::prop_assert_eq!(nodes.consistency_proof(old, size).unwrap(), memory.consistency_proof(old, size));
                }
                Ok(())
            };
            check(&nodes)?;
            drop(nodes);
            check(&open(dir.path(), &all))?;
        }
    }
}
