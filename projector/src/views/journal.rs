//! The journal: every posting in record order with what kind of movement it was. Holdings
//! read the per-class history (module `positions`); a report's flows over a period (acquired,
//! transferred in and out, released by reason, …) read this.
//!
//! It is built from the same [`super::Change`]s the store persists, so a reopened projector
//! has the same journal as a live one. Cost: 32 bytes a posting.

use super::Movement;
use stockpile_ledger::domain::ReleaseReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalEntry {
    /// The record the posting belongs to.
    pub(crate) seq: u64,
    /// Business time, nanoseconds since the epoch.
    pub(crate) at: i64,
    pub(crate) position: u32,
    pub(crate) delta: i64,
    pub(crate) movement: Movement,
    /// For releases and their reversals.
    pub(crate) reason: Option<ReleaseReason>,
}

/// The journal entries of record `seq` (the journal is in seq order).
pub(crate) fn of_record(journal: &[JournalEntry], seq: u64) -> &[JournalEntry] {
    let start = journal.partition_point(|e| e.seq < seq);
    let end = journal.partition_point(|e| e.seq <= seq);
    &journal[start..end]
}
