//! Rebuilding a ledger directory from a copy of its log: `stockpile-ledger restore`.
//!
//! The source is an export file (`audit export`), or the `STOCKPILE_EVENTS` stream, which
//! [`crate::service::restore`] first copies into a file of the same format (with the
//! checkpoints of `STOCKPILE_CHECKPOINTS` between the records). Either way:
//!
//! 1. the target directory must be missing or empty; everything is built in a staging
//!    directory beside it ([`Staging`], `.<name>.restoring`), removed on any failure;
//! 2. the source is verified as `audit verify` does ([`crate::audit::verify`]: canonical
//!    bytes, hashes, the chain, every command signature, re-execution by `decide`, every
//!    checkpoint's root and signature, conservation), pinned to the checkpoint key when one
//!    is given. The first problem refuses the source;
//! 3. the records are committed to a new [`Store`] byte for byte, in frames of
//!    [`RESTORE_FRAME_RECORDS`]; with the checkpoint key, every checkpoint of the source is
//!    stored with its Merkle frontier, as the ledger stores its own; the outbox cursor is the
//!    head when the source was the stream (every record is in it), 0 for an export;
//! 4. the directory is opened as the ledger opens it (replay, chain check), its head must be
//!    the verified head, and a snapshot is written; then it is renamed to the target.

use crate::audit::checkpoint::{self, Checkpoint, LedgerKey};
use crate::audit::export::{FileLines, Lines as _, LinesError, CHUNK_LINES, RECORD_PREFIX};
use crate::audit::{verify, Options, VerifyError};
use crate::canonical::Hash;
use crate::error::LedgerError;
use crate::ledger::{Ledger, LedgerOptions, SystemClock};
use crate::merkle::{leaf_hash, Frontier};
use crate::record::Sealed;
use crate::store::Store;
use std::path::{Path, PathBuf};

/// Records per frame of the rebuilt record log: one `fdatasync` each. The writer's group
/// commits are at most [`crate::writer::GROUP_COMMANDS_MAX`] records; frames of that size
/// keep the rebuilt log like one the ledger writes under load.
pub const RESTORE_FRAME_RECORDS: usize = crate::writer::GROUP_COMMANDS_MAX;

/// The name of the copy of the stream inside the staging directory (removed before the
/// rename).
pub const STREAM_COPY_FILE: &str = "stream.jsonl";

