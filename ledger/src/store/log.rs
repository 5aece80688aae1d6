//! The record log: an append-only file of checksummed frames, one frame per commit.
//!
//! Why a file of our own and not a sled tree: sled 0.34 keeps every page it has written in
//! memory (its LRU never sees the leaves of an append-only tree again, sled issue #1036), so a
//! log kept in sled grows the ledger process by the size of the log. Here the kernel's page
//! cache, which it gives back under pressure, is the only cache of the records.
//!
//! `records.log` is [`MAGIC`] followed by frames. A frame is
//! `first_seq: u64 LE | len: u32 LE | crc: u32 LE | payload`: the payload is the stored bytes
//! of consecutive records joined by `\n` (canonical JSON holds no raw newline), and the
//! CRC-32 covers `first_seq`, `len` and the payload. [`Log::append`] writes one commit as one
//! frame with one positional write and returns only after `fdatasync`, so readers (who see
//! only what is synced) never read a record that could still be lost, and after a crash a
//! commit's frame is either whole or it is the torn tail of the file.
//!
//! Recovery ([`Log::open`]): frames are read from the last trusted index entry to the end.
//! The first frame that does not check out ends the log if it can only be the commit that
//! was being written: the file ends inside its header, its header says it runs to or past the
//! end of the file, or its header (or everything from it on) is zeros — what some file
//! systems show of an extending write after power loss — and no whole frame continuing the
//! log follows it. Those bytes are copied to `records.log.torn-at-<offset>` (synced, never
//! overwritten or deleted) and the file is cut there. Any other bad frame is damage inside
//! the log: opening refuses with [`LedgerError::Corrupt`] and changes nothing. A damaged last
//! frame whose header still reaches the end of the file cannot be told from a torn write.
//! Opening ends with `fdatasync`: a frame whose write the process died in before syncing may
//! be whole in the page cache, and readers must not see it before it is durable.
//!
//! `records.idx` is a sparse index: `(first_seq: u64 LE, offset: u64 LE)` of the first frame
//! starting in each [`INDEX_STRIDE_BYTES`] of the log, so reading from any seq starts at most
//! a stride (plus one frame) before it. It is written after its frame is durable and never
//! synced: opening checks it against the log and rebuilds what it lacks.

use crate::error::LedgerError;
use crate::record::Sealed;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// The first bytes of `records.log`: the format and its version.
pub const MAGIC: &[u8; 8] = b"STKLOG\x00\x01";
/// The record log's file name in the data directory.
pub const LOG_FILE: &str = "records.log";
/// The sparse index's file name in the data directory.
pub const INDEX_FILE: &str = "records.idx";
/// One index entry per this many bytes of log (at most): 16 bytes of memory per 64 KiB.
pub const INDEX_STRIDE_BYTES: u64 = 64 << 10;
/// Bytes read per system call when walking frames: a reader starts with one index stride
/// (enough to find a single record) and doubles up to this for long scans.
pub const READ_CHUNK_BYTES: usize = 1 << 20;

const HEADER_BYTES: usize = 16;
const ENTRY_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexEntry {
    first_seq: u64,
    offset: u64,
}

/// What readers may see: everything up to `end` is durable.
#[derive(Debug)]
struct Tail {
    /// Length of the synced log, in bytes.
    end: u64,
    /// The seq the next appended record must have.
    next_seq: u64,
    /// Offset of the last frame, if any.
    last_frame: Option<u64>,
    index: Vec<IndexEntry>,
}

impl Tail {
    /// The index entry to start reading from to find `seq`.
    fn start_for(&self, seq: u64) -> u64 {
        let at = self.index.partition_point(|e| e.first_seq <= seq);
        if at == 0 {
            MAGIC.len() as u64
        } else {
            self.index[at - 1].offset
        }
    }

    /// Records a frame at `offset` in the index if it is the first in its stride.
    fn note_frame(&mut self, first_seq: u64, offset: u64) -> Option<IndexEntry> {
        let new_stride = match self.index.last() {
            None => true,
            Some(last) => offset / INDEX_STRIDE_BYTES > last.offset / INDEX_STRIDE_BYTES,
        };
        let entry = IndexEntry { first_seq, offset };
        new_stride.then(|| {
            self.index.push(entry);
            entry
        })
    }
}

