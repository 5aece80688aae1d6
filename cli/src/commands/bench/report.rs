//! What `stockpile bench` reports: figures per scenario with their peak RSS, our figures as
//! ratios to the baselines measured in the same run, and the targets, each met or not.

use super::over_nats::NATS_BATCH_COMMANDS;
use super::Plan;
use crate::args::Scenario;
use crate::output;
use serde::{Deserialize, Serialize};
use stockpile_ledger::bench::{Latency, Rate};

/// The targets the figures are held to (issue #8, raised by issue #24's table), each with its
/// unit last. Embedded signed durable appends, events/s.
pub const TARGET_APPEND_EMBEDDED_PER_S: f64 = 50_000.0;
/// Signed durable appends over NATS, one command per request, events/s.
pub const TARGET_APPEND_NATS_PER_S: f64 = 20_000.0;
/// Signed durable appends over NATS, [`super::NATS_BATCH_COMMANDS`] commands per request,
/// events/s.
pub const TARGET_APPEND_NATS_BATCHED_PER_S: f64 = 50_000.0;
/// Our embedded appends over PostgreSQL's and over JetStream's with `sync_interval: always`,
/// at the same number of clients.
pub const TARGET_BASELINE_RATIO: f64 = 5.0;
/// Post-to-visible p99 at 1,000 events/s, milliseconds.
pub const TARGET_VISIBLE_P99_MS: f64 = 50.0;
/// Rate at which the post-to-visible target is stated, events/s.
pub const TARGET_VISIBLE_RATE_PER_S: u64 = 1_000;
/// Replay, events/s.
pub const TARGET_REPLAY_PER_S: f64 = 500_000.0;
/// Chain verification (hashes, links, Merkle root, checkpoint), events/s.
pub const TARGET_CHAIN_VERIFY_PER_S: f64 = 1_500_000.0;
/// Full verification (every signature, re-execution), events/s.
pub const TARGET_FULL_VERIFY_PER_S: f64 = 100_000.0;
/// As-of query p99, milliseconds…
pub const TARGET_AS_OF_P99_MS: f64 = 20.0;
/// …over a history of this many events.
pub const TARGET_AS_OF_HISTORY: u64 = 1_000_000;
/// Peak resident set of any scenario, MiB.
pub const TARGET_PEAK_RSS_MIB: f64 = 256.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Measured,
    /// The baseline cannot be measured here (e.g. no nats-server ≥ 2.10); `note` says why.
    Unavailable,
    /// Not run (e.g. no PostgreSQL server reachable); `note` says why.
    Skipped,
    Failed,
}

/// One measured figure: a rate (`per_second`) or a latency (`latency`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// Stable machine name: `append`, `append-nats`, `visible`, `postgres`, …
    pub kind: String,
    /// What was measured, for people.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
    pub events: u64,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Figure {
    pub fn rate(kind: &str, clients: Option<usize>, rate: Rate) -> Figure {
        Figure {
            kind: kind.into(),
            name: rate.name,
            clients,
            events: rate.events,
            seconds: rate.seconds,
            per_second: Some(rate.per_second),
            latency: None,
            status: Status::Measured,
            note: None,
        }
    }

    pub fn latency(kind: &str, latency: Latency, seconds: f64) -> Figure {
        Figure {
            kind: kind.into(),
            name: latency.name.clone(),
            clients: None,
            events: latency.samples,
            seconds,
            per_second: None,
            latency: Some(latency),
            status: Status::Measured,
            note: None,
        }
    }

    /// A figure that was not measured, and why.
    pub fn not_measured(kind: &str, name: &str, clients: Option<usize>, status: Status, why: String) -> Figure {
        Figure {
            kind: kind.into(),
            name: name.into(),
            clients,
            events: 0,
            seconds: 0.0,
            per_second: None,
            latency: None,
            status,
            note: Some(why),
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }

    fn measured_rate(&self) -> Option<f64> {
        self.per_second.filter(|_| self.status == Status::Measured)
    }
}

/// What one scenario's process measured, with its own peak RSS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub figures: Vec<Figure>,
    /// `VmHWM` of the scenario's process, KiB.
    pub peak_rss_kib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScenarioReport {
    pub fn failed(scenario: Scenario, why: String) -> ScenarioReport {
        ScenarioReport { scenario, figures: Vec::new(), peak_rss_kib: None, error: Some(why) }
    }
}

/// One of our rates over a baseline's, at the same number of clients where both have one.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub ours: String,
    pub baseline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
    pub ours_per_second: f64,
    pub baseline_per_second: f64,
    pub ratio: f64,
}

