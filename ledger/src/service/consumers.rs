//! The durable pull consumers other accounts read through (see [`super::access`]): created
//! by the ledger at start, in the `STOCKPILE` account, one per partner on `STOCKPILE_FEEDS`
//! and `STOCKPILE_REPORTS` and one for the Commission, each with the one filter its reader
//! may see. Readers cannot create or change consumers: the configuration exports them only a
//! consumer's info, its next messages and its acks.

use super::access::ConsumerSpec;
use super::error::ServiceError;
use super::stream::{ensure_stream, kept_stream_config};
use super::subjects::{REPORTS_STREAM, REPORTS_SUBJECTS};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use std::time::Duration;

/// How long a delivered message waits for its ack before it is delivered again. A partner's
/// reader verifies a record in milliseconds; this is for a slow or restarting reader.
pub const CONSUMER_ACK_WAIT: Duration = Duration::from_secs(30);

/// Messages delivered and not yet acknowledged, per consumer: a reader that stops acking
/// holds at most this many, and the server's memory for it stays bounded.
pub const CONSUMER_ACK_PENDING_MAX: i64 = 1024;

/// The configuration of one pre-created consumer: durable, explicit acks, from the start of
/// its stream, its filter only.
pub fn consumer_config(spec: &ConsumerSpec) -> pull::Config {
    pull::Config {
        durable_name: Some(spec.name.clone()),
        filter_subject: spec.filter.clone(),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: CONSUMER_ACK_WAIT,
        max_ack_pending: CONSUMER_ACK_PENDING_MAX,
        description: Some(format!("read by the account importing {}.{}", spec.stream, spec.name)),
        ..Default::default()
    }
}

/// Creates every consumer of `specs` that does not exist yet. One that exists with another
/// filter is an error (someone changed it in the server: the ledger does not silently widen
/// or narrow what a partner reads). `STOCKPILE_REPORTS` is created first when missing (the
/// projector creates it too, with the same configuration).
pub async fn ensure_consumers(
    js: &jetstream::Context,
    specs: &[ConsumerSpec],
    replicas: usize,
) -> Result<(), ServiceError> {
    if specs.iter().any(|s| s.stream == REPORTS_STREAM) {
        let reports = kept_stream_config(
            REPORTS_STREAM,
            "stock reports as submitted, one message per revision",
            REPORTS_SUBJECTS,
            replicas,
        );
        match js.get_stream(REPORTS_STREAM).await {
            Ok(_) => {}
            Err(_) => {
                ensure_stream(js, reports).await?;
            }
        }
    }
    for spec in specs {
        let failed = |reason: String| ServiceError::Stream { stream: spec.stream.to_string(), reason };
        let stream = js.get_stream(spec.stream).await.map_err(|e| failed(e.to_string()))?;
        match stream.get_consumer::<pull::Config>(&spec.name).await {
            Ok(mut existing) => {
                let filter = existing.info().await.map_err(|e| failed(e.to_string()))?.config.filter_subject.clone();
                if filter != spec.filter {
                    return Err(failed(format!(
                        "consumer {} exists with filter {filter:?}, not {:?}: delete it (nats consumer rm) and restart",
                        spec.name, spec.filter
                    )));
                }
            }
            Err(_) => {
                stream.create_consumer(consumer_config(spec)).await.map_err(|e| failed(e.to_string()))?;
                tracing::info!(stream = spec.stream, consumer = %spec.name, filter = %spec.filter, "created a consumer");
            }
        }
    }
    Ok(())
}
