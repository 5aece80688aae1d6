//! The outbox publisher: forwards every committed record, in sequence order, to the
//! `STOCKPILE_EVENTS` stream, and advances the durable outbox cursor after the acks.
//!
//! ```text
//! head watch ─▶ read records (next..) ─▶ publish, ≤ OUTBOX_ACKS_IN_FLIGHT_MAX unacked ─▶ acks in order ─▶ cursor
//! ```
//!
//! The writer never waits on it: appends are durable before the outbox sees them, and
//! while NATS is away the records simply wait in the log.
//!
//! **Invariant:** the stream is a gap-free prefix of the log (stream seq `n` = record `n`).
//! Every publish carries `Nats-Expected-Last-Sequence: seq - 1`, so a record whose
//! predecessor did not land (a dropped connection, a stream leader lost in a cluster) is
//! refused by JetStream instead of being stored out of order. After any failure the outbox
//! resyncs: it reads the stream's last message, checks it is this ledger's record (same seq
//! and hash), and resumes right after it. A record resent because its ack was lost carries
//! the same `Nats-Msg-Id` (its event id) and JetStream's duplicate window drops it.
//!
//! The durable cursor ([`Store::outbox_cursor`]) records how far publication is confirmed,
//! for operators and as a check on resync; where to resume always comes from the stream
//! itself, so a cursor behind the stream (a crash between ack and cursor write) costs
//! nothing, and an emptied stream is refilled from the log.

use super::error::ServiceError;
use super::shutdown::Stop;
use super::stream::ensure_events_stream;
use super::subjects::{event_subject, HEADER_HASH, HEADER_SEQ};
use crate::error::LedgerError;
use crate::store::Store;
use async_nats::jetstream::{self, context::Publish, context::PublishAckFuture};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;

/// Publishes awaiting their ack. Enough to keep the link to JetStream busy (an ack takes a
/// round trip plus the stream's own write, or a raft commit on a replicated stream) and to
/// let publication keep up with the writer; bounded so an outage holds little in memory
/// and a resync re-sends at most this many records.
pub const OUTBOX_ACKS_IN_FLIGHT_MAX: usize = 256;

/// Records read from the log at once. A few frames of the store; amortises the blocking
/// read without delaying the first publish of a burst.
pub const OUTBOX_READ_RECORDS_MAX: u64 = 512;

/// Acked records between two writes of the durable cursor while busy. Each write is an
/// fsync that the writer's own commit must share the disk with; the cursor is advisory
/// (resync uses the stream), so every few thousand records is plenty. When the outbox
/// catches up with the head it writes the cursor at once.
pub const OUTBOX_CURSOR_SAVE_RECORDS: u64 = 4096;

/// How long a publish waits for its ack before the outbox assumes the link is broken and
/// resyncs. Longer than a JetStream leader election on a healthy cluster (a few seconds),
/// so a failover is a pause, not an error.
pub const OUTBOX_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// First wait after a failure; doubled after each failure in a row.
pub const OUTBOX_RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Longest wait between two attempts: catches up within seconds of NATS returning, and
/// costs one request per interval while it is away.
pub const OUTBOX_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum OutboxError {
    #[error("JetStream: {0}")]
    Nats(String),
    #[error("the stream {stream} is not a copy of this ledger: {what}: recreate the stream (the outbox refills it from the log) or point the ledger at its own NATS account", stream = super::subjects::EVENTS_STREAM)]
    Diverged { what: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

fn nats(e: impl std::fmt::Display) -> OutboxError {
    OutboxError::Nats(e.to_string())
}

/// What the outbox needs from a stored record, decoded without the rest of it.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    body: Fields<'a>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    seq: u64,
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    scope: ScopeFields<'a>,
}

#[derive(Deserialize)]
struct ScopeFields<'a> {
    #[serde(borrow, default)]
    partners: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    material: Option<Cow<'a, str>>,
}

/// One record ready to publish.
struct Outgoing {
    seq: u64,
    subject: String,
    event_id: String,
    hash: String,
    bytes: Vec<u8>,
}

