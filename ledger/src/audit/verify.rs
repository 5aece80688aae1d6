//! Offline verification: re-execute the ledger on the signed commands and compare.
//!
//! The verifier trusts nothing but the signatures. For every record, in order, it checks
//! 1. the line is the record's exact canonical bytes, and its hash covers its body;
//! 2. its seq follows, its `prev_hash` names the record before, ledger time never goes back;
//! 3. the command's Ed25519 signature verifies (in batches, on every core);
//! 4. `decide` — the ledger's own pure core — run on the state replayed so far, with the
//!    record's ledger time as `now`, accepts the signed command (the key was registered, not
//!    revoked, and may move that stock; the balance sufficed) and decides exactly the event,
//!    scope, actor and digest the record holds; then `apply` folds it;
//!
//! and every checkpoint line: its tree size is the number of records before it (so at most
//! one checkpoint follows a record), its root is the RFC 6962 root over their hashes, and its
//! signature verifies under the ledger key (the one pinned by the auditor, or else the first
//! one seen, which all others must match). An export must end with a checkpoint over all its
//! records, so records cut from the end are caught like any other; checkpoints before it are
//! optional (an export over NATS carries only the last). At the end, conservation is checked
//! over the replayed state.
//!
//! The first problem stops verification and names its [`Position`]: where the line stands
//! among the lines (the record that should be there, or the checkpoint after the records
//! before it), whatever the (possibly damaged) line claims, and its line number.

use super::checkpoint::{Checkpoint, CheckpointError};
use super::export::{Lines, LinesError, CHUNK_LINES, RECORD_PREFIX};
use crate::canonical::{self, Hash};
use crate::domain::decide::LastRead;
use crate::domain::{self, Applied, Decision, Event, EventId, History, Rejection, State};
use crate::merkle::{leaf_hash, Digest, Frontier};
use crate::record::{self, RawRecord, Record, GENESIS_PREV_HASH};
use crate::signing::{self, Checked, VERIFY_BATCH_COMMANDS_MAX};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use std::cell::RefCell;

/// What the auditor brings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The ledger's checkpoint key (lower-case hex), as published by the operator. Without
    /// it the first checkpoint's key is taken, and the summary names it for comparison.
    pub ledger_key: Option<String>,
    /// Accept records after the last checkpoint (every other check still applies to them):
    /// what `stockpile-ledger restore --from-stream` needs, since the stream of records runs
    /// ahead of the last checkpoint published. An export must end with one (the default).
    pub uncovered_tail_allowed: bool,
}

/// A verified export.
#[derive(Debug, Clone)]
pub struct Summary {
    pub records: u64,
    pub checkpoints: u64,
    /// Records covered by the last checkpoint: all of them, unless
    /// [`Options::uncovered_tail_allowed`].
    pub covered: u64,
    /// Command signatures verified (one per record).
    pub signatures: u64,
    pub head_hash: Hash,
    /// Merkle root over all records (equal to the last checkpoint's).
    pub root: Digest,
    /// The key every checkpoint was signed with.
    pub ledger_key: String,
    /// The note of the last checkpoint (the one over all records), cosignatures included;
    /// `None` for a checkpoint made before notes. Whose cosignatures count is the client's
    /// decision ([`super::note::Quorum`]).
    pub last_note: Option<String>,
    /// Whether that key was pinned by the auditor or taken from the export.
    pub key_pinned: bool,
    /// The state replayed from the export: what the ledger's state was at its head.
    pub state: State,
}

/// The first problem found.
#[derive(Debug, thiserror::Error)]
#[error("{at} (line {line}): {problem}")]
pub struct VerifyError {
    /// Where the problem is, by position: from here on the input is not proven.
    pub at: Position,
    /// The 1-based line of the input that shows it; for a problem at the end
    /// ([`Position::End`]), the line after the last one read.
    pub line: u64,
    pub problem: Box<Problem>,
}

