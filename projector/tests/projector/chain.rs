//! Records out of order, with a broken chain or an altered body: a typed error, and
//! nothing of the bad record applied — in the pure fold and through a projector.

use super::harness::Harness;
use super::scenario;
use std::io::Write;
use stockpile_ledger::record;
use stockpile_projector::{ExportSource, FoldError, Projector, ProjectorError, Views};

fn scenario_records() -> (Harness, Vec<Vec<u8>>) {
    let mut h = Harness::new();
    scenario::run(&mut h, |_, _| {});
    let records = h.records();
    (h, records)
}

/// Re-seals record bytes after `change` edits the body: a record whose own hash is valid.
fn resealed(bytes: &[u8], change: impl FnOnce(&mut record::RecordBody)) -> Vec<u8> {
    let mut rec = record::decode(bytes).unwrap();
    change(&mut rec.body);
    rec.body.seal().bytes
}

#[test]
fn the_pure_fold_refuses_gaps_broken_chains_and_altered_records() {
    let (_h, records) = scenario_records();
    let mut views = Views::new();
    for r in &records[..20] {
        views.apply_stored(r).unwrap();
    }
    let before = views.clone();
    assert_eq!(views.apply_stored(&records[21]), Err(FoldError::Gap { expected: 21, got: 22 }));
    assert_eq!(views.apply_stored(&records[19]), Err(FoldError::Gap { expected: 21, got: 20 }));
    let forked = resealed(&records[20], |b| b.prev_hash = [7; 32]);
    assert_eq!(views.apply_stored(&forked), Err(FoldError::ChainBreak { seq: 21 }));
    // Changing the body without re-sealing: the hash no longer matches.
    let text = String::from_utf8(records[20].clone()).unwrap();
    let altered = text.replacen("\"grams\":", "\"grams\":1", 1);
    assert_ne!(altered, text);
    assert_eq!(views.apply_stored(altered.as_bytes()), Err(FoldError::HashMismatch { seq: 21 }));
    assert!(matches!(views.apply_stored(b"{\"body\":"), Err(FoldError::Malformed { .. })));
    assert!(matches!(views.apply_stored(b"not json"), Err(FoldError::Malformed { .. })));
    assert_eq!(views, before, "nothing was applied");
    // The right record still applies.
    views.apply_stored(&records[20]).unwrap();
    // A layout other than the sealed one (whitespace) takes the general path, same result.
    let mut spaced = Views::new();
    for r in &records[..20] {
        let text = String::from_utf8(r.clone()).unwrap().replacen("{\"body\":", "{ \"body\" : ", 1);
        spaced.apply_stored(text.as_bytes()).unwrap();
    }
    assert!(spaced.head() == before.head());
}

/// The fold reads a sealed record off its canonical layout; the same body in another layout
/// (pretty-printed, sealed under its own hash) is decoded as JSON. Both give the same record,
/// for every record of the scenario (every kind of event).
#[test]
fn the_canonical_layout_is_read_as_json_reads_it() {
    let (_h, records) = scenario_records();
    for bytes in &records {
        let fast = stockpile_projector::decode(bytes).unwrap();
        let (body, hash) = record::split_sealed(bytes).expect("the sealed layout");
        assert_eq!(fast.hash, hash);
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let hex = stockpile_ledger::canonical::hex(&stockpile_ledger::canonical::sha256(pretty.as_bytes()));
        let other = format!("{{\"body\": {pretty}, \"hash\": \"{hex}\"}}");
        let general = stockpile_projector::decode(other.as_bytes()).unwrap();
        assert_eq!(fast.record, general.record, "seq {}", fast.record.seq);
        assert_eq!(fast.record, serde_json::from_slice::<stockpile_projector::FoldRecord>(body).unwrap());
    }
}

#[test]
fn a_projector_stops_at_the_bad_record_and_keeps_what_came_before() {
    let (h, records) = scenario_records();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.jsonl");
    let mut file = std::fs::File::create(&export).unwrap();
    for (i, r) in records.iter().enumerate() {
        if i != 24 {
            file.write_all(r).unwrap();
            file.write_all(b"\n").unwrap();
        }
    }
    drop(file);
    let mut p = Projector::open(&dir.path().join("projector")).unwrap();
    let err = p.catch_up(&mut ExportSource::open(&export).unwrap()).unwrap_err();
    assert!(matches!(err, ProjectorError::Fold(FoldError::Gap { expected: 25, got: 26 })), "{err}");
    assert_eq!(p.head().seq, 24, "records before the gap are folded");
    drop(p);
    let mut p = Projector::open(&dir.path().join("projector")).unwrap();
    assert_eq!(p.head().seq, 24, "and persisted");

    // Repairing the gap from the ledger continues exactly where it stopped.
    p.catch_up(&mut h.source()).unwrap();
    let (_d, fresh) = h.fresh_projector();
    assert!(p.snapshot() == fresh.snapshot());

    // Redelivery of folded records is skipped; another record at the head is a fork.
    let views = p.snapshot();
    assert_eq!(p.ingest(&records[20..]).unwrap(), 0);
    let head = records.len() - 1;
    let forked = resealed(&records[head], |b| b.kind = "forked".into());
    let err = p.ingest(&[forked]).unwrap_err();
    assert!(matches!(err, ProjectorError::Fold(FoldError::ChainBreak { .. })), "{err}");
    assert!(p.snapshot() == views);
}

#[test]
fn an_export_with_a_bad_line_says_which() {
    let (_h, records) = scenario_records();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.jsonl");
    let mut text = Vec::new();
    for r in &records[..3] {
        text.extend_from_slice(r);
        text.push(b'\n');
    }
    text.extend_from_slice(b"{\"body\": 42}\n");
    std::fs::write(&export, &text).unwrap();
    let mut p = Projector::open(&dir.path().join("projector")).unwrap();
    let err = p.catch_up(&mut ExportSource::open(&export).unwrap()).unwrap_err();
    assert!(
        matches!(&err, ProjectorError::Source(stockpile_projector::SourceError::Malformed { line: 4, .. })),
        "{err}"
    );
    // Lines too long for a record are refused before they are read whole.
    let long = dir.path().join("long.jsonl");
    std::fs::write(&long, vec![b'x'; stockpile_projector::source::EXPORT_LINE_BYTES_MAX + 10]).unwrap();
    let err = p.catch_up(&mut ExportSource::open(&long).unwrap()).unwrap_err();
    assert!(
        matches!(&err, ProjectorError::Source(stockpile_projector::SourceError::LineTooLong { line: 1, .. })),
        "{err}"
    );
}
