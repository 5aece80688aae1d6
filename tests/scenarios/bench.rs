//! `stockpile bench` with tiny sizes on the embedded scenarios: the JSON report has the
//! documented shape and every figure is positive. No speed is asserted: a slow machine must
//! never fail a test.

use stockpile_tests::bins::stockpile_in;

/// Scenarios that need no server: the machine's primitives, appends, the history and
/// everything over it, raw sled.
const EMBEDDED: [&str; 8] = ["machine", "append", "history", "replay", "audit", "catch-up", "as-of", "sled"];

#[test]
fn bench_reports_positive_figures_for_the_embedded_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let work = work.to_str().unwrap();
    let mut args = vec!["--format", "json", "bench"];
    args.extend(EMBEDDED);
    args.extend(["--events", "40", "--clients", "1,4", "--history", "300", "--seconds", "120", "--work", work]);
    let out = stockpile_in(dir.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stockpile {args:?}\nstderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench prints JSON");

    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(report["settings"]["events"], 40);
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let names: Vec<&str> = scenarios.iter().map(|s| s["scenario"].as_str().unwrap()).collect();
    assert_eq!(names, EMBEDDED, "every scenario asked for, history before what runs over it");
    for s in scenarios {
        assert!(s.get("error").is_none(), "{s}");
        assert!(s["peak_rss_kib"].as_u64().unwrap() > 0, "each scenario has its own peak: {s}");
        let figures = s["figures"].as_array().unwrap();
        assert!(!figures.is_empty(), "{s}");
        for f in figures {
            assert_eq!(f["status"], "measured", "{f}");
            assert!(f["events"].as_u64().unwrap() > 0, "{f}");
            let positive = match (f.get("per_second"), f.get("latency")) {
                (Some(rate), None) => rate.as_f64().unwrap() > 0.0,
                (None, Some(l)) => l["max_ms"].as_f64().unwrap() > 0.0 && l["p99_ms"].as_f64().unwrap() >= 0.0,
                _ => false,
            };
            assert!(positive, "a rate or a latency, positive: {f}");
        }
    }
    let machine: Vec<&str> =
        scenarios[0]["figures"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    let primitives =
        ["ed25519", "ed25519-batch", "sha256-link", "sha256-record", "fdatasync"].map(|p| format!("machine-{p}"));
    assert_eq!(machine, primitives, "each primitive the targets were set against, measured");
    let appends: Vec<u64> =
        scenarios[1]["figures"].as_array().unwrap().iter().map(|f| f["clients"].as_u64().unwrap()).collect();
    assert_eq!(appends, [1, 4], "one append figure per client count");
    assert!(report["ratios"].as_array().unwrap().iter().all(|r| r["ratio"].as_f64().unwrap() > 0.0));
    let targets = report["targets"].as_array().unwrap();
    assert!(targets.iter().all(|t| t["target"].is_string() && (t["met"].is_boolean() || t["met"].is_null())));
}

#[test]
fn bench_refuses_bad_arguments_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["bench", "append", "--clients", "0"],
        vec!["bench", "append", "--events", "2", "--clients", "4"],
        vec!["bench", "append", "--seconds", "0"],
        vec!["--format", "csv", "bench", "append"],
        vec!["bench", "no-such-scenario"],
    ] {
        let out = stockpile_in(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "stockpile {args:?}\nstderr: {stderr}");
        assert!(!stderr.trim().is_empty(), "says what is wrong: {args:?}");
    }
}

/// The scenarios over NATS, tiny: append-nats on one account, on the accounts configuration
/// `stockpile nats-config` writes and with `--replicate` (the report sets each beside the
/// first as ratios at each client count), on a three-node cluster without and with
/// `--replicate` (the second beside the first), cosign over a generated history, and the
/// proof flood.
#[test]
fn bench_runs_the_nats_scenarios_on_one_account_and_on_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let nats = stockpile_tests::nats::nats_server_bin();
    let args = [
        "--format",
        "json",
        "bench",
        "append-nats",
        "append-nats-accounts",
        "append-nats-replicated",
        "append-nats-cluster",
        "append-nats-cluster-replicated",
        "cosign",
        "proof-flood",
        "--events",
        "40",
        "--clients",
        "1,4",
        "--history",
        "300",
        "--seconds",
        "120",
        "--work",
        work.to_str().unwrap(),
    ];
    let out = std::process::Command::new(stockpile_tests::bins::binary("stockpile"))
        .args(["--data", dir.path().join("data").to_str().unwrap()])
        .args(args)
        .env("NO_COLOR", "1")
        .env("STOCKPILE_BENCH_NATS_SERVER", &nats)
        .output()
        .expect("run stockpile");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stockpile {args:?}\nstderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench prints JSON");
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let kinds = |i: usize| -> Vec<String> {
        let figures = scenarios[i]["figures"].as_array().unwrap();
        for f in figures {
            assert_eq!(f["status"], "measured", "{f}");
            assert!(f["events"].as_u64().unwrap() > 0, "{f}");
        }
        figures.iter().map(|f| f["kind"].as_str().unwrap().to_string()).collect()
    };
    let four = |a: &str, b: &str| vec![a.to_string(), a.to_string(), b.to_string(), b.to_string()];
    assert_eq!(kinds(0), four("append-nats", "append-nats-batched"));
    assert_eq!(kinds(1), four("append-nats-accounts", "append-nats-accounts-batched"));
    assert_eq!(kinds(2), four("append-nats-replicated", "append-nats-replicated-batched"));
    assert_eq!(kinds(3), four("append-nats-cluster", "append-nats-cluster-batched"));
    assert_eq!(kinds(4), four("append-nats-cluster-replicated", "append-nats-cluster-replicated-batched"));
    for f in [&scenarios[3]["figures"][0], &scenarios[4]["figures"][0]] {
        assert!(f["note"].as_str().unwrap().contains("3-node cluster, streams R3"), "{f}");
    }
    assert_eq!(kinds(5), ["cosign"]);
    assert!(
        scenarios[5]["figures"][0]["note"].as_str().unwrap().contains("generated history of 3"),
        "cosign runs over the generated history: {}",
        scenarios[5]["figures"][0]
    );
    assert_eq!(kinds(6), ["proof-flood-append", "proof-flood-proofs", "proof-flood-recovery"]);
    // One ratio of each set-up over its reference per client count and batch size.
    let ratios: Vec<(String, String, u64)> = report["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["ours"].as_str().unwrap().into(), r["baseline"].as_str().unwrap().into(), r["clients"].as_u64().unwrap())
        })
        .collect();
    for (ours, single) in [
        ("append-nats-accounts", "append-nats"),
        ("append-nats-accounts-batched", "append-nats-batched"),
        ("append-nats-replicated", "append-nats"),
        ("append-nats-replicated-batched", "append-nats-batched"),
        ("append-nats-cluster-replicated", "append-nats-cluster"),
        ("append-nats-cluster-replicated-batched", "append-nats-cluster-batched"),
    ] {
        for clients in [1, 4] {
            assert!(
                ratios.contains(&(ours.to_string(), single.to_string(), clients)),
                "{ours} over {single} at {clients} clients in {ratios:?}"
            );
        }
    }
}
