//! Reports built and submitted by the projector service, and the Commission's intake, through
//! the real `stockpile` binary against a nats-server with the ledger and projector services
//! running in this process: three partners' commands posted, their 2026-Q1 reports built and
//! submitted over NATS (what is published is the service's cut: its seq and chain head), a
//! back-dated event yields revision 2 with its changes, and `reports list|show|diff|missing|
//! aggregate` give the expected figures. A report whose chain head is not in the log is
//! refused with the reason and never summed; `report --submit` never publishes local figures.

use async_nats::header::HeaderMap;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use stockpile_ledger::service::subjects::{PROJECTOR_SERVICE_NAME, SERVICE_NAME};
use stockpile_ledger::service::{self as ledger_service, ServiceConfig};
use stockpile_projector::service::{self as projector_service, ProjectorConfig};
use stockpile_tests::bins::binary;
use stockpile_tests::nats::NatsServer;
use tokio::sync::oneshot;

/// Longest wait for a service to come up or stop.
const WAIT: Duration = Duration::from_secs(60);

fn stockpile(dir: &Path, nats: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(binary("stockpile"));
    cmd.arg("--keys").arg(dir.join("keys")).arg("--data").arg(dir.join("data"));
    if let Some(url) = nats {
        cmd.args(["--nats", url]);
    }
    cmd.args(args).env("NO_COLOR", "1").env_remove("STOCKPILE_NATS_URL").output().expect("run stockpile")
}

