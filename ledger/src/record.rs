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
    #[serde(deserialize_with = "canonical::utc::deserialize")]
    pub occurred_at: DateTime<Utc>,
    /// Ledger time, non-decreasing along the log.
    #[serde(deserialize_with = "canonical::utc::deserialize")]
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
    /// Decoded by kind (`domain::tagged`), not through serde's buffer of the whole object.
    #[serde(deserialize_with = "crate::domain::tagged::by_kind")]
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
        let mut bytes = Vec::with_capacity(2048);
        bytes.extend_from_slice(RECORD_PREFIX);
        canonical::append(&mut bytes, self).expect("records hold no floats");
        Self::sealed(self.seq, bytes)
    }

    /// [`RecordBody::seal`], given the canonical bytes of `self.command.command` (which the
    /// verifier already made to check the signature). The body is written field by field in
    /// sorted key order instead of through a generic JSON tree: most of a record is its
    /// command, and encoding it twice was the writer's largest cost. Debug builds check the
    /// result against the generic encoder.
    pub fn seal_with_command(&self, command_canonical: &[u8]) -> Sealed {
        // The sealed record is written in one buffer: its prefix, the body, then the hash of
        // the body's bytes where they stand.
        let mut b: Vec<u8> = Vec::with_capacity(command_canonical.len() * 2 + 600);
        b.extend_from_slice(RECORD_PREFIX);
        let s = |b: &mut Vec<u8>, v: &str| serde_json::to_writer(&mut *b, v).expect("string encodes");
        let c = |b: &mut Vec<u8>, v: &dyn erased::Canonical| v.append_to(b);
        let h = |b: &mut Vec<u8>, v: &Hash| {
            b.push(b'"');
            canonical::append_hex(b, v);
            b.push(b'"');
        };
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
        h(&mut b, &self.command_digest);
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
        h(&mut b, &self.prev_hash);
        b.extend_from_slice(b",\"recorded_at\":");
        c(&mut b, &self.recorded_at);
        b.extend_from_slice(b",\"scope\":");
        c(&mut b, &self.scope);
        b.extend_from_slice(b",\"seq\":");
        b.extend_from_slice(itoa::Buffer::new().format(self.seq).as_bytes());
        b.push(b'}');
        let body = &b[RECORD_PREFIX.len()..];
        debug_assert_eq!(
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&canonical::to_vec(self).expect("records hold no floats")),
            "hand-written record encoding drifted from canonical JSON"
        );
        Self::sealed(self.seq, b)
    }

    /// Completes a sealed record from `bytes` = [`RECORD_PREFIX`] and the body: hashes the
    /// body where it stands and appends the hash.
    fn sealed(seq: u64, mut bytes: Vec<u8>) -> Sealed {
        let hash = canonical::sha256(&bytes[RECORD_PREFIX.len()..]);
        bytes.extend_from_slice(SEALED_HASH_KEY);
        canonical::append_hex(&mut bytes, &hash);
        bytes.extend_from_slice(b"\"}");
        Sealed { seq, hash, bytes }
    }
}

/// What follows the body in a sealed record ([`RECORD_PREFIX`], the body, this, the body's
/// SHA-256 in lower-case hex, `"}`).
const SEALED_HASH_KEY: &[u8] = b",\"hash\":\"";

