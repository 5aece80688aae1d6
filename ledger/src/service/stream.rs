//! The `STOCKPILE_EVENTS` stream: its configuration, field by field, and creating or
//! updating it.
//!
//! **Invariant:** the stream holds exactly the ledger's records, in order, one message per
//! record, so stream sequence `n` is ledger record `n`. The outbox keeps it so by publishing
//! every record with `Nats-Expected-Last-Sequence: seq - 1`, and checks it when it resumes.

use super::error::ServiceError;
use super::subjects::{EVENTS_STREAM, EVENTS_SUBJECTS};
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

/// The stream's configuration, every field spelled out.
pub fn events_stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: EVENTS_STREAM.to_string(),
        description: Some("every stockpile ledger record in sequence order: stream seq = ledger seq".to_string()),
        subjects: vec![EVENTS_SUBJECTS.to_string()],
        // A replica of the ledger, not its record: it keeps everything (design §7).
        retention: stream::RetentionPolicy::Limits,
        max_messages: -1,
        max_bytes: -1,
        max_age: Duration::ZERO, // zero: no age limit
        max_messages_per_subject: -1,
        // Records are bounded by the append request limit; the server's max_payload rules.
        max_message_size: -1,
        // With no limits nothing is ever discarded; should a limit ever be set, refuse new
        // records (the outbox retries and alerts) rather than silently drop the oldest.
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: false,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        // Acks are how the outbox knows a record is stored and may advance its cursor.
        no_ack: false,
        duplicate_window: DUPLICATE_WINDOW,
        max_consumers: -1,
        // Partners and auditors read it; nobody may remove a record from the replica.
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        // Reads go through the stream leader, which has every acknowledged record.
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

/// Creates the stream, or updates it to [`events_stream_config`] if it exists with another
/// configuration. Returns the stream's info.
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<stream::Stream<stream::Info>, ServiceError> {
    let config = events_stream_config(replicas);
    let failed = |reason: String| ServiceError::Stream { stream: EVENTS_STREAM, reason };
    match js.create_stream(config.clone()).await {
        Ok(stream) => Ok(stream),
        Err(e) => match e.kind() {
            CreateStreamErrorKind::JetStream(js_error)
                if js_error.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST =>
            {
                js.update_stream(config).await.map_err(|e| failed(e.to_string()))?;
                js.get_stream(EVENTS_STREAM).await.map_err(|e| failed(e.to_string()))
            }
            _ => Err(failed(e.to_string())),
        },
    }
}
