//! A real ledger in a temporary directory, driven synchronously, and projectors over it.

use std::io::Write;
use std::path::Path;
use stockpile_ledger::domain::{Action, State};
use stockpile_ledger::signing::{verify_all, SignedCommand};
use stockpile_ledger::testkit::{at, command, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerOptions, Outcome, Submission};
use stockpile_projector::{
    AsOf, Dimension, ExportSource, Holdings, HoldingsQuery, KeyValue, LedgerSource, Projector, StoredRecord,
};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub ledger: Option<Ledger>,
    pub world: World,
    pub clock: ManualClock,
}

impl Harness {
    /// A fresh ledger with the test world registered on 2026-01-01.
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
        let ledger = Ledger::open(dir.path(), Box::new(clock.clone()), LedgerOptions::default()).expect("open ledger");
        let mut h = Harness { dir, ledger: Some(ledger), world: World::new(), clock };
        let setup = h.world.setup(at("2026-01-01T00:00:00Z"));
        for o in h.submit(setup) {
            assert!(matches!(o, Outcome::Appended { .. }), "setup failed: {o:?}");
        }
        h
    }

    pub fn ledger(&self) -> &Ledger {
        self.ledger.as_ref().expect("ledger open")
    }

    pub fn state(&self) -> &State {
        self.ledger().state()
    }

    pub fn submit(&mut self, commands: Vec<SignedCommand>) -> Vec<Outcome> {
        let verified = verify_all(commands);
        let ledger = self.ledger.as_mut().expect("ledger open");
        let mut out = ledger.commit_group(vec![Submission { commands: verified, atomic: true }]).expect("commit");
        out.pop().expect("one submission")
    }

    /// Signs `action` with `party`'s key, dated `occurred_at`, and asserts it was appended.
    pub fn ok(&mut self, party: &str, id: &str, occurred_at: &str, action: Action) -> u64 {
        let signed = self.world.key(party).sign(command(id, at(occurred_at), action));
        match self.submit(vec![signed]).pop() {
            Some(Outcome::Appended { seq, .. }) => seq,
            other => panic!("{id}: expected appended, got {other:?}"),
        }
    }

    pub fn source(&self) -> LedgerSource {
        LedgerSource::new(self.ledger().store().clone())
    }

    pub fn head(&self) -> u64 {
        self.state().head.seq
    }

    /// Every stored record, as the ledger wrote it.
    pub fn records(&self) -> Vec<StoredRecord> {
        self.ledger().store().records(1, self.head()).expect("records")
    }

    /// An export file of the whole log: one stored record per line.
    pub fn export(&self, path: &Path) {
        let mut file = std::fs::File::create(path).expect("create export");
        for r in self.records() {
            file.write_all(&r).and_then(|()| file.write_all(b"\n")).expect("write export");
        }
    }

    /// A projector in its own fresh directory, caught up from zero.
    pub fn fresh_projector(&self) -> (tempfile::TempDir, Projector) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Projector::open(dir.path()).expect("open projector");
        p.catch_up(&mut self.source()).expect("catch up");
        (dir, p)
    }
}

/// A projector folding `path`, an export file, into a fresh directory.
pub fn fold_export(path: &Path) -> (tempfile::TempDir, Projector) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Projector::open(dir.path()).expect("open projector");
    p.catch_up(&mut ExportSource::open(path).expect("open export")).expect("catch up");
    (dir, p)
}

/// Holdings as `(key values, gross_g, contained_g)`; a null key value reads `-`.
pub type Rows = Vec<(Vec<String>, i64, i64)>;

pub fn rows(h: &Holdings) -> Rows {
    h.rows
        .iter()
        .map(|r| {
            let key = r
                .key
                .0
                .iter()
                .map(|(_, v)| match v {
                    KeyValue::Null => "-".to_string(),
                    KeyValue::Ppm(p) => p.to_string(),
                    KeyValue::Text(t) => t.clone(),
                })
                .collect();
            (key, r.totals.gross_g, r.totals.contained_g)
        })
        .collect()
}

pub fn row(key: &[&str], gross_g: i64, contained_g: i64) -> (Vec<String>, i64, i64) {
    (key.iter().map(|k| k.to_string()).collect(), gross_g, contained_g)
}

/// A query as of `as_of` (a date or an instant; `None`: now), grouped by `group_by`.
pub fn query(as_of: Option<&str>, group_by: &[Dimension]) -> HoldingsQuery {
    HoldingsQuery {
        as_of: as_of.map(|t| t.parse::<AsOf>().expect("as_of literal")),
        group_by: group_by.to_vec(),
        ..HoldingsQuery::default()
    }
}

/// The JSON of the answers to a fixed set of queries: equal views must give equal bytes.
pub fn answers(p: &Projector) -> Vec<u8> {
    use Dimension::*;
    let queries = [
        query(None, &[Partner, Material, HolderType, FacilityCountry]),
        query(Some("2026-02-15"), &[Party, Lot, Facility, Programme]),
        query(Some("2026-03-12"), &[Material, Form, Purity, Origin]),
        query(None, &[Lot]),
    ];
    let answers: Vec<Holdings> = queries.iter().map(|q| p.holdings(q).expect("query")).collect();
    serde_json::to_vec(&answers).expect("encode")
}
