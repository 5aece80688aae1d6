//! Failover: `stockpile-ledger serve --standby`. Every ledger of a failover group is started
//! this way, each on its own machine and data directory, against one NATS cluster. At any
//! time at most one holds the **lease** and serves (with replicated commit, so every answered
//! append is in the R3 `STOCKPILE_EVENTS` stream); the others are standbys.
//!
//! ```text
//! standby: ┌─▶ read STOCKPILE_EVENTS from head + 1 ─▶ verify each record (audit verify's checks,
//!          │    decide re-executed on the warm state) ─▶ commit byte for byte (fsync)
//!          └── lease entry unchanged for LEASE_TAKEOVER_AFTER? ── no ──┘
//!                   │ yes: compare-and-set the entry on its revision (one winner)
//!                   ▼
//! active:  read the stream to its end ─▶ serve (--replicate) ─▶ renew the lease every
//!          LEASE_RENEW_INTERVAL by compare-and-set; not renewed for LEASE_FENCE_AFTER, or
//!          renewed by another: stop serving at once (exit 1)
//! ```
//!
//! **The lease** is the entry [`LEASE_KEY`] of the JetStream key-value bucket
//! [`LEASE_BUCKET`] (replicas as the streams), value `{"holder": NAME}`. Taking and renewing
//! are both `update` with the revision last read (JetStream's expected last subject
//! sequence): of two ledgers racing for one revision, one wins. Time is measured only by each
//! process's own monotonic clock — a standby counts from when *it* saw the revision change —
//! so no clocks are compared between machines.
//!
//! **Fencing.** The lease gives liveness; safety comes from the stream. The outbox publishes
//! record `n` with expected last sequence `n − 1` and, when pipelined, expected last message
//! id = the previous record's hash, so JetStream stores nothing that does not extend the
//! publishing ledger's own chain; and since the active answers appends only after the stream
//! stored them, a deposed ledger acknowledges nothing that is not in the stream. It also stops
//! on its own once it cannot renew for [`LEASE_FENCE_AFTER`], before a standby may take over
//! ([`LEASE_TAKEOVER_AFTER`]).
//!
//! **A directory that diverged.** A ledger killed as the active may hold records it committed
//! but the stream never stored (never acknowledged, since the answer waits for the stream);
//! the next active has since written other records at those seqs. At start a standby finds
//! the longest prefix of its log the stream holds too, moves the directory aside whole
//! (`<dir>.diverged-<unix seconds>`, kept as evidence, never deleted), copies that prefix into
//! a fresh directory and follows the stream from there. A missing directory (a lost disk) is
//! followed from record 1. ARCHITECTURE.md, "Failover", has every rule.

use super::config::{
    LEASE_FENCE_AFTER, LEASE_RENEW_INTERVAL, LEASE_TAKEOVER_AFTER, STANDBY_BATCH_RECORDS, STANDBY_POLL_INTERVAL,
};
use super::restore::{check_record_message, RESTORE_READS_IN_FLIGHT};
use super::shutdown::{self, Stop, StopSender};
use super::subjects::{EVENTS_STREAM, HEADER_HASH, LEASE_BUCKET, LEASE_KEY};
use super::{ServiceConfig, ServiceError};
use crate::audit::{checkpoint, LedgerKey};
use crate::ledger::{Ledger, LedgerOptions, SystemClock};
use crate::{canonical, LedgerHandle};
use async_nats::jetstream::{self, kv};
use futures::StreamExt as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a starting standby keeps trying to find or create the lease bucket.
pub const LEASE_BUCKET_WAIT: Duration = Duration::from_secs(60);

/// The lease's value.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LeaseValue {
    holder: String,
}

/// This process's name in the lease: host, process id and a random part (a restarted
/// process is a new holder).
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}-{:08x}", host.trim(), std::process::id(), rand::random::<u32>())
}

fn lease_value(holder: &str) -> bytes::Bytes {
    serde_json::to_vec(&LeaseValue { holder: holder.to_string() }).expect("a lease encodes").into()
}

fn follow_error(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Follow { stream: EVENTS_STREAM, what: what.to_string() }
}

fn lease_error(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Stream { stream: format!("KV_{LEASE_BUCKET}"), reason: what.to_string() }
}

