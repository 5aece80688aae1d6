//! The `stockpile` binary in remote mode (`--nats URL`) against a real nats-server with the
//! ledger and projector services running in this process: the same scenario as in the
//! embedded mode gives the same holdings rows; no server is exit 2 naming the URL.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use stockpile_ledger::service::{self as ledger_service, ServiceConfig};
use stockpile_projector::service::{self as projector_service, ProjectorConfig};
use stockpile_tests::bins::binary;
use stockpile_tests::nats::NatsServer;
use tokio::sync::oneshot;

/// Longest wait for a service task to stop after being asked.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `stockpile` with `--keys <dir>/keys` and either `--nats URL` or `--data <dir>/data`.
fn stockpile(dir: &Path, nats: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(binary("stockpile"));
    cmd.arg("--keys").arg(dir.join("keys"));
    match nats {
        Some(url) => cmd.args(["--nats", url]),
        None => cmd.arg("--data").arg(dir.join("data")),
    };
    cmd.args(args).env("NO_COLOR", "1").env_remove("STOCKPILE_NATS_URL").output().expect("run stockpile")
}

fn ok(dir: &Path, nats: Option<&str>, args: &[&str]) -> String {
    let out = stockpile(dir, nats, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stockpile {args:?} (nats: {nats:?})\nstdout: {stdout}\nstderr: {stderr}");
    stdout.to_string()
}

/// init, register, acquire, transfer, release; returns the holdings JSON `rows`.
fn scenario(dir: &Path, nats: Option<&str>) -> serde_json::Value {
    let run = |args: &[&str]| ok(dir, nats, args);
    run(&["init", "--ledger", "test"]);
    for (id, partner, name) in [("nl-mod", "NL", "Defensie"), ("de-bw", "DE", "Bundeswehr")] {
        run(&["register", "party", id, "--partner", partner, "--name", name, "--holder-type", "public_authority"]);
    }
    run(&["register", "facility", "nl-depot", "--name", "Depot", "--country", "NL"]);
    run(&["register", "facility", "de-depot", "--name", "Lager", "--country", "DE"]);
    for (key, party) in [("nl-mod-ops", "nl-mod"), ("de-bw-ops", "de-bw")] {
        run(&["keys", "generate", "--id", key, "--party", party]);
        run(&["register", "key", key]);
    }
    #[rustfmt::skip]
    let movements: [&[&str]; 4] = [
        &["acquire", "--lot", "co-1", "--material", "cobalt", "--form", "metal", "--purity", "99.8%", "--origin",
          "CD", "--party", "nl-mod", "--quantity", "10 t", "--id", "acq-co-1", "--occurred-at", "2026-01-10"],
        &["store", "--lot", "co-1", "--party", "nl-mod", "--to", "nl-depot", "--quantity", "10 t",
          "--occurred-at", "2026-01-12"],
        &["transfer", "--lot", "co-1", "--from-party", "nl-mod", "--to-party", "de-bw", "--at", "nl-depot", "--to",
          "de-depot", "--to-programme", "NATO", "--quantity", "2500 kg", "--id", "xfer-1", "--occurred-at", "2026-02-01"],
        &["release", "--lot", "co-1", "--party", "nl-mod", "--at", "nl-depot", "--quantity", "1 t", "--reason",
          "emergency_drawdown", "--recipient", "industry", "--occurred-at", "2026-03-01"],
    ];
    for args in movements {
        run(args);
    }
    let out = run(&["--format", "json", "holdings", "--by", "party,facility,programme"]);
    let holdings: serde_json::Value = serde_json::from_str(&out).expect("holdings JSON");
    holdings["rows"].clone()
}

#[test]
fn the_remote_mode_gives_the_same_holdings_as_the_embedded_mode() {
    let embedded_dir = tempfile::tempdir().expect("tempdir");
    let embedded = scenario(embedded_dir.path(), None);
    assert_eq!(embedded.as_array().map(Vec::len), Some(2), "two positions: {embedded}");

    let nats = NatsServer::start();
    let url = nats.url();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let ledger_dir = tempfile::tempdir().expect("tempdir");
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let (stop_ledger, ledger_stopped) = oneshot::channel::<()>();
    let (stop_projector, projector_stopped) = oneshot::channel::<()>();
    let ledger = runtime.spawn(ledger_service::run(ServiceConfig::new(url.clone(), ledger_dir.path()), async {
        let _ = ledger_stopped.await;
    }));
    let projector =
        runtime.spawn(projector_service::run(ProjectorConfig::new(url.clone(), projector_dir.path()), async {
            let _ = projector_stopped.await;
        }));

    // The CLI does not wait for services to come up; the test does, so a slow start on a
    // loaded machine is not a failure.
    let remote_dir = tempfile::tempdir().expect("tempdir");
    wait_for_ledger_service(&runtime, &url);
    let remote = scenario(remote_dir.path(), Some(&url));
    assert_eq!(remote, embedded, "the same scenario gives the same rows in both modes");

    // The auditor over NATS: verify the running ledger, export it, replay the export.
    let verified = ok(remote_dir.path(), Some(&url), &["--format", "json", "audit", "verify"]);
    assert!(verified.contains("\"records\": 11") && verified.contains("\"ok\": true"), "{verified}");
    let export = remote_dir.path().join("export.jsonl");
    ok(remote_dir.path(), Some(&url), &["audit", "export", "--output", export.to_str().unwrap()]);
    ok(remote_dir.path(), None, &["audit", "verify", export.to_str().unwrap()]);
    let replayed = ok(
        remote_dir.path(),
        None,
        &[
            "--format",
            "json",
            "audit",
            "replay",
            "--from",
            export.to_str().unwrap(),
            "--by",
            "party,facility,programme",
        ],
    );
    let replayed: serde_json::Value = serde_json::from_str(&replayed).expect("holdings JSON");
    assert_eq!(replayed["rows"], embedded, "the export replays to the same holdings");
    let proof = ok(remote_dir.path(), Some(&url), &["audit", "prove", "--seq", "3"]);
    assert!(proof.contains("\"proof\": \"inclusion\"") && proof.contains("\"tree_size\": 11"), "{proof}");

    let _ = stop_projector.send(());
    let _ = stop_ledger.send(());
    runtime.block_on(async {
        let p = tokio::time::timeout(STOP_TIMEOUT, projector).await.expect("the projector stops in time");
        p.expect("no panic").expect("the projector stops cleanly");
        let l = tokio::time::timeout(STOP_TIMEOUT, ledger).await.expect("the ledger service stops in time");
        l.expect("no panic").expect("the ledger service stops cleanly");
    });
}

fn wait_for_ledger_service(runtime: &tokio::runtime::Runtime, url: &str) {
    runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("connect");
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        let info = format!("$SRV.INFO.{}", stockpile_ledger::service::subjects::SERVICE_NAME);
        while client.request(info.clone(), "".into()).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "the ledger service did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn no_server_is_exit_2_naming_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("nats://127.0.0.1:{port}");
    for args in [&["holdings"][..], &["watch", "NL.>"]] {
        let out = stockpile(dir.path(), Some(&url), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&url), "{args:?}: the message names the URL: {stderr}");
    }
}
