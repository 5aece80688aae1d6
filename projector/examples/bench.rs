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

use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stockpile_ledger::store::Store;
use stockpile_projector::bench;
use stockpile_projector::{ExportSource, LedgerSource, Projector, Views};

/// Queries timed in the first mix (fewer in the heavier ones).
const QUERIES: usize = 2000;

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

fn generate(dir: &Path, events: u64) {
    let far = Instant::now() + Duration::from_secs(24 * 3600);
    let done = std::cell::Cell::new(0u64);
    let progress = |n: u64| {
        done.set(done.get() + n);
        if done.get() % 100_000 < n {
            eprintln!("{} events", done.get());
        }
    };
    let history = bench::generate_history(&dir.join("ledger"), events, far, &progress).expect("generate");
    println!(
        "generated {} records ({} commands rejected) in {:.1}s = {:.0} commands/s",
        history.records, history.rejected, history.rate.seconds, history.rate.per_second
    );
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
    let far = Instant::now() + Duration::from_secs(24 * 3600);
    for (name, queries) in bench::query_mixes(QUERIES) {
        let l = bench::query_latency(name, views, &queries, far).expect("queries were timed");
        println!("{}: n={} p50 {:.2} ms p99 {:.2} ms max {:.2} ms", l.name, l.samples, l.p50_ms, l.p99_ms, l.max_ms);
    }
}
