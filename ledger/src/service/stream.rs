//! The ledger's streams — `STOCKPILE_EVENTS` (every record) and `STOCKPILE_FEEDS` (each
//! record on the feed of every partner it concerns) — their configuration, field by field,
//! and creating or updating them.
//!
//! **Invariant:** the stream holds exactly the ledger's records, in order, one message per
//! record, so stream sequence `n` is ledger record `n`. The outbox keeps it so by publishing
//! every record with `Nats-Expected-Last-Sequence: seq - 1`, and checks it when it resumes.

use super::error::ServiceError;
use super::subjects::{CHECKPOINTS, CHECKPOINTS_STREAM, EVENTS_STREAM, EVENTS_SUBJECTS, FEEDS_STREAM, FEEDS_SUBJECTS};
use async_nats::jetstream::{self, context::CreateStreamErrorKind, stream};
use std::collections::HashMap;
use std::time::Duration;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a resent record. It only has to
/// cover publishes that were in flight when the outbox lost its connection or its process
/// (a resend follows within the retry backoff, seconds later); a restarted outbox resumes
/// from the stream's own last record, not from the window. Two minutes is JetStream's own
/// default, written out here because the outbox's correctness leans on it; much longer would
/// make the server hold one id per record published in the window, which is millions during
/// a bulk import.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The configuration of a stream that is a record: kept whole (file storage, no age, size
/// or count limit), never deleted from or purged, duplicates dropped within
/// [`DUPLICATE_WINDOW`]. Every field spelled out. `STOCKPILE_EVENTS`, `STOCKPILE_FEEDS` and
/// the projector's `STOCKPILE_REPORTS` are all this, with their own names and subjects.
pub fn kept_stream_config(name: &str, description: &str, subjects: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        description: Some(description.to_string()),
        subjects: vec![subjects.to_string()],
        // Kept whole: a replica of the ledger (or a record of submissions) loses nothing (design §7).
        retention: stream::RetentionPolicy::Limits,
        max_messages: -1,
        max_bytes: -1,
        max_age: Duration::ZERO, // zero: no age limit
        max_messages_per_subject: -1,
        // Records are bounded by the append request limit; the server's max_payload rules.
        max_message_size: -1,
        // With no limits nothing is ever discarded; should a limit ever be set, refuse new
        // records (the publisher retries and alerts) rather than silently drop the oldest.
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: false,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        // Acks are how a publisher knows a message is stored and may move on.
        no_ack: false,
        duplicate_window: DUPLICATE_WINDOW,
        max_consumers: -1,
        // Partners and auditors read it; nobody may remove a message.
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        // Reads go through the stream leader, which has every acknowledged message.
        allow_direct: false,
        mirror_direct: false,
        sealed: false,
        template_owner: String::new(),
        republish: None,
        mirror: None,
        sources: None,
        placement: None,
        metadata: HashMap::new(),
        subject_transform: None,
        compression: None,
        consumer_limits: None,
        first_sequence: None,
    }
}

/// `STOCKPILE_EVENTS`: every record, stream seq = ledger seq.
pub fn events_stream_config(replicas: usize) -> stream::Config {
    kept_stream_config(
        EVENTS_STREAM,
        "every stockpile ledger record in sequence order: stream seq = ledger seq",
        EVENTS_SUBJECTS,
        replicas,
    )
}

/// `STOCKPILE_FEEDS`: each record once per partner it concerns, in ledger order.
pub fn feeds_stream_config(replicas: usize) -> stream::Config {
    kept_stream_config(
        FEEDS_STREAM,
        "each stockpile ledger record once per partner it concerns, on that partner's feed, in ledger order",
        FEEDS_SUBJECTS,
        replicas,
    )
}

/// `STOCKPILE_CHECKPOINTS`: every signed checkpoint the ledger publishes, kept like a
/// record, with direct gets allowed so any reader with the import fetches the latest
/// (`$JS.API.DIRECT.GET.STOCKPILE_CHECKPOINTS.stockpile.v1.checkpoints`) from any replica.
pub fn checkpoints_stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        allow_direct: true,
        ..kept_stream_config(
            CHECKPOINTS_STREAM,
            "every signed checkpoint of the stockpile ledger, in the order published",
            CHECKPOINTS,
            replicas,
        )
    }
}

/// Creates the stream, or updates it to `config` if it exists with another configuration.
/// Returns the stream's info.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream<stream::Info>, ServiceError> {
    let name = config.name.clone();
    let failed = |reason: String| ServiceError::Stream { stream: name.clone(), reason };
    match js.create_stream(config.clone()).await {
        Ok(stream) => Ok(stream),
        Err(e) => match e.kind() {
            CreateStreamErrorKind::JetStream(js_error)
                if js_error.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST =>
            {
                js.update_stream(config).await.map_err(|e| failed(e.to_string()))?;
                js.get_stream(&name).await.map_err(|e| failed(e.to_string()))
            }
            _ => Err(failed(e.to_string())),
        },
    }
}
