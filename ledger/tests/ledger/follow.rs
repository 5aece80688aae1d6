//! A standby's [`Ledger::follow`]: another ledger's records, each verified as `audit verify`
//! verifies it, extend an empty ledger to the same state and the same bytes; a batch with one
//! bad record is refused whole and changes nothing, in memory or on disk.

use super::model::random_ledger;
use stockpile_ledger::audit::Problem;
use stockpile_ledger::{FollowError, Ledger, LedgerOptions, SystemClock};

/// Records per batch: not a divisor of the histories' lengths, so the last batch is short.
const BATCH: usize = 37;

fn open(dir: &std::path::Path) -> Ledger {
    Ledger::open(dir, Box::new(SystemClock), LedgerOptions::default()).expect("open")
}

/// The record with one hex digit of its command's signature changed (hash left as it was).
fn with_forged_signature(line: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).expect("UTF-8");
    let at = text.find("\"signature\":\"").expect("a signed command") + "\"signature\":\"".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    bytes
}

#[test]
fn a_follower_rebuilds_random_histories_and_refuses_a_bad_batch_whole() {
    for seed in 0..2 {
        let h = random_ledger(seed);
        let source = h.ledger.as_ref().expect("open");
        let head = source.state().head.seq;
        let records = source.store().records(1, head).expect("records");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut follower = open(dir.path());
        let mut followed = 0u64;
        for (i, batch) in records.chunks(BATCH).enumerate() {
            if i == 1 {
                let before = follower.state().clone();
                // The batch's last record forged: the records before it verified and were
                // applied, and are undone with it.
                let mut bad = batch.to_vec();
                let last = bad.len() - 1;
                bad[last] = with_forged_signature(&bad[last]);
                match follower.follow(&bad) {
                    Err(FollowError::Refused { seq, .. }) => assert_eq!(seq, followed + bad.len() as u64),
                    other => panic!("seed {seed}: a forged record was not refused: {other:?}"),
                }
                // A batch that skips a record.
                match follower.follow(&batch[1..]) {
                    Err(FollowError::Refused { seq, problem: Problem::SeqGap { .. } }) => assert_eq!(seq, followed + 1),
                    other => panic!("seed {seed}: a gap was not refused: {other:?}"),
                }
                assert_eq!(follower.state(), &before, "seed {seed}: a refused batch changed the state");
                assert_eq!(follower.store().head(), followed, "seed {seed}: a refused batch reached the disk");
            }
            followed = follower.follow(batch).unwrap_or_else(|e| panic!("seed {seed}: batch {i}: {e}"));
        }
        assert_eq!(followed, head);
        assert_eq!(follower.state(), source.state(), "seed {seed}: the followed state differs");
        // A record followed once is not a new one: replayed.
        match follower.follow(&records[..1]) {
            Err(FollowError::Refused { problem: Problem::SeqGap { .. }, .. }) => {}
            other => panic!("seed {seed}: record 1 followed twice: {other:?}"),
        }
        drop(follower);
        let reopened = open(dir.path());
        assert_eq!(reopened.state(), source.state(), "seed {seed}: the replayed state differs");
        assert_eq!(reopened.store().records(1, head).expect("records"), records, "byte for byte");
    }
}
