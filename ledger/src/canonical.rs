//! Canonical JSON and hashing, in one place. The rules (also in `schemas/CANONICAL.md`):
//!
//! - objects: keys sorted by their UTF-8 bytes, each key once;
//! - no insignificant whitespace;
//! - numbers: integers only (no fraction, no exponent); floats are refused;
//! - strings: JSON escapes for `"` `\` and control characters (`\n`, `\t`, … or `\u00XX`),
//!   everything else as raw UTF-8.
//!
//! The writer sorts keys itself instead of relying on `serde_json::Map` ordering, so a
//! dependency that turns on serde_json's `preserve_order` cannot change a hash.

use serde::Serialize;
#[cfg(test)]
use serde_json::Value;
use sha2::{Digest, Sha256};

mod writer;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    #[error("value cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("floats are not allowed in canonical JSON: {0}")]
    Float(String),
}

impl serde::ser::Error for CanonicalError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CanonicalError::Encode(serde_json::Error::custom(msg))
    }
}

/// The canonical JSON bytes of `value`, written directly (no `serde_json::Value` in between).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(512);
    append(&mut out, value)?;
    Ok(out)
}

/// [`to_vec`] written at the end of `out`, for a caller that builds a larger message around
/// the value. On an error `out` may hold part of the value.
pub fn append<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), CanonicalError> {
    value.serialize(writer::Writer { out })
}

/// Appends the lower-case hex of `bytes` to `out`, as [`hex`] spells it.
pub fn append_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]);
    }
}

/// [`to_vec`] through a `serde_json::Value`: the writer this module had first, kept as the
/// oracle the direct writer is tested against.
#[cfg(test)]
fn to_vec_via_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(512);
    write_value(&value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError::Float(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => serde_json::to_writer(&mut *out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// Lower-case hex of a hash, as it appears on the wire.
pub fn hex(hash: &Hash) -> String {
    hex::encode(hash)
}

/// Parses 64 hex characters into a hash.
pub fn parse_hex(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// 64 lower-case hex digits into a hash; `None` for anything else (upper case included).
/// Table-driven: the chain check calls it once per record.
pub fn parse_lower_hex(text: &[u8]) -> Option<Hash> {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0xff,
        }
    }
    const TABLE: [u8; 256] = {
        let mut t = [0xff; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = nibble(i as u8);
            i += 1;
        }
        t
    };
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = (TABLE[pair[0] as usize], TABLE[pair[1] as usize]);
        if (hi | lo) & 0xf0 != 0 {
            return None;
        }
        *o = hi << 4 | lo;
    }
    Some(out)
}

/// A u64 in its canonical spelling: ASCII digits only, no leading zero (but `0` itself), no
/// overflow. `None` for anything else.
pub fn parse_canonical_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// An instant in the canonical spelling (CANONICAL.md): `2026-02-02T09:30:00Z` or with 3, 6 or
/// 9 fractional digits, UTC with an upper-case `Z`. Read by position, without chrono's general
/// parser (which replay would otherwise run on every record). `None` for any other spelling,
/// a leap second included: the caller then parses the text as chrono does, and wherever this
/// gives a value it is the one chrono gives.
pub fn parse_canonical_utc(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if b.len() < 20 || separators.iter().any(|&(i, c)| b[i] != c) || b[b.len() - 1] != b'Z' {
        return None;
    }
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if matches!(fraction.len(), 3 | 6 | 9) => {
            digits(20..20 + fraction.len())? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let (second, minute, hour) = (digits(17..19)?, digits(14..16)?, digits(11..13)?);
    if second > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    Some(date.and_hms_nano_opt(hour, minute, second, nanos)?.and_utc())
}

/// Serde helper (`deserialize_with`): an instant as chrono's `Deserialize` reads it, through
/// [`parse_canonical_utc`] first — records and commands carry an instant or two each, and
/// chrono's general parser was a visible share of decoding them. Any other spelling goes to
/// chrono's parser, so what is accepted, its value and the error are chrono's.
pub mod utc {
    use chrono::{DateTime, FixedOffset, Utc};
    use serde::de::{Deserializer, Error, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        struct InstantVisitor;
        impl Visitor<'_> for InstantVisitor {
            type Value = DateTime<Utc>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // chrono's words, so a wrong type is refused as it was.
                f.write_str("an RFC 3339 formatted date and time string")
            }
            fn visit_str<E: Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
                if let Some(instant) = super::parse_canonical_utc(text) {
                    return Ok(instant);
                }
                text.parse::<DateTime<FixedOffset>>().map(|t| t.with_timezone(&Utc)).map_err(E::custom)
            }
        }
        d.deserialize_str(InstantVisitor)
    }
}

