//! The auditor's view: exports of random histories verify by re-execution, every tampering
//! is caught at the first bad seq, and proofs hold against old checkpoints.

use super::harness::Harness;
use super::model::{ledger_key, random_ledger};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stockpile_ledger::audit::export::{self, FileLines, StoreLines, RECORD_PREFIX};
use stockpile_ledger::audit::proof::{self, prove_consistency, prove_inclusion};
use stockpile_ledger::audit::{checkpoint, verify, verify_chain, Checkpoint, Options, Position, Problem};
use stockpile_ledger::canonical;
use stockpile_ledger::domain::Country;
use stockpile_ledger::record::{self, Record};
use stockpile_ledger::Clock as _;

/// A random history with a final checkpoint, exported to bytes.
pub(super) fn exported(seed: u64) -> (Harness, Checkpoint, Vec<u8>) {
    let mut h = random_ledger(seed);
    let head = h.state().head.seq;
    let last =
        checkpoint::create(h.ledger.as_ref().unwrap().store(), &ledger_key(), head, h.clock.now()).expect("checkpoint");
    let mut lines = StoreLines::new(h.ledger().store().clone(), head).expect("lines");
    let mut out = Vec::new();
    let done = export::write_all(&mut lines, &mut out, &mut |_| {}).expect("export");
    assert_eq!(done.records, head);
    assert!(done.checkpoints >= 4, "the model test checkpoints every few steps: {done:?}");
    (h, last, out)
}

pub(super) fn verify_bytes(bytes: &[u8], options: &Options) -> Result<verify::Summary, verify::VerifyError> {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), bytes).expect("write export");
    let mut lines = FileLines::open(file.path()).expect("open export");
    verify(&mut lines, options, &mut |_| {})
}

pub(super) fn verify_chain_bytes(bytes: &[u8]) -> Result<verify::ChainSummary, verify::VerifyError> {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), bytes).expect("write export");
    let mut lines = FileLines::open(file.path()).expect("open export");
    verify_chain(&mut lines, &Options::default(), &mut |_| {})
}

#[test]
fn exports_of_random_histories_verify_by_re_execution() {
    for seed in 0..3 {
        let (h, last, bytes) = exported(seed);
        let pinned = Options { ledger_key: Some(ledger_key().public_key_hex()), ..Options::default() };
        let summary = verify_bytes(&bytes, &pinned).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(summary.records, h.state().head.seq);
        assert_eq!(summary.head_hash, h.state().head.hash);
        assert_eq!(summary.root, last.root);
        assert_eq!(&summary.state, h.state(), "seed {seed}: the re-executed state differs from the ledger's");
        let chain = verify_chain_bytes(&bytes).expect("the chain verifies");
        assert_eq!((chain.records, chain.root, chain.head_hash), (summary.records, summary.root, summary.head_hash));
        // The same checks straight from the store.
        let mut lines = StoreLines::new(h.ledger.as_ref().unwrap().store().clone(), summary.records).unwrap();
        let from_store = verify(&mut lines, &pinned, &mut |_| {}).expect("store verifies");
        assert_eq!(from_store.root, summary.root);
        // Another ledger's key is refused.
        let other = Options { ledger_key: Some("ab".repeat(32)), ..Options::default() };
        let err = verify_bytes(&bytes, &other).expect_err("a foreign ledger key");
        assert!(matches!(*err.problem, Problem::CheckpointKey { .. }), "{err}");
    }
}

/// One line of an export, and where a problem in it must be reported.
pub(super) struct Line {
    pub bytes: Vec<u8>,
    /// A record's seq; for a checkpoint, the seq of the record before it.
    pub seq: u64,
    pub record: bool,
}

pub(super) fn split(bytes: &[u8]) -> Vec<Line> {
    let mut seq = 0;
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let record = l.starts_with(RECORD_PREFIX);
            seq += u64::from(record);
            Line { bytes: l.to_vec(), seq, record }
        })
        .collect()
}

pub(super) fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// Re-seals records `from..` so hashes and links are consistent again: the forger's best.
fn reseal(records: &mut [Record], from: usize) {
    for i in from..records.len() {
        if i > 0 {
            records[i].body.prev_hash = records[i - 1].hash;
        }
        let sealed = records[i].body.seal();
        records[i].hash = sealed.hash;
    }
}

