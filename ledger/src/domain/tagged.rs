//! Enums tagged on the wire by a `kind` member (`{"kind":"acquire",…}`): [`crate::domain::Event`]
//! and [`crate::domain::Action`], decoded by kind.
//!
//! serde's derive for an internally tagged enum first buffers the whole object (every key and
//! value, in its own `Content` tree) to find the tag, then decodes the variant from that
//! buffer. Replay decodes millions of events and an audit millions of commands, so
//! [`tagged_enum!`] defines the enum and, beside it, each variant's fields as a struct of its
//! own; `from_json` finds the `kind` first and decodes the object straight into that variant.
//! The derived `Deserialize` stays the definition: `from_json` accepts and refuses exactly
//! what it does (`ledger/tests/ledger/decoding.rs` holds the two to that, for every kind and
//! for random mutations): whatever the by-kind path refuses goes to it, so it has the last
//! word and its errors are the ones users see.

use serde::Deserialize;
use std::borrow::Cow;

/// A type with a decoder of its own for JSON text: what [`by_kind`] calls.
pub trait FromJson: Sized {
    fn from_json(json: &str) -> Result<Self, serde_json::Error>;
}

/// A `#[serde(deserialize_with)]` for a member holding a tagged enum: the member's JSON text
/// ([`serde_json::value::RawValue`]: one copy of its bytes, not a tree), then
/// [`FromJson::from_json`]. Works from every serde_json source (slices, readers, `Value`s),
/// and only from those: a type with such a member (`Command`, `SignedCommand`, `RecordBody`,
/// `Record`) cannot be decoded through serde's buffer (inside an untagged or flattened
/// wrapper) or from another format. The error keeps the inner decoder's message; serde_json
/// adds the position of the member's end.
pub fn by_kind<'de, D: serde::Deserializer<'de>, T: FromJson>(d: D) -> Result<T, D::Error> {
    let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
    T::from_json(raw.get()).map_err(|e| {
        let text = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let message = match text.strip_suffix(&at) {
            Some(message) if e.line() > 0 => message,
            _ => &text,
        };
        serde::de::Error::custom(message)
    })
}

/// The object's own `kind`: found by [`top_level_kind`], or else by serde with the other
/// members skipped, not buffered.
pub fn kind_of(json: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(borrow)]
        kind: Cow<'a, str>,
    }
    match top_level_kind(json) {
        Some(kind) => Ok(Cow::Borrowed(kind)),
        None => Ok(serde_json::from_str::<Kind<'_>>(json)?.kind),
    }
}

/// Defines an enum tagged by `kind` from its variants (each `Variant = "tag" { fields }`),
/// its variants' fields as structs in the named module, `from_json` (the kind first, then
/// the `layout` shortcut for text in the ledger's canonical layout, then the variant's
/// struct), a [`FromJson`] impl, and `kind()`, the wire name of a value's kind.
macro_rules! tagged_enum {
    (
        $(#[$emeta:meta])*
        enum $name:ident, variants in $module:ident, layout $layout:expr;
        $(
            $(#[$vmeta:meta])*
            $variant:ident = $tag:literal {
                $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
            }
        ),* $(,)?
    ) => {
        $(#[$emeta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $tag)]
                $variant { $( $(#[$fmeta])* $field: $ty ),* },
            )*
        }

        /// Each variant's fields, with the `kind` tag accepted and skipped.
        mod $module {
            use super::*;
            $(
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                pub(super) struct $variant {
                    #[allow(dead_code)]
                    kind: serde::de::IgnoredAny,
                    $( $(#[$fmeta])* pub(super) $field: $ty ),*
                }
            )*
        }

        impl $name {
            /// Decodes one value from JSON by its `kind` (module `domain::tagged`): accepts
            /// and refuses exactly what the derived `Deserialize` does. Text the by-kind path
            /// refuses goes to the derived decoder, which has the last word and the error:
            /// serde's buffer also takes spellings serde_json does not (a unit variant
            /// written `{"admin":{}}`, the enum as an array `["raise_rules",5]`), and its
            /// messages name the enum, not a helper.
            pub fn from_json(json: &str) -> Result<$name, serde_json::Error> {
                $name::decoded_by_kind(json).or_else(|_| serde_json::from_str(json))
            }

            fn decoded_by_kind(json: &str) -> Result<$name, serde_json::Error> {
                let kind = $crate::domain::tagged::kind_of(json)?;
                let layout: fn(&str, &str) -> Option<$name> = $layout;
                if let Some(value) = layout(&kind, json) {
                    return Ok(value);
                }
                Ok(match kind.as_ref() {
                    $($tag => {
                        let v: $module::$variant = serde_json::from_str(json)?;
                        $name::$variant { $( $field: v.$field ),* }
                    })*
                    _ => return serde_json::from_str(json),
                })
            }

            /// The wire name of this value's kind.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => $tag, )*
                }
            }
        }

        impl $crate::domain::tagged::FromJson for $name {
            fn from_json(json: &str) -> Result<$name, serde_json::Error> {
                $name::from_json(json)
            }
        }
    };
}
pub(crate) use tagged_enum;

/// The value of an object's own `"kind":"…"` member, found by one scan that skips strings and
/// tracks nesting, so a `kind` inside a member is not taken for it. `None` when it is not in
/// that exact spelling (spaces around the colon, an escape in the value); the caller then asks
/// serde. Only a valid object's member can be found here, and on anything else the strict
/// decode that follows fails, so a wrong answer cannot turn into a wrong event.
pub fn top_level_kind(json: &str) -> Option<&str> {
    const KEY: &[u8] = b"\"kind\":\"";
    let b = json.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                if depth == 1 && b[i..].starts_with(KEY) {
                    let start = i + KEY.len();
                    let end = start + memchr::memchr2(b'"', b'\\', &b[start..])?;
                    return (b[end] == b'"').then(|| json.get(start..end)).flatten();
                }
                // Past the string: to its closing quote, stepping over escapes.
                i += 1;
                loop {
                    i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
                    if b[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::top_level_kind;

    #[test]
    fn the_kind_found_is_the_objects_own() {
        let nested = r#"{"effects":{"flows":[{"kind":"acquired"}],"postings":[]},"kind":"reversed","reason":"x"}"#;
        assert_eq!(top_level_kind(nested), Some("reversed"));
        let in_a_string = r#"{"note":"\"kind\":\"stored\"","kind":"adjusted"}"#;
        assert_eq!(top_level_kind(in_a_string), Some("adjusted"));
        let escaped_quote_before = r#"{"a":"x\\","kind":"stored"}"#;
        assert_eq!(top_level_kind(escaped_quote_before), Some("stored"));
        // Spellings the scan does not take are left to serde.
        assert_eq!(top_level_kind(r#"{"kind" : "stored"}"#), None);
        assert_eq!(top_level_kind(r#"{"kind":"st\u006fred"}"#), None);
        assert_eq!(top_level_kind(r#"{"flows":[{"kind":"acquired"}]}"#), None);
        assert_eq!(top_level_kind(r#"{"a":"unterminated"#), None);
        assert_eq!(top_level_kind(r#"{"a":"x\"#), None);
    }
}