/// The record log of one data directory. Appends are serialized; reads run concurrently with
/// them and with each other.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: File,
    tail: RwLock<Tail>,
    /// The index file; its lock also serializes appends.
    index_file: Mutex<File>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, cutting a torn tail off (see the module doc).
    pub fn open(dir: &Path) -> Result<Log, LedgerError> {
        let path = dir.join(LOG_FILE);
        let io = |op, e| LedgerError::io(op, &path, e);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open", e))?;
        if never_held_a_record(&file).map_err(|e| io("read", e))? {
            file.write_all_at(MAGIC, 0).and_then(|()| file.sync_data()).map_err(|e| io("initialize", e))?;
            super::sync_dir(dir)?;
        }
        let mut magic = [0u8; 8];
        if file.read_exact_at(&mut magic, 0).is_err() || &magic != MAGIC {
            return Err(LedgerError::Unusable {
                path: path.clone(),
                what: "it does not start with the stockpile record log's magic bytes: it is not a record log of this version".into(),
            });
        }
        let index_path = dir.join(INDEX_FILE);
        let index_file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&index_path)
            .map_err(|e| LedgerError::io("open", &index_path, e))?;
        let tail = recover(&path, &file, read_index(&index_file))?;
        let log = Log { path, file, tail: RwLock::new(tail), index_file: Mutex::new(index_file) };
        log.rewrite_index()?;
        Ok(log)
    }

    /// Rewrites the index file from the index in memory.
    fn rewrite_index(&self) -> Result<(), LedgerError> {
        let bytes: Vec<u8> = self.tail().index.iter().flat_map(|e| encode_entry(*e)).collect();
        let file = self.index_file.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path.with_file_name(INDEX_FILE);
        file.set_len(0).and_then(|()| file.write_all_at(&bytes, 0)).map_err(|e| LedgerError::io("write", path, e))
    }

    fn tail(&self) -> std::sync::RwLockReadGuard<'_, Tail> {
        self.tail.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The seq of the last record, 0 for an empty log.
    pub fn head(&self) -> u64 {
        self.tail().next_seq - 1
    }

    /// Appends `records` (consecutive, continuing the log) as one frame and makes it durable.
    pub fn append(&self, records: &[Sealed]) -> Result<(), LedgerError> {
        let Some(first) = records.first() else { return Ok(()) };
        let index_file = self.index_file.lock().unwrap_or_else(|p| p.into_inner());
        let (end, next_seq) = {
            let tail = self.tail();
            (tail.end, tail.next_seq)
        };
        if let Some((i, r)) = records.iter().enumerate().find(|(i, r)| r.seq != next_seq + *i as u64) {
            return Err(LedgerError::Corrupt {
                seq: r.seq,
                what: format!("append out of order: expected seq {}", next_seq + i as u64),
            });
        }
        if let Some(r) = records.iter().find(|r| r.bytes.is_empty() || memchr::memchr(b'\n', &r.bytes).is_some()) {
            return Err(LedgerError::Corrupt {
                seq: r.seq,
                what: "a record to append is empty or holds a raw newline; canonical JSON never does".into(),
            });
        }
        let frame = encode_frame(first.seq, records.iter().map(|r| r.bytes.as_slice()))
            .ok_or_else(|| LedgerError::Corrupt { seq: first.seq, what: "a commit larger than 4 GiB".into() })?;
        if let Err(e) = self.file.write_all_at(&frame, end).and_then(|()| self.file.sync_data()) {
            // Whatever reached the file past `end` is not acknowledged: cut it off (best effort:
            // after a failed fsync the cut may not last either). A frame that survives is a
            // commit its clients were told failed; the next open replays it, and a resend gets
            // its seq from idempotency. The error stops the writer.
            let _ = self.file.set_len(end).and_then(|()| self.file.sync_data());
            return Err(LedgerError::io("append to", &self.path, e));
        }
        let new_entry = {
            let mut tail = self.tail.write().unwrap_or_else(|p| p.into_inner());
            tail.end = end + frame.len() as u64;
            tail.next_seq = next_seq + records.len() as u64;
            tail.last_frame = Some(end);
            let count = tail.index.len();
            tail.note_frame(first.seq, end).map(|e| (e, count))
        };
        if let Some((entry, position)) = new_entry {
            // Not synced and not trusted: a failure here only costs a longer walk at the next open.
            if let Err(e) = index_file.write_all_at(&encode_entry(entry), (position * ENTRY_BYTES) as u64) {
                tracing::warn!(error = %e, "could not extend the record log's index; it is rebuilt at the next open");
            }
        }
        Ok(())
    }

    /// Calls `visit(seq, bytes)` for every durable record from `from` on, in order, until it
    /// returns false.
    pub fn scan(&self, from: u64, mut visit: impl FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError> {
        let mut frames = self.frames_from(from);
        while let Some((first, payload)) = frames.next_frame()? {
            for (seq, line) in frame_records(first, payload) {
                if seq >= from && !visit(seq, line) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// A reader of every durable frame from the one holding `from` on.
    pub fn frames_from(&self, from: u64) -> Frames<'_> {
        let tail = self.tail();
        let pos = tail.start_for(from);
        Frames::new(self, pos, tail.end)
    }

    /// The stored bytes of the last record and its seq.
    pub fn last_record(&self) -> Result<Option<(u64, Vec<u8>)>, LedgerError> {
        let (offset, end) = {
            let tail = self.tail();
            match tail.last_frame {
                Some(offset) => (offset, tail.end),
                None => return Ok(None),
            }
        };
        let mut frames = Frames::new(self, offset, end);
        let Some((first, payload)) = frames.next_frame()? else { return Ok(None) };
        let newlines = memchr::memchr_iter(b'\n', payload).count() as u64;
        let last = memchr::memrchr(b'\n', payload).map_or(payload, |i| &payload[i + 1..]);
        Ok(Some((first + newlines, last.to_vec())))
    }
}

/// Reads frames in order from a position, checking each one's CRC and that it continues the
/// one before.
pub struct Frames<'a> {
    log: &'a Log,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    expected: Option<u64>,
    /// Bytes the next read asks for at least.
    chunk: usize,
}

impl Frames<'_> {
    fn new(log: &Log, pos: u64, end: u64) -> Frames<'_> {
        Frames { log, pos, end, buf: Vec::new(), buf_start: pos, expected: None, chunk: INDEX_STRIDE_BYTES as usize }
    }

    /// The next frame as (first seq, payload), or `None` at the end of the durable log.
    pub fn next_frame(&mut self) -> Result<Option<(u64, &[u8])>, LedgerError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let corrupt = |seq, what: String| LedgerError::Corrupt { seq, what };
        let header = self.fill(HEADER_BYTES)?;
        let (first_seq, len, crc) = decode_header(header);
        let seq = self.expected.unwrap_or(first_seq);
        if self.expected.is_some_and(|e| e != first_seq) {
            return Err(corrupt(seq, format!("frame at byte {} starts at seq {first_seq}", self.pos)));
        }
        if len == 0 || self.pos + (HEADER_BYTES + len) as u64 > self.end {
            return Err(corrupt(seq, format!("frame at byte {} has an impossible length {len}", self.pos)));
        }
        let at = self.pos;
        let frame = self.fill(HEADER_BYTES + len)?;
        let Some(count) = records_in(first_seq, &frame[HEADER_BYTES..], crc) else {
            return Err(corrupt(seq, format!("frame at byte {at} fails its checksum")));
        };
        let next = first_seq
            .checked_add(count)
            .ok_or_else(|| corrupt(seq, format!("frame at byte {at} runs past the largest seq")))?;
        self.expected = Some(next);
        self.pos += (HEADER_BYTES + len) as u64;
        let start = (at - self.buf_start) as usize + HEADER_BYTES;
        Ok(Some((first_seq, &self.buf[start..start + len])))
    }

    /// The `n` bytes at `pos`, reading ahead in chunks; `n` must not pass `end`.
    fn fill(&mut self, n: usize) -> Result<&[u8], LedgerError> {
        let have = (self.buf_start + self.buf.len() as u64).saturating_sub(self.pos);
        if have < n as u64 {
            let want = n.max(self.chunk).min((self.end - self.pos) as usize);
            self.chunk = (self.chunk * 2).min(READ_CHUNK_BYTES);
            if want < n {
                return Err(LedgerError::Corrupt {
                    seq: self.expected.unwrap_or(0),
                    what: format!("the log ends inside the frame at byte {}", self.pos),
                });
            }
            self.buf.resize(want, 0);
            self.log
                .file
                .read_exact_at(&mut self.buf, self.pos)
                .map_err(|e| LedgerError::io("read", &self.log.path, e))?;
            self.buf_start = self.pos;
        }
        let start = (self.pos - self.buf_start) as usize;
        Ok(&self.buf[start..start + n])
    }
}

