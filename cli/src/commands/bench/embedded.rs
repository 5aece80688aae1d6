//! The scenarios that run in this process alone: embedded appends, the history and what runs
//! over it (catch-up, replay, audit, as-of), and the raw sled baseline. Also the dispatch of
//! a child process to its scenario.

use super::report::{Figure, ScenarioReport};
use super::{baselines, finish, history_dir, over_nats, progress, Plan};
use crate::args::Scenario;
use crate::error::{operational, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stockpile_ledger::bench;
use stockpile_projector::bench as projector_bench;
use stockpile_projector::Projector;

/// Queries in the first as-of mix (a quarter and a twentieth of it in the heavier two):
/// enough for a stable p99 (20 samples above it), few enough to take seconds.
pub const AS_OF_QUERIES: usize = 2_000;

/// Proofs of each kind in the proof scenario: enough for a stable p99, a second or two.
pub const PROOF_QUERIES: u64 = 5_000;

/// Distinct records the baselines write (cycled when `--events` is larger): the stored bytes
/// of our own append workload, so every baseline writes exactly what the ledger writes.
pub const BASELINE_RECORDS_MAX: u64 = 20_000;

/// Submitters that build the baseline records (only their bytes matter, not this rate).
const BASELINE_RECORDS_SUBMITTERS: usize = 16;

/// Records per sled batch in the batched raw sled baseline: about what one group commit of
/// the ledger holds at 64 submitters.
pub const SLED_BATCH_RECORDS: usize = 256;

/// Runs `scenario` in this process and reports its figures and peak RSS.
pub fn run_child(scenario: Scenario, plan: &Plan, work: &Path) -> Result<ScenarioReport> {
    if hosts_the_service(scenario) {
        // The service runs in this process: with the allocator policy `stockpile-ledger`
        // sets, so its memory and speed are the binary's.
        stockpile_ledger::malloc::return_large_frees_to_os();
    }
    let figures = match scenario {
        Scenario::Machine => machine(work)?,
        Scenario::Append => appends(plan, work)?,
        Scenario::AppendNats => over_nats::appends(plan, work, over_nats::Accounts::Single)?,
        Scenario::AppendNatsAccounts => over_nats::appends(plan, work, over_nats::Accounts::Partner)?,
        Scenario::AppendNatsReplicated => over_nats::appends(plan, work, over_nats::Accounts::Replicated)?,
        Scenario::AppendNatsCluster => over_nats::appends(plan, work, over_nats::Accounts::Cluster)?,
        Scenario::AppendNatsClusterReplicated => {
            over_nats::appends(plan, work, over_nats::Accounts::ClusterReplicated)?
        }
        Scenario::Visible => over_nats::visible(plan, work)?,
        Scenario::History => history(plan, work)?,
        Scenario::CatchUp => catch_up(work)?,
        Scenario::Replay => vec![Figure::rate("replay", None, bench::replay_rate(&existing_history(work)?))],
        Scenario::Audit => audit(work)?,
        Scenario::AsOf => as_of(plan, work)?,
        Scenario::Proof => proofs(plan, work)?,
        Scenario::Cosign => super::cosign::cosign(plan, work)?,
        Scenario::ProofFlood => super::flood::proof_flood(plan, work)?,
        Scenario::Sled => sled(plan, work)?,
        Scenario::Jetstream => baselines::jetstream(plan, work)?,
        Scenario::Postgres => baselines::postgres(plan, work)?,
    };
    Ok(finish(scenario, figures))
}

/// Whether a scenario runs the ledger service (`service::serve`) in the child's process.
fn hosts_the_service(scenario: Scenario) -> bool {
    matches!(
        scenario,
        Scenario::AppendNats
            | Scenario::AppendNatsAccounts
            | Scenario::AppendNatsReplicated
            | Scenario::AppendNatsCluster
            | Scenario::AppendNatsClusterReplicated
            | Scenario::Visible
            | Scenario::Cosign
            | Scenario::ProofFlood
    )
}

/// A fresh directory for one run under the work directory.
pub fn fresh_dir(work: &Path, name: &str) -> Result<PathBuf> {
    let dir = work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| operational(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// The primitives' rates, each with the figure issue #2 states for the machine it was
/// written on, so a reader sees how this machine compares before reading the rest.
fn machine(work: &Path) -> Result<Vec<Figure>> {
    let dir = fresh_dir(work, "machine")?;
    let rates = bench::machine_rates(&dir).map_err(|e| operational(format!("measuring {}: {e}", dir.display())))?;
    let references = [
        ("machine-ed25519", Some("issue #2's machine: 22,000–26,000/s")),
        ("machine-ed25519-batch", Some("issue #2's machine: 46,000–53,000/s")),
        ("machine-sha256-link", Some("issue #2's machine: about 4,000,000/s")),
        ("machine-sha256-record", None),
        ("machine-fdatasync", None),
    ];
    let figures = references
        .iter()
        .zip(rates)
        .map(|((kind, reference), rate)| {
            let figure = Figure::rate(kind, None, rate);
            match reference {
                Some(r) => figure.with_note(*r),
                None => figure,
            }
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(figures)
}

fn appends(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for &clients in &plan.clients {
        let dir = fresh_dir(work, &format!("append-{clients}"))?;
        let workload = bench::prepare_appends(&dir, clients, plan.events as usize);
        let bar = progress(plan.events, &format!("append, {clients} clients"));
        let rate = bench::appends(&dir, workload, plan.deadline(), &|n| bar.inc(n));
        bar.finish_and_clear();
        figures.push(Figure::rate("append", Some(clients), rate));
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(figures)
}

fn history(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    let bar = progress(plan.history, "history");
    let history = projector_bench::generate_history(&history_dir(work), plan.history, plan.deadline(), &|n| bar.inc(n))
        .map_err(operational)?;
    bar.finish_and_clear();
    let mut figure = Figure::rate("history", None, history.rate);
    figure =
        figure.with_note(format!("{} records in the log, {} commands rejected", history.records, history.rejected));
    Ok(vec![figure])
}

fn existing_history(work: &Path) -> Result<PathBuf> {
    let dir = history_dir(work);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(operational(format!("no history in {}: run the history scenario first", dir.display())))
    }
}

fn projector_dir(work: &Path) -> PathBuf {
    work.join("history").join("projector")
}

fn catch_up(work: &Path) -> Result<Vec<Figure>> {
    let (rate, projector) =
        projector_bench::catch_up_rate(&existing_history(work)?, &projector_dir(work)).map_err(operational)?;
    drop(projector);
    Ok(vec![Figure::rate("catch-up", None, rate)])
}

fn audit(work: &Path) -> Result<Vec<Figure>> {
    let scratch = fresh_dir(work, "audit")?;
    let rates = bench::audit_rates(&existing_history(work)?, &scratch);
    let kinds = ["audit-checkpoint", "audit-export", "audit-chain", "audit-full", "audit-signatures"];
    let figures = kinds.iter().zip(rates).map(|(kind, rate)| Figure::rate(kind, None, rate)).collect();
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(figures)
}

fn as_of(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    // The catch-up scenario leaves its projector behind; opening it loads the views from
    // their store without reading the ledger (whose pages sled would keep in memory).
    let projector = if projector_dir(work).is_dir() {
        Projector::open(&projector_dir(work)).map_err(operational)?
    } else {
        projector_bench::catch_up_rate(&existing_history(work)?, &projector_dir(work)).map_err(operational)?.1
    };
    let reader = projector.reader();
    let views = reader.views();
    let kinds = ["as-of-mixed", "as-of-widest", "as-of-by-lot"];
    let mut figures = Vec::new();
    for (kind, (name, queries)) in kinds.iter().zip(projector_bench::query_mixes(AS_OF_QUERIES)) {
        let began = Instant::now();
        let latency = projector_bench::query_latency(name, &views, &queries, plan.deadline());
        let seconds = began.elapsed().as_secs_f64();
        if let Some(latency) = latency {
            let note = format!("over {} records", views.head().seq);
            figures.push(Figure::latency(kind, latency, seconds).with_note(note));
        }
    }
    Ok(figures)
}

/// Inclusion and consistency proof latency over the history, from the store's Merkle nodes
/// (what `ledger.proof` computes, without NATS): proofs at the head, of seqs and old sizes
/// spread over the whole log by a fixed stride.
fn proofs(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    use stockpile_ledger::audit::proof;
    let began = Instant::now();
    let store = stockpile_ledger::store::Store::open(&existing_history(work)?).map_err(operational)?;
    let opened = began.elapsed();
    let head = store.head();
    let deadline = plan.deadline();
    let pick = |i: u64| 1 + (i.wrapping_mul(2_654_435_761)) % head;
    let mut figures = Vec::new();
    for kind in ["proof-inclusion", "proof-consistency"] {
        let began = Instant::now();
        let mut samples = Vec::new();
        for i in 0..PROOF_QUERIES {
            if Instant::now() >= deadline {
                break;
            }
            let one = Instant::now();
            let made = match kind {
                "proof-inclusion" => proof::prove_inclusion(&store, pick(i), head).map(|p| p.path.len()),
                _ => proof::prove_consistency(&store, pick(i), head).map(|p| p.path.len()),
            };
            made.map_err(|e| operational(e.to_string()))?;
            samples.push(one.elapsed());
        }
        let seconds = began.elapsed().as_secs_f64();
        if let Some(latency) = bench::Latency::of(kind, samples) {
            let note = format!("at tree size {head} (store opened in {:.0} ms)", opened.as_secs_f64() * 1e3);
            figures.push(Figure::latency(kind, latency, seconds).with_note(note));
        }
    }
    Ok(figures)
}

/// `n` stored records of our own append workload, cycled from at most
/// [`BASELINE_RECORDS_MAX`] distinct ones (built once per work directory).
pub fn baseline_records(work: &Path, n: u64) -> Result<Vec<Vec<u8>>> {
    let dir = work.join("baseline-records");
    let complete = dir.join("complete");
    let distinct = n.min(BASELINE_RECORDS_MAX);
    if !complete.exists() {
        let dir = fresh_dir(work, "baseline-records")?;
        let workload = bench::prepare_appends(&dir, BASELINE_RECORDS_SUBMITTERS, distinct as usize);
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        bench::appends(&dir, workload, far, &|_| {});
        std::fs::write(&complete, b"").map_err(|e| operational(format!("cannot write {}: {e}", complete.display())))?;
    }
    let sample = bench::sample_records(&dir, distinct);
    Ok(sample.iter().cycle().take(n as usize).cloned().collect())
}

fn sled(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    let records = baseline_records(work, plan.events)?;
    let mut figures = Vec::new();
    for (batch, fsync) in [(1, false), (1, true), (SLED_BATCH_RECORDS, false), (SLED_BATCH_RECORDS, true)] {
        let dir = fresh_dir(work, "raw-sled")?;
        let kind = format!("sled-{}-{batch}", if fsync { "fsync" } else { "flush" });
        let rate = bench::raw_sled(&dir, &records, batch, fsync, plan.deadline());
        figures.push(Figure::rate(&kind, None, rate));
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(figures)
}