/// A target and whether this run met it (`None`: not measured in this run).
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: Option<String>,
    pub met: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_mib: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub events: u64,
    pub clients: Vec<usize>,
    pub history: u64,
    pub rate: u64,
    pub seconds: u64,
}

/// Everything a run prints.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub machine: Machine,
    pub settings: Settings,
    /// Peak RSS is measured per scenario: each runs in its own child process.
    pub scenarios: Vec<ScenarioReport>,
    pub ratios: Vec<Ratio>,
    pub targets: Vec<Target>,
}

impl Summary {
    pub fn new(plan: &Plan, scenarios: Vec<ScenarioReport>) -> Summary {
        let figures: Vec<&Figure> = scenarios.iter().flat_map(|s| &s.figures).collect();
        let ratios = ratios(&figures);
        let targets = targets(plan, &scenarios, &figures, &ratios);
        Summary {
            machine: machine(),
            settings: Settings {
                events: plan.events,
                clients: plan.clients.clone(),
                history: plan.history,
                rate: plan.rate,
                seconds: plan.seconds,
            },
            scenarios,
            ratios,
            targets,
        }
    }

    /// Scenarios that failed, and figures marked failed.
    pub fn failed(&self) -> usize {
        self.scenarios
            .iter()
            .map(|s| usize::from(s.error.is_some()) + s.figures.iter().filter(|f| f.status == Status::Failed).count())
            .sum()
    }
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib >> 10);
    Machine { cpus: std::thread::available_parallelism().map_or(1, |n| n.get()), cpu_model, memory_mib }
}

/// Kinds of our append figures and of the baselines they are compared with.
const OURS: [&str; 3] = ["append", "append-nats", "append-nats-batched"];
const BASELINES: [&str; 7] = [
    "postgres",
    "jetstream-sync-always",
    "jetstream-default",
    "sled-fsync-1",
    "sled-fsync-256",
    "sled-flush-1",
    "sled-flush-256",
];

/// Appends on the accounts configuration over the same on one account, same clients: what
/// the accounts (the partner's service import, the user's permissions) cost.
/// Likewise `--replicate` (the answer waits for the stream's ack) over without, on one
/// server and on the three-node cluster.
const ACCOUNTS_OVER_SINGLE: [(&str, &str); 6] = [
    ("append-nats-accounts", "append-nats"),
    ("append-nats-accounts-batched", "append-nats-batched"),
    ("append-nats-replicated", "append-nats"),
    ("append-nats-replicated-batched", "append-nats-batched"),
    ("append-nats-cluster-replicated", "append-nats-cluster"),
    ("append-nats-cluster-replicated-batched", "append-nats-cluster-batched"),
];

fn ratios(figures: &[&Figure]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for (ours_kind, base_kind) in ACCOUNTS_OVER_SINGLE {
        for ours in figures.iter().filter(|f| f.kind == ours_kind) {
            let Some(o) = ours.measured_rate() else { continue };
            let same = figures.iter().find(|f| f.kind == base_kind && f.clients == ours.clients);
            let Some(b) = same.and_then(|f| f.measured_rate()) else { continue };
            out.push(Ratio {
                ours: ours_kind.into(),
                baseline: base_kind.into(),
                clients: ours.clients,
                ours_per_second: o,
                baseline_per_second: b,
                ratio: o / b,
            });
        }
    }
    for ours in figures.iter().filter(|f| OURS.contains(&f.kind.as_str())) {
        let Some(o) = ours.measured_rate() else { continue };
        for base in figures.iter().filter(|f| BASELINES.contains(&f.kind.as_str())) {
            let Some(b) = base.measured_rate() else { continue };
            // Per-client baselines compare at the same count; the sled ones have one writer.
            if base.clients.is_some() && base.clients != ours.clients {
                continue;
            }
            out.push(Ratio {
                ours: ours.kind.clone(),
                baseline: base.kind.clone(),
                clients: ours.clients,
                ours_per_second: o,
                baseline_per_second: b,
                ratio: o / b,
            });
        }
    }
    out
}

fn best<'a>(figures: &[&'a Figure], kind: &str) -> Option<&'a Figure> {
    figures
        .iter()
        .copied()
        .filter(|f| f.kind == kind && f.measured_rate().is_some())
        .max_by(|a, b| a.measured_rate().partial_cmp(&b.measured_rate()).expect("rates are numbers"))
}

fn at_least(target: String, figure: Option<&Figure>, goal: f64) -> Target {
    let rate = figure.and_then(Figure::measured_rate);
    Target {
        target,
        measured: figure.zip(rate).map(|(f, r)| match f.clients {
            Some(c) => format!("{r:.0}/s ({c} clients)"),
            None => format!("{r:.0}/s"),
        }),
        met: rate.map(|r| r >= goal),
        note: None,
    }
}

