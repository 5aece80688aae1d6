//! Request and reply shapes of the ledger's NATS API (`stockpile.v1.ledger.*`). Anything
//! here is a compatibility boundary: it changes only with a new subject version.
//! Schemas: `schemas/v1/*.schema.json`.

use crate::domain::{EventId, Rejection};
use crate::ledger::Outcome;
use crate::signing::SignedCommand;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Deepest JSON nesting accepted in any request or `post` line. The deepest valid message
/// (an append request: request → commands → command → action → lot/holding → field) nests
/// six levels; anything deeper is refused before it is parsed, so hostile input cannot
/// spend the parser's stack (serde_json's own recursion limit, 128, is the backstop).
pub const JSON_DEPTH_MAX: usize = 16;

/// The nesting depth of JSON text: the most `[`/`{` open at once, outside strings. A scan,
/// not a parse: malformed text gets a depth too, and the parser then says what is wrong.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Refuses JSON nested deeper than [`JSON_DEPTH_MAX`], with the reason to show.
pub fn check_json_depth(bytes: &[u8]) -> Result<(), String> {
    let depth = json_depth(bytes);
    if depth > JSON_DEPTH_MAX {
        return Err(format!("JSON nested {depth} levels deep; at most {JSON_DEPTH_MAX} are accepted"));
    }
    Ok(())
}

/// `stockpile.v1.ledger.append` request: a batch of signed commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    pub commands: Vec<SignedCommand>,
    /// All apply or none. Default: each command stands alone.
    #[serde(default)]
    pub atomic: bool,
}

/// `stockpile.v1.ledger.append` reply: one result per command, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendReply {
    pub results: Vec<AppendResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum AppendResult {
    Appended { seq: u64, event_id: EventId },
    Duplicate { seq: u64, event_id: EventId },
    Rejected { code: String, message: String },
}

impl From<Outcome> for AppendResult {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Appended { seq, event_id } => AppendResult::Appended { seq, event_id },
            Outcome::Duplicate { seq, event_id } => AppendResult::Duplicate { seq, event_id },
            Outcome::Rejected(r) => AppendResult::Rejected { code: r.code().to_string(), message: r.to_string() },
        }
    }
}

impl From<&Rejection> for AppendResult {
    fn from(r: &Rejection) -> Self {
        AppendResult::Rejected { code: r.code().to_string(), message: r.to_string() }
    }
}

/// A whole request refused (malformed, too large, service unavailable): nothing was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Stable machine-readable code (`malformed_request`, `request_too_large`, `unavailable`, …).
    pub code: String,
    pub message: String,
}

/// `stockpile.v1.ledger.range` request: records `from..=to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeRequest {
    pub from: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `stockpile.v1.ledger.range` reply. Records are the exact stored bytes (`{"body":…,"hash":…}`),
/// so a receiver can hash each body as it stands.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeReply {
    pub records: Vec<Box<RawValue>>,
    /// The ledger's head seq when the reply was made.
    pub head: u64,
    /// Where to continue, if the page was cut by the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// A `stockpile.v1.ledger.proof` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProofRequest {
    /// That record `seq` is in the tree of `tree_size` records.
    Inclusion { seq: u64, tree_size: u64 },
    /// That the tree of `old_size` records is a prefix of the tree of `new_size`.
    Consistency { old_size: u64, new_size: u64 },
}

/// A proof, as `ledger.proof` answers and `stockpile audit prove|consistency` print it;
/// `stockpile audit check` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "proof", rename_all = "snake_case")]
pub enum ProofReply {
    Inclusion(crate::audit::proof::InclusionProof),
    Consistency(crate::audit::proof::ConsistencyProof),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(br#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(json_depth(br#"{"a":"[[[[{{{{\"[["}"#), 1, "brackets in strings, escaped quotes");
        assert_eq!(json_depth(b"]]]][[["), 3, "malformed text still gets a depth");
        let deep = format!("{}{}", "[".repeat(JSON_DEPTH_MAX + 1), "]".repeat(JSON_DEPTH_MAX + 1));
        assert!(check_json_depth(deep.as_bytes()).unwrap_err().contains("17 levels"));
        let ok = format!("{}{}", "[".repeat(JSON_DEPTH_MAX), "]".repeat(JSON_DEPTH_MAX));
        assert!(check_json_depth(ok.as_bytes()).is_ok());
    }
}
