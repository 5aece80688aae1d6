//! `stockpile-ledger restore`: the ledger's data directory is lost; the real binary rebuilds
//! it from the `STOCKPILE_EVENTS` stream and from an `audit export`, and each rebuilt
//! directory serves the same chain and takes the next append. Tampered sources (a flipped
//! byte of a signature, a dropped record, a foreign message in the stream) and a non-empty
//! target are refused with a message, and leave no directory behind.

use super::real_binary::{ledger_binary, BinaryLedger, LedgerProcess};
use super::*;
use std::process::{Command, Output};
use stockpile_ledger::store::Store;
use stockpile_tests::bins::binary;
use stockpile_tests::nats::NatsServer;

/// Acquires before the export, and after it (past the export's checkpoint).
const BEFORE_EXPORT: usize = 20;
const AFTER_EXPORT: usize = 5;

fn restore(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(ledger_binary()).arg("restore").args(args).output().expect("run stockpile-ledger restore")
}

fn text(out: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Restores into `data`; must succeed.
fn restored(source: (&str, &std::ffi::OsStr), data: &Path, key: &Path) -> String {
    let out = restore(&[
        source.0.as_ref(),
        source.1,
        "--data".as_ref(),
        data.as_os_str(),
        "--checkpoint-key".as_ref(),
        key.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "restore {source:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Restores into `data`; must be refused with each of `reasons` in the message, leaving
/// `data`'s parent as it was (no target, no staging directory).
fn refused(source: (&str, &std::ffi::OsStr), data: &Path, reasons: &[&str]) {
    let parent = data.parent().expect("a parent");
    let before = entries(parent);
    let out = restore(&[source.0.as_ref(), source.1, "--data".as_ref(), data.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "restore {source:?} must be refused: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for reason in reasons {
        assert!(stderr.contains(reason), "the refusal names {reason:?}: {}", text(&out));
    }
    assert_eq!(entries(parent), before, "a refused restore leaves nothing behind: {}", text(&out));
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// The stored checkpoint entries of a (stopped) ledger directory.
fn checkpoints(data: &Path) -> Vec<(u64, Vec<u8>)> {
    Store::open(data).expect("open the store").checkpoints(u64::MAX).expect("read the checkpoints")
}

/// Serves `data` over `url`, checks it holds `records` and appends one command, which
/// must get the next seq; the stream must then mirror the log. Stops it with SIGTERM.
async fn serve_and_append(url: &str, data: &Path, log: &Path, records: &[Vec<u8>], next: usize) {
    let mut process = LedgerProcess::spawn(url, data, log);
    let client = client(url).await;
    wait_until_serving(&client).await;
    assert!(records_via_range(&client).await == records, "the restored ledger serves the same chain");
    let result = append(&client, acquires(&World::new(), next, 1), false).await;
    assert_eq!(seq_of(&result[0]), records.len() as u64 + 1, "the next append continues the chain");
    let all = records_via_range(&client).await;
    assert_eq!(&all[..records.len()], records);
    check_stream_mirrors(&client, &all).await;
    assert!(process.terminate().success(), "the restored ledger stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ledger_is_restored_from_the_stream_and_from_an_export_and_tampered_sources_are_refused() {
    let mut ledger = BinaryLedger::start().await;
    let client = ledger.client.clone();
    let url = ledger.nats.url();
    let world = World::new();
    let work = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| work.path().join(name);

    append(&client, acquires(&world, 0, BEFORE_EXPORT), false).await;
    let export = path("export.jsonl");
    let out = Command::new(binary("stockpile"))
        .arg("--keys")
        .arg(path("keys"))
        .args(["--nats", &url, "audit", "export", "--output"])
        .arg(&export)
        .env_remove("STOCKPILE_NATS_URL")
        .output()
        .expect("run stockpile audit export");
    assert_eq!(out.status.code(), Some(0), "audit export: {}", text(&out));
    append(&client, acquires(&world, BEFORE_EXPORT, AFTER_EXPORT), false).await;
    let records = records_via_range(&client).await;
    check_stream_mirrors(&client, &records).await;
    let exported = std::fs::read_to_string(&export).expect("read the export");
    let exported_records: Vec<Vec<u8>> =
        exported.lines().filter(|l| l.starts_with("{\"body\":")).map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(exported_records.len(), records.len() - AFTER_EXPORT);

    // The machine is lost; the operator kept the checkpoint key apart from the data directory.
    assert!(ledger.process.terminate().success());
    let key = path("checkpoint.key");
    std::fs::copy(ledger.data.join("checkpoint.key"), &key).expect("keep the checkpoint key");
    let original_checkpoints = checkpoints(&ledger.data);
    assert!(!original_checkpoints.is_empty(), "the export made a checkpoint");
    std::fs::remove_dir_all(&ledger.data).expect("lose the data directory");

    // From the stream: every record, every published checkpoint, the cursor at the head.
    let from_stream = path("from-stream");
    let stdout = restored(("--from-stream", url.as_ref()), &from_stream, &key);
    assert!(stdout.contains(&format!("restored {} records", records.len())), "{stdout}");
    assert!(stdout.contains(&format!("outbox cursor: {}", records.len())), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "records {} to {} are after the last checkpoint",
            records.len() - AFTER_EXPORT + 1,
            records.len()
        )),
        "{stdout}"
    );
    assert!(checkpoints(&from_stream) == original_checkpoints, "the checkpoints are stored as the ledger stored them");
    assert_eq!(Store::open(&from_stream).expect("open").outbox_cursor().expect("cursor"), records.len() as u64);

    // From the export: its records and its checkpoint, the cursor at 0.
    let from_export = path("from-export");
    let stdout = restored(("--from-export", export.as_os_str()), &from_export, &key);
    assert!(stdout.contains(&format!("restored {} records", exported_records.len())), "{stdout}");
    assert!(stdout.contains("outbox cursor: 0"), "{stdout}");
    let last_exported = checkpoints(&from_export);
    assert_eq!(last_exported.len(), 1, "an export over NATS carries the last checkpoint");
    assert!(original_checkpoints.contains(&last_exported[0]), "stored as the ledger stored it");

    // A non-empty target is never written into.
    refused(("--from-export", export.as_os_str()), &from_export, &["is not empty"]);

    // Tampered exports: a byte of a checkpoint signature, of a command signature, a record dropped.
    let lines: Vec<&str> = exported.lines().collect();
    let flip = |line: &str, after: &str| {
        let at = line.find(after).expect("the field") + after.len();
        let c = if &line[at..=at] == "0" { "1" } else { "0" };
        format!("{}{c}{}", &line[..at], &line[at + 1..])
    };
    let last = lines.len() - 1;
    let tampered: [(&str, Vec<String>, &str); 3] = [
        (
            "checkpoint-signature",
            {
                let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                l[last] = flip(lines[last], "\"signature\":\"");
                l
            },
            "signature",
        ),
        (
            "command-signature",
            {
                let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                l[5] = flip(lines[5], "\"signature\":\"");
                l
            },
            "seq 6",
        ),
        (
            "dropped-record",
            lines.iter().enumerate().filter(|(i, _)| *i != 7).map(|(_, s)| s.to_string()).collect(),
            "seq 8",
        ),
    ];
    for (name, lines, reason) in tampered {
        let file = path(&format!("{name}.jsonl"));
        std::fs::write(&file, lines.join("\n") + "\n").expect("write the tampered export");
        let target = path(&format!("restored-{name}"));
        refused(("--from-export", file.as_os_str()), &target, &["does not verify", reason]);
    }

    // Each restored directory serves the same chain and takes the next append: the one from
    // the stream on the same NATS, the one from the export on a fresh one (whose stream the
    // outbox fills from the log).
    serve_and_append(&url, &from_stream, &path("from-stream.log"), &records, 1_000).await;
    let fresh = NatsServer::start();
    serve_and_append(&fresh.url(), &from_export, &path("from-export.log"), &exported_records, 2_000).await;

    // A foreign message in the stream refuses it.
    let js = jetstream::new(client.clone());
    js.publish("stockpile.v1.events.NL.cobalt.acquire", "not a record".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    refused(("--from-stream", url.as_ref()), &path("from-foreign-stream"), &["is not the ledger's record"]);
}