fn ratio_target(ratios: &[Ratio], baseline: &str, figures: &[&Figure]) -> Target {
    let target = format!("embedded appends ≥ {TARGET_BASELINE_RATIO}× {baseline}, same clients");
    // At the most clients both ran with: the baseline's best case is many clients too.
    let r = ratios.iter().filter(|r| r.ours == "append" && r.baseline == baseline).max_by_key(|r| r.clients);
    let why_not =
        figures.iter().find(|f| f.kind == baseline && f.status != Status::Measured).and_then(|f| f.note.clone());
    Target {
        target,
        measured: r.map(|r| format!("{:.2}× ({} clients)", r.ratio, r.clients.unwrap_or(0))),
        met: r.map(|r| r.ratio >= TARGET_BASELINE_RATIO),
        note: if r.is_none() { why_not } else { None },
    }
}

fn targets(plan: &Plan, scenarios: &[ScenarioReport], figures: &[&Figure], ratios: &[Ratio]) -> Vec<Target> {
    let mut out = vec![
        at_least(
            format!("embedded signed durable appends ≥ {TARGET_APPEND_EMBEDDED_PER_S:.0}/s"),
            best(figures, "append"),
            TARGET_APPEND_EMBEDDED_PER_S,
        ),
        at_least(
            format!("appends over NATS ≥ {TARGET_APPEND_NATS_PER_S:.0}/s, one command per request"),
            best(figures, "append-nats"),
            TARGET_APPEND_NATS_PER_S,
        ),
        at_least(
            format!(
                "appends over NATS ≥ {TARGET_APPEND_NATS_BATCHED_PER_S:.0}/s, {NATS_BATCH_COMMANDS} commands per request"
            ),
            best(figures, "append-nats-batched"),
            TARGET_APPEND_NATS_BATCHED_PER_S,
        ),
        ratio_target(ratios, "postgres", figures),
        ratio_target(ratios, "jetstream-sync-always", figures),
    ];
    let visible = figures.iter().find(|f| f.kind == "visible" && f.status == Status::Measured);
    out.push(Target {
        target: format!("post-to-visible p99 ≤ {TARGET_VISIBLE_P99_MS} ms at {TARGET_VISIBLE_RATE_PER_S} ev/s"),
        measured: visible.and_then(|f| f.latency.as_ref()).map(|l| format!("p99 {:.1} ms", l.p99_ms)),
        met: visible
            .and_then(|f| f.latency.as_ref())
            .filter(|_| plan.rate == TARGET_VISIBLE_RATE_PER_S)
            .map(|l| l.p99_ms <= TARGET_VISIBLE_P99_MS),
        note: (plan.rate != TARGET_VISIBLE_RATE_PER_S)
            .then(|| format!("offered {} ev/s, not the target's rate: not judged", plan.rate)),
    });
    out.push(at_least(format!("replay ≥ {TARGET_REPLAY_PER_S:.0}/s"), best(figures, "replay"), TARGET_REPLAY_PER_S));
    out.push(at_least(
        format!("chain verification ≥ {TARGET_CHAIN_VERIFY_PER_S:.0}/s"),
        best(figures, "audit-chain"),
        TARGET_CHAIN_VERIFY_PER_S,
    ));
    let mut full = at_least(
        format!("full verification ≥ {TARGET_FULL_VERIFY_PER_S:.0}/s"),
        best(figures, "audit-full"),
        TARGET_FULL_VERIFY_PER_S,
    );
    // What the signatures alone allow on this machine: the ceiling the figure is bound by.
    full.note = best(figures, "audit-signatures")
        .and_then(Figure::measured_rate)
        .map(|r| format!("signatures alone: {r:.0}/s on this machine"));
    out.push(full);
    let as_of = figures.iter().find(|f| f.kind == "as-of-mixed" && f.status == Status::Measured);
    let history = figures.iter().find(|f| f.kind == "history").map(|f| f.events).unwrap_or(0);
    out.push(Target {
        target: format!("as-of query p99 ≤ {TARGET_AS_OF_P99_MS} ms over {TARGET_AS_OF_HISTORY} events"),
        measured: as_of.and_then(|f| f.latency.as_ref()).map(|l| format!("p99 {:.2} ms (mixed queries)", l.p99_ms)),
        // Over a shorter history the figure says nothing about the target: not judged.
        met: as_of
            .and_then(|f| f.latency.as_ref())
            .filter(|_| history >= TARGET_AS_OF_HISTORY)
            .map(|l| l.p99_ms <= TARGET_AS_OF_P99_MS),
        note: (as_of.is_some() && history < TARGET_AS_OF_HISTORY)
            .then(|| format!("over a history of {history} events, fewer than the target's: not judged")),
    });
    let peak = scenarios.iter().filter_map(|s| s.peak_rss_kib.map(|k| (k as f64 / 1024.0, s.scenario))).fold(
        None,
        |acc: Option<(f64, Scenario)>, (mib, s)| match acc {
            Some((m, _)) if m >= mib => acc,
            _ => Some((mib, s)),
        },
    );
    out.push(Target {
        target: format!("peak RSS ≤ {TARGET_PEAK_RSS_MIB:.0} MiB in every scenario"),
        measured: peak.map(|(mib, s)| format!("{mib:.0} MiB ({})", scenario_name(s))),
        met: peak.map(|(mib, _)| mib <= TARGET_PEAK_RSS_MIB),
        note: over_rss(scenarios),
    });
    out
}

