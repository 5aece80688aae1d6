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
    /// The same lines as [`Lines::next_chunk`], as one buffer: what the chain check reads.
    /// A file hands out what it read without copying each line.
    fn next_block(&mut self, max: usize) -> Result<Block, LinesError> {
        let mut block = Block::default();
        for line in self.next_chunk(max)? {
            let start = block.bytes.len();
            block.bytes.extend_from_slice(&line);
            block.lines.push(start..block.bytes.len());
        }
        Ok(block)
    }
    /// Hands a block back once its lines are used, so its buffer can hold the next.
    fn give_back(&mut self, block: Block) {
        drop(block);
    }
}

/// Lines in one buffer: `bytes[lines[i]]` is line `i`, without its `\n`.
#[derive(Debug, Default)]
pub struct Block {
    pub bytes: Vec<u8>,
    pub lines: Vec<std::ops::Range<usize>>,
}

impl Block {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.lines.iter().map(|r| &self.bytes[r.clone()])
    }
}

/// Bytes a file block grows by per read; a block stops growing past [`BLOCK_BYTES`].
const BLOCK_READ_BYTES: usize = 1 << 20;
/// A file block is handed out once it holds this many bytes (or `max` lines).
const BLOCK_BYTES: usize = 8 << 20;

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
    /// The start of a line that the last block ended in the middle of.
    carry: Vec<u8>,
    /// A block handed back, whose buffers the next block reuses (no fresh pages to fault in).
    spare: Option<Block>,
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
            carry: Vec::new(),
            spare: None,
        })
    }

    fn next_line(&mut self) -> Result<Option<Vec<u8>>, LinesError> {
        debug_assert!(self.carry.is_empty(), "next_line after next_block");
        // Records are 1–2 KiB: start there rather than growing through several copies.
        let mut buf = Vec::with_capacity(LINE_BYTES_TYPICAL);
        // `read_until` with at most LINE_BYTES_MAX + 1 bytes, finding the newline with SIMD.
        let mut n = 0usize;
        while n <= LINE_BYTES_MAX {
            let available =
                self.reader.fill_buf().map_err(|source| LinesError::Io { path: self.path.clone(), source })?;
            if available.is_empty() {
                break;
            }
            let available = &available[..available.len().min(LINE_BYTES_MAX + 1 - n)];
            let (taken, newline) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            buf.extend_from_slice(&available[..taken]);
            self.reader.consume(taken);
            n += taken;
            if newline {
                break;
            }
        }
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

pub use crate::record::RECORD_PREFIX;

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

    fn next_block(&mut self, max: usize) -> Result<Block, LinesError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        debug_assert!(self.carry.is_empty() || self.reader.buffer().is_empty());
        let mut block = self.spare.take().unwrap_or_default();
        block.bytes.clear();
        block.lines.clear();
        block.bytes.extend_from_slice(&self.carry);
        self.carry.clear();
        // Whatever `next_line` left buffered comes first; then the file is read directly.
        let buffered = self.reader.buffer().len();
        block.bytes.extend_from_slice(self.reader.buffer());
        self.reader.consume(buffered);
        // `self.offset` is where `block.bytes[0]` sits in the file; `line_start` where the next line begins.
        let (mut line_start, mut scanned) = (0usize, 0usize);
        loop {
            while let Some(newline) = memchr::memchr(b'\n', &block.bytes[scanned..]) {
                let end = scanned + newline;
                scanned = end + 1;
                if end - line_start > LINE_BYTES_MAX {
                    let e = LinesError::LineTooLong { path: self.path.clone(), line: self.line + 1 };
                    return self.end_block(block, line_start, Some(e));
                }
                self.take_line(&mut block, line_start..end);
                line_start = end + 1;
                if block.lines.len() == max {
                    break;
                }
            }
            scanned = if block.lines.len() == max { line_start } else { block.bytes.len() };
            if block.lines.len() == max || (block.bytes.len() >= BLOCK_BYTES && !block.is_empty()) {
                break;
            }
            if block.bytes.len() - line_start > LINE_BYTES_MAX {
                let e = LinesError::LineTooLong { path: self.path.clone(), line: self.line + 1 };
                return self.end_block(block, line_start, Some(e));
            }
            let have = block.bytes.len();
            // With room reserved, `read_to_end` reads straight into it (no probe, no zeroing).
            block.bytes.reserve(BLOCK_READ_BYTES);
            let n = match self.reader.get_mut().take(BLOCK_READ_BYTES as u64).read_to_end(&mut block.bytes) {
                Ok(n) => n,
                Err(source) => {
                    block.bytes.truncate(have);
                    let e = LinesError::Io { path: self.path.clone(), source };
                    return self.end_block(block, line_start, Some(e));
                }
            };
            if n == 0 {
                if self.truncated {
                    return self.end_block(
                        block,
                        line_start,
                        Some(LinesError::Truncated { path: self.path.clone(), line: self.line }),
                    );
                }
                if line_start < block.bytes.len() {
                    // A last line without its newline: handed out, then reported.
                    let end = block.bytes.len();
                    self.take_line(&mut block, line_start..end);
                    line_start = end;
                    self.truncated = true;
                }
                break;
            }
        }
        self.end_block(block, line_start, None)
    }

    fn give_back(&mut self, block: Block) {
        self.spare = Some(block);
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

impl FileLines {
    /// Counts line `range` of `block` and remembers it if it is a record.
    fn take_line(&mut self, block: &mut Block, range: std::ops::Range<usize>) {
        self.line += 1;
        let line = &block.bytes[range.clone()];
        if line.starts_with(RECORD_PREFIX) {
            self.records.push((self.offset + range.start as u64, line.len() as u32));
        }
        block.lines.push(range);
    }

    /// Keeps the bytes from `line_start` on for the next block, and hands out the block, or
    /// the error if there are no lines before it (else the error comes with the next call).
    fn end_block(
        &mut self,
        mut block: Block,
        line_start: usize,
        error: Option<LinesError>,
    ) -> Result<Block, LinesError> {
        self.carry.extend_from_slice(&block.bytes[line_start..]);
        block.bytes.truncate(line_start);
        self.offset += line_start as u64;
        match error {
            Some(e) if block.is_empty() => Err(e),
            Some(e) => {
                self.pending = Some(e);
                Ok(block)
            }
            None => Ok(block),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every line, the error that ended them, and the record offsets remembered.
    type Drained = (Vec<Vec<u8>>, Option<String>, Vec<(u64, u32)>);

    /// Every line and error, in order, as `next_chunk` or `next_block` hands them out.
    fn drain(path: &Path, max: usize, blocks: bool) -> Drained {
        let mut lines = FileLines::open(path).unwrap();
        let mut out = Vec::new();
        let error = loop {
            let got = if blocks {
                lines.next_block(max).map(|b| {
                    let v: Vec<Vec<u8>> = b.iter().map(<[u8]>::to_vec).collect();
                    lines.give_back(b);
                    v
                })
            } else {
                lines.next_chunk(max)
            };
            match got {
                Ok(v) if v.is_empty() => break None,
                Ok(v) => out.extend(v),
                Err(e) => break Some(e.to_string()),
            }
        };
        (out, error, lines.records)
    }

    #[test]
    fn blocks_hand_out_exactly_the_lines_and_errors_of_chunks() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut errors = Vec::new();
        for case in 0..40 {
            let mut bytes = Vec::new();
            for _ in 0..rng.gen_range(0..3_000) {
                let len = match rng.gen_range(0..100) {
                    0 => rng.gen_range(LINE_BYTES_MAX - 2..LINE_BYTES_MAX + 3),
                    1..=20 => 0,
                    _ => rng.gen_range(1..4_000),
                };
                if rng.gen_bool(0.7) && len >= RECORD_PREFIX.len() {
                    bytes.extend_from_slice(RECORD_PREFIX);
                    bytes.extend((RECORD_PREFIX.len()..len).map(|_| b'x'));
                } else {
                    bytes.extend((0..len).map(|_| b'y'));
                }
                bytes.push(b'\n');
            }
            if case % 3 == 0 {
                bytes.extend_from_slice(b"{\"body\":cut");
            }
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &bytes).unwrap();
            let max = [1, 7, CHUNK_LINES][case % 3];
            let (chunks, chunk_error, chunk_records) = drain(file.path(), max, false);
            let (blocks, block_error, block_records) = drain(file.path(), max, true);
            assert_eq!(blocks.len(), chunks.len(), "case {case}: line count");
            assert!(blocks == chunks, "case {case}: the same lines");
            assert_eq!(block_error, chunk_error, "case {case}: the same error");
            assert_eq!(block_records, chunk_records, "case {case}: the same record offsets");
            errors.extend(block_error);
        }
        assert!(errors.iter().any(|e| e.contains("longer than")), "some case has a line too long");
        assert!(errors.iter().any(|e| e.contains("truncated")), "some case ends mid-line");
    }
}
