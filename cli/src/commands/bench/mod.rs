//! `stockpile bench`: measured rates, latencies and peak memory of the ledger and projector,
//! beside raw sled, JetStream and PostgreSQL baselines measured in the same run.
//!
//! The parent process validates the arguments into a [`Plan`], then runs every scenario as a
//! child process (`stockpile bench --scenario-child NAME …`, same binary) so the peak RSS it
//! reports (`VmHWM`) is that scenario's own, and so a scenario that overruns its time can be
//! killed. Each child prints one JSON line, a [`report::ScenarioReport`]; the parent adds the
//! ratios to the baselines and the targets, and prints a table or JSON.
//!
//! - [`embedded`]: appends, the history, catch-up, replay, audit, as-of, raw sled;
//! - [`over_nats`]: appends over NATS (single-account, on `stockpile nats-config`'s
//!   accounts, with `--replicate`, and on a three-node cluster with and without it) and
//!   post-to-visible latency, services in-process;
//! - [`cosign`]: checkpoints cosigned by three spawned witnesses, over a generated history;
//! - [`flood`]: appends while another partner floods `ledger.proof`, over a generated history;
//! - [`nats_server`]: finds a nats-server binary (≥ 2.10 for `sync_interval: always`) and
//!   runs one on a free port with its own directory (or three as one JetStream cluster),
//!   killed on drop;
//! - [`baselines`]: JetStream publish-with-ack and PostgreSQL;
//! - [`report`]: figures, ratios, targets, output.
//!
//! Every scenario is bounded in events (`--events`, `--history`) and in time: each timed
//! run stops at `--seconds`, and the parent kills a child that outlives all its runs plus
//! [`CHILD_GRACE`].

mod baselines;
mod cosign;
mod embedded;
mod flood;
mod nats_server;
mod over_nats;
mod report;

use crate::args::{BenchArgs, Format, Scenario};
use crate::error::{operational, CliError, Result};
use indicatif::ProgressBar;
use report::{Figure, ScenarioReport};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Default events per append scenario and baseline: enough that a group-commit run lasts
/// seconds (so start-up is noise), few enough that all scenarios finish in minutes.
pub const EVENTS_DEFAULT: u64 = 20_000;

/// Most events per append scenario: the workload is signed up front and held in memory
/// (~1 KiB per signed command), so this bounds that to about 1 GiB.
pub const EVENTS_MAX: u64 = 1_000_000;

/// Default commands in the generated history.
pub const HISTORY_DEFAULT: u64 = 200_000;

/// Most commands in the generated history: the as-of target is stated over a million
/// events, and sled keeps every page it reads in memory (ARCHITECTURE, known limit), so much
/// beyond that measures swap.
pub const HISTORY_MAX: u64 = 2_000_000;

/// Default offered rate of the post-to-visible scenario, events/s (the target's rate).
pub const RATE_DEFAULT: u64 = 1_000;

/// Highest offered rate: above what one ledger takes over NATS, the queue, not the projector,
/// would be measured.
pub const RATE_MAX: u64 = 50_000;

/// Most concurrent submitters: each is a thread (embedded) or a connection (PostgreSQL).
pub const CLIENTS_MAX: usize = 256;

/// Default longest run of one scenario, seconds.
pub const SCENARIO_SECONDS_DEFAULT: u64 = 60;

/// Longest `--seconds`: an hour per scenario is already more than any figure here needs.
pub const SCENARIO_SECONDS_MAX: u64 = 3_600;

/// Time a child gets beyond its timed runs for what is not time-bounded inside a scenario
/// (preparing and signing the workload, starting servers, closing stores) before the parent
/// kills it.
pub const CHILD_GRACE: Duration = Duration::from_secs(300);

/// Pause between two looks at a running child.
const CHILD_POLL: Duration = Duration::from_millis(50);