/// The scenarios above the RSS target, with their peaks.
fn over_rss(scenarios: &[ScenarioReport]) -> Option<String> {
    let over: Vec<String> = scenarios
        .iter()
        .filter_map(|s| s.peak_rss_kib.map(|k| (s.scenario, k as f64 / 1024.0)))
        .filter(|(_, mib)| *mib > TARGET_PEAK_RSS_MIB)
        .map(|(s, mib)| format!("{} {mib:.0} MiB", scenario_name(s)))
        .collect();
    (!over.is_empty()).then(|| format!("over: {}", over.join(", ")))
}

pub fn scenario_name(s: Scenario) -> String {
    clap::ValueEnum::to_possible_value(&s).map(|v| v.get_name().to_string()).unwrap_or_default()
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.0} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "?".into())
}

pub fn print_table(summary: &Summary) {
    let m = &summary.machine;
    println!(
        "machine: {} cpus, {}, {} MiB; peak RSS per scenario (each runs in its own process)",
        m.cpus,
        m.cpu_model.as_deref().unwrap_or("unknown cpu"),
        m.memory_mib.unwrap_or(0)
    );
    let mut rows = Vec::new();
    for s in &summary.scenarios {
        if let Some(e) = &s.error {
            rows.push(vec![
                scenario_name(s.scenario),
                "failed".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                e.clone(),
            ]);
        }
        for f in &s.figures {
            let figure = match (f.status, f.per_second, &f.latency) {
                (Status::Measured, Some(r), _) => format!("{r:.0}/s"),
                (Status::Measured, None, Some(l)) => {
                    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", l.p50_ms, l.p99_ms, l.max_ms)
                }
                (Status::Unavailable, ..) => "unavailable".into(),
                (Status::Skipped, ..) => "skipped".into(),
                _ => "failed".into(),
            };
            rows.push(vec![
                scenario_name(s.scenario),
                f.name.clone(),
                f.clients.map(|c| c.to_string()).unwrap_or_default(),
                f.events.to_string(),
                format!("{:.2}", f.seconds),
                figure,
                f.note.clone().unwrap_or_default(),
            ]);
        }
        rows.push(vec![
            scenario_name(s.scenario),
            "peak RSS".into(),
            String::new(),
            String::new(),
            String::new(),
            mib(s.peak_rss_kib),
            String::new(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    let _ = output::table(&mut out, &["scenario", "figure", "clients", "events", "seconds", "result", "note"], &rows);
    if !summary.ratios.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = summary
            .ratios
            .iter()
            .map(|r| {
                vec![
                    r.ours.clone(),
                    r.baseline.clone(),
                    r.clients.map(|c| c.to_string()).unwrap_or_default(),
                    format!("{:.0}", r.ours_per_second),
                    format!("{:.0}", r.baseline_per_second),
                    format!("{:.2}x", r.ratio),
                ]
            })
            .collect();
        let _ = output::table(&mut out, &["ours", "baseline", "clients", "ours/s", "baseline/s", "ratio"], &rows);
    }
    println!();
    let rows: Vec<Vec<String>> = summary
        .targets
        .iter()
        .map(|t| {
            let met = match t.met {
                Some(true) => output::ok("met"),
                Some(false) => output::bad("missed"),
                None => "not measured".into(),
            };
            vec![t.target.clone(), t.measured.clone().unwrap_or_default(), met, t.note.clone().unwrap_or_default()]
        })
        .collect();
    let _ = output::table(&mut out, &["target", "measured", "verdict", "note"], &rows);
}