mod erased {
    /// Anything with a canonical encoding (a local trait so the writer above stays short).
    pub trait Canonical {
        fn append_to(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize> Canonical for T {
        fn append_to(&self, out: &mut Vec<u8>) {
            crate::canonical::append(out, self).expect("records hold no floats")
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

/// The fields of a record body that replay and the projector's fold read; the rest (the
/// signed command, scope, …) is skipped by the decoder, which is most of the cost of
/// decoding a record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReplayBody {
    pub seq: u64,
    pub event_id: EventId,
    /// Business time: not folded by replay, but by the projector's views.
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    #[serde(with = "hex_hash")]
    pub command_digest: Hash,
    pub event: Event,
    #[serde(with = "hex_hash")]
    pub prev_hash: Hash,
}

impl ReplayBody {
    /// Decodes what replay folds from a record body: read straight off its canonical layout
    /// when it has it ([`ReplayBody::from_canonical`]), else as JSON.
    pub fn decode(body: &[u8]) -> Result<ReplayBody, serde_json::Error> {
        match ReplayBody::from_canonical(body) {
            Some(b) => Ok(b),
            None => serde_json::from_slice(body),
        }
    }

    /// The fields replay folds, without walking the signed command (two thirds of a record).
    /// A canonical body ends, keys sorted,
    /// `"command_digest":"HEX","event":{…},"event_id":"…","key":…,"seq":N}`. The text after
    /// the last `,"event_id":` must decode, as an object of its own, to exactly the body's
    /// last members (`event_id` … `seq`, each once, nothing else), so that `,"event_id":` is
    /// the body's own key and not one nested in a later member; the event is the one JSON
    /// value between it and the `"command_digest":"HEX","event":` before it. `None` when the
    /// body is not in this layout; the caller then decodes it whole.
    ///
    /// What comes before `command_digest` (the signed command) is not parsed: a body whose
    /// command is not JSON at all is folded here where the whole-body decoder would refuse
    /// it. Its hash still binds it; `audit verify` decodes and checks every byte.
    pub fn from_canonical(body: &[u8]) -> Option<ReplayBody> {
        use std::sync::LazyLock;
        const DIGEST_KEY: &[u8] = b"\"command_digest\":\"";
        const EVENT_KEY: &[u8] = b"\",\"event\":";
        const EVENT_END: &[u8] = b",\"event_id\":";
        static FINDERS: LazyLock<(LastMatch, LastMatch)> =
            LazyLock::new(|| (LastMatch::new(EVENT_END), LastMatch::new(DIGEST_KEY)));
        let event_end = FINDERS.0.rfind(body)?;
        let digest_at = FINDERS.1.rfind(&body[..event_end])? + DIGEST_KEY.len();
        let command_digest = canonical::parse_lower_hex(body.get(digest_at..digest_at + 64)?)?;
        let event_at = digest_at + 64 + EVENT_KEY.len();
        if body.get(digest_at + 64..event_at)? != EVENT_KEY {
            return None;
        }
        // The event and the members after it, checked to be UTF-8 once rather than string
        // by string as they are decoded.
        let rest = std::str::from_utf8(body.get(event_at..)?).ok()?;
        let event_len = event_end.checked_sub(event_at)?;
        let event = Event::from_json(rest.get(..event_len)?).ok()?;
        let members = rest.get(event_len + 1..)?;
        let tail = Tail::read(members).or_else(|| Tail::decode(members))?;
        Some(ReplayBody {
            seq: tail.seq,
            event_id: tail.event_id,
            occurred_at: tail.occurred_at,
            recorded_at: tail.recorded_at,
            command_digest,
            event,
            prev_hash: tail.prev_hash,
        })
    }
}

/// A canonical body's members after the event; the ones replay does not fold are checked to
/// be there (once) and skipped.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tail {
    event_id: EventId,
    key: serde::de::IgnoredAny,
    kind: serde::de::IgnoredAny,
    occurred_at: DateTime<Utc>,
    #[serde(with = "hex_hash")]
    prev_hash: Hash,
    recorded_at: DateTime<Utc>,
    scope: serde::de::IgnoredAny,
    seq: u64,
}

impl Tail {
    /// `members` (the text after the event's `,`) read by position, in their canonical order,
    /// each value checked as JSON: what [`Tail::decode`] reads from the same text, without
    /// building an object to hand to serde. `None` for any other spelling.
    fn read(members: &str) -> Option<Tail> {
        let mut m = Members { text: members, at: 0 };
        m.key("event_id")?;
        let event_id = EventId::new(m.plain_str()?);
        m.key(",key")?;
        m.value()?;
        m.key(",kind")?;
        m.value()?;
        m.key(",occurred_at")?;
        let occurred_at = canonical::parse_canonical_utc(m.plain_str()?)?;
        m.key(",prev_hash")?;
        let prev_hash = canonical::parse_lower_hex(m.plain_str()?.as_bytes())?;
        m.key(",recorded_at")?;
        let recorded_at = canonical::parse_canonical_utc(m.plain_str()?)?;
        m.key(",scope")?;
        m.value()?;
        m.key(",seq")?;
        let seq = m.uint()?;
        (m.text.get(m.at..)? == "}").then_some(Tail {
            event_id,
            key: serde::de::IgnoredAny,
            kind: serde::de::IgnoredAny,
            occurred_at,
            prev_hash,
            recorded_at,
            scope: serde::de::IgnoredAny,
            seq,
        })
    }

    /// `members` decoded as the JSON object they end: any order and spelling JSON allows.
    fn decode(members: &str) -> Option<Tail> {
        let mut object = String::with_capacity(members.len() + 1);
        object.push('{');
        object.push_str(members);
        serde_json::from_str(&object).ok()
    }
}

/// A cursor over canonical JSON members (`"key":value,…`), for reading a body's last members by
/// position. Each step either matches exactly or gives `None`.
struct Members<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Members<'a> {
    /// `"name":`, where a leading `,` in `name` is matched before the quote.
    fn key(&mut self, name: &str) -> Option<()> {
        let (comma, name) = match name.strip_prefix(',') {
            Some(name) => (",", name),
            None => ("", name),
        };
        let rest = self.text.get(self.at..)?.strip_prefix(comma)?.strip_prefix('"')?.strip_prefix(name)?;
        rest.strip_prefix("\":")?;
        self.at += comma.len() + name.len() + 3;
        Some(())
    }

    /// A string with no escape and no control character, as it stands.
    fn plain_str(&mut self) -> Option<&'a str> {
        let rest = self.text.get(self.at..)?.strip_prefix('"')?;
        let end = memchr::memchr2(b'"', b'\\', rest.as_bytes())?;
        let text = &rest[..end];
        if rest.as_bytes()[end] != b'"' || text.bytes().any(|b| b < 0x20) {
            return None;
        }
        self.at += end + 2;
        Some(text)
    }

