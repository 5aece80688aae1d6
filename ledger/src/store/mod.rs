//! The sled store: the only module that touches sled or the disk.
//!
//! The records are not in sled: they are in the record log beside it ([`log`]), one
//! checksummed frame per commit, synced with `fdatasync` before the commit returns. sled 0.34
//! keeps every page it has written in memory, so a log kept in sled grows the process with
//! the log; the file's pages are the kernel's to drop.
//!
//! sled trees:
//! - `meta`: small counters kept beside the log (the outbox cursor).
//! - `snapshots`: where releases before `state.snapshot` kept snapshots; emptied by the
//!   first snapshot written ([`snapshot`]: a file of its own, because sled keeps what it
//!   writes in memory).
//! - `checkpoints`: key = big-endian tree size, value = a signed checkpoint and the Merkle
//!   frontier at that size (see [`crate::audit::checkpoint`]).
//!
//! Beside them, `merkle.nodes` ([`tree`]): the Merkle tree's perfect subtree roots, derived
//! from the log and rebuilt from it at open when missing or behind.
//!
//! Durability: [`Store::commit`] returns after `fdatasync` of the record log. For the small
//! writes that stay in sled: sled 0.34's `flush()` ends in `sync_file_range`, which flushes
//! neither the device cache nor metadata, so they end in a real `fdatasync` of sled's data
//! file. sled writes values above a threshold to separate blob files that it
//! never syncs; the store keeps every value (checkpoints, counters) far below that
//! threshold (see [`SEGMENT_BYTES`]) and refuses a directory with blobs.

pub mod log;
mod snapshot;
pub mod tree;

pub use snapshot::SnapshotError;

use crate::error::LedgerError;
use crate::record::Sealed;
pub use log::Frames;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// sled segment size. sled stores a page as a separate, never-synced blob file when it is
/// larger than a quarter of a segment; a leaf holds at most 17 values (it splits above 16),
/// so 17 checkpoint entries (a signed note and a frontier, a few KiB) stay well below 8 MiB / 4
/// = 2 MiB. (Snapshots, far larger, are a file of their own: see [`snapshot`].)
pub const SEGMENT_BYTES: usize = 8 << 20;

/// sled page cache. Only checkpoints and counters live in sled.
pub const CACHE_BYTES: u64 = 32 << 20;

const META_OUTBOX_CURSOR: &[u8] = b"outbox_cursor";

/// A handle to the store; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    log: Arc<log::Log>,
    /// Every perfect subtree root of the Merkle tree over the records (see [`tree`]).
    nodes: Arc<tree::Nodes>,
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
        if db.tree_names().iter().any(|name| name.as_ref() == b"log") && !db.open_tree("log")?.is_empty() {
            return Err(LedgerError::Unusable {
                path: dir.to_path_buf(),
                what: "its records are in a sled tree, the store format before the record log; export it with that release (`stockpile audit export`) and start a new ledger".into(),
            });
        }
        let log = Arc::new(log::Log::open(dir)?);
        let nodes = Arc::new(tree::Nodes::open(dir, log.head(), |from, to, visit| leaves(&log, from, to, visit))?);
        let data_path = dir.join("db");
        let data_file =
            File::options().read(true).open(&data_path).map_err(|e| LedgerError::io("open", &data_path, e))?;
        // The directory entries of sled's files must survive power loss too.
        sync_dir(dir)?;
        let store = Store {
            dir: dir.to_path_buf(),
            log,
            nodes,
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

    /// The seq of the last durable record, 0 for an empty log.
    pub fn head(&self) -> u64 {
        self.log.head()
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

    /// Appends records (consecutive, continuing the log) as one frame of the record log and
    /// makes them durable with `fdatasync`. When this returns `Ok`, the records survive a
    /// crash of the process, the OS or the power.
    ///
    /// The records' Merkle nodes are written first (not synced: the node file is rebuilt from
    /// the log at open), so a proof over any size readers can see finds its nodes.
    pub fn commit(&self, records: &[Sealed]) -> Result<(), LedgerError> {
        let before = self.nodes.leaves();
        let leaves: Vec<_> = records.iter().map(|r| crate::merkle::leaf_hash(&r.hash)).collect();
        self.nodes.append(&leaves)?;
        let appended = self.log.append(records);
        if appended.is_err() {
            if let Err(e) = self.nodes.truncate(before) {
                tracing::warn!(error = %e, "could not cut the Merkle node file back; it is rebuilt at the next open");
            }
        }
        appended
    }

    /// The Merkle nodes over the records: roots and proofs at any size in O(log n) reads.
    pub fn merkle(&self) -> &tree::Nodes {
        &self.nodes
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
    /// false. The log is read in chunks, so memory stays bounded on any log size.
    pub fn scan(&self, from: u64, visit: impl FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError> {
        self.log.scan(from, visit)
    }

    /// A reader of every frame from the one holding `from` on: (first seq, records joined by `\n`).
    pub fn frames_from(&self, from: u64) -> Frames<'_> {
        self.log.frames_from(from)
    }

    /// The stored bytes of record `seq`.
    pub fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.records(seq, seq)?.pop())
    }

    /// The stored bytes of the last record: the head of the chain.
    pub fn last_record(&self) -> Result<Option<(u64, Vec<u8>)>, LedgerError> {
        self.log.last_record()
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
            out.push((key_seq(&key)?, value.to_vec()));
        }
        Ok(out)
    }

    /// The checkpoint entry with the largest tree size.
    pub fn last_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, LedgerError> {
        match self.checkpoints.last()? {
            Some((key, value)) => Ok(Some((key_seq(&key)?, value.to_vec()))),
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

fn key_seq(key: &[u8]) -> Result<u64, LedgerError> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| LedgerError::Corrupt { seq: 0, what: "checkpoint key is not 8 bytes".into() })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Calls `visit` with the Merkle leaf of every record `from..=to` of `log`.
fn leaves(log: &log::Log, from: u64, to: u64, visit: &mut dyn FnMut(crate::merkle::Digest)) -> Result<(), LedgerError> {
    let mut failure = None;
    log.scan(from, |seq, bytes| {
        if seq > to {
            return false;
        }
        let hash = serde_json::from_slice::<crate::record::RawRecord<'_>>(bytes)
            .ok()
            .and_then(|raw| crate::canonical::parse_hex(raw.hash));
        match hash {
            Some(hash) => visit(crate::merkle::leaf_hash(&hash)),
            None => failure = Some(seq),
        }
        failure.is_none()
    })?;
    match failure {
        Some(seq) => Err(LedgerError::Corrupt { seq, what: "stored record has no valid hash".into() }),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| LedgerError::io("fsync", dir, e))
}
