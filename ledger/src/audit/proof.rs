//! Inclusion and consistency proofs, checked offline against signed checkpoints.
//!
//! Leaves are `leaf_hash(record hash)` in seq order (leaf index = seq − 1); proofs are RFC
//! 6962 audit paths and consistency proofs, so any Certificate Transparency verifier can check
//! them too (see [`crate::merkle`]).

use super::checkpoint::{for_each_leaf, record_hash, Checkpoint};
use crate::canonical::{hex_hash, Hash};
use crate::error::LedgerError;
use crate::merkle::{self, leaf_hash, MerkleLog, ProofError};
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// Proof that record `seq` (whose hash is `record_hash`) is in the tree of `tree_size` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub seq: u64,
    #[serde(with = "hex_hash")]
    pub record_hash: Hash,
    pub tree_size: u64,
    #[serde(with = "hex_list")]
    pub path: Vec<Hash>,
}

/// Proof that the tree of `old_size` records is a prefix of the tree of `new_size` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    #[serde(with = "hex_list")]
    pub path: Vec<Hash>,
}

/// Why a proof does not hold against the checkpoints given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofCheckError {
    #[error("the proof is for tree size {proof}, the checkpoint covers {checkpoint}: use the checkpoint the proof was made for")]
    SizeMismatch { proof: u64, checkpoint: u64 },
    #[error("the checkpoint's signature does not verify: {0}")]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
    #[error("the proof does not hold: {0}")]
    Proof(#[from] ProofError),
}

impl InclusionProof {
    /// Checks the proof against a checkpoint of the same tree size (and the checkpoint's
    /// signature under the key it names; pinning that key is the caller's part).
    pub fn verify(&self, checkpoint: &Checkpoint) -> Result<(), ProofCheckError> {
        if checkpoint.tree_size != self.tree_size {
            return Err(ProofCheckError::SizeMismatch { proof: self.tree_size, checkpoint: checkpoint.tree_size });
        }
        checkpoint.verify_signature()?;
        let index = self.seq.checked_sub(1).ok_or(ProofError::IndexOutOfRange { index: 0, size: self.tree_size })?;
        merkle::verify_inclusion(&leaf_hash(&self.record_hash), index, self.tree_size, &self.path, &checkpoint.root)?;
        Ok(())
    }
}

impl ConsistencyProof {
    /// Checks that `new` extends `old`: both signatures, both sizes, and the proof.
    pub fn verify(&self, old: &Checkpoint, new: &Checkpoint) -> Result<(), ProofCheckError> {
        for (proof, checkpoint) in [(self.old_size, old), (self.new_size, new)] {
            if checkpoint.tree_size != proof {
                return Err(ProofCheckError::SizeMismatch { proof, checkpoint: checkpoint.tree_size });
            }
            checkpoint.verify_signature()?;
        }
        merkle::verify_consistency(self.old_size, self.new_size, &old.root, &new.root, &self.path)?;
        Ok(())
    }
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Request(#[from] ProofError),
    #[error("seq {seq} is not in a tree of {tree_size} records (seqs 1..={tree_size})")]
    SeqOutOfRange { seq: u64, tree_size: u64 },
}

/// The Merkle tree over records `1..=size` of a store, rebuilt in memory from every record
/// (64 bytes of memory per record): the oracle the stored nodes are tested against.
pub fn tree(store: &Store, size: u64) -> Result<MerkleLog, LedgerError> {
    let mut log = MerkleLog::new();
    for_each_leaf(store, 1, size, |leaf| log.push(leaf))?;
    Ok(log)
}

/// Inclusion proof of record `seq` in the tree of `tree_size` records, from the store's
/// Merkle nodes: O(log n) node reads and one record read.
pub fn prove_inclusion(store: &Store, seq: u64, tree_size: u64) -> Result<InclusionProof, ProveError> {
    if seq == 0 || seq > tree_size {
        return Err(ProveError::SeqOutOfRange { seq, tree_size });
    }
    check_size(store, tree_size)?;
    let index = seq - 1;
    let path = store.merkle().inclusion_proof(index, tree_size)??;
    let leaf = store
        .record(seq)?
        .and_then(|b| record_hash(&b))
        .ok_or(ProofError::IndexOutOfRange { index, size: tree_size })?;
    Ok(InclusionProof { seq, record_hash: leaf, tree_size, path })
}

/// Consistency proof from `old_size` to `new_size` records, from the store's Merkle nodes:
/// O(log n) node reads.
pub fn prove_consistency(store: &Store, old_size: u64, new_size: u64) -> Result<ConsistencyProof, ProveError> {
    check_size(store, new_size)?;
    let path = store.merkle().consistency_proof(old_size, new_size)??;
    Ok(ConsistencyProof { old_size, new_size, path })
}

/// Refuses a size beyond the committed log (the node file may briefly hold a commit's nodes
/// before its records are durable).
fn check_size(store: &Store, size: u64) -> Result<(), ProofError> {
    let len = store.head();
    if size > len {
        return Err(ProofError::SizeOutOfRange { size, len });
    }
    Ok(())
}

mod hex_list {
    use crate::canonical::{self, Hash};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(canonical::hex))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|h| canonical::parse_hex(h).ok_or_else(|| D::Error::custom("expected 64 hex characters")))
            .collect()
    }
}
