//! `cargo bench -p stockpile-ledger`: durable signed appends with 1, 16 and 64 submitters,
//! replay, the auditor's export and verification, and raw sled baselines of the same record
//! bytes, all in one run.
//!
//! `BENCH_EVENTS` sets the events per append scenario (default 200,000).

use stockpile_ledger::bench::{self, Rate};

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let mut rates: Vec<Rate> = Vec::new();
    let mut replay_dir = None;
    // No time bound here: `cargo bench` runs every event it was given.
    let far = std::time::Instant::now() + std::time::Duration::from_secs(24 * 3600);
    for submitters in [1usize, 16, 64] {
        // One submitter waits for an fsync per event: measure fewer so the run stays short.
        let n = if submitters == 1 { events.min(5_000) } else { events };
        let dir = tempfile::tempdir().expect("tempdir");
        let workload = bench::prepare_appends(dir.path(), submitters, n);
        let rate = bench::appends(dir.path(), workload, far, &|_| {});
        eprintln!("{:<60} {:>10.0} events/s", rate.name, rate.per_second);
        rates.push(rate);
        replay_dir = Some(dir);
    }
    let dir = replay_dir.expect("a run");
    let replay = bench::replay_rate(dir.path());
    eprintln!("{:<60} {:>10.0} events/s", replay.name, replay.per_second);
    rates.push(replay);
    let scratch = tempfile::tempdir().expect("tempdir");
    for rate in bench::audit_rates(dir.path(), scratch.path()) {
        eprintln!("{:<60} {:>10.0} events/s", rate.name, rate.per_second);
        rates.push(rate);
    }
    let records = bench::sample_records(dir.path(), 20_000);
    let seal = bench::seal_rate(&records);
    eprintln!("{:<60} {:>10.0} events/s", seal.name, seal.per_second);
    rates.push(seal);
    for (batch, fsync, n) in [(1, false, 5_000), (1, true, 5_000), (256, false, 20_000), (256, true, 20_000)] {
        let raw_dir = tempfile::tempdir().expect("tempdir");
        let rate = bench::raw_sled(raw_dir.path(), &records[..n.min(records.len())], batch, fsync, far);
        eprintln!("{:<60} {:>10.0} events/s", rate.name, rate.per_second);
        rates.push(rate);
    }
    println!("{}", serde_json::to_string_pretty(&rates).expect("rates encode"));
}