    /// Any one JSON value, checked and skipped: a plain string here, anything else by serde_json.
    fn value(&mut self) -> Option<()> {
        if self.plain_str().is_some() {
            return Some(());
        }
        let mut values =
            serde_json::Deserializer::from_str(self.text.get(self.at..)?).into_iter::<serde::de::IgnoredAny>();
        values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(())
    }

    /// A JSON number that is a u64: digits, no leading zero, no fraction, no overflow.
    fn uint(&mut self) -> Option<u64> {
        let rest = self.text.get(self.at..)?.as_bytes();
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let n = canonical::parse_canonical_u64(&rest[..len])?;
        self.at += len;
        Some(n)
    }
}

/// A searcher for the last occurrence of a key near the end of a record body: forward (SIMD)
/// in the last 512 bytes, where a body's last keys sit, and only if none is there, backward
/// (byte by byte, several times slower) through the rest. Built once per key: building a
/// searcher costs more than searching the few hundred bytes it scans.
struct LastMatch {
    forward: memchr::memmem::Finder<'static>,
    backward: memchr::memmem::FinderRev<'static>,
}

impl LastMatch {
    const WINDOW: usize = 512;

    fn new(needle: &'static [u8]) -> LastMatch {
        LastMatch { forward: memchr::memmem::Finder::new(needle), backward: memchr::memmem::FinderRev::new(needle) }
    }

