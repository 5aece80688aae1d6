//! Black-box tests of the operator's first steps: the README's embedded and auditor blocks
//! run as written, `demo` puts its ledger where `--data`/`--keys`/`--dir` say and refuses
//! `--nats`, and every failure under `--format json` is an error object on stdout. The
//! services block (reports and the Commission's intake on a trial server) and the multilateral
//! block (a deployment on NATS accounts bootstrapped from nothing) run as written too.

use std::path::Path;
use std::process::{Command, Output};
use stockpile_tests::bins::binary;
use stockpile_tests::readme::readme_block;

/// `stockpile ARGS` in `dir`, with nothing from the environment choosing for it.
fn stockpile(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("stockpile"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .env_remove("STOCKPILE_DATA")
        .env_remove("STOCKPILE_KEYS")
        .output()
        .expect("run stockpile")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a README block with `bash -e -o pipefail` in `dir`, the built binaries (and
/// nats-server) first on PATH and `env` set; its stdout. Fails, with the block's output, when
/// any command in it fails. What the block leaves running in the background is stopped when
/// the returned guard drops (the block runs in a process group of its own).
fn run_block_with(dir: &Path, name: &str, env: &[(&str, &str)]) -> (String, ProcessGroup) {
    use std::os::unix::process::CommandExt as _;
    let block = readme_block(name);
    let bins = binary("stockpile").parent().expect("binaries have a directory").to_path_buf();
    let nats = stockpile_tests::nats::nats_server_bin();
    let nats_dir = nats.parent().expect("nats-server has a directory").to_path_buf();
    let path = format!("{}:{}:{}", bins.display(), std::env::var("PATH").unwrap_or_default(), nats_dir.display());
    let child = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &block])
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .env_remove("STOCKPILE_NATS_NKEY")
        .env_remove("STOCKPILE_NATS_PARTNER")
        .env_remove("STOCKPILE_DATA")
        .env_remove("STOCKPILE_KEYS")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run bash");
    let group = ProcessGroup(child.id());
    let out = child.wait_with_output().expect("wait for bash");
    assert!(
        out.status.success(),
        "README block {name:?} failed ({}):\n{block}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    (text(&out.stdout), group)
}

fn run_block(dir: &Path, name: &str) -> String {
    run_block_with(dir, name, &[]).0
}

/// A process group, sent SIGTERM and then SIGKILL on drop.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = -i32::try_from(self.0).expect("a pid fits i32");
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(group, libc::SIGTERM);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        // SAFETY: as above.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
    }
}

#[test]
fn the_readme_embedded_and_auditor_blocks_run_as_written_in_an_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let embedded = run_block(dir, "embedded");
    // The back-dated release is there to be refused: exit 1, not a usage error.
    assert!(embedded.contains("refused as it should be (exit 1)"), "{embedded}");
    assert!(dir.join("stockpile-data").is_dir() && dir.join("stockpile.bash").is_file());
    let auditor = run_block(dir, "auditor");
    assert!(dir.join("checkpoint.json").is_file() && dir.join("proof.json").is_file(), "{auditor}");
}

#[test]
fn the_readme_services_block_reports_and_the_commissions_intake_run_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    let (out, _services) = run_block_with(dir, "services", &[("REPO", repo.to_str().expect("UTF-8 checkout path"))]);
    // The back-dated stock-take made revision 2 of NL's Q1 report, and the diff shows it.
    assert!(out.contains("as revision 2 of 2026-Q1"), "{out}");
    assert!(out.contains("/materials/gallium/stock/gross_g") && out.contains("2480000"), "{out}");
    // The aggregate sums the latest revision of each State's report.
    let aggregate = out.lines().find(|l| l.starts_with("gallium") && l.contains(" NL ")).expect("NL's gallium row");
    assert!(aggregate.contains("2480000") && aggregate.contains("EU-NL-2026-Q1-12"), "{aggregate}");
    let chart = std::fs::read_to_string(dir.join("stocks.svg")).expect("the aggregate's chart was written");
    assert!(chart.starts_with("<svg") || chart.contains("<svg"), "{chart}");
    assert!(out.contains("(provisional: the period has not ended)"), "{out}");
    // The ledger rebuilt from the stream: every record, and the checkpoints under its key.
    let restored = out.lines().find(|l| l.starts_with("restored ")).expect("restore's summary");
    assert!(restored.ends_with("ledger-copy"), "{restored}");
    assert!(out.lines().any(|l| l.starts_with("checkpoints: ") && l.contains(" kept")), "{out}");
    assert!(dir.join("ledger-copy/checkpoint.key").is_file(), "the key was copied in");
}

