//! Scheduled reports: the real `stockpile-projector` binary with `--schedule` publishes each
//! partner's closed-period report by itself once the deadline has passed by *ledger time*
//! (the ledger runs in this process on a manual clock), and the next revision when a
//! back-dated event changes it; killed between a publish ack and its store write, and killed
//! with SIGKILL, it publishes nothing twice and skips nothing. The `stockpile` binary posts
//! the commands, asks `report --submit` (the same revision numbering) and reads the intake.
//! Two submitters racing on one subject get distinct revisions.
//!
//! The period is the wall clock's current quarter: `stockpile init` stamps the genesis with
//! the wall clock, and the ledger refuses business times after its own clock.

use async_nats::jetstream;
use chrono::{DateTime, Datelike, Duration as Days, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use stockpile_ledger::service::{self as ledger_service, ServiceConfig};
use stockpile_ledger::testkit::ManualClock;
use stockpile_ledger::{Ledger, LedgerHandle, LedgerOptions};
use stockpile_projector::report::{Period, Report};
use stockpile_projector::schedule::period_end;
use stockpile_projector::submit::{self, Submitted, REPORTS_STREAM};
use stockpile_tests::bins::binary;
use stockpile_tests::nats::NatsServer;
use tokio::sync::oneshot;

/// Longest wait for the projector to reach a state.
const WAIT: Duration = Duration::from_secs(60);
/// How long the test watches for a publication that must not come: several scheduler polls.
const QUIET: Duration = Duration::from_secs(3);
const T: i64 = 1_000_000;

fn stockpile(dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(binary("stockpile"))
        .arg("--keys")
        .arg(dir.join("keys"))
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--nats", url])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .output()
        .expect("run stockpile")
}

fn ok(dir: &Path, url: &str, args: &[&str]) -> String {
    let out = stockpile(dir, url, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stockpile {args:?}\nstdout: {stdout}\nstderr: {stderr}");
    stdout.to_string()
}

/// A running `stockpile-projector serve --schedule`; SIGKILLed on drop.
struct ProjectorProcess {
    child: Child,
    log: PathBuf,
}

impl ProjectorProcess {
    fn spawn(url: &str, data: &Path, schedule: &Path, log: PathBuf, crash_after: Option<u64>) -> ProjectorProcess {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let mut cmd = Command::new(binary("stockpile-projector"));
        cmd.args(["serve", "--nats", url, "--data"])
            .arg(data)
            .arg("--schedule")
            .arg(schedule)
            .env("RUST_LOG", "info")
            .env_remove("STOCKPILE_TEST_CRASH_AFTER_PUBLISH")
            .stdout(Stdio::null())
            .stderr(file);
        if let Some(n) = crash_after {
            cmd.env("STOCKPILE_TEST_CRASH_AFTER_PUBLISH", n.to_string());
        }
        ProjectorProcess { child: cmd.spawn().expect("spawn stockpile-projector"), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for ProjectorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every message of `STOCKPILE_REPORTS`: (subject, headers as a map, report).
async fn reports(js: &jetstream::Context) -> Vec<(String, std::collections::BTreeMap<String, String>, Report)> {
    let Ok(mut stream) = js.get_stream(REPORTS_STREAM).await else { return Vec::new() };
    let info = stream.info().await.expect("stream info");
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return out;
    }
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let m = stream.get_raw_message(seq).await.expect("message");
        let headers = m.headers.iter().map(|(k, v)| (k.to_string(), v[0].as_str().to_string())).collect();
        out.push((m.subject.to_string(), headers, serde_json::from_slice(&m.payload).expect("a report")));
    }
    out
}

#[test]
fn the_projector_pushes_scheduled_reports_and_revisions_once_across_crashes() {
    let nats = NatsServer::start();
    let url = nats.url();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (ledger_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = work.path();
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("{:>6.1}s {what}", t0.elapsed().as_secs_f64());

    // The ledger on a clock the test moves: its records' recorded_at is ledger time.
    let now = Utc::now();
    let clock = ManualClock::new(now);
    let ledger = Ledger::open(ledger_dir.path(), Box::new(clock.clone()), LedgerOptions::default()).expect("ledger");
    let handle = LedgerHandle::start(ledger);
    let (stop_ledger, ledger_stopped) = oneshot::channel::<()>();
    let served = runtime.spawn({
        let (config, handle) = (ServiceConfig::new(url.clone(), ledger_dir.path()), handle.clone());
        async move {
            ledger_service::serve(&config, handle, async {
                let _ = ledger_stopped.await;
            })
            .await
        }
    });
    let client = runtime.block_on(async_nats::connect(url.clone())).expect("connect");
    let js = jetstream::new(client.clone());
    // The CLI does not wait for the service to come up (a loaded machine may take a while).
    runtime.block_on(crate::services::wait_until_serving(&client));

    // This quarter, scheduled for NL, DE and FR with a 30-day deadline.
    let period: Period = format!("{}-Q{}", now.year(), now.month0() / 3 + 1).parse().unwrap();
    let (start, end) = (period.start().to_string(), period_end(period));
    let schedule = dir.join("schedule.json");
    let document = serde_json::json!({"reports": [{"partners": ["NL", "DE", "FR"], "framework": "EU",
        "periods": "quarterly", "from": period.to_string(), "deadline_days": 30}]});
    std::fs::write(&schedule, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let projector_data = dir.join("projector");
    // The first projector aborts after its second publication is acknowledged, before it
    // records it.
    let mut projector = ProjectorProcess::spawn(&url, &projector_data, &schedule, dir.join("p1.log"), Some(2));

    let run = |args: &[&str]| ok(dir, &url, args);
    run(&["init", "--ledger", "test"]);
    for (i, partner) in ["NL", "DE", "FR"].into_iter().enumerate() {
        let party = format!("{}-gov", partner.to_lowercase());
        let key = format!("{party}-ops");
        #[rustfmt::skip]
        run(&["register", "party", &party, "--partner", partner, "--name", partner, "--holder-type", "public_authority"]);
        run(&["keys", "generate", "--id", &key, "--party", &party]);
        run(&["register", "key", &key]);
        let quantity = format!("{} t", 10 * (i + 1));
        #[rustfmt::skip]
        run(&["acquire", "--lot", &format!("co-{partner}"), "--material", "cobalt", "--form", "metal", "--purity",
              "50%", "--origin", "CD", "--party", &party, "--quantity", &quantity, "--occurred-at", &start]);
    }
    // An acquisition after the period: it moves ledger time, not the period's figures.
    let mut later = 0;
    let mut move_ledger_time = |at: DateTime<Utc>| {
        clock.set(at);
        later += 1;
        #[rustfmt::skip]
        run(&["acquire", "--lot", &format!("co-DE-later-{later}"), "--material", "cobalt", "--form", "metal",
              "--purity", "50%", "--origin", "CD", "--party", "de-gov", "--quantity", "1 t", "--occurred-at",
              &at.to_rfc3339()]);
    };
    let head = || *handle.head().borrow();
    let at_head = |projector: &ProjectorProcess| {
        let want = head();
        let deadline = Instant::now() + WAIT;
        loop {
            let seq = runtime.block_on(async {
                let reply = client.request("stockpile.v1.holdings.query", "{}".into()).await.ok()?;
                serde_json::from_slice::<Value>(&reply.payload).ok()?["seq"].as_u64()
            });
            if seq == Some(want) {
                return;
            }
            assert!(Instant::now() < deadline, "the projector never reached record {want}: {}", projector.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let count = || runtime.block_on(reports(&js)).len();
    let wait_count = |n: usize, projector: &ProjectorProcess| {
        let deadline = Instant::now() + WAIT;
        while count() < n {
            assert!(Instant::now() < deadline, "{n} reports never arrived ({}): {}", count(), projector.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    step("posted");
    // The period has not ended: nothing.
    at_head(&projector);
    std::thread::sleep(QUIET);
    assert_eq!(count(), 0, "{}", projector.log());
    step("quiet 1");
    // Ended ten days ago by ledger time, but not yet at its deadline: still nothing.
    move_ledger_time(end + Days::days(10));
    at_head(&projector);
    std::thread::sleep(QUIET);
    assert_eq!(count(), 0, "published before the deadline: {}", projector.log());

    step("quiet 2");
    // Past the deadline: published by itself; the first projector dies after two acks.
    move_ledger_time(end + Days::days(31));
    let deadline = Instant::now() + WAIT;
    while projector.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the crash point was never reached: {}", projector.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(projector.log().contains("aborting after the publish ack"), "{}", projector.log());
    assert_eq!(count(), 2, "two acknowledged before the crash");
    step("crashed");
    // Restarted: the third, and neither of the first two again.
    projector = ProjectorProcess::spawn(&url, &projector_data, &schedule, dir.join("p2.log"), None);
    wait_count(3, &projector);
    at_head(&projector);
    std::thread::sleep(QUIET);
    let sent = runtime.block_on(reports(&js));
    let mut series: Vec<(String, String)> =
        sent.iter().map(|(s, h, _)| (s.clone(), h["Stockpile-Revision"].clone())).collect();
    series.sort();
    let expected: Vec<(String, String)> =
        ["DE", "FR", "NL"].iter().map(|p| (format!("stockpile.v1.reports.EU.{p}"), "1".to_string())).collect();
    assert_eq!(series, expected, "each partner once, revision 1: {}", projector.log());
    let cobalt = |r: &Report| r.body.materials.iter().find(|m| m.material == "cobalt").unwrap().stock.gross_g;
    let nl1 = sent.iter().find(|(s, _, _)| s.ends_with(".NL")).map(|(_, _, r)| r.clone()).unwrap();
    assert_eq!((cobalt(&nl1), nl1.header.provisional), (10 * T, false));
    for (_, headers, report) in &sent {
        assert_eq!(headers["Nats-Msg-Id"], format!("{}.r1", report.header.report_id));
        assert_eq!(headers["Stockpile-Period"], period.to_string());
    }

    step("restarted");
    // A back-dated acquisition changes NL's closed period: revision 2, by itself.
    clock.set(end + Days::days(32));
    #[rustfmt::skip]
    run(&["acquire", "--lot", "co-NL-2", "--material", "cobalt", "--form", "metal", "--purity", "50%", "--origin",
          "CD", "--party", "nl-gov", "--quantity", "5 t", "--occurred-at", &start]);
    wait_count(4, &projector);
    let sent = runtime.block_on(reports(&js));
    let (subject, headers, nl2) = sent.last().unwrap();
    assert_eq!((subject.as_str(), headers["Stockpile-Revision"].as_str()), ("stockpile.v1.reports.EU.NL", "2"));
    assert_eq!(headers["Stockpile-Supersedes"], nl1.header.report_id);
    assert!(
        headers["Stockpile-Changes"].contains("/materials/cobalt/stock/gross_g: 10000000 -> 15000000"),
        "{headers:?}"
    );
    assert_eq!(cobalt(nl2), 15 * T);
    step("revision 2");
    // `report --submit` numbers revisions in the same place: nothing new to send.
    let p = period.to_string();
    let manual = run(&["report", "--submit", "--partner", "NL", "--period", &p]);
    assert!(manual.starts_with("unchanged: revision 2"), "{manual}");

    step("manual");
    // SIGKILL, restart, and ledger time moves on: nothing is sent twice.
    projector.kill();
    projector = ProjectorProcess::spawn(&url, &projector_data, &schedule, dir.join("p3.log"), None);
    move_ledger_time(end + Days::days(40));
    at_head(&projector);
    std::thread::sleep(QUIET);
    assert_eq!(count(), 4, "nothing published twice after the restart: {}", projector.log());

    step("restart 2");
    // The Commission's intake sees them.
    let list: Value = serde_json::from_str(&run(&["--format", "json", "reports", "list", "--period", &p])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4, "{list:?}");
    assert!(list.iter().all(|a| a["check"]["status"] == "accepted"), "{list:?}");
    let missing: Value =
        serde_json::from_str(&run(&["--format", "json", "reports", "missing", "--period", &p])).unwrap();
    let missing: Vec<&str> = missing.as_array().unwrap().iter().map(|m| m["partner"].as_str().unwrap()).collect();
    assert!(missing.contains(&"BE") && !missing.iter().any(|p| ["NL", "DE", "FR"].contains(p)), "{missing:?}");
    projector.kill();

    step("intake");
    // Four submitters racing on one subject get one revision number each: reports of other
    // cuts (JetStream's expected subject sequence decides), then of one cut, so one report
    // id, with different bodies (its duplicate id decides).
    let fr = sent.iter().find(|(s, _, _)| s.ends_with(".FR")).map(|(_, _, r)| r.clone()).unwrap();
    let variant = |name: &str, cut: u64| {
        let mut r = fr.clone();
        r.body.partner_name = name.into();
        r.header.body_sha256 = name.into();
        r.header.report_id = format!("EU-FR-{period}-{cut}");
        r
    };
    // Each submitter on a connection of its own, all at once.
    let race = |bodies: Vec<Report>| -> Vec<u64> {
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for report in bodies {
                let client = async_nats::connect(url.clone()).await.expect("connect");
                tasks.push(tokio::spawn(async move { submit::submit(&jetstream::new(client), &report).await }));
            }
            let mut got = Vec::new();
            for task in tasks {
                match task.await.expect("no panic") {
                    Ok(Submitted::Published { revision, .. }) => got.push(revision),
                    other => panic!("not published: {other:?}"),
                }
            }
            got.sort();
            got
        })
    };
    let distinct_cuts = (1001..1005).map(|cut| variant(&format!("race-{cut}"), cut)).collect();
    assert_eq!(race(distinct_cuts), [2, 3, 4, 5], "one revision number each (expected subject sequence)");
    let one_cut = (0..4).map(|i| variant(&format!("race-same-{i}"), 1005)).collect();
    assert_eq!(race(one_cut), [6, 7, 8, 9], "one revision number each (duplicate ids)");

    let _ = stop_ledger.send(());
    runtime.block_on(async {
        tokio::time::timeout(WAIT, served).await.expect("stops").expect("no panic").expect("clean")
    });
    handle.shutdown().expect("ledger stops");
}

/// The example schedule validates against its schema and is what `--schedule` reads; a
/// document the schema refuses, the projector refuses too.
#[test]
fn the_example_schedule_matches_its_schema_and_the_projector_reads_it() {
    use stockpile_projector::schedule::Schedule;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let text = std::fs::read(root.join("docs/examples/report-schedule.json")).expect("read the example");
    let document: Value = serde_json::from_slice(&text).unwrap();
    let validator = crate::schemas::validator("v1/report-schedule.schema.json");
    crate::schemas::assert_valid(&validator, &document, "docs/examples/report-schedule.json");
    let schedule = Schedule::from_json(&text).expect("the projector reads the example");
    assert_eq!(serde_json::to_value(&schedule).unwrap(), document, "read as written");
    for (pointer, value) in [
        ("/reports/0/partners", serde_json::json!("some")),
        ("/reports/0/periods", serde_json::json!("weekly")),
        ("/reports/0/deadline_days", serde_json::json!(-1)),
        ("/reports/0/extra", serde_json::json!(1)),
    ] {
        let mut bad = document.clone();
        match bad.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => {
                bad["reports"][0]["extra"] = value;
            }
        }
        assert!(!validator.is_valid(&bad), "the schema takes {pointer}");
        assert!(Schedule::from_json(&serde_json::to_vec(&bad).unwrap()).is_err(), "the projector takes {pointer}");
    }
}
