//! The binary form of a segment: the changes of consecutive records.
//!
//! Why not JSON: a million events make ~2 M postings and ~600 k new positions; as JSON they
//! were ~150 bytes a record (~300 MiB of sled on disk), and sled 0.34 keeps in memory every
//! page it reads, whatever its `cache_capacity` (sled issue #1036) — so what a reopen reads
//! must be small. Here a posting is ~12 bytes and a new position ~8: positions name their
//! party, lot and facility by registry index, integers are LEB128 varints (signed ones
//! zigzag-encoded). Registrations — rare — stay JSON inside the stream.
//!
//! Layout (all integers varints unless noted):
//!
//! ```text
//! segment  = first count hash(32 bytes) recorded_at record{count}
//! recorded_at = 0 | 1 secs(zigzag) nanos
//! record   = n change{n}
//! change   = 0 ledger-name(str) | 1 party(json) | 2 facility(json) | 3 lot(json) | 4 figure(json)
//!          | 5 party-index lot-index location programme(u8)
//!          | 6 position at-ns(zigzag) grams(zigzag) movement(u8)
//!          | 7 release-rules(json) | 8 withholding(json) | 9 release-reason(u8)
//! str/json = length bytes
//! ```
//!
//! A position's indexes are resolved against the registry as replayed up to its record, plus
//! the parties, facilities and lots registered earlier in the same record (an acquire creates
//! its lot and the position holding it together). Reading checks every length and index, so
//! a damaged segment is an error, never a panic or a huge allocation.

use crate::fold::Step;
use crate::views::{Change, Head, Movement, Registry};
use chrono::{DateTime, Utc};
use stockpile_ledger::domain::{
    Facility, FacilityId, Location, LotId, LotSpec, Party, PartyId, PositionKey, Programme, ReleaseReason,
};

/// Why bytes are not a segment (or changes cannot be written as one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

fn err<T>(what: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(what.into()))
}

const LEDGER: u8 = 0;
const PARTY: u8 = 1;
const FACILITY: u8 = 2;
const LOT: u8 = 3;
const FIGURE: u8 = 4;
const POSITION: u8 = 5;
const POST: u8 = 6;
const RULES: u8 = 7;
const WITHHOLDING: u8 = 8;
const REASON: u8 = 9;

const REASONS: [ReleaseReason; 6] = [
    ReleaseReason::EmergencyDrawdown,
    ReleaseReason::Sale,
    ReleaseReason::Rotation,
    ReleaseReason::Loan,
    ReleaseReason::Loss,
    ReleaseReason::Donation,
];

fn reason_code(r: ReleaseReason) -> u8 {
    match r {
        ReleaseReason::EmergencyDrawdown => 0,
        ReleaseReason::Sale => 1,
        ReleaseReason::Rotation => 2,
        ReleaseReason::Loan => 3,
        ReleaseReason::Loss => 4,
        ReleaseReason::Donation => 5,
    }
}

fn programme_code(p: Programme) -> u8 {
    match p {
        Programme::Eu => 0,
        Programme::Iea => 1,
        Programme::Nato => 2,
        Programme::National => 3,
    }
}

fn programme(code: u8) -> Result<Programme, CodecError> {
    Ok(match code {
        0 => Programme::Eu,
        1 => Programme::Iea,
        2 => Programme::Nato,
        3 => Programme::National,
        _ => return err(format!("unknown programme code {code}")),
    })
}

const MOVEMENTS: [Movement; 12] = [
    Movement::Acquire,
    Movement::Store,
    Movement::Transfer,
    Movement::Release,
    Movement::Convert,
    Movement::Adjust,
    Movement::ReverseAcquire,
    Movement::ReverseStore,
    Movement::ReverseTransfer,
    Movement::ReverseRelease,
    Movement::ReverseConvert,
    Movement::ReverseAdjust,
];

fn movement_code(m: Movement) -> u8 {
    match m {
        Movement::Acquire => 0,
        Movement::Store => 1,
        Movement::Transfer => 2,
        Movement::Release => 3,
        Movement::Convert => 4,
        Movement::Adjust => 5,
        Movement::ReverseAcquire => 6,
        Movement::ReverseStore => 7,
        Movement::ReverseTransfer => 8,
        Movement::ReverseRelease => 9,
        Movement::ReverseConvert => 10,
        Movement::ReverseAdjust => 11,
    }
}

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    fn json<T: serde::Serialize>(&mut self, value: &T) -> Result<(), CodecError> {
        let bytes = serde_json::to_vec(value).map_err(|e| CodecError(e.to_string()))?;
        self.bytes(&bytes);
        Ok(())
    }
}