fn expect(dir: &Path, nats: Option<&str>, code: i32, args: &[&str]) -> (String, String) {
    let out = stockpile(dir, nats, args);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert_eq!(out.status.code(), Some(code), "stockpile {args:?}\nstdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

fn json(dir: &Path, url: &str, args: &[&str]) -> Value {
    let out = expect(dir, Some(url), 0, &[&["--format", "json"], args].concat()).0;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

const T: i64 = 1_000_000;

#[test]
fn partners_submit_through_the_service_and_the_commission_lists_checks_and_sums_them() {
    let nats = NatsServer::start();
    let url = nats.url();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (ledger_dir, projector_dir, cli) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (stop_ledger, ledger_stopped) = oneshot::channel::<()>();
    let (stop_projector, projector_stopped) = oneshot::channel::<()>();
    let ledger = runtime.spawn(ledger_service::run(ServiceConfig::new(url.clone(), ledger_dir.path()), async {
        let _ = ledger_stopped.await;
    }));
    let projector =
        runtime.spawn(projector_service::run(ProjectorConfig::new(url.clone(), projector_dir.path()), async {
            let _ = projector_stopped.await;
        }));
    let client = runtime.block_on(async_nats::connect(url.clone())).expect("connect");
    // Both services register as micro services; the projector lists its seven endpoints.
    for name in [SERVICE_NAME, PROJECTOR_SERVICE_NAME] {
        let info = wait_for(&runtime, &client, &format!("$SRV.INFO.{name}"));
        assert_eq!(info["name"], name, "{info}");
        if name == PROJECTOR_SERVICE_NAME {
            let endpoints: Vec<&str> =
                info["endpoints"].as_array().unwrap().iter().map(|e| e["subject"].as_str().unwrap()).collect();
            assert_eq!(endpoints.len(), 7, "{endpoints:?}");
            assert!(endpoints.contains(&"stockpile.v1.projector.submit.*"), "{endpoints:?}");
        }
    }

    let dir = cli.path();
    let run = |args: &[&str]| expect(dir, Some(&url), 0, args).0;
    run(&["init", "--ledger", "test"]);
    // Three partners, 10 t, 20 t and 30 t of cobalt at 50 % acquired in 2026-Q1.
    for (i, partner) in ["NL", "DE", "FR"].into_iter().enumerate() {
        let party = format!("{}-gov", partner.to_lowercase());
        let key = format!("{party}-ops");
        run(&[
            "register",
            "party",
            &party,
            "--partner",
            partner,
            "--name",
            partner,
            "--holder-type",
            "public_authority",
        ]);
        run(&["keys", "generate", "--id", &key, "--party", &party]);
        run(&["register", "key", &key]);
        let quantity = format!("{} t", 10 * (i + 1));
        #[rustfmt::skip]
        run(&["acquire", "--lot", &format!("co-{partner}"), "--material", "cobalt", "--form", "metal", "--purity",
              "50%", "--origin", "CD", "--party", &party, "--quantity", &quantity, "--occurred-at", "2026-01-10"]);
    }

    // Registered 2025 figures: NL and DE their consumption, NL alone its net imports; FR none.
    for (kind, partner, quantity) in
        [("consumption", "NL", "100 t"), ("consumption", "DE", "300 t"), ("net-imports", "NL", "73 t")]
    {
        #[rustfmt::skip]
        run(&["register", kind, "--partner", partner, "--material", "cobalt", "--year", "2025", "--quantity",
              quantity, "--occurred-at", "2026-01-15"]);
    }

    // `report` over NATS: built by the service, no local data.
    let nl = json(dir, &url, &["report", "--partner", "NL", "--period", "2026-Q1"]);
    let cobalt = |r: &Value| {
        r["body"]["materials"].as_array().unwrap().iter().find(|m| m["material"] == "cobalt").cloned().unwrap()
    };
    assert_eq!(cobalt(&nl)["stock"]["gross_g"], 10 * T, "{nl}");
    assert_eq!(nl["header"]["provisional"], false);

    // Submitted through the service: the cut is the ledger's head, named in the answer.
    for partner in ["NL", "DE", "FR"] {
        let out = run(&["report", "--submit", "--partner", partner, "--period", "2026-Q1"]);
        assert!(out.contains("as revision 1 of 2026-Q1"), "{out}");
        assert!(out.contains(&format!("chain head {}", nl["header"]["chain_head"].as_str().unwrap())), "{out}");
    }
    let again = run(&["report", "--submit", "--partner", "NL", "--period", "2026-Q1"]);
    assert!(again.starts_with("unchanged: revision 1"), "{again}");

    // A back-dated acquisition changes NL's closed quarter: revision 2, with its changes.
    #[rustfmt::skip]
    run(&["acquire", "--lot", "co-NL-2", "--material", "cobalt", "--form", "metal", "--purity", "50%", "--origin",
          "CD", "--party", "nl-gov", "--quantity", "5 t", "--occurred-at", "2026-02-15"]);
    let second = run(&["report", "--submit", "--partner", "NL", "--period", "2026-Q1"]);
    assert!(second.contains("as revision 2 of 2026-Q1"), "{second}");
    assert!(second.contains("/materials/cobalt/stock/gross_g: 10000000 -> 15000000"), "{second}");

    // Partner scope is the subject's, never the body's.
    let ask = |subject: &str, body: Value| -> Value {
        runtime.block_on(async {
            let reply = client.request(subject.to_string(), serde_json::to_vec(&body).unwrap().into()).await.unwrap();
            serde_json::from_slice(&reply.payload).unwrap()
        })
    };
    let code = |reply: &Value| reply["error"]["code"].as_str().unwrap_or("").to_string();
    let all = ask("stockpile.v1.holdings.query", serde_json::json!({}));
    assert_eq!(all["total"]["gross_g"], 65 * T, "{all}");
    let own = ask("stockpile.v1.holdings.query.NL", serde_json::json!({}));
    assert_eq!(own["total"]["gross_g"], 15 * T, "NL's holdings only: {own}");
    assert_eq!(code(&ask("stockpile.v1.holdings.query.NL", serde_json::json!({"partner": "DE"}))), "wrong_partner");
    let history = ask("stockpile.v1.history.query.NL", serde_json::json!({}));
    let rows = history["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "NL's two acquisitions: {history}");
    assert!(rows.iter().all(|r| r["partner"] == "NL"), "{history}");
    let everyone = ask("stockpile.v1.history.query", serde_json::json!({"limit": 2}));
    assert_eq!(
        (everyone["rows"].as_array().unwrap().len(), everyone["next"].clone()),
        (2, Value::from(2)),
        "{everyone}"
    );
    let as_de = serde_json::json!({"partner": "DE", "period": "2026-Q1"});
    assert_eq!(code(&ask("stockpile.v1.projector.report.NL", as_de)), "wrong_partner");
    assert_eq!(
        code(&ask("stockpile.v1.projector.submit.XX", serde_json::json!({"period": "2026-Q1"}))),
        "unknown_partner"
    );
    let huge = serde_json::json!({"period": "2026-Q1", "pad": "x".repeat(70_000)});
    assert_eq!(code(&ask("stockpile.v1.projector.report.NL", huge)), "request_too_large");

    // `--submit` never publishes a local data directory's figures.
    let (_, err) = expect(dir, None, 2, &["report", "--submit", "--partner", "NL", "--period", "2026-Q1"]);
    assert!(err.contains("pass --nats URL"), "{err}");

    // The intake: four revisions, all checked against the ledger.
    let list = json(dir, &url, &["reports", "list", "--period", "2026-Q1"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4, "{list:?}");
    assert!(list.iter().all(|a| a["check"]["status"] == "accepted"), "{list:?}");
    let nl1 = list.iter().find(|a| a["partner"] == "NL" && a["revision"] == 1).unwrap();
    let nl1_id = nl1["report_id"].as_str().unwrap();
    // A second look checks against the checkpoint the first one got: the ledger signs no more.
    let checkpoints = || {
        runtime.block_on(async {
            let js = async_nats::jetstream::new(client.clone());
            let mut stream = js.get_stream(ledger_service::subjects::CHECKPOINTS_STREAM).await.unwrap();
            stream.info().await.unwrap().state.messages
        })
    };
    let signed = checkpoints();
    let only_nl = json(dir, &url, &["reports", "list", "--partner", "NL"]);
    assert_eq!(only_nl.as_array().unwrap().len(), 2);
    assert!(only_nl.as_array().unwrap().iter().all(|a| a["check"]["status"] == "accepted"), "{only_nl}");
    assert_eq!(checkpoints(), signed, "reports list made the ledger sign another checkpoint");

    let shown = json(dir, &url, &["reports", "show", nl1_id, "--revision", "2"]);
    assert_eq!(cobalt(&shown)["stock"]["gross_g"], 15 * T);
    let first = json(dir, &url, &["reports", "show", nl1_id]);
    assert_eq!(cobalt(&first)["stock"]["gross_g"], 10 * T);

    let diff = json(dir, &url, &["reports", "diff", nl1_id, "--from", "1", "--to", "2"]);
    let changes: Vec<&str> = diff["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(changes.contains(&"/materials/cobalt/stock/gross_g: 10000000 -> 15000000"), "{changes:?}");

    let missing = json(dir, &url, &["reports", "missing", "--period", "2026-Q1"]);
    let missing: Vec<&str> = missing.as_array().unwrap().iter().map(|m| m["partner"].as_str().unwrap()).collect();
    assert!(missing.contains(&"BE") && missing.contains(&"EL"), "{missing:?}");
    assert!(!missing.iter().any(|p| ["NL", "DE", "FR"].contains(p)), "{missing:?}");

    let chart = dir.join("chart.svg");
    let total = json(dir, &url, &["reports", "aggregate", "--period", "2026-Q1", "--chart", chart.to_str().unwrap()]);
    check_aggregate(&total, 15, "");
    let schema = crate::schemas::validator("v1/reports-aggregate.schema.json");
    crate::schemas::assert_valid(&schema, &total, "reports aggregate --format json");
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("<svg"), "a chart was written");
    // Coverage counts only the States with a registered figure, on both sides: NL 15 t and
    // DE 20 t of consumption 100 t + 300 t = 8.75 %; NL's 15 t against 73 t of net imports
    // over 365 days (2025) = 75.0 days. FR (30 t, no figure) is named, not counted.
    let cobalt = total["materials"].as_array().unwrap().iter().find(|m| m["material"] == "cobalt").unwrap();
    assert_eq!(cobalt["consumption"]["value"], "8.75", "{cobalt}");
    assert_eq!(cobalt["consumption"]["states"], serde_json::json!(["DE", "NL"]), "{cobalt}");
    assert_eq!(cobalt["consumption"]["states_without_figure"], serde_json::json!(["FR"]), "{cobalt}");
    assert_eq!(
        (cobalt["consumption"]["stock_g"].clone(), cobalt["consumption"]["figure_g"].clone()),
        (Value::from(35 * T), Value::from(400 * T))
    );
    assert_eq!(cobalt["days_of_cover"]["value"], "75.0", "{cobalt}");
    assert_eq!(cobalt["days_of_cover"]["states"], serde_json::json!(["NL"]), "{cobalt}");
    let table = expect(dir, Some(&url), 0, &["reports", "aggregate", "--period", "2026-Q1"]).0;
    assert!(
        table.lines().any(|l| l.contains("total") && l.contains("8.75 (2 of 3)") && l.contains("75.0 (1 of 3)")),
        "{table}"
    );
    // The same chart as PNG: a real PNG image of the SVG's size.
    let png = dir.join("chart.png");
    expect(dir, Some(&url), 0, &["reports", "aggregate", "--period", "2026-Q1", "--chart", png.to_str().unwrap()]);
    let png = std::fs::read(&png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    let dimension = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    let attribute = |name: &str| -> u32 {
        let at = svg.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        svg[at..].split('"').next().unwrap().parse().unwrap()
    };
    assert_eq!((dimension(16), dimension(20)), (attribute("width"), attribute("height")), "the PNG is the SVG's size");

    // A report whose chain head is not in the log: refused with the reason, never summed.
    let mut forged = shown.clone();
    forged["header"]["chain_head"] = Value::String("00".repeat(32));
    forged["header"]["report_id"] = Value::String("EU-NL-2026-Q1-forged".into());
    forged["body"]["materials"][0]["stock"]["gross_g"] = Value::from(99 * T);
    let body = stockpile_ledger::canonical::to_vec(&forged["body"]).unwrap();
    forged["header"]["body_sha256"] =
        Value::String(stockpile_ledger::canonical::hex(&stockpile_ledger::canonical::sha256(&body)));
    runtime.block_on(async {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", "forged");
        headers.insert("Stockpile-Period", "2026-Q1");
        headers.insert("Stockpile-Revision", "3");
        let js = async_nats::jetstream::new(client.clone());
        js.publish_with_headers("stockpile.v1.reports.EU.NL", headers, serde_json::to_vec(&forged).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let list = json(dir, &url, &["reports", "list", "--partner", "NL"]);
    let refused = list.as_array().unwrap().iter().find(|a| a["revision"] == 3).expect("the forged revision is listed");
    assert_eq!(refused["check"]["status"], "refused", "{refused}");
    assert!(refused["check"]["reason"].as_str().unwrap().contains("is not in the log"), "{refused}");
    let total = json(dir, &url, &["reports", "aggregate", "--period", "2026-Q1"]);
    check_aggregate(&total, 15, "the forged revision 3 is not summed");

    let _ = stop_projector.send(());
    let _ = stop_ledger.send(());
    runtime.block_on(async {
        tokio::time::timeout(WAIT, projector).await.expect("stops").expect("no panic").expect("clean");
        tokio::time::timeout(WAIT, ledger).await.expect("stops").expect("no panic").expect("clean");
    });
}

/// Cobalt summed over NL (`nl_t` tonnes, revision 2), DE 20 t and FR 30 t, shares of the total.
fn check_aggregate(total: &Value, nl_t: i64, why: &str) {
    let cobalt = total["materials"].as_array().unwrap().iter().find(|m| m["material"] == "cobalt").unwrap();
    let sum = nl_t + 20 + 30;
    assert_eq!(cobalt["gross_g"], sum * T, "{why}: {total}");
    assert_eq!(cobalt["contained_g"], sum * T / 2, "{why}: {total}");
    let nl = cobalt["shares"].as_array().unwrap().iter().find(|s| s["partner"] == "NL").unwrap();
    assert_eq!(nl["revision"], 2, "{why}: {total}");
    assert_eq!(nl["share_pct"], stockpile_projector::intake::percent(nl_t, sum), "{why}");
    assert_eq!(total["sources"].as_array().unwrap().len(), 3, "{why}: {total}");
}

/// The reply to `subject` once a service answers it, as JSON.
fn wait_for(runtime: &tokio::runtime::Runtime, client: &async_nats::Client, subject: &str) -> Value {
    runtime.block_on(async {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Ok(reply) = client.request(subject.to_string(), "".into()).await {
                return serde_json::from_slice(&reply.payload).expect("JSON");
            }
            assert!(std::time::Instant::now() < deadline, "nobody answers {subject}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}
