//! The group-commit write path: the only way records reach the log.
//!
//! ```text
//! append() ─▶ [submit queue] ─▶ verifier ─▶ [verified queue] ─▶ writer ─▶ [hand-over] ─▶ committer ─▶ reply
//!                               (Ed25519 batches   (decide a whole group    (one frame, one
//!                                on every core)     in order, seal it)       fdatasync, head)
//! ```
//!
//! Signature checks are CPU-bound, so they run before the writer, batched and spread over
//! rayon's pool. The writer drains everything verified into one group, decides and seals it
//! and hands it to the committer, which writes it as one frame, syncs it, moves the head and
//! only then answers the group's callers. The writer decides the next group while the
//! committer syncs the one before (a pipelined group commit): under load one fsync covers
//! thousands of commands and the writer's CPU work overlaps the fsync; under no load a single
//! command commits alone at once.
//!
//! The hand-over holds nothing (a rendezvous): the writer gives group *n + 1* over only when
//! the committer has finished group *n*, so the live state is at most two groups ahead of the
//! log (the one syncing and the one just decided) and a frame is written only after the one
//! before it is synced — what recovery relies on (only the last frame can be torn). Groups
//! are committed and answered in order, so an answer that names an earlier record's seq
//! (a duplicate) comes only after that record is durable.
//!
//! A failed commit stops the ledger: its callers get the error, the group decided behind it
//! gets [`AppendError::Stopped`], and the live state, which holds that group, is dropped with
//! the writer (the next open rebuilds it from the log).

use crate::domain::Country;
use crate::error::LedgerError;
use crate::ledger::{Decided, Ledger, Outcome, Submission};
use crate::signing::{self, SignedCommand};
use crate::store::Store;
use crossbeam_channel::{bounded, Receiver, SendError, Sender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use tokio::sync::{oneshot, watch};

/// Submissions waiting for verification before callers are made to wait: bounds memory
/// under overload (backpressure reaches callers as a slower `append`, never as loss).
pub const SUBMIT_QUEUE_JOBS_MAX: usize = 1024;

/// Verified submissions waiting for the writer. Small: the verifier should run at most a
/// group or two ahead of the writer.
pub const VERIFIED_QUEUE_GROUPS_MAX: usize = 2;

/// Commands verified together: enough for every core to get several full Ed25519 batches.
pub const VERIFY_GROUP_COMMANDS_MAX: usize = 2048;

/// Commands per group commit. Bounds the latency of one group (decide + seal + fsync) to a
/// few tens of milliseconds at the measured rates, and the memory of one sled batch.
pub const GROUP_COMMANDS_MAX: usize = 4096;

/// Events after the last snapshot above which a clean shutdown writes a new one.
pub const SHUTDOWN_SNAPSHOT_EVENTS_MIN: u64 = 10_000;

/// Why an append got no outcomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("the ledger has stopped: {reason}")]
    Stopped { reason: String },
}

/// The verifier and writer threads, joined on shutdown.
type Threads = (JoinHandle<()>, JoinHandle<Result<(), LedgerError>>);

type Reply = oneshot::Sender<Result<Vec<Outcome>, AppendError>>;

struct Job {
    commands: Vec<SignedCommand>,
    atomic: bool,
    /// The partner channel the commands came through, if any ([`crate::domain::Signer::origin`]).
    origin: Option<Country>,
    reply: Reply,
}

struct VerifiedJob {
    submission: Submission,
    reply: Reply,
}

/// A handle to a running ledger. Clone it freely; the ledger stops when [`LedgerHandle::shutdown`]
/// is called (or every handle is dropped), after finishing the work already queued.
#[derive(Clone)]
pub struct LedgerHandle {
    submit: Sender<Job>,
    store: Store,
    head: watch::Receiver<u64>,
    threads: std::sync::Arc<std::sync::Mutex<Option<Threads>>>,
}

impl std::fmt::Debug for LedgerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerHandle").field("store", &self.store).finish_non_exhaustive()
    }
}

