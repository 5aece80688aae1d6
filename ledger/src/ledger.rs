//! [`Ledger`]: the synchronous heart of the write path. It owns the store and the live state,
//! decides groups of verified commands, seals them into chained records, commits them with one
//! fsync and only then reports outcomes. The group-commit writer ([`crate::writer`]) drives it
//! from one thread; tests and tools drive it directly.

use crate::audit::verify::{self, Problem};
use crate::canonical::Hash;
use crate::domain::decide::LastRead;
use crate::domain::state::Undo;
use crate::domain::{self, Applied, Decision, Event, EventId, History, Rejection, State};
use crate::error::LedgerError;
use crate::record::{self, RecordBody, Scope, Sealed, GENESIS_PREV_HASH};
use crate::signing::Verified;
use crate::store::Store;
use chrono::{DateTime, SubsecRound, Utc};
use std::cell::RefCell;
use std::path::Path;

/// Where ledger time comes from. Injected, so tests and replays control it.
pub trait Clock: Send {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Events between snapshots of the derived state. Opening replays at most this many
/// records after the snapshot (about 0.2 s at the measured replay rate); a snapshot of a
/// large state costs a few hundred ms of writer time, so not much more often than this.
pub const SNAPSHOT_EVERY_EVENTS: u64 = 100_000;

#[derive(Debug, Clone)]
pub struct LedgerOptions {
    pub snapshot_every_events: u64,
    /// Bits of each event id's hash the state's index keeps (see [`domain::EventIndex`]):
    /// 64. Tests shrink it so that ids collide, which must change no answer.
    pub event_hash_bits: u32,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions { snapshot_every_events: SNAPSHOT_EVERY_EVENTS, event_hash_bits: 64 }
    }
}

/// The outcome of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Appended at `seq`.
    Appended {
        seq: u64,
        event_id: EventId,
    },
    /// Already recorded with the same content at `seq`; nothing new was written.
    Duplicate {
        seq: u64,
        event_id: EventId,
    },
    Rejected(Rejection),
}

impl Outcome {
    pub fn seq(&self) -> Option<u64> {
        match self {
            Outcome::Appended { seq, .. } | Outcome::Duplicate { seq, .. } => Some(*seq),
            Outcome::Rejected(_) => None,
        }
    }
}

/// One caller's commands, verified (or refused at verification), and whether they must all
/// apply or none.
#[derive(Debug)]
pub struct Submission {
    pub commands: Vec<Result<Verified, Rejection>>,
    pub atomic: bool,
}

pub struct Ledger {
    store: Store,
    state: State,
    clock: Box<dyn Clock>,
    options: LedgerOptions,
    events_since_snapshot: u64,
    /// Records decided into `state` whose commit may not be visible in the store yet (the
    /// pipelined writer decides a group while the one before is being synced): `decide`
    /// reads them here, as it reads the group being decided. Ascending by seq; those the store
    /// shows are dropped at the start of every group.
    unsynced: Vec<Pending>,
}

