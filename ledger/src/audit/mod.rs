//! The auditor's toolkit: signed checkpoints over the Merkle tree of record hashes, the
//! export, offline verification by re-execution, and inclusion and consistency proofs.
//!
//! - [`checkpoint`]: `{tree_size, root, recorded_at, key, signature}`, signed by the
//!   ledger's own key and stored beside the log.
//! - [`export`]: the log as JSON Lines (stored records, byte for byte, with the checkpoints
//!   between them), from a store or a file.
//! - [`verify`]: checks an export or a store by re-running the ledger's pure core on every
//!   signed command; names the position of the first bad line.
//! - [`proof`]: inclusion and consistency proofs, checked against checkpoints.
//! - [`note`]: C2SP signed notes, checkpoint notes, verifier keys and witness cosignatures.
//! - [`witness`]: the witness's add-checkpoint rule (C2SP `tlog-witness`), pure.

pub mod checkpoint;
pub mod export;
pub mod note;
pub mod proof;
pub mod verify;
pub mod witness;

pub use checkpoint::{Checkpoint, LedgerKey};
pub use verify::{verify, verify_chain, ChainSummary, Options, Position, Problem, Summary, VerifyError};