/// Whether the file is empty or holds only part of [`MAGIC`] (or zeros where it should be):
/// creating it was cut short, no frame fits, and it is (re)initialized.
fn never_held_a_record(file: &File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len > MAGIC.len() as u64 {
        return Ok(false);
    }
    let mut start = vec![0u8; len as usize];
    file.read_exact_at(&mut start, 0)?;
    Ok(MAGIC.starts_with(&start) || start.iter().all(|b| *b == 0))
}

/// Finds the end of the log from the index on, cutting a torn tail off.
fn recover(path: &Path, file: &File, mut index: Vec<IndexEntry>) -> Result<Tail, LedgerError> {
    let io = |op, e| LedgerError::io(op, path, e);
    let len = file.metadata().map_err(|e| io("stat", e))?.len();
    // Every entry must name a frame header with its seq, or readers could start past the seq
    // they look for: from the first that does not, the index is rebuilt by the walk.
    if let Some(bad) = index
        .iter()
        .position(|e| !(e.offset < len && matches!(read_header(file, e.offset), Ok((seq, _, _)) if seq == e.first_seq)))
    {
        index.truncate(bad);
    }
    // Start at the last index entry whose frame checks out; the entries after it are dropped
    // and the walk adds them again.
    let mut start = (MAGIC.len() as u64, 1u64);
    while let Some(entry) = index.pop() {
        if entry.offset < len
            && matches!(frame_at(file, entry.offset, len), Ok(Some(f)) if f.first_seq == entry.first_seq)
        {
            start = (entry.offset, entry.first_seq);
            break;
        }
    }
    let mut tail = Tail { end: start.0, next_seq: start.1, last_frame: None, index };
    let (mut pos, mut expected) = start;
    while pos < len {
        match frame_at(file, pos, len).map_err(|e| io("read", e))? {
            Some(f) if f.first_seq == expected && expected.checked_add(f.records).is_some() => {
                tail.note_frame(f.first_seq, pos);
                tail.last_frame = Some(pos);
                pos += f.bytes;
                expected += f.records;
            }
            _ => {
                cut_torn_tail(path, file, pos, len, expected)?;
                break;
            }
        }
    }
    // A frame whose write was never synced (the process died before `fdatasync` returned) can
    // still sit whole in the page cache: sync before anyone reads it as durable.
    file.sync_data().map_err(|e| io("fdatasync", e))?;
    tail.end = pos.min(len);
    tail.next_seq = expected;
    Ok(tail)
}