impl Outgoing {
    fn decode(seq: u64, bytes: Vec<u8>) -> Result<Outgoing, LedgerError> {
        let corrupt = |what: String| LedgerError::Corrupt { seq, what };
        let envelope: Envelope<'_> =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("record does not decode: {e}")))?;
        let fields = &envelope.body;
        if fields.seq != seq {
            return Err(corrupt(format!("record stored at seq {seq} says seq {}", fields.seq)));
        }
        let subject = event_subject(
            fields.scope.partners.first().map(|p| p.as_ref()),
            fields.scope.material.as_deref(),
            &fields.kind,
        );
        let (event_id, hash) = (fields.event_id.to_string(), envelope.hash.to_string());
        Ok(Outgoing { seq, subject, event_id, hash, bytes })
    }
}

pub(crate) struct Outbox {
    js: jetstream::Context,
    store: Store,
    head: watch::Receiver<u64>,
    stop: Stop,
    replicas: usize,
    /// The next record to publish.
    next: u64,
    /// The last record known to be in the stream.
    acked: u64,
    /// The last value written to the durable cursor.
    saved: u64,
}

impl Outbox {
    pub(crate) fn new(
        client: async_nats::Client,
        store: Store,
        head: watch::Receiver<u64>,
        stop: Stop,
        replicas: usize,
    ) -> Result<Outbox, LedgerError> {
        let mut js = jetstream::new(client);
        js.set_timeout(OUTBOX_ACK_TIMEOUT);
        let saved = store.outbox_cursor()?;
        Ok(Outbox { js, store, head, stop, replicas, next: saved + 1, acked: saved, saved })
    }

    /// Publishes until stop, retrying every failure with a capped backoff; on stop waits for
    /// the acks in flight (each bounded by [`OUTBOX_ACK_TIMEOUT`]) and writes the cursor.
    pub(crate) async fn run(mut self) {
        let mut backoff = OUTBOX_RETRY_BACKOFF_MIN;
        while !self.stop.is_set() {
            let result = match self.resync().await {
                Ok(()) => self.pump(&mut backoff).await,
                Err(e) => Err(e),
            };
            let Err(e) = result else { break };
            match e {
                OutboxError::Nats(_) => tracing::warn!(error = %e, retry_in = ?backoff, "outbox paused"),
                _ => tracing::error!(error = %e, retry_in = ?backoff, "outbox stopped publishing"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.wait() => {}
            }
            backoff = (backoff * 2).min(OUTBOX_RETRY_BACKOFF_MAX);
        }
        if let Err(e) = self.save_cursor().await {
            tracing::error!(error = %e, "writing the outbox cursor at shutdown");
        }
    }

    /// Makes sure the stream exists and finds where to resume: right after its last
    /// message, once that message is shown to be this ledger's record.
    async fn resync(&mut self) -> Result<(), OutboxError> {
        let stream = ensure_events_stream(&self.js, self.replicas).await.map_err(|e| match e {
            ServiceError::Stream { reason, .. } => {
                OutboxError::Nats(format!("cannot create or update the stream: {reason}"))
            }
            other => nats(other),
        })?;
        let last = stream.cached_info().state.last_sequence;
        if last > 0 {
            let Some(ours) = self.read(last, last).await?.pop() else {
                return Err(OutboxError::Diverged {
                    what: format!("it holds {last} messages, more than the ledger's records"),
                });
            };
            let message = stream.get_raw_message(last).await.map_err(nats)?;
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string()).unwrap_or_default();
            let (seq, hash) = (header(HEADER_SEQ), header(HEADER_HASH));
            if seq != last.to_string() || hash != ours.hash {
                return Err(OutboxError::Diverged {
                    what: format!(
                        "its message {last} has {HEADER_SEQ} {seq:?} and {HEADER_HASH} {hash:?}, but record {last} has hash {:?}",
                        ours.hash
                    ),
                });
            }
        }
        if last < self.saved {
            tracing::warn!(
                stream_last = last,
                cursor = self.saved,
                "the stream has fewer records than the outbox cursor (it was recreated or lost data): refilling it from the log"
            );
        }
        self.acked = last;
        self.next = last + 1;
        self.save_cursor().await?;
        Ok(())
    }