#[test]
fn a_thousand_random_tamperings_are_all_caught_at_the_first_bad_position() {
    let (_h, _last, bytes) = exported(7);
    let lines = split(&bytes);
    let record_lines: Vec<usize> = (0..lines.len()).filter(|i| lines[*i].record).collect();
    let n = record_lines.len() as u64;
    let options = Options::default();
    verify_bytes(&bytes, &options).expect("the untouched export verifies");
    // Another ledger's records: its setup is the same as ours, so pick only ones that differ.
    let foreign: Vec<Line> = split(&exported(8).2).into_iter().filter(|l| l.record).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0x7a3f);
    let mut kinds = [0usize; 8];
    for round in 0..1000 {
        let kind = rng.gen_range(0..8);
        kinds[kind] += 1;
        let mut out: Vec<Vec<u8>> = lines.iter().map(|l| l.bytes.clone()).collect();
        // Where the verifier must stop: one position, or for a damaged checkpoint line one
        // of a few (see kind 0).
        let record = |seq: u64| Position::Record { seq };
        let (tampered, expected): (Vec<u8>, Vec<Position>) = match kind {
            0 => {
                // Flip one byte anywhere, newlines included.
                let mut b = bytes.clone();
                let at = rng.gen_range(0..b.len());
                b[at] ^= rng.gen_range(1..=255u8);
                let line = bytes[..at].iter().filter(|c| **c == b'\n').count();
                let l = &lines[line];
                // A checkpoint line is named as such, unless its prefix is hit (then it is
                // no line at all, where the next record should be) or it is the last line
                // and lost its newline (the input ends mid-line after the last record).
                let after = l.seq;
                let checkpoint = vec![Position::Checkpoint { after }, record(after + 1), Position::End { after }];
                (b, if l.record { vec![record(l.seq)] } else { checkpoint })
            }
            1 => {
                // Drop a record: the next record is out of sequence, or the checkpoint that
                // followed the dropped record now follows the one before it.
                let i = record_lines[rng.gen_range(0..record_lines.len())];
                let seq = lines[i].seq;
                out.remove(i);
                let at = if lines[i + 1].record { record(seq) } else { Position::Checkpoint { after: seq - 1 } };
                (join(&out), vec![at])
            }
            2 => {
                // Duplicate a record right after itself.
                let i = record_lines[rng.gen_range(0..record_lines.len())];
                out.insert(i + 1, out[i].clone());
                (join(&out), vec![record(lines[i].seq + 1)])
            }
            3 => {
                // Swap two records.
                let a = rng.gen_range(0..record_lines.len() - 1);
                let b = rng.gen_range(a + 1..record_lines.len());
                out.swap(record_lines[a], record_lines[b]);
                (join(&out), vec![record(a as u64 + 1)])
            }
            4 => {
                // Insert a record from another ledger where record s was expected.
                let i = record_lines[rng.gen_range(0..record_lines.len())];
                let f = loop {
                    let f = &foreign[rng.gen_range(0..foreign.len())];
                    if f.bytes != lines[i].bytes {
                        break f;
                    }
                };
                out.insert(i, f.bytes.clone());
                (join(&out), vec![record(lines[i].seq)])
            }
            5 | 6 => {
                // Swap two records' signatures; kind 6 also re-seals the chain after them.
                let mut records: Vec<Record> =
                    record_lines.iter().map(|i| record::decode(&lines[*i].bytes).unwrap()).collect();
                let (a, b) = loop {
                    let a = rng.gen_range(0..records.len() - 1);
                    let b = rng.gen_range(a + 1..records.len());
                    if records[a].body.command.signature != records[b].body.command.signature {
                        break (a, b);
                    }
                };
                let sa = records[a].body.command.signature.clone();
                records[a].body.command.signature = std::mem::replace(&mut records[b].body.command.signature, sa);
                if kind == 6 {
                    reseal(&mut records, a);
                }
                for (i, r) in record_lines.iter().zip(&records) {
                    out[*i] = canonical_record(r);
                }
                (join(&out), vec![record(a as u64 + 1)])
            }
            _ => {
                // Claim the event concerns another partner, and re-seal: only re-execution sees it.
                let mut records: Vec<Record> =
                    record_lines.iter().map(|i| record::decode(&lines[*i].bytes).unwrap()).collect();
                let a = rng.gen_range(1..records.len());
                records[a].body.scope.partners.push(Country::new("XX"));
                reseal(&mut records, a);
                for (i, r) in record_lines.iter().zip(&records) {
                    out[*i] = canonical_record(r);
                }
                (join(&out), vec![record(a as u64 + 1)])
            }
        };
        let err = match verify_bytes(&tampered, &options) {
            Ok(s) => panic!("round {round} (kind {kind}): tampering not detected ({} records)", s.records),
            Err(e) => e,
        };
        assert!(
            expected.contains(&err.at),
            "round {round} (kind {kind}): expected the first bad position in {expected:?} of {n} records, got {err}"
        );
        // The fast chain check catches it too: at the same position, or — for a forger who
        // re-sealed the chain — at the first checkpoint after it.
        let chain = verify_chain_bytes(&tampered).expect_err("the chain check catches it too");
        if kind >= 6 {
            let Position::Record { seq } = expected[0] else { unreachable!("re-sealing damages a record") };
            assert!(
                matches!(chain.at, Position::Checkpoint { after } if after >= seq),
                "round {round} (kind {kind}): chain check at {chain}"
            );
            assert!(matches!(*chain.problem, Problem::CheckpointRoot), "round {round}: {chain}");
        } else {
            assert!(expected.contains(&chain.at), "round {round} (kind {kind}): chain check at {chain}");
        }
    }
    assert!(kinds.iter().all(|k| *k > 50), "every kind of tampering is exercised: {kinds:?}");
}