/// The lease bucket, created if missing. A cluster that has just started may not have
/// elected its JetStream leaders yet: tried again for up to [`LEASE_BUCKET_WAIT`].
async fn lease_bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, ServiceError> {
    let deadline = Instant::now() + LEASE_BUCKET_WAIT;
    loop {
        if let Ok(store) = js.get_key_value(LEASE_BUCKET).await {
            return Ok(store);
        }
        let created = js
            .create_key_value(kv::Config {
                bucket: LEASE_BUCKET.to_string(),
                description: "stockpile: which ledger of a failover group is active".to_string(),
                history: 1,
                num_replicas: replicas,
                ..Default::default()
            })
            .await;
        match created {
            Ok(store) => return Ok(store),
            Err(e) if Instant::now() >= deadline => return Err(lease_error(e)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the lease bucket yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The lease as this process holds it.
pub(crate) struct Held {
    kv: kv::Store,
    holder: String,
    revision: u64,
    /// When the write that gave [`Self::revision`] was sent: the fence counts from there.
    written_at: Instant,
}

impl Held {
    /// Renews the lease every [`LEASE_RENEW_INTERVAL`] until `stop` (`Ok`: still held, to
    /// [`Self::release`]), or until it is lost: another holder wrote it, or no renewal
    /// succeeded for [`LEASE_FENCE_AFTER`] after the last successful write was *sent*
    /// (`Err(why)`: the caller stops serving at once).
    async fn keep(mut self, mut stop: Stop) -> Result<Held, String> {
        loop {
            let fence = tokio::time::sleep_until((self.written_at + LEASE_FENCE_AFTER).into());
            let (kv, value, revision) = (self.kv.clone(), lease_value(&self.holder), self.revision);
            let renew = async move {
                tokio::time::sleep(LEASE_RENEW_INTERVAL).await;
                let sent = Instant::now();
                // Each attempt is bounded by the interval, so a lost answer costs one attempt,
                // not the fence.
                (sent, tokio::time::timeout(LEASE_RENEW_INTERVAL, kv.update(LEASE_KEY, value, revision)).await)
            };
            tokio::select! {
                () = fence => {
                    return Err(format!("not renewed for {} ms", LEASE_FENCE_AFTER.as_millis()));
                }
                () = stop.wait() => return Ok(self),
                (sent, result) = renew => match result {
                    Ok(Ok(revision)) => {
                        self.revision = revision;
                        self.written_at = sent;
                    }
                    Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        // Our own renewal whose answer was lost moves the revision too; but
                        // when it landed is unknown, so the fence keeps counting from the
                        // last write we know of.
                        match self.kv.entry(LEASE_KEY).await {
                            Ok(Some(entry)) if holder_of(&entry).as_deref() == Some(self.holder.as_str()) => {
                                self.revision = entry.revision;
                            }
                            Ok(entry) => {
                                let by = entry.and_then(|e| holder_of(&e)).unwrap_or_else(|| "nobody".into());
                                return Err(format!("taken by {by}"));
                            }
                            Err(e) => tracing::warn!(error = %e, "reading the lease after a refused renewal"),
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the lease; retrying"),
                    Err(_) => tracing::warn!("a lease renewal was not answered in time; retrying"),
                }
            }
        }
    }

    /// Gives the lease up after a clean shutdown (nothing more will be published), so a
    /// standby takes over at its next look instead of after [`LEASE_TAKEOVER_AFTER`]. Only
    /// the revision this process wrote is deleted: a lease another holder took is left alone.
    async fn release(self) {
        match self.kv.delete_expect_revision(LEASE_KEY, Some(self.revision)).await {
            Ok(()) => tracing::info!("the lease is released"),
            Err(e) => tracing::warn!(error = %e, "could not release the lease; a standby takes it once it is stale"),
        }
    }
}

/// The lease held, renewed by a task of its own from the moment it was taken until
/// [`Holding::release`] — through the catch-up before serving and the drain after it.
pub(crate) struct Holding {
    renewal: tokio::task::JoinHandle<Result<Held, String>>,
    stop: StopSender,
}

impl Holding {
    fn start(held: Held) -> Holding {
        let (stop, stopped) = shutdown::channel();
        Holding { renewal: tokio::spawn(held.keep(stopped)), stop }
    }

    /// Completes when the lease is lost, with why. Cancel-safe; once it has completed the
    /// holding is spent (the caller stops serving).
    pub(crate) async fn lost(&mut self) -> String {
        match (&mut self.renewal).await {
            Ok(Err(reason)) => reason,
            Ok(Ok(_)) => "the lease's renewal stopped".into(),
            Err(e) => format!("the lease's renewal failed: {e}"),
        }
    }

    /// Stops renewing and releases the lease: once nothing more will be published.
    pub(crate) async fn release(self) {
        self.stop.stop();
        if let Ok(Ok(held)) = self.renewal.await {
            held.release().await;
        }
    }
}

fn holder_of(entry: &kv::Entry) -> Option<String> {
    (entry.operation == kv::Operation::Put)
        .then(|| serde_json::from_slice::<LeaseValue>(&entry.value).ok().map(|v| v.holder))
        .flatten()
}

/// What a standby knows of the lease: the highest revision it has seen, and when it first
/// saw it.
struct Watching {
    seen: Option<(u64, Instant)>,
}

impl Watching {
    /// Takes the lease if it is free, names this process (a take whose answer was lost), or
    /// has not moved past the revision seen for [`LEASE_TAKEOVER_AFTER`]. A read from a
    /// replica that lags (an older revision) does not restart the count.
    async fn try_take(&mut self, kv: &kv::Store, holder: &str) -> Option<Held> {
        let entry = match kv.entry(LEASE_KEY).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the lease");
                return None;
            }
        };
        let sent = Instant::now();
        let taken = match entry {
            None => kv.create(LEASE_KEY, lease_value(holder)).await.map_err(|e| e.to_string()),
            Some(entry) => {
                let stale = match self.seen {
                    Some((revision, since)) if entry.revision <= revision => since.elapsed() >= LEASE_TAKEOVER_AFTER,
                    _ => {
                        self.seen = Some((entry.revision, Instant::now()));
                        false
                    }
                };
                let current = holder_of(&entry);
                if !stale && current.is_some() && current.as_deref() != Some(holder) {
                    return None;
                }
                let previous = current.unwrap_or_else(|| "nobody".into());
                tracing::info!(previous, revision = entry.revision, "the lease is free or stale: taking it");
                kv.update(LEASE_KEY, lease_value(holder), entry.revision).await.map_err(|e| e.to_string())
            }
        };
        match taken {
            Ok(revision) => Some(Held { kv: kv.clone(), holder: holder.to_string(), revision, written_at: sent }),
            Err(e) => {
                tracing::info!(error = %e, "another ledger took the lease first");
                self.seen = None;
                None
            }
        }
    }
}

/// Why the standby could not go on just now.
enum Trouble {
    /// NATS did not answer (a node lost, a leader election): tried again.
    Unreachable(ServiceError),
    /// The stream does not verify, or this ledger failed: the standby stops.
    Failed(ServiceError),
}

impl From<crate::LedgerError> for Trouble {
    fn from(e: crate::LedgerError) -> Trouble {
        Trouble::Failed(e.into())
    }
}

fn unreachable(what: impl std::fmt::Display) -> Trouble {
    Trouble::Unreachable(follow_error(what))
}

fn refused(what: impl std::fmt::Display) -> Trouble {
    Trouble::Failed(follow_error(what))
}

/// Runs `step` until it does not meet [`Trouble::Unreachable`], waiting
/// [`STANDBY_POLL_INTERVAL`] between tries.
async fn patiently<T, F: std::future::Future<Output = Result<T, Trouble>>>(
    what: &str,
    mut step: impl FnMut() -> F,
) -> Result<T, ServiceError> {
    loop {
        match step().await {
            Ok(done) => return Ok(done),
            Err(Trouble::Failed(e)) => return Err(e),
            Err(Trouble::Unreachable(e)) => {
                tracing::warn!(error = %e, "{what}: NATS does not answer; retrying");
                tokio::time::sleep(STANDBY_POLL_INTERVAL).await;
            }
        }
    }
}

/// `serve --standby`: follows the stream until this process takes the lease, then serves the
/// warm ledger with replicated commit until `shutdown` or until the lease is lost.
pub async fn run(config: ServiceConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServiceError> {
    let identity = config.publisher_identity.as_ref().or(config.identity.as_ref());
    let client = super::connect(&config.nats_url, identity).await?;
    let js = jetstream::new(client.clone());
    let kv = lease_bucket(&js, config.stream_replicas).await?;
    let holder = holder_name();
    let opening = Instant::now();
    let mut ledger = open_following(&config.data_dir, &js).await?;
    tracing::info!(head = ledger.state().head.seq, took_ms = opening.elapsed().as_millis() as u64, "standby: opened");
    if let Some(key) = &config.checkpoint_key {
        LedgerKey::install(key, &config.data_dir).map_err(|e| ServiceError::CheckpointKey(e.to_string()))?;
    }
    tracing::info!(holder, head = ledger.state().head.seq, "standby: following {EVENTS_STREAM}");
    tokio::pin!(shutdown);
    let mut watching = Watching { seen: None };
    let mut caught_up = false;
    let held = loop {
        let (returned, followed) = catch_up(ledger, &js).await;
        ledger = returned;
        let pause = match followed {
            Ok(()) => {
                if !caught_up {
                    caught_up = true;
                    tracing::info!(head = ledger.state().head.seq, "standby: caught up with {EVENTS_STREAM}");
                }
                match watching.try_take(&kv, &holder).await {
                    Some(held) => break held,
                    None => STANDBY_POLL_INTERVAL,
                }
            }
            Err(Trouble::Failed(e)) => return Err(e),
            Err(Trouble::Unreachable(e)) => {
                tracing::warn!(error = %e, "cannot read the stream; retrying");
                STANDBY_POLL_INTERVAL
            }
        };
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!(head = ledger.state().head.seq, "standby stopped");
                return tokio::task::spawn_blocking(move || ledger.snapshot())
                    .await
                    .map_err(|e| ServiceError::Task(e.to_string()))?
                    .map_err(ServiceError::from);
            }
            () = tokio::time::sleep(pause) => {}
        }
    };
    // Renewed from here on: through the last catch-up and the start of serving.
    let mut holding = Holding::start(held);
    let ledger = tokio::select! {
        caught = catch_up_fully(ledger, &js) => caught?,
        reason = holding.lost() => return Err(ServiceError::LeaseLost { reason }),
    };
    tracing::info!(holder, head = ledger.state().head.seq, "took the lease: serving as the active ledger");
    let handle = LedgerHandle::start(ledger);
    let mut config = config;
    config.replicate = true;
    let served = super::serve_holding(&config, handle.clone(), shutdown, Some(holding)).await;
    let stopped =
        tokio::task::spawn_blocking(move || handle.shutdown()).await.map_err(|e| ServiceError::Task(e.to_string()))?;
    // A ledger that failed is why serving stopped: its error comes first.
    stopped?;
    served?;
    Ok(())
}

async fn open(dir: &Path) -> Result<Ledger, ServiceError> {
    let dir = dir.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || Ledger::open(&dir, Box::new(SystemClock), LedgerOptions::default()))
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??)
}

