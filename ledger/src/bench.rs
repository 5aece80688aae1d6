//! Measurements of the write and replay paths, beside raw sled baselines of the same bytes,
//! measured in the same run. Used by `cargo bench -p stockpile-ledger` (and `stockpile bench`).
//!
//! What each figure is bound by:
//! - appends with one submitter: one fsync per command (nothing else to group with);
//! - appends with many submitters: Ed25519 verification (before the writer, on every core)
//!   and the writer's decide + seal + canonical JSON, with one fsync per group;
//! - replay: JSON decoding of the stored records and `apply`.

use crate::domain::{Action, Form, LotId, Programme, Unit};
use crate::ledger::{replay, Ledger, LedgerOptions, Outcome};
use crate::record::Sealed;
use crate::signing::SignedCommand;
use crate::store::Store;
use crate::testkit::{amount, at, command, holding, lot, ManualClock, World};
use crate::writer::LedgerHandle;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One measured figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rate {
    pub name: String,
    pub events: u64,
    pub seconds: f64,
    pub per_second: f64,
}

impl Rate {
    pub fn new(name: impl Into<String>, events: u64, started: Instant) -> Rate {
        let seconds = started.elapsed().as_secs_f64();
        Rate { name: name.into(), events, seconds, per_second: events as f64 / seconds }
    }
}