/// A bad `bench` argument: exit code 2, nothing is run.
#[derive(Debug, thiserror::Error)]
pub enum BenchArgError {
    #[error("--events must be between 1 and {EVENTS_MAX}, not {0}")]
    Events(u64),
    #[error("--history must be between 1 and {HISTORY_MAX}, not {0}")]
    History(u64),
    #[error("--clients must list counts between 1 and {CLIENTS_MAX}, not {0:?}")]
    Clients(Vec<usize>),
    #[error("--events {events} is fewer than --clients {clients}: every submitter needs at least one event")]
    FewerEventsThanClients { events: u64, clients: usize },
    #[error("--rate must be between 1 and {RATE_MAX} events/s, not {0}")]
    Rate(u64),
    #[error("--seconds must be between 1 and {SCENARIO_SECONDS_MAX}, not {0}")]
    Seconds(u64),
    #[error("bench prints a table or json, not csv: use --format table or --format json")]
    Format,
}

impl From<BenchArgError> for CliError {
    fn from(e: BenchArgError) -> CliError {
        CliError::Usage(e.to_string())
    }
}

/// Validated arguments.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub events: u64,
    pub clients: Vec<usize>,
    pub history: u64,
    pub rate: u64,
    pub seconds: u64,
    pub json: bool,
}

impl Plan {
    pub fn from_args(args: &BenchArgs, format: Format) -> std::result::Result<Plan, BenchArgError> {
        let json = match format {
            Format::Json => true,
            Format::Table => false,
            Format::Csv => return Err(BenchArgError::Format),
        };
        if !(1..=EVENTS_MAX).contains(&args.events) {
            return Err(BenchArgError::Events(args.events));
        }
        if !(1..=HISTORY_MAX).contains(&args.history) {
            return Err(BenchArgError::History(args.history));
        }
        if args.clients.is_empty() || args.clients.iter().any(|c| !(1..=CLIENTS_MAX).contains(c)) {
            return Err(BenchArgError::Clients(args.clients.clone()));
        }
        let most = args.clients.iter().copied().max().unwrap_or(1);
        if args.events < most as u64 {
            return Err(BenchArgError::FewerEventsThanClients { events: args.events, clients: most });
        }
        if !(1..=RATE_MAX).contains(&args.rate) {
            return Err(BenchArgError::Rate(args.rate));
        }
        if !(1..=SCENARIO_SECONDS_MAX).contains(&args.seconds) {
            return Err(BenchArgError::Seconds(args.seconds));
        }
        let mut scenarios = if args.scenarios.is_empty() {
            <Scenario as clap::ValueEnum>::value_variants().to_vec()
        } else {
            args.scenarios.clone()
        };
        let mut seen = std::collections::HashSet::new();
        scenarios.retain(|s| seen.insert(*s));
        // catch-up, replay, audit, as-of and proof run over the generated history: make it first.
        let over_history = |s: &Scenario| {
            matches!(s, Scenario::CatchUp | Scenario::Replay | Scenario::Audit | Scenario::AsOf | Scenario::Proof)
        };
        let asked_at = scenarios.iter().position(|s| *s == Scenario::History);
        scenarios.retain(|s| *s != Scenario::History);
        match (scenarios.iter().position(over_history), asked_at) {
            (Some(i), _) => scenarios.insert(i, Scenario::History),
            (None, Some(i)) => scenarios.insert(i.min(scenarios.len()), Scenario::History),
            (None, None) => {}
        }
        Ok(Plan {
            scenarios,
            events: args.events,
            clients: args.clients.clone(),
            history: args.history,
            rate: args.rate,
            seconds: args.seconds,
            json,
        })
    }

    /// Most timed runs one scenario makes: two per client count (the JetStream baseline's
    /// two modes), or four (audit, raw sled), whichever is more.
    pub fn timed_runs_max(&self) -> u64 {
        (2 * self.clients.len() as u64).max(4)
    }

    /// When a timed run started now must stop.
    pub fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.seconds)
    }
}

/// Where each scenario keeps its files inside the work directory.
pub fn history_dir(work: &Path) -> PathBuf {
    work.join("history").join("ledger")
}

