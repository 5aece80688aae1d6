//! The pipelined writer decides a group while the group before it is still being synced:
//! the second group must answer exactly as if the first were already in the log —
//! duplicates, conflicts and reversals of records only the live state knows — and nothing
//! may snapshot a state ahead of the log.

use super::harness::{acquire_tonne, reverse_as_entered_twice, Harness};
use stockpile_ledger::domain::{EventId, Rejection};
use stockpile_ledger::signing::{verify_all, SignedCommand};
use stockpile_ledger::testkit::{at, deterministic_key};
use stockpile_ledger::{LedgerError, LedgerOptions, Outcome, Submission};

fn alone(command: SignedCommand) -> Submission {
    Submission { commands: verify_all(vec![command]), atomic: false }
}

#[test]
fn a_group_decided_behind_an_uncommitted_one_answers_as_if_it_were_in_the_log() {
    // Two bits of id hash: every lookup of an id has to read the record it may be.
    let mut h = Harness::with_options(LedgerOptions { snapshot_every_events: 1_000_000, event_hash_bits: 2 });
    h.clock.set(at("2026-02-02T00:00:00Z"));
    let covra = deterministic_key("nl-covra-ops");
    let durable = h.state().head.seq;
    let (a, b) = (acquire_tonne(&covra, "acq-a", "lot-a"), acquire_tonne(&covra, "acq-b", "lot-b"));
    let first = h.ledger().decide_group(vec![alone(a.clone()), alone(b.clone())]).expect("decide the first group");
    let (sa, sb) = (durable + 1, durable + 2);
    assert_eq!(
        first.outcomes,
        vec![
            vec![Outcome::Appended { seq: sa, event_id: EventId::new("acq-a") }],
            vec![Outcome::Appended { seq: sb, event_id: EventId::new("acq-b") }]
        ]
    );
    assert_eq!(h.ledger().store().head(), durable, "deciding writes nothing");
    let refused = h.ledger().snapshot();
    assert!(
        matches!(refused, Err(LedgerError::SnapshotAhead { state, log }) if state == sb && log == durable),
        "{refused:?}"
    );

    let mut changed = a.command.clone();
    changed.occurred_at = at("2026-02-01T11:00:00Z");
    let reverse_b = reverse_as_entered_twice(&covra, "rev-b", "acq-b");
    let second = h
        .ledger()
        .decide_group(vec![
            alone(a.clone()),
            alone(covra.sign(changed)),
            alone(reverse_b),
            alone(acquire_tonne(&covra, "acq-c", "lot-c")),
        ])
        .expect("decide the second group");
    assert_eq!(
        second.outcomes,
        vec![
            vec![Outcome::Duplicate { seq: sa, event_id: EventId::new("acq-a") }],
            vec![Outcome::Rejected(Rejection::IdConflict { event_id: EventId::new("acq-a"), seq: Some(sa) })],
            vec![Outcome::Appended { seq: sb + 1, event_id: EventId::new("rev-b") }],
            vec![Outcome::Appended { seq: sb + 2, event_id: EventId::new("acq-c") }],
        ]
    );
    // Committed in order, as the committer does; then the state is the log's, live and reopened.
    let store = h.ledger().store().clone();
    store.commit(&first.records).expect("commit the first group");
    store.commit(&second.records).expect("commit the second group");
    drop(store);
    h.check_invariants();
    h.ledger().snapshot().expect("a snapshot at the durable head");
    h.reopen();
    h.check_invariants();
    assert_eq!(h.submit_one(a), Outcome::Duplicate { seq: sa, event_id: EventId::new("acq-a") });
    assert_eq!(h.submit_one(b), Outcome::Duplicate { seq: sb, event_id: EventId::new("acq-b") });
}