/// Where in the input a problem is, counted from the lines before it: never what the
/// (possibly damaged) line itself claims. Serialized in `audit verify --format json`
/// (`{"kind":"checkpoint","after":1580}`), so its spelling is a compatibility boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// The line where record `seq` must be: `seq - 1` record lines stand before it. A line
    /// that is neither a record nor a checkpoint is named as the record expected there.
    Record { seq: u64 },
    /// A checkpoint line with `after` record lines before it: the checkpoint after record
    /// `after`, whose tree size must be `after`.
    Checkpoint { after: u64 },
    /// The end of the input (or of what could be read of it), after `after` records: a
    /// missing final checkpoint, no records at all, a read error, or conservation.
    End { after: u64 },
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Record { seq } => write!(f, "seq {seq}"),
            Position::Checkpoint { after } => write!(f, "the checkpoint after seq {after}"),
            Position::End { after } => write!(f, "the end of the input after seq {after}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("the line is neither a record nor a checkpoint")]
    NotALine,
    #[error("not a record: {0}")]
    Malformed(String),
    #[error("the record's hash does not match its body")]
    HashMismatch,
    #[error("the record's bytes are not the canonical encoding of its content")]
    NotCanonical,
    #[error("expected seq {expected}, found seq {found}: a record is missing, repeated or out of order")]
    SeqGap { expected: u64, found: u64 },
    #[error("prev_hash does not name the record before")]
    PrevHash,
    #[error("recorded_at {found} is before the previous record's {previous}")]
    ClockBackwards { previous: DateTime<Utc>, found: DateTime<Utc> },
    #[error("the command's signature does not verify: {0}")]
    Signature(Rejection),
    #[error("the ledger would not have recorded this command: {0}")]
    Rejected(Rejection),
    #[error("the command was already recorded at seq {0}: a replayed command is not a new event")]
    Replayed(u64),
    #[error("the record's {0} is not what the ledger decides from the signed command")]
    Mismatch(&'static str),
    #[error("the event does not apply to the state: {0}")]
    DoesNotApply(String),
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    #[error("the checkpoint claims {tree_size} records but follows record {records}: a checkpoint line was moved or edited, or records before it were added or dropped")]
    CheckpointMisplaced { tree_size: u64, records: u64 },
    #[error("a second checkpoint after the same record: an export holds at most one per record, so a checkpoint line was repeated")]
    CheckpointRepeated,
    #[error("the checkpoint's root is not the Merkle root of the records before it")]
    CheckpointRoot,
    #[error("the checkpoint is signed by {found}, not the ledger key {expected}")]
    CheckpointKey { expected: String, found: String },
    #[error("the input holds no records")]
    Empty,
    #[error("records {first} to {last} are not covered by a checkpoint: an export must end with one over all its records (`audit export` writes it), so get the export again")]
    UncoveredTail { first: u64, last: u64 },
    #[error("the replayed state breaks conservation: {0}")]
    Conservation(String),
    #[error("reading the input: {0}")]
    Read(#[from] LinesError),
}

impl Problem {
    /// A stable snake_case name for the problem, for machine output (`audit verify
    /// --format json`): a compatibility boundary, like [`Position`].
    pub fn code(&self) -> &'static str {
        match self {
            Problem::NotALine => "not_a_line",
            Problem::Malformed(_) => "malformed",
            Problem::HashMismatch => "hash_mismatch",
            Problem::NotCanonical => "not_canonical",
            Problem::SeqGap { .. } => "seq_gap",
            Problem::PrevHash => "prev_hash",
            Problem::ClockBackwards { .. } => "clock_backwards",
            Problem::Signature(_) => "signature",
            Problem::Rejected(_) => "rejected",
            Problem::Replayed(_) => "replayed",
            Problem::Mismatch(_) => "mismatch",
            Problem::DoesNotApply(_) => "does_not_apply",
            Problem::Checkpoint(CheckpointError::Malformed(_)) => "checkpoint_malformed",
            Problem::Checkpoint(CheckpointError::NotCanonical) => "checkpoint_not_canonical",
            Problem::Checkpoint(CheckpointError::BadKey) => "checkpoint_bad_key",
            Problem::Checkpoint(CheckpointError::BadSignature) => "checkpoint_signature",
            Problem::CheckpointMisplaced { .. } => "checkpoint_misplaced",
            Problem::CheckpointRepeated => "checkpoint_repeated",
            Problem::CheckpointRoot => "checkpoint_root",
            Problem::CheckpointKey { .. } => "checkpoint_key",
            Problem::Empty => "empty",
            Problem::UncoveredTail { .. } => "uncovered_tail",
            Problem::Conservation(_) => "conservation",
            Problem::Read(_) => "read",
        }
    }
}

/// What [`verify_chain`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub records: u64,
    pub checkpoints: u64,
    pub head_hash: Hash,
    pub root: Digest,
    pub ledger_key: String,
    /// As [`Summary::last_note`].
    pub last_note: Option<String>,
}