/// Handles the bad frame at `pos`: if no whole frame continuing the log follows it, it is the
/// torn tail of an unacknowledged commit and is moved aside; otherwise the log is damaged
/// inside and nothing is changed (see the module doc).
fn cut_torn_tail(path: &Path, file: &File, pos: u64, len: u64, seq: u64) -> Result<(), LedgerError> {
    let io = |op, e| LedgerError::io(op, path, e);
    if !may_be_torn(file, pos, len).map_err(|e| io("read", e))? {
        return Err(LedgerError::Corrupt {
            seq,
            what: format!(
                "{}: the frame at byte {pos} does not check out and its header says it ends before the end of the file; this is damage inside the log, not a torn write, and nothing was changed",
                path.display()
            ),
        });
    }
    if let Some(next) = frame_after(file, pos, len, seq).map_err(|e| io("read", e))? {
        return Err(LedgerError::Corrupt {
            seq,
            what: format!(
                "{}: the frame at byte {pos} does not check out but a whole frame follows at byte {next}; this is damage inside the log, not a torn write, and nothing was changed",
                path.display()
            ),
        });
    }
    let aside = (0..)
        .map(|n| match n {
            0 => path.with_file_name(format!("{LOG_FILE}.torn-at-{pos}")),
            n => path.with_file_name(format!("{LOG_FILE}.torn-at-{pos}.{n}")),
        })
        .find(|p| !p.exists())
        .expect("some name is free");
    copy_range(file, pos, len, &aside).map_err(|e| LedgerError::io("write", &aside, e))?;
    // The copy's directory entry is durable before the cut is.
    if let Some(dir) = path.parent() {
        super::sync_dir(dir)?;
    }
    file.set_len(pos).and_then(|()| file.sync_data()).map_err(|e| io("truncate", e))?;
    tracing::warn!(
        bytes = len - pos,
        offset = pos,
        moved_to = %aside.display(),
        "the record log ended in a torn write (a commit that was never acknowledged); moved it aside"
    );
    Ok(())
}

