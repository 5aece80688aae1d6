//! The projector's own sled store: the only module that touches sled for the projector.
//!
//! **What is stored.** Not the views' in-memory shape but the [`Change`](crate::views::Change)s
//! that built them —
//! registrations, new positions and postings — in *segments* of consecutive records, each
//! with the head after its last record, in a compact binary form (module `codec`). Reopening
//! replays the segments into fresh [`Views`] through the same code path as the live fold
//! (`Views::replay` → `apply_changes`), so a reopened projector equals a live one by
//! construction. Why this shape rather than the views themselves:
//!
//! - sled costs ~20–25 µs of CPU per keyed write (measured for the ledger, DESIGN §5). A key
//!   per posting or per position caps catch-up near 40k events/s; one segment per page of
//!   ~1,000 records makes persistence a small fraction of the fold.
//! - The as-of index (running balances in business time) is rewritten in the middle by
//!   back-dated records; a persisted copy of it would be rewritten with it. The changes are
//!   append-only: a back-dated record adds one posting to the store, whatever it does to the
//!   index.
//! - A segment holds a few tens of bytes per record, ~2 % of the log, and replays without
//!   JSON or SHA-256 (a million records reopen in ~3 s). Small matters twice: sled 0.34
//!   keeps in memory every page it reads (its `cache_capacity` does not bound reads; sled
//!   issue #1036), so a reopen holds what it read until the process ends.
//!
//! **Exactly once.** A segment and the checkpoint (the head after it) are written in one
//! sled batch on one tree, which sled applies atomically, also across a crash. On open the
//! replayed head must equal the checkpoint. After a crash the store holds a consistent prefix
//! and the projector resumes after its checkpoint: no record is folded twice or skipped.
//!
//! **Durability.** The store is derived data: it is not fsync'd per batch. Losing the last
//! batches to a power cut costs only re-folding them from the source. What must hold is that
//! whatever sled recovers is consistent, which batch atomicity gives.
//!
//! **Small values.** sled 0.34 writes a value above a quarter of a segment to a blob file it
//! never syncs; every value here is a piece of at most [`PIECE_BYTES_MAX`] of a segment,
//! and the segment size is set as the ledger's store sets it.

pub(crate) mod codec;
mod submissions;

pub use submissions::Submissions;

use crate::fold::{FoldError, Step};
use crate::views::{Head, Registry, Views};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// sled segment size: with pieces of [`PIECE_BYTES_MAX`], a full leaf (17 values) is
/// ~280 KiB, far below the blob threshold of a quarter segment (2 MiB).
pub const SEGMENT_BYTES: usize = 8 << 20;

/// Largest stored value, in bytes: half the 32 KiB ceiling that keeps values out of sled's
/// unsynced blob files, leaving room for sled's own framing.
pub const PIECE_BYTES_MAX: usize = 16 << 10;

/// Most records in one segment: bounds what a reopen holds in memory at once (~20 KiB)
/// and matches a catch-up page.
pub const SEGMENT_RECORDS_MAX: usize = 1024;

/// sled page cache. Segments are read once, on open; a small cache keeps the service inside
/// its memory budget (256 MiB at a million events, views included) as far as sled 0.34
/// honours it — it does not bound pages read (see the module doc).
pub const CACHE_BYTES: u64 = 32 << 20;

/// The stored format. A store of another format is discarded and re-folded from the source.
pub const FORMAT: u32 = 2;

const CHECKPOINT: &[u8] = b"checkpoint";
const SEGMENT_PREFIX: u8 = b's';

/// Failures of the store. A damaged store is not a disaster: the views are derived, and
/// [`crate::Projector::open`] discards it and re-folds from the source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("projector storage failed: {0}: check the disk and the projector's data directory")]
    Storage(#[from] sled::Error),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the projector's store is damaged ({what}): rebuild it from the ledger")]
    Corrupt { what: String },
    #[error("the projector's store has format {found}, this build reads {FORMAT}: rebuild it")]
    Format { found: u32 },
    #[error("persisting record {got} after checkpoint {expected_after}: steps must continue the store")]
    OutOfOrder { expected_after: u64, got: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    format: u32,
    head: Head,
}

/// A handle to the projector's sled directory.
pub struct ViewStore {
    dir: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    /// The durable checkpoint: what the next persisted step must follow.
    head: Head,
}

impl std::fmt::Debug for ViewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewStore").field("dir", &self.dir).field("head", &self.head.seq).finish()
    }
}

fn piece_key(first: u64, piece: u32) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[0] = SEGMENT_PREFIX;
    key[1..9].copy_from_slice(&first.to_be_bytes());
    key[9..].copy_from_slice(&piece.to_be_bytes());
    key
}

fn parse_piece_key(key: &[u8]) -> Option<(u64, u32)> {
    if key.len() != 13 || key[0] != SEGMENT_PREFIX {
        return None;
    }
    let first = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let piece = u32::from_be_bytes(key[9..].try_into().ok()?);
    Some((first, piece))
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt { what: what.into() }
}

