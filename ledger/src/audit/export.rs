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
use memmap2::Mmap;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::{Deref, Range};
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
        let bytes = block.bytes.owned();
        for line in self.next_chunk(max)? {
            let start = bytes.len();
            bytes.extend_from_slice(&line);
            block.lines.push(start..bytes.len());
        }
        Ok(block)
    }
    /// Hands a block back once its lines are used, so its buffer can hold the next.
    fn give_back(&mut self, block: Block) {
        drop(block);
    }
    /// From here on, blocks are read into buffers and never memory-mapped. Full verification
    /// (and the restore and replay built on it) asks for this: a read error or a file cut
    /// short while it is read is then a typed problem, not `SIGBUS`. Only the chain check
    /// takes the map's hazard (see [`FileLines`]). A no-op for inputs that are never mapped.
    fn read_blocks_unmapped(&mut self) {}
}

/// Lines in one buffer: `bytes[lines[i]]` is line `i`, without its `\n`.
#[derive(Debug, Default)]
pub struct Block {
    pub bytes: BlockBytes,
    pub lines: Vec<Range<usize>>,
}

impl Block {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.lines.iter().map(|r| &self.bytes[r.clone()])
    }
}

/// Where a block's lines are: bytes read into a buffer of its own, or a memory map of the
/// part of the export file the block spans (unmapped when the block is dropped), so that
/// the chain check hashes the page cache in place instead of copying the file first.
#[derive(Debug)]
pub enum BlockBytes {
    Owned(Vec<u8>),
    Mapped(Mmap),
}

impl Default for BlockBytes {
    fn default() -> BlockBytes {
        BlockBytes::Owned(Vec::new())
    }
}

impl Deref for BlockBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            BlockBytes::Owned(v) => v,
            BlockBytes::Mapped(m) => m,
        }
    }
}

impl BlockBytes {
    /// The buffer to read into: a mapped block's becomes an empty one of its own.
    pub fn owned(&mut self) -> &mut Vec<u8> {
        if let BlockBytes::Mapped(_) = self {
            *self = BlockBytes::default();
        }
        match self {
            BlockBytes::Owned(v) => v,
            BlockBytes::Mapped(_) => unreachable!("replaced above"),
        }
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
///
/// The chain check ([`Lines::next_block`]) maps a regular file into memory a block's window
/// at a time and hands out ranges of the map: no byte of the file is copied, the hashing
/// threads read the page cache itself (the read path's copy and its buffers' fresh pages
/// were about a fifth of the check's CPU; mapping and unmapping the pages costs less than half
/// that, measured in PERFORMANCE.md). A window is unmapped when its block, handed back, is
/// reused, so the process's resident memory stays a few windows, not the file. Anything
/// that cannot be mapped (a pipe, a FIFO, an empty file, a file system without `mmap`) is read into
/// blocks as before, with the same lines and errors.
///
/// A map has one hazard a read does not: if another process truncates the file while it is
/// verified, touching a page past the new end raises `SIGBUS` and the process dies. That
/// is accepted here: the file is the auditor's own copy of an export, and a file cut while
/// it is checked is a damaged input either way (read, it ends in `Truncated` or a failed
/// check): the process stops with a signal, never with a false "verified". Bytes changed
/// in place while mapped are seen as a read would see them, whichever page the read hit.
/// Mapped blocks end at the file's length when it was opened.
pub struct FileLines {
    path: PathBuf,
    reader: BufReader<File>,
    file: File,
    /// The file's length when opened, if it is a non-empty regular file: blocks are mapped
    /// (until a first map fails); `None`: they are read.
    map_len: Option<u64>,
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
    /// A block was handed out from the map: the reader's position is not the lines'.
    mapped_blocks: bool,
}

impl FileLines {
    pub fn open(path: &Path) -> Result<FileLines, LinesError> {
        let io = |source| LinesError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        let reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io)?);
        let meta = file.metadata().map_err(io)?;
        let map_len = (meta.is_file() && meta.len() > 0).then_some(meta.len());
        Ok(FileLines {
            path: path.to_path_buf(),
            reader,
            file,
            map_len,
            records: Vec::new(),
            offset: 0,
            line: 0,
            pending: None,
            truncated: false,
            carry: Vec::new(),
            spare: None,
            mapped_blocks: false,
        })
    }

