//! Projector benchmark at a million events: catch-up fold rate, reopen time, as-of query
//! latency and memory. Run each phase as its own process so memory figures are the
//! projector's alone:
//!
//! ```text
//! cargo run --release -p stockpile-projector --example bench -- generate /tmp/bench 1000000
//! cargo run --release -p stockpile-projector --example bench -- fold     /tmp/bench
//! cargo run --release -p stockpile-projector --example bench -- export   /tmp/bench
//! cargo run --release -p stockpile-projector --example bench -- fold     /tmp/bench export
//! cargo run --release -p stockpile-projector --example bench -- reopen   /tmp/bench
//! ```
//!
//! `fold` folds from the ledger's sled store, `fold … export` from an export file (so the
//! figures are the projector's alone: sled 0.34 keeps every page of the ledger it reads in
//! memory). `generate` builds a real ledger (signed commands, the real `decide`, sled, fsync) in
//! `<dir>/ledger`: five years of acquisitions, stores, transfers across partners, releases,
//! conversions, adjustments and reversals over the test world's parties, about one movement
//! in ten back-dated by up to 30 days. `fold` folds it from zero into `<dir>/projector`
//! (deleted first) and times a query mix; `reopen` loads the projector from its store, checks
//! it equals a fold from zero, and times the queries again.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stockpile_ledger::domain::{Command, Rejection};
use stockpile_ledger::signing::{verify_all, Verified};
use stockpile_ledger::store::Store;
use stockpile_ledger::testkit::{at, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerOptions, Outcome, Submission};
use stockpile_projector::{AsOf, Dimension, ExportSource, HoldingsQuery, LedgerSource, Projector, Views};

