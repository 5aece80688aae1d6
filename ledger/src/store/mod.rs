//! The sled store: the only module that touches sled or the disk.
//!
//! Trees:
//! - `log`: key = big-endian seq of a frame's first record, value = a frame: the stored
//!   bytes of consecutive records joined by `\n`. One commit writes its frames with one
//!   atomic `apply_batch`; the head of the chain is the last record of the last frame.
//! - `meta`: small counters kept beside the log (the outbox cursor).
//! - `snapshots`: the derived state at some seq, in chunks, so opening a large ledger does
//!   not replay it from the start.
//! - `checkpoints`: key = big-endian tree size, value = a signed checkpoint and the Merkle
//!   frontier at that size (see [`crate::audit::checkpoint`]).
//!
//! Durability: sled 0.34's `flush()` ends in `sync_file_range`, which flushes neither the
//! device cache nor metadata. [`Store::commit`] therefore ends in a real `fdatasync` of
//! sled's data file. sled writes values above a threshold to separate blob files that it
//! never syncs; the store keeps every value (frames, snapshot chunks) far below that
//! threshold (see [`FRAME_BYTES_MAX`], [`SEGMENT_BYTES`]) and refuses a directory with blobs.

mod snapshot;

pub use snapshot::SnapshotError;

use crate::error::LedgerError;
use crate::record::Sealed;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// sled segment size. sled stores a page as a separate, never-synced blob file when it is
/// larger than a quarter of a segment; a leaf holds at most 17 values (it splits above 16),
/// so 17 × [`FRAME_BYTES_MAX`] (≈ 1.1 MiB) stays well below 8 MiB / 4 = 2 MiB.
pub const SEGMENT_BYTES: usize = 8 << 20;

/// Largest frame, in bytes. A frame closes before a record would take it past this size
/// (a single record larger than it gets a frame of its own, bounded by the request limits).
pub const FRAME_BYTES_MAX: usize = 64 << 10;

/// sled page cache. Stockpile records are read mostly once (replay, outbox, export); a
/// small cache keeps the service's memory bounded (the target is 256 MiB in every scenario).
pub const CACHE_BYTES: u64 = 32 << 20;

const META_OUTBOX_CURSOR: &[u8] = b"outbox_cursor";

/// A handle to the store; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    snapshots: sled::Tree,
    checkpoints: sled::Tree,
    /// sled's data file, opened again so the commit path can `fdatasync` it.
    data_file: Arc<File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|e| LedgerError::io("create", dir, e))?;
        let db = open_db(dir)?;
        let data_path = dir.join("db");
        let data_file =
            File::options().read(true).open(&data_path).map_err(|e| LedgerError::io("open", &data_path, e))?;
        // The directory entries of sled's files must survive power loss too.
        sync_dir(dir)?;
        let store = Store {
            dir: dir.to_path_buf(),
            log: db.open_tree("log")?,
            meta: db.open_tree("meta")?,
            snapshots: db.open_tree("snapshots")?,
            checkpoints: db.open_tree("checkpoints")?,
            db,
            data_file: Arc::new(data_file),
        };
        store.check_no_blobs()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_no_blobs(&self) -> Result<(), LedgerError> {
        let blobs = self.dir.join("blobs");
        let count = match std::fs::read_dir(&blobs) {
            Ok(entries) => entries.count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(LedgerError::io("read", &blobs, e)),
        };
        if count > 0 {
            return Err(LedgerError::Unusable {
                path: self.dir.clone(),
                what: format!("{count} sled blob files found; blobs are not synced by sled 0.34, so this directory was not written by this ledger's store"),
            });
        }
        Ok(())
    }

    /// Appends records (consecutive, continuing the log) and makes them durable: one atomic
    /// sled batch, `flush`, then `fdatasync`. When this returns `Ok`, the records survive a
    /// crash of the process, the OS or the power.
    pub fn commit(&self, records: &[Sealed]) -> Result<(), LedgerError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for frame in frames(records) {
            batch.insert(&frame.first_seq.to_be_bytes(), frame.bytes);
        }
        self.log.apply_batch(batch)?;
        self.sync()
    }

    fn sync(&self) -> Result<(), LedgerError> {
        self.db.flush()?;
        self.data_file.sync_data().map_err(|e| LedgerError::io("fdatasync", self.dir.join("db"), e))
    }

    /// The stored bytes of every record from `from` (inclusive) to `to` (inclusive), in order.
    pub fn records(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, LedgerError> {
        let mut out = Vec::new();
        self.scan(from, |seq, bytes| {
            if seq > to {
                return false;
            }
            out.push(bytes.to_vec());
            true
        })?;
        Ok(out)
    }

    /// Calls `visit(seq, bytes)` for every record from `from` on, in order, until it returns
    /// false. Frames are read one at a time, so memory stays bounded on any log size.
    pub fn scan(&self, from: u64, mut visit: impl FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError> {
        let start = self.frame_start(from)?.unwrap_or(from);
        for item in self.log.range(start.to_be_bytes()..) {
            let (key, frame) = item?;
            for (seq, line) in (frame_seq(&key)?..).zip(frame.split(|b| *b == b'\n')) {
                if seq >= from && !visit(seq, line) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Every frame from the one holding `from` on, as (first seq, frame bytes).
    pub fn frames_from(
        &self,
        from: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, sled::IVec), LedgerError>>, LedgerError> {
        let start = self.frame_start(from)?.unwrap_or(from);
        Ok(self.log.range(start.to_be_bytes()..).map(|item| {
            let (key, frame) = item?;
            Ok((frame_seq(&key)?, frame))
        }))
    }

    /// The first seq of the frame that holds `seq`, if any frame starts at or before it.
    fn frame_start(&self, seq: u64) -> Result<Option<u64>, LedgerError> {
        match self.log.range(..=seq.to_be_bytes()).next_back() {
            Some(item) => Ok(Some(frame_seq(&item?.0)?)),
            None => Ok(None),
        }
    }

    /// The stored bytes of record `seq`.
    pub fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.records(seq, seq)?.pop())
    }

    /// The stored bytes of the last record: the head of the chain.
    pub fn last_record(&self) -> Result<Option<(u64, Vec<u8>)>, LedgerError> {
        let Some(item) = self.log.last()? else { return Ok(None) };
        let (key, frame) = item;
        let first = frame_seq(&key)?;
        let lines = frame.split(|b| *b == b'\n').count() as u64;
        let last = frame.split(|b| *b == b'\n').next_back().unwrap_or_default();
        Ok(Some((first + lines - 1, last.to_vec())))
    }

    pub fn outbox_cursor(&self) -> Result<u64, LedgerError> {
        Ok(match self.meta.get(META_OUTBOX_CURSOR)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt { seq: 0, what: "outbox cursor is not 8 bytes".into() })?,
            ),
            None => 0,
        })
    }

    /// Stores a checkpoint entry under its tree size and makes it durable.
    pub fn put_checkpoint(&self, tree_size: u64, entry: &[u8]) -> Result<(), LedgerError> {
        self.checkpoints.insert(tree_size.to_be_bytes(), entry)?;
        self.sync()
    }

    /// Every stored checkpoint entry with a tree size of at most `up_to`, in order.
    pub fn checkpoints(&self, up_to: u64) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        let mut out = Vec::new();
        for item in self.checkpoints.range(..=up_to.to_be_bytes()) {
            let (key, value) = item?;
            out.push((frame_seq(&key)?, value.to_vec()));
        }
        Ok(out)
    }

    /// The checkpoint entry with the largest tree size.
    pub fn last_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, LedgerError> {
        match self.checkpoints.last()? {
            Some((key, value)) => Ok(Some((frame_seq(&key)?, value.to_vec()))),
            None => Ok(None),
        }
    }

    /// Advances the durable outbox cursor (the last seq known published).
    pub fn set_outbox_cursor(&self, seq: u64) -> Result<(), LedgerError> {
        self.meta.insert(META_OUTBOX_CURSOR, &seq.to_be_bytes())?;
        self.sync()
    }
}

