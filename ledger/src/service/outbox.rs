//! The outbox publishers: forward every committed record, in sequence order, to a
//! JetStream stream — [`Target::Events`]: once to `STOCKPILE_EVENTS`, advancing the durable
//! outbox cursor after the acks; [`Target::Feeds`]: once per partner it concerns to
//! `STOCKPILE_FEEDS` (a transfer between DE and NL goes to both feeds). Each target runs its
//! own publisher over the same log, so a slow or broken feed never holds up the other.
//!
//! ```text
//! head watch ─▶ read records (next..) ─▶ publish copies, ≤ OUTBOX_ACKS_IN_FLIGHT_MAX unacked ─▶ acks in order ─▶ cursor
//! ```
//!
//! The writer never waits on them: appends are durable before an outbox sees them, and
//! while NATS is away the records simply wait in the log.
//!
//! **Invariant:** each stream is a gap-free, duplicate-free prefix of the log's copies, in
//! order (for `STOCKPILE_EVENTS`, stream seq `n` = record `n`). Every publish carries
//! `Nats-Expected-Last-Sequence` = the stream sequence of the copy before it, so a copy whose
//! predecessor did not land (a dropped connection, a stream leader lost in a cluster) is
//! refused by JetStream instead of being stored out of order; and every publish made while the
//! one before it is unacknowledged carries `Nats-Expected-Last-Msg-Id` = the id of that copy
//! (on `STOCKPILE_EVENTS` the record's hash), so a pipelined publish can never land after
//! another writer's message at the expected sequence (a deposed ledger of a failover group).
//! After any failure the outbox resyncs: it reads the stream's last message, checks it is this ledger's record (its seq
//! and hash headers), and resumes with the copy right after it. A copy resent because its
//! ack was lost carries the same `Nats-Msg-Id` (the record's hash; for a feed the event id
//! and the partner)
//! and JetStream's duplicate window drops it.
//!
//! The durable cursor ([`Store::outbox_cursor`], events only) records how far publication is
//! confirmed, for operators and as a check on resync; where to resume always comes from the
//! stream itself, so a cursor behind the stream (a crash between ack and cursor write) costs
//! nothing, and an emptied stream is refilled from the log.

use super::error::ServiceError;
use super::shutdown::Stop;
use super::stream::{ensure_stream, events_stream_config, feeds_stream_config};
use super::subjects::{event_subject, feed_subject, HEADER_HASH, HEADER_PARTNER, HEADER_SEQ};
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
    #[error("the stream {stream} is not a copy of this ledger: {what}: recreate the stream (the outbox refills it from the log) or point the ledger at its own NATS account")]
    Diverged { stream: &'static str, what: String },
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

/// Where an outbox publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `STOCKPILE_EVENTS`: one copy of every record; keeps the durable outbox cursor.
    Events,
    /// `STOCKPILE_FEEDS`: one copy per partner in the record's scope (none for a record that
    /// concerns no partner, such as an admin key registration).
    Feeds,
}

impl Target {
    fn stream(self) -> &'static str {
        match self {
            Target::Events => super::subjects::EVENTS_STREAM,
            Target::Feeds => super::subjects::FEEDS_STREAM,
        }
    }

    fn config(self, replicas: usize) -> async_nats::jetstream::stream::Config {
        match self {
            Target::Events => events_stream_config(replicas),
            Target::Feeds => feeds_stream_config(replicas),
        }
    }
}

/// One message to publish: a record on one subject.
struct Copy {
    subject: String,
    msg_id: String,
    /// The feed's partner; `None` on `STOCKPILE_EVENTS`.
    partner: Option<String>,
}

/// One record ready to publish, with its copies for the outbox's target.
struct Outgoing {
    seq: u64,
    hash: String,
    bytes: bytes::Bytes,
    copies: Vec<Copy>,
}