/// `STOCKPILE_EVENTS` and its last sequence; `None` when no ledger made it yet (and only
/// then: any other answer, such as JetStream being briefly without a leader, is trouble).
async fn events_stream(js: &jetstream::Context) -> Result<Option<(jetstream::stream::Stream, u64)>, Trouble> {
    match js.get_stream(EVENTS_STREAM).await {
        Ok(mut stream) => {
            let last = stream.info().await.map_err(unreachable)?.state.last_sequence;
            Ok(Some((stream, last)))
        }
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(unreachable(e)),
        },
    }
}

/// Opens the data directory for following (NATS trouble waited out). One whose head is not
/// the stream's record at that seq is moved aside whole, and the longest prefix the stream
/// holds too (found by bisection on the records' hashes: the chain makes agreement at a seq
/// imply agreement before it) is copied byte for byte into a fresh directory. A directory
/// with records while the stream exists but is empty is refused: that is not a ledger that
/// fell behind, and discarding its records is for an operator to decide.
async fn open_following(dir: &Path, js: &jetstream::Context) -> Result<Ledger, ServiceError> {
    let ledger = open(dir).await?;
    let head = ledger.state().head.seq;
    if head == 0 {
        return Ok(ledger);
    }
    let store = ledger.store().clone();
    let kept = patiently("comparing the directory with the stream", || agreed_prefix(&store, head, js)).await?;
    drop(store);
    let Some(kept) = kept.filter(|kept| *kept < head) else { return Ok(ledger) };
    drop(ledger);
    let aside = move_aside(dir)?;
    tracing::warn!(
        dir = %dir.display(),
        aside = %aside.display(),
        head,
        kept,
        "the data directory diverged from the stream after record {kept} (the records after it were never replicated, so never acknowledged): moved aside; its first {kept} records copied into a fresh directory"
    );
    let (from, to) = (aside.clone(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || crate::restore::copy_prefix(&from, &to, kept))
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??;
    let key = aside.join(checkpoint::KEY_FILE);
    if key.exists() {
        let copy = dir.join(checkpoint::KEY_FILE);
        std::fs::copy(&key, &copy).map_err(|e| crate::LedgerError::io("copy", copy, e))?;
    }
    open(dir).await
}

/// How many of the store's first `head` records the stream holds too; `None` when there is
/// no stream yet (the directory is kept as it is: it publishes its records when it serves).
async fn agreed_prefix(
    store: &crate::store::Store,
    head: u64,
    js: &jetstream::Context,
) -> Result<Option<u64>, Trouble> {
    let Some((stream, last)) = events_stream(js).await? else { return Ok(None) };
    if last == 0 {
        return Err(refused(format!(
            "the stream is empty but this directory holds {head} records: not following it (serve this directory without --standby to republish them, or move it aside)"
        )));
    }
    let agrees = |seq: u64| {
        let stream = &stream;
        async move {
            if seq == 0 {
                return Ok(true);
            }
            let message = stream.get_raw_message(seq).await.map_err(unreachable)?;
            check_record_message(seq, &message).map_err(refused)?;
            let theirs = message.headers.get(HEADER_HASH).map(|v| v.as_str().to_string());
            let ours = store.record(seq)?.and_then(|bytes| checkpoint::record_hash(&bytes)).map(|h| canonical::hex(&h));
            Ok::<_, Trouble>(ours.is_some() && theirs == ours)
        }
    };
    let top = head.min(last);
    if agrees(top).await? {
        return Ok(Some(top));
    }
    let (mut lo, mut hi) = (0, top - 1);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if agrees(mid).await? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(Some(lo))
}

fn move_aside(dir: &Path) -> Result<PathBuf, ServiceError> {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "ledger".into());
    let aside = (1..)
        .map(|n| match n {
            1 => dir.with_file_name(format!("{name}.diverged-{seconds}")),
            n => dir.with_file_name(format!("{name}.diverged-{seconds}-{n}")),
        })
        .find(|candidate| !candidate.exists())
        .expect("an unused name");
    let io = |op, e| ServiceError::Ledger(crate::LedgerError::io(op, dir, e));
    std::fs::rename(dir, &aside).map_err(|e| io("rename", e))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| io("fsync", e))?;
    }
    Ok(aside)
}