/// The fast check: every record line is in the sealed layout with a hash that covers its body,
/// seqs follow, each `prev_hash` names the record before, and every checkpoint's root and
/// signature hold. Signatures of commands and re-execution are left to [`verify`]; a log that
/// passes this was not altered after the checkpoints were signed.
pub fn verify_chain(
    lines: &mut dyn Lines,
    options: &Options,
    progress: &mut dyn FnMut(u64),
) -> Result<ChainSummary, VerifyError> {
    verify_chain_in_blocks(lines, options, progress, CHUNK_LINES)
}

/// [`verify_chain`] reading at most `block_lines` lines at a time: the same checks and the
/// same first problem whatever the block size (tests cut blocks small so that damage falls
/// on their edges). Not for auditors: [`verify_chain`] picks the size.
#[doc(hidden)]
pub fn verify_chain_in_blocks(
    lines: &mut dyn Lines,
    options: &Options,
    progress: &mut dyn FnMut(u64),
    block_lines: usize,
) -> Result<ChainSummary, VerifyError> {
    let block_lines = block_lines.max(1);
    let mut v = Verifier::new(options);
    // A three-stage pipeline over blocks: while one thread reads block i + 1 and another
    // folds block i - 1's links in order, every thread free hashes block i's lines. Nothing
    // waits on the reading but the next round, so a core that is done folding hashes
    // instead of idling while the reader copies the file. The links of one block are
    // folded only after those of the block before, and a read error only after the lines
    // read before it: the first problem is the one a line-by-line check would name.
    // Two link buffers and two blocks (via `give_back`) alternate, so no round faults in
    // fresh pages.
    let mut to_fold: Vec<Link> = Vec::new();
    let mut hashed: Vec<Link> = Vec::new();
    let mut next = lines.next_block(block_lines);
    loop {
        let block = match next {
            Ok(block) if !block.is_empty() => block,
            Ok(_) => {
                v.fold(&mut to_fold)?;
                progress(v.records);
                return v.finish_chain();
            }
            Err(e) => {
                v.fold(&mut to_fold)?;
                progress(v.records);
                return Err(v.fail_at_end(Problem::Read(e)));
            }
        };
        let hash =
            |out: &mut Vec<Link>| block.lines.par_iter().map(|r| link(&block.bytes[r.clone()])).collect_into_vec(out);
        let ((read, ()), folded) = rayon::join(
            || rayon::join(|| lines.next_block(block_lines), || hash(&mut hashed)),
            || v.fold(&mut to_fold),
        );
        folded?;
        progress(v.records);
        // The links hold all the fold needs: the block's bytes can hold the lines after next.
        lines.give_back(block);
        std::mem::swap(&mut to_fold, &mut hashed);
        next = read;
    }
}

impl Verifier {
    /// The chain check's in-order part over one block's links: seqs follow, each `prev_hash`
    /// names the record before, the Merkle frontier grows, checkpoints hold.
    /// Drains `links` (keeping its buffer for the next block).
    fn fold(&mut self, links: &mut Vec<Link>) -> Result<(), VerifyError> {
        for item in links.drain(..) {
            self.line += 1;
            match item {
                Link::Record { seq, prev_hash, hash, leaf } => {
                    let expected = self.records + 1;
                    if seq != expected {
                        return Err(self.fail_record(Problem::SeqGap { expected, found: seq }));
                    }
                    if prev_hash != self.head {
                        return Err(self.fail_record(Problem::PrevHash));
                    }
                    self.frontier.push(leaf);
                    self.head = hash;
                    self.records = expected;
                }
                Link::Other(parsed) => self.step(*parsed, &NoLines)?,
            }
        }
        Ok(())
    }
}

