//! A ledger in a temporary directory, driven synchronously.

use stockpile_ledger::domain::{Action, EventId, Form, Programme, State, Unit};
use stockpile_ledger::ledger::replay_with;
use stockpile_ledger::signing::{verify_all, OperatorKey, SignedCommand};
use stockpile_ledger::testkit::{amount, at, command, holding, lot, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerOptions, Outcome, Submission};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub ledger: Option<Ledger>,
    pub world: World,
    pub clock: ManualClock,
    pub options: LedgerOptions,
}

impl Harness {
    /// A fresh ledger with the test world registered.
    pub fn new() -> Harness {
        Harness::with_options(LedgerOptions::default())
    }

    pub fn with_options(options: LedgerOptions) -> Harness {
        Harness::under(options, Some(stockpile_ledger::domain::rules::LATEST))
    }

    /// A fresh ledger whose genesis names `rules` (`None`: a genesis as written before rules
    /// were recorded, which runs under rules 1).
    pub fn under(options: LedgerOptions, rules: Option<u32>) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
        let ledger = Ledger::open(dir.path(), Box::new(clock.clone()), options.clone()).expect("open ledger");
        let mut h = Harness { dir, ledger: Some(ledger), world: World::new(), clock, options };
        let setup = h.world.setup_under(at("2026-01-01T00:00:00Z"), rules);
        for o in h.submit(setup, true) {
            assert!(matches!(o, Outcome::Appended { .. }), "setup failed: {o:?}");
        }
        h
    }

    pub fn ledger(&mut self) -> &mut Ledger {
        self.ledger.as_mut().expect("ledger open")
    }

    pub fn state(&self) -> &State {
        self.ledger.as_ref().expect("ledger open").state()
    }

    pub fn submit(&mut self, commands: Vec<SignedCommand>, atomic: bool) -> Vec<Outcome> {
        let verified = verify_all(commands);
        let mut out = self.ledger().commit_group(vec![Submission { commands: verified, atomic }]).expect("commit");
        out.pop().expect("one submission")
    }

    pub fn submit_one(&mut self, command: SignedCommand) -> Outcome {
        self.submit(vec![command], false).pop().expect("one outcome")
    }

    /// Closes and reopens the ledger on the same directory.
    pub fn reopen(&mut self) {
        drop(self.ledger.take());
        let ledger =
            Ledger::open(self.dir.path(), Box::new(self.clock.clone()), self.options.clone()).expect("reopen ledger");
        self.ledger = Some(ledger);
    }

    /// Live state equals a replay of the log from seq 1, and conservation holds.
    pub fn check_invariants(&self) {
        let live = self.state();
        live.check_conservation().expect("conservation");
        let replayed =
            replay_with(self.ledger.as_ref().unwrap().store(), self.options.event_hash_bits).expect("replay");
        assert_eq!(&replayed, live, "replay from the log differs from live state");
    }
}

/// A signed acquire of one tonne of gallium metal into NL COVRA's stock in transit, new lot `lot_id`.
pub fn acquire_tonne(key: &OperatorKey, id: &str, lot_id: &str) -> SignedCommand {
    key.sign(command(
        id,
        at("2026-02-01T10:00:00Z"),
        Action::Acquire {
            lot: lot(lot_id, "gallium", Form::Metal, 999_990, "JP"),
            to: holding("nl-covra", "in_transit", Programme::National),
            quantity: amount("1", Unit::T),
            supplier: None,
            contract: None,
            price: None,
        },
    ))
}

/// A signed reversal of event `target`, "entered twice".
pub fn reverse_as_entered_twice(key: &OperatorKey, id: &str, target: &str) -> SignedCommand {
    key.sign(command(
        id,
        at("2026-02-01T12:00:00Z"),
        Action::Reverse { target: EventId::new(target), reason: "entered twice".into() },
    ))
}
