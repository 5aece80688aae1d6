//! Errors of the service, split by who handles them: a [`RequestError`] is answered to the
//! caller who sent a bad request and the service goes on; a [`ServiceError`] stops the
//! service and is reported by `main`.

use crate::error::LedgerError;
use crate::wire::{ErrorBody, ErrorReply};

/// Why the service could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "cannot connect to NATS at {url}: {reason} (kept trying for {} s): check --nats and that nats-server is running",
        super::access::FIRST_CONNECT_WAIT.as_secs()
    )]
    Connect { url: String, reason: String },
    #[error("cannot create or update the JetStream stream {stream}: {reason}: check that JetStream is enabled (nats-server -js) and that the replica count fits the cluster")]
    Stream { stream: String, reason: String },
    #[error("cannot register the NATS micro service {name}: {reason}")]
    Register { name: &'static str, reason: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("a service task failed: {0}")]
    Task(String),
    #[error("the lease of the active ledger was lost ({reason}): stopped serving so that the ledger holding it is the only writer; restart this one with --standby to follow it")]
    LeaseLost { reason: String },
    #[error("the standby cannot follow {stream}: {what}")]
    Follow { stream: &'static str, what: String },
    #[error("the checkpoint key: {0}")]
    CheckpointKey(String),
}

/// A whole request refused: nothing was done, the caller gets a [`crate::wire::ErrorReply`]
/// with [`RequestError::code`] and the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request is not a valid {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("the request has {bytes} bytes, more than the {max} allowed: split it into smaller requests")]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "the request nests JSON {depth} levels deep, more than the {max} allowed: no valid request nests that deep"
    )]
    TooDeep { depth: usize, max: usize },
    #[error("the request has {count} commands, more than the {max} allowed: split it into batches of at most {max}")]
    TooManyCommands { count: usize, max: usize },
    #[error(
        "the reply would have {bytes} bytes, more than the {max} NATS allows in one message: on ledger.range ask for fewer records (`limit`) and continue from `next`"
    )]
    ReplyTooLarge { bytes: usize, max: usize },
    #[error("the ledger has {admitted} {class} requests running or waiting, its limit for that kind: nothing was done; retry after a pause")]
    Overloaded { class: &'static str, admitted: usize },
    #[error("the ledger is unavailable: {reason}: retry later; nothing was written")]
    Unavailable { reason: String },
    #[error("the ledger failed to read its log: {reason}: retry later, and tell the operator")]
    Internal { reason: String },
    #[error(
        "the commands were committed and fsynced by the ledger (records up to seq {seq}), but STOCKPILE_EVENTS had not stored them after {waited_ms} ms: they are not yet safe against the loss of the ledger's machine; send the same commands again (same event ids) until they are acknowledged — a resend is answered `duplicate` with the same seqs, never recorded twice (after a failover to a standby, the new active records them anew, possibly at other seqs)"
    )]
    NotReplicated { seq: u64, waited_ms: u64 },
}

impl RequestError {
    /// Refuses `payload` if it nests deeper than [`crate::wire::JSON_DEPTH_MAX`]; checked
    /// after the size limit and before parsing, on every endpoint.
    pub fn check_depth(payload: &[u8]) -> Result<(), RequestError> {
        let depth = crate::wire::json_depth(payload);
        if depth > crate::wire::JSON_DEPTH_MAX {
            return Err(RequestError::TooDeep { depth, max: crate::wire::JSON_DEPTH_MAX });
        }
        Ok(())
    }

    /// The stable, machine-matchable code carried on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Malformed { .. } => "malformed_request",
            RequestError::TooLarge { .. } => "request_too_large",
            RequestError::TooManyCommands { .. } => "too_many_commands",
            RequestError::TooDeep { .. } => "too_deeply_nested",
            RequestError::ReplyTooLarge { .. } => "reply_too_large",
            RequestError::Overloaded { .. } => "overloaded",
            RequestError::Unavailable { .. } => "unavailable",
            RequestError::Internal { .. } => "internal",
            RequestError::NotReplicated { .. } => "not_replicated",
        }
    }

    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply { error: ErrorBody { code: self.code().to_string(), message: self.to_string() } }
    }
}
