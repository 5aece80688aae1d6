//! Ordered record sources: where the records a projector folds come from.
//!
//! A source hands out *stored records* — the exact bytes `{"body":…,"hash":…}` the ledger
//! wrote — so the projector can check each hash itself and trusts no transport. Sources
//! need not be exactly-once or gap-free: the projector skips what it already folded and the
//! fold refuses a gap ([`crate::FoldError::Gap`]) rather than folding past it.
//!
//! - [`Source`]: a blocking source. [`LedgerSource`] reads a ledger's sled store in this
//!   process (the embedded mode); [`ExportSource`] reads an export file, one stored record
//!   per line, so an auditor can fold an export offline.
//! - [`AsyncSource`]: the same contract for sources that wait on the network (the JetStream
//!   consumer). The projector drives both with the same page-at-a-time ingest.

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use stockpile_ledger::record::RawRecord;
use stockpile_ledger::store::Store;
use stockpile_ledger::LedgerError;
use tokio::sync::watch;

/// Longest line of an export file, in bytes. A record is a signed command and its event,
/// a few KiB at most under the ledger's text limits; a longer line is not a record, and the
/// bound keeps a damaged file from exhausting memory.
pub const EXPORT_LINE_BYTES_MAX: usize = 1 << 20;

/// The stored bytes of one record, exactly as the ledger wrote them.
pub type StoredRecord = Vec<u8>;

/// Why a source could not hand out records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("reading the ledger's store: {0}")]
    Ledger(#[from] LedgerError),
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} line {line} is longer than {EXPORT_LINE_BYTES_MAX} bytes: not an export of stored records")]
    LineTooLong { path: PathBuf, line: u64 },
    #[error("{path} line {line} is not a stored record: {what}")]
    Malformed { path: PathBuf, line: u64, what: String },
}

/// An ordered source of stored records.
pub trait Source {
    /// Up to `max` records following record `after`, in sequence order. Empty when there is
    /// nothing newer (yet).
    fn fetch(&mut self, after: u64, max: usize) -> Result<Vec<StoredRecord>, SourceError>;
}

/// [`Source`] for sources that wait on I/O (JetStream).
pub trait AsyncSource {
    /// As [`Source::fetch`]; may wait for records to arrive, but returns what it has rather
    /// than waiting for a full page.
    fn fetch(&mut self, after: u64, max: usize) -> impl Future<Output = Result<Vec<StoredRecord>, SourceError>> + Send;
}

/// The log of a ledger in this process (or a ledger directory opened read-only by an
/// auditor), read from its sled store.
#[derive(Debug, Clone)]
pub struct LedgerSource {
    store: Store,
    /// The committed head, when following a running ledger: records past it are written
    /// but not yet durable and acknowledged, and must not be folded.
    head: Option<watch::Receiver<u64>>,
}

impl LedgerSource {
    /// Every record in the store. For a ledger that is not running, or an opened directory.
    pub fn new(store: Store) -> LedgerSource {
        LedgerSource { store, head: None }
    }

    /// The records of a running ledger, up to its committed head
    /// ([`stockpile_ledger::LedgerHandle::head`]).
    pub fn following(store: Store, head: watch::Receiver<u64>) -> LedgerSource {
        LedgerSource { store, head: Some(head) }
    }

    /// The committed head this source reads up to; `None`: the whole store.
    pub fn limit(&self) -> Option<u64> {
        self.head.as_ref().map(|h| *h.borrow())
    }

    pub fn head_watch(&self) -> Option<watch::Receiver<u64>> {
        self.head.clone()
    }
}

impl Source for LedgerSource {
    fn fetch(&mut self, after: u64, max: usize) -> Result<Vec<StoredRecord>, SourceError> {
        let limit = self.limit().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        if after >= limit || max == 0 {
            return Ok(out);
        }
        self.store.scan(after + 1, |seq, bytes| {
            if seq > limit {
                return false;
            }
            out.push(bytes.to_vec());
            out.len() < max
        })?;
        Ok(out)
    }
}

/// How a checkpoint line of an audit export begins.
const CHECKPOINT_PREFIX: &[u8] = b"{\"checkpoint\":";

/// An export file: JSON Lines, one stored record per line, in sequence order (the signed
/// checkpoints of an audit export between them are skipped: folding needs only records).
#[derive(Debug)]
pub struct ExportSource<R> {
    reader: R,
    path: PathBuf,
    /// Lines read so far (for error messages: the next line is `line + 1`).
    line: u64,
}

impl ExportSource<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Io { path: path.into(), source })?;
        Ok(ExportSource::new(BufReader::new(file), path))
    }
}

impl<R: BufRead> ExportSource<R> {
    /// `name` is how errors refer to the input.
    pub fn new(reader: R, name: impl Into<PathBuf>) -> Self {
        ExportSource { reader, path: name.into(), line: 0 }
    }

    /// The next line without its line ending; `None` at the end.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, SourceError> {
        let mut buf = Vec::new();
        let limit = EXPORT_LINE_BYTES_MAX as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|source| SourceError::Io { path: self.path.clone(), source })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if buf.len() > EXPORT_LINE_BYTES_MAX {
            return Err(SourceError::LineTooLong { path: self.path.clone(), line: self.line });
        }
        Ok(Some(buf))
    }

    /// The seq of a stored record, to skip what is already folded. Canonical bodies end with
    /// their `seq` (keys are sorted), which saves a JSON pass; anything else is parsed. A
    /// wrong answer could only skip or pass a record the fold then checks anyway.
    fn seq_of(&self, line: &[u8]) -> Result<u64, SourceError> {
        if let Some(seq) = sealed_seq(line) {
            return Ok(seq);
        }
        self.parse_seq(line)
    }

    fn parse_seq(&self, line: &[u8]) -> Result<u64, SourceError> {
        #[derive(serde::Deserialize)]
        struct Seq {
            seq: u64,
        }
        let malformed = |what: String| SourceError::Malformed { path: self.path.clone(), line: self.line, what };
        let raw: RawRecord<'_> = serde_json::from_slice(line).map_err(|e| malformed(e.to_string()))?;
        let seq: Seq = serde_json::from_str(raw.body.get()).map_err(|e| malformed(e.to_string()))?;
        Ok(seq.seq)
    }
}

impl<R: BufRead> Source for ExportSource<R> {
    fn fetch(&mut self, after: u64, max: usize) -> Result<Vec<StoredRecord>, SourceError> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(line) = self.next_line()? else { break };
            // Signed checkpoints sit between the records of an audit export.
            if line.starts_with(CHECKPOINT_PREFIX) {
                continue;
            }
            if self.seq_of(&line)? > after {
                out.push(line);
            }
        }
        Ok(out)
    }
}

/// The seq of a record in the ledger's sealed layout, read from the end of its body:
/// `…,"seq":123},"hash":"<64 hex>"}`.
fn sealed_seq(line: &[u8]) -> Option<u64> {
    const HASH_TAIL: usize = ",\"hash\":\"\"}".len() + 64;
    let body = line.get(..line.len().checked_sub(HASH_TAIL)?)?.strip_suffix(b"}")?;
    let digits = body.len() - body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (prefix, number) = body.split_at(digits);
    if !prefix.ends_with(b",\"seq\":") || number.is_empty() || number.len() > 20 {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}