impl Outgoing {
    fn decode(target: Target, seq: u64, bytes: Vec<u8>) -> Result<Outgoing, LedgerError> {
        let corrupt = |what: String| LedgerError::Corrupt { seq, what };
        let envelope: Envelope<'_> =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("record does not decode: {e}")))?;
        let fields = &envelope.body;
        if fields.seq != seq {
            return Err(corrupt(format!("record stored at seq {seq} says seq {}", fields.seq)));
        }
        let material = fields.scope.material.as_deref();
        let copies = match target {
            Target::Events => vec![Copy {
                subject: event_subject(fields.scope.partners.first().map(|p| p.as_ref()), material, &fields.kind),
                msg_id: envelope.hash.to_string(),
                partner: None,
            }],
            Target::Feeds => fields
                .scope
                .partners
                .iter()
                .map(|partner| Copy {
                    subject: feed_subject(partner, material, &fields.kind),
                    msg_id: format!("{}@{partner}", fields.event_id),
                    partner: Some(partner.to_string()),
                })
                .collect(),
        };
        let hash = envelope.hash.to_string();
        Ok(Outgoing { seq, hash, bytes: bytes.into(), copies })
    }
}

/// A publish awaiting its ack.
struct InFlight {
    /// The stream sequence the message must be stored at.
    stream_seq: u64,
    seq: u64,
    /// Whether it is its record's last copy: once acked, the record is published.
    last_copy: bool,
    ack: PublishAckFuture,
}

pub(crate) struct Outbox {
    target: Target,
    js: jetstream::Context,
    store: Store,
    head: watch::Receiver<u64>,
    stop: Stop,
    replicas: usize,
    /// The next record to publish, and the first of its copies still to publish.
    next: (u64, usize),
    /// The stream's last sequence, counting the publishes in flight.
    stream_last: u64,
    /// The last record all of whose copies are known to be in the stream.
    acked: u64,
    /// The last value written to the durable cursor (events only).
    saved: u64,
    /// Where [`Self::acked`] is announced (the events outbox of a `--replicate` ledger: the
    /// appends wait on it).
    stored: Option<watch::Sender<u64>>,
    /// The `Nats-Msg-Id` of the message this outbox published last since its last resync:
    /// the next publish expects it as the stream's last (`Nats-Expected-Last-Msg-Id`).
    published_last: Option<String>,
    /// Stop for good when the stream is found not to be a copy of this log (the active
    /// ledger of a failover group: a standby then repairs its directory and takes over).
    stop_on_divergence: bool,
}

impl Outbox {
    pub(crate) fn new(
        target: Target,
        client: async_nats::Client,
        store: Store,
        head: watch::Receiver<u64>,
        stop: Stop,
        replicas: usize,
        stored: Option<watch::Sender<u64>>,
    ) -> Result<Outbox, LedgerError> {
        let mut js = jetstream::new(client);
        js.set_timeout(OUTBOX_ACK_TIMEOUT);
        let saved = if target == Target::Events { store.outbox_cursor()? } else { 0 };
        Ok(Outbox {
            target,
            js,
            store,
            head,
            stop,
            replicas,
            next: (saved + 1, 0),
            stream_last: 0,
            acked: saved,
            saved,
            stored,
            published_last: None,
            stop_on_divergence: false,
        })
    }

    /// Makes [`Self::run`] end when the stream diverged from the log instead of retrying.
    pub(crate) fn stop_on_divergence(mut self) -> Outbox {
        self.stop_on_divergence = true;
        self
    }