/// Serde helper: a hash as lower-case hex text.
pub mod hex_hash {
    use serde::{de::Error, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &super::Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    /// Reads the text where it stands (no owned copy): records carry two or three hashes and
    /// replay decodes millions of them.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Hash, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = super::Hash;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 lower-case hex characters")
            }
            fn visit_str<E: Error>(self, text: &str) -> Result<super::Hash, E> {
                super::parse_lower_hex(text.as_bytes())
                    .or_else(|| super::parse_hex(text))
                    .ok_or_else(|| E::custom("expected 64 lower-case hex characters"))
            }
        }
        d.deserialize_str(HexVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        let v = json!({"b": 1, "a": {"z": [1, 2, {"y": null, "x": true}], "é": "\n\u{1}ü"}});
        let out = String::from_utf8(to_vec(&v).unwrap()).unwrap();
        assert_eq!(out, r#"{"a":{"z":[1,2,{"x":true,"y":null}],"é":"\n\u0001ü"},"b":1}"#);
    }

    /// Every shape serde can hand a serializer, as derived types produce them: internally,
    /// externally and adjacently tagged enums, flattened members that collide (the last
    /// wins), skipped fields, maps with integer, character and unit-variant keys, bytes,
    /// tuples, options and keys that need escaping.
    #[test]
    fn the_direct_writer_writes_what_the_value_writer_wrote() {
        use serde::Serialize;
        use std::collections::BTreeMap;
        #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
        #[serde(rename_all = "snake_case")]
        enum Colour {
            DeepRed,
            Blue,
        }
        #[derive(Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Internal {
            Zeta { b: u8, a: Option<i64> },
            Alpha(Inner),
            Unit,
        }
        #[derive(Serialize)]
        enum External {
            Newtype(u32),
            Tuple(i8, String),
            Struct { y: bool, x: char },
            Plain,
        }
        #[derive(Serialize)]
        #[serde(tag = "t", content = "c")]
        enum Adjacent {
            One(Vec<u16>),
        }
        #[derive(Serialize)]
        struct Inner {
            z: u64,
            #[serde(rename = "\u{1}ctl\"\n")]
            odd: &'static str,
        }
        #[derive(Serialize)]
        struct Unit;
        #[derive(Serialize)]
        struct Newtype(i32);
        #[derive(Serialize)]
        struct Top {
            zebra: Vec<Internal>,
            external: Vec<External>,
            adjacent: Adjacent,
            #[serde(flatten)]
            flat: BTreeMap<String, u8>,
            a: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            by_number: BTreeMap<i64, &'static str>,
            by_char: BTreeMap<char, u8>,
            by_colour: BTreeMap<Colour, Colour>,
            #[serde(with = "serde_bytes_as_seq")]
            bytes: Vec<u8>,
            tuple: (u8, &'static str, ()),
            unit: Unit,
            newtype: Newtype,
            none: Option<u8>,
            big: (u128, i128, i64, u64),
            é: &'static str,
        }
        mod serde_bytes_as_seq {
            pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b)
            }
        }
        let top = Top {
            zebra: vec![
                Internal::Zeta { b: 2, a: None },
                Internal::Zeta { b: 0, a: Some(-7) },
                Internal::Alpha(Inner { z: u64::MAX, odd: "\u{7f}\u{2028}é\t" }),
                Internal::Unit,
            ],
            external: vec![
                External::Newtype(9),
                External::Tuple(-1, "x".into()),
                External::Struct { y: false, x: '"' },
                External::Plain,
            ],
            adjacent: Adjacent::One(vec![1, 2]),
            flat: [("a".to_string(), 99), ("b".to_string(), 1), ("zz".to_string(), 3)].into_iter().collect(),
            a: 7,
            skipped: None,
            by_number: [(-3, "m"), (10, "t"), (2, "two")].into_iter().collect(),
            by_char: [('b', 1), ('\n', 2)].into_iter().collect(),
            by_colour: [(Colour::DeepRed, Colour::Blue), (Colour::Blue, Colour::DeepRed)].into_iter().collect(),
            bytes: vec![0, 255, 16],
            tuple: (1, "t", ()),
            unit: Unit,
            newtype: Newtype(-5),
            none: None,
            big: (u64::MAX as u128, i64::MIN as i128, i64::MIN, u64::MAX),
            é: "accent",
        };
        let direct = String::from_utf8(to_vec(&top).unwrap()).unwrap();
        assert_eq!(direct, String::from_utf8(to_vec_via_value(&top).unwrap()).unwrap());
        assert!(direct.starts_with(r#"{"a":7,"#), "a flattened key and a field collide; one is kept: {direct}");
        // Floats and integers beyond 64 bits are refused, as before.
        assert!(matches!(to_vec(&1.5f64), Err(CanonicalError::Float(_))));
        // Where the Value path let a float through, the direct writer refuses it.
        assert!(matches!(to_vec(&f64::NAN), Err(CanonicalError::Float(_))));
        assert_eq!(to_vec_via_value(&f64::NAN).unwrap(), b"null");
        struct FloatKey;
        impl Serialize for FloatKey {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map([(1.5f64, 1u8)])
            }
        }
        assert!(matches!(to_vec(&FloatKey), Err(CanonicalError::Float(_))));
        assert_eq!(to_vec_via_value(&FloatKey).unwrap(), br#"{"1.5":1}"#);
        assert!(to_vec(&(u64::MAX as u128 + 1)).is_err() && to_vec_via_value(&(u64::MAX as u128 + 1)).is_err());
        assert!(to_vec(&[(vec![1u8], 2u8)].into_iter().collect::<BTreeMap<_, _>>()).is_err(), "a key must be a string");
        // Raw JSON text is parsed and written canonically.
        let raw = serde_json::value::RawValue::from_string(r#"{ "b": [1, {"d":null,"c":"\u00e9"}], "a": -3 }"#.into())
            .unwrap();
        assert_eq!(to_vec(&raw).unwrap(), to_vec_via_value(&raw).unwrap());
        assert_eq!(to_vec(&raw).unwrap(), r#"{"a":-3,"b":[1,{"c":"é","d":null}]}"#.as_bytes());
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop_oneof![any::<String>(), "[a-c\\u{0}-\\u{1f}\"\\\\é😀]{0,6}"];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((text.clone(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any JSON document (keys with control characters, astral and non-ASCII text,
        /// extreme integers, deep nesting) is written to the same bytes by both writers.
        #[test]
        fn any_json_is_written_as_the_value_writer_wrote_it(value in any_json()) {
            proptest::prop_assert_eq!(to_vec(&value).unwrap(), to_vec_via_value(&value).unwrap());
        }
    }

    #[test]
    fn lower_hex_round_trips_and_nothing_else_parses() {
        let h = sha256(b"stockpile");
        assert_eq!(parse_lower_hex(hex(&h).as_bytes()), Some(h));
        assert_eq!(parse_lower_hex(hex(&h).to_uppercase().as_bytes()), None);
        assert_eq!(parse_lower_hex(&hex(&h).as_bytes()[..62]), None);
        for bad in [b'g', b' ', b'/', b':', b'`', 0xff] {
            let mut text = hex(&h).into_bytes();
            text[17] = bad;
            assert_eq!(parse_lower_hex(&text), None, "{bad}");
        }
    }

    #[test]
    fn canonical_instants_read_by_position_as_chrono_reads_them() {
        use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
        let chrono = |t: &str| t.parse::<DateTime<FixedOffset>>().ok().map(|d| d.with_timezone(&Utc));
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |below: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % below
        };
        // Canonical spellings of instants from year 0000 to 9999, every fraction length, and
        // the calendar's edges.
        const FIRST: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
        const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let mut texts: Vec<String> = [
            "0000-01-01T00:00:00Z",
            "0000-02-29T12:00:00Z",
            "1900-02-28T23:59:59.999Z",
            "2000-02-29T00:00:00.000001Z",
            "1970-01-01T00:00:00.000000001Z",
            "9999-12-31T23:59:59.999999999Z",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..20_000 {
            let secs = FIRST + next((LAST - FIRST + 1) as u64) as i64;
            let nanos = [0, 250_000_000, 123_000, 7, next(1_000_000_000) as u32][next(5) as usize];
            texts.push(Utc.timestamp_opt(secs, nanos).unwrap().to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
        for text in &texts {
            let read = parse_canonical_utc(text);
            assert!(read.is_some(), "{text}");
            assert_eq!(read, chrono(text), "{text}");
            assert_eq!(read.unwrap().to_rfc3339_opts(SecondsFormat::AutoSi, true), *text);
        }
        // One byte of a canonical spelling changed: whatever still reads, reads as chrono reads it.
        const BYTES: &[u8] = b"0123456789-:.TZtz+ ";
        let (mut read_some, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut text = texts[next(texts.len() as u64) as usize].clone().into_bytes();
            let at = next(text.len() as u64) as usize;
            text[at] = BYTES[next(BYTES.len() as u64) as usize];
            let text = String::from_utf8(text).unwrap();
            match parse_canonical_utc(&text) {
                Some(read) => {
                    read_some += 1;
                    assert_eq!(Some(read), chrono(&text), "{text}");
                }
                None => refused += 1,
            }
        }
        assert!(read_some > 2_000 && refused > 2_000, "{read_some} read, {refused} refused");
        // Every other spelling is left to chrono, valid or not.
        for text in [
            "2026-02-02T09:30:00.25Z",
            "2026-02-02T09:30:00.2500Z",
            "2026-02-02T09:30:00+00:00",
            "2026-02-02t09:30:00Z",
            "2026-02-02T09:30:60Z",
            "2026-02-29T09:30:00Z",
            "2026-13-02T09:30:00Z",
            "2026-02-02T24:00:00Z",
            "2026-02-02T09:60:00Z",
            "2026-02-02 09:30:00Z",
            "+2026-02-02T09:30:00Z",
            "2026-02-02T09:30:00.Z",
            "2026-02-02T09:30:0a.000Z",
            "2026-02-02T09:30:00.-12Z",
            "2026-02-02T09:30:00.250z",
            "2026-02-02T09:30:00.250ZZ",
            "2026-02-02T09:30:00",
            "",
        ] {
            assert_eq!(parse_canonical_utc(text), None, "{text}");
        }
    }

    /// `utc::deserialize` (the records' and commands' instants) decodes, refuses and words its
    /// errors exactly as chrono's `Deserialize` does, whichever path a spelling takes.
    #[test]
    fn instants_decode_as_chrono_decodes_them() {
        use chrono::{DateTime, Utc};
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Ours(#[serde(deserialize_with = "super::utc::deserialize")] DateTime<Utc>);
        for json in [
            r#""2026-02-02T09:30:00Z""#,
            r#""2026-02-02T09:30:00.250Z""#,
            r#""2026-02-02T09:30:00.25Z""#,
            r#""2026-02-02T10:30:00+01:00""#,
            r#""2026-02-02 09:30:00Z""#,
            r#""2026-02-02T09:30:60Z""#,
            r#""2026-02-29T09:30:00Z""#,
            r#""2026-02-02T09:30:00""#,
            r#""2026-02-02T09:30:00\u005a""#,
            r#""""#,
            "17",
            "null",
            "{}",
        ] {
            let ours = serde_json::from_str::<Ours>(json).map(|o| o.0).map_err(|e| e.to_string());
            let chrono = serde_json::from_str::<DateTime<Utc>>(json).map_err(|e| e.to_string());
            assert_eq!(ours, chrono, "{json}");
            let value: Result<Value, _> = serde_json::from_str(json);
            if let Ok(value) = value {
                let ours = serde_json::from_value::<Ours>(value.clone()).map(|o| o.0).map_err(|e| e.to_string());
                let chrono = serde_json::from_value::<DateTime<Utc>>(value).map_err(|e| e.to_string());
                assert_eq!(ours, chrono, "from a Value: {json}");
            }
        }
    }

    #[test]
    fn refuses_floats() {
        assert!(matches!(to_vec(&json!({"a": 1.5})), Err(CanonicalError::Float(_))));
        assert!(to_vec(&json!({"a": -3, "b": u64::MAX})).is_ok());
    }
}
