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
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    #[error("value cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("floats are not allowed in canonical JSON: {0}")]
    Float(String),
}

/// The canonical JSON bytes of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(512);
    write_value(&value, &mut out)?;
    Ok(out)
}

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
    fn refuses_floats() {
        assert!(matches!(to_vec(&json!({"a": 1.5})), Err(CanonicalError::Float(_))));
        assert!(to_vec(&json!({"a": -3, "b": u64::MAX})).is_ok());
    }
}
