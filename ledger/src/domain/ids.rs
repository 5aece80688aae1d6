//! Identifiers. Every id on the wire is plain ASCII from a small alphabet, so Unicode
//! look-alikes, control characters and path or subject separators cannot hide in one.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id, in bytes. Long enough for a UUID with a prefix, short enough for a NATS
/// subject token and a terminal column.
pub const ID_BYTES_MAX: usize = 64;

/// Why a text is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} is longer than {ID_BYTES_MAX} bytes")]
    TooLong { what: &'static str, value: String },
    #[error("{what} {value:?} has a character outside A-Z a-z 0-9 '-' '_' '.': use plain ASCII")]
    BadCharacter { what: &'static str, value: String },
    #[error("{what} {value:?} must start with a letter or digit")]
    BadStart { what: &'static str, value: String },
    #[error("{what} {value:?} is not an ISO 3166-1 alpha-2 code (two capital letters)")]
    NotCountry { what: &'static str, value: String },
}

/// Checks `value` against the id alphabet: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
///
/// `:` is left out so ids can be joined with it unambiguously; `.`, `*`, `>` and spaces
/// are special in NATS subjects, and ids appear only in payloads, but `.` is allowed
/// because operators use it in references (never used as a subject token).
pub fn check_id(what: &'static str, value: &str) -> Result<(), IdError> {
    let err_value = || value.to_string();
    let Some(first) = value.chars().next() else {
        return Err(IdError::Empty { what });
    };
    if value.len() > ID_BYTES_MAX {
        return Err(IdError::TooLong { what, value: err_value() });
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(IdError::BadCharacter { what, value: err_value() });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(IdError::BadStart { what, value: err_value() });
    }
    Ok(())
}

/// Ids are held as [`CompactString`]: the same 24 bytes as a `String`, but an id of up to 24
/// bytes (every party, facility, lot, material and country id seen so far, and most event
/// ids) lives inline, so decoding, cloning and dropping one allocates nothing. Replay decodes
/// about eight per record and keeps two or three in its tables.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(CompactString);

        impl $name {
            pub const WHAT: &'static str = $what;

            pub fn new(value: impl Into<CompactString>) -> Self {
                $name(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn check(&self) -> Result<(), IdError> {
                check_id($what, &self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name(value.into())
            }
        }
    };
}

id_type!(
    /// An event id, chosen by the client; the key of idempotency.
    EventId,
    "event id"
);
id_type!(
    /// A party: who holds stock.
    PartyId,
    "party id"
);
id_type!(
    /// A lot: a physical batch of one material, form and purity.
    LotId,
    "lot id"
);
id_type!(
    /// A storage facility.
    FacilityId,
    "facility id"
);
id_type!(
    /// An operator or admin signing key.
    KeyId,
    "key id"
);
id_type!(
    /// A material from the reference list (`cobalt`, `gallium`, …).
    MaterialId,
    "material"
);

/// An ISO 3166-1 alpha-2 country code (`NL`, `DE`, `CN`). Greece is `GR` internally.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Country(CompactString);

impl Country {
    pub fn new(value: impl Into<CompactString>) -> Self {
        Country(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn check(&self, what: &'static str) -> Result<(), IdError> {
        let ok = self.0.len() == 2 && self.0.bytes().all(|b| b.is_ascii_uppercase());
        if ok {
            Ok(())
        } else {
            Err(IdError::NotCountry { what, value: self.0.to_string() })
        }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Country {
    fn from(value: &str) -> Self {
        Country(value.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_alphabet() {
        assert!(check_id("x", "NL-COVRA.lot_001").is_ok());
        assert!(matches!(check_id("x", ""), Err(IdError::Empty { .. })));
        assert!(matches!(check_id("x", "-a"), Err(IdError::BadStart { .. })));
        assert!(matches!(check_id("x", "a b"), Err(IdError::BadCharacter { .. })));
        assert!(matches!(check_id("x", "lot\u{0}"), Err(IdError::BadCharacter { .. })));
        // Cyrillic 'а' (U+0430) looks like Latin 'a'
        assert!(matches!(check_id("x", "lot-\u{430}"), Err(IdError::BadCharacter { .. })));
        assert!(matches!(check_id("x", "a:b"), Err(IdError::BadCharacter { .. })));
        assert!(matches!(check_id("x", &"a".repeat(65)), Err(IdError::TooLong { .. })));
        assert!(Country::new("NL").check("c").is_ok());
        assert!(Country::new("nl").check("c").is_err());
        assert!(Country::new("NLD").check("c").is_err());
    }
}