    /// Publishes until stop, retrying every failure with a capped backoff; on stop waits for
    /// the acks in flight (each bounded by [`OUTBOX_ACK_TIMEOUT`]) and writes the cursor.
    pub(crate) async fn run(mut self) {
        let mut backoff = OUTBOX_RETRY_BACKOFF_MIN;
        let stream = self.target.stream();
        while !self.stop.is_set() {
            let result = match self.resync().await {
                Ok(()) => self.pump(&mut backoff).await,
                Err(e) => Err(e),
            };
            let Err(e) = result else { break };
            if self.stop_on_divergence && matches!(e, OutboxError::Diverged { .. }) {
                tracing::error!(stream, error = %e, "outbox stopped: the stream is not a copy of this log");
                return;
            }
            match e {
                OutboxError::Nats(_) => tracing::warn!(stream, error = %e, retry_in = ?backoff, "outbox paused"),
                _ => tracing::error!(stream, error = %e, retry_in = ?backoff, "outbox stopped publishing"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.wait() => {}
            }
            backoff = (backoff * 2).min(OUTBOX_RETRY_BACKOFF_MAX);
        }
        if let Err(e) = self.save_cursor().await {
            tracing::error!(stream, error = %e, "writing the outbox cursor at shutdown");
        }
    }

    fn diverged(&self, what: String) -> OutboxError {
        OutboxError::Diverged { stream: self.target.stream(), what }
    }

    /// Makes sure the stream exists and finds where to resume: right after the copy in its
    /// last message, once that message is shown to be this ledger's record.
    async fn resync(&mut self) -> Result<(), OutboxError> {
        let stream = ensure_stream(&self.js, self.target.config(self.replicas)).await.map_err(|e| match e {
            ServiceError::Stream { reason, .. } => {
                OutboxError::Nats(format!("cannot create or update the stream: {reason}"))
            }
            other => nats(other),
        })?;
        let last = stream.cached_info().state.last_sequence;
        let mut resume = (1, 0);
        if last > 0 {
            let message = stream.get_raw_message(last).await.map_err(nats)?;
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
            let (seq, hash, partner) = (header(HEADER_SEQ), header(HEADER_HASH), header(HEADER_PARTNER));
            let Some(record) = seq.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                return Err(self.diverged(format!("its message {last} has no {HEADER_SEQ} header")));
            };
            if self.target == Target::Events && record != last {
                return Err(self.diverged(format!("its message {last} has {HEADER_SEQ} {record}")));
            }
            let Some(ours) = self.read(record, record).await?.pop() else {
                return Err(self.diverged(format!("its message {last} is record {record}, past the ledger's head")));
            };
            if hash.as_deref() != Some(ours.hash.as_str()) {
                return Err(self.diverged(format!(
                    "its message {last} has {HEADER_HASH} {hash:?}, but record {record} has hash {:?}",
                    ours.hash
                )));
            }
            let Some(copy) = ours.copies.iter().position(|c| c.partner == partner) else {
                return Err(self.diverged(format!(
                    "its message {last} is record {record} for {partner:?}, which that record does not concern"
                )));
            };
            resume = (record, copy + 1);
            self.acked = if copy + 1 == ours.copies.len() { record } else { record - 1 };
        } else {
            self.acked = 0;
        }
        if self.target == Target::Events && self.acked < self.saved {
            tracing::warn!(
                stream_last = last,
                cursor = self.saved,
                "the stream has fewer records than the outbox cursor (it was recreated or lost data): refilling it from the log"
            );
        }
        self.stream_last = last;
        self.published_last = None;
        self.next = resume;
        self.announce();
        self.save_cursor().await?;
        Ok(())
    }

    /// Tells the appends waiting for replication how far the stream has stored the log.
    fn announce(&self) {
        if let Some(stored) = &self.stored {
            stored.send_if_modified(|announced| std::mem::replace(announced, self.acked) != self.acked);
        }
    }

