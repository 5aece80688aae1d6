//! (i) Failover (`stockpile-ledger serve --standby`, issue #26) on a three-node nats-server
//! cluster with R3 streams: four clients post continuously while the active ledger is
//! SIGKILLed [`FAILOVER_KILLS`] times (the standby takes over each time and a new standby is
//! started on the killed one's directory); then one NATS node is killed and restarted; then
//! the active is killed and its data directory deleted before it comes back as a standby;
//! and the active is paused (SIGSTOP) until a standby has taken over, then resumed: it must
//! stop on its own, having answered and published nothing more.
//!
//! Afterwards every acknowledged command is in the log exactly once at the seq it was
//! acknowledged with, the chain links, `STOCKPILE_EVENTS` equals the log (no fork ever
//! reached the stream), `audit export` of the log verifies, and a projector that followed the
//! stream through it all equals a rebuild. Takeover times (kill to the first answered
//! request) are printed, max and p50; nothing asserts on speed. Every wait supervises the
//! group as a deployment's supervisor does: a member that stops by itself is started again.
//!
//! (ii) A ledger that takes the lease while JetStream refuses to set up its streams keeps
//! the lease, retries, and serves once they can be set up.

use super::load::{check_acked_in_log, Load, Workload};
use super::projector::{assert_views_equal_rebuild, ProjectorTask};
use super::real_binary::LedgerProcess;
use super::*;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use stockpile_ledger::store::Store;
use stockpile_tests::bins::binary;
use stockpile_tests::nats::{NatsCluster, NatsServer};
use tokio::sync::watch;

/// Times the active ledger is SIGKILLed.
const FAILOVER_KILLS: usize = 20;
/// Clients appending through every round.
const FAILOVER_CLIENTS: usize = 4;
/// Answered requests between a takeover and the next kill: the new active is serving and
/// loaded when it dies.
const REPLIES_BETWEEN_KILLS: usize = 5;
/// Lines of each log the report of a stall quotes.
const STALL_REPORT_LINES: usize = 30;
/// Far beyond any takeover: the test fails on a ledger that never takes over, not a slow one.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(120);

/// One ledger of the failover group: its directory, and its process while it runs.
struct Member {
    name: &'static str,
    data: PathBuf,
    process: Option<LedgerProcess>,
    starts: usize,
}

struct Group {
    urls: String,
    key: PathBuf,
    logs: PathBuf,
    /// Each NATS node's log, for the report of a stall.
    nats_logs: Vec<PathBuf>,
    members: [Member; 2],
}

impl Group {
    /// Starts member `i` as `serve --standby` with a fresh log file.
    fn start(&mut self, i: usize) {
        let member = &mut self.members[i];
        member.starts += 1;
        let log = self.logs.join(format!("ledger-{}-{}.log", member.name, member.starts));
        let args: [&OsStr; 7] = [
            OsStr::new("--standby"),
            OsStr::new("--replicas"),
            OsStr::new("3"),
            OsStr::new("--checkpoint-every"),
            OsStr::new("1"),
            OsStr::new("--checkpoint-key"),
            self.key.as_os_str(),
        ];
        member.process = Some(LedgerProcess::spawn_with(&self.urls, &member.data, &log, &args));
    }

    fn log(&self, i: usize) -> String {
        self.members[i].process.as_ref().map(LedgerProcess::log_text).unwrap_or_default()
    }