    fn rfind(&self, hay: &[u8]) -> Option<usize> {
        let start = hay.len().saturating_sub(Self::WINDOW);
        if let Some(i) = self.forward.find_iter(&hay[start..]).last() {
            return Some(start + i);
        }
        let straddling = (start + self.forward.needle().len()).saturating_sub(1).min(hay.len());
        (start > 0).then(|| self.backward.rfind(&hay[..straddling])).flatten()
    }
}

/// `seq` and `prev_hash` read straight off the end of a canonical record body, without
/// decoding the rest: its keys are sorted, so it ends
/// `…,"prev_hash":"HEX","recorded_at":"…","scope":{…},"seq":N}` and nothing after
/// `prev_hash` can hold an unescaped quote that would fake the key. `None` when the body is
/// not in that layout; the caller then decodes it as JSON. The chain check reads no other
/// field (full verification decodes every record whole).
pub fn canonical_tail(body: &[u8]) -> Option<(u64, Hash)> {
    use std::sync::LazyLock;
    const SEQ_KEY: &[u8] = b",\"seq\":";
    const PREV_KEY: &[u8] = b",\"prev_hash\":\"";
    const AFTER_PREV: &[u8] = b"\",\"recorded_at\":\"";
    // Built once: constructing a searcher costs more than searching the ~200 bytes it scans.
    static SEQ: LazyLock<LastMatch> = LazyLock::new(|| LastMatch::new(SEQ_KEY));
    static PREV: LazyLock<LastMatch> = LazyLock::new(|| LastMatch::new(PREV_KEY));
    let inner = body.strip_suffix(b"}")?;
    let at = SEQ.rfind(inner)?;
    let seq = canonical::parse_canonical_u64(&inner[at + SEQ_KEY.len()..])?;
    let before_seq = &inner[..at];
    let at = PREV.rfind(before_seq)?;
    let rest = &before_seq[at + PREV_KEY.len()..];
    let prev_hash = canonical::parse_lower_hex(rest.get(..64)?)?;
    if !rest[64..].starts_with(AFTER_PREV) {
        return None;
    }
    Some((seq, prev_hash))
}

/// How every stored record line starts.
pub const RECORD_PREFIX: &[u8] = b"{\"body\":";

/// A stored record cut into its body and the hash it claims, by the layout the ledger seals:
/// `{"body":BODY,"hash":"HEX"}`, HEX 64 lower-case hex digits. `None` for anything else
/// (the caller decodes it as JSON and says what is wrong).
pub fn split_sealed(line: &[u8]) -> Option<(&[u8], Hash)> {
    let rest = line.strip_prefix(RECORD_PREFIX)?.strip_suffix(b"\"}")?;
    let (body_and_key, hex) = rest.split_at(rest.len().checked_sub(64)?);
    Some((body_and_key.strip_suffix(SEALED_HASH_KEY)?, canonical::parse_lower_hex(hex)?))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The members after the event of a canonical body: the golden example's, re-encoded.
    fn canonical_members() -> String {
        let record: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/examples/record.json")).expect("example");
        let body = String::from_utf8(canonical::to_vec(&record["body"]).expect("canonical")).expect("UTF-8");
        let at = body.rfind(r#","event_id":"#).expect("event_id");
        body[at + 1..].to_string()
    }

    /// Whatever the reader by position gives, JSON gives the same from the same text: over the
    /// golden tail and 20,000 edits of it (bytes replaced, deleted, inserted), many of which
    /// still read (other digits, hex, ids) and many of which must not (broken strings, keys,
    /// numbers, a second value).
    #[test]
    fn the_tail_read_by_position_is_the_tail_json_decodes() {
        const EDITS: usize = 20_000;
        const BYTES: &[u8] = b"\"\\,:{}[]0123456789abefZT.-+ \x01\x1fnul";
        let members = canonical_members();
        let read = Tail::read(&members).expect("the canonical layout is read by position");
        assert_eq!(Some(&read), Tail::decode(&members).as_ref());
        // Spellings at the edges of each reader: all JSON, not all canonical, some invalid.
        let seq_at = members.rfind(r#""seq":"#).expect("seq") + 6;
        let hash_at = members.find(r#""prev_hash":""#).expect("prev_hash") + 13;
        let time_at = members.find(r#""recorded_at":""#).expect("recorded_at") + 15;
        // (text, read by position?): the spellings it reads must come out as serde's; the
        // rest it must leave to serde (which takes some of them: other spellings of the same).
        let seq = |text: &str| format!("{}{text}}}", &members[..seq_at]);
        let time = |text: &str| format!("{}{text}{}", &members[..time_at], &members[time_at + 24..]);
        let upper_hash = format!(
            "{}{}",
            &members[..hash_at],
            members[hash_at..hash_at + 64].to_uppercase() + &members[hash_at + 64..]
        );
        let key = |text: &str| members.replace(r#""key":"nl-covra-ops""#, text);
        let edge_cases = [
            (seq("0"), true),
            (seq("18446744073709551615"), true),
            (key(r#""key":"nl-covra-\nops""#), true),
            (key(r#""key":{"id":"nl-covra-ops","x":[1,2.5,null,true]}"#), true),
            (members.replace(r#""kind":"#, r#""kind": "#), true),
            (seq("022"), false),
            (seq("22.0"), false),
            (seq("2e1"), false),
            (seq("-22"), false),
            (seq("-0"), false),
            (seq("18446744073709551616"), false),
            (seq("22 "), false),
            (seq(r#"22,"seq":23"#), false),
            (upper_hash, false),
            (time("2026-02-02T09:30:00.25Z"), false),
            (time("2026-02-02T09:30:00.250+00:00"), false),
            (members.replace(r#""event_id":"acq-pt-001""#, r#""event_id":"acq-pt-\u0030001""#), false),
            (key("\"key\":\"nl-covra-\u{1}ops\""), false),
            (key(r#""key":"nl-covra-ops","key":"x""#), false),
            (key(r#""key":1x"#), false),
        ];
        for (text, by_position) in &edge_cases {
            assert_ne!(text, &members);
            match Tail::read(text) {
                Some(read) => {
                    assert!(by_position, "read by position: {text}");
                    assert_eq!(Some(read), Tail::decode(text), "{text}");
                }
                None => assert!(!by_position, "not read by position: {text}"),
            }
        }
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % below as u64) as usize
        };
        let (mut read_some, mut refused) = (0, 0);
        for _ in 0..EDITS {
            let mut bytes = members.clone().into_bytes();
            for _ in 0..=next(2) {
                let at = next(bytes.len());
                let byte = BYTES[next(BYTES.len())];
                match next(3) {
                    0 => bytes[at] = byte,
                    1 => drop(bytes.remove(at)),
                    _ => bytes.insert(at, byte),
                }
            }
            let Ok(text) = String::from_utf8(bytes) else { continue };
            match Tail::read(&text) {
                Some(read) => {
                    read_some += 1;
                    assert_eq!(Some(read), Tail::decode(&text), "{text}");
                }
                None => refused += 1,
            }
        }
        assert!(read_some > EDITS / 10 && refused > EDITS / 10, "{read_some} read, {refused} refused");
    }
}