impl ViewStore {
    /// Opens (or creates) the store in `dir`. Reads only the checkpoint; [`ViewStore::load`]
    /// reads the views.
    pub fn open(dir: &Path) -> Result<ViewStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { op: "create", path: dir.into(), source })?;
        let config = sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_BYTES)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput);
        let db = stockpile_ledger::store::open_sled(&config)?;
        let tree = db.open_tree("views")?;
        let mut store = ViewStore { dir: dir.to_path_buf(), db, tree, head: Head::default() };
        store.head = store.checkpoint()?.map(|c| c.head).unwrap_or_default();
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The head of the durable views.
    pub fn head(&self) -> &Head {
        &self.head
    }

    fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let Some(raw) = self.tree.get(CHECKPOINT)? else { return Ok(None) };
        let cp: Checkpoint =
            serde_json::from_slice(&raw).map_err(|e| corrupt(format!("checkpoint does not decode: {e}")))?;
        if cp.format != FORMAT {
            return Err(StoreError::Format { found: cp.format });
        }
        Ok(Some(cp))
    }

    /// Rebuilds the views from the stored segments and checks they end at the checkpoint.
    pub fn load(&self) -> Result<Views, StoreError> {
        let checkpoint = self.checkpoint()?;
        let mut views = Views::new();
        let mut segment: Option<(u64, u32, Vec<u8>)> = None;
        for item in self.tree.scan_prefix([SEGMENT_PREFIX]) {
            let (key, value) = item?;
            let (first, piece) = parse_piece_key(&key).ok_or_else(|| corrupt("a segment key is malformed"))?;
            match &mut segment {
                Some((f, next, bytes)) if *f == first => {
                    if piece != *next {
                        return Err(corrupt(format!("segment {first} misses piece {next}")));
                    }
                    *next += 1;
                    bytes.extend_from_slice(&value);
                }
                _ => {
                    if let Some((_, _, bytes)) = segment.take() {
                        replay_segment(&mut views, &bytes)?;
                    }
                    if piece != 0 {
                        return Err(corrupt(format!("segment {first} misses piece 0")));
                    }
                    segment = Some((first, 1, value.to_vec()));
                }
            }
        }
        if let Some((_, _, bytes)) = segment {
            replay_segment(&mut views, &bytes)?;
        }
        let expected = checkpoint.map(|c| c.head).unwrap_or_default();
        if views.head() != &expected {
            return Err(corrupt(format!(
                "segments end at record {}, the checkpoint names record {}",
                views.head().seq,
                expected.seq
            )));
        }
        Ok(views)
    }

    /// Appends the steps (continuing the checkpoint) and moves the checkpoint to the last of
    /// them, in one atomic batch. `registry` is the views' registry after the steps: the
    /// segments name parties, lots and facilities by their index in it.
    pub fn persist(&mut self, registry: &Registry, steps: &[Step]) -> Result<(), StoreError> {
        let Some(last) = steps.last() else { return Ok(()) };
        let mut batch = sled::Batch::default();
        let mut expected = self.head.seq;
        for chunk in steps.chunks(SEGMENT_RECORDS_MAX) {
            for step in chunk {
                if step.seq != expected + 1 {
                    return Err(StoreError::OutOfOrder { expected_after: expected, got: step.seq });
                }
                expected = step.seq;
            }
            let bytes = codec::encode(registry, chunk).map_err(|e| corrupt(format!("segment does not encode: {e}")))?;
            for (i, piece) in bytes.chunks(PIECE_BYTES_MAX).enumerate() {
                let index = u32::try_from(i).map_err(|_| corrupt("a segment of more than 2^32 pieces"))?;
                batch.insert(&piece_key(chunk[0].seq, index), piece);
            }
        }
        let head = last.head();
        let checkpoint = Checkpoint { format: FORMAT, head: head.clone() };
        let bytes = serde_json::to_vec(&checkpoint).map_err(|e| corrupt(format!("checkpoint does not encode: {e}")))?;
        batch.insert(CHECKPOINT, bytes);
        self.tree.apply_batch(batch)?;
        self.head = head;
        Ok(())
    }

    /// Removes every segment and the checkpoint, in one batch.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in self.tree.iter().keys() {
            batch.remove(key?);
        }
        self.tree.apply_batch(batch)?;
        self.head = Head::default();
        Ok(())
    }

    /// Writes sled's buffers to the OS (sled also does this every half second).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The scheduler's record of what it submitted (its own tree; [`ViewStore::clear`]
    /// leaves it alone).
    pub fn submissions(&self) -> Result<Submissions, StoreError> {
        Submissions::open(&self.db)
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

fn replay_segment(views: &mut Views, bytes: &[u8]) -> Result<(), StoreError> {
    let mut reader = codec::Reader::new(bytes).map_err(|e| corrupt(format!("a segment does not decode: {e}")))?;
    for i in 0..reader.count {
        // cannot overflow: the reader checked `first + count - 1`
        let seq = reader.first + i;
        let changes = reader.record(views.registry()).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
        views.replay(seq, &changes).map_err(|e: FoldError| corrupt(e.to_string()))?;
    }
    if !reader.at_end() {
        return Err(corrupt(format!("segment {} has bytes after its last record", reader.first)));
    }
    views.set_head(reader.head.clone());
    Ok(())
}