/// A group decided into the live state whose records are not committed yet
/// ([`Ledger::decide_group`]). Its outcomes may be told only once its records are durable.
#[derive(Debug)]
pub struct Decided {
    /// The sealed records, in seq order; commit them with [`Store::commit`].
    pub records: Vec<Sealed>,
    /// Every submission's outcomes, in order.
    pub outcomes: Vec<Vec<Outcome>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("store", &self.store).field("head", &self.state.head.seq).finish()
    }
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`: loads the latest intact snapshot and replays
    /// the log after it, checking the chain of every replayed record.
    pub fn open(dir: &Path, clock: Box<dyn Clock>, options: LedgerOptions) -> Result<Ledger, LedgerError> {
        let store = Store::open(dir)?;
        let state = recover(&store, options.event_hash_bits)?;
        Ok(Ledger { store, state, clock, options, events_since_snapshot: 0, unsynced: Vec::new() })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where `id` was recorded, if it was: its seq and command digest (also for a record
    /// decided and not yet committed).
    pub fn recorded(&self, id: &EventId) -> Result<Option<domain::Recorded>, LedgerError> {
        let history = StoreHistory::new(&self.store, &self.unsynced);
        let found = self.state.recorded(id, &history);
        history.check()?;
        Ok(found)
    }

    /// Decides every submission in order, commits all resulting records with one fsync, and
    /// returns each submission's outcomes. On a storage failure the live state is rolled back
    /// to what is durable and the error is returned for the whole group.
    pub fn commit_group(&mut self, group: Vec<Submission>) -> Result<Vec<Vec<Outcome>>, LedgerError> {
        let (decided, undo) = self.decide(group)?;
        if let Err(e) = self.store.commit(&decided.records) {
            self.state.rollback(undo);
            let kept = self.unsynced.len() - decided.records.len();
            self.unsynced.truncate(kept);
            self.events_since_snapshot -= decided.records.len() as u64;
            return Err(e);
        }
        if self.snapshot_due() {
            self.snapshot()?;
        }
        Ok(decided.outcomes)
    }

    /// Decides every submission in order into the live state and seals the records, without
    /// committing them: the pipelined writer ([`crate::writer`]) commits them on another
    /// thread while it decides the next group. Later groups see these records (idempotency,
    /// reversals) before the store does. There is no way back: if their commit fails, this
    /// ledger's state is ahead of the log and must be dropped (the writer stops; the next open
    /// rebuilds the state from the log). A failure while deciding rolls this group back and
    /// leaves the state as it was.
    pub fn decide_group(&mut self, group: Vec<Submission>) -> Result<Decided, LedgerError> {
        self.decide(group).map(|(decided, _undo)| decided)
    }

    fn decide(&mut self, group: Vec<Submission>) -> Result<(Decided, Vec<Undo>), LedgerError> {
        let visible = self.store.head();
        let shown = self.unsynced.partition_point(|p| p.seq <= visible);
        self.unsynced.drain(..shown);
        let before = self.unsynced.len();
        let now = self.ledger_time();
        let mut undo: Vec<Undo> = Vec::new();
        let mut records: Vec<Sealed> = Vec::new();
        let mut pending = std::mem::take(&mut self.unsynced);
        let mut outcomes = Vec::with_capacity(group.len());
        for submission in group {
            match self.decide_submission(submission, now, &mut undo, &mut records, &mut pending) {
                Ok(o) => outcomes.push(o),
                Err(e) => {
                    self.state.rollback(undo);
                    pending.truncate(before);
                    self.unsynced = pending;
                    return Err(e);
                }
            }
        }
        self.unsynced = pending;
        self.events_since_snapshot += records.len() as u64;
        Ok((Decided { records, outcomes }, undo))
    }

    /// Whether enough events were decided since the last snapshot to write a new one (once
    /// they are durable: [`Ledger::snapshot`]).
    pub fn snapshot_due(&self) -> bool {
        self.events_since_snapshot >= self.options.snapshot_every_events
    }

    /// Events decided since the last snapshot (or since open); with the pipelined writer the
    /// last group's may still be syncing.
    pub fn events_since_snapshot(&self) -> u64 {
        self.events_since_snapshot
    }

    /// Writes a snapshot of the current state now. Every record decided must be durable first
    /// (else [`LedgerError::SnapshotAhead`]): a snapshot of records that never became durable
    /// would not match the log at the next open, which would discard it and replay everything.
    pub fn snapshot(&mut self) -> Result<(), LedgerError> {
        let durable = self.store.head();
        if durable != self.state.head.seq {
            return Err(LedgerError::SnapshotAhead { state: self.state.head.seq, log: durable });
        }
        self.store.save_snapshot(&self.state)?;
        self.events_since_snapshot = 0;
        Ok(())
    }

    /// Extends the log with records another ledger sealed — a standby following the active
    /// ledger's stream (`stockpile-ledger serve --standby`) — each checked as `audit verify`
    /// checks a record (its canonical bytes and hash, its command's signature, its seq and
    /// `prev_hash` after the head, ledger time never going back, and `decide` on the state so
    /// far deciding exactly the recorded event), then all committed byte for byte with one
    /// fsync. The first record that does not verify refuses the whole call and changes
    /// nothing, in memory or on disk. Returns the new head.
    pub fn follow(&mut self, lines: &[Vec<u8>]) -> Result<u64, FollowError> {
        let mut undo: Vec<Undo> = Vec::new();
        if let Err(e) = self.follow_into(lines, &mut undo) {
            self.state.rollback(undo);
            return Err(e);
        }
        self.events_since_snapshot += lines.len() as u64;
        if self.events_since_snapshot >= self.options.snapshot_every_events {
            // The records are committed: a snapshot that fails only makes the next open
            // replay more.
            if let Err(e) = self.snapshot() {
                tracing::warn!(error = %e, "could not write a snapshot after following the stream");
            }
        }
        Ok(self.state.head.seq)
    }

    fn follow_into(&mut self, lines: &[Vec<u8>], undo: &mut Vec<Undo>) -> Result<(), FollowError> {
        let mut sealed: Vec<Sealed> = Vec::with_capacity(lines.len());
        let mut pending: Vec<Pending> = Vec::with_capacity(lines.len());
        for (line, checked) in lines.iter().zip(verify::check_records(lines)) {
            let seq = self.state.head.seq + 1;
            let refused = |problem| FollowError::Refused { seq, problem };
            let (record, verified) = checked.map_err(refused)?;
            let body = &record.body;
            if body.seq != seq {
                return Err(refused(Problem::SeqGap { expected: seq, found: body.seq }));
            }
            let prev = if seq == 1 { GENESIS_PREV_HASH } else { self.state.head.hash };
            if body.prev_hash != prev {
                return Err(refused(Problem::PrevHash));
            }
            if let Some(previous) = self.state.head.recorded_at.filter(|p| *p > body.recorded_at) {
                return Err(refused(Problem::ClockBackwards { previous, found: body.recorded_at }));
            }
            let history = StoreHistory::new(&self.store, &pending);
            let event = verify::reexecute(&self.state, &record, &verified, &history);
            history.check()?;
            let event = event.map_err(refused)?;
            let applied = Applied {
                seq,
                hash: record.hash,
                occurred_at: body.occurred_at,
                recorded_at: body.recorded_at,
                event_id: &body.event_id,
                digest: body.command_digest,
            };
            let history = StoreHistory::new(&self.store, &pending);
            let folded = self.state.apply_logged(&applied, &event, &history, undo);
            history.check()?;
            folded.map_err(|v| refused(Problem::DoesNotApply(v.to_string())))?;
            pending.push(Pending { seq, event_id: body.event_id.clone(), digest: body.command_digest, event });
            sealed.push(Sealed { seq, hash: record.hash, bytes: line.clone() });
        }
        Ok(self.store.commit(&sealed)?)
    }

    /// Ledger time for a group: the clock, truncated to microseconds, never before the head.
    fn ledger_time(&self) -> DateTime<Utc> {
        let now = self.clock.now().trunc_subsecs(6);
        match self.state.head.recorded_at {
            Some(last) if last > now => last,
            _ => now,
        }
    }

    fn decide_submission(
        &mut self,
        submission: Submission,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
        sealed: &mut Vec<Sealed>,
        pending: &mut Vec<Pending>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let (undo_mark, sealed_mark, pending_mark) = (undo.len(), sealed.len(), pending.len());
        let total = submission.commands.len();
        let mut outcomes = Vec::with_capacity(total);
        let mut first_rejection = None;
        for (index, command) in submission.commands.into_iter().enumerate() {
            let outcome = match command {
                Ok(verified) => self.decide_one(verified, now, undo, sealed, pending)?,
                Err(rejection) => Outcome::Rejected(rejection),
            };
            if let Outcome::Rejected(_) = outcome {
                first_rejection.get_or_insert(index);
            }
            outcomes.push(outcome);
            if submission.atomic && first_rejection.is_some() {
                break;
            }
        }
        if let (true, Some(bad)) = (submission.atomic, first_rejection) {
            // All or nothing: undo this submission's effects and report every other command
            // as aborted because of the first rejection.
            self.state.rollback(undo.split_off(undo_mark));
            sealed.truncate(sealed_mark);
            pending.truncate(pending_mark);
            return Ok(abort_all(outcomes, bad, total));
        }
        Ok(outcomes)
    }

    fn decide_one(
        &mut self,
        verified: Verified,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
        sealed: &mut Vec<Sealed>,
        pending: &mut Vec<Pending>,
    ) -> Result<Outcome, LedgerError> {
        let history = StoreHistory::new(&self.store, pending);
        let decision =
            domain::decide(&self.state, &verified.signed.command, &verified.signer, &verified.digest, now, &history);
        history.check()?;
        let event = match decision {
            Ok(Decision::New(event)) => event,
            Ok(Decision::Duplicate { seq }) => {
                return Ok(Outcome::Duplicate { seq, event_id: verified.signed.command.id.clone() })
            }
            Err(rejection) => return Ok(Outcome::Rejected(rejection)),
        };
        let seq = self.state.head.seq + 1;
        let prev_hash = if seq == 1 { GENESIS_PREV_HASH } else { self.state.head.hash };
        let actor = self.state.keys.get(&verified.signer.key).and_then(|k| k.party.clone());
        let event_id = verified.signed.command.id.clone();
        let mut body = RecordBody {
            seq,
            event_id: event_id.clone(),
            kind: verified.signed.command.action.kind().to_string(),
            occurred_at: verified.signed.command.occurred_at,
            recorded_at: now,
            key: verified.signer.key.clone(),
            actor,
            scope: Scope::default(),
            command: verified.signed,
            command_digest: verified.digest,
            event,
            prev_hash,
        };
        body.scope = scope(&self.state, &body.event);
        let record = body.seal_with_command(&verified.canonical);
        let applied = Applied {
            seq,
            hash: record.hash,
            occurred_at: body.occurred_at,
            recorded_at: now,
            event_id: &event_id,
            digest: body.command_digest,
        };
        let history = StoreHistory::new(&self.store, pending);
        let applied = self.state.apply_logged(&applied, &body.event, &history, undo);
        history.check()?;
        applied.map_err(|v| LedgerError::Corrupt { seq, what: format!("decided event does not apply: {v}") })?;
        pending.push(Pending { seq, event_id: body.event_id, digest: body.command_digest, event: body.event });
        sealed.push(record);
        Ok(Outcome::Appended { seq, event_id })
    }
}

/// Why [`Ledger::follow`] refused records; nothing of the call was kept.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Record `seq` does not verify: the source is not a copy of a valid ledger that extends
    /// this one.
    #[error("record {seq} does not verify: {problem}")]
    Refused { seq: u64, problem: Problem },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Outcomes of an aborted atomic batch: the culprit's rejection, and `BatchAborted` for all
/// `total` others (including those after it, which were never decided).
fn abort_all(mut outcomes: Vec<Outcome>, bad: usize, total: usize) -> Vec<Outcome> {
    let culprit = outcomes.swap_remove(bad);
    (0..total)
        .map(|i| if i == bad { culprit.clone() } else { Outcome::Rejected(Rejection::BatchAborted { index: bad }) })
        .collect()
}

/// Who an event concerns: the partners of every party it touches, and the lot's material.
pub(crate) fn scope(state: &State, event: &Event) -> Scope {
    let mut partners = Vec::new();
    let mut material = None;
    let mut party = |p: &domain::PartyId| {
        if let Some(party) = state.parties.get(p) {
            partners.push(party.partner.clone());
        }
    };
    match event {
        Event::PartyRegistered { party: p } => partners.push(p.partner.clone()),
        Event::KeyRegistered { key } => {
            if let Some(p) = &key.party {
                party(p)
            }
        }
        Event::FigureRegistered { partner, material: m, .. } => {
            partners.push(partner.clone());
            material = Some(m.clone());
        }
        Event::ReleaseRulesRegistered { partner, material: m, .. } => {
            partners.push(partner.clone());
            material = Some(m.clone());
        }
        Event::Withheld { party: p, lot, .. } | Event::Unwithheld { party: p, lot, .. } => {
            party(p);
            material = state.lots.get(lot).map(|l| l.spec.material.clone());
        }
        Event::Acquired { lot, to, .. } => {
            party(&to.party);
            material = Some(lot.material.clone());
        }
        _ => {
            for posting in event.effects().postings {
                party(&posting.position.party);
                if material.is_none() {
                    material = state.lots.get(&posting.position.lot).map(|l| l.spec.material.clone());
                }
            }
        }
    }
    partners.sort();
    partners.dedup();
    Scope { partners, material }
}

/// A record of the group being decided, not yet in the store.
struct Pending {
    seq: u64,
    event_id: EventId,
    digest: [u8; 32],
    event: Event,
}

/// Earlier records, for idempotency and reversals: from this group's pending records, else
/// from the store. A read that fails is kept, and [`StoreHistory::check`] returns it.
struct StoreHistory<'a> {
    store: &'a Store,
    pending: &'a [Pending],
    error: RefCell<Option<LedgerError>>,
    last: LastRead<record::ReplayBody>,
}

impl<'a> StoreHistory<'a> {
    fn new(store: &'a Store, pending: &'a [Pending]) -> StoreHistory<'a> {
        StoreHistory { store, pending, error: RefCell::new(None), last: LastRead::new() }
    }

    /// The first read that failed, if any: a decision made without it must not stand.
    fn check(self) -> Result<(), LedgerError> {
        self.error.into_inner().map_or(Ok(()), Err)
    }

    fn pending(&self, seq: u64) -> Option<&Pending> {
        let at = self.pending.partition_point(|p| p.seq < seq);
        self.pending.get(at).filter(|p| p.seq == seq)
    }

    /// The record at `seq` in the store, decoded as replay decodes it.
    fn stored(&self, seq: u64) -> Option<record::ReplayBody> {
        self.last.get_or_read(seq, || self.read(seq))
    }

    fn read(&self, seq: u64) -> Option<record::ReplayBody> {
        let bytes = match self.store.record(seq) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                return None;
            }
        };
        match decode_for_replay(&bytes) {
            Ok(r) if r.seq == seq => Some(r.body),
            Ok(r) => {
                let what = format!("the record at seq {seq} says seq {}", r.seq);
                self.error.borrow_mut().get_or_insert(LedgerError::Corrupt { seq, what });
                None
            }
            Err(what) => {
                self.error.borrow_mut().get_or_insert(LedgerError::Corrupt { seq, what });
                None
            }
        }
    }
}

impl History for StoreHistory<'_> {
    fn event_at(&self, seq: u64) -> Option<Event> {
        if let Some(p) = self.pending(seq) {
            return Some(p.event.clone());
        }
        self.stored(seq).map(|body| body.event)
    }

    fn recorded_id(&self, seq: u64) -> Option<(EventId, [u8; 32])> {
        if let Some(p) = self.pending(seq) {
            return Some((p.event_id.clone(), p.digest));
        }
        self.stored(seq).map(|body| (body.event_id, body.command_digest))
    }
}

/// Rebuilds state: the latest intact snapshot (if its head matches the log) plus the tail.
fn recover(store: &Store, event_hash_bits: u32) -> Result<State, LedgerError> {
    let mut state = match store.load_snapshot()? {
        Some(s) if s.events.hash_bits() == event_hash_bits && snapshot_matches_log(store, &s)? => s,
        _ => State { events: domain::EventIndex::with_hash_bits(event_hash_bits), ..State::default() },
    };
    replay_into(store, &mut state)?;
    Ok(state)
}

fn snapshot_matches_log(store: &Store, state: &State) -> Result<bool, LedgerError> {
    if state.head.seq == 0 {
        return Ok(true);
    }
    let Some(bytes) = store.record(state.head.seq)? else { return Ok(false) };
    let raw: record::RawRecord<'_> = serde_json::from_slice(&bytes)
        .map_err(|e| LedgerError::Corrupt { seq: state.head.seq, what: e.to_string() })?;
    Ok(crate::canonical::parse_hex(raw.hash) == Some(state.head.hash))
}

/// Stored bytes decoded together (whole frames, so a batch may run over by one frame): a
/// few thousand records, so every core gets work, while two batches in flight stay small.
pub const REPLAY_BATCH_BYTES: usize = 8 << 20;

/// What replay needs from a stored record: its hash (computed over the stored body bytes), its
/// link, and the event. The signed command is skipped, not decoded: `apply` does not need it
/// (an audit verifies signatures separately).
struct ReplayRecord {
    seq: u64,
    hash: Hash,
    prev_hash: Hash,
    body: record::ReplayBody,
}

fn decode_for_replay(bytes: &[u8]) -> Result<ReplayRecord, String> {
    // The sealed layout the ledger writes, read without walking the JSON twice; anything
    // else is decoded as JSON below, which says what is wrong with it.
    if let Some((body, claimed)) = record::split_sealed(bytes) {
        let hash = crate::canonical::sha256(body);
        if hash != claimed {
            return Err("record hash does not match its body".into());
        }
        if let Some(body) = record::ReplayBody::from_canonical(body) {
            return Ok(ReplayRecord { seq: body.seq, hash, prev_hash: body.prev_hash, body });
        }
    }
    let raw: record::RawRecord<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let hash = crate::canonical::sha256(raw.body.get().as_bytes());
    if crate::canonical::parse_hex(raw.hash) != Some(hash) {
        return Err("record hash does not match its body".into());
    }
    let body: record::ReplayBody = serde_json::from_str(raw.body.get()).map_err(|e| e.to_string())?;
    Ok(ReplayRecord { seq: body.seq, hash, prev_hash: body.prev_hash, body })
}

/// Replays every record after `state.head` into `state`, checking the chain as it goes.
/// A two-stage pipeline: while this batch of records is applied in order, the next one is
/// read, hashed and decoded on the other cores.
pub fn replay_into(store: &Store, state: &mut State) -> Result<(), LedgerError> {
    let first = state.head.seq + 1;
    // One event id per record: sized once, not doubled (and every entry moved) as it grows.
    state.reserve_events(usize::try_from(store.head().saturating_sub(state.head.seq)).unwrap_or(0));
    let mut frames = store.frames_from(first);
    let mut batch = Batch::default();
    // Two buffers of decoded records, swapped each step: one is applied while the other fills.
    let (mut pending, mut next) = (Vec::new(), Vec::new());
    loop {
        let (read, applied) = rayon::join(
            || batch.read(&mut frames).map(|()| batch.decode_into(first, &mut next)),
            || pending.drain(..).try_for_each(|(seq, rec)| apply_replayed(store, state, seq, rec)),
        );
        applied?;
        read?;
        if next.is_empty() {
            return Ok(());
        }
        std::mem::swap(&mut pending, &mut next);
    }
}

/// Frames read for one step of replay: their payloads end to end in one buffer, reused from
/// batch to batch (no allocation or fresh pages per frame), and where each frame starts.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Each frame's first seq and its payload's range in `bytes`.
    frames: Vec<(u64, std::ops::Range<usize>)>,
}

impl Batch {
    /// The next frames, up to [`REPLAY_BATCH_BYTES`]; none at the end of the log.
    fn read(&mut self, frames: &mut crate::store::Frames<'_>) -> Result<(), LedgerError> {
        self.bytes.clear();
        self.frames.clear();
        while self.bytes.len() < REPLAY_BATCH_BYTES {
            let Some((first, payload)) = frames.next_frame()? else { break };
            let start = self.bytes.len();
            self.bytes.extend_from_slice(payload);
            self.frames.push((first, start..self.bytes.len()));
        }
        Ok(())
    }

    /// Every record of the batch from seq `first` on, hashed and decoded on every core,
    /// appended to `out` in order.
    fn decode_into(&self, first: u64, out: &mut Vec<(u64, Result<ReplayRecord, String>)>) {
        use rayon::prelude::*;
        let mut lines: Vec<(u64, &[u8])> = Vec::new();
        for (start, range) in &self.frames {
            let records = crate::store::log::frame_records(*start, &self.bytes[range.clone()]);
            lines.extend(records.filter(|(seq, _)| *seq >= first));
        }
        out.par_extend(lines.par_iter().with_min_len(64).map(|(seq, line)| (*seq, decode_for_replay(line))));
    }
}

/// Checks that a decoded record is the next link of the chain and folds it into `state`.
fn apply_replayed(
    store: &Store,
    state: &mut State,
    seq: u64,
    rec: Result<ReplayRecord, String>,
) -> Result<(), LedgerError> {
    let corrupt = |what: String| LedgerError::Corrupt { seq, what };
    let rec = rec.map_err(corrupt)?;
    let expected = state.head.seq + 1;
    if rec.seq != expected || seq != expected {
        return Err(corrupt(format!("expected seq {expected}, found {}", rec.seq)));
    }
    let prev = if expected == 1 { GENESIS_PREV_HASH } else { state.head.hash };
    if rec.prev_hash != prev {
        return Err(corrupt("prev_hash does not match the hash of the record before".into()));
    }
    let b = &rec.body;
    let applied = Applied {
        seq: rec.seq,
        hash: rec.hash,
        occurred_at: b.occurred_at,
        recorded_at: b.recorded_at,
        event_id: &b.event_id,
        digest: b.command_digest,
    };
    let history = StoreHistory::new(store, &[]);
    let applied = state.apply(&applied, &b.event, &history);
    history.check()?;
    applied.map_err(|v| corrupt(v.to_string()))
}

/// State folded from the log alone, from seq 1: what the live state must always equal.
pub fn replay(store: &Store) -> Result<State, LedgerError> {
    replay_with(store, 64)
}

/// [`replay`] into an index keeping `event_hash_bits` of each id's hash (see
/// [`LedgerOptions::event_hash_bits`]).
pub fn replay_with(store: &Store, event_hash_bits: u32) -> Result<State, LedgerError> {
    let mut state = State { events: domain::EventIndex::with_hash_bits(event_hash_bits), ..State::default() };
    replay_into(store, &mut state)?;
    Ok(state)
}