/// Reads the stream from the ledger's head + 1 to its current end, verifying and
/// committing [`STANDBY_BATCH_RECORDS`] at a time ([`Ledger::follow`]). The ledger comes back
/// whatever happened, with every batch that verified committed.
async fn catch_up(mut ledger: Ledger, js: &jetstream::Context) -> (Ledger, Result<(), Trouble>) {
    let (stream, last) = match events_stream(js).await {
        Ok(Some(found)) => found,
        Ok(None) => return (ledger, Ok(())),
        Err(e) => return (ledger, Err(e)),
    };
    let mut next = ledger.state().head.seq + 1;
    while next <= last {
        let to = last.min(next + STANDBY_BATCH_RECORDS - 1);
        let lines = match read_records(&stream, next, to).await {
            Ok(lines) => lines,
            Err(e) => return (ledger, Err(e)),
        };
        let (returned, followed) = match tokio::task::spawn_blocking(move || {
            let followed = ledger.follow(&lines);
            (ledger, followed)
        })
        .await
        {
            Ok(done) => done,
            // A bug, not bad input (`follow` answers that with an error): don't hide it.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        ledger = returned;
        if let Err(e) = followed {
            return (ledger, Err(refused(e)));
        }
        next = to + 1;
    }
    (ledger, Ok(()))
}

/// [`catch_up`] until the stream's end is reached, waiting out NATS being unreachable.
async fn catch_up_fully(mut ledger: Ledger, js: &jetstream::Context) -> Result<Ledger, ServiceError> {
    loop {
        let (returned, caught_up) = catch_up(ledger, js).await;
        ledger = returned;
        match caught_up {
            Ok(()) => return Ok(ledger),
            Err(Trouble::Failed(e)) => return Err(e),
            Err(Trouble::Unreachable(e)) => {
                tracing::warn!(error = %e, "cannot read the stream; retrying");
                tokio::time::sleep(STANDBY_POLL_INTERVAL).await;
            }
        }
    }
}

/// Records `from..=to` of the stream, each checked to be the outbox's message of it.
async fn read_records(stream: &jetstream::stream::Stream, from: u64, to: u64) -> Result<Vec<Vec<u8>>, Trouble> {
    let mut messages = futures::stream::iter(from..=to)
        .map(|seq| async move { (seq, stream.get_raw_message(seq).await) })
        .buffered(RESTORE_READS_IN_FLIGHT);
    let mut lines = Vec::with_capacity((to + 1 - from) as usize);
    while let Some((seq, message)) = messages.next().await {
        let message = message.map_err(|e| unreachable(format!("message {seq} cannot be read: {e}")))?;
        check_record_message(seq, &message).map_err(refused)?;
        lines.push(message.payload.to_vec());
    }
    Ok(lines)
}

/// The takeover bound must leave the fence a margin.
const _: () = assert!(LEASE_FENCE_AFTER.as_millis() + 500 <= LEASE_TAKEOVER_AFTER.as_millis());
