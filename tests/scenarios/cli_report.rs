//! `stockpile report` through the real binary on a temporary data directory: the figures of
//! a small scenario in every format, the registrations it needs, and bad input with exit 2.

use std::process::Output;
use stockpile_tests::bins::stockpile_in;

struct Cli {
    dir: tempfile::TempDir,
    /// `--nats URL` for every command: the remote mode, against running services.
    nats: Option<String>,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        match &self.nats {
            Some(url) => stockpile_in(self.dir.path(), &[&["--nats", url.as_str()], args].concat()),
            None => stockpile_in(self.dir.path(), args),
        }
    }

    /// Runs, expects exit code `code`, returns (stdout, stderr).
    fn expect(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
        assert_eq!(out.status.code(), Some(code), "stockpile {args:?}\nstdout: {stdout}\nstderr: {stderr}");
        (stdout, stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args).0
    }
}

/// nl-mod (NL, public authority) acquires 10 t cobalt at 99.8 % into nl-depot on 2026-01-10
/// and releases 2.5 t on 2026-02-01; 4 t tungsten at 50 % arrive at be-depot (abroad) on
/// 2026-03-01 and are withheld from 2026-03-02. NL consumed 30 t cobalt in 2025 and imported
/// 73 t net (0.2 t a day).
fn scenario() -> Cli {
    scenario_over(None)
}

/// [`scenario`], embedded or (`Some(url)`) over NATS.
fn scenario_over(nats: Option<String>) -> Cli {
    let c = Cli { dir: tempfile::tempdir().unwrap(), nats };
    c.ok(&["init", "--ledger", "test"]);
    let party = ["register", "party", "nl-mod", "--partner", "NL", "--name", "Defensie"];
    c.ok(&[&party[..], &["--holder-type", "public_authority"]].concat());
    c.ok(&["register", "facility", "nl-depot", "--name", "Depot", "--country", "NL"]);
    c.ok(&["register", "facility", "be-depot", "--name", "Depot", "--country", "BE"]);
    c.ok(&["keys", "generate", "--id", "nl-mod-ops", "--party", "nl-mod"]);
    c.ok(&["register", "key", "nl-mod-ops"]);
    let acquire = |lot: &str, material: &str, purity: &str, at: &str, q: &str, when: &str| {
        c.ok(&[
            "acquire",
            "--lot",
            lot,
            "--material",
            material,
            "--form",
            "metal",
            "--purity",
            purity,
            "--origin",
            "CD",
            "--party",
            "nl-mod",
            "--at",
            at,
            "--quantity",
            q,
            "--occurred-at",
            when,
        ]);
    };
    acquire("co-1", "cobalt", "99.8%", "nl-depot", "10 t", "2026-01-10");
    c.ok(&[
        "release",
        "--lot",
        "co-1",
        "--party",
        "nl-mod",
        "--at",
        "nl-depot",
        "--quantity",
        "2.5 t",
        "--reason",
        "emergency_drawdown",
        "--recipient",
        "industry",
        "--occurred-at",
        "2026-02-01",
    ]);
    acquire("w-1", "tungsten", "50%", "be-depot", "4 t", "2026-03-01");
    // dated in January: a report applies the registrations in force at its period's end
    let figure =
        ["--partner", "NL", "--material", "cobalt", "--year", "2025", "--occurred-at", "2026-01-15", "--quantity"];
    c.ok(&[&["register", "consumption"][..], &figure, &["30 t"]].concat());
    c.ok(&[&["register", "net-imports"][..], &figure, &["73 t"]].concat());
    c.ok(&[
        "register",
        "release-rules",
        "--partner",
        "NL",
        "--material",
        "cobalt",
        "--text",
        "Released by order of the Minister, \"NL industry first\"",
        "--occurred-at",
        "2026-01-15",
    ]);
    c.ok(&[
        "register",
        "withhold",
        "--party",
        "nl-mod",
        "--lot",
        "w-1",
        "--reason",
        "defence stock",
        "--occurred-at",
        "2026-03-02",
    ]);
    c
}