/// Whether the bad frame at `pos` can be the commit that was being written: the file ends
/// inside its header, its header says it runs to or past the end of the file, or its header
/// (or everything from it on) is zeros — what a file system shows of blocks of an extending
/// write that never reached the disk.
fn may_be_torn(file: &File, pos: u64, len: u64) -> std::io::Result<bool> {
    if len - pos < HEADER_BYTES as u64 {
        return Ok(true);
    }
    let mut header = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut header, pos)?;
    let (_, frame_len, _) = decode_header(&header);
    if pos + (HEADER_BYTES + frame_len) as u64 >= len || header.iter().all(|b| *b == 0) {
        return Ok(true);
    }
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut at = pos;
    while at < len {
        let n = (buf.len() as u64).min(len - at) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// The offset of the first whole frame after `pos` whose first seq is at least `seq`.
/// Nothing is ever written after an unacknowledged commit, so a torn tail holds none.
fn frame_after(file: &File, pos: u64, len: u64, seq: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut window = pos + 1;
    while window + HEADER_BYTES as u64 <= len {
        let n = (buf.len() as u64).min(len - window) as usize;
        file.read_exact_at(&mut buf[..n], window)?;
        for i in 0..=n - HEADER_BYTES {
            let at = window + i as u64;
            let (first_seq, frame_len, _) = decode_header(&buf[i..i + HEADER_BYTES]);
            // Cheap filters first: a plausible seq (each record takes more than a byte) and length.
            let plausible = first_seq >= seq
                && first_seq - seq <= at - pos
                && frame_len > 0
                && at + (HEADER_BYTES + frame_len) as u64 <= len;
            if plausible && frame_at(file, at, len)?.is_some_and(|f| f.first_seq == first_seq) {
                return Ok(Some(at));
            }
        }
        window += (n - HEADER_BYTES + 1) as u64;
    }
    Ok(None)
}

/// Copies bytes `from..to` of `file` into a new, synced file at `dest`.
fn copy_range(file: &File, from: u64, to: u64, dest: &Path) -> std::io::Result<()> {
    let out = File::options().write(true).create_new(true).open(dest)?;
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut at = from;
    while at < to {
        let n = (buf.len() as u64).min(to - at) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        out.write_all_at(&buf[..n], at - from)?;
        at += n as u64;
    }
    out.sync_all()
}

fn read_header(file: &File, pos: u64) -> std::io::Result<(u64, usize, u32)> {
    let mut header = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut header, pos)?;
    Ok(decode_header(&header))
}

/// A whole frame found at some offset.
struct FoundFrame {
    first_seq: u64,
    records: u64,
    /// Header and payload.
    bytes: u64,
}

/// The frame at `pos` if it is whole and its CRC matches.
fn frame_at(file: &File, pos: u64, len: u64) -> std::io::Result<Option<FoundFrame>> {
    if len - pos < HEADER_BYTES as u64 {
        return Ok(None);
    }
    let (first_seq, frame_len, crc) = read_header(file, pos)?;
    if frame_len == 0 || pos + (HEADER_BYTES + frame_len) as u64 > len {
        return Ok(None);
    }
    let mut payload = vec![0u8; frame_len];
    file.read_exact_at(&mut payload, pos + HEADER_BYTES as u64)?;
    Ok(records_in(first_seq, &payload, crc).map(|records| FoundFrame {
        first_seq,
        records,
        bytes: (HEADER_BYTES + frame_len) as u64,
    }))
}