/// Latency percentiles of one measured operation, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub name: String,
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples` (sorted here); `None` when there are none.
    pub fn of(name: impl Into<String>, mut samples: Vec<Duration>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |p: usize| samples[(samples.len() * p).div_ceil(100).clamp(1, samples.len()) - 1];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Some(Latency {
            name: name.into(),
            samples: samples.len() as u64,
            p50_ms: ms(rank(50)),
            p99_ms: ms(rank(99)),
            max_ms: ms(samples[samples.len() - 1]),
        })
    }
}

/// The peak resident set of this process so far (`VmHWM` in `/proc/self/status`), in KiB;
/// `None` where there is no procfs.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// A ledger with the test world and one 1,000 t lot per submitter, ready for `events`
/// pre-signed store commands (1 kg each, nl-vlissingen → nl-rotterdam). All move the same
/// way, so they apply in any order (open-loop senders commit them out of order) and a
/// submitter's lot covers [`EVENTS_PER_SUBMITTER_MAX`] of them.
pub struct AppendWorkload {
    pub commands: Vec<Vec<SignedCommand>>,
}

/// Starts the group-commit writer on the benchmark's ledger in `dir` (its clock fixed after
/// the workload's business dates).
pub fn start(dir: &Path) -> LedgerHandle {
    LedgerHandle::start(open(dir))
}

/// Store commands one submitter's 1,000 t lot covers at 1 kg each.
pub const EVENTS_PER_SUBMITTER_MAX: usize = 1_000_000;

fn open(dir: &Path) -> Ledger {
    let clock = ManualClock::new(at("2026-06-01T00:00:00Z"));
    Ledger::open(dir, Box::new(clock), LedgerOptions::default()).expect("open ledger for benchmark")
}

/// Builds the ledger in `dir` and signs the workload (signing is the client's cost, not measured).
pub fn prepare_appends(dir: &Path, submitters: usize, events: usize) -> AppendWorkload {
    prepare(dir, submitters, events, true)
}

/// [`prepare_appends`] on a ledger in `dir` that already holds the test world's setup (a
/// generated history, `stockpile_projector::bench::generate_history`): only the submitters'
/// lots are acquired (dated after the history) before the workload is signed.
pub fn prepare_appends_after_history(dir: &Path, submitters: usize, events: usize) -> AppendWorkload {
    prepare(dir, submitters, events, false)
}

fn prepare(dir: &Path, submitters: usize, events: usize, world_setup: bool) -> AppendWorkload {
    assert!(events / submitters.max(1) <= EVENTS_PER_SUBMITTER_MAX, "a submitter's lot holds 1,000,000 kg");
    let world = World::new();
    let handle = LedgerHandle::start(open(dir));
    let t = at("2026-05-01T00:00:00Z");
    let mut setup = if world_setup { world.setup(t) } else { Vec::new() };
    let covra = world.key("nl-covra");
    for s in 0..submitters {
        setup.push(covra.sign(command(
            &format!("bench-acq-{s}"),
            t,
            Action::Acquire {
                lot: lot(&format!("bench-lot-{s}"), "cobalt", Form::Metal, 998_000, "CD"),
                to: holding("nl-covra", "nl-vlissingen", Programme::National),
                quantity: amount("1000", Unit::T),
                supplier: None,
                contract: None,
                price: None,
            },
        )));
    }
    let out = handle.append_blocking(setup, true).expect("setup");
    assert!(out.iter().all(|o| matches!(o, Outcome::Appended { .. })), "benchmark setup rejected: {out:?}");
    handle.shutdown().expect("shutdown after setup");
    let per = events / submitters.max(1);
    let commands = (0..submitters)
        .into_par_iter()
        .map(|s| {
            (0..per)
                .map(|i| {
                    let (from, to) = ("nl-vlissingen", "nl-rotterdam");
                    covra.sign(command(
                        &format!("bench-{s}-{i}"),
                        t,
                        Action::Store {
                            lot: LotId::new(format!("bench-lot-{s}")),
                            party: "nl-covra".into(),
                            programme: Programme::National,
                            from: holding("x", from, Programme::National).location,
                            to: to.into(),
                            quantity: amount("1", Unit::Kg),
                        },
                    ))
                })
                .collect()
        })
        .collect();
    AppendWorkload { commands }
}

/// Durable, signed appends/s: each submitter sends one command at a time and waits for its
/// acknowledgement (after fsync) before sending the next. Submitters stop at `deadline` even
/// when commands are left; `progress` is told of every acknowledged command.
pub fn appends(dir: &Path, workload: AppendWorkload, deadline: Instant, progress: &(dyn Fn(u64) + Sync)) -> Rate {
    let submitters = workload.commands.len();
    let handle = start(dir);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for commands in workload.commands {
            let (handle, done) = (handle.clone(), &done);
            scope.spawn(move || {
                for c in commands {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let out = handle.append_blocking(vec![c], false).expect("append");
                    assert!(matches!(out[0], Outcome::Appended { .. }), "benchmark command rejected: {out:?}");
                    done.fetch_add(1, Ordering::Relaxed);
                    progress(1);
                }
            });
        }
    });
    let rate = Rate::new(format!("signed durable appends, {submitters} submitters"), done.into_inner(), started);
    handle.shutdown().expect("shutdown");
    rate
}

/// Rebuilds state from the log of `dir`, from seq 1.
pub fn replay_rate(dir: &Path) -> Rate {
    let store = Store::open(dir).expect("open store");
    let started = Instant::now();
    let state = replay(&store).expect("replay");
    Rate::new("replay (rebuild state from the log)", state.head.seq, started)
}

/// The auditor's rates on the log of `dir`: export to a file (with a checkpoint over the
/// whole log), the chain check (hashes, links, Merkle root, checkpoint signature) and full
/// verification (every command signature and re-execution) of that file.
pub fn audit_rates(dir: &Path, scratch: &Path) -> Vec<Rate> {
    use crate::audit::{self, checkpoint, export};
    let store = Store::open(dir).expect("open store");
    let head = store.head();
    let key = audit::LedgerKey::from_secret([9; 32]);
    // The tree from its first leaf, whatever checkpoints a kept `--work` dir already holds
    // (`checkpoint::create` would extend the last one, from nothing if it covers the log).
    let started = Instant::now();
    let mut tree = crate::merkle::Frontier::new();
    checkpoint::for_each_leaf(&store, 1, head, |leaf| tree.push(leaf)).expect("leaves");
    assert_eq!(tree.len(), head, "a leaf for every record");
    std::hint::black_box(tree.root());
    let checkpoint = Rate::new("Merkle tree over every record, from the first", head, started);
    checkpoint::create(&store, &key, head, at("2026-06-01T00:00:00Z")).expect("checkpoint");
    let path = scratch.join("export.jsonl");
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create export"));
    let mut lines = export::StoreLines::new(store, head).expect("export lines");
    export::write_all(&mut lines, &mut out, &mut |_| {}).expect("export");
    // As `stockpile audit export` does: an export is done when it is on disk.
    out.into_inner().expect("flush the export").sync_all().expect("sync the export");
    let exported = Rate::new("audit export (store to JSON Lines file)", head, started);
    let options = audit::Options { ledger_key: Some(key.public_key_hex()), ..audit::Options::default() };
    let started = Instant::now();
    let mut lines = export::FileLines::open(&path).expect("open export");
    let chain = audit::verify_chain(&mut lines, &options, &mut |_| {}).expect("chain verifies");
    let chain = Rate::new("audit verify: chain + Merkle root + checkpoints", chain.records, started);
    let started = Instant::now();
    let mut lines = export::FileLines::open(&path).expect("open export");
    let full = audit::verify(&mut lines, &options, &mut |_| {}).expect("export verifies");
    let full = Rate::new("audit verify: full (signatures + re-execution)", full.records, started);
    vec![checkpoint, exported, chain, full, signatures_alone(&path)]
}

/// Commands whose signatures [`signatures_alone`] checks: enough for a steady rate.
pub const SIGNATURES_ALONE_MAX: usize = 100_000;

/// The ceiling of full verification on this machine: the signatures of the export's first
/// [`SIGNATURES_ALONE_MAX`] commands alone (canonical message, SHA-256 digest, Ed25519 in
/// batches on every core), decoded beforehand, a chunk at a time so memory stays small;
/// only the verification is timed. Full verification does this and more.
fn signatures_alone(export: &Path) -> Rate {
    use std::io::BufRead;
    const CHUNK: usize = 8_192;
    let mut lines = std::io::BufReader::new(std::fs::File::open(export).expect("open export")).lines();
    let (mut n, mut seconds) = (0u64, 0f64);
    while n < SIGNATURES_ALONE_MAX as u64 {
        let commands: Vec<SignedCommand> = lines
            .by_ref()
            .map(|l| l.expect("read export"))
            .filter_map(|l| crate::record::decode(l.as_bytes()).ok())
            .take(CHUNK.min(SIGNATURES_ALONE_MAX - n as usize))
            .map(|r| r.body.command)
            .collect();
        if commands.is_empty() {
            break;
        }
        n += commands.len() as u64;
        let started = Instant::now();
        let verified = crate::signing::verify_all(commands);
        seconds += started.elapsed().as_secs_f64();
        assert!(verified.iter().all(Result::is_ok), "every signature of a verified export verifies");
    }
    let name = "command signatures alone (full verification's ceiling)".to_string();
    Rate { name, events: n, seconds, per_second: n as f64 / seconds }
}

/// The stored bytes of `n` records of the log in `dir`, for the raw baselines.
pub fn sample_records(dir: &Path, n: u64) -> Vec<Vec<u8>> {
    let store = Store::open(dir).expect("open store");
    store.records(1, n).expect("read records")
}

/// Raw sled: one insert + `flush` per record (sled's flush, which is not a full fsync),
/// and the same followed by `fdatasync` (what durability actually costs). Stops at `deadline`.
pub fn raw_sled(dir: &Path, records: &[Vec<u8>], batch: usize, fsync: bool, deadline: Instant) -> Rate {
    let db = sled::Config::new().path(dir).flush_every_ms(None).open().expect("open raw sled");
    let file = std::fs::File::open(dir.join("db")).expect("open sled data file");
    let started = Instant::now();
    let mut done = 0;
    for (i, chunk) in records.chunks(batch.max(1)).enumerate() {
        if Instant::now() >= deadline {
            break;
        }
        let mut b = sled::Batch::default();
        for (j, r) in chunk.iter().enumerate() {
            b.insert(&((i * batch + j) as u64).to_be_bytes(), r.as_slice());
        }
        db.apply_batch(b).expect("insert");
        db.flush().expect("flush");
        if fsync {
            file.sync_data().expect("fdatasync");
        }
        done += chunk.len();
    }
    let what = if fsync { "insert + flush + fdatasync" } else { "insert + flush" };
    Rate::new(format!("raw sled {what}, batches of {batch}"), done as u64, started)
}

/// Sealing alone (canonical JSON + SHA-256) of already-decoded records, per second.
pub fn seal_rate(records: &[Vec<u8>]) -> Rate {
    let bodies: Vec<crate::record::RecordBody> =
        records.iter().map(|r| crate::record::decode(r).expect("decode").body).collect();
    let started = Instant::now();
    let mut total = 0usize;
    for b in &bodies {
        let s: Sealed = b.seal();
        total += s.bytes.len();
    }
    assert!(total > 0);
    Rate::new("seal (canonical JSON + SHA-256)", bodies.len() as u64, started)
}

/// Signatures in each Ed25519 measurement of [`machine_rates`] (16 times as many hashes, a
/// sixteenth as many syncs): a steady rate in about a second each on a slow core.
pub const MACHINE_SAMPLES: usize = 4_096;

/// Bytes of each record [`machine_rates`] hashes: the mean stored record of the bench's
/// history (an export of 1,000,017 records is 1,274 MB).
pub const MACHINE_RECORD_BYTES: usize = 1_274;

/// Bytes appended before each `fdatasync` in [`machine_rates`]: one page, about what a small
/// group commit writes.
pub const MACHINE_SYNC_BYTES: usize = 4_096;

/// This machine's speed at the primitives the targets were set against, on one core each
/// (issue #2 states them for the machine it was written on: Ed25519 22–26k/s one at a time
/// and 46–53k/s in batches of 64 per core, SHA-256 chaining about 4M/s). Every other figure
/// of a run is read against these: a machine half as quick at Ed25519 cannot reach the same
/// appends or verification.
///
/// - Ed25519 `verify_strict`, one signature at a time;
/// - Ed25519 `verify_batch` (ed25519-dalek's), batches of 64, each signature by its own key;
/// - SHA-256 of 64 bytes (a chain link: two hashes) and of a [`MACHINE_RECORD_BYTES`]-byte
///   record, each input holding the hash before it;
/// - `fdatasync` after appending [`MACHINE_SYNC_BYTES`] to a file in `dir`.
pub fn machine_rates(dir: &Path) -> std::io::Result<Vec<Rate>> {
    use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let keys: Vec<SigningKey> = (0..64).map(|_| SigningKey::generate(&mut rng)).collect();
    let messages: Vec<Vec<u8>> = (0..MACHINE_SAMPLES)
        .map(|_| {
            let mut m = vec![0u8; 400];
            rng.fill_bytes(&mut m);
            m
        })
        .collect();
    let signed: Vec<(VerifyingKey, ed25519_dalek::Signature)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (keys[i % keys.len()].verifying_key(), keys[i % keys.len()].sign(m)))
        .collect();
    let mut rates = Vec::new();

    let started = Instant::now();
    for ((key, sig), m) in signed.iter().zip(&messages) {
        assert!(key.verify_strict(m, sig).is_ok(), "an honest signature verifies");
    }
    rates.push(Rate::new("Ed25519 verify_strict, one at a time, one core", MACHINE_SAMPLES as u64, started));

    let started = Instant::now();
    for (chunk, ms) in signed.chunks(64).zip(messages.chunks(64)) {
        let ms: Vec<&[u8]> = ms.iter().map(Vec::as_slice).collect();
        let (ks, sigs): (Vec<VerifyingKey>, Vec<ed25519_dalek::Signature>) = chunk.iter().copied().unzip();
        assert!(ed25519_dalek::verify_batch(&ms, &sigs, &ks).is_ok(), "an honest batch verifies");
    }
    rates.push(Rate::new("Ed25519 verify_batch, batches of 64, one core", MACHINE_SAMPLES as u64, started));

    // A chain link (the previous hash and this record's, 64 bytes), then a whole record.
    for bytes in [64, MACHINE_RECORD_BYTES] {
        let mut input = vec![b'x'; bytes];
        // About the same bytes hashed for each size: a tenth of a second or more.
        let hashes = MACHINE_SAMPLES * 16 * MACHINE_RECORD_BYTES / bytes;
        let started = Instant::now();
        for _ in 0..hashes {
            let hash = crate::canonical::sha256(&input);
            input[..32].copy_from_slice(&hash);
        }
        std::hint::black_box(&input);
        let name = format!("SHA-256 of {bytes} bytes, chained, one core");
        rates.push(Rate::new(name, hashes as u64, started));
    }

    let path = dir.join("machine-fdatasync");
    let mut file = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    let page = vec![0u8; MACHINE_SYNC_BYTES];
    let syncs = MACHINE_SAMPLES / 16;
    let started = Instant::now();
    for _ in 0..syncs {
        std::io::Write::write_all(&mut file, &page)?;
        file.sync_data()?;
    }
    let name = format!("fdatasync after appending {MACHINE_SYNC_BYTES} bytes");
    rates.push(Rate::new(name, syncs as u64, started));
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rates)
}
