//! The projector's NATS adapter: the only module of this crate that touches NATS.
//!
//! ```text
//! JetStream STOCKPILE_EVENTS ─▶ durable pull consumer ─▶ Projector::ingest ─▶ sled views
//!        (stream seq = ledger seq)      │ gap? ─▶ stockpile.v1.ledger.range (repair)
//! stockpile.v1.holdings.query[.<P>] ─┐
//! stockpile.v1.history.query[.<P>]  ├─▶ micro service stockpile-projector ─▶ reply
//! stockpile.v1.projector.report[.<P>] │   (endpoints.rs; Reader over the views)
//! stockpile.v1.projector.submit.<P> ─┘──▶ STOCKPILE_REPORTS (publisher connection)
//! ```
//!
//! Two connections: the **responder** (`--nkey`, the `projector` user) answers requests; the
//! **publisher** (`--publisher-nkey`, the `projector-publisher` user) reads JetStream, asks
//! `stockpile.v1.ledger.range` and publishes reports. Without a publisher identity one
//! connection does both.
//!
//! The stream is a replica, not the record: before a record is folded the fold checks that
//! its seq is the next one and its `prev_hash` names the last folded record. A record past
//! the head (a gap) is repaired from the ledger's `range` API first, never skipped; a record
//! at or below the head (a redelivery) is acknowledged and ignored. Messages are
//! acknowledged only after their page is persisted, so a crash redelivers, never loses.

mod endpoints;
mod scheduler;
pub mod wire;

pub use endpoints::{REPORT_CATCH_UP_TIMEOUT, REQUESTS_IN_FLIGHT_MAX, REQUEST_BYTES_MAX};
pub use scheduler::{SCHEDULE_POLL, SCHEDULE_RETRY};

use crate::projector::{Projector, ProjectorError};
use crate::query::Holdings;
use crate::source::StoredRecord;
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::StreamExt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use stockpile_ledger::service::access::{self, Identity};
use stockpile_ledger::wire::{ErrorBody, ErrorReply, RangeReply, RangeRequest};

pub use stockpile_ledger::service::subjects::{
    HISTORY_QUERY, HOLDINGS_QUERY, PROJECTOR_REPORT, PROJECTOR_SERVICE_NAME,
};
/// The ledger's range subject, for gap repair.
pub const LEDGER_RANGE: &str = "stockpile.v1.ledger.range";
/// The stream the ledger's outbox publishes every record to.
pub const EVENTS_STREAM: &str = "STOCKPILE_EVENTS";

/// Messages fetched per pull: one fold page, so a fetch is folded and persisted at once.
pub const FETCH_MESSAGES_MAX: usize = crate::projector::PAGE_RECORDS;
/// How long one pull waits for messages before the loop checks for shutdown again.
pub const FETCH_EXPIRES: Duration = Duration::from_millis(500);
/// How long past [`FETCH_EXPIRES`] a pull may stay open before the projector stops waiting.
pub const FETCH_GRACE: Duration = Duration::from_secs(1);
/// How long the consumer waits for an ack before redelivering. Longer than a page takes to
/// fold and persist (milliseconds), short enough that a crashed projector's messages come
/// back quickly to its successor.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for a `ledger.range` answer during gap repair.
pub const RANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a gap repair waits before asking a ledger that did not answer again.
pub const REPAIR_RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// One NATS URL, or several separated by commas.
    pub nats_url: String,
    /// The projector's own data directory (its sled views).
    pub data_dir: PathBuf,
    /// Durable consumer name: one per projector instance that keeps its own views.
    pub durable: String,
    /// The NATS user of the responder connection (the `projector` user of `stockpile nats-config`).
    pub identity: Option<Identity>,
    /// The NATS user of the publisher connection (`projector-publisher`): JetStream, the
    /// ledger's range, report publication. `None`: the responder connection does both.
    pub publisher_identity: Option<Identity>,
    /// Reports to submit by themselves (`--schedule FILE`); `None`: only on request.
    pub schedule: Option<crate::schedule::Schedule>,
}