/// The input as the chain check's fold sees it: no record can be looked up (a chain check
/// re-executes nothing, and a record line never reaches `step` there: [`link`] handles it).
struct NoLines;

impl Lines for NoLines {
    fn next_chunk(&mut self, _max: usize) -> Result<Vec<Vec<u8>>, LinesError> {
        Ok(Vec::new())
    }
    fn record(&self, _seq: u64) -> Result<Option<Vec<u8>>, LinesError> {
        Ok(None)
    }
}

enum Link {
    Record {
        seq: u64,
        prev_hash: Hash,
        hash: Hash,
        leaf: Digest,
    },
    /// A checkpoint or a bad line: rare, so boxed to keep the common link small.
    Other(Box<Parsed>),
}

/// A record line's place in the chain, from its bytes: `{"body":BODY,"hash":"HEX"}` with
/// HEX = SHA-256(BODY) in lower-case hex, and BODY's `seq` and `prev_hash`. Runs on every
/// core, so the record's Merkle leaf is hashed here too.
fn link(line: &[u8]) -> Link {
    /// `,"hash":"`, 64 hex digits and `"}`: the sealed layout after the body.
    const SUFFIX: usize = 9 + 64 + 2;
    if !line.starts_with(RECORD_PREFIX) {
        return match decode_line(line) {
            Decoded::Other(parsed) => Link::Other(Box::new(parsed)),
            Decoded::Record(_) => Link::Other(Box::new(Parsed::Bad(Problem::NotALine))),
        };
    }
    let bad = |p: Problem| Link::Other(Box::new(Parsed::Bad(p)));
    let Some((body, claimed)) = record::split_sealed(line) else {
        return bad(if line.len() < RECORD_PREFIX.len() + SUFFIX {
            Problem::Malformed("too short for a record".into())
        } else {
            Problem::HashMismatch
        });
    };
    let hash = canonical::sha256(body);
    if hash != claimed {
        return bad(Problem::HashMismatch);
    }
    let fields = record::canonical_tail(body).map(Ok).unwrap_or_else(|| {
        #[derive(serde::Deserialize)]
        struct ChainFields {
            seq: u64,
            #[serde(with = "crate::canonical::hex_hash")]
            prev_hash: Hash,
        }
        serde_json::from_slice::<ChainFields>(body).map(|f| (f.seq, f.prev_hash))
    });
    match fields {
        Ok((seq, prev_hash)) => Link::Record { seq, prev_hash, hash, leaf: leaf_hash(&hash) },
        Err(e) => bad(Problem::Malformed(e.to_string())),
    }
}

/// A line after the parallel stage.
enum Parsed {
    Record(Box<(Record, Result<Checked, Problem>)>),
    Checkpoint(Result<Checkpoint, CheckpointError>),
    Bad(Problem),
}

/// Verifies everything `lines` holds; `progress` gets the records verified so far.
pub fn verify(lines: &mut dyn Lines, options: &Options, progress: &mut dyn FnMut(u64)) -> Result<Summary, VerifyError> {
    verify_in_chunks(lines, options, progress, CHUNK_LINES)
}

