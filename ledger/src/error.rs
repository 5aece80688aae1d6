//! Failures that stop the ledger: storage and corruption. Never a business outcome — those
//! are [`crate::domain::Rejection`]s, and `?` can never turn one into the other.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("storage failed: {0}: check the disk and the data directory")]
    Storage(#[from] sled::Error),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the log is corrupt at seq {seq}: {what}: restore the data directory from an export or a replica")]
    Corrupt { seq: u64, what: String },
    #[error("the data directory {path} is not usable: {what}")]
    Unusable { path: PathBuf, what: String },
    #[error("a snapshot of the state at seq {state} was asked for while the log is durable up to seq {log}; none was written (a snapshot of records that never became durable would not match the log at the next open)")]
    SnapshotAhead { state: u64, log: u64 },
    #[error("the ledger writer has stopped after an earlier failure; restart the ledger")]
    Stopped,
}

impl LedgerError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LedgerError::Io { op, path: path.into(), source }
    }
}
