//! Records: the unit of the log. A record wraps one decided command and chains to the
//! record before it.
//!
//! On the wire and on disk a record is `{"body":{…},"hash":"…"}` where `hash` is the SHA-256
//! of the canonical JSON of `body` (see [`crate::canonical`]), and `body.prev_hash` is the
//! previous record's `hash` (all zeros before the first record). Because the stored body
//! bytes are canonical, a verifier hashes them as they stand.

use crate::canonical::{self, hex_hash, Hash};
use crate::domain::{Country, Event, EventId, KeyId, MaterialId, PartyId};
use crate::signing::SignedCommand;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The `prev_hash` of the first record.
pub const GENESIS_PREV_HASH: Hash = [0; 32];

/// Who an event concerns: used to route it to subjects and partner feeds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Partners whose parties the event touches, sorted (a transfer concerns both sides).
    pub partners: Vec<Country>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<MaterialId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// Gap-free, from 1.
    pub seq: u64,
    pub event_id: EventId,
    /// The command's kind (`acquire`, `store`, …, `register_party`, `genesis`).
    pub kind: String,
    /// Business time, from the operator.
    pub occurred_at: DateTime<Utc>,
    /// Ledger time, non-decreasing along the log.
    pub recorded_at: DateTime<Utc>,
    pub key: KeyId,
    /// The party the signing key acts for; none for admin keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<PartyId>,
    pub scope: Scope,
    pub command: SignedCommand,
    /// SHA-256 of the canonical command: the idempotency fingerprint.
    #[serde(with = "hex_hash")]
    pub command_digest: Hash,
    pub event: Event,
    #[serde(with = "hex_hash")]
    pub prev_hash: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub body: RecordBody,
    #[serde(with = "hex_hash")]
    pub hash: Hash,
}

/// A record in its stored form: the exact bytes, and the hash they carry.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub seq: u64,
    pub hash: Hash,
    pub bytes: Vec<u8>,
}

impl RecordBody {
    /// Encodes and hashes the body into its stored form.
    pub fn seal(&self) -> Sealed {
        Self::sealed(self.seq, canonical::to_vec(self).expect("records hold no floats"))
    }

    /// [`RecordBody::seal`], given the canonical bytes of `self.command.command` (which the
    /// verifier already made to check the signature). The body is written field by field in
    /// sorted key order instead of through a generic JSON tree: most of a record is its
    /// command, and encoding it twice was the writer's largest cost. Debug builds check the
    /// result against the generic encoder.
    pub fn seal_with_command(&self, command_canonical: &[u8]) -> Sealed {
        let mut b: Vec<u8> = Vec::with_capacity(command_canonical.len() * 2 + 512);
        let s = |b: &mut Vec<u8>, v: &str| serde_json::to_writer(&mut *b, v).expect("string encodes");
        let c = |b: &mut Vec<u8>, v: &dyn erased::Canonical| b.extend_from_slice(&v.canonical());
        b.push(b'{');
        if let Some(actor) = &self.actor {
            b.extend_from_slice(b"\"actor\":");
            s(&mut b, actor.as_str());
            b.push(b',');
        }
        b.extend_from_slice(b"\"command\":{\"command\":");
        b.extend_from_slice(command_canonical);
        b.extend_from_slice(b",\"key\":");
        s(&mut b, self.command.key.as_str());
        b.extend_from_slice(b",\"public_key\":");
        s(&mut b, &self.command.public_key);
        b.extend_from_slice(b",\"signature\":");
        s(&mut b, &self.command.signature);
        b.extend_from_slice(b"},\"command_digest\":");
        s(&mut b, &canonical::hex(&self.command_digest));
        b.extend_from_slice(b",\"event\":");
        c(&mut b, &self.event);
        b.extend_from_slice(b",\"event_id\":");
        s(&mut b, self.event_id.as_str());
        b.extend_from_slice(b",\"key\":");
        s(&mut b, self.key.as_str());
        b.extend_from_slice(b",\"kind\":");
        s(&mut b, &self.kind);
        b.extend_from_slice(b",\"occurred_at\":");
        c(&mut b, &self.occurred_at);
        b.extend_from_slice(b",\"prev_hash\":");
        s(&mut b, &canonical::hex(&self.prev_hash));
        b.extend_from_slice(b",\"recorded_at\":");
        c(&mut b, &self.recorded_at);
        b.extend_from_slice(b",\"scope\":");
        c(&mut b, &self.scope);
        b.extend_from_slice(b",\"seq\":");
        b.extend_from_slice(self.seq.to_string().as_bytes());
        b.push(b'}');
        debug_assert_eq!(
            String::from_utf8_lossy(&b),
            String::from_utf8_lossy(&canonical::to_vec(self).expect("records hold no floats")),
            "hand-written record encoding drifted from canonical JSON"
        );
        Self::sealed(self.seq, b)
    }