impl LedgerHandle {
    /// Starts the verifier and writer threads over an opened ledger.
    pub fn start(ledger: Ledger) -> LedgerHandle {
        let (submit, submitted) = bounded::<Job>(SUBMIT_QUEUE_JOBS_MAX);
        let (verified_tx, verified_rx) = bounded::<Vec<VerifiedJob>>(VERIFIED_QUEUE_GROUPS_MAX);
        let (head_tx, head) = watch::channel(ledger.state().head.seq);
        let store = ledger.store().clone();
        // Closed when the writer returns; `why` says why it stopped, if it failed.
        let (writer_alive, writer_gone) = bounded::<()>(0);
        let why = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
        let stopped_because = why.clone();
        let verifier = std::thread::Builder::new()
            .name("ledger-verifier".into())
            .spawn(move || verify_loop(submitted, verified_tx, &writer_gone, &stopped_because))
            .expect("spawn verifier thread");
        let writer = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                let written = write_loop(ledger, &verified_rx, head_tx);
                if let Err(e) = &written {
                    let _ = why.set(e.to_string());
                }
                drop(verified_rx);
                drop(writer_alive);
                written
            })
            .expect("spawn writer thread");
        LedgerHandle {
            submit,
            store,
            head,
            threads: std::sync::Arc::new(std::sync::Mutex::new(Some((verifier, writer)))),
        }
    }

    /// Appends signed commands and waits until they are durable (or refused).
    /// `atomic`: all apply or none; otherwise each command stands alone.
    pub async fn append(&self, commands: Vec<SignedCommand>, atomic: bool) -> Result<Vec<Outcome>, AppendError> {
        self.append_from(None, commands, atomic).await
    }

    /// [`LedgerHandle::append`] for commands that came through partner `origin`'s channel:
    /// each must be signed by a key of one of that partner's parties (else `wrong_origin`).
    pub async fn append_from(
        &self,
        origin: Option<Country>,
        commands: Vec<SignedCommand>,
        atomic: bool,
    ) -> Result<Vec<Outcome>, AppendError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { commands, atomic, origin, reply };
        // Queued at once when there is room, as it nearly always is. Only a full queue, which
        // blocks briefly, is waited on off the async worker threads: a blocking-pool thread
        // woken for every request cost two context switches per append (PERFORMANCE.md,
        // "Over NATS: where one command per request goes"). A job that had to wait may be
        // overtaken by requests sent after it; requests in flight together have no order.
        match self.submit.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
            Err(TrySendError::Full(job)) => {
                let submit = self.submit.clone();
                let sent = tokio::task::spawn_blocking(move || submit.send(job).is_ok()).await.unwrap_or(false);
                if !sent {
                    return Err(stopped());
                }
            }
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// [`LedgerHandle::append`] for callers outside an async runtime.
    pub fn append_blocking(&self, commands: Vec<SignedCommand>, atomic: bool) -> Result<Vec<Outcome>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.submit.send(Job { commands, atomic, origin: None, reply }).map_err(|_| stopped())?;
        answer.blocking_recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// A read handle on the store (records, outbox cursor); safe beside the writer.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The committed head seq, updated after every durable group commit.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    /// Stops accepting work, finishes what is queued, writes a snapshot and waits for both
    /// threads. Further appends on any clone get [`AppendError::Stopped`].
    pub fn shutdown(self) -> Result<(), LedgerError> {
        let threads = self.threads.lock().expect("threads lock").take();
        drop(self.submit);
        let Some((verifier, writer)) = threads else { return Ok(()) };
        let _ = verifier.join();
        writer.join().unwrap_or(Err(LedgerError::Stopped))
    }
}

fn stopped() -> AppendError {
    AppendError::Stopped { reason: "the writer is not running (shut down or failed); see the ledger's log".into() }
}

/// Verifies what is submitted in groups and hands them to the writer. Once the writer has
/// stopped, answers every job still queued, and every job submitted after, with the writer's
/// reason, until every handle is dropped: a queued job is never left waiting for an answer.
fn verify_loop(
    submitted: Receiver<Job>,
    verified: Sender<Vec<VerifiedJob>>,
    writer_gone: &Receiver<()>,
    why: &std::sync::OnceLock<String>,
) {
    let reason = || why.get().cloned().unwrap_or_else(|| "the ledger's writer has stopped".into());
    loop {
        let first = crossbeam_channel::select! {
            recv(submitted) -> job => match job {
                Ok(job) => job,
                Err(_) => return,
            },
            recv(writer_gone) -> _ => break,
        };
        let mut jobs = vec![first];
        let mut commands = jobs[0].commands.len();
        while commands < VERIFY_GROUP_COMMANDS_MAX {
            match submitted.try_recv() {
                Ok(job) => {
                    commands += job.commands.len();
                    jobs.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let sizes: Vec<usize> = jobs.iter().map(|j| j.commands.len()).collect();
        let mut all = Vec::with_capacity(commands);
        let mut meta = Vec::with_capacity(jobs.len());
        for job in jobs {
            all.extend(job.commands);
            meta.push((job.atomic, job.origin, job.reply));
        }
        let mut results = signing::verify_all(all).into_iter();
        let group: Vec<VerifiedJob> = sizes
            .into_iter()
            .zip(meta)
            .map(|(n, (atomic, origin, reply))| {
                let commands = results
                    .by_ref()
                    .take(n)
                    .map(|verified| {
                        verified.map(|mut v| {
                            v.signer.origin.clone_from(&origin);
                            v
                        })
                    })
                    .collect();
                VerifiedJob { submission: Submission { commands, atomic }, reply }
            })
            .collect();
        if let Err(SendError(group)) = verified.send(group) {
            answer_stopped(group.into_iter().map(|job| job.reply), &reason());
            break;
        }
    }
    // The writer has stopped. Groups it never took are dropped with the channel, which
    // tells their callers; queued and later jobs get the reason.
    drop(verified);
    for job in submitted {
        answer_stopped([job.reply], &reason());
    }
}

/// Tells each caller that its commands were not appended because the ledger stopped, and why.
fn answer_stopped(replies: impl IntoIterator<Item = Reply>, reason: &str) {
    for reply in replies {
        // A caller that went away loses nothing.
        let _ = reply.send(Err(AppendError::Stopped { reason: reason.to_string() }));
    }
}

/// What the writer hands the committer.
enum ToCommit {
    /// A decided group: commit its records, then answer its callers.
    Group { decided: Decided, replies: Vec<Reply> },
    /// Answer once every group handed over before it is committed (before a snapshot).
    Drained(Sender<()>),
}

fn write_loop(
    mut ledger: Ledger,
    verified: &Receiver<Vec<VerifiedJob>>,
    head: watch::Sender<u64>,
) -> Result<(), LedgerError> {
    let (to_commit, committing) = bounded::<ToCommit>(0);
    // Closed when the committer returns: a writer waiting for work hears of a failed commit
    // at once, and the ledger stops taking appends.
    let (alive, committer_gone) = bounded::<()>(0);
    let store = ledger.store().clone();
    let committer = std::thread::Builder::new()
        .name("ledger-committer".into())
        .spawn(move || {
            let _alive = alive;
            commit_loop(&store, &committing, &head)
        })
        .expect("spawn committer thread");
    // A panic while deciding still lets the committer finish the group it holds and is joined
    // before the panic goes on: no thread is left writing to the store behind a stopped ledger.
    let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decide_loop(&mut ledger, verified, &to_commit, &committer_gone)
    }));
    drop(to_commit);
    let committed = committer.join().unwrap_or(Err(LedgerError::Stopped));
    let (decided, refused) = decided.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let reason = match (&committed, &decided) {
        (Err(e), _) | (Ok(()), Err(e)) => e.to_string(),
        (Ok(()), Ok(())) => String::new(),
    };
    answer_stopped(refused, &reason);
    committed?;
    decided?;
    // A clean stop snapshots only a sizeable tail: a CLI that appends one command per run
    // should not rewrite the whole state each time; the tail replays quickly on open anyway.
    if ledger.events_since_snapshot() >= SHUTDOWN_SNAPSHOT_EVENTS_MIN {
        ledger.snapshot()?;
    }
    Ok(())
}