/// A record in the ledger's stored layout (canonical JSON of `{body, hash}`), hash as given.
fn canonical_record(r: &Record) -> Vec<u8> {
    canonical::to_vec(r).unwrap()
}

#[test]
fn proofs_hold_against_old_checkpoints_after_the_log_grows_and_forgeries_fail() {
    let (mut h, last, _bytes) = exported(3);
    let store = h.ledger().store().clone();
    let old = checkpoint::stored(&store, u64::MAX).unwrap().into_iter().next().expect("an early checkpoint");
    assert!(old.tree_size < last.tree_size);
    // Inclusion of an early record in the old tree, proven from today's larger log.
    let seq = old.tree_size / 2;
    let proof = prove_inclusion(&store, seq, old.tree_size).unwrap();
    proof.verify(&old).expect("inclusion in the old checkpoint");
    assert!(proof.verify(&last).is_err(), "a proof names its tree size");
    let mut forged = proof.clone();
    forged.record_hash[0] ^= 1;
    assert!(forged.verify(&old).is_err(), "another record's hash");
    let mut forged = proof.clone();
    forged.seq += 1;
    assert!(forged.verify(&old).is_err(), "another position");
    let mut forged = proof.clone();
    if let Some(p) = forged.path.first_mut() {
        p[31] ^= 0x80;
    }
    assert!(forged.verify(&old).is_err(), "a changed path");
    // Consistency between the two checkpoints.
    let consistency = prove_consistency(&store, old.tree_size, last.tree_size).unwrap();
    consistency.verify(&old, &last).expect("the log only grew");
    let mut forged = consistency.clone();
    forged.path.pop();
    assert!(forged.verify(&old, &last).is_err(), "a shortened proof");
    let mut wrong_root = last.clone();
    wrong_root.root[0] ^= 1;
    assert!(consistency.verify(&old, &wrong_root).is_err(), "a checkpoint whose signature no longer holds");
}