/// How long `open` waits for sled's directory lock. sled releases it when the last handle
/// of a previous instance in this process is dropped, which its background I/O threads can
/// delay by a few milliseconds after a close; another process holding it is a real conflict.
pub const LOCK_WAIT_MS: u64 = 2_000;

fn open_db(dir: &Path) -> Result<sled::Db, LedgerError> {
    let config = sled::Config::new()
        .path(dir)
        .segment_size(SEGMENT_BYTES)
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(None)
        .mode(sled::Mode::HighThroughput);
    match open_sled(&config) {
        Err(sled::Error::Io(e)) if is_lock_conflict(&e) => Err(LedgerError::Unusable {
            path: dir.to_path_buf(),
            what: format!("{e}: another process has this ledger open; stop it first"),
        }),
        other => Ok(other?),
    }
}

/// Opens a sled database, waiting up to [`LOCK_WAIT_MS`] for its directory lock (see there).
/// Every sled directory in the workspace is opened through this, so a close-then-reopen in
/// one process never fails on the lock a previous instance's background threads still hold.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if is_lock_conflict(&e) && started.elapsed() < std::time::Duration::from_millis(LOCK_WAIT_MS) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Whether sled failed to open because another handle holds the directory lock.
pub fn is_lock_conflict(e: &std::io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

fn frame_seq(key: &[u8]) -> Result<u64, LedgerError> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| LedgerError::Corrupt { seq: 0, what: "log key is not 8 bytes".into() })?;
    Ok(u64::from_be_bytes(bytes))
}

struct Frame {
    first_seq: u64,
    bytes: Vec<u8>,
}

/// Packs consecutive records into frames of at most [`FRAME_BYTES_MAX`] bytes.
fn frames(records: &[Sealed]) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for r in records {
        debug_assert!(!r.bytes.contains(&b'\n'), "canonical JSON has no raw newline");
        match out.last_mut() {
            Some(f) if f.bytes.len() + 1 + r.bytes.len() <= FRAME_BYTES_MAX => {
                f.bytes.push(b'\n');
                f.bytes.extend_from_slice(&r.bytes);
            }
            _ => out.push(Frame { first_seq: r.seq, bytes: r.bytes.clone() }),
        }
    }
    out
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| LedgerError::io("fsync", dir, e))
}