/// Decides groups and hands them to the committer until the verified queue closes or
/// something fails. Returns why it stopped, and the replies of a group decided but never
/// committed (the committer had stopped), to be answered with the committer's error.
fn decide_loop(
    ledger: &mut Ledger,
    verified: &Receiver<Vec<VerifiedJob>>,
    to_commit: &Sender<ToCommit>,
    committer_gone: &Receiver<()>,
) -> (Result<(), LedgerError>, Vec<Reply>) {
    loop {
        let mut jobs = crossbeam_channel::select! {
            recv(verified) -> group => match group {
                Ok(group) => group,
                Err(_) => return (Ok(()), Vec::new()),
            },
            recv(committer_gone) -> _ => return (Err(LedgerError::Stopped), Vec::new()),
        };
        let mut commands: usize = jobs.iter().map(|j| j.submission.commands.len()).sum();
        while commands < GROUP_COMMANDS_MAX {
            match verified.try_recv() {
                Ok(more) => {
                    commands += more.iter().map(|j| j.submission.commands.len()).sum::<usize>();
                    jobs.extend(more);
                }
                Err(_) => break,
            }
        }
        let (submissions, replies): (Vec<Submission>, Vec<Reply>) =
            jobs.into_iter().map(|j| (j.submission, j.reply)).unzip();
        let decided = match ledger.decide_group(submissions) {
            Ok(decided) => decided,
            Err(e) => {
                tracing::error!(error = %e, "deciding a group failed; the ledger stops");
                return (Err(e), replies);
            }
        };
        if let Err(SendError(ToCommit::Group { replies, .. })) = to_commit.send(ToCommit::Group { decided, replies }) {
            return (Err(LedgerError::Stopped), replies);
        }
        if ledger.snapshot_due() {
            let (done, drained) = bounded(1);
            if to_commit.send(ToCommit::Drained(done)).is_err() || drained.recv().is_err() {
                return (Err(LedgerError::Stopped), Vec::new());
            }
            if let Err(e) = ledger.snapshot() {
                tracing::error!(error = %e, "writing a snapshot failed; the ledger stops");
                return (Err(e), Vec::new());
            }
        }
    }
}

/// Commits each group handed over, in order: one frame and one `fdatasync`, then the head,
/// then the group's answers. Stops at the first failure, after telling that group's callers.
fn commit_loop(store: &Store, committing: &Receiver<ToCommit>, head: &watch::Sender<u64>) -> Result<(), LedgerError> {
    for job in committing {
        let (decided, replies) = match job {
            ToCommit::Group { decided, replies } => (decided, replies),
            ToCommit::Drained(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if let Err(e) = store.commit(&decided.records) {
            tracing::error!(error = %e, "group commit failed; the ledger stops");
            answer_stopped(replies, &e.to_string());
            return Err(e);
        }
        if let Some(last) = decided.records.last() {
            head.send_replace(last.seq);
        }
        for (reply, outcome) in replies.into_iter().zip(decided.outcomes) {
            let _ = reply.send(Ok(outcome)); // a caller that went away loses nothing
        }
    }
    Ok(())
}