fn decode_header(header: &[u8]) -> (u64, usize, u32) {
    let first_seq = u64::from_le_bytes(header[0..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    (first_seq, len, crc)
}

/// How many records a frame's payload holds, if it is not empty and its CRC matches.
/// The records of a frame's payload (joined by newlines), each with its seq, in order.
pub fn frame_records(first_seq: u64, payload: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut from = 0;
    let ends = memchr::memchr_iter(b'\n', payload).chain(std::iter::once(payload.len()));
    (first_seq..).zip(ends.map(move |end| {
        let record = &payload[from..end];
        from = end + 1;
        record
    }))
}

fn records_in(first_seq: u64, payload: &[u8], crc: u32) -> Option<u64> {
    (!payload.is_empty() && frame_crc(first_seq, payload) == crc)
        .then(|| memchr::memchr_iter(b'\n', payload).count() as u64 + 1)
}

fn frame_crc(first_seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&first_seq.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// A frame of `records` starting at `first_seq`, or `None` if it would pass 4 GiB.
fn encode_frame<'r>(first_seq: u64, records: impl Iterator<Item = &'r [u8]> + Clone) -> Option<Vec<u8>> {
    let payload_len = records.clone().map(|r| r.len() + 1).sum::<usize>().saturating_sub(1);
    let len = u32::try_from(payload_len).ok()?;
    let mut frame = Vec::with_capacity(HEADER_BYTES + payload_len);
    frame.extend_from_slice(&[0u8; HEADER_BYTES]);
    for (i, r) in records.enumerate() {
        if i > 0 {
            frame.push(b'\n');
        }
        frame.extend_from_slice(r);
    }
    let crc = frame_crc(first_seq, &frame[HEADER_BYTES..]);
    frame[0..8].copy_from_slice(&first_seq.to_le_bytes());
    frame[8..12].copy_from_slice(&len.to_le_bytes());
    frame[12..16].copy_from_slice(&crc.to_le_bytes());
    Some(frame)
}

fn encode_entry(e: IndexEntry) -> [u8; ENTRY_BYTES] {
    let mut out = [0u8; ENTRY_BYTES];
    out[..8].copy_from_slice(&e.first_seq.to_le_bytes());
    out[8..].copy_from_slice(&e.offset.to_le_bytes());
    out
}

/// The index file's entries, up to the first that does not follow the one before.
fn read_index(file: &File) -> Vec<IndexEntry> {
    let mut bytes = Vec::new();
    if std::io::Read::read_to_end(&mut &*file, &mut bytes).is_err() {
        return Vec::new();
    }
    let mut out: Vec<IndexEntry> = Vec::new();
    for chunk in bytes.chunks_exact(ENTRY_BYTES) {
        let e = IndexEntry {
            first_seq: u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes")),
            offset: u64::from_le_bytes(chunk[8..].try_into().expect("8 bytes")),
        };
        let follows = match out.last() {
            None => e.offset >= MAGIC.len() as u64 && e.first_seq >= 1,
            Some(last) => e.offset > last.offset && e.first_seq > last.first_seq,
        };
        if !follows {
            break;
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Appends `frames` commits of 1–12 records of 50–3,000 bytes each (no newlines); returns
    /// every record's bytes, index = seq - 1.
    fn fill(log: &Log, frames: usize, rng: &mut impl Rng, records: &mut Vec<Vec<u8>>) {
        for _ in 0..frames {
            let batch: Vec<Sealed> = (0..rng.gen_range(1..=12))
                .map(|i| {
                    let len = rng.gen_range(50..3_000);
                    let bytes: Vec<u8> = (0..len).map(|_| rng.gen_range(b' '..=b'~')).collect();
                    Sealed { seq: records.len() as u64 + 1 + i, hash: [0; 32], bytes }
                })
                .collect();
            log.append(&batch).expect("append");
            records.extend(batch.into_iter().map(|r| r.bytes));
        }
    }

    fn read_all(log: &Log, from: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        log.scan(from, |seq, bytes| {
            assert_eq!(seq, from + out.len() as u64, "scan yields consecutive seqs");
            out.push(bytes.to_vec());
            true
        })
        .expect("scan");
        out
    }

    fn check_reads(log: &Log, records: &[Vec<u8>], rng: &mut impl Rng) {
        assert_eq!(log.head(), records.len() as u64);
        assert_eq!(read_all(log, 1), records, "the whole log");
        for _ in 0..20 {
            let from = rng.gen_range(1..=records.len() as u64 + 1);
            assert_eq!(read_all(log, from), records[from as usize - 1..], "from seq {from}");
        }
        let last = log.last_record().expect("last record");
        assert_eq!(last, records.last().map(|r| (records.len() as u64, r.clone())));
    }

    fn setup(seed: u64) -> (tempfile::TempDir, rand_chacha::ChaCha8Rng, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut records = Vec::new();
        let log = Log::open(dir.path()).expect("open");
        fill(&log, 200, &mut rng, &mut records);
        check_reads(&log, &records, &mut rng);
        (dir, rng, records)
    }

    fn append_raw(dir: &Path, bytes: &[u8]) -> u64 {
        let path = dir.join(LOG_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = File::options().write(true).open(&path).unwrap();
        file.write_all_at(bytes, len).unwrap();
        len
    }

    #[test]
    fn reads_from_any_seq_before_and_after_reopening_with_or_without_the_index() {
        let (dir, mut rng, mut records) = setup(1);
        assert!(std::fs::metadata(dir.path().join(INDEX_FILE)).unwrap().len() >= 10 * ENTRY_BYTES as u64);
        let log = Log::open(dir.path()).expect("reopen");
        check_reads(&log, &records, &mut rng);
        fill(&log, 50, &mut rng, &mut records);
        drop(log);
        std::fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
        let log = Log::open(dir.path()).expect("reopen without an index");
        check_reads(&log, &records, &mut rng);
        drop(log);
        // An index that lies (entries pointing into the middle of frames) is not trusted.
        let lies: Vec<u8> =
            (1..50u64).flat_map(|i| encode_entry(IndexEntry { first_seq: i * 3, offset: i * 7_001 })).collect();
        std::fs::write(dir.path().join(INDEX_FILE), lies).unwrap();
        let log = Log::open(dir.path()).expect("reopen with a wrong index");
        check_reads(&log, &records, &mut rng);
        drop(log);
        // One wrong entry early in an otherwise right index (whose last entry checks out).
        let mut index = std::fs::read(dir.path().join(INDEX_FILE)).unwrap();
        assert!(index.len() >= 4 * ENTRY_BYTES);
        let entry = &mut index[ENTRY_BYTES..2 * ENTRY_BYTES];
        let claimed = u64::from_le_bytes(entry[..8].try_into().unwrap()) - 1;
        entry[..8].copy_from_slice(&claimed.to_le_bytes());
        std::fs::write(dir.path().join(INDEX_FILE), index).unwrap();
        let log = Log::open(dir.path()).expect("reopen with one wrong entry");
        // Trusted, the entry would start a read of seq `claimed` one frame too late.
        assert_eq!(read_all(&log, claimed), records[claimed as usize - 1..]);
        check_reads(&log, &records, &mut rng);
    }

    #[test]
    fn a_torn_tail_is_moved_aside_and_the_log_goes_on_from_the_last_whole_commit() {
        let (dir, mut rng, mut records) = setup(2);
        let whole =
            encode_frame(records.len() as u64 + 1, [b"{\"x\":1}".as_slice(), b"{\"y\":2}"].into_iter()).unwrap();
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let tears: Vec<(&str, Vec<u8>)> = vec![
            ("a header cut short", whole[..9].to_vec()),
            ("a payload cut short", whole[..whole.len() - 3].to_vec()),
            ("a whole frame failing its checksum", flipped),
            ("zeros after the end", vec![0u8; 8_192]),
            ("a frame of the wrong seq", encode_frame(7, [b"{}".as_slice()].into_iter()).unwrap()),
        ];
        for (what, torn) in tears {
            let at = append_raw(dir.path(), &torn);
            let log = Log::open(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
            check_reads(&log, &records, &mut rng);
            assert_eq!(std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(), at, "{what}: cut at the tear");
            let aside = std::fs::read(dir.path().join(format!("{LOG_FILE}.torn-at-{at}"))).unwrap();
            assert_eq!(aside, torn, "{what}: the torn bytes are kept aside");
            fill(&log, 3, &mut rng, &mut records);
            drop(log);
            check_reads(&Log::open(dir.path()).expect("reopen"), &records, &mut rng);
        }
    }

    #[test]
    fn damage_inside_the_log_is_refused_and_changes_nothing() {
        let (dir, _rng, _records) = setup(3);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        std::fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
        match Log::open(dir.path()) {
            Err(LedgerError::Corrupt { what, .. }) => assert!(what.contains("damage inside the log"), "{what}"),
            other => panic!("expected a corrupt log, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing changed");
        assert!(std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains("torn")));
    }

    #[test]
    fn a_bad_frame_with_data_after_it_is_damage_not_a_torn_write() {
        let (dir, _rng, records) = setup(4);
        let path = dir.path().join(LOG_FILE);
        let last = Log::open(dir.path()).unwrap().tail().last_frame.unwrap() as usize;
        let whole = std::fs::read(&path).unwrap();
        let torn_after = encode_frame(records.len() as u64 + 1, [b"{\"x\":1}".as_slice()].into_iter()).unwrap();
        let damages: Vec<(&str, Vec<u8>)> = vec![
            ("the last acknowledged frame's payload, then a torn commit", {
                let mut b = whole.clone();
                b[last + HEADER_BYTES + 5] ^= 1;
                b.extend_from_slice(&torn_after[..torn_after.len() - 2]);
                b
            }),
            ("a frame's length made shorter", {
                let mut b = whole.clone();
                b[last + 8] = b[last + 8].wrapping_sub(7);
                b
            }),
        ];
        for (what, bytes) in damages {
            std::fs::write(&path, &bytes).unwrap();
            match Log::open(dir.path()) {
                Err(LedgerError::Corrupt { .. }) => {}
                other => panic!("{what}: expected a corrupt log, got {other:?}"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}: nothing changed");
        }
    }

    #[test]
    fn a_tail_torn_twice_at_the_same_place_keeps_both_copies() {
        let (dir, _rng, _records) = setup(5);
        let first = append_raw(dir.path(), b"first tear");
        drop(Log::open(dir.path()).unwrap());
        let second = append_raw(dir.path(), b"second tear");
        drop(Log::open(dir.path()).unwrap());
        assert_eq!(first, second);
        let aside =
            |suffix: &str| std::fs::read(dir.path().join(format!("{LOG_FILE}.torn-at-{first}{suffix}"))).unwrap();
        assert_eq!(aside(""), b"first tear");
        assert_eq!(aside(".1"), b"second tear");
    }

    #[test]
    fn records_that_canonical_json_cannot_be_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        for bytes in [&b""[..], b"{\n}"] {
            let r = Sealed { seq: 1, hash: [0; 32], bytes: bytes.to_vec() };
            assert!(matches!(log.append(&[r]), Err(LedgerError::Corrupt { seq: 1, .. })), "{bytes:?}");
        }
        assert_eq!(log.head(), 0);
    }

    #[test]
    fn appends_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let r = |seq| Sealed { seq, hash: [0; 32], bytes: b"{}".to_vec() };
        assert!(matches!(log.append(&[r(2)]), Err(LedgerError::Corrupt { seq: 2, .. })));
        log.append(&[r(1), r(2)]).unwrap();
        assert!(matches!(log.append(&[r(3), r(5)]), Err(LedgerError::Corrupt { seq: 5, .. })));
        assert_eq!(log.head(), 2);
    }

    #[test]
    fn a_log_whose_creation_was_cut_short_starts_afresh() {
        for start in [&b""[..], b"STK", &MAGIC[..7], &[0u8; 8][..]] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(LOG_FILE), start).unwrap();
            let log = Log::open(dir.path()).unwrap_or_else(|e| panic!("{start:?}: {e}"));
            assert_eq!(log.head(), 0);
            log.append(&[Sealed { seq: 1, hash: [0; 32], bytes: b"{}".to_vec() }]).unwrap();
            drop(log);
            assert_eq!(Log::open(dir.path()).unwrap().head(), 1, "{start:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_record_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE), b"hello, world").unwrap();
        assert!(matches!(Log::open(dir.path()), Err(LedgerError::Unusable { .. })));
        assert_eq!(std::fs::read(dir.path().join(LOG_FILE)).unwrap(), b"hello, world");
    }
}
