//! The state keeps a 64-bit hash of each event id, not the id: ids whose hashes collide must
//! be told apart by their records. Here the index keeps 2 bits, so every id collides with
//! dozens of others; duplicates, conflicts, new ids and reversals must answer exactly as
//! with distinct hashes, before and after a reopen (from a snapshot, and from the log alone).

use super::harness::{acquire_tonne, reverse_as_entered_twice, Harness};
use stockpile_ledger::domain::{EventId, Rejection};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::testkit::{at, deterministic_key};
use stockpile_ledger::{LedgerOptions, Outcome};

#[test]
fn colliding_event_ids_keep_their_answers_across_reopens() {
    // Without snapshots (reopen replays the log) and with one every 3 events.
    for snapshot_every_events in [1_000_000, 3] {
        let mut h = Harness::with_options(LedgerOptions { snapshot_every_events, event_hash_bits: 2 });
        h.clock.set(at("2026-02-02T00:00:00Z"));
        let covra = deterministic_key("nl-covra-ops");
        let commands: Vec<SignedCommand> =
            (0..24).map(|i| acquire_tonne(&covra, &format!("acq-{i}"), &format!("lot-{i}"))).collect();
        let seqs: Vec<u64> = commands.iter().map(|c| h.submit_one(c.clone()).seq().expect("appended")).collect();
        for round in 0..3 {
            for (c, seq) in commands.iter().zip(&seqs) {
                let id = c.command.id.clone();
                assert_eq!(h.submit_one(c.clone()), Outcome::Duplicate { seq: *seq, event_id: id.clone() }, "{id}");
                let mut changed = c.command.clone();
                changed.occurred_at = at("2026-02-01T11:00:00Z");
                assert_eq!(
                    h.submit_one(covra.sign(changed)),
                    Outcome::Rejected(Rejection::IdConflict { event_id: id.clone(), seq: Some(*seq) }),
                    "{id}"
                );
            }
            // A new id (colliding with many) is new.
            let fresh = acquire_tonne(&covra, &format!("acq-new-{round}"), &format!("lot-new-{round}"));
            let fresh_seq = h.submit_one(fresh.clone()).seq().expect("appended");
            assert_eq!(fresh_seq, h.state().head.seq);
            // A reversal finds its own target among the colliding ones, once.
            let (target, by) = (format!("acq-{round}"), format!("rev-{round}"));
            assert!(
                matches!(h.submit_one(reverse_as_entered_twice(&covra, &by, &target)), Outcome::Appended { .. }),
                "{by}"
            );
            assert_eq!(h.state().events.reversed_by(seqs[round]), Some(&EventId::new(by.as_str())));
            for (i, seq) in seqs.iter().enumerate().filter(|(i, _)| *i > round) {
                assert_eq!(h.state().events.reversed_by(*seq), None, "acq-{i} was not reversed");
            }
            for earlier in 0..=round {
                let again = h.submit_one(reverse_as_entered_twice(
                    &covra,
                    &format!("rev-again-{round}-{earlier}"),
                    &format!("acq-{earlier}"),
                ));
                assert_eq!(
                    again,
                    Outcome::Rejected(Rejection::AlreadyReversed {
                        target: EventId::new(format!("acq-{earlier}").as_str()),
                        by: Some(EventId::new(format!("rev-{earlier}").as_str())),
                    }),
                );
            }
            h.check_invariants();
            h.reopen();
        }
    }
}

/// The snapshot file is checked by its digest before it is trusted: one changed digit (still
/// valid JSON) in its event index, or a cut file, and opening replays the log instead.
#[test]
fn a_damaged_snapshot_file_is_replaced_by_a_replay() {
    let mut h = Harness::with_options(LedgerOptions { snapshot_every_events: 5, ..LedgerOptions::default() });
    h.clock.set(at("2026-02-02T00:00:00Z"));
    let covra = deterministic_key("nl-covra-ops");
    let commands: Vec<SignedCommand> =
        (0..12).map(|i| acquire_tonne(&covra, &format!("acq-{i}"), &format!("lot-{i}"))).collect();
    let seqs: Vec<u64> = commands.iter().map(|c| h.submit_one(c.clone()).seq().expect("appended")).collect();
    let path = h.dir.path().join("state.snapshot");
    let intact = std::fs::read(&path).expect("a snapshot was written");
    let at_events = intact.windows(11).position(|w| w == b"\"events\":[[").expect("the index in the snapshot") + 11;
    let mut changed = intact.clone();
    changed[at_events] = if changed[at_events] == b'1' { b'2' } else { b'1' };
    for damaged in [changed, intact[..intact.len() - 7].to_vec()] {
        drop(h.ledger.take());
        std::fs::write(&path, &damaged).expect("write");
        h.reopen();
        h.check_invariants();
        for (c, seq) in commands.iter().zip(&seqs) {
            let id = c.command.id.clone();
            assert_eq!(h.submit_one(c.clone()), Outcome::Duplicate { seq: *seq, event_id: id.clone() }, "{id}");
        }
        let setup = h.world.setup_under(at("2026-01-01T00:00:00Z"), Some(stockpile_ledger::domain::rules::LATEST));
        for (i, o) in h.submit(setup, false).into_iter().enumerate() {
            assert_eq!(o.seq(), Some(i as u64 + 1), "setup command {i} resent: {o:?}");
        }
    }
}