    /// Publishes records as the head moves, until stop (`Ok`) or a failure (`Err`: resync).
    async fn pump(&mut self, backoff: &mut Duration) -> Result<(), OutboxError> {
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(OUTBOX_ACKS_IN_FLIGHT_MAX);
        loop {
            if self.stop.is_set() {
                return self.settle(&mut in_flight).await;
            }
            let head = *self.head.borrow_and_update();
            let (next, first_copy) = self.next;
            if next > head {
                self.settle(&mut in_flight).await?;
                // Records with no copies at the end of the log are published by definition.
                self.acked = head;
                self.announce();
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
            let to = head.min(next + OUTBOX_READ_RECORDS_MAX - 1);
            let batch = self.read(next, to).await?;
            if batch.is_empty() {
                let what = format!("record {next} is missing although the head is {head}");
                return Err(LedgerError::Corrupt { seq: next, what }.into());
            }
            for (i, record) in batch.into_iter().enumerate() {
                let skip = if i == 0 { first_copy } else { 0 };
                let copies = record.copies.len();
                if copies == 0 && in_flight.is_empty() {
                    self.acked = record.seq;
                }
                for (index, copy) in record.copies.iter().enumerate().skip(skip) {
                    if in_flight.len() >= OUTBOX_ACKS_IN_FLIGHT_MAX {
                        let oldest = in_flight.pop_front().expect("in flight is full");
                        self.confirm(oldest).await?;
                        *backoff = OUTBOX_RETRY_BACKOFF_MIN;
                        if self.acked - self.saved >= OUTBOX_CURSOR_SAVE_RECORDS {
                            self.save_cursor().await?;
                        }
                    }
                    let ack = self.publish(&record, copy, !in_flight.is_empty()).await?;
                    self.published_last = Some(copy.msg_id.clone());
                    self.stream_last += 1;
                    let last_copy = index + 1 == copies;
                    in_flight.push_back(InFlight { stream_seq: self.stream_last, seq: record.seq, last_copy, ack });
                }
                self.next = (record.seq + 1, 0);
            }
        }
    }

    /// Publishes one copy; `pipelined`: the publish before it is not yet acknowledged.
    async fn publish(&self, record: &Outgoing, copy: &Copy, pipelined: bool) -> Result<PublishAckFuture, OutboxError> {
        let mut publish = Publish::build()
            .message_id(&copy.msg_id)
            .header(HEADER_SEQ, record.seq.to_string())
            .header(HEADER_HASH, record.hash.as_str());
        if let Some(partner) = &copy.partner {
            publish = publish.header(HEADER_PARTNER, partner.as_str());
        }
        if self.stream_last > 0 {
            // The first message has no predecessor to expect; JetStream before 2.10 reads an
            // expected last sequence of 0 as "no expectation" anyway.
            publish = publish.expected_last_sequence(self.stream_last);
        }
        if let (true, Some(previous)) = (pipelined, &self.published_last) {
            // The predecessor is not yet acknowledged, so the sequence alone could match
            // another writer's message there; its id (on STOCKPILE_EVENTS the record's hash)
            // cannot. Only then: once every publish is acknowledged (each ack checked to have
            // stored its copy at the expected sequence), the sequence names this outbox's own
            // message, and a replica that forgot the last message id (nats-server before 2.15
            // forgets it on restart when the stream was idle for its duplicate window, and
            // then refuses every later message, silently: ARCHITECTURE.md, "Failover") is
            // not asked to check one.
            publish = publish.expected_last_message_id(previous);
        }
        let publish = publish.payload(record.bytes.clone());
        self.js.send_publish(copy.subject.clone(), publish).await.map_err(nats)
    }

    /// Waits for one ack and checks it stored the message where it belongs.
    async fn confirm(&mut self, sent: InFlight) -> Result<(), OutboxError> {
        let seq = sent.seq;
        let ack = sent.ack.await.map_err(|e| OutboxError::Nats(format!("record {seq} was not acknowledged: {e}")))?;
        if ack.sequence != sent.stream_seq {
            return Err(self.diverged(format!(
                "record {seq} was stored as message {} instead of {} (duplicate: {})",
                ack.sequence, sent.stream_seq, ack.duplicate
            )));
        }
        self.acked = if sent.last_copy { seq } else { seq - 1 };
        self.announce();
        Ok(())
    }

    async fn settle(&mut self, in_flight: &mut VecDeque<InFlight>) -> Result<(), OutboxError> {
        while let Some(sent) = in_flight.pop_front() {
            self.confirm(sent).await?;
        }
        Ok(())
    }

    async fn save_cursor(&mut self) -> Result<(), LedgerError> {
        if self.target != Target::Events || self.acked == self.saved {
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
        let (store, target) = (self.store.clone(), self.target);
        tokio::task::spawn_blocking(move || {
            let mut raw: Vec<(u64, Vec<u8>)> = Vec::with_capacity((to - from + 1) as usize);
            store.scan(from, |seq, bytes| {
                if seq > to {
                    return false;
                }
                raw.push((seq, bytes.to_vec()));
                true
            })?;
            raw.into_iter().map(|(seq, bytes)| Outgoing::decode(target, seq, bytes)).collect()
        })
        .await
        .map_err(|_| LedgerError::Stopped)?
    }
}