    /// [`FileLines::open`] without the map: every block is read. For tests, which check
    /// that both ways hand out the same lines and errors.
    #[doc(hidden)]
    pub fn open_unmapped(path: &Path) -> Result<FileLines, LinesError> {
        let mut lines = FileLines::open(path)?;
        lines.map_len = None;
        Ok(lines)
    }

    fn next_line(&mut self) -> Result<Option<Vec<u8>>, LinesError> {
        debug_assert!(self.carry.is_empty(), "next_line after next_block");
        debug_assert!(!self.mapped_blocks, "next_line after a mapped next_block");
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
        if let Some(file_len) = self.map_len {
            return self.next_mapped_block(file_len, max);
        }
        debug_assert!(self.carry.is_empty() || self.reader.buffer().is_empty());
        let mut block = self.spare.take().unwrap_or_default();
        block.lines.clear();
        let bytes = block.bytes.owned();
        bytes.clear();
        bytes.extend_from_slice(&self.carry);
        self.carry.clear();
        // Whatever `next_line` left buffered comes first; then the file is read directly.
        let buffered = self.reader.buffer().len();
        bytes.extend_from_slice(self.reader.buffer());
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
            let bytes = block.bytes.owned();
            // With room reserved, `read_to_end` reads straight into it (no probe, no zeroing).
            bytes.reserve(BLOCK_READ_BYTES);
            let n = match self.reader.get_mut().take(BLOCK_READ_BYTES as u64).read_to_end(bytes) {
                Ok(n) => n,
                Err(source) => {
                    bytes.truncate(have);
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

    fn read_blocks_unmapped(&mut self) {
        // Once a block came from the map the reader's position is not the lines'; callers
        // ask before reading anything.
        debug_assert!(!self.mapped_blocks, "read_blocks_unmapped after a mapped block");
        if !self.mapped_blocks {
            self.map_len = None;
        }
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
    fn take_line(&mut self, block: &mut Block, range: Range<usize>) {
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
        block.bytes.owned().truncate(line_start);
        self.offset += line_start as u64;
        Self::hand_out(&mut self.pending, block, error)
    }

    /// The block, or the error if there are no lines before it (else the error comes with
    /// the next call).
    fn hand_out(
        pending: &mut Option<LinesError>,
        block: Block,
        error: Option<LinesError>,
    ) -> Result<Block, LinesError> {
        match error {
            Some(e) if block.is_empty() => Err(e),
            Some(e) => {
                *pending = Some(e);
                Ok(block)
            }
            None => Ok(block),
        }
    }

    /// [`Lines::next_block`] from a map of the file from `self.offset` on, the lines ranges
    /// of it, with exactly the read path's limits and errors (a line longer than
    /// [`LINE_BYTES_MAX`]; a last line without its newline handed out, then reported). If
    /// the first map fails, the file is read instead, from where it was.
    fn next_mapped_block(&mut self, file_len: u64, max: usize) -> Result<Block, LinesError> {
        let start = self.offset;
        let window = file_len.saturating_sub(start).min(MAP_WINDOW_BYTES as u64) as usize;
        let at_end = start + window as u64 >= file_len;
        let map = match map_window(&self.file, start, window) {
            Ok(map) => map,
            Err(_) if !self.mapped_blocks => {
                self.map_len = None;
                return self.next_block(max);
            }
            Err(source) => return Err(LinesError::Io { path: self.path.clone(), source }),
        };
        self.mapped_blocks = true;
        let mut block = self.spare.take().unwrap_or_default();
        block.lines.clear();
        // Dropping the block handed back unmaps its window.
        block.bytes = map.map_or_else(BlockBytes::default, BlockBytes::Mapped);
        let (mut line_start, mut error) = (0usize, None);
        while block.lines.len() < max && line_start < BLOCK_BYTES {
            // A line and its newline take at most LINE_BYTES_MAX + 1 bytes: look no further.
            let rest = &block.bytes[line_start..block.bytes.len().min(line_start + LINE_BYTES_MAX + 1)];
            let (newline, rest_len) = (memchr::memchr(b'\n', rest), rest.len());
            match newline {
                Some(newline) => {
                    self.take_line(&mut block, line_start..line_start + newline);
                    line_start += newline + 1;
                }
                None if rest_len > LINE_BYTES_MAX => {
                    error = Some(LinesError::LineTooLong { path: self.path.clone(), line: self.line + 1 });
                    break;
                }
                None => {
                    // A window not at the end holds LINE_BYTES_MAX + 1 bytes past BLOCK_BYTES.
                    debug_assert!(at_end, "a line cut by the window's end");
                    if rest_len > 0 {
                        // A last line without its newline: handed out, then reported.
                        let end = line_start + rest_len;
                        self.take_line(&mut block, line_start..end);
                        line_start = end;
                        self.truncated = true;
                    } else if self.truncated {
                        error = Some(LinesError::Truncated { path: self.path.clone(), line: self.line });
                    }
                    break;
                }
            }
        }
        self.offset += line_start as u64;
        Self::hand_out(&mut self.pending, block, error)
    }
}

/// Bytes of the file a mapped block may span: a block stops at the first line that ends
/// past [`BLOCK_BYTES`], and that line ends at most [`LINE_BYTES_MAX`] + 1 bytes further.
const MAP_WINDOW_BYTES: usize = BLOCK_BYTES + LINE_BYTES_MAX + 1;

/// `len` bytes of `file` from `offset`, mapped for reading; `None` for none.
fn map_window(file: &File, offset: u64, len: usize) -> std::io::Result<Option<Mmap>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the map is only read, through `&[u8]`. Another process truncating the file
    // while it is mapped makes reads past the new end raise SIGBUS: see [`FileLines`] for
    // why that is accepted. Writes in place are seen as a read would see them.
    let map = unsafe { memmap2::MmapOptions::new().offset(offset).len(len).map(file) }?;
    Ok(Some(map))
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

    /// How [`drain`] takes the lines.
    #[derive(Clone, Copy, Debug)]
    enum Way {
        Chunks,
        /// `next_block` of a file opened without its map: read into block buffers.
        ReadBlocks,
        /// `next_block` of a regular file: ranges of a map.
        MappedBlocks,
    }

    /// Every line and error, in order, as `next_chunk` or `next_block` hands them out.
    fn drain(path: &Path, max: usize, way: Way) -> Drained {
        let mut lines = match way {
            Way::ReadBlocks => FileLines::open_unmapped(path).unwrap(),
            Way::Chunks | Way::MappedBlocks => FileLines::open(path).unwrap(),
        };
        let mut out = Vec::new();
        let error = loop {
            let got = match way {
                Way::Chunks => lines.next_chunk(max),
                Way::ReadBlocks | Way::MappedBlocks => lines.next_block(max).map(|b| {
                    assert_eq!(
                        matches!(b.bytes, BlockBytes::Mapped(_)),
                        matches!(way, Way::MappedBlocks) && !b.is_empty()
                    );
                    let v: Vec<Vec<u8>> = b.iter().map(<[u8]>::to_vec).collect();
                    lines.give_back(b);
                    v
                }),
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
    fn blocks_read_or_mapped_hand_out_exactly_the_lines_and_errors_of_chunks() {
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
            let (chunks, chunk_error, chunk_records) = drain(file.path(), max, Way::Chunks);
            for way in [Way::ReadBlocks, Way::MappedBlocks] {
                let (blocks, block_error, block_records) = drain(file.path(), max, way);
                assert_eq!(blocks.len(), chunks.len(), "case {case}, {way:?}: line count");
                assert!(blocks == chunks, "case {case}, {way:?}: the same lines");
                assert_eq!(block_error, chunk_error, "case {case}, {way:?}: the same error");
                assert_eq!(block_records, chunk_records, "case {case}, {way:?}: the same record offsets");
                errors.extend(block_error);
            }
        }
        assert!(errors.iter().any(|e| e.contains("longer than")), "some case has a line too long");
        assert!(errors.iter().any(|e| e.contains("truncated")), "some case ends mid-line");
    }

    #[test]
    fn a_fifo_is_read_with_the_same_lines_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("export.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
        assert!(made.success());
        let bytes = b"{\"body\":1}\nnot a record\n{\"body\":cut".to_vec();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
        };
        let mut lines = FileLines::open(&fifo).unwrap();
        let block = lines.next_block(CHUNK_LINES).unwrap();
        assert!(matches!(block.bytes, BlockBytes::Owned(_)), "a FIFO cannot be mapped");
        let got: Vec<&[u8]> = block.iter().collect();
        assert_eq!(got, [&b"{\"body\":1}"[..], b"not a record", b"{\"body\":cut"]);
        lines.give_back(block);
        let end = lines.next_block(CHUNK_LINES).unwrap_err();
        assert!(matches!(end, LinesError::Truncated { line: 3, .. }), "{end}");
        writer.join().unwrap();
    }
}