/// [`verify`] reading at most `chunk_lines` lines at a time: the same checks and the same
/// first problem whatever the chunk size (tests cut chunks small so that damage falls on
/// their edges). Not for auditors: [`verify`] picks the size.
#[doc(hidden)]
pub fn verify_in_chunks(
    lines: &mut dyn Lines,
    options: &Options,
    progress: &mut dyn FnMut(u64),
    chunk_lines: usize,
) -> Result<Summary, VerifyError> {
    let chunk_lines = chunk_lines.max(1);
    let mut v = Verifier::new(options);
    // A two-stage pipeline: while this thread re-executes one chunk in order, the other
    // cores decode and verify the signatures of the next. The lines are read as a block
    // (`Lines::next_block`: one buffer, not a copy per line; read, never mapped, so a read
    // error is a problem named at its line), handed back once decoded: what the fold needs
    // is in the decoded records.
    lines.read_blocks_unmapped();
    let mut pending: Option<Vec<Parsed>> = None;
    loop {
        let next = lines.next_block(chunk_lines);
        let history: &dyn Lines = &*lines;
        let (parsed, done) = rayon::join(
            || next.as_ref().ok().map(|block| parse_chunk(&block.iter().collect::<Vec<_>>())),
            || match pending.take() {
                Some(items) => items.into_iter().try_for_each(|item| {
                    v.line += 1;
                    v.step(item, history)
                }),
                None => Ok(()),
            },
        );
        done?;
        progress(v.records);
        let block = next.map_err(|e| v.fail_at_end(Problem::Read(e)))?;
        if block.is_empty() {
            break;
        }
        lines.give_back(block);
        pending = parsed;
    }
    v.finish()
}

struct Verifier {
    state: State,
    frontier: Frontier,
    records: u64,
    checkpoints: u64,
    covered: u64,
    head: Hash,
    last_recorded: Option<DateTime<Utc>>,
    key: Option<String>,
    key_pinned: bool,
    uncovered_tail_allowed: bool,
    line: u64,
    last_note: Option<String>,
}

impl Verifier {
    fn new(options: &Options) -> Verifier {
        Verifier {
            state: State::default(),
            frontier: Frontier::new(),
            records: 0,
            checkpoints: 0,
            covered: 0,
            head: GENESIS_PREV_HASH,
            last_recorded: None,
            key: options.ledger_key.clone(),
            key_pinned: options.ledger_key.is_some(),
            uncovered_tail_allowed: options.uncovered_tail_allowed,
            line: 0,
            last_note: None,
        }
    }

    /// A problem with the line just read, which stands where record `records + 1` must be.
    fn fail_record(&self, problem: Problem) -> VerifyError {
        let at = Position::Record { seq: self.records + 1 };
        VerifyError { at, line: self.line, problem: Box::new(problem) }
    }

    /// A problem with the checkpoint line just read, after record `records`.
    fn fail_checkpoint(&self, problem: Problem) -> VerifyError {
        let at = Position::Checkpoint { after: self.records };
        VerifyError { at, line: self.line, problem: Box::new(problem) }
    }

    /// A problem found where the lines end (or can be read no further).
    fn fail_at_end(&self, problem: Problem) -> VerifyError {
        let at = Position::End { after: self.records };
        VerifyError { at, line: self.line + 1, problem: Box::new(problem) }
    }

    fn step(&mut self, item: Parsed, lines: &dyn Lines) -> Result<(), VerifyError> {
        match item {
            Parsed::Bad(problem) => Err(self.fail_record(problem)),
            Parsed::Checkpoint(c) => {
                let checked = c.map_err(Problem::Checkpoint).and_then(|c| self.checkpoint(c));
                checked.map_err(|p| self.fail_checkpoint(p))
            }
            Parsed::Record(parsed) => {
                let (record, verified) = *parsed;
                let verified = verified.map_err(|p| self.fail_record(p))?;
                self.record(record, verified, lines).map_err(|p| self.fail_record(p))
            }
        }
    }

    /// A checkpoint line after record `records`: it must cover exactly those records, be the
    /// only checkpoint there, and be signed over their root by the ledger key.
    fn checkpoint(&mut self, c: Checkpoint) -> Result<(), Problem> {
        if c.tree_size != self.records {
            return Err(Problem::CheckpointMisplaced { tree_size: c.tree_size, records: self.records });
        }
        if self.checkpoints > 0 && self.covered == self.records {
            return Err(Problem::CheckpointRepeated);
        }
        if c.root != self.frontier.root() {
            return Err(Problem::CheckpointRoot);
        }
        match &self.key {
            Some(k) if *k != c.key => return Err(Problem::CheckpointKey { expected: k.clone(), found: c.key.clone() }),
            Some(_) => {}
            None => self.key = Some(c.key.clone()),
        }
        c.verify_signature().map_err(Problem::Checkpoint)?;
        self.checkpoints += 1;
        self.covered = c.tree_size;
        self.last_note = c.note;
        Ok(())
    }