/// Commands per group commit: the ledger writer's own group bound.
const GROUP_COMMANDS: usize = 4096;
/// Queries timed per mix.
const QUERIES: usize = 2000;
const SEED: u64 = 20260101;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bench generate DIR EVENTS | fold DIR [export] | export DIR | reopen DIR | profile DIR";
    let (Some(phase), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    match phase.as_str() {
        "generate" => {
            let events: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
            generate(&dir, events);
        }
        "fold" => fold(&dir, args.get(3).map(String::as_str) == Some("export")),
        "export" => {
            // The whole log as an export file, one stored record per line.
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("export.jsonl")).expect("create"));
            let store = Store::open(&dir.join("ledger")).expect("open the ledger's store");
            let mut n = 0u64;
            store
                .scan(1, |_, bytes| {
                    n += 1;
                    out.write_all(bytes).and_then(|()| out.write_all(b"\n")).is_ok()
                })
                .expect("scan");
            out.flush().expect("flush");
            println!("exported {n} records");
        }
        "reopen" => reopen(&dir),
        "profile" => profile(&dir),
        "sledscan" => {
            // Memory of iterating the ledger's sled tree directly, cache set by argument (MiB).
            let cache: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(32);
            let db = sled::Config::new()
                .path(dir.join("ledger"))
                .segment_size(8 << 20)
                .cache_capacity(cache << 20)
                .open()
                .expect("open");
            println!("opened: {}", memory());
            let log = db.open_tree("log").expect("tree");
            let (mut n, mut bytes) = (0usize, 0usize);
            for item in log.iter() {
                let (_, v) = item.expect("item");
                n += 1;
                bytes += v.len();
                if n % 5000 == 0 {
                    println!("{n} frames {bytes} bytes: {}", memory());
                    if std::env::var_os("TRIM").is_some() {
                        unsafe { libc::malloc_trim(0) };
                        println!("  trimmed: {}", memory());
                    }
                }
            }
            println!("{n} frames {bytes} bytes: {}", memory());
            drop(log);
            drop(db);
            println!("dropped: {}", memory());
            std::thread::sleep(Duration::from_secs(2));
            println!("dropped, 2 s later: {}", memory());
            unsafe { libc::malloc_trim(0) };
            println!("malloc_trim: {}", memory());
        }
        "scan" => {
            // Memory of reading the ledger's store alone.
            let mut source = ledger_source(&dir);
            let began = Instant::now();
            let (mut after, mut bytes) = (0u64, 0usize);
            loop {
                use stockpile_projector::Source;
                let page = source.fetch(after, 1024).expect("fetch");
                if page.is_empty() {
                    break;
                }
                after += page.len() as u64;
                bytes += page.iter().map(Vec::len).sum::<usize>();
            }
            println!("scanned {after} records, {bytes} bytes in {:.2?}; {}", began.elapsed(), memory());
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_string()).unwrap_or_default()
    };
    format!("VmRSS {} (peak VmHWM {})", field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------------------------------
// generate

#[path = "../tests/projector/generator.rs"]
mod generator;

fn generate(dir: &Path, events: u64) {
    let ledger_dir = dir.join("ledger");
    let _ = std::fs::remove_dir_all(&ledger_dir);
    let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
    let mut ledger = Ledger::open(&ledger_dir, Box::new(clock.clone()), LedgerOptions::default()).expect("open ledger");
    let world = World::new();
    submit(&mut ledger, verify_all(world.setup(at("2021-01-01T00:00:00Z"))));
    let mut gen = generator::Generator::new(SEED);
    let start = at("2021-01-01T00:00:00Z").timestamp();
    let span = at("2025-12-31T00:00:00Z").timestamp() - start;
    let began = Instant::now();
    let mut rejected = 0;
    let mut i = 0u64;
    while i < events {
        let n = GROUP_COMMANDS.min((events - i) as usize);
        let unsigned: Vec<(usize, Command)> = (i..i + n as u64)
            .map(|k| gen.next(&world, &format!("e{k}"), start + span * k as i64 / events as i64))
            .collect();
        let signed: Vec<_> =
            unsigned.into_par_iter().map(|(party, c)| world.key(world.parties[party].0).sign(c)).collect();
        for o in submit(&mut ledger, verify_all(signed)) {
            if let Outcome::Rejected(r) = o {
                rejected += 1;
                if rejected < 5 {
                    eprintln!("rejected: {r}");
                }
            }
        }
        i += n as u64;
        if i % 100_000 < GROUP_COMMANDS as u64 {
            eprintln!("{i} events, {:.0}/s", i as f64 / began.elapsed().as_secs_f64());
        }
    }
    let head = ledger.state().head.seq;
    drop(ledger);
    println!(
        "generated {head} records ({rejected} commands rejected) in {:.1?}; lots {}, non-empty positions {}",
        began.elapsed(),
        gen.model.lots,
        gen.model.live_positions()
    );
}

fn submit(ledger: &mut Ledger, commands: Vec<Result<Verified, Rejection>>) -> Vec<Outcome> {
    let mut out = ledger.commit_group(vec![Submission { commands, atomic: false }]).expect("commit");
    out.pop().expect("one submission")
}

// ---------------------------------------------------------------------------------------
// fold, reopen, queries

fn ledger_source(dir: &Path) -> LedgerSource {
    LedgerSource::new(Store::open(&dir.join("ledger")).expect("open the ledger's store"))
}

/// CPU time of the whole process (every thread), user + system.
fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn fold(dir: &Path, from_export: bool) {
    let projector_dir = dir.join("projector");
    let _ = std::fs::remove_dir_all(&projector_dir);
    let mut projector = Projector::open(&projector_dir).expect("open projector");
    let (began, cpu) = (Instant::now(), cpu_time());
    let done = if from_export {
        let path = dir.join("export.jsonl");
        projector.catch_up(&mut ExportSource::open(&path).expect("open export (run `export` first)"))
    } else {
        projector.catch_up(&mut ledger_source(dir))
    }
    .expect("catch up");
    let (elapsed, cpu) = (began.elapsed(), cpu_time() - cpu);
    projector.flush().expect("flush");
    let views = projector.reader();
    let views = views.views();
    println!(
        "fold from {}: {} records in {:.2?} = {:.0} records/s (CPU {:.2?} = {:.1} µs/record); positions {}, classes {}, lots {}; {}",
        if from_export { "export file" } else { "ledger store" },
        done.applied,
        elapsed,
        done.applied as f64 / elapsed.as_secs_f64(),
        cpu,
        cpu.as_secs_f64() * 1e6 / done.applied as f64,
        views.position_count(),
        views.class_count(),
        views.registry().lot_count(),
        memory()
    );
    drop(views);
    queries(&projector.reader().views());
    println!("after queries: {}", memory());
    println!("store on disk: {} MiB", projector.store().size_on_disk().unwrap_or(0) >> 20);
    let blobs = projector_dir.join("blobs");
    let blob_files = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    println!("sled blob files in the projector's store: {blob_files}");
}

/// Where catch-up time goes: reading, decoding (one core), folding, persisting.
fn profile(dir: &Path) {
    use stockpile_projector::{decode, Source, ViewStore};
    let mut source = ledger_source(dir);
    let began = Instant::now();
    let mut records = Vec::new();
    loop {
        let page = source.fetch(records.len() as u64, 4096).expect("fetch");
        if page.is_empty() {
            break;
        }
        records.extend(page);
    }
    let bytes: usize = records.iter().map(Vec::len).sum();
    println!("read {} records ({} bytes avg) in {:.2?}", records.len(), bytes / records.len().max(1), began.elapsed());
    let began = Instant::now();
    let again = source.fetch(0, usize::MAX).expect("fetch").len();
    println!("read {again} again, warm, one fetch: {:.2?}", began.elapsed());
    let began = Instant::now();
    let decoded: Vec<_> = records.iter().map(|r| decode(r).expect("decode")).collect();
    println!("decode (one core): {:.2?}", began.elapsed());
    let began = Instant::now();
    let _: Vec<_> = records.par_iter().map(|r| decode(r).expect("decode")).collect();
    println!("decode (rayon): {:.2?}", began.elapsed());
    let began = Instant::now();
    let mut views = Views::new();
    let steps: Vec<_> = decoded.iter().map(|d| views.apply_step(&d.record, &d.hash).expect("fold")).collect();
    println!("fold: {:.2?}", began.elapsed());
    let store_dir = dir.join("profile-store");
    let _ = std::fs::remove_dir_all(&store_dir);
    let mut store = ViewStore::open(&store_dir).expect("store");
    let began = Instant::now();
    for chunk in steps.chunks(1024) {
        store.persist(views.registry(), chunk).expect("persist");
    }
    println!("persist: {:.2?}", began.elapsed());
    let began = Instant::now();
    let loaded = store.load().expect("load");
    println!("load: {:.2?} (equal: {})", began.elapsed(), loaded == views);
}

fn reopen(dir: &Path) {
    let began = Instant::now();
    let projector = Projector::open(&dir.join("projector")).expect("open projector");
    println!("reopen: loaded views at record {} in {:.2?}; {}", projector.head().seq, began.elapsed(), memory());
    queries(&projector.reader().views());
    let mut fresh = Views::new();
    let mut source = ledger_source(dir);
    let began = Instant::now();
    loop {
        use stockpile_projector::Source;
        let page = source.fetch(fresh.head().seq, 4096).expect("fetch");
        if page.is_empty() {
            break;
        }
        for bytes in &page {
            fresh.apply_stored(bytes).expect("fold");
        }
    }
    println!("pure fold from zero (one core, no store): {:.2?}", began.elapsed());
    assert!(fresh == *projector.reader().views(), "reopened views differ from a fold from zero");
    println!("reopened views == fold from zero");
}

fn queries(views: &Views) {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    let dims = [
        Dimension::Partner,
        Dimension::Material,
        Dimension::HolderType,
        Dimension::FacilityCountry,
        Dimension::Form,
        Dimension::Programme,
        Dimension::Party,
    ];
    let materials = ["cobalt", "gallium", "germanium", "tungsten", "copper"];
    let start = at("2021-01-01T00:00:00Z").date_naive();
    let random_date = |rng: &mut ChaCha8Rng| AsOf::Date(start + chrono::Days::new(rng.gen_range(0..5 * 365)));
    let mixed: Vec<HoldingsQuery> = (0..QUERIES)
        .map(|_| {
            let mut q = HoldingsQuery::default();
            if rng.gen_bool(0.9) {
                q.as_of = Some(random_date(&mut rng));
            }
            let n = rng.gen_range(1..=3);
            while q.group_by.len() < n {
                let d = dims[rng.gen_range(0..dims.len())];
                if !q.group_by.contains(&d) {
                    q.group_by.push(d);
                }
            }
            if rng.gen_bool(0.3) {
                q.material.push(materials[rng.gen_range(0..materials.len())].into());
            }
            if rng.gen_bool(0.2) {
                q.partner.push(["NL", "DE", "BE"][rng.gen_range(0..3)].into());
            }
            q
        })
        .collect();
    report("mixed as-of/current, 1-3 group_by, some filters", views, &mixed);
    let widest: Vec<HoldingsQuery> = (0..QUERIES / 4)
        .map(|_| HoldingsQuery {
            as_of: Some(random_date(&mut rng)),
            group_by: vec![Dimension::Partner, Dimension::Material, Dimension::HolderType, Dimension::FacilityCountry],
            ..HoldingsQuery::default()
        })
        .collect();
    report("unfiltered as-of, group_by partner/material/holder_type/facility_country", views, &widest);
    let by_lot: Vec<HoldingsQuery> = (0..QUERIES / 20)
        .map(|_| HoldingsQuery {
            as_of: Some(random_date(&mut rng)),
            group_by: vec![Dimension::Lot],
            ..HoldingsQuery::default()
        })
        .collect();
    report("unfiltered as-of, group_by lot (one row per lot)", views, &by_lot);
}

fn report(name: &str, views: &Views, queries: &[HoldingsQuery]) {
    let mut times: Vec<Duration> = Vec::with_capacity(queries.len());
    let mut rows = 0;
    for q in queries {
        let began = Instant::now();
        let h = views.holdings(q).expect("query");
        times.push(began.elapsed());
        rows += h.rows.len();
    }
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!(
        "queries [{name}]: n={} p50 {:.2?} p99 {:.2?} max {:.2?} (avg rows {})",
        times.len(),
        pct(50),
        pct(99),
        times[times.len() - 1],
        rows / queries.len().max(1)
    );
}
