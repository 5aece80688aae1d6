//! Request and reply shapes of the ledger's NATS API (`stockpile.v1.ledger.*`). Anything
//! here is a compatibility boundary: it changes only with a new subject version.
//! Schemas: `schemas/v1/*.schema.json`.

use crate::domain::{EventId, Rejection};
use crate::ledger::Outcome;
use crate::signing::SignedCommand;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