    fn sealed(seq: u64, body: Vec<u8>) -> Sealed {
        let hash = canonical::sha256(&body);
        let mut bytes = Vec::with_capacity(body.len() + 84);
        bytes.extend_from_slice(b"{\"body\":");
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(b",\"hash\":\"");
        bytes.extend_from_slice(canonical::hex(&hash).as_bytes());
        bytes.extend_from_slice(b"\"}");
        Sealed { seq, hash, bytes }
    }
}

mod erased {
    /// Anything with a canonical encoding (a local trait so the writer above stays short).
    pub trait Canonical {
        fn canonical(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Canonical for T {
        fn canonical(&self) -> Vec<u8> {
            crate::canonical::to_vec(self).expect("records hold no floats")
        }
    }
}

/// What a verifier needs from a stored record without decoding all of it.
#[derive(Debug, Deserialize)]
pub struct RawRecord<'a> {
    #[serde(borrow)]
    pub body: &'a RawValue,
    pub hash: &'a str,
}

#[derive(Debug, Deserialize)]
struct ChainFields {
    seq: u64,
    #[serde(with = "hex_hash")]
    prev_hash: Hash,
}

/// The fields of a record body that replay folds; the rest (the signed command, scope, …)
/// is skipped by the decoder, which is most of the cost of decoding a record.
#[derive(Debug, Deserialize)]
pub struct ReplayBody {
    pub seq: u64,
    pub event_id: EventId,
    pub recorded_at: DateTime<Utc>,
    #[serde(with = "hex_hash")]
    pub command_digest: Hash,
    pub event: Event,
    #[serde(with = "hex_hash")]
    pub prev_hash: Hash,
}

/// Why stored bytes are not a valid record in the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("record is not valid JSON of the record shape: {0}")]
    Malformed(String),
    #[error("record hash does not match its body")]
    HashMismatch,
    #[error("expected seq {expected}, found {found}")]
    SeqGap { expected: u64, found: u64 },
    #[error("prev_hash does not match the hash of the record before")]
    PrevHashMismatch,
}

/// Checks one stored record against the chain so far: its hash covers its body, its seq
/// follows and its `prev_hash` names the previous record. Returns its seq and hash.
pub fn check_link(bytes: &[u8], expected_seq: u64, prev: &Hash) -> Result<(u64, Hash), ChainError> {
    let raw: RawRecord<'_> = serde_json::from_slice(bytes).map_err(|e| ChainError::Malformed(e.to_string()))?;
    let hash = canonical::sha256(raw.body.get().as_bytes());
    if canonical::parse_hex(raw.hash) != Some(hash) {
        return Err(ChainError::HashMismatch);
    }
    let fields: ChainFields = serde_json::from_str(raw.body.get()).map_err(|e| ChainError::Malformed(e.to_string()))?;
    if fields.seq != expected_seq {
        return Err(ChainError::SeqGap { expected: expected_seq, found: fields.seq });
    }
    if fields.prev_hash != *prev {
        return Err(ChainError::PrevHashMismatch);
    }
    Ok((fields.seq, hash))
}

/// Decodes a stored record.
pub fn decode(bytes: &[u8]) -> Result<Record, ChainError> {
    serde_json::from_slice(bytes).map_err(|e| ChainError::Malformed(e.to_string()))
}