    fn record(&mut self, record: Record, verified: Checked, lines: &dyn Lines) -> Result<(), Problem> {
        let expected = self.records + 1;
        let body = &record.body;
        if body.seq != expected {
            return Err(Problem::SeqGap { expected, found: body.seq });
        }
        if body.prev_hash != self.head {
            return Err(Problem::PrevHash);
        }
        if let Some(previous) = self.last_recorded.filter(|p| *p > body.recorded_at) {
            return Err(Problem::ClockBackwards { previous, found: body.recorded_at });
        }
        let history = LinesHistory::new(lines);
        let event = reexecute(&self.state, &record, &verified, &history);
        if let Some(e) = history.error.into_inner() {
            return Err(e);
        }
        let event = event?;
        let applied = Applied {
            seq: expected,
            hash: record.hash,
            occurred_at: body.occurred_at,
            recorded_at: body.recorded_at,
            event_id: &body.event_id,
            digest: body.command_digest,
        };
        let history = LinesHistory::new(lines);
        let applied = self.state.apply(&applied, &event, &history);
        if let Some(e) = history.error.into_inner() {
            return Err(e);
        }
        applied.map_err(|v| Problem::DoesNotApply(v.to_string()))?;
        self.frontier.push(leaf_hash(&record.hash));
        self.head = record.hash;
        self.last_recorded = Some(body.recorded_at);
        self.records = expected;
        Ok(())
    }

    /// The input ended: it must hold records, and end with a checkpoint over all of them.
    fn check_end(&self) -> Result<(), VerifyError> {
        if self.records == 0 {
            return Err(self.fail_at_end(Problem::Empty));
        }
        if self.covered < self.records && !self.uncovered_tail_allowed {
            return Err(self.fail_at_end(Problem::UncoveredTail { first: self.covered + 1, last: self.records }));
        }
        Ok(())
    }

    fn finish_chain(self) -> Result<ChainSummary, VerifyError> {
        self.check_end()?;
        Ok(ChainSummary {
            records: self.records,
            checkpoints: self.checkpoints,
            head_hash: self.head,
            root: self.frontier.root(),
            ledger_key: self.key.unwrap_or_default(),
            last_note: self.last_note,
        })
    }

    fn finish(self) -> Result<Summary, VerifyError> {
        self.check_end()?;
        if let Err(what) = self.state.check_conservation() {
            return Err(self.fail_at_end(Problem::Conservation(what)));
        }
        Ok(Summary {
            records: self.records,
            checkpoints: self.checkpoints,
            covered: self.covered,
            signatures: self.records,
            head_hash: self.head,
            root: self.frontier.root(),
            ledger_key: self.key.unwrap_or_default(),
            key_pinned: self.key_pinned,
            last_note: self.last_note,
            state: self.state,
        })
    }
}

/// Earlier events for reversals, read back from the input.
struct LinesHistory<'a> {
    lines: &'a dyn Lines,
    error: RefCell<Option<Problem>>,
    last: LastRead<record::RecordBody>,
}

impl LinesHistory<'_> {
    fn new(lines: &dyn Lines) -> LinesHistory<'_> {
        LinesHistory { lines, error: RefCell::new(None), last: LastRead::new() }
    }

    /// The record at `seq`, decoded; the last one read is kept (deciding a reversal asks for
    /// its target's id and event more than once).
    fn body(&self, seq: u64) -> Option<record::RecordBody> {
        self.last.get_or_read(seq, || self.read(seq))
    }

    fn read(&self, seq: u64) -> Option<record::RecordBody> {
        let found = self.lines.record(seq).map_err(Problem::Read).and_then(|bytes| match bytes {
            Some(b) => record::decode(&b).map(|r| Some(r.body)).map_err(|e| Problem::Malformed(e.to_string())),
            None => Ok(None),
        });
        found.unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            None
        })
    }
}

