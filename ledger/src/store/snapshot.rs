//! Snapshots of the derived state, so opening a ledger replays only the log's tail.
//!
//! A snapshot is the state encoded as JSON, split into chunks of [`CHUNK_BYTES`] (kept small
//! for the same blob reason as frames), written with its manifest in one atomic batch. It is
//! only an accelerator: the log is the truth. On open, a snapshot whose digest or head hash
//! does not match the log is ignored and the state is replayed from the start.

use super::Store;
use crate::canonical::{self, Hash};
use crate::domain::state::{EventEntry, FigureKey, Head, LotState, State};
use crate::domain::timeline::Timeline;
use crate::domain::{EventId, Facility, KeyEntry, Party, PositionKey};
use crate::error::LedgerError;
use serde::{Deserialize, Serialize};

/// Snapshot chunk size, in bytes: well below sled's blob threshold (see `SEGMENT_BYTES`).
pub const CHUNK_BYTES: usize = 32 << 10;

const MANIFEST: &[u8] = b"manifest";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot digest does not match its chunks")]
    Digest,
    #[error("snapshot does not decode: {0}")]
    Decode(String),
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    seq: u64,
    chunks: u32,
    bytes: u64,
    #[serde(with = "canonical::hex_hash")]
    sha256: Hash,
}

/// A position, its timeline's turnover and its non-zero net changes `(instant ns, grams)`.
type EncodedTimeline = (PositionKey, u64, Vec<(i64, i64)>);

/// The state in a stable, serializable shape (maps with composite keys become sorted lists).
/// Every field is required: a snapshot written before a field existed does not decode, and
/// opening then replays from the start, which is always correct.
#[derive(Serialize, Deserialize)]
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
    events: Vec<(EventId, EventEntry)>,
}

fn encode(state: &State) -> Vec<u8> {
    let mut lots: Vec<LotState> = state.lots.values().cloned().collect();
    lots.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
    let mut positions: Vec<(PositionKey, u64)> = state.positions.iter().map(|(k, v)| (k.clone(), *v)).collect();
    positions.sort();
    let mut timelines: Vec<EncodedTimeline> =
        state.timelines.iter().map(|(k, t)| (k.clone(), t.turnover(), t.entries().collect())).collect();
    timelines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut events: Vec<(EventId, EventEntry)> = state.events.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    events.sort_by_key(|(_, e)| e.seq);
    let encoded = Encoded {
        head: state.head.clone(),
        ledger: state.ledger.clone(),
        rules: state.rules,
        parties: state.parties.values().cloned().collect(),
        facilities: state.facilities.values().cloned().collect(),
        keys: state.keys.values().cloned().collect(),
        figures: state.figures.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        lots,
        positions,
        timelines,
        events,
    };
    serde_json::to_vec(&encoded).expect("state encodes")
}

fn decode(bytes: &[u8]) -> Result<State, SnapshotError> {
    let e: Encoded = serde_json::from_slice(bytes).map_err(|e| SnapshotError::Decode(e.to_string()))?;
    Ok(State {
        head: e.head,
        ledger: e.ledger,
        rules: e.rules,
        parties: e.parties.into_iter().map(|p| (p.id.clone(), p)).collect(),
        facilities: e.facilities.into_iter().map(|f| (f.id.clone(), f)).collect(),
        keys: e.keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        figures: e.figures.into_iter().collect(),
        lots: e.lots.into_iter().map(|l| (l.spec.id.clone(), l)).collect(),
        positions: e.positions.into_iter().collect(),
        timelines: e
            .timelines
            .into_iter()
            .map(|(k, turnover, entries)| {
                Timeline::from_parts(turnover, &entries)
                    .map(|t| (k, t))
                    .map_err(|e| SnapshotError::Decode(e.to_string()))
            })
            .collect::<Result<_, _>>()?,
        events: e.events.into_iter().collect(),
    })
}

fn chunk_key(seq: u64, index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(13);
    key.extend_from_slice(b"c");
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&index.to_be_bytes());
    key
}

impl Store {
    /// Writes a snapshot of `state` (at `state.head.seq`) and drops the previous one.
    pub fn save_snapshot(&self, state: &State) -> Result<(), LedgerError> {
        let bytes = encode(state);
        let seq = state.head.seq;
        let previous: Vec<sled::IVec> = self.snapshots.iter().keys().collect::<Result<_, _>>()?;
        let mut batch = sled::Batch::default();
        for key in previous {
            batch.remove(key);
        }
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            batch.insert(chunk_key(seq, i as u32), *chunk);
        }
        let manifest =
            Manifest { seq, chunks: chunks.len() as u32, bytes: bytes.len() as u64, sha256: canonical::sha256(&bytes) };
        batch.insert(MANIFEST, serde_json::to_vec(&manifest).expect("manifest encodes"));
        self.snapshots.apply_batch(batch)?;
        self.sync()
    }

    /// The latest snapshot, if one exists and is intact. `Ok(None)` also when it is damaged:
    /// the caller then replays from the start, which is always correct.
    pub fn load_snapshot(&self) -> Result<Option<State>, LedgerError> {
        let Some(raw) = self.snapshots.get(MANIFEST)? else { return Ok(None) };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&raw) else { return Ok(None) };
        let mut bytes = Vec::with_capacity(manifest.bytes as usize);
        for i in 0..manifest.chunks {
            match self.snapshots.get(chunk_key(manifest.seq, i))? {
                Some(chunk) => bytes.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
        if canonical::sha256(&bytes) != manifest.sha256 {
            tracing::warn!(seq = manifest.seq, "snapshot digest mismatch; replaying from the start");
            return Ok(None);
        }
        match decode(&bytes) {
            Ok(state) if state.head.seq == manifest.seq => Ok(Some(state)),
            Ok(_) | Err(_) => {
                tracing::warn!(seq = manifest.seq, "snapshot does not decode; replaying from the start");
                Ok(None)
            }
        }
    }
}