/// Proofs from the store's Merkle node file equal those of the tree rebuilt in memory from
/// every record (the way proofs were made before the node file), for seeded random (seq,
/// size) and (old, new), before and after the node file is deleted and rebuilt at open.
#[test]
fn stored_node_proofs_equal_the_tree_rebuilt_from_every_record() {
    use rand::{Rng, SeedableRng};
    let (mut h, _last, _bytes) = exported(5);
    let dir = h.dir.path().to_path_buf();
    let head = h.ledger().store().head();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let picks: Vec<(u64, u64, u64)> = (0..200)
        .map(|_| {
            let size = rng.gen_range(1..=head);
            (rng.gen_range(1..=size), size, rng.gen_range(1..=size))
        })
        .collect();
    let check = |store: &stockpile_ledger::store::Store| {
        let memory = proof::tree(store, head).unwrap();
        for &(seq, size, old) in &picks {
            let inclusion = prove_inclusion(store, seq, size).unwrap();
            assert_eq!(inclusion.path, memory.inclusion_proof(seq - 1, size).unwrap(), "seq {seq} in {size}");
            let consistency = prove_consistency(store, old, size).unwrap();
            assert_eq!(consistency.path, memory.consistency_proof(old, size).unwrap(), "{old}..{size}");
            assert_eq!(store.merkle().root_at(size).unwrap().unwrap(), memory.root_at(size).unwrap());
        }
        assert!(prove_inclusion(store, 1, head + 1).is_err(), "beyond the head");
    };
    check(h.ledger().store());
    h.ledger = None;
    // A ledger written before the node file existed: it is built at open.
    std::fs::remove_file(dir.join(stockpile_ledger::store::tree::NODES_FILE)).unwrap();
    let store = stockpile_ledger::store::Store::open(&dir).unwrap();
    assert_eq!(store.merkle().leaves(), head);
    check(&store);
}

/// Signatures whose `R` carries a small-order point meet the ledger's cofactored rule. The
/// writer accepts them in groups of every size (each group its own batches), alone too, and an
/// auditor's verification of the export, which cuts its batches differently, accepts the
/// same records and re-executes to the same state. (With a cofactorless batch the writer's
/// answer for them depended on each batch's coefficients, and the auditor's could differ.)
#[test]
fn signatures_with_a_small_order_r_get_one_answer_from_the_writer_and_the_auditor() {
    use stockpile_ledger::domain::{Action, Form, Programme, Unit};
    use stockpile_ledger::signing::{verify as verify_one, SignedCommand};
    use stockpile_ledger::testkit::{amount, at, command, holding, lot, sign_with_small_order_r};
    use stockpile_ledger::Outcome;

    let mut h = Harness::new();
    let covra = h.world.key("nl-covra");
    let commands: Vec<SignedCommand> = (0..60)
        .map(|i| {
            let acquire = Action::Acquire {
                lot: lot(&format!("ga-{i:03}"), "gallium", Form::Metal, 999_990, "JP"),
                to: holding("nl-covra", "in_transit", Programme::National),
                quantity: amount("1", Unit::T),
                supplier: None,
                contract: None,
                price: None,
            };
            let c = command(&format!("acquire-{i}"), at("2026-01-01T00:00:00Z"), acquire);
            if i % 3 == 0 {
                sign_with_small_order_r(covra, c, [i as u8 + 1; 32], i)
            } else {
                covra.sign(c)
            }
        })
        .collect();
    for c in commands.iter().step_by(3) {
        assert!(verify_one(c.clone()).is_ok(), "{} alone", c.command.id.as_str());
    }
    let (mut rest, mut size) = (commands.as_slice(), 1);
    while !rest.is_empty() {
        let (group, tail) = rest.split_at(size.min(rest.len()));
        for o in h.submit(group.to_vec(), false) {
            assert!(matches!(o, Outcome::Appended { .. }), "a group of {size}: {o:?}");
        }
        (rest, size) = (tail, size + 1);
    }
    let head = h.state().head.seq;
    let now = h.clock.now();
    checkpoint::create(h.ledger().store(), &ledger_key(), head, now).expect("checkpoint");
    let mut bytes = Vec::new();
    {
        let mut lines = StoreLines::new(h.ledger().store().clone(), head).expect("lines");
        export::write_all(&mut lines, &mut bytes, &mut |_| {}).expect("export");
    }
    let summary = verify_bytes(&bytes, &Options::default()).expect("the auditor accepts what the writer accepted");
    assert_eq!(summary.records, head);
    assert_eq!(&summary.state, h.state());
    h.reopen();
    h.check_invariants();
}