impl History for LinesHistory<'_> {
    fn event_at(&self, seq: u64) -> Option<Event> {
        self.body(seq).map(|b| b.event)
    }

    fn recorded_id(&self, seq: u64) -> Option<(EventId, [u8; 32])> {
        self.body(seq).map(|b| (b.event_id, b.command_digest))
    }
}

/// Step 4 of the module's checks for one record whose bytes, hash and signature were checked
/// and which extends `state` (its seq, `prev_hash` and ledger time checked by the caller):
/// `decide` on `state` at the record's ledger time must accept the signed command and
/// decide exactly the recorded event, kind, key, digest, actor and scope. Returns the event
/// to fold. The same rule for an auditor's export and a standby following the stream
/// ([`crate::Ledger::follow`]).
pub fn reexecute(state: &State, record: &Record, verified: &Checked, history: &dyn History) -> Result<Event, Problem> {
    let body = &record.body;
    let decision =
        domain::decide(state, &body.command.command, &verified.signer, &verified.digest, body.recorded_at, history);
    let event = match decision {
        Ok(Decision::New(event)) => event,
        Ok(Decision::Duplicate { seq }) => return Err(Problem::Replayed(seq)),
        Err(rejection) => return Err(Problem::Rejected(rejection)),
    };
    if event != body.event {
        return Err(Problem::Mismatch("event"));
    }
    if body.kind != body.command.command.action.kind() {
        return Err(Problem::Mismatch("kind"));
    }
    if body.key != verified.signer.key {
        return Err(Problem::Mismatch("key"));
    }
    if body.command_digest != verified.digest {
        return Err(Problem::Mismatch("command_digest"));
    }
    if body.actor != state.keys.get(&verified.signer.key).and_then(|k| k.party.clone()) {
        return Err(Problem::Mismatch("actor"));
    }
    if body.scope != crate::ledger::scope(state, &event) {
        return Err(Problem::Mismatch("scope"));
    }
    Ok(event)
}