impl ProjectorConfig {
    pub fn new(nats_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> ProjectorConfig {
        ProjectorConfig {
            nats_url: nats_url.into(),
            data_dir: data_dir.into(),
            durable: "stockpile-projector".into(),
            identity: None,
            publisher_identity: None,
            schedule: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error("gap repair from the ledger failed: {0}")]
    Repair(String),
    /// The ledger did not answer a repair (it is down or restarting): tried again, not fatal.
    #[error("the ledger did not answer the gap repair: {0}")]
    LedgerUnavailable(String),
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("cannot register the micro service {PROJECTOR_SERVICE_NAME}: {0}")]
    Register(String),
}

fn js_err(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::JetStream(e.to_string())
}

/// Opens the projector in `config.data_dir`, follows the stream and answers holdings
/// queries until `shutdown` completes.
pub async fn run(config: ProjectorConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServiceError> {
    let responder = connect(&config.nats_url, config.identity.as_ref()).await?;
    let publisher = match &config.publisher_identity {
        Some(identity) => connect(&config.nats_url, Some(identity)).await?,
        None => responder.clone(),
    };
    let dir = config.data_dir.clone();
    let projector = tokio::task::spawn_blocking(move || Projector::open(&dir))
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??;
    tracing::info!(head = projector.head().seq, "projector opened");
    // The responder lives exactly as long as `run`: aborted on return *and* when `run`'s
    // own task is dropped or aborted, so a dead projector never keeps answering queries
    // from views that no longer move. It is registered before the stream is followed, so
    // `$SRV.PING` answers from the start.
    let endpoints = endpoints::register(&responder).await?;
    let submitting = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    let _queries = AbortOnDrop(tokio::spawn(endpoints.serve(
        responder.clone(),
        publisher.clone(),
        projector.reader(),
        submitting.clone(),
    )));
    let _scheduler = match config.schedule.clone() {
        Some(schedule) => {
            let submissions = projector.store().submissions().map_err(ProjectorError::from)?;
            let scheduler = scheduler::Scheduler {
                schedule,
                reader: projector.reader(),
                submissions,
                publisher: publisher.clone(),
                submitting,
            };
            Some(AbortOnDrop(tokio::spawn(scheduler.run())))
        }
        None => None,
    };
    follow(&publisher, &config, projector, shutdown).await
}

/// Connects to `url` (one URL, or several separated by commas: a cluster) as `identity`.
async fn connect(url: &str, identity: Option<&Identity>) -> Result<async_nats::Client, ServiceError> {
    let servers: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    access::connect_patiently(&servers, || access::authenticate(async_nats::ConnectOptions::new(), identity))
        .await
        .map_err(|e| ServiceError::Connect { url: url.to_string(), reason: e.to_string() })
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn follow(
    client: &async_nats::Client,
    config: &ProjectorConfig,
    mut projector: Projector,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    let js = jetstream::new(client.clone());
    tokio::pin!(shutdown);
    // The stream may not exist yet (the ledger creates it): stay stoppable while waiting.
    let consumer = tokio::select! {
        () = &mut shutdown => return Ok(()),
        c = consumer(&js, config, projector.head().seq) => c?,
    };
    loop {
        let fetched = tokio::select! {
            () = &mut shutdown => return Ok(()),
            f = consumer.fetch().max_messages(FETCH_MESSAGES_MAX).expires(FETCH_EXPIRES).messages() => f,
        };
        let mut batch = match fetched {
            Ok(b) => b,
            Err(e) => {
                // NATS is down or the stream is moving leaders: wait, then pull again.
                tracing::warn!(error = %e, "fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let mut messages = Vec::new();
        // The server ends a pull at its expiry; should that end-of-batch signal be lost (a
        // busy or restarting server), stop waiting on our own clock and fold what arrived.
        let give_up = tokio::time::Instant::now() + FETCH_EXPIRES + FETCH_GRACE;
        loop {
            match tokio::time::timeout_at(give_up, batch.next()).await {
                Ok(Some(Ok(m))) => messages.push(m),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "message fetch error");
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("pull did not end at its expiry; folding what arrived");
                    break;
                }
            }
        }
        if messages.is_empty() {
            continue;
        }
        // A gap is repaired from the ledger; while the ledger is down or restarting the
        // repair is tried again (the projector and the fetched messages wait, unacknowledged),
        // so a ledger restart never stops the projector.
        let page = loop {
            let head = projector.head().seq;
            let attempt = tokio::select! {
                () = &mut shutdown => return Ok(()),
                page = page_of(client, head, &messages) => page,
            };
            match attempt {
                Ok(page) => break page,
                Err(ServiceError::LedgerUnavailable(e)) => {
                    tracing::warn!(error = %e, "gap repair: the ledger did not answer; retrying");
                    tokio::time::sleep(REPAIR_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        };
        projector = ingest(projector, page).await?;
        for m in &messages {
            if let Err(e) = m.ack().await {
                // An unacknowledged message comes back and is ignored as already folded.
                tracing::warn!(error = %e, "ack failed");
            }
        }
    }
}

async fn consumer(
    js: &jetstream::Context,
    config: &ProjectorConfig,
    head: u64,
) -> Result<jetstream::consumer::Consumer<pull::Config>, ServiceError> {
    let stream = loop {
        match js.get_stream(EVENTS_STREAM).await {
            Ok(s) => break s,
            // The ledger creates the stream; a projector started first waits for it.
            Err(e) => {
                tracing::info!(error = %e, "waiting for stream {EVENTS_STREAM}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let config = pull::Config {
        durable_name: Some(config.durable.clone()),
        description: Some("stockpile projector: folds every record into holdings views".into()),
        // A new consumer starts after what the views already hold; an existing one resumes
        // from its ack floor (redeliveries at or below the head are ignored).
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: head + 1 },
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_deliver: -1,
        max_ack_pending: (FETCH_MESSAGES_MAX * 4) as i64,
        max_batch: FETCH_MESSAGES_MAX as i64,
        ..Default::default()
    };
    // On a busy cluster the consumer's creation (a raft proposal on an R3 stream) can time
    // out: tried again for a while before the projector gives up.
    let deadline = tokio::time::Instant::now() + CONSUMER_CREATE_WAIT;
    loop {
        let name = config.durable_name.clone().unwrap_or_default();
        match stream.get_or_create_consumer(&name, config.clone()).await {
            Ok(consumer) => return Ok(consumer),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "cannot create or find the consumer yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(js_err(e)),
        }
    }
}

/// How long the projector keeps trying to create (or find) its durable consumer.
pub const CONSUMER_CREATE_WAIT: Duration = Duration::from_secs(60);

/// The fetched records not yet folded (after `head`), in seq order, with every hole before
/// or among them filled from the ledger — never from trust.
async fn page_of(
    client: &async_nats::Client,
    head: u64,
    messages: &[jetstream::Message],
) -> Result<Vec<StoredRecord>, ServiceError> {
    let mut records: Vec<(u64, StoredRecord)> = Vec::with_capacity(messages.len());
    for m in messages {
        let seq = m.info().map(|i| i.stream_sequence).map_err(js_err)?;
        records.push((seq, m.payload.to_vec()));
    }
    records.sort_by_key(|(s, _)| *s);
    // Walk the batch in seq order: skip what is folded (redeliveries, a seq twice), and
    // fill every hole — before the batch or inside it — from the ledger.
    let mut next = head + 1;
    let mut page: Vec<StoredRecord> = Vec::with_capacity(records.len());
    for (seq, record) in records {
        if seq < next {
            continue;
        }
        if seq > next {
            tracing::warn!(from = next, to = seq - 1, "gap in the stream; repairing from the ledger");
            page.extend(repair(client, next, seq - 1).await?);
        }
        page.push(record);
        next = seq + 1;
    }
    Ok(page)
}

/// Folds `page` into the projector on a blocking thread.
async fn ingest(projector: Projector, page: Vec<StoredRecord>) -> Result<Projector, ServiceError> {
    if page.is_empty() {
        return Ok(projector);
    }
    tokio::task::spawn_blocking(move || {
        let mut projector = projector;
        projector.ingest(&page)?;
        Ok::<_, ServiceError>(projector)
    })
    .await
    .map_err(|e| ServiceError::Task(e.to_string()))?
}

/// Records `from..=to` as the ledger stored them, through `ledger.range` (paged).
async fn repair(client: &async_nats::Client, from: u64, to: u64) -> Result<Vec<StoredRecord>, ServiceError> {
    let mut out = Vec::new();
    let mut next = from;
    while next <= to {
        let request = serde_json::to_vec(&RangeRequest { from: next, to: Some(to), limit: None }).expect("encodes");
        let reply = tokio::time::timeout(RANGE_TIMEOUT, client.request(LEDGER_RANGE, request.into()))
            .await
            .map_err(|_| ServiceError::LedgerUnavailable("ledger.range timed out".into()))?
            .map_err(|e| ServiceError::LedgerUnavailable(e.to_string()))?;
        let page: RangeReply = serde_json::from_slice(&reply.payload)
            .map_err(|e| ServiceError::Repair(format!("unexpected range reply: {e}")))?;
        if page.records.is_empty() {
            return Err(ServiceError::Repair(format!("the ledger has no record {next} (head {})", page.head)));
        }
        next += page.records.len() as u64;
        out.extend(page.records.into_iter().map(|r| r.get().as_bytes().to_vec()));
    }
    Ok(out)
}

fn error_reply(code: &str, message: String) -> Vec<u8> {
    serde_json::to_vec(&ErrorReply { error: ErrorBody { code: code.into(), message } }).expect("encodes")
}

/// Bytes of a reply kept free below the server's `max_payload`: the reply's own estimate is
/// exact, this only covers a `next` offset growing by a few digits as rows are cut.
const REPLY_SLACK_BYTES: usize = 64;

/// How many of `rows`, from the first, fit one message of at most `max_payload` bytes beside
/// an envelope of `envelope` bytes (the reply encoded with no rows and a `next` of the widest
/// offset): each row costs its JSON and a comma, and [`REPLY_SLACK_BYTES`] stay free. The
/// holdings and history endpoints both page with it.
fn rows_that_fit<R: serde::Serialize>(envelope: usize, rows: &[R], max_payload: usize) -> usize {
    let mut bytes = envelope + REPLY_SLACK_BYTES;
    let mut kept = 0;
    for row in rows {
        bytes += serde_json::to_vec(row).expect("row encodes").len() + 1;
        if bytes > max_payload {
            break;
        }
        kept += 1;
    }
    kept
}

/// `holdings` encoded to fit one message of at most `max_payload` bytes: as many rows as
/// fit, with `next` naming the first row left out. A reply the server would refuse is never
/// sent (it would vanish: the publish fails and the asker waits for its timeout).
fn fit_one_message(mut holdings: Holdings, max_payload: usize) -> Vec<u8> {
    let whole = serde_json::to_vec(&holdings).expect("holdings encode");
    if whole.len() <= max_payload {
        return whole;
    }
    let mut rows = std::mem::take(&mut holdings.rows);
    let limit_next = holdings.next;
    holdings.next = Some(u64::MAX);
    let envelope = serde_json::to_vec(&holdings).expect("holdings encode").len();
    let kept = rows_that_fit(envelope, &rows, max_payload);
    if kept == 0 {
        return error_reply(
            "reply_too_large",
            format!("not even one row fits the server's max_payload of {max_payload} bytes: raise max_payload"),
        );
    }
    holdings.next = if kept < rows.len() { Some(holdings.query.offset + kept as u64) } else { limit_next };
    rows.truncate(kept);
    holdings.rows = rows;
    serde_json::to_vec(&holdings).expect("holdings encode")
}

#[cfg(test)]
mod rows_that_fit_tests {
    use super::{rows_that_fit, REPLY_SLACK_BYTES};

    #[test]
    fn rows_fit_up_to_max_payload_exactly_with_a_comma_each_and_the_slack() {
        // `"abcd"` is 6 bytes of JSON, 7 with its comma.
        let rows = ["abcd"; 5];
        let envelope = 100;
        let three = envelope + REPLY_SLACK_BYTES + 3 * 7;
        assert_eq!(rows_that_fit(envelope, &rows, three), 3, "exactly three rows' bytes: three rows");
        assert_eq!(rows_that_fit(envelope, &rows, three - 1), 2, "a byte short of three: two");
        assert_eq!(rows_that_fit(envelope, &rows, envelope + REPLY_SLACK_BYTES + 6), 0, "not one row");
        assert_eq!(rows_that_fit(envelope, &rows, usize::MAX / 2), 5, "all of them, and no more");
        assert_eq!(rows_that_fit::<&str>(envelope, &[], 1 << 20), 0);
    }
}