/// Encodes consecutive steps. `registry` must know every party, lot and facility the steps'
/// positions name (it does: the steps were applied to it).
pub(crate) fn encode(registry: &Registry, steps: &[Step]) -> Result<Vec<u8>, CodecError> {
    let (Some(first), Some(last)) = (steps.first(), steps.last()) else { return err("an empty segment") };
    let mut w = Writer { buf: Vec::with_capacity(steps.len() * 32) };
    w.varint(first.seq);
    w.varint(steps.len() as u64);
    w.buf.extend_from_slice(&last.hash);
    w.u8(1);
    w.zigzag(last.recorded_at.timestamp());
    w.varint(u64::from(last.recorded_at.timestamp_subsec_nanos()));
    for step in steps {
        w.varint(step.changes.len() as u64);
        for change in &step.changes {
            encode_change(&mut w, registry, change)?;
        }
    }
    Ok(w.buf)
}

fn encode_change(w: &mut Writer, registry: &Registry, change: &Change) -> Result<(), CodecError> {
    match change {
        Change::Ledger(name) => {
            w.u8(LEDGER);
            w.bytes(name.as_bytes());
        }
        Change::Party(p) => {
            w.u8(PARTY);
            w.json(p)?;
        }
        Change::Facility(f) => {
            w.u8(FACILITY);
            w.json(f)?;
        }
        Change::Lot(l) => {
            w.u8(LOT);
            w.json(l)?;
        }
        Change::Figure(f) => {
            w.u8(FIGURE);
            w.json(f)?;
        }
        Change::Position(key) => {
            let missing = |what: &str, id: &str| CodecError(format!("position {key}: {what} {id} is not registered"));
            let party = registry.parties.get(&key.party).ok_or_else(|| missing("party", key.party.as_str()))?;
            let lot = registry.lots.get(&key.lot).ok_or_else(|| missing("lot", key.lot.as_str()))?;
            let location = match &key.location {
                Location::InTransit => 0,
                Location::Facility(f) => {
                    1 + registry.facilities.get(f).ok_or_else(|| missing("facility", f.as_str()))?
                }
            };
            w.u8(POSITION);
            w.varint(u64::from(party));
            w.varint(u64::from(lot));
            w.varint(u64::from(location));
            w.u8(programme_code(key.programme));
        }
        Change::Post(position, at, delta, movement) => {
            w.u8(POST);
            w.varint(u64::from(*position));
            w.zigzag(*at);
            w.zigzag(*delta);
            w.u8(movement_code(*movement));
        }
        Change::Rules(r) => {
            w.u8(RULES);
            w.json(r)?;
        }
        Change::Withholding(x) => {
            w.u8(WITHHOLDING);
            w.json(x)?;
        }
        Change::Reason(r) => {
            w.u8(REASON);
            w.u8(reason_code(*r));
        }
    }
    Ok(())
}