/// Both verifiers cut the input into blocks (the chain check) or chunks (full verification)
/// and work on several at once: hashing or signatures ahead, the in-order fold behind. However
/// the input is cut, they must name the same first problem as when it is read in one piece —
/// the earliest of two far apart, and a break in the chain on a block's first or last line.
#[test]
fn the_first_problem_is_the_same_however_the_input_is_cut() {
    use stockpile_ledger::audit::verify::{verify_chain_in_blocks, verify_in_chunks};
    let (_h, _last, bytes) = exported(7);
    let lines = split(&bytes);
    let record_lines: Vec<usize> = (0..lines.len()).filter(|i| lines[*i].record).collect();
    let n = record_lines.len();
    assert!(n > 40, "enough records for many blocks: {n}");
    let original: Vec<Vec<u8>> = lines.iter().map(|l| l.bytes.clone()).collect();
    // A record re-sealed with a wrong `prev_hash`: its own hash holds, its link does not.
    let unlinked = |i: usize| {
        let mut r = record::decode(&lines[i].bytes).unwrap();
        r.body.prev_hash = [7; 32];
        r.hash = r.body.seal().hash;
        canonical_record(&r)
    };
    let flipped = |i: usize| {
        let mut b = lines[i].bytes.clone();
        let at = b.len() - 10; // inside the hash's hex: the hash no longer covers the body
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        b
    };
    let record = |seq: usize| Position::Record { seq: seq as u64 };
    // (damaged lines, where the first problem is)
    let mut cases: Vec<(Vec<Vec<u8>>, Position)> = Vec::new();
    // Two bad records far apart, the later one damaged the way the parallel stage sees
    // first (a hash that does not cover its body), the earlier one only the fold sees.
    let (early, late) = (n / 5, n - n / 5);
    let mut two = original.clone();
    two[record_lines[early]] = unlinked(record_lines[early]);
    two[record_lines[late]] = flipped(record_lines[late]);
    cases.push((two, record(early + 1)));
    // A break of the chain on every line of the first few blocks of each size below.
    for (k, &i) in record_lines.iter().enumerate().take(12).skip(1) {
        let mut broken = original.clone();
        broken[i] = unlinked(i);
        cases.push((broken, record(k + 1)));
        let mut dropped = original.clone();
        dropped.remove(i);
        let at = if lines[i + 1].record { record(k + 1) } else { Position::Checkpoint { after: k as u64 } };
        cases.push((dropped, at));
    }
    let options = Options::default();
    let file = tempfile::NamedTempFile::new().unwrap();
    let run = |bytes: &[u8], size: Option<usize>| {
        std::fs::write(file.path(), bytes).unwrap();
        let open = || FileLines::open(file.path()).unwrap();
        let said = |e: verify::VerifyError| (e.at, e.line, e.problem.code());
        let full = match size {
            None => verify(&mut open(), &options, &mut |_| {}),
            Some(s) => verify_in_chunks(&mut open(), &options, &mut |_| {}, s),
        };
        let chain = match size {
            None => verify_chain(&mut open(), &options, &mut |_| {}),
            Some(s) => verify_chain_in_blocks(&mut open(), &options, &mut |_| {}, s),
        };
        let chain = chain.map(|s| s.records).map_err(said);
        // The chain check maps a file; read instead, it must say the same.
        let unmapped = || FileLines::open_unmapped(file.path()).unwrap();
        let read = verify_chain_in_blocks(&mut unmapped(), &options, &mut |_| {}, size.unwrap_or(export::CHUNK_LINES));
        assert_eq!(read.map(|s| s.records).map_err(said), chain, "read or mapped, blocks of {size:?}");
        (full.map(|s| s.records).map_err(said), chain)
    };
    let (full, chain) = run(&bytes, None);
    assert_eq!((full.unwrap(), chain.unwrap()), (n as u64, n as u64));
    for size in [1, 2, 3, 5, 8] {
        let (full, chain) = run(&bytes, Some(size));
        assert_eq!((full.unwrap(), chain.unwrap()), (n as u64, n as u64), "blocks of {size}");
    }
    for (c, (damaged, at)) in cases.iter().enumerate() {
        let bytes = join(damaged);
        let (full, chain) = run(&bytes, None);
        let (full, chain) = (full.expect_err("full verification refuses it"), chain.expect_err("the chain check too"));
        assert_eq!((full.0, chain.0), (*at, *at), "case {c}: the first bad position, read whole");
        for size in [1, 2, 3, 5, 8] {
            let (f, ch) = run(&bytes, Some(size));
            assert_eq!(f.expect_err("refused in chunks"), full, "case {c}: full verification in chunks of {size}");
            assert_eq!(ch.expect_err("refused in blocks"), chain, "case {c}: the chain check in blocks of {size}");
        }
    }
}