/// Steps 1 and 3 for record lines (no checkpoints), on every core: each line decoded, its
/// bytes the canonical sealed record, its command's signature verified.
pub fn check_records(lines: &[Vec<u8>]) -> Vec<Result<(Record, Checked), Problem>> {
    parse_chunk(&lines.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .into_iter()
        .map(|parsed| match parsed {
            Parsed::Record(parsed) => {
                let (record, checked) = *parsed;
                checked.map(|c| (record, c))
            }
            Parsed::Checkpoint(_) => Err(Problem::Malformed("a checkpoint where a record must be".into())),
            Parsed::Bad(problem) => Err(problem),
        })
        .collect()
}

/// The order-independent work, on every core: decode, canonical form, hash, signatures.
fn parse_chunk(chunk: &[&[u8]]) -> Vec<Parsed> {
    chunk.par_chunks(VERIFY_BATCH_COMMANDS_MAX).flat_map_iter(parse_batch).collect()
}

fn parse_batch(lines: &[&[u8]]) -> Vec<Parsed> {
    let decoded: Vec<Decoded> = lines.iter().map(|l| decode_line(l)).collect();
    let commands: Vec<_> = decoded
        .iter()
        .filter_map(|d| match d {
            Decoded::Record(r) => Some(&r.body.command),
            Decoded::Other(_) => None,
        })
        .collect();
    // The commands are checked where they are, in their decoded records (no copy).
    let mut verified = signing::check_chunk(&commands).into_iter();
    decoded
        .into_iter()
        .zip(lines)
        .map(|(d, line)| match d {
            Decoded::Other(parsed) => parsed,
            Decoded::Record(record) => {
                let v = verified.next().expect("one result per command");
                let checked = check_bytes(&record, v, line);
                Parsed::Record(Box::new((*record, checked)))
            }
        })
        .collect()
}

enum Decoded {
    Record(Box<Record>),
    Other(Parsed),
}

fn decode_line(line: &[u8]) -> Decoded {
    if line.starts_with(RECORD_PREFIX) {
        match record::decode(line) {
            Ok(r) => Decoded::Record(Box::new(r)),
            Err(e) => Decoded::Other(Parsed::Bad(Problem::Malformed(e.to_string()))),
        }
    } else if line.starts_with(b"{\"checkpoint\":") {
        Decoded::Other(Parsed::Checkpoint(Checkpoint::from_line(line)))
    } else {
        Decoded::Other(Parsed::Bad(Problem::NotALine))
    }
}

/// The line must be exactly the sealed record (canonical body, its hash, lower-case hex), and
/// its command's signature must verify.
fn check_bytes(record: &Record, verified: Result<Checked, Rejection>, line: &[u8]) -> Result<Checked, Problem> {
    let hash_ok = || {
        let raw: Option<RawRecord<'_>> = serde_json::from_slice(line).ok();
        raw.is_some_and(|r| canonical::parse_hex(r.hash) == Some(canonical::sha256(r.body.get().as_bytes())))
    };
    match verified {
        Ok(v) => {
            if record.body.seal_with_command(&v.canonical).bytes != line {
                return Err(if hash_ok() { Problem::NotCanonical } else { Problem::HashMismatch });
            }
            Ok(v)
        }
        Err(rejection) if hash_ok() => Err(Problem::Signature(rejection)),
        Err(_) => Err(Problem::HashMismatch),
    }
}

#[cfg(test)]
mod tests {
    use crate::record::canonical_tail;

    const PREV: &str = "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff";

    fn body(prev: &str, seq: &str) -> String {
        // A command string that spells the keys inside an (escaped) value, as a forger might.
        format!(
            r#"{{"command":{{"note":"\",\"prev_hash\":\"{PREV}\",\"seq\":7}}"}},"prev_hash":"{prev}","recorded_at":"2026-01-01T00:00:00Z","scope":{{"material":"cobalt","partners":["DE","NL"]}},"seq":{seq}}}"#
        )
    }

    #[test]
    fn the_tail_of_a_canonical_body_gives_seq_and_prev_hash() {
        let b = body(PREV, "42");
        let mut prev = [0u8; 32];
        hex::decode_to_slice(PREV, &mut prev).unwrap();
        assert_eq!(canonical_tail(b.as_bytes()), Some((42, prev)));
        assert_eq!(canonical_tail(body(PREV, "0").as_bytes()).map(|f| f.0), Some(0));
        assert_eq!(canonical_tail(body(PREV, "18446744073709551615").as_bytes()).map(|f| f.0), Some(u64::MAX));
        // A scope long enough that `prev_hash` sits beyond the forward-searched window (and
        // across its edge): the backward search finds it.
        for pad in (250..450).chain([600, 2_000]) {
            let long =
                b.replace(r#""partners":["DE","NL"]"#, &format!(r#""partners":["DE","NL"],"x":"{}""#, "y".repeat(pad)));
            assert_eq!(canonical_tail(long.as_bytes()), Some((42, prev)), "pad {pad}");
        }
    }

    #[test]
    fn anything_off_the_canonical_layout_falls_back_to_decoding() {
        for bad in [
            body(PREV, "042"),                  // leading zero
            body(PREV, "18446744073709551616"), // past u64
            body(PREV, "4.2"),
            body(PREV, "-1"),
            body(PREV, ""),
            body(&PREV.to_uppercase(), "42"),
            body(&PREV[..62], "42"),
        ] {
            assert_eq!(canonical_tail(bad.as_bytes()), None, "{bad}");
        }
        let reordered = format!(r#"{{"seq":42,"prev_hash":"{PREV}","recorded_at":"2026-01-01T00:00:00Z"}}"#);
        assert_eq!(canonical_tail(reordered.as_bytes()), None);
        assert_eq!(canonical_tail(b""), None);
        assert_eq!(canonical_tail(b"}"), None);
    }
}
