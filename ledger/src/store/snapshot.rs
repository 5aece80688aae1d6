//! Snapshots of the derived state, so opening a ledger replays only the log's tail.
//!
//! A snapshot is the state encoded as JSON in a file of its own, `state.snapshot`: a
//! 48-byte header (magic, body length, SHA-256 of the body), then the body. It is written
//! streaming to `state.snapshot.tmp` (never whole in memory), synced, and renamed over the
//! previous one; read streaming too, the digest checked as it is read. Not in sled: sled
//! 0.34 keeps every page it writes in memory (see the store's documentation), so every
//! snapshot written used to stay resident. It is only an accelerator: the log is the
//! truth. On open, a snapshot whose digest or head hash does not match the log is ignored
//! and the state is replayed from the start (as is one in the sled tree of older releases).

use super::Store;
use crate::canonical::Hash;
use crate::domain::state::{FigureKey, Head, LotState, State};
use crate::domain::timeline::Timeline;
use crate::domain::timelines::Timelines;
use crate::domain::{EventId, EventIndex, Facility, KeyEntry, Party, PositionKey};
use crate::error::LedgerError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The snapshot file, in the store's directory.
pub const SNAPSHOT_FILE: &str = "state.snapshot";
const SNAPSHOT_TMP: &str = "state.snapshot.tmp";
const MAGIC: &[u8; 8] = b"stksnap2";
const HEADER_BYTES: usize = 48;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot digest does not match its body")]
    Digest,
    #[error("snapshot does not decode: {0}")]
    Decode(String),
}

/// A position, its timeline's turnover and its non-zero net changes `(instant ns, grams)`.
type EncodedTimeline = (PositionKey, u64, Vec<(i64, i64)>);

/// The state in a stable, serializable shape (maps with composite keys become sorted lists).
/// Every field is required: a snapshot written before a field existed does not decode, and
/// opening then replays from the start, which is always correct.
#[derive(Deserialize)]
struct Encoded {
    head: Head,
    ledger: Option<String>,
    rules: u32,
    parties: Vec<Party>,
    facilities: Vec<Facility>,
    keys: Vec<KeyEntry>,
    figures: Vec<(FigureKey, u64)>,
    lots: Vec<LotState>,
    positions: Vec<(PositionKey, u64)>,
    /// Each position's turnover and its non-zero net changes `(instant ns, grams)` in order.
    timelines: Vec<EncodedTimeline>,
    /// Bits of each event id's hash the index keeps (64 but in tests).
    event_hash_bits: u32,
    /// The event index: `(hash of the id, seq)` in seq order.
    events: Vec<(u64, u64)>,
    /// `(seq of a reversed event, id of its reversal)`, in seq order.
    reversals: Vec<(u64, EventId)>,
}

/// [`Encoded`] as written: borrowed from the state, so a snapshot never holds a second copy
/// of it (it used to, briefly doubling the process at every snapshot).
#[derive(Serialize)]
struct EncodedRef<'a> {
    head: &'a Head,
    ledger: &'a Option<String>,
    rules: u32,
    parties: Vec<&'a Party>,
    facilities: Vec<&'a Facility>,
    keys: Vec<&'a KeyEntry>,
    figures: Vec<(&'a FigureKey, u64)>,
    lots: Vec<&'a LotState>,
    positions: Positions<'a>,
    timelines: SortedTimelines<'a>,
    event_hash_bits: u32,
    events: Vec<(u64, u64)>,
    reversals: Vec<(u64, EventId)>,
}

/// The non-zero positions in key order, each key built as it is written.
struct Positions<'a>(&'a State);

impl Serialize for Positions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.positions_sorted())
    }
}

/// Every timeline in key order, `(position, turnover, changes)`, each key built as it is written.
struct SortedTimelines<'a>(&'a State);

impl Serialize for SortedTimelines<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.timelines.sorted().map(|(k, t)| (k, t.turnover(), Changes(t))))
    }
}

/// A timeline's non-zero net changes, written as they are walked.
struct Changes<'a>(&'a Timeline);

impl Serialize for Changes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.entries())
    }
}

fn encode(state: &State, out: impl Write) -> std::io::Result<()> {
    let mut lots: Vec<&LotState> = state.lots.values().collect();
    lots.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
    let encoded = EncodedRef {
        head: &state.head,
        ledger: &state.ledger,
        rules: state.rules,
        parties: state.parties.values().collect(),
        facilities: state.facilities.values().collect(),
        keys: state.keys.values().collect(),
        figures: state.figures.iter().map(|(k, v)| (k, *v)).collect(),
        lots,
        positions: Positions(state),
        timelines: SortedTimelines(state),
        event_hash_bits: state.events.hash_bits(),
        events: state.events.entries(),
        reversals: state.events.reversals(),
    };
    serde_json::to_writer(out, &encoded).map_err(|e| std::io::Error::other(e.to_string()))
}

fn decode(input: impl Read) -> Result<State, SnapshotError> {
    let e: Encoded = serde_json::from_reader(input).map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if !(1..=64).contains(&e.event_hash_bits) {
        return Err(SnapshotError::Decode(format!("event hash bits {}", e.event_hash_bits)));
    }
    let state = State {
        head: e.head,
        ledger: e.ledger,
        rules: e.rules,
        parties: e.parties.into_iter().map(|p| (p.id.clone(), p)).collect(),
        facilities: e.facilities.into_iter().map(|f| (f.id.clone(), f)).collect(),
        keys: e.keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        figures: e.figures.into_iter().collect(),
        lots: e.lots.into_iter().map(|l| (l.spec.id.clone(), l)).collect(),
        timelines: decode_timelines(e.timelines)?,
        events: EventIndex::from_parts(e.event_hash_bits, e.events, e.reversals),
    };
    // The balances are the timelines' totals; the list is kept in the file (its shape is the
    // one older releases wrote and read) and must agree with them.
    if !state.positions_sorted().eq(e.positions) {
        return Err(SnapshotError::Decode("positions disagree with the timelines".into()));
    }
    Ok(state)
}

