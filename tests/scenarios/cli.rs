//! Black-box tests of the `stockpile` binary in its embedded mode: every verb, the demo,
//! `post` of a file, and each rejection path with its message, exit code and unchanged holdings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use stockpile_tests::bins::{binary, stockpile_in};

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli { dir: tempfile::tempdir().unwrap() }
    }

    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    fn run(&self, args: &[&str]) -> Output {
        stockpile_in(self.dir.path(), args)
    }

    /// Runs and expects exit code `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "stockpile {args:?}\nstdout: {stdout}\nstderr: {stderr}");
        stdout + &stderr
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args)
    }

    /// Holdings as JSON rows: (key values joined by '/', gross grams, contained grams).
    fn holdings(&self, by: &str) -> Vec<(String, i64, i64)> {
        let out = self.run(&["--format", "json", "holdings", "--by", by]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("holdings JSON");
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let key = by.split(',').map(|d| r["key"][d].as_str().unwrap_or("-").to_string());
                (
                    key.collect::<Vec<_>>().join("/"),
                    r["totals"]["gross_g"].as_i64().unwrap(),
                    r["totals"]["contained_g"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

/// A ledger with parties nl-mod (NL) and de-bw (DE), two facilities, keys, and 10 t cobalt.
fn setup() -> Cli {
    let c = Cli::new();
    c.ok(&["init", "--ledger", "test"]);
    c.ok(&[
        "register",
        "party",
        "nl-mod",
        "--partner",
        "NL",
        "--name",
        "Defensie",
        "--holder-type",
        "public_authority",
    ]);
    c.ok(&[
        "register",
        "party",
        "de-bw",
        "--partner",
        "DE",
        "--name",
        "Bundeswehr",
        "--holder-type",
        "public_authority",
    ]);
    c.ok(&["register", "facility", "nl-depot", "--name", "Depot", "--country", "NL"]);
    c.ok(&["register", "facility", "de-depot", "--name", "Lager", "--country", "DE"]);
    c.ok(&["keys", "generate", "--id", "nl-mod-ops", "--party", "nl-mod"]);
    c.ok(&["keys", "generate", "--id", "de-bw-ops", "--party", "de-bw"]);
    c.ok(&["register", "key", "nl-mod-ops"]);
    c.ok(&["register", "key", "de-bw-ops"]);
    c.ok(&[
        "acquire",
        "--lot",
        "co-1",
        "--material",
        "cobalt",
        "--form",
        "metal",
        "--purity",
        "99.8%",
        "--origin",
        "CD",
        "--party",
        "nl-mod",
        "--quantity",
        "10 t",
        "--id",
        "acq-co-1",
        "--occurred-at",
        "2026-01-10",
    ]);
    c.ok(&[
        "store",
        "--lot",
        "co-1",
        "--party",
        "nl-mod",
        "--to",
        "nl-depot",
        "--quantity",
        "10 t",
        "--occurred-at",
        "2026-01-12",
    ]);
    c
}

#[test]
fn every_verb_in_embedded_mode() {
    let c = setup();
    c.ok(&[
        "register",
        "consumption",
        "--partner",
        "NL",
        "--material",
        "cobalt",
        "--year",
        "2025",
        "--quantity",
        "900 t",
    ]);
    c.ok(&[
        "register",
        "net-imports",
        "--partner",
        "NL",
        "--material",
        "cobalt",
        "--year",
        "2025",
        "--quantity",
        "950 t",
    ]);
    c.ok(&[
        "transfer",
        "--lot",
        "co-1",
        "--from-party",
        "nl-mod",
        "--to-party",
        "de-bw",
        "--at",
        "nl-depot",
        "--to",
        "de-depot",
        "--to-programme",
        "NATO",
        "--quantity",
        "2500 kg",
        "--id",
        "xfer-1",
        "--occurred-at",
        "2026-02-01",
    ]);
    c.ok(&[
        "release",
        "--lot",
        "co-1",
        "--party",
        "nl-mod",
        "--at",
        "nl-depot",
        "--quantity",
        "1 t",
        "--reason",
        "emergency_drawdown",
        "--recipient",
        "industry",
        "--occurred-at",
        "2026-03-01",
    ]);
    c.ok(&[
        "convert",
        "--lot",
        "co-1",
        "--party",
        "nl-mod",
        "--at",
        "nl-depot",
        "--consumed",
        "2 t",
        "--new-lot",
        "co-ox-1",
        "--form",
        "oxide",
        "--purity",
        "730000",
        "--produced",
        "2.7 t",
        "--occurred-at",
        "2026-03-05",
    ]);
    c.ok(&[
        "adjust",
        "--lot",
        "co-1",
        "--party",
        "nl-mod",
        "--at",
        "nl-depot",
        "--decrease",
        "15 kg",
        "--reason",
        "stock_take",
        "--note",
        "count",
        "--occurred-at",
        "2026-03-31",
    ]);
    // nl-mod cannot reverse the transfer (it would debit de-bw); de-bw can.
    let refused = c.expect(1, &["reverse", "xfer-1", "--reason", "mistake", "--party", "nl-mod"]);
    assert!(refused.contains("not_owner"), "{refused}");
    c.ok(&["reverse", "xfer-1", "--reason", "mistake", "--party", "de-bw", "--occurred-at", "2026-04-01"]);
    // 10 t − 1 t − 2 t − 15 kg = 6.985 t cobalt at 99.8 %; 2.7 t oxide at 73 %.
    let rows = c.holdings("party,lot,facility");
    assert_eq!(
        rows,
        vec![
            ("nl-mod/co-1/nl-depot".to_string(), 6_985_000, 6_971_030),
            ("nl-mod/co-ox-1/nl-depot".to_string(), 2_700_000, 1_971_000),
        ]
    );
    // As of 2026-02-15 the transfer to Germany had happened and nothing else.
    let out = c.run(&["--format", "json", "holdings", "--as-of", "2026-02-15", "--by", "partner"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"][0]["key"]["partner"], "DE");
    assert_eq!(v["rows"][0]["totals"]["gross_g"], 2_500_000);
    assert_eq!(v["rows"][1]["totals"]["gross_g"], 7_500_000);
    let csv = c.ok(&["--format", "csv", "holdings", "--by", "material"]);
    assert!(csv.starts_with("material,gross_g,contained_g\ncobalt,9685000,8942030\n"), "{csv}");
    let table = c.ok(&["holdings", "--by", "material"]);
    assert!(table.contains("cobalt") && table.contains("9.685"), "{table}");
    let history = c.ok(&["history", "--lot", "co-1"]);
    for kind in ["acquire", "store", "transfer", "release", "convert", "adjust", "reverse"] {
        assert!(history.contains(kind), "history lacks {kind}: {history}");
    }
    let keys = c.ok(&["keys", "list"]);
    assert!(keys.contains("nl-mod-ops") && !keys.contains("secret"), "{keys}");
    c.ok(&["keys", "generate", "--id", "nl-mod-2", "--party", "nl-mod"]);
    c.ok(&["register", "key", "nl-mod-2"]);
    c.ok(&["keys", "revoke", "nl-mod-2", "--reason", "rotated"]);
    assert!(c.ok(&["keys", "list"]).contains("revoked"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.keys().join("nl-mod-ops.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key files must be private");
}

#[test]
fn rejections_say_what_is_wrong_exit_1_and_change_nothing() {
    let c = setup();
    let before = c.holdings("party,lot,facility");
    // A release of co-1 from nl-mod at nl-depot, with one argument changed or added.
    let release = |changes: &[(&'static str, &'static str)]| -> Vec<String> {
        let mut args = vec![("--lot", "co-1"), ("--party", "nl-mod"), ("--at", "nl-depot"), ("--quantity", "1 t")];
        args.extend([("--reason", "sale"), ("--recipient", "x")]);
        for (flag, value) in changes {
            match args.iter_mut().find(|(f, _)| f == flag) {
                Some(slot) => slot.1 = value,
                None => args.push((flag, value)),
            }
        }
        // `--flag=value`, so values such as "-1 t" stay values.
        std::iter::once("release".to_string()).chain(args.into_iter().map(|(f, v)| format!("{f}={v}"))).collect()
    };
    let acquire_unknown: Vec<String> = [
        "acquire",
        "--lot",
        "x-1",
        "--material",
        "unobtainium",
        "--form",
        "metal",
        "--purity",
        "999000",
        "--origin",
        "US",
        "--party",
        "nl-mod",
        "--quantity",
        "1 t",
    ]
    .map(String::from)
    .to_vec();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (release(&[("--quantity", "11 t")]), 1, "requested 11 t, available 10 t"),
        (release(&[("--lot", "co-9")]), 1, "unknown lot \"co-9\""),
        (release(&[("--key", "de-bw-ops")]), 1, "may not move stock of party nl-mod"),
        (release(&[("--quantity", "0.5 g")]), 2, "finer than a gram"),
        (release(&[("--quantity", "-1 t")]), 2, "negative"),
        (release(&[("--reason", "whim")]), 2, "unknown release reason"),
        (acquire_unknown, 1, "unknown material"),
    ];
    for (args, code, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = c.expect(code, &args);
        assert!(out.contains(message), "stockpile {args:?}: expected {message:?} in {out}");
        assert_eq!(c.holdings("party,lot,facility"), before, "stockpile {args:?} changed holdings");
    }
    // A revoked key is refused from its revocation on.
    c.ok(&["keys", "generate", "--id", "nl-old", "--party", "nl-mod"]);
    c.ok(&["register", "key", "nl-old"]);
    c.ok(&["keys", "revoke", "nl-old", "--reason", "lost", "--key", "admin"]);
    let revoked = release(&[("--key", "nl-old")]);
    let out = c.expect(1, &revoked.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("was revoked at seq"), "{out}");
    assert_eq!(c.holdings("party,lot,facility"), before);
    // A malformed line in a post file: nothing of the file is posted.
    let file = c.dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        format!(
            "{}\n{{\"id\": \"p-2\", \"occurred_at\": \"2026-02-01T00:00:00Z\", \"action\": {{\"kind\": \"release\"\n",
            release_line("p-1", "1")
        ),
    )
    .unwrap();
    let out = c.expect(2, &["post", file.to_str().unwrap()]);
    assert!(out.contains("line 2") && out.contains("nothing was posted"), "{out}");
    assert_eq!(c.holdings("party,lot,facility"), before);
    // No ledger: a usage error that says what to do.
    let nowhere =
        Command::new(binary("stockpile")).args(["--data", "/nonexistent/stockpile", "holdings"]).output().unwrap();
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("stockpile init"));
}

fn release_line(id: &str, kg: &str) -> String {
    serde_json::json!({
        "id": id,
        "occurred_at": "2026-02-01T00:00:00Z",
        "action": {
            "kind": "release", "lot": "co-1",
            "from": {"party": "nl-mod", "location": "nl-depot", "programme": "national"},
            "quantity": {"amount": kg, "unit": "kg"}, "reason": "rotation", "recipient": "market"
        }
    })
    .to_string()
}

#[test]
fn post_a_file_per_line_and_atomically() {
    let c = setup();
    let file = c.dir.path().join("releases.jsonl");
    // 2,000 releases of 1 kg and one overdraw: per line, the overdraw alone is refused.
    let mut lines: Vec<String> = (0..2_000).map(|i| release_line(&format!("r-{i}"), "1")).collect();
    lines.push(release_line("too-much", "9000"));
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = c.expect(1, &["post", file.to_str().unwrap()]);
    assert!(out.contains("2001 command(s)") && out.contains("2000 appended, 0 duplicate, 1 rejected"), "{out}");
    assert_eq!(c.holdings("lot"), vec![("co-1".to_string(), 8_000_000, 7_984_000)]);
    // Posting the same file again: every line is a duplicate, nothing changes.
    let out = c.expect(1, &["post", file.to_str().unwrap()]);
    assert!(out.contains("0 appended, 2000 duplicate, 1 rejected"), "{out}");
    // Atomic: one overdraw aborts the whole file.
    let atomic = c.dir.path().join("atomic.jsonl");
    std::fs::write(&atomic, [release_line("a-1", "1"), release_line("a-2", "9000")].join("\n")).unwrap();
    let out = c.expect(1, &["post", "--atomic", atomic.to_str().unwrap()]);
    assert!(out.contains("batch aborted"), "{out}");
    assert_eq!(c.holdings("lot"), vec![("co-1".to_string(), 8_000_000, 7_984_000)]);
}

#[test]
fn the_demo_builds_and_prints_holdings_from_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let run = |d: &Path| {
        Command::new(binary("stockpile")).args(["demo", "--dir"]).arg(d).env("NO_COLOR", "1").output().unwrap()
    };
    let out = run(&demo);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for needle in
        ["gallium", "germanium", "tungsten", "platinum", "copper", "mandated_operator", "private", "TOTAL", "Next, try"]
    {
        assert!(text.contains(needle), "demo output lacks {needle}: {text}");
    }
    // A release dated before the lot was acquired (2026-02-03; nl-mindef holds it from 02-20)
    // is refused for that date, in the operator's unit, and nothing is written.
    let stockpile = |args: &[&str]| {
        let mut all = vec!["--data", "data", "--keys", "keys", "--format", "json"];
        all.extend_from_slice(args);
        Command::new(binary("stockpile")).args(&all).current_dir(&demo).env("NO_COLOR", "1").output().unwrap()
    };
    let head = |out: &Output| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["seq"].clone();
    let before = stockpile(&["holdings", "--as-of", "2026-01-31"]);
    let released = stockpile(&[
        "release",
        "--lot=ga-2026-001",
        "--party=nl-mindef",
        "--at=nl-den-helder",
        "--quantity=1 t",
        "--occurred-at=2026-01-10",
        "--reason=sale",
        "--recipient=x",
    ]);
    assert_eq!(released.status.code(), Some(1), "{}", String::from_utf8_lossy(&released.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&released.stdout).expect("JSON outcome");
    assert_eq!(reply[0]["result"]["code"], "insufficient_stock_at", "{reply}");
    let message = reply[0]["result"]["message"].as_str().unwrap();
    for needle in [
        "nl-mindef/ga-2026-001@nl-den-helder",
        "taking 1 t at 2026-01-10",
        "balance there: 0 t",
        "at or after 2026-02-20",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    let after = stockpile(&["holdings", "--as-of", "2026-01-31"]);
    assert_eq!(after.stdout, before.stdout, "the refused release changed the holdings");
    assert_eq!(head(&after), head(&before));
    // Running it again replaces its own directory; a foreign directory is refused.
    assert!(run(&demo).status.success());
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep me").unwrap();
    let out = run(&foreign);
    assert_eq!(out.status.code(), Some(2));
    assert!(foreign.join("precious.txt").exists());
}

#[test]
fn an_auditor_exports_verifies_proves_and_replays_and_tampering_exits_1() {
    let c = setup();
    let path = |name: &str| c.dir.path().join(name).to_str().unwrap().to_string();
    let old = path("old-checkpoint.json");
    c.ok(&["audit", "checkpoint", "--output", &old]);
    // A report submitted now must be reproducible later, from an export of a longer log.
    let report = path("report.json");
    std::fs::write(&report, c.run(&["--format", "json", "report", "--partner", "NL", "--period", "2026"]).stdout)
        .unwrap();
    // The log grows after the auditor kept that checkpoint.
    let more = c.dir.path().join("more.jsonl");
    std::fs::write(&more, (0..5).map(|i| release_line(&format!("later-{i}"), "100")).collect::<Vec<_>>().join("\n"))
        .unwrap();
    c.ok(&["post", more.to_str().unwrap()]);
    let export = path("export.jsonl");
    let out = c.ok(&["audit", "export", "--output", &export]);
    assert!(out.contains("exported 14 records and 2 checkpoints"), "{out}");
    let out = c.ok(&["--format", "json", "audit", "verify", &export]);
    let summary: serde_json::Value = serde_json::from_str(
        out.lines().take_while(|l| *l != "}").chain(["}"]).collect::<Vec<_>>().join("\n").as_str(),
    )
    .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((summary["records"].as_u64(), summary["checkpoints"].as_u64()), (Some(14), Some(2)), "{out}");
    let key = summary["ledger_key"].as_str().unwrap().to_string();
    c.ok(&["audit", "verify", &export, "--ledger-key", &key]);
    c.expect(1, &["audit", "verify", &export, "--ledger-key", &"0".repeat(64)]);

    // An early record is in the old checkpoint's tree, and the new log extends the old one.
    let old_size = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&old).unwrap()).unwrap()
        ["tree_size"]
        .as_u64()
        .unwrap();
    assert_eq!(old_size, 9);
    let new = path("new-checkpoint.json");
    c.ok(&["audit", "checkpoint", "--output", &new]);
    let proof = path("proof.json");
    std::fs::write(&proof, c.run(&["audit", "prove", "--seq", "3", "--tree-size", "9"]).stdout).unwrap();
    let out = c.ok(&["audit", "check", &proof, "--checkpoint", &old, "--ledger-key", &key]);
    assert!(out.contains("record 3") && out.contains("log of 9 records"), "{out}");
    c.expect(1, &["audit", "check", &proof, "--checkpoint", &new]);
    let consistency = path("consistency.json");
    std::fs::write(&consistency, c.run(&["audit", "consistency", "--old", "9"]).stdout).unwrap();
    c.ok(&["audit", "check", &consistency, "--checkpoint", &new, "--old-checkpoint", &old]);

    // Holdings on a date, from the export alone, equal the ledger's own answer.
    let replayed =
        c.ok(&["--format", "json", "audit", "replay", "--from", &export, "--as-of", "2026-01-31", "--by", "lot"]);
    let live = c.ok(&["--format", "json", "holdings", "--as-of", "2026-01-31", "--by", "lot"]);
    assert_eq!(replayed, live);
    assert!(live.contains("10000000"), "10 t of cobalt before the releases: {live}");

    let out = c.ok(&["audit", "reproduce", &report, "--from", &export]);
    assert!(out.contains("reproduced byte for byte") && out.contains("cut at seq 9"), "{out}");
    let altered = path("altered.json");
    std::fs::write(&altered, std::fs::read_to_string(&report).unwrap().replacen("\"2026\"", "\"2025\"", 1)).unwrap();
    c.expect(1, &["audit", "reproduce", &altered, "--from", &export]);

    // One changed digit in record 12 is caught there, with exit code 1.
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let line = lines.iter().position(|l| l.contains("\"seq\":12}")).expect("record 12");
    lines[line] = lines[line].replacen("\"amount\":\"100\"", "\"amount\":\"900\"", 1);
    let tampered = path("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let out = c.expect(1, &["audit", "verify", &tampered]);
    assert!(out.contains("seq 12") && out.contains("hash does not match"), "{out}");
}

/// An export written by the ledger before decision rules were recorded (the demo, then a
/// release back-dated before its lot arrived — accepted then) still verifies: its genesis
/// names no rules, so every record is re-executed under rules 1. The fixture was made by the
/// `stockpile` of commit 3fd53bc (`demo`, `release … --occurred-at 2026-01-10`,
/// `audit export`); see tests/fixtures/README.md.
#[test]
fn an_export_written_under_rules_1_still_verifies() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/export-rules1.jsonl");
    let run = |args: &[&str]| Command::new(binary("stockpile")).args(args).env("NO_COLOR", "1").output().unwrap();
    let verified = run(&["audit", "verify", fixture.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&verified.stdout).to_string() + &String::from_utf8_lossy(&verified.stderr);
    assert_eq!(verified.status.code(), Some(0), "{text}");
    // The back-dated release is in it: nl-mindef's gallium was -1 t at the end of January,
    // which rules 2 would have refused — so verification did apply rules 1.
    let replayed = run(&[
        "--format",
        "json",
        "audit",
        "replay",
        "--from",
        fixture.to_str().unwrap(),
        "--as-of",
        "2026-01-31",
        "--by",
        "party,material",
    ]);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    let holdings: serde_json::Value = serde_json::from_slice(&replayed.stdout).unwrap();
    let mindef_gallium = holdings["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"]["party"] == "nl-mindef" && r["key"]["material"] == "gallium")
        .map(|r| r["totals"]["gross_g"].as_i64().unwrap());
    assert_eq!(mindef_gallium, Some(-1_000_000), "{holdings}");
}

#[test]
fn a_damaged_checkpoint_is_named_by_position_in_json_and_the_audit_exits_1() {
    let c = setup();
    let export = c.dir.path().join("export.jsonl");
    c.ok(&["audit", "export", "--output", export.to_str().unwrap()]);
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let records = lines.iter().filter(|l| l.starts_with("{\"body\":")).count() as u64;
    // The last checkpoint claims one record more than stand before it.
    let last = lines.last_mut().unwrap();
    let size = format!("\"tree_size\":{records}}}}}");
    assert!(last.ends_with(&size), "the export ends with the checkpoint over {records} records: {last}");
    *last = last.replace(&size, &format!("\"tree_size\":{}}}}}", records + 1));
    let tampered = c.dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    for chain_only in [false, true] {
        let mut args = vec!["--format", "json", "audit", "verify", tampered.to_str().unwrap()];
        args.extend(chain_only.then_some("--chain-only"));
        let out = c.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stockpile {args:?}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: stdout is one JSON object: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(v["ok"], false);
        assert_eq!(v["verification"], if chain_only { "chain only" } else { "full" });
        assert_eq!(v["position"], serde_json::json!({"kind": "checkpoint", "after": records}), "{v}");
        assert_eq!(v["line"], lines.len() as u64, "{v}");
        assert_eq!(v["problem"], "checkpoint_misplaced", "{v}");
        assert!(stderr.contains("verification failed"), "the message still goes to stderr: {stderr}");
    }
}

/// Shell completions and the man page come from the clap definition itself: each names the
/// verbs; an unknown shell is a usage error.
#[test]
fn completions_and_the_man_page_are_generated() {
    let run = |args: &[&str]| Command::new(binary("stockpile")).args(args).output().unwrap();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef stockpile"), ("fish", "complete -c stockpile")] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for verb in ["holdings", "release", "audit"] {
            assert!(script.contains(verb), "{shell} script does not complete {verb}");
        }
    }
    let man = run(&["man"]);
    assert!(man.status.success(), "{}", String::from_utf8_lossy(&man.stderr));
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.contains(".TH stockpile 1") && page.contains("holdings"), "{}", &page[..page.len().min(400)]);
    assert_eq!(run(&["completions", "powershell"]).status.code(), Some(2));
}
