//! `stockpile watch` against a real nats-server with the ledger service running in this
//! process: a partner filter shows both sides of a transfer (the stream files it under the
//! first partner only), every line carries its quantities as stated, and `--format json`
//! is one JSON object per line that validates against `schemas/v1/watch-line.schema.json`.

use crate::schemas::{assert_valid, validator};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use stockpile_ledger::service::{self as ledger_service, ServiceConfig};
use stockpile_tests::bins::binary;
use stockpile_tests::nats::NatsServer;
use tokio::sync::oneshot;

/// Longest wait for a service to come up, a line to arrive or a task to stop.
const WAIT: Duration = Duration::from_secs(60);

fn stockpile(dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(binary("stockpile"))
        .arg("--keys")
        .arg(dir.join("keys"))
        .args(["--nats", url])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .output()
        .expect("run stockpile")
}

fn ok(dir: &Path, url: &str, args: &[&str]) {
    let out = stockpile(dir, url, args);
    assert!(out.status.success(), "stockpile {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A `watch` child process; killed when dropped.
struct Watching {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `stockpile --nats URL ARGS` and returns once it says it is watching.
fn watch(url: &str, args: &[&str]) -> Watching {
    let mut child = Command::new(binary("stockpile"))
        .args(["--nats", url])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch");
    let stderr = child.stderr.take().expect("piped");
    let mut first = String::new();
    BufReader::new(stderr).read_line(&mut first).expect("read stderr");
    assert!(first.starts_with("watching "), "watch did not start: {first}");
    let stdout = child.stdout.take().expect("piped");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Watching { child, lines }
}

impl Watching {
    /// Lines until one contains `needle`; all of them, that one included.
    fn until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within {WAIT:?}; saw:\n{}", seen.join("\n")),
            }
        }
    }
}

#[test]
fn watch_shows_both_sides_of_a_transfer_with_quantities_and_json_lines() {
    let nats = NatsServer::start();
    let url = nats.url();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ledger_dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let ledger = runtime.spawn(ledger_service::run(ServiceConfig::new(url.clone(), ledger_dir.path()), async {
        let _ = stopped.await;
    }));
    runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let info = format!("$SRV.INFO.{}", stockpile_ledger::service::subjects::SERVICE_NAME);
        let deadline = Instant::now() + WAIT;
        while client.request(info.clone(), "".into()).await.is_err() {
            assert!(Instant::now() < deadline, "the ledger service did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let json = watch(&url, &["--format", "json", "watch", "NL.>"]);
    let table = watch(&url, &["watch", "NL.>"]);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |args: &[&str]| ok(dir, &url, args);
    run(&["init", "--ledger", "test"]);
    for (id, partner, name) in [("nl-mod", "NL", "Defensie"), ("de-bw", "DE", "Bundeswehr")] {
        run(&["register", "party", id, "--partner", partner, "--name", name, "--holder-type", "public_authority"]);
    }
    run(&["register", "facility", "nl-depot", "--name", "Depot", "--country", "NL"]);
    run(&["register", "facility", "de-depot", "--name", "Lager", "--country", "DE"]);
    run(&["keys", "generate", "--id", "nl-mod-ops", "--party", "nl-mod"]);
    run(&["register", "key", "nl-mod-ops"]);
    #[rustfmt::skip]
    let movements: [&[&str]; 3] = [
        &["acquire", "--lot", "co-1", "--material", "cobalt", "--form", "metal", "--purity", "99.8%", "--origin",
          "CD", "--party", "nl-mod", "--quantity", "10 t", "--id", "acq-co-1", "--occurred-at", "2026-01-10"],
        &["store", "--lot", "co-1", "--party", "nl-mod", "--to", "nl-depot", "--quantity", "10 t",
          "--occurred-at", "2026-01-12"],
        &["transfer", "--lot", "co-1", "--from-party", "nl-mod", "--to-party", "de-bw", "--at", "nl-depot", "--to",
          "de-depot", "--to-programme", "NATO", "--quantity", "2500 kg", "--id", "xfer-1", "--occurred-at", "2026-02-01"],
    ];
    for args in movements {
        run(args);
    }

    // JSON: one object per line, each valid, each concerning NL; the transfer filed under DE.
    let schema = validator("v1/watch-line.schema.json");
    let lines = json.until("xfer-1");
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}")))
        .collect();
    for object in &objects {
        assert_valid(&schema, object, "a watch line");
        assert!(object["partners"].as_array().unwrap().contains(&"NL".into()), "only NL's records: {object}");
    }
    let acquire = objects.iter().find(|o| o["event_id"] == "acq-co-1").expect("NL's acquire is shown");
    assert_eq!(acquire["quantities"][0]["stated"], "10 t", "{acquire}");
    let transfer = objects.last().unwrap();
    assert_eq!(transfer["subject"], "stockpile.v1.events.DE.cobalt.transfer", "{transfer}");
    assert_eq!(transfer["quantities"][0]["grams"], 2_500_000, "{transfer}");
    assert_eq!(transfer["quantities"][0]["stated"], "2500 kg", "{transfer}");
    assert!(!objects.iter().any(|o| o["kind"] == "register_party" && o["partners"] == serde_json::json!(["DE"])));

    // Table: the transfer with both positions and its quantity as stated.
    let lines = table.until("xfer-1");
    let transfer = lines.last().unwrap();
    assert!(transfer.contains("nl-mod@nl-depot -> de-bw@de-depot") && transfer.contains("2500 kg"), "{transfer}");

    drop((json, table));
    let _ = stop.send(());
    runtime.block_on(async {
        let l = tokio::time::timeout(WAIT, ledger).await.expect("the ledger service stops in time");
        l.expect("no panic").expect("the ledger service stops cleanly");
    });
}