/// The timelines as [`encode`] writes them, or an error for anything it never writes:
/// positions out of order or twice, changes out of order, a change of zero, a balance below
/// zero. A damaged or forged snapshot is then ignored (the log is replayed), not loaded
/// into a state that `apply` could never have made.
fn decode_timelines(encoded: Vec<EncodedTimeline>) -> Result<Timelines, SnapshotError> {
    let bad = |what: String| Err(SnapshotError::Decode(what));
    let mut timelines = Timelines::default();
    let mut last: Option<PositionKey> = None;
    for (key, turnover, entries) in encoded {
        if last.as_ref().is_some_and(|l| *l >= key) {
            return bad(format!("timelines out of order at {key}"));
        }
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) || entries.iter().any(|(_, d)| *d == 0) {
            return bad(format!("the changes of {key} are out of order or zero"));
        }
        let timeline = Timeline::from_parts(turnover, &entries).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        if timeline.total() < 0 {
            return bad(format!("{key} is below zero"));
        }
        timelines.insert(&key, timeline);
        last = Some(key);
    }
    Ok(timelines)
}

/// Writes what it is given to `inner` and hashes it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn write_file(state: &State, path: &Path) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(&[0u8; HEADER_BYTES])?;
    let mut out = Hashing { inner: BufWriter::with_capacity(1 << 20, file.try_clone()?), sha: Sha256::new(), bytes: 0 };
    encode(state, &mut out)?;
    out.flush()?;
    let (sha, bytes) = (out.sha.finalize(), out.bytes);
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&bytes.to_le_bytes());
    header.extend_from_slice(&sha);
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header)?;
    file.sync_data()
}

/// The state in the snapshot file at `path`: `Ok(None)` when there is none or it is damaged.
fn read_file(path: &Path) -> std::io::Result<Option<State>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = [0u8; HEADER_BYTES];
    if file.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
        return Ok(None);
    }
    let bytes = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let claimed: Hash = header[16..48].try_into().expect("32 bytes");
    if file.metadata()?.len() != HEADER_BYTES as u64 + bytes {
        return Ok(None);
    }
    let mut input =
        Hashing { inner: BufReader::with_capacity(1 << 20, file.take(bytes)), sha: Sha256::new(), bytes: 0 };
    let decoded = decode(&mut input);
    // Whatever the decoder left unread counts too: the digest covers the whole body.
    std::io::copy(&mut input, &mut std::io::sink())?;
    if <[u8; 32]>::from(input.sha.finalize()) != claimed {
        tracing::warn!(path = %path.display(), "{}; replaying from the start", SnapshotError::Digest);
        return Ok(None);
    }
    match decoded {
        Ok(state) => Ok(Some(state)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "replaying from the start");
            Ok(None)
        }
    }
}

impl Store {
    /// Writes a snapshot of `state` (at `state.head.seq`) in place of the previous one.
    pub fn save_snapshot(&self, state: &State) -> Result<(), LedgerError> {
        let (tmp, path) = (self.dir.join(SNAPSHOT_TMP), self.dir.join(SNAPSHOT_FILE));
        write_file(state, &tmp).map_err(|e| LedgerError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LedgerError::io("rename", &tmp, e))?;
        super::sync_dir(&self.dir)?;
        // Snapshots of older releases lived in sled: drop them once.
        if !self.snapshots.is_empty() {
            self.snapshots.clear()?;
            self.sync()?;
        }
        Ok(())
    }

    /// The latest snapshot, if one exists and is intact. `Ok(None)` also when it is damaged:
    /// the caller then replays from the start, which is always correct.
    pub fn load_snapshot(&self) -> Result<Option<State>, LedgerError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        read_file(&path).map_err(|e| LedgerError::io("read", &path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Location, Programme};

    fn key(lot: &str) -> PositionKey {
        PositionKey {
            party: crate::domain::PartyId::new("nl-covra"),
            lot: crate::domain::LotId::new(lot),
            location: Location::InTransit,
            programme: Programme::Eu,
        }
    }

    #[test]
    fn timelines_are_decoded_only_in_the_shape_encode_writes() {
        let good = vec![(key("a"), 15, vec![(1, 10), (2, -5)]), (key("b"), 3, vec![(7, 3)])];
        let decoded = decode_timelines(good.clone()).expect("as encode writes them");
        assert_eq!(decoded.get(&key("a")).map(Timeline::total), Some(5));
        let mut cases = Vec::new();
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        cases.push(("positions out of order", swapped));
        cases.push(("a position twice", vec![good[0].clone(), good[0].clone()]));
        cases.push(("changes out of order", vec![(key("a"), 15, vec![(2, -5), (1, 10)])]));
        cases.push(("an instant twice", vec![(key("a"), 15, vec![(1, 10), (1, -5)])]));
        cases.push(("a change of zero", vec![(key("a"), 10, vec![(1, 10), (2, 0)])]));
        cases.push(("below zero", vec![(key("a"), 15, vec![(1, -10), (2, 5)])]));
        cases.push(("turnover below the changes'", vec![(key("a"), 14, vec![(1, 10), (2, -5)])]));
        for (what, encoded) in cases {
            assert!(matches!(decode_timelines(encoded), Err(SnapshotError::Decode(_))), "{what} is refused");
        }
    }
}