#[test]
fn report_in_json_csv_and_markdown() {
    let c = scenario();
    let json = c.ok(&["--format", "json", "report", "--partner", "NL", "--period", "2026-Q1"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("report JSON");
    assert!(v["header"]["report_id"].as_str().unwrap().starts_with("EU-NL-2026-Q1-"));
    let materials = v["body"]["materials"].as_array().unwrap();
    assert_eq!(materials.len(), 1, "tungsten is withheld: {v:#}");
    let co = &materials[0];
    assert_eq!(co["material"], "cobalt");
    // 10 t − 2.5 t = 7.5 t; contained 7.5 t × 0.998 = 7.485 t
    assert_eq!(
        (co["stock"]["gross_g"].as_i64(), co["stock"]["contained_g"].as_i64()),
        (Some(7_500_000), Some(7_485_000))
    );
    assert_eq!(co["consumption"]["value"], "25.00"); // 7.5 / 30
    assert_eq!(co["days_of_cover"]["value"], "37.5"); // 7.5 / (73 / 365)
    assert_eq!(co["release_rules"]["status"], "published");
    let released: Vec<_> = co["movements"].as_array().unwrap().iter().filter(|l| l["line"] == "released").collect();
    assert_eq!(
        (released[0]["reason"].as_str(), released[0]["gross_g"].as_i64()),
        (Some("emergency_drawdown"), Some(-2_500_000))
    );
    assert_eq!(v["body"]["withheld"][0]["reason"], "defence stock");
    assert_eq!(v["body"]["withheld"][0]["since"], "2026-03-02");

    let again = c.ok(&["--format", "json", "report", "--partner", "NL", "--period", "2026-Q1"]);
    assert_eq!(again, json, "the same log gives the same bytes");
    // Before the withholding, tungsten is reported, held abroad in BE.
    let feb = c.ok(&["--format", "json", "report", "--partner", "NL", "--period", "2026-03", "--materials", "all"]);
    let feb: serde_json::Value = serde_json::from_str(&feb).unwrap();
    assert_eq!(feb["body"]["materials"].as_array().unwrap().len(), 1, "withheld again at the end of March");
    let csv = c.ok(&["--format", "csv", "report", "--partner", "NL", "--period", "2026-Q1"]);
    assert!(csv.starts_with("section,material,item,detail,gross_g,gross_t,contained_g,contained_t,value\n"), "{csv}");
    assert!(csv.contains("\nstock,cobalt,closing,,7500000,7.500000,7485000,7.485000,\n"), "{csv}");
    assert!(csv.contains("\"Released by order of the Minister, \"\"NL industry first\"\"\""), "{csv}");
    let md = c.ok(&["report", "--partner", "NL", "--period", "2026-Q1"]);
    assert!(!md.contains("PROVISIONAL"), "2026-Q1 has ended by ledger time");
    let open = c.ok(&["report", "--partner", "NL", "--period", "2199"]);
    assert!(open.contains("**PROVISIONAL — the period has not ended**"), "{open}");
    let open = c.ok(&["--format", "csv", "report", "--partner", "NL", "--period", "2199"]);
    assert!(open.lines().nth(1).is_some_and(|l| l.contains("PROVISIONAL — the period has not ended")), "{open}");
    assert!(md.starts_with("# Stock report EU-NL-2026-Q1-"), "{md}");
    assert!(md.contains("Stock: **7.500000 t** gross, **7.485000 t** contained."), "{md}");
    assert!(md.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{md}");
    assert_eq!(c.ok(&["--format", "md", "report", "--partner", "NL", "--period", "2026-Q1"]), md);
    // The NATO variant, with no NATO-earmarked stock, says so.
    let nato = c.ok(&["report", "--partner", "NL", "--period", "2026-Q1", "--framework", "NATO"]);
    assert!(nato.contains("No stock in scope"), "{nato}");
}

#[test]
fn bad_report_arguments_exit_2_and_say_what_to_fix() {
    let c = scenario();
    let (_, err) = c.expect(1, &["report", "--partner", "XX", "--period", "2026"]);
    assert!(err.contains("unknown partner \"XX\"") && err.contains("stockpile list partners"), "{err}");
    for period in ["2026-H3", "26", "2026-13", "2026/05"] {
        let (_, err) = c.expect(2, &["report", "--partner", "NL", "--period", period]);
        assert!(err.contains("is malformed: use a year (2026), a half (2026-H1)"), "{period}: {err}");
    }
    let (_, err) = c.expect(2, &["report", "--partner", "NL", "--period", "2026", "--framework", "OECD"]);
    assert!(err.contains("use EU, IEA or NATO"), "{err}");
    let (_, err) = c.expect(2, &["report", "--partner", "NO", "--period", "2026"]);
    assert!(err.contains("not a member of EU"), "{err}");
    let (_, err) = c.expect(2, &["report", "--partner", "NL", "--period", "2026", "--materials", "shiny"]);
    assert!(err.contains("use strategic, critical or all"), "{err}");
    // A withholding of an unknown lot is a rejection (exit 1), not a usage error.
    let (_, err) = c.expect(1, &["register", "withhold", "--party", "nl-mod", "--lot", "nope", "--reason", "x"]);
    assert!(err.contains("unknown lot \"nope\"") && err.contains("[unknown_reference]"), "{err}");
}

/// `report --submit` against a real nats-server with the ledger and projector services: the
/// projector service builds and publishes revision 1, nothing when unchanged (even after
/// unrelated records), revision 2 after a back-dated correction; the stream holds the two
/// JSON reports with their ids, periods and revisions.
#[test]
fn submit_publishes_numbered_revisions_to_jetstream() {
    let server = stockpile_tests::nats::NatsServer::start();
    let url = server.url();
    let services = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (ledger_dir, projector_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger_config = stockpile_ledger::service::ServiceConfig::new(url.clone(), ledger_dir.path());
    services.spawn(stockpile_ledger::service::run(ledger_config, std::future::pending()));
    let projector_config = stockpile_projector::service::ProjectorConfig::new(url.clone(), projector_dir.path());
    services.spawn(stockpile_projector::service::run(projector_config, std::future::pending()));
    services.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while client.request("$SRV.PING.stockpile-ledger", "".into()).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "the ledger service did not come up");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let c = scenario_over(Some(url.clone()));
    let submit = ["report", "--partner", "NL", "--period", "2026-Q1", "--submit"];
    let first = c.ok(&submit);
    assert!(first.contains("as revision 1 of 2026-Q1 on stockpile.v1.reports.EU.NL"), "{first}");
    let again = c.ok(&submit);
    assert!(again.contains("unchanged: revision 1 of 2026-Q1"), "{again}");
    // A movement after the period changes the cut but not the body: still unchanged.
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
        "sale",
        "--recipient",
        "x",
        "--occurred-at",
        "2026-05-01",
    ]);
    assert!(c.ok(&submit).contains("unchanged: revision 1"));
    // A back-dated correction into Q1 makes revision 2.
    c.ok(&[
        "adjust",
        "--lot",
        "co-1",
        "--party",
        "nl-mod",
        "--at",
        "nl-depot",
        "--decrease",
        "100 kg",
        "--reason",
        "stock_take",
        "--note",
        "recount",
        "--occurred-at",
        "2026-01-20",
    ]);
    let second = c.ok(&submit);
    assert!(second.contains("as revision 2 of 2026-Q1"), "{second}");
    // It names what changed: the stock of cobalt, 7.5 t -> 7.4 t.
    assert!(second.contains("changed /materials/cobalt/stock/gross_g: 7500000 -> 7400000"), "{second}");
    // --submit needs the service: a local --data directory's figures are never submitted.
    let local = Cli { dir: tempfile::tempdir().unwrap(), nats: None };
    let (_, err) = local.expect(2, &["report", "--partner", "NL", "--period", "2026-Q1", "--submit"]);
    assert!(err.contains("pass --nats URL") && err.contains("never submitted"), "{err}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("STOCKPILE_REPORTS").await.expect("stream exists");
        let mut bodies = Vec::new();
        for seq in 1..=2 {
            let m = stream.get_raw_message(seq).await.expect("message");
            let h = |n: &str| m.headers.get(n).map(|v| v.as_str().to_string());
            let report: serde_json::Value = serde_json::from_slice(&m.payload).expect("report JSON");
            assert_eq!(m.subject.as_str(), "stockpile.v1.reports.EU.NL");
            let msg_id = m.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str());
            // JetStream deduplicates by report id and revision (docs/PARTNERS.md, "Reports").
            let expected = format!("{}.r{seq}", report["header"]["report_id"].as_str().expect("a report id"));
            assert_eq!(msg_id, Some(expected.as_str()), "{:?}", m.headers);
            assert_eq!(h("Stockpile-Revision"), Some(seq.to_string()));
            assert_eq!(h("Stockpile-Period").as_deref(), Some("2026-Q1"));
            bodies.push(report);
        }
        assert!(stream.get_raw_message(3).await.is_err(), "two revisions, nothing more");
        let second = stream.get_raw_message(2).await.expect("revision 2");
        let h = |n: &str| second.headers.get(n).map(|v| v.as_str().to_string()).unwrap_or_default();
        assert_eq!(h("Stockpile-Supersedes"), bodies[0]["header"]["report_id"].as_str().unwrap());
        assert!(
            h("Stockpile-Changes").contains("/materials/cobalt/stock/gross_g: 7500000 -> 7400000"),
            "{:?}",
            second.headers
        );
        let gross = |r: &serde_json::Value| r["body"]["materials"][0]["stock"]["gross_g"].as_i64();
        assert_eq!((gross(&bodies[0]), gross(&bodies[1])), (Some(7_500_000), Some(7_400_000)));
        assert_ne!(bodies[0]["header"]["body_sha256"], bodies[1]["header"]["body_sha256"]);
        assert_eq!(bodies[0]["header"]["provisional"], false, "2026-Q1 ended before the ledger's records");
    });

    // A period that has not ended by ledger time: refused without --provisional, nothing sent.
    let future = ["report", "--partner", "NL", "--period", "2199", "--submit"];
    let (_, err) = c.expect(2, &future);
    assert!(err.contains("is provisional: period 2199 has not ended") && err.contains("pass --provisional"), "{err}");
    let sent = c.ok(&[&future[..], &["--provisional"]].concat());
    assert!(sent.contains("(provisional: the period has not ended) as revision 1 of 2199"), "{sent}");
    let (_, err) = local.expect(2, &["report", "--partner", "NL", "--period", "2199", "--provisional"]);
    assert!(err.contains("--submit"), "--provisional only goes with --submit: {err}");
    runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let stream = async_nats::jetstream::new(client).get_stream("STOCKPILE_REPORTS").await.expect("stream");
        let m = stream.get_raw_message(3).await.expect("the provisional report, after the two revisions");
        let report: serde_json::Value = serde_json::from_slice(&m.payload).expect("report JSON");
        assert_eq!(
            (report["header"]["period"].as_str(), &report["header"]["provisional"]),
            (Some("2199"), &true.into())
        );
    });
}
