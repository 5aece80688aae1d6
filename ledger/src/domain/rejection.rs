//! Rejections: business outcomes the operator can fix. Never a storage failure.

use super::ids::{Country, EventId, IdError, KeyId};
use super::model::PositionKey;
use super::quantity::{in_unit, QuantityError, Unit};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What to do about an unknown id of kind `what`, by how ids of that kind come into being:
/// parties, facilities and keys are registered by an admin; lots are never registered (an
/// acquire or a conversion creates them); events are recorded by their commands.
fn unknown_advice(what: &str) -> &'static str {
    match what {
        "lot" => "no acquire or conversion created a lot of that id; check the id (`stockpile list lots` shows them)",
        "party" => "no party of that id is registered; check the id (`stockpile list parties`), or have an admin register it",
        "facility" => {
            "no facility of that id is registered; check the id (`stockpile list facilities`), or have an admin register it"
        }
        "key" => "no key of that id is registered; have an admin register it (`stockpile register key`)",
        "event" => "no event of that id is recorded; check the id",
        _ => "check the id",
    }
}

/// Why a command was refused. Nothing was written. Each message says what to change.
///
/// `code()` is the stable, machine-matchable name carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the ledger has no genesis record yet: run `stockpile init` first")]
    NotInitialised,
    #[error("the ledger is already initialised: genesis is allowed only as the first record")]
    AlreadyInitialised,
    #[error("invalid {0}")]
    InvalidId(#[from] IdError),
    #[error("{field}: {error}")]
    BadQuantity { field: &'static str, error: QuantityError },
    #[error("{field} is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("unknown material {material:?}: not in the material reference list (`stockpile list materials` shows it)")]
    UnknownMaterial { material: String },
    #[error("unknown partner {partner:?}: not an ISO 3166-1 alpha-2 code of the partner reference list (`stockpile list partners` shows it)")]
    UnknownPartner { partner: String },
    #[error("unknown {what} {id:?}: {}", unknown_advice(what))]
    Unknown { what: &'static str, id: String },
    #[error("{what} {id:?} is already registered")]
    AlreadyRegistered { what: &'static str, id: String },
    #[error("event id {event_id} was already used{} for a different command: choose a new id, or resend the original command unchanged",
        seq.map(|s| format!(" at seq {s}")).unwrap_or_default())]
    IdConflict {
        event_id: EventId,
        /// Where it was used; not said on a partner's channel (the record may be another's).
        seq: Option<u64>,
    },
    #[error(
        "insufficient stock in {position}: requested {}, available {}: move stock in first, or request less",
        in_unit(*requested_g as i64, *unit), in_unit(*available_g as i64, *unit)
    )]
    InsufficientStock { position: PositionKey, requested_g: u64, available_g: u64, unit: Unit },
    /// Rules 2: the position holds enough now, but not on every business date from the
    /// command's `occurred_at` on. Boxed: it is the largest refusal, and every `Result` of
    /// `decide` would otherwise carry its size.
    #[error("{0}")]
    InsufficientStockAt(Box<ShortAt>),
    #[error("position {position} would exceed the largest representable quantity")]
    QuantityOverflow { position: PositionKey },
    #[error("key {key} acts for {key_party} and may not move stock of {}: sign with a key of the party that holds it",
        party.as_deref().map(|p| format!("party {p}")).unwrap_or_else(|| "a party of another partner".into()))]
    NotOwner {
        key: KeyId,
        key_party: String,
        /// The party whose stock it is; not named on a partner's channel when it belongs to
        /// another partner.
        party: Option<String>,
    },
    #[error("key {key} acts for {key_partner}, but the command came through partner {origin}'s channel: a partner posts only commands signed by its own parties' keys")]
    WrongOrigin { key: KeyId, origin: Country, key_partner: String },
    #[error("key {key} is not an admin key: registrations must be signed by an admin key")]
    NotAdmin { key: KeyId },
    #[error("key {key} is an admin key and acts for no party: sign movements with an operator key of the party")]
    NoParty { key: KeyId },
    #[error("key {key} was revoked at seq {revoked_at}: sign with a current key")]
    KeyRevoked { key: KeyId, revoked_at: u64 },
    #[error("key {key} is registered with a different public key than the one that signed")]
    KeyMismatch { key: KeyId },
    #[error(
        "signature by key {key} does not verify: the command was changed after signing or signed with another key"
    )]
    BadSignature { key: KeyId },
    #[error("occurred_at {occurred_at} is more than {skew_max_s} s after the ledger time {now}: check the clock or the date")]
    OccurredInFuture { occurred_at: DateTime<Utc>, now: DateTime<Utc>, skew_max_s: i64 },
    #[error("occurred_at {occurred_at} is before {min}: check the date")]
    OccurredTooEarly { occurred_at: DateTime<Utc>, min: DateTime<Utc> },
    #[error("event {target} ({kind}) cannot be reversed: only movements can")]
    NotReversible { target: EventId, kind: String },
    #[error("event {target} was already reversed{}", by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())]
    AlreadyReversed {
        target: EventId,
        /// The reversal; not named on a partner's channel.
        by: Option<EventId>,
    },
    #[error("source and destination are the same position {position}: nothing would move")]
    SamePosition { position: PositionKey },
    #[error("batch aborted: command {index} of the batch was rejected, so none of it was applied; fix that command and resend the batch")]
    BatchAborted { index: usize },
}

