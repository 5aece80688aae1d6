//! Damage around checkpoint lines is named by position: the checkpoint after the records
//! before it (or the record expected there), and the line, whatever the damaged line claims.
//! Full verification and the chain check name the same position and problem.

use super::audit::{exported, join, split, verify_bytes, verify_chain_bytes, Line};
use stockpile_ledger::audit::checkpoint::CheckpointError;
use stockpile_ledger::audit::{Checkpoint, Options, Position, Problem};

/// A real export, split into lines, with two checkpoints to damage: one in the middle with a
/// record on each side, and the last.
struct Export {
    lines: Vec<Line>,
    /// Index of the middle checkpoint line (0-based; its line number is one more).
    middle: usize,
    /// Index of the last line, the checkpoint over all records.
    last: usize,
    records: u64,
    checkpoints: u64,
}

impl Export {
    fn new() -> Export {
        let lines = split(&exported(11).2);
        let checkpoints: Vec<usize> = (0..lines.len()).filter(|i| !lines[*i].record).collect();
        let last = lines.len() - 1;
        assert_eq!(checkpoints.last(), Some(&last), "an export ends with a checkpoint");
        let middle = *checkpoints
            .iter()
            .find(|i| **i >= 3 && lines[*i - 2].record && lines[*i - 1].record && lines[*i + 1].record)
            .expect("a checkpoint with records on both sides");
        Export { records: lines[last].seq, checkpoints: checkpoints.len() as u64, lines, middle, last }
    }

    fn bytes(&self) -> Vec<Vec<u8>> {
        self.lines.iter().map(|l| l.bytes.clone()).collect()
    }

    /// The checkpoint line at `i`, changed by `edit` and written back canonically (so only
    /// what `edit` changed is wrong).
    fn edited(&self, i: usize, edit: impl FnOnce(&mut Checkpoint)) -> Vec<Vec<u8>> {
        let mut c = Checkpoint::from_line(&self.lines[i].bytes).expect("a checkpoint line");
        edit(&mut c);
        let mut out = self.bytes();
        out[i] = c.to_line();
        out
    }

    /// The lines with line `from` moved to index `to` (counted after removing it).
    fn moved(&self, from: usize, to: usize) -> Vec<Vec<u8>> {
        let mut out = self.bytes();
        let line = out.remove(from);
        out.insert(to, line);
        out
    }

    fn removed(&self, i: usize) -> Vec<Vec<u8>> {
        let mut out = self.bytes();
        out.remove(i);
        out
    }

    /// The lines with a copy of line `from` inserted at index `to`.
    fn copied(&self, from: usize, to: usize) -> Vec<Vec<u8>> {
        let mut out = self.bytes();
        out.insert(to, out[from].clone());
        out
    }
}

/// Both checks fail on `lines` at `at`, on 1-based line `line`, with a problem `problem` accepts.
fn fails(damage: &str, lines: &[Vec<u8>], at: Position, line: u64, problem: impl Fn(&Problem) -> bool) {
    let bytes = join(lines);
    let full = verify_bytes(&bytes, &Options::default()).map(|s| s.records);
    let chain = verify_chain_bytes(&bytes).map(|s| s.records);
    for (check, result) in [("verify", full), ("verify_chain", chain)] {
        let err = result.expect_err(&format!("{damage}: {check} must fail, but verified (records)"));
        assert_eq!((err.at, err.line), (at, line), "{damage}: {check} names the wrong place: {err}");
        assert!(problem(&err.problem), "{damage}: {check} names the wrong problem: {err}");
    }
}

