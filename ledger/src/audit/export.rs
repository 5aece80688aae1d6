//! The export: the log as JSON Lines, as an auditor receives it.
//!
//! Every line is one of
//! - a stored record, byte for byte as the ledger wrote it: `{"body":{…},"hash":"…"}`;
//! - a signed checkpoint, `{"checkpoint":{…}}`, right after the record whose seq is its
//!   tree size.
//!
//! Records come in seq order from 1, so the file is the log itself: the key registry's
//! history (every `register_key` and `revoke_key`) is in it, and anyone can fold it. An
//! export ends with a checkpoint over all its records (the CLI creates one on demand), so
//! dropping records at the end is as detectable as anywhere else.

use super::checkpoint::{self, Checkpoint};
use crate::error::LedgerError;
use crate::store::Store;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// Longest line an export may hold. A record is a signed command and its event, a few KiB
/// under the ledger's text limits; a longer line is not a record, and the bound keeps a
/// damaged file from exhausting memory.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// A record line's usual size, to size read buffers.
const LINE_BYTES_TYPICAL: usize = 2 << 10;

/// Lines handed to a verifier or writer at once.
pub const CHUNK_LINES: usize = 4096;

/// Where export lines come from: a ledger's store, or an export file.
pub trait Lines: Send + Sync {
    /// Up to `max` next lines (without their `\n`); empty at the end.
    fn next_chunk(&mut self, max: usize) -> Result<Vec<Vec<u8>>, LinesError>;
    /// The stored bytes of record `seq`, already handed out (reversals look back).
    fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, LinesError>;
}

/// Why lines could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LinesError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} line {line} is longer than {LINE_BYTES_MAX} bytes: not an export")]
    LineTooLong { path: PathBuf, line: u64 },
    #[error("{path} ends in the middle of line {line} (no final newline): the file is truncated")]
    Truncated { path: PathBuf, line: u64 },
    #[error("reading the log over NATS: {0}")]
    Remote(String),
}

/// The lines of a ledger's store: records `1..=up_to`, each stored checkpoint after the
/// record it covers.
pub struct StoreLines {
    store: Store,
    next: u64,
    up_to: u64,
    checkpoints: VecDeque<Checkpoint>,
}

impl StoreLines {
    pub fn new(store: Store, up_to: u64) -> Result<StoreLines, LedgerError> {
        let checkpoints = checkpoint::stored(&store, up_to)?.into();
        Ok(StoreLines { store, next: 1, up_to, checkpoints })
    }
}

impl Lines for StoreLines {
    fn next_chunk(&mut self, max: usize) -> Result<Vec<Vec<u8>>, LinesError> {
        let mut out = Vec::new();
        if self.next > self.up_to {
            return Ok(out);
        }
        let (up_to, checkpoints, next) = (self.up_to, &mut self.checkpoints, &mut self.next);
        self.store.scan(*next, |seq, bytes| {
            if seq > up_to {
                return false;
            }
            out.push(bytes.to_vec());
            *next = seq + 1;
            while checkpoints.front().is_some_and(|c| c.tree_size <= seq) {
                let c = checkpoints.pop_front().expect("front exists");
                out.push(c.to_line());
            }
            out.len() < max
        })?;
        if out.is_empty() {
            // The log ends before `up_to`: stop rather than loop.
            self.next = self.up_to + 1;
        }
        Ok(out)
    }

    fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, LinesError> {
        Ok(self.store.record(seq)?)
    }
}

/// The lines of an export file. Remembers where each record line starts, so reversals can
/// look back without holding the log in memory.
pub struct FileLines {
    path: PathBuf,
    reader: BufReader<File>,
    file: File,
    /// Offset and length of every record line read so far (record lines start `{"body":`).
    records: Vec<(u64, u32)>,
    offset: u64,
    line: u64,
    /// An error met after some lines of a chunk: returned by the next call, so the lines
    /// before it are verified first and the report names the right seq.
    pending: Option<LinesError>,
    /// The last line had no final newline: handed out, then reported as truncation.
    truncated: bool,
}

impl FileLines {
    pub fn open(path: &Path) -> Result<FileLines, LinesError> {
        let io = |source| LinesError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        let reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io)?);
        Ok(FileLines {
            path: path.to_path_buf(),
            reader,
            file,
            records: Vec::new(),
            offset: 0,
            line: 0,
            pending: None,
            truncated: false,
        })
    }

    fn next_line(&mut self) -> Result<Option<Vec<u8>>, LinesError> {
        // Records are 1–2 KiB: start there rather than growing through several copies.
        let mut buf = Vec::with_capacity(LINE_BYTES_TYPICAL);
        let n = (&mut self.reader)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| LinesError::Io { path: self.path.clone(), source })?;
        if n == 0 {
            if self.truncated {
                return Err(LinesError::Truncated { path: self.path.clone(), line: self.line });
            }
            return Ok(None);
        }
        self.line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if n > LINE_BYTES_MAX {
            return Err(LinesError::LineTooLong { path: self.path.clone(), line: self.line });
        } else {
            self.truncated = true;
        }
        if buf.starts_with(RECORD_PREFIX) {
            self.records.push((self.offset, buf.len() as u32));
        }
        self.offset += n as u64;
        Ok(Some(buf))
    }
}

/// How every stored record line begins.
pub const RECORD_PREFIX: &[u8] = b"{\"body\":";

impl Lines for FileLines {
    fn next_chunk(&mut self, max: usize) -> Result<Vec<Vec<u8>>, LinesError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut out = Vec::new();
        while out.len() < max {
            match self.next_line() {
                Ok(Some(line)) => out.push(line),
                Ok(None) => break,
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
        Ok(out)
    }

    fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, LinesError> {
        let Some(&(offset, len)) = seq.checked_sub(1).and_then(|i| self.records.get(i as usize)) else {
            return Ok(None);
        };
        let mut buf = vec![0; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|source| LinesError::Io { path: self.path.clone(), source })?;
        Ok(Some(buf))
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub records: u64,
    pub checkpoints: u64,
}

/// Writes every line of `lines` to `out`, one per line; `progress` gets the records so far.
pub fn write_all(
    lines: &mut dyn Lines,
    out: &mut dyn std::io::Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Exported, ExportError> {
    let mut done = Exported { records: 0, checkpoints: 0 };
    loop {
        let chunk = lines.next_chunk(CHUNK_LINES)?;
        if chunk.is_empty() {
            out.flush().map_err(ExportError::Write)?;
            return Ok(done);
        }
        for line in chunk {
            if line.starts_with(RECORD_PREFIX) {
                done.records += 1;
            } else {
                done.checkpoints += 1;
            }
            out.write_all(&line).and_then(|_| out.write_all(b"\n")).map_err(ExportError::Write)?;
        }
        progress(done.records);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] LinesError),
    #[error("writing the export: {0}")]
    Write(std::io::Error),
}