#[test]
fn the_readme_failover_block_runs_as_written_and_the_standby_takes_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    let (out, _services) = run_block_with(dir, "failover", &[("REPO", repo.to_str().expect("UTF-8 checkout path"))]);
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    // ledger-a served first and died; ledger-b followed, took the lease and appended the key.
    assert!(log("ledger-a.log").contains("took the lease"), "{}", log("ledger-a.log"));
    let b = log("ledger-b.log");
    assert!(b.contains("standby: caught up") && b.contains("took the lease"), "{b}");
    // The key registered after the takeover is the exported log's last record.
    let export = std::fs::read_to_string(dir.join("export.jsonl")).expect("the block exported the log");
    let last = export.lines().rfind(|l| l.starts_with("{\"body\":")).expect("the export holds records");
    assert!(last.contains(r#""event":{"key":{"id":"nl-ops""#) && last.contains(r#""kind":"key_registered""#), "{last}");
    // One chain under the one key, across the takeover.
    assert!(out.contains("head        seq "), "{out}");
}

#[test]
fn the_readme_multilateral_block_bootstraps_two_partners_on_nats_accounts_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    let repo = repo.to_str().expect("UTF-8 checkout path");
    let (out, _services) = run_block_with(dir, "multilateral", &[("REPO", repo)]);
    // Each partner's key was registered from its public half; the admin never held NL's secret.
    assert!(dir.join("nl-keys/nl-ops.pub").is_file() && !dir.join("admin-keys/nl-ops.key").exists());
    assert!(!text(&std::fs::read(dir.join("nl-keys/nl-ops.pub")).unwrap()).contains("secret"));
    // The proof NL made as a partner checks offline against the checkpoint it could fetch.
    assert!(out.contains("OK record 8"), "{out}");
    assert!(out.contains("submitted EU-NL-2026-Q1-"), "{out}");
    // The Commission, as its own account, read NL's report and proved its cut in the signed log.
    let listed: Vec<&str> = out.lines().filter(|l| l.contains("EU-NL-2026-Q1-")).collect();
    assert!(listed.iter().any(|l| l.trim_end().ends_with(" accepted")), "{out}");
    assert!(std::fs::read(dir.join("stocks.png")).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG chart");
    // NL's history of its lot comes from the projector's history.query.NL: the acquisition
    // (into transit) and the store (out of transit, into Vlissingen), one row per position.
    let history: Vec<&str> = out.lines().filter(|l| l.contains("nl-ga-2026-001") && l.contains("nl-covra")).collect();
    assert_eq!(history.len(), 3, "{out}");
    assert!(history.iter().any(|l| l.contains("nl-vlissingen") && l.contains("2.500")), "{out}");
    // NL's own holdings are NL's only; DE may not ask NL's, and is told so at once.
    let url = "nats://127.0.0.1:14222";
    let as_user = |user: &str, partner: &str, args: &[&str]| {
        let started = std::time::Instant::now();
        let nkey = dir.join(format!("nats/users/{user}.nk"));
        let mut all = vec!["--nats", url, "--nats-nkey", nkey.to_str().unwrap(), "--nats-partner", partner];
        all.extend(args);
        (stockpile(dir, &all), started.elapsed())
    };
    let (nl, _) = as_user("partner-NL", "NL", &["--format", "json", "holdings", "--by", "party,material"]);
    assert!(nl.status.success(), "{}", text(&nl.stderr));
    let holdings: serde_json::Value = serde_json::from_slice(&nl.stdout).unwrap();
    let rows = holdings["rows"].as_array().expect("rows");
    assert!(!rows.is_empty() && rows.iter().all(|r| r["key"]["party"] == "nl-covra"), "{holdings}");
    let (de, took) = as_user("partner-DE", "NL", &["holdings"]);
    assert_eq!(de.status.code(), Some(2), "{}", text(&de.stderr));
    assert!(text(&de.stderr).contains("refused user partner-DE"), "{}", text(&de.stderr));
    assert!(took < std::time::Duration::from_secs(5), "refused at once, not after a timeout: {took:?}");
    // A `.pub` file is its holder's claim: the admin states the party, and a file asking for
    // an admin key, or another party, is refused before anything is posted.
    let admin = |args: &[&str]| {
        let nkey = dir.join("nats/users/admin.nk");
        let mut all = vec!["--nats", url, "--nats-nkey", nkey.to_str().unwrap(), "--keys", "admin-keys"];
        all.extend(args);
        stockpile(dir, &all)
    };
    let claim = std::fs::read_to_string(dir.join("nl-keys/nl-ops.pub")).unwrap();
    let forged = claim.replace("\"operator\"", "\"admin\"").replace("nl-ops", "nl-boss");
    std::fs::write(dir.join("forged.pub"), forged).unwrap();
    for (args, says) in [
        (&["register", "key", "forged.pub"][..], "asks for an admin key"),
        (
            &["register", "key", "forged.pub", "--role", "operator", "--party", "nl-covra"][..],
            "is an admin key, not operator",
        ),
        (&["register", "key", "nl-keys/nl-ops.pub"][..], "--party nl-covra"),
        (
            &["register", "key", "nl-keys/nl-ops.pub", "--party", "de-rohstoff"][..],
            "acts for nl-covra, not de-rohstoff",
        ),
    ] {
        let out = admin(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(says) && text(&out.stderr).contains("nothing registered"),
            "{}",
            text(&out.stderr)
        );
    }
    // DE may not post on NL's channel either; nothing is written.
    let nl_file = format!("{repo}/docs/examples/multilateral/nl-2026-q1.jsonl");
    let de_key = dir.join("de-keys/de-ops.key");
    let (de_post, _) = as_user("partner-DE", "NL", &["post", &nl_file, "--key", de_key.to_str().unwrap()]);
    assert_eq!(de_post.status.code(), Some(2), "{}", text(&de_post.stderr));
    let stderr = text(&de_post.stderr);
    assert!(
        stderr.contains("refused user partner-DE permission to publish to stockpile.v1.ledger.append.NL"),
        "{stderr}"
    );
}

#[test]
fn demo_puts_the_ledger_and_keys_where_data_keys_and_dir_say() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // --data and --keys given: the ledger and keys go there, --dir keeps only the marker.
    let out = stockpile(dir, &["--data", "ledger", "--keys", "k", "demo", "--dir", "d"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("ledger/ledger").is_dir() && !dir.join("d/data").exists(), "the ledger went to --data");
    assert!(dir.join("k/nl-mindef-ops.key").is_file() && !dir.join("d/keys").exists(), "the keys went to --keys");
    assert!(text(&out.stdout).contains("stockpile --data ledger --keys k release"), "next steps name the real places");
    let held = stockpile(dir, &["--data", "ledger", "--format", "json", "holdings"]);
    assert!(held.status.success(), "{}", text(&held.stderr));
    let holdings: serde_json::Value = serde_json::from_slice(&held.stdout).unwrap();
    assert!(holdings["seq"].as_u64().unwrap() > 30, "the demo's records are in --data: {holdings}");
    // Rerunning replaces the demo's own places.
    assert!(stockpile(dir, &["--data", "ledger", "--keys", "k", "demo", "--dir", "d"]).status.success());
    // Without --data: <dir>/data, also through the environment's absence.
    assert!(stockpile(dir, &["demo", "--dir", "e"]).status.success());
    assert!(dir.join("e/data/ledger").is_dir() && dir.join("e/keys").is_dir());
    // A --data holding something else is refused before anything is replaced.
    std::fs::create_dir(dir.join("mine")).unwrap();
    std::fs::write(dir.join("mine/notes"), "mine").unwrap();
    let refused = stockpile(dir, &["--data", "mine", "demo", "--dir", "e"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("choose another --data"), "{}", text(&refused.stderr));
    assert!(dir.join("mine/notes").is_file() && dir.join("e/data/ledger").is_dir(), "nothing was replaced");
}

#[test]
fn demo_with_nats_refuses_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stockpile(tmp.path(), &["--nats", "nats://127.0.0.1:1", "demo", "--dir", "d"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not post to the services") && stderr.contains("append-only"), "{stderr}");
    assert!(!tmp.path().join("d").exists(), "nothing built locally instead");
}

/// Runs `args` with `--format json`, expects exit `code` and one error object on stdout.
fn json_failure(dir: &Path, code: i32, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    let out = stockpile(dir, &all);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON value ({e}): {}", text(&out.stdout)));
    let error = &value["error"];
    assert_eq!(error["exit_code"], code, "{value}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{value}");
    assert!(error["suggestions"].is_array(), "{value}");
    assert!(!text(&out.stderr).is_empty(), "the message is on stderr too");
    value
}

#[test]
fn every_failure_under_format_json_is_an_error_object_on_stdout_with_the_same_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(stockpile(dir, &["demo", "--dir", "d"]).status.success());
    let data = ["--data", "d/data", "--keys", "d/keys"];
    let with = |args: &[&'static str]| -> Vec<&'static str> { data.iter().chain(args).copied().collect() };

    let unknown = json_failure(dir, 1, &with(&["holdings", "--material", "coballt"]));
    assert_eq!(unknown["error"]["code"], "unknown_id");
    assert_eq!(unknown["error"]["suggestions"], serde_json::json!(["cobalt"]));

    let typo = json_failure(dir, 2, &["holdngs"]);
    assert_eq!(typo["error"]["code"], "usage");
    assert_eq!(typo["error"]["suggestions"], serde_json::json!(["holdings"]));

    let no_ledger = json_failure(dir, 2, &["--data", "nowhere", "holdings"]);
    assert_eq!(no_ledger["error"]["code"], "usage");
    assert!(no_ledger["error"]["message"].as_str().unwrap().contains("no ledger in nowhere"));

    let unreadable = json_failure(dir, 2, &["audit", "verify", "missing.jsonl"]);
    assert_eq!(unreadable["error"]["code"], "operational");

    let no_server = json_failure(dir, 2, &["--nats", "nats://127.0.0.1:1", "holdings"]);
    assert_eq!(no_server["error"]["code"], "operational");

    // A rejection prints the results array, whose entries carry the ledger's code.
    let release = with(&[
        "release",
        "--lot",
        "ga-2026-001",
        "--party",
        "nl-mindef",
        "--at",
        "nl-den-helder",
        "--quantity",
        "1 t",
        "--occurred-at",
        "2026-01-10",
        "--reason",
        "sale",
        "--recipient",
        "x",
    ]);
    let mut args = vec!["--format", "json"];
    args.extend(&release);
    let out = stockpile(dir, &args);
    assert_eq!(out.status.code(), Some(1));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results[0]["result"]["status"], "rejected", "{results}");
}

#[test]
fn a_panic_under_format_json_is_an_error_object_too() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(binary("stockpile"))
        .args(["--format", "json", "list", "materials"])
        .current_dir(tmp.path())
        .env("STOCKPILE_TEST_PANIC", "planted")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(value["error"]["code"], "internal");
    assert!(value["error"]["message"].as_str().unwrap().contains("planted"));
}