    /// Waits until member `i` has caught up with the stream as a standby (or serves).
    async fn wait_until_following(&self, i: usize) {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let log = self.log(i);
            if log.contains("standby: caught up") {
                return;
            }
            assert!(Instant::now() < deadline, "{} never caught up:\n{log}", self.members[i].name);
            tokio::time::sleep(POLL).await;
        }
    }

    /// Which member serves now: the running process that took the lease (each process logs
    /// once when it does).
    fn active(&mut self) -> usize {
        let serving: Vec<usize> = (0..2)
            .filter(|&i| {
                let running = self.members[i].process.as_mut().is_some_and(LedgerProcess::is_running);
                running && self.log(i).contains("took the lease")
            })
            .collect();
        assert_eq!(serving.len(), 1, "exactly one running member took the lease: {serving:?}");
        serving[0]
    }

    /// Waits until the load has `count` answers, as a supervisor would: a member that stops
    /// by itself meanwhile (an active fencing itself when its lease could not be renewed in
    /// time: the design's one more failover) is started again at once, its log printed.
    async fn supervise_until_acked(&mut self, load: &Load, count: usize) {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        while load.acked() < count {
            self.supervise();
            if Instant::now() >= deadline {
                panic!("the load clients got {} of {count} replies in time\n{}", load.acked(), self.stall_report());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What each member and each NATS node last said: the warnings and errors of the members'
    /// logs (an outbox that cannot publish, a lease that cannot be renewed or taken) and the
    /// tail of every log.
    fn stall_report(&self) -> String {
        let mut report = String::new();
        for (i, member) in self.members.iter().enumerate() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            let troubles: Vec<&str> =
                lines.iter().copied().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            let running = if member.process.is_some() { "started" } else { "not started" };
            report += &format!(
                "--- ledger {} ({running}, start {}): last warnings and errors:\n{}\n--- its last lines:\n{}\n",
                member.name,
                member.starts,
                last_lines(&troubles),
                last_lines(&lines),
            );
        }
        for (i, path) in self.nats_logs.iter().enumerate() {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            report += &format!("--- nats node {i} ({}): last lines:\n{}\n", path.display(), last_lines(&lines));
        }
        report
    }

    /// Starts again, as a supervisor would, a member that is not running: one the test took
    /// down, or one that stopped by itself (an active that could not renew its lease while
    /// the cluster elected a new leader, or under load, fences itself), whose log it prints.
    async fn restart_stopped(&mut self) {
        for i in 0..2 {
            if self.start_if_stopped(i) {
                self.wait_until_following(i).await;
            }
        }
    }

    /// Starts again every member that stopped by itself (not one the test took down).
    fn supervise(&mut self) {
        for i in 0..2 {
            if self.members[i].process.is_some() {
                self.start_if_stopped(i);
            }
        }
    }

    /// Starts member `i` if it is not running, printing the log of one that stopped by itself
    /// (rather than being taken down by the test); whether it did.
    fn start_if_stopped(&mut self, i: usize) -> bool {
        let stopped_by_itself = self.members[i].process.is_some();
        if self.members[i].process.as_mut().is_some_and(LedgerProcess::is_running) {
            return false;
        }
        if stopped_by_itself {
            eprintln!("failover: {} had stopped by itself:\n{}", self.members[i].name, self.log(i));
        }
        self.start(i);
        true
    }
}

/// The last [`STALL_REPORT_LINES`] of `lines`, joined.
fn last_lines(lines: &[&str]) -> String {
    lines[lines.len().saturating_sub(STALL_REPORT_LINES)..].join("\n")
}

/// Sends `ledger.range` for one record until it is answered, supervising the group meanwhile
/// (a member that stops by itself is started again): the time a client waits for the group
/// to serve again.
async fn wait_until_answered(group: &mut Group, client: &async_nats::Client, since: Instant) -> Duration {
    let body = serde_json::to_vec(&RangeRequest { from: 1, to: None, limit: Some(1) }).expect("encode");
    loop {
        let sent = client.request(subjects::RANGE, body.clone().into());
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(500), sent).await {
            if serde_json::from_slice::<RangeReply>(&reply.payload).is_ok() {
                return since.elapsed();
            }
        }
        group.supervise();
        if since.elapsed() >= TAKEOVER_DEADLINE {
            panic!("no ledger took over within {TAKEOVER_DEADLINE:?}\n{}", group.stall_report());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the active member, waits for the standby to serve, and restarts the killed one as a
/// standby (on an emptied directory when `lose_disk`). Returns the takeover time.
async fn fail_over(
    group: &mut Group,
    client: &async_nats::Client,
    restarts: &watch::Sender<u64>,
    lose_disk: bool,
) -> Duration {
    let active = group.active();
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| group.members[active].process.as_mut().expect("running").kill());
    group.members[active].process = None;
    restarts.send_modify(|n| *n += 1);
    let took = wait_until_answered(group, client, killed_at).await;
    assert_eq!(group.active(), 1 - active, "the standby took over");
    if lose_disk {
        std::fs::remove_dir_all(&group.members[active].data).expect("lose the data directory");
    }
    let restarted = Instant::now();
    group.start(active);
    group.wait_until_following(active).await;
    eprintln!(
        "failover: {} took over in {:.2} s; {} restarted as a standby and caught up in {:.2} s{}",
        group.members[1 - active].name,
        took.as_secs_f64(),
        group.members[active].name,
        restarted.elapsed().as_secs_f64(),
        if lose_disk { " (from an empty directory)" } else { "" }
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_ledger_killed_twenty_times_fails_over_and_loses_nothing() {
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    cluster.wait_for_jetstream().await;
    let work = tempfile::tempdir().expect("tempdir");
    let key = work.path().join("checkpoint.key");
    std::fs::write(&key, format!("{}\n", hex::encode([7u8; 32]))).expect("write the checkpoint key");
    let mut group = Group {
        urls: cluster.urls(),
        key,
        logs: work.path().to_path_buf(),
        nats_logs: cluster.nodes.iter().map(|node| node.log_path()).collect(),
        members: [
            Member { name: "a", data: work.path().join("a"), process: None, starts: 0 },
            Member { name: "b", data: work.path().join("b"), process: None, starts: 0 },
        ],
    };
    // The clients and the projector talk to node 0, which stays up.
    let url = cluster.nodes[0].url();
    let client = client(&url).await;
    group.start(0);
    wait_until_serving(&client).await;
    append(&client, setup_commands(&World::new()), true).await;
    group.start(1);
    group.wait_until_following(1).await;
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let projector = ProjectorTask::run(&url, projector_dir.path());

    let (restarts, restarts_seen) = watch::channel(0u64);
    let load = Load::start(&client, FAILOVER_CLIENTS, Workload::Acquires, &restarts_seen);
    let mut takeovers = Vec::new();
    for round in 0..FAILOVER_KILLS {
        group.supervise_until_acked(&load, load.acked() + REPLIES_BETWEEN_KILLS).await;
        // The last round also loses the killed ledger's disk.
        let lose_disk = round + 1 == FAILOVER_KILLS;
        takeovers.push(fail_over(&mut group, &client, &restarts, lose_disk).await);
    }

    // One NATS node dies and comes back; the streams keep their quorum meanwhile.
    group.supervise_until_acked(&load, load.acked() + REPLIES_BETWEEN_KILLS).await;
    tokio::task::block_in_place(|| cluster.nodes[2].kill());
    group.supervise_until_acked(&load, load.acked() + REPLIES_BETWEEN_KILLS).await;
    tokio::task::block_in_place(|| cluster.nodes[2].restart());
    group.supervise_until_acked(&load, load.acked() + REPLIES_BETWEEN_KILLS).await;
    group.restart_stopped().await;

    // A paused active (a machine that stalls): the standby takes over; resumed, the old one
    // finds its lease gone and stops by itself.
    let paused = group.active();
    let paused_at = Instant::now();
    group.members[paused].process.as_ref().expect("running").signal(libc::SIGSTOP);
    restarts.send_modify(|n| *n += 1);
    takeovers.push(wait_until_answered(&mut group, &client, paused_at).await);
    // Resumed at once: while it is stopped the server still routes it a share of the
    // requests (its connection stays open until the server's pings time out), and those
    // wait for the client's timeout.
    let process = group.members[paused].process.as_mut().expect("running");
    process.signal(libc::SIGCONT);
    let status = tokio::task::block_in_place(|| process.wait_for_exit(CATCH_UP_TIMEOUT));
    let log = process.log_text();
    assert!(status.is_some_and(|s| !s.success()), "the deposed ledger stops with an error: {status:?}\n{log}");
    assert!(log.contains("the lease is lost"), "it says why:\n{log}");
    group.members[paused].process = None;
    // Supervised, as after every kill: the deposed ledger comes back as a standby. (So does
    // the new active if a slow lease renewal deposed it meanwhile — a failover the design
    // allows, one more, never two writers; `restart_stopped` prints its log.)
    group.restart_stopped().await;
    group.supervise_until_acked(&load, load.acked() + REPLIES_BETWEEN_KILLS).await;

    let acked = load.finish().await;
    let commands: usize = acked.iter().map(|a| a.commands.len()).sum();
    let records = records_via_range(&client).await;
    check_acked_in_log(&records, &acked);
    check_stream_mirrors(&client, &records).await;

    // The log as an auditor exports it verifies (every signature, decide re-executed, every
    // checkpoint under the one key).
    let export = work.path().join("export.jsonl");
    let stockpile = |args: &[&OsStr]| {
        let out = Command::new(binary("stockpile"))
            .arg("--keys")
            .arg(work.path().join("keys"))
            .args(args)
            .env_remove("STOCKPILE_NATS_URL")
            .output()
            .expect("run stockpile");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "stockpile {args:?}: {text}");
        text
    };
    let export_args = ["--nats", &url, "audit", "export", "--output"].map(OsStr::new);
    stockpile(&[&export_args[..], &[export.as_os_str()]].concat());
    let verified = stockpile(&[OsStr::new("audit"), OsStr::new("verify"), export.as_os_str()]);
    assert!(verified.contains(&format!("head        seq {} ", records.len())), "{verified}");

    let active = group.active();
    let status = tokio::task::block_in_place(|| group.members[active].process.as_mut().expect("running").terminate());
    assert!(status.success(), "the active ledger exits 0 on SIGTERM: {status}");
    let store = tokio::task::block_in_place(|| Store::open(&group.members[active].data)).expect("open the store");
    assert_views_equal_rebuild(&client, store, records.len() as u64).await;
    projector.stop().await;

    let mut sorted = takeovers.clone();
    sorted.sort();
    // What the run cost the group beyond the planned takeovers, from every member's logs.
    let logs: String = std::fs::read_dir(work.path())
        .expect("the logs' directory")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ledger-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    eprintln!(
        "failover: {} takeovers ({FAILOVER_KILLS} kills, one pause): max {:.2} s, p50 {:.2} s; {} requests ({commands} commands) acknowledged, {} records, {:.1} s; {} starts in all, {} set-up retries by a new active, {} lease losses",
        takeovers.len(),
        sorted.last().expect("takeovers").as_secs_f64(),
        sorted[sorted.len() / 2].as_secs_f64(),
        acked.len(),
        records.len(),
        started.elapsed().as_secs_f64(),
        group.members.iter().map(|m| m.starts).sum::<usize>(),
        logs.matches("cannot start serving yet").count(),
        logs.matches("the lease is lost").count(),
    );
}

/// How long the ledger below must keep the lease while its set-up is refused: a few of its
/// retries, far below the set-up bound (`ACTIVE_SET_UP_WAIT`, 60 s).
const SET_UP_REFUSED_FOR: Duration = Duration::from_secs(3);

/// (ii) The active of a failover group often takes over while NATS itself fails over, its
/// streams electing leaders for seconds. Made deterministic here on one server: a stream
/// that already holds the feeds' subjects makes creating `STOCKPILE_FEEDS` fail after the
/// standby has taken the lease. The ledger keeps the lease and retries (saying so) instead of
/// exiting; once the blocking stream is gone it serves, and an append is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_takes_the_lease_while_jetstream_refuses_its_streams_serves_once_they_can_be_set_up() {
    let server = tokio::task::block_in_place(NatsServer::start);
    let url = server.url();
    let client = client(&url).await;
    let js = jetstream::new(client.clone());
    let blocker = "BLOCKS_THE_FEEDS";
    js_api("create the blocking stream", || {
        js.create_stream(jetstream::stream::Config {
            name: blocker.to_string(),
            subjects: vec![subjects::FEEDS_SUBJECTS.to_string()],
            ..Default::default()
        })
    })
    .await;

    let work = tempfile::tempdir().expect("tempdir");
    let key = work.path().join("checkpoint.key");
    std::fs::write(&key, format!("{}\n", hex::encode([7u8; 32]))).expect("write the checkpoint key");
    let log = work.path().join("ledger.log");
    let args = [OsStr::new("--standby"), OsStr::new("--checkpoint-key"), key.as_os_str()];
    let mut ledger = LedgerProcess::spawn_with(&url, &work.path().join("data"), &log, &args);

    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while !ledger.log_text().contains("cannot start serving yet") {
        assert!(ledger.is_running(), "the ledger exited instead of retrying:\n{}", ledger.log_text());
        assert!(Instant::now() < deadline, "the ledger never tried to serve:\n{}", ledger.log_text());
        tokio::time::sleep(POLL).await;
    }
    let text = ledger.log_text();
    assert!(text.contains("took the lease"), "{text}");
    assert!(text.contains(subjects::FEEDS_STREAM), "the warning names the stream it could not set up:\n{text}");
    tokio::time::sleep(SET_UP_REFUSED_FOR).await;
    assert!(ledger.is_running(), "the ledger gave up within {SET_UP_REFUSED_FOR:?}:\n{}", ledger.log_text());

    js_api("delete the blocking stream", || js.delete_stream(blocker)).await;
    wait_until_serving(&client).await;
    let results = append(&client, setup_commands(&World::new()), true).await;
    assert_eq!(seq_of(&results[0]), 1, "{:?}", results[0]);
    let status = tokio::task::block_in_place(|| ledger.terminate());
    assert!(status.success(), "the ledger exits 0 on SIGTERM: {status}\n{}", ledger.log_text());
}