#[test]
fn damage_around_a_checkpoint_is_named_by_its_position_not_its_claims() {
    let e = Export::new();
    let (m, last, n) = (e.middle, e.last, e.records);
    // The middle checkpoint is line m + 1, after record t.
    let t = e.lines[m].seq;
    let checkpoint = |after| Position::Checkpoint { after };
    let misplaced = |size: u64, after: u64| move |p: &Problem| matches!(p, Problem::CheckpointMisplaced { tree_size, records } if (*tree_size, *records) == (size, after));
    let seq_gap = |want: u64, got: u64| move |p: &Problem| matches!(p, Problem::SeqGap { expected, found } if (*expected, *found) == (want, got));

    // Moved one record earlier or later: named where it now stands.
    fails("middle moved earlier", &e.moved(m, m - 1), checkpoint(t - 1), m as u64, misplaced(t, t - 1));
    fails("middle moved later", &e.moved(m, m + 1), checkpoint(t + 1), m as u64 + 2, misplaced(t, t + 1));
    fails("last moved earlier", &e.moved(last, last - 1), checkpoint(n - 1), last as u64, misplaced(n, n - 1));

    // Its tree size edited: named after the records before it, not by the size it claims.
    for (what, i, after) in [("middle", m, t), ("last", last, n)] {
        let line = i as u64 + 1;
        for size in [after + 1, after - 1, after + 1000, 0] {
            let damaged = e.edited(i, |c| c.tree_size = size);
            fails(&format!("{what} tree_size {size}"), &damaged, checkpoint(after), line, misplaced(size, after));
        }
        let root = e.edited(i, |c| c.root[7] ^= 0x10);
        fails(&format!("{what} root"), &root, checkpoint(after), line, |p| matches!(p, Problem::CheckpointRoot));
        let signature = e.edited(i, |c| {
            let flipped = if c.signature.starts_with('0') { "1" } else { "0" };
            c.signature.replace_range(0..1, flipped);
        });
        let bad_signature = |p: &Problem| matches!(p, Problem::Checkpoint(CheckpointError::BadSignature));
        fails(&format!("{what} signature"), &signature, checkpoint(after), line, bad_signature);
        // Repeated: the second copy, one line further, after the same record.
        let repeated = |p: &Problem| matches!(p, Problem::CheckpointRepeated);
        fails(&format!("{what} duplicated"), &e.copied(i, i + 1), checkpoint(after), line + 1, repeated);
    }

    // The last checkpoint dropped: the input ends after record n, where it should be.
    let previous = e.lines[..last].iter().rev().find(|l| !l.record).expect("an earlier checkpoint").seq;
    let uncovered =
        |p: &Problem| matches!(p, Problem::UncoveredTail { first, last } if (*first, *last) == (previous + 1, n));
    fails("last dropped", &e.removed(last), Position::End { after: n }, last as u64 + 1, uncovered);

    // Records next to the checkpoint: dropped or repeated, before or after it.
    fails("record before dropped", &e.removed(m - 1), checkpoint(t - 1), m as u64, misplaced(t, t - 1));
    fails(
        "record after dropped",
        &e.removed(m + 1),
        Position::Record { seq: t + 1 },
        m as u64 + 2,
        seq_gap(t + 1, t + 2),
    );
    fails(
        "record before repeated",
        &e.copied(m - 1, m),
        Position::Record { seq: t + 1 },
        m as u64 + 1,
        seq_gap(t + 1, t),
    );
    fails(
        "record before repeated after",
        &e.copied(m - 1, m + 1),
        Position::Record { seq: t + 1 },
        m as u64 + 2,
        seq_gap(t + 1, t),
    );
    fails(
        "record after repeated",
        &e.copied(m + 1, m + 2),
        Position::Record { seq: t + 2 },
        m as u64 + 3,
        seq_gap(t + 2, t + 1),
    );
}

/// A checkpoint before the last is optional: the last covers every record, and an export over
/// NATS carries only that one. Dropping one in the middle loses no proof of the export.
#[test]
fn a_middle_checkpoint_dropped_still_verifies_with_one_checkpoint_fewer() {
    let e = Export::new();
    let bytes = join(&e.removed(e.middle));
    let full = verify_bytes(&bytes, &Options::default()).expect("verifies without a middle checkpoint");
    let chain = verify_chain_bytes(&bytes).expect("the chain verifies without a middle checkpoint");
    assert_eq!((full.records, full.checkpoints), (e.records, e.checkpoints - 1));
    assert_eq!((chain.records, chain.checkpoints), (e.records, e.checkpoints - 1));
}