/// Reads a segment record by record; each record's positions resolve against the registry
/// as it stands after the records before it were applied.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    pub(crate) first: u64,
    pub(crate) count: u64,
    pub(crate) head: Head,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Result<Reader<'a>, CodecError> {
        let mut r = Reader { data, pos: 0, first: 0, count: 0, head: Head::default() };
        r.first = r.varint()?;
        r.count = r.varint()?;
        let last = r.count.checked_sub(1).and_then(|k| r.first.checked_add(k));
        let Some(last) = last else { return err("a segment of no records, or past the last seq") };
        let hash: [u8; 32] = r.take(32)?.try_into().map_err(|_| CodecError("short hash".into()))?;
        let recorded_at = match r.u8()? {
            0 => None,
            1 => {
                let secs = r.zigzag()?;
                let nanos = u32::try_from(r.varint()?).map_err(|_| CodecError("nanoseconds out of range".into()))?;
                Some(DateTime::<Utc>::from_timestamp(secs, nanos).ok_or_else(|| CodecError("bad recorded_at".into()))?)
            }
            b => return err(format!("bad recorded_at flag {b}")),
        };
        r.head = Head { seq: last, hash, recorded_at };
        Ok(r)
    }

    /// Whether every byte was read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else { return err("a segment ends early") };
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("a varint longer than 64 bits")
    }

    fn zigzag(&mut self) -> Result<i64, CodecError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        u32::try_from(self.varint()?).map_err(|_| CodecError("an index past 2^32".into()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = usize::try_from(self.varint()?).map_err(|_| CodecError("a length past memory".into()))?;
        self.take(n)
    }

    fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        serde_json::from_slice(self.bytes()?).map_err(|e| CodecError(e.to_string()))
    }

    /// The next record's changes.
    pub(crate) fn record(&mut self, registry: &Registry) -> Result<Vec<Change>, CodecError> {
        let n = self.varint()?;
        // Not `with_capacity(n)`: `n` is untrusted until the changes are read.
        let mut changes = Vec::new();
        for _ in 0..n {
            let change = match self.u8()? {
                LEDGER => {
                    let name = std::str::from_utf8(self.bytes()?).map_err(|e| CodecError(e.to_string()))?;
                    Change::Ledger(name.to_string())
                }
                PARTY => Change::Party(self.json::<Party>()?),
                FACILITY => Change::Facility(self.json::<Facility>()?),
                LOT => Change::Lot(self.json::<LotSpec>()?),
                FIGURE => Change::Figure(self.json()?),
                POSITION => Change::Position(self.position(registry, &changes)?),
                POST => {
                    let position = self.u32()?;
                    let at = self.zigzag()?;
                    let delta = self.zigzag()?;
                    let code = self.u8()?;
                    let movement = *MOVEMENTS
                        .get(usize::from(code))
                        .ok_or_else(|| CodecError(format!("unknown movement code {code}")))?;
                    Change::Post(position, at, delta, movement)
                }
                RULES => Change::Rules(self.json()?),
                WITHHOLDING => Change::Withholding(self.json()?),
                REASON => {
                    let code = self.u8()?;
                    let reason = *REASONS
                        .get(usize::from(code))
                        .ok_or_else(|| CodecError(format!("unknown release reason code {code}")))?;
                    Change::Reason(reason)
                }
                tag => return err(format!("unknown change tag {tag}")),
            };
            changes.push(change);
        }
        Ok(changes)
    }

    fn position(&mut self, registry: &Registry, earlier: &[Change]) -> Result<PositionKey, CodecError> {
        let (party, lot, location) = (self.u32()?, self.u32()?, self.u32()?);
        let programme = programme(self.u8()?)?;
        // An index past the registry names an entry registered earlier in this record.
        let pending = |len: usize, i: u32, what: &str| -> Result<usize, CodecError> {
            (i as usize).checked_sub(len).ok_or_else(|| CodecError(format!("no pending {what} {i}")))
        };
        let party = if (party as usize) < registry.parties.len() {
            registry.parties.key(party).clone()
        } else {
            let k = pending(registry.parties.len(), party, "party")?;
            let new: Vec<&PartyId> =
                earlier.iter().filter_map(|c| if let Change::Party(p) = c { Some(&p.id) } else { None }).collect();
            new.get(k).map(|p| (*p).clone()).ok_or_else(|| CodecError(format!("unknown party index {party}")))?
        };
        let lot = if (lot as usize) < registry.lots.len() {
            registry.lots.key(lot).clone()
        } else {
            let k = pending(registry.lots.len(), lot, "lot")?;
            let new: Vec<&LotId> =
                earlier.iter().filter_map(|c| if let Change::Lot(l) = c { Some(&l.id) } else { None }).collect();
            new.get(k).map(|l| (*l).clone()).ok_or_else(|| CodecError(format!("unknown lot index {lot}")))?
        };
        let location = match location {
            0 => Location::InTransit,
            l if ((l - 1) as usize) < registry.facilities.len() => {
                Location::Facility(registry.facilities.key(l - 1).clone())
            }
            l => {
                let k = pending(registry.facilities.len(), l - 1, "facility")?;
                let new: Vec<&FacilityId> = earlier
                    .iter()
                    .filter_map(|c| if let Change::Facility(f) = c { Some(&f.id) } else { None })
                    .collect();
                let id = new.get(k).ok_or_else(|| CodecError(format!("unknown facility index {}", l - 1)))?;
                Location::Facility((*id).clone())
            }
        };
        Ok(PositionKey { party, lot, location, programme })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let mut w = Writer { buf: Vec::new() };
        let unsigned = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let signed = [0, 1, -1, 63, -64, i64::MAX, i64::MIN];
        for v in unsigned {
            w.varint(v);
        }
        for v in signed {
            w.zigzag(v);
        }
        let mut r = Reader { data: &w.buf, pos: 0, first: 0, count: 0, head: Head::default() };
        for v in unsigned {
            assert_eq!(r.varint(), Ok(v));
        }
        for v in signed {
            assert_eq!(r.zigzag(), Ok(v));
        }
        assert!(r.at_end());
        assert!(r.varint().is_err(), "reading past the end is an error");
        let mut too_long = Reader { data: &[0xff; 11], pos: 0, first: 0, count: 0, head: Head::default() };
        assert!(too_long.varint().is_err());
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let registry = Registry::default();
        for data in [&[][..], &[1, 1], &[1, 0], &[0, 1, 0], &[1, 1, 0, 0, 0]] {
            let r = Reader::new(data);
            if let Ok(mut r) = r {
                let _ = r.record(&registry);
            }
        }
        // a record claiming 2^60 changes in a few bytes
        let mut w = Writer { buf: Vec::new() };
        w.varint(1);
        w.varint(1);
        w.buf.extend_from_slice(&[0; 32]);
        w.u8(0);
        w.varint(1 << 60);
        w.u8(POST);
        let mut r = Reader::new(&w.buf).unwrap();
        assert!(r.record(&registry).is_err());
    }
}