/// Where a back-dated debit would take a position below zero (`insufficient_stock_at`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "insufficient stock in {position}: taking {} at {} would leave it below zero at {} (balance there: {}): {}",
    in_unit(*requested_g as i64, *unit), rfc3339(requested_at), rfc3339(at), in_unit(*balance_g, *unit),
    match holds_from {
        Some(t) => format!("date the command at or after {}, from when the position holds it, or move stock in before {}", rfc3339(t), rfc3339(at)),
        None => format!("move stock in before {}", rfc3339(at)),
    }
)]
pub struct ShortAt {
    pub position: PositionKey,
    /// The first business time, at or after `requested_at`, whose balance is below the request.
    pub at: DateTime<Utc>,
    /// The balance there before this command, in grams.
    pub balance_g: i64,
    pub requested_g: u64,
    pub requested_at: DateTime<Utc>,
    /// The earliest business time from which the position holds the request on every date.
    pub holds_from: Option<DateTime<Utc>>,
    /// The unit the operator stated the quantity in; figures in the message are in it.
    pub unit: Unit,
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The wire form of a rejection: a stable code and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RejectionInfo {
    pub code: String,
    pub message: String,
}

impl Rejection {
    /// Stable machine-readable code; part of the wire contract.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotInitialised => "not_initialised",
            Rejection::AlreadyInitialised => "already_initialised",
            Rejection::InvalidId(_) => "invalid_id",
            Rejection::BadQuantity { .. } => "bad_quantity",
            Rejection::InvalidField { .. } => "invalid_field",
            Rejection::UnknownMaterial { .. } => "unknown_material",
            Rejection::UnknownPartner { .. } => "unknown_partner",
            Rejection::Unknown { .. } => "unknown_reference",
            Rejection::AlreadyRegistered { .. } => "already_registered",
            Rejection::IdConflict { .. } => "id_conflict",
            Rejection::InsufficientStock { .. } => "insufficient_stock",
            Rejection::InsufficientStockAt { .. } => "insufficient_stock_at",
            Rejection::QuantityOverflow { .. } => "quantity_overflow",
            Rejection::NotOwner { .. } => "not_owner",
            Rejection::WrongOrigin { .. } => "wrong_origin",
            Rejection::NotAdmin { .. } => "not_admin",
            Rejection::NoParty { .. } => "no_party",
            Rejection::KeyRevoked { .. } => "key_revoked",
            Rejection::KeyMismatch { .. } => "key_mismatch",
            Rejection::BadSignature { .. } => "bad_signature",
            Rejection::OccurredInFuture { .. } => "occurred_in_future",
            Rejection::OccurredTooEarly { .. } => "occurred_too_early",
            Rejection::NotReversible { .. } => "not_reversible",
            Rejection::AlreadyReversed { .. } => "already_reversed",
            Rejection::SamePosition { .. } => "same_position",
            Rejection::BatchAborted { .. } => "batch_aborted",
        }
    }

    pub fn info(&self) -> RejectionInfo {
        RejectionInfo { code: self.code().to_string(), message: self.to_string() }
    }
}