    /// Publishes records as the head moves, until stop (`Ok`) or a failure (`Err`: resync).
    async fn pump(&mut self, backoff: &mut Duration) -> Result<(), OutboxError> {
        let mut in_flight: VecDeque<(u64, PublishAckFuture)> = VecDeque::with_capacity(OUTBOX_ACKS_IN_FLIGHT_MAX);
        loop {
            if self.stop.is_set() {
                return self.settle(&mut in_flight).await;
            }
            let head = *self.head.borrow_and_update();
            if self.next > head {
                self.settle(&mut in_flight).await?;
                self.save_cursor().await?;
                tokio::select! {
                    changed = self.head.changed() => {
                        if changed.is_err() {
                            // The ledger stopped: nothing more will be committed.
                            self.stop.wait().await;
                        }
                    }
                    () = self.stop.wait() => {}
                }
                continue;
            }
            let to = head.min(self.next + OUTBOX_READ_RECORDS_MAX - 1);
            let batch = self.read(self.next, to).await?;
            if batch.is_empty() {
                let what = format!("record {} is missing although the head is {head}", self.next);
                return Err(LedgerError::Corrupt { seq: self.next, what }.into());
            }
            for record in batch {
                if in_flight.len() >= OUTBOX_ACKS_IN_FLIGHT_MAX {
                    let (seq, ack) = in_flight.pop_front().expect("in flight is full");
                    self.confirm(seq, ack).await?;
                    *backoff = OUTBOX_RETRY_BACKOFF_MIN;
                    if self.acked - self.saved >= OUTBOX_CURSOR_SAVE_RECORDS {
                        self.save_cursor().await?;
                    }
                }
                let seq = record.seq;
                in_flight.push_back((seq, self.publish(record).await?));
                self.next = seq + 1;
            }
        }
    }

    async fn publish(&self, record: Outgoing) -> Result<PublishAckFuture, OutboxError> {
        let mut publish = Publish::build()
            .message_id(&record.event_id)
            .header(HEADER_SEQ, record.seq.to_string())
            .header(HEADER_HASH, record.hash)
            .payload(record.bytes.into());
        if record.seq > 1 {
            // Record 1 has no predecessor to expect; JetStream before 2.10 reads an expected
            // last sequence of 0 as "no expectation" anyway.
            publish = publish.expected_last_sequence(record.seq - 1);
        }
        self.js.send_publish(record.subject, publish).await.map_err(nats)
    }

    /// Waits for one ack and checks it stored the record at its own seq.
    async fn confirm(&mut self, seq: u64, ack: PublishAckFuture) -> Result<(), OutboxError> {
        let ack = ack.await.map_err(|e| OutboxError::Nats(format!("record {seq} was not acknowledged: {e}")))?;
        if ack.sequence != seq {
            return Err(OutboxError::Diverged {
                what: format!("record {seq} was stored as message {} (duplicate: {})", ack.sequence, ack.duplicate),
            });
        }
        self.acked = seq;
        Ok(())
    }

    async fn settle(&mut self, in_flight: &mut VecDeque<(u64, PublishAckFuture)>) -> Result<(), OutboxError> {
        while let Some((seq, ack)) = in_flight.pop_front() {
            self.confirm(seq, ack).await?;
        }
        Ok(())
    }

    async fn save_cursor(&mut self) -> Result<(), LedgerError> {
        if self.acked == self.saved {
            return Ok(());
        }
        let (store, acked) = (self.store.clone(), self.acked);
        tokio::task::spawn_blocking(move || store.set_outbox_cursor(acked))
            .await
            .map_err(|_| LedgerError::Stopped)??;
        self.saved = acked;
        Ok(())
    }

    /// Records `from..=to` from the log, decoded for publishing. Fewer than asked only when
    /// the log ends before `to`.
    async fn read(&self, from: u64, to: u64) -> Result<Vec<Outgoing>, LedgerError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut raw: Vec<(u64, Vec<u8>)> = Vec::with_capacity((to - from + 1) as usize);
            store.scan(from, |seq, bytes| {
                if seq > to {
                    return false;
                }
                raw.push((seq, bytes.to_vec()));
                true
            })?;
            raw.into_iter().map(|(seq, bytes)| Outgoing::decode(seq, bytes)).collect()
        })
        .await
        .map_err(|_| LedgerError::Stopped)?
    }
}
