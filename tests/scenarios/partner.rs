//! The partner example (`docs/examples/partner_subscriber.py`, documented in
//! `docs/PARTNERS.md`) runs against a real nats-server and the ledger service: it must
//! read, validate and verify every record and print them in ledger order.
//!
//! The Python interpreter is `STOCKPILE_PARTNER_PYTHON`, set by `scripts/partner-deps`
//! (sourced by `./scripts/test`), with the pinned `nats-py` and `jsonschema` installed. The
//! test fails, never skips, when it is missing.

use crate::services::{
    acquires, append, client, config, expected_subject, open_ledger, seq_of, setup_commands, stored_records,
    wait_for_cursor, wait_until_serving, InProcess,
};
use std::path::PathBuf;
use std::process::Command;
use stockpile_ledger::service::access::Identity;
use stockpile_ledger::testkit::World;
use stockpile_tests::nats::NatsServer;

/// The interpreter with the example's dependencies; panics with how to get one.
fn partner_python() -> PathBuf {
    let python = std::env::var_os("STOCKPILE_PARTNER_PYTHON").unwrap_or_else(|| {
        panic!(
            "STOCKPILE_PARTNER_PYTHON is not set: run the tests with ./scripts/test, or \
             `source scripts/partner-deps` first (it installs nats-py and jsonschema into target/partner-venv)"
        )
    });
    let python = PathBuf::from(python);
    assert!(
        python.is_file(),
        "STOCKPILE_PARTNER_PYTHON={} is not a file: run `source scripts/partner-deps` again",
        python.display()
    );
    python
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_partner_subscriber_verifies_the_stream() {
    let python = partner_python();
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&nats.url()), open_ledger(data.path()));
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();

    let setup = setup_commands(&world);
    let mut expected: Vec<(u64, String)> = Vec::new();
    let results = append(&client, setup.clone(), true).await;
    for (command, result) in setup.iter().zip(&results) {
        expected.push((seq_of(result), command.command.action.kind().to_string()));
    }
    let movements = acquires(&world, 0, 4);
    let results = append(&client, movements, false).await;
    expected.extend(results.iter().map(|r| (seq_of(r), "acquire".to_string())));
    let head = expected.len() as u64;
    assert_eq!(expected.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=head).collect::<Vec<_>>());
    wait_for_cursor(&service.ledger, head).await;

    let everything = run_subscriber(&python, &nats.url(), head, &[]).await;
    assert_eq!(everything, expected, "the subscriber printed every record, in order");

    // Filtered to NL: the other records are gaps, repaired (and verified) from ledger.range.
    let nl: Vec<(u64, String)> = stored_records(&service.ledger)
        .iter()
        .zip(&expected)
        .filter(|(record, _)| expected_subject(record).starts_with("stockpile.v1.events.NL."))
        .map(|(_, e)| e.clone())
        .collect();
    assert!(nl.len() >= 2 && nl[0].0 > 1, "the NL subset leaves gaps to repair: {nl:?}");
    let filter = ["--filter", "stockpile.v1.events.NL.>", "--durable", "nl-auditor"];
    let filtered = run_subscriber(&python, &nats.url(), nl.len() as u64, &filter).await;
    assert_eq!(filtered, nl, "the filtered subscriber printed the NL records, in order");

    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

/// On the accounts of `stockpile nats-config`, as `partner-NL`: the example reads NL's feed
/// through the consumer the ledger made for NL, and proves each record against the ledger's
/// signed checkpoint (it may read nothing else: `ledger.range` and the events stream are not
/// NL's). It prints exactly NL's records, in order, each proved in a tree that holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_partner_on_the_accounts_reads_its_feed_and_proves_every_record() {
    let python = partner_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = stockpile_tests::bins::nats_config(dir.path(), "NL,DE");
    let nats = NatsServer::start_with_config(&conf.join("nats-server.conf"));
    let seed = |user: &str| Identity::from_file(&conf.join("users").join(format!("{user}.nk"))).expect("seed file");
    let mut ledger_config = config(&nats.url());
    ledger_config.identity = Some(seed("ledger"));
    ledger_config.publisher_identity = Some(seed("ledger-publisher"));
    ledger_config.partners = vec!["NL".into(), "DE".into()];
    ledger_config.checkpoint_interval = std::time::Duration::from_secs(1);
    let service = InProcess::serve(ledger_config, open_ledger(&dir.path().join("ledger")));
    let world = World::new();
    let setup = service.ledger.append(setup_commands(&world), true).await.expect("setup");
    assert!(setup.iter().all(|o| o.seq().is_some()), "setup appends");
    let moved = service.ledger.append(acquires(&world, 0, 6), false).await.expect("acquisitions");
    assert!(moved.iter().all(|o| o.seq().is_some()), "acquisitions append");
    let head = *service.ledger.head().borrow();

    // NL's records: those whose scope names NL (its registrations, its acquisitions).
    let nl: Vec<(u64, String)> = stored_records(&service.ledger)
        .iter()
        .map(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).expect("a record")["body"].clone())
        .filter(|body| body["scope"]["partners"].as_array().is_some_and(|p| p.iter().any(|p| p == "NL")))
        .map(|body| (body["seq"].as_u64().unwrap(), body["kind"].as_str().unwrap().to_string()))
        .collect();
    assert!(nl.len() >= 3 && nl.len() < head as usize, "NL's records are some of the log: {nl:?}");
    let nkey = conf.join("users/partner-NL.nk");
    let lines = run_subscriber_lines(
        &python,
        &nats.url(),
        nl.len() as u64,
        &["--partner", "NL", "--nkey", nkey.to_str().unwrap()],
    )
    .await;
    let printed: Vec<(u64, String)> =
        lines.iter().map(|v| (v["seq"].as_u64().unwrap(), v["kind"].as_str().unwrap().to_string())).collect();
    assert_eq!(printed, nl, "NL's records, in order, and nothing else");
    for line in &lines {
        let proved = line["proved"].as_u64().expect("each record proved");
        assert!(proved >= line["seq"].as_u64().unwrap() && proved <= head, "{line}");
    }
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

/// Runs the example to read `count` records; asserts it succeeds and returns the
/// `(seq, kind)` of each line it printed.
async fn run_subscriber(python: &std::path::Path, url: &str, count: u64, extra: &[&str]) -> Vec<(u64, String)> {
    run_subscriber_lines(python, url, count, extra)
        .await
        .iter()
        .map(|v| (v["seq"].as_u64().expect("seq"), v["kind"].as_str().expect("kind").to_string()))
        .collect()
}

/// Runs the example to read `count` records; asserts it succeeds and returns each line it
/// printed, as JSON.
async fn run_subscriber_lines(
    python: &std::path::Path,
    url: &str,
    count: u64,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let root = workspace_root();
    let script = root.join("docs/examples/partner_subscriber.py");
    let python = python.to_path_buf();
    let mut args = vec![url.to_string(), count.to_string(), "--timeout".into(), "60".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .args(&args)
            .current_dir(&root)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", python.display(), script.display()))
    })
    .await
    .expect("the subscriber's thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the subscriber failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    let printed: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(v["event_id"].is_string(), "no event_id in {line}");
            v
        })
        .collect();
    eprintln!("subscriber stderr:\n{stderr}");
    printed
}