pub fn run(args: &BenchArgs, format: Format) -> Result<()> {
    let plan = Plan::from_args(args, format)?;
    let scratch;
    let work = match &args.work {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| operational(format!("cannot create {}: {e}", dir.display())))?;
            dir.clone()
        }
        None => {
            scratch = tempfile::Builder::new()
                .prefix("stockpile-bench-")
                .tempdir()
                .map_err(|e| operational(format!("cannot create a temporary directory: {e}")))?;
            scratch.path().to_path_buf()
        }
    };
    if let Some(scenario) = args.scenario_child {
        let report = embedded::run_child(scenario, &plan, &work)?;
        println!("{}", serde_json::to_string(&report).expect("report encodes"));
        return Ok(());
    }
    let mut reports = Vec::new();
    for &scenario in &plan.scenarios {
        if !plan.json {
            eprintln!("bench: {} …", report::scenario_name(scenario));
        }
        let r = run_in_child(scenario, &plan, &work)?;
        reports.push(r);
    }
    let summary = report::Summary::new(&plan, reports);
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&summary).expect("summary encodes"));
    } else {
        report::print_table(&summary);
    }
    match summary.failed() {
        0 => Ok(()),
        n => Err(operational(format!("{n} scenario(s) failed; see the rows marked failed"))),
    }
}

/// Runs one scenario as `stockpile bench --scenario-child`, killed past its time.
fn run_in_child(scenario: Scenario, plan: &Plan, work: &Path) -> Result<ScenarioReport> {
    let exe = std::env::current_exe().map_err(|e| operational(format!("cannot find this executable: {e}")))?;
    let clients: Vec<String> = plan.clients.iter().map(usize::to_string).collect();
    let mut child = Command::new(exe)
        .arg("bench")
        .arg("--scenario-child")
        .arg(clap::ValueEnum::to_possible_value(&scenario).expect("not skipped").get_name())
        .args(["--events", &plan.events.to_string()])
        .args(["--clients", &clients.join(",")])
        .args(["--history", &plan.history.to_string()])
        .args(["--rate", &plan.rate.to_string()])
        .args(["--seconds", &plan.seconds.to_string()])
        .arg("--work")
        .arg(work)
        .arg("--format")
        .arg(if plan.json { "json" } else { "table" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| operational(format!("cannot start a bench child: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        line
    });
    let limit = Instant::now() + Duration::from_secs(plan.seconds * plan.timed_runs_max()) + CHILD_GRACE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < limit => std::thread::sleep(CHILD_POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(operational(format!("waiting for a bench child: {e}"))),
        }
    };
    let line = reader.join().unwrap_or_default();
    let failed = |why: String| ScenarioReport::failed(scenario, why);
    Ok(match status {
        None => failed(format!(
            "killed after {} timed runs of --seconds {} plus {} s grace",
            plan.timed_runs_max(),
            plan.seconds,
            CHILD_GRACE.as_secs()
        )),
        Some(s) if !s.success() => failed(format!("the scenario's process failed ({s}); its error is above")),
        Some(_) => serde_json::from_str(&line)
            .unwrap_or_else(|e| failed(format!("the scenario's process printed no report ({e})"))),
    })
}

/// A progress bar for one timed run (on a terminal only).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    crate::output::progress(
        len,
        &format!("{{spinner}} {what:<28} {{bar:30}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"),
    )
}

/// Waits for every client task; the first failure is the run's.
pub async fn join_all(mut tasks: tokio::task::JoinSet<Result<()>>) -> Result<()> {
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(operational)??;
    }
    Ok(())
}

/// Collects figures into one scenario's report with this process's peak RSS.
pub fn finish(scenario: Scenario, figures: Vec<Figure>) -> ScenarioReport {
    ScenarioReport { scenario, figures, peak_rss_kib: stockpile_ledger::bench::peak_rss_kib(), error: None }
}