/// Why nothing was restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0} is not empty: restore builds a new ledger directory and never writes into an existing one")]
    NotEmpty(PathBuf),
    #[error("{0} exists: a restore is running there, or one was interrupted; remove it and try again")]
    Staging(PathBuf),
    #[error("the source does not verify, nothing was restored: {0}")]
    Verify(#[from] VerifyError),
    #[error("the checkpoint key {path} is not usable: {what}")]
    Key { path: PathBuf, what: String },
    #[error("the stream {stream} cannot be restored from: {what}")]
    Stream { stream: &'static str, what: String },
    #[error("the rebuilt directory does not match the verified source: {0}")]
    Mismatch(String),
    #[error(transparent)]
    Lines(#[from] LinesError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RestoreError + 'a {
    move |source| RestoreError::Io { op, path: path.to_path_buf(), source }
}

/// The staging directory beside the target. Removed when dropped, unless
/// [`restore`] renamed it to the target.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    parent: PathBuf,
    renamed: bool,
}

impl Staging {
    /// Refuses a target that exists and is not an empty directory; creates
    /// `.<name>.restoring` beside it.
    pub fn new(target: &Path) -> Result<Staging, RestoreError> {
        match std::fs::read_dir(target).map(|mut entries| entries.next().is_none()) {
            Ok(true) => {}
            Ok(false) => return Err(RestoreError::NotEmpty(target.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(RestoreError::NotEmpty(target.to_path_buf()))
            }
            Err(e) => return Err(io("read", target)(e)),
        }
        let name = target.file_name().ok_or_else(|| RestoreError::NotEmpty(target.to_path_buf()))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
        let dir = parent.join(format!(".{}.restoring", name.to_string_lossy()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(RestoreError::Staging(dir)),
            Err(e) => return Err(io("create", &dir)(e)),
        }
        Ok(Staging { dir, target: target.to_path_buf(), parent, renamed: false })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.renamed {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the staging directory");
            }
        }
    }
}

/// Where the lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An `audit export` file: must end with a checkpoint over all its records.
    Export,
    /// A copy of `STOCKPILE_EVENTS`: every record in it is published, so the outbox cursor
    /// is the head; records after the last checkpoint published are accepted (see
    /// [`Options::uncovered_tail_allowed`]).
    Stream,
}

/// What was restored.
#[derive(Debug, Clone)]
pub struct Restored {
    pub records: u64,
    pub head_hash: Hash,
    /// Records covered by the source's last checkpoint.
    pub covered: u64,
    /// Checkpoints of the source, all verified.
    pub checkpoints: u64,
    /// Whether they were stored (only with the ledger's own checkpoint key).
    pub checkpoints_stored: bool,
    /// The key the source's checkpoints are signed with.
    pub ledger_key: String,
    pub outbox_cursor: u64,
}

/// Verifies the lines in `source` and builds a ledger directory from them in `staging`, then
/// renames it to the target. `checkpoint_key`: the ledger's `checkpoint.key`, copied into the
/// directory; without it the source's checkpoints are verified but not kept, and the ledger
/// creates a new key when it serves. `progress` gets the records verified so far.
pub fn restore(
    mut staging: Staging,
    source: &Path,
    kind: Source,
    checkpoint_key: Option<&Path>,
    progress: &mut dyn FnMut(u64),
) -> Result<Restored, RestoreError> {
    let dir = staging.path().to_path_buf();
    let key = checkpoint_key.map(|path| install_key(path, &dir)).transpose()?;
    let options = Options {
        ledger_key: key.as_ref().map(LedgerKey::public_key_hex),
        uncovered_tail_allowed: kind == Source::Stream,
    };
    let summary = verify(&mut FileLines::open(source)?, &options, progress)?;

    let store = Store::open(&dir)?;
    let mut lines = FileLines::open(source)?;
    let mut frontier = Frontier::new();
    let mut pending: Vec<Sealed> = Vec::with_capacity(RESTORE_FRAME_RECORDS);
    loop {
        let chunk = lines.next_chunk(CHUNK_LINES)?;
        if chunk.is_empty() {
            break;
        }
        for line in chunk {
            if line.starts_with(RECORD_PREFIX) {
                let seq = frontier.len() + 1;
                let hash = checkpoint::record_hash(&line)
                    .ok_or_else(|| RestoreError::Mismatch(format!("record {seq} has no hash on the second read")))?;
                frontier.push(leaf_hash(&hash));
                pending.push(Sealed { seq, hash, bytes: line });
                if pending.len() == RESTORE_FRAME_RECORDS {
                    store.commit(&pending)?;
                    pending.clear();
                }
            } else if key.is_some() {
                let c = Checkpoint::from_line(&line)
                    .map_err(|e| RestoreError::Mismatch(format!("a checkpoint on the second read: {e}")))?;
                checkpoint::store_restored(&store, &c, &frontier)?;
            }
        }
    }
    store.commit(&pending)?;
    let outbox_cursor = if kind == Source::Stream { summary.records } else { 0 };
    if outbox_cursor > 0 {
        store.set_outbox_cursor(outbox_cursor)?;
    }
    drop(store);

    // Open it as the ledger does: replay with the chain check, and a snapshot for the next open.
    let mut ledger = Ledger::open(&dir, Box::new(SystemClock), LedgerOptions::default())?;
    let head = &ledger.state().head;
    if head.seq != summary.records || head.hash != summary.head_hash {
        return Err(RestoreError::Mismatch(format!(
            "the directory's head is seq {}, the source's {}",
            head.seq, summary.records
        )));
    }
    if *ledger.state() != summary.state {
        return Err(RestoreError::Mismatch("the replayed state is not the verified state".into()));
    }
    ledger.snapshot()?;
    drop(ledger);

    let copy = dir.join(STREAM_COPY_FILE);
    if source == copy {
        std::fs::remove_file(&copy).map_err(io("remove", &copy))?;
    }
    sync_dir(&dir)?;
    std::fs::rename(&dir, &staging.target).map_err(io("rename", &dir))?;
    staging.renamed = true;
    sync_dir(&staging.parent)?;
    Ok(Restored {
        records: summary.records,
        head_hash: summary.head_hash,
        covered: summary.covered,
        checkpoints: summary.checkpoints,
        checkpoints_stored: key.is_some(),
        ledger_key: summary.ledger_key,
        outbox_cursor,
    })
}

/// Commits records `1..=through` of the store in `from` to a new store in `to`, byte for byte
/// (frames of [`RESTORE_FRAME_RECORDS`], one `fdatasync` each): what a standby keeps of a
/// directory that diverged from the stream after record `through`. The records were verified
/// when they were written, and their chain is checked again when `to` is opened.
pub fn copy_prefix(from: &Path, to: &Path, through: u64) -> Result<(), LedgerError> {
    let old = Store::open(from)?;
    let new = Store::open(to)?;
    let mut pending: Vec<Sealed> = Vec::with_capacity(RESTORE_FRAME_RECORDS);
    let mut failed = None;
    old.scan(1, |seq, bytes| {
        if seq > through {
            return false;
        }
        let Some(hash) = checkpoint::record_hash(bytes) else {
            failed = Some(LedgerError::Corrupt { seq, what: "a stored record without a hash".into() });
            return false;
        };
        pending.push(Sealed { seq, hash, bytes: bytes.to_vec() });
        if pending.len() == RESTORE_FRAME_RECORDS {
            if let Err(e) = new.commit(&pending) {
                failed = Some(e);
                return false;
            }
            pending.clear();
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    new.commit(&pending)?;
    if new.head() != through {
        return Err(LedgerError::Corrupt {
            seq: new.head() + 1,
            what: format!("{} holds fewer than {through} records", from.display()),
        });
    }
    Ok(())
}

/// Copies the ledger's checkpoint key into `dir` (mode 0600) and loads it from there.
fn install_key(path: &Path, dir: &Path) -> Result<LedgerKey, RestoreError> {
    LedgerKey::install(path, dir).map_err(|e| RestoreError::Key { path: path.to_path_buf(), what: e.to_string() })
}

fn sync_dir(dir: &Path) -> Result<(), RestoreError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))
}
