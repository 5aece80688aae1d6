//! A live projector, one reopened half way, one rebuilt and one folded from an export all
//! hold equal views and give byte-identical answers; a damaged store is discarded and
//! re-folded.

use super::harness::{answers, fold_export, Harness};
use super::scenario;
use stockpile_projector::{Projector, Source};

#[test]
fn live_reopened_rebuilt_and_exported_folds_are_equal() {
    let mut h = Harness::new();
    let live_dir = tempfile::tempdir().unwrap();
    let half_dir = tempfile::tempdir().unwrap();
    let mut live = Projector::open(live_dir.path()).unwrap();
    let mut half: Option<Projector> = Some(Projector::open(half_dir.path()).unwrap());
    scenario::run(&mut h, |h, i| {
        // live: after every record
        live.catch_up(&mut h.source()).unwrap();
        assert_eq!(live.head().seq, h.head());
        // half: now and then, closed and reopened in between
        if i % 3 == 1 && i < 9 {
            let mut p = half.take().unwrap_or_else(|| Projector::open(half_dir.path()).unwrap());
            p.catch_up(&mut h.source()).unwrap();
            drop(p);
        }
    });
    let mut reopened = Projector::open(half_dir.path()).unwrap();
    assert!(reopened.head().seq < h.head(), "the reopened projector resumes behind the ledger");
    let resumed = reopened.catch_up(&mut h.source()).unwrap();
    assert_eq!(resumed.head.seq, h.head());
    assert!(resumed.applied > 0 && resumed.applied < h.head(), "resumed after its checkpoint");

    let (_fresh_dir, fresh) = h.fresh_projector();
    let export = h.dir.path().join("export.jsonl");
    h.export(&export);
    let (_export_dir, exported) = fold_export(&export);
    let live_views = live.snapshot();
    for (name, p) in [("reopened", &reopened), ("from zero", &fresh), ("from an export", &exported)] {
        assert!(p.snapshot() == live_views, "{name} views differ from the live views");
        assert_eq!(answers(p), answers(&live), "{name} answers differ");
    }

    // Rebuild in place: same views; and a reopen after the rebuild loads the same again.
    let before = answers(&reopened);
    reopened.rebuild(&mut h.source()).unwrap();
    assert!(reopened.snapshot() == live_views);
    drop(reopened);
    let again = Projector::open(half_dir.path()).unwrap();
    assert!(again.snapshot() == live_views);
    assert_eq!(answers(&again), before);
    assert_eq!(again.store().head(), &live_views.head().clone());
}

#[test]
fn a_damaged_store_is_discarded_and_refolded() {
    let mut h = Harness::new();
    scenario::run(&mut h, |_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let mut p = Projector::open(dir.path()).unwrap();
    p.catch_up(&mut h.source()).unwrap();
    let want = p.snapshot();
    drop(p);
    {
        // Damage a segment behind the projector's back.
        let config = sled::Config::new().path(dir.path()).segment_size(stockpile_projector::store::SEGMENT_BYTES);
        let db = stockpile_ledger::store::open_sled(&config).unwrap();
        let tree = db.open_tree("views").unwrap();
        let (key, _) = tree.scan_prefix(b"s").next().unwrap().unwrap();
        tree.insert(key, &b"\xff\xff\xff"[..]).unwrap();
        db.flush().unwrap();
    }
    let mut p = Projector::open(dir.path()).unwrap();
    assert_eq!(p.head().seq, 0, "the damaged store was discarded");
    p.catch_up(&mut h.source()).unwrap();
    assert!(p.snapshot() == want);
    drop(p);
    assert!(Projector::open(dir.path()).unwrap().snapshot() == want, "and persisted again");
}

#[test]
fn a_ledger_source_pages_in_order_and_stops_at_the_head() {
    let mut h = Harness::new();
    scenario::run(&mut h, |_, _| {});
    let mut source = h.source();
    let first = source.fetch(0, 5).unwrap();
    assert_eq!(first.len(), 5);
    let rest = source.fetch(5, 1_000).unwrap();
    assert_eq!(first.len() as u64 + rest.len() as u64, h.head());
    assert!(source.fetch(h.head(), 10).unwrap().is_empty());
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(all, h.records(), "exactly the stored bytes");
}
