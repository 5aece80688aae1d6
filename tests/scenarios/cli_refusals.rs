//! The `stockpile` binary over NATS as users of the configuration `stockpile nats-config`
//! writes: what the server refuses, or what nobody answers, ends at once with a message that
//! names the subject, the user and what to do — not after the 30 s request timeout.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use stockpile_ledger::service::access::Identity;
use stockpile_ledger::service::{self as ledger_service, ServiceConfig};
use stockpile_tests::bins::{binary, nats_config};
use stockpile_tests::nats::NatsServer;
use tokio::sync::oneshot;

/// A refused or unanswered call must end well under the CLI's 30 s request timeout. Generous
/// for a loaded machine (the process start and the connection count too); a call that waits
/// for the timeout is far above it.
const FAST: Duration = Duration::from_secs(5);

/// Longest wait for the ledger service to come up or stop.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(60);

/// `stockpile --nats URL --nats-nkey <conf>/users/<user>.nk ARGS`, and how long it took.
fn as_user(dir: &Path, url: &str, conf: &Path, user: &str, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(binary("stockpile"))
        .arg("--keys")
        .arg(dir.join("keys"))
        .args(["--nats", url, "--nats-nkey"])
        .arg(conf.join("users").join(format!("{user}.nk")))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .output()
        .expect("run stockpile");
    (out, started.elapsed())
}

/// Runs `args` as `user`; it must fail with exit 2, within [`FAST`], saying all of `expected`.
fn fails_fast(dir: &Path, url: &str, conf: &Path, user: &str, args: &[&str], expected: &[&str]) {
    let (out, took) = as_user(dir, url, conf, user, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{user} {args:?}: {stderr}");
    assert!(took < FAST, "{user} {args:?} took {took:?}, not well under the request timeout: {stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{user} {args:?}: the message says {text:?}: {stderr}");
    }
}

#[test]
fn refused_and_unanswered_calls_end_at_once_naming_the_subject_and_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = nats_config(dir.path(), "NL,DE");
    let nats = NatsServer::start_with_config(&conf.join("nats-server.conf"));
    let url = nats.url();

    // The ledger as its own user, so permitted calls are answered; no projector.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut config = ServiceConfig::new(url.clone(), dir.path().join("ledger"));
    config.identity = Some(Identity::from_file(&conf.join("users/ledger.nk")).expect("ledger seed"));
    config.publisher_identity =
        Some(Identity::from_file(&conf.join("users/ledger-publisher.nk")).expect("ledger-publisher seed"));
    let (stop, stopped) = oneshot::channel::<()>();
    let ledger = runtime.spawn(ledger_service::run(config, async {
        let _ = stopped.await;
    }));
    // Until the ledger answers `$SRV.PING` (as ADMIN, who imports it), its streams may not
    // exist yet, and on 2.9 a direct get of a stream that does not exist waits for the timeout.
    let started = Instant::now();
    while !String::from_utf8_lossy(&as_user(dir.path(), &url, &conf, "admin", &["services"]).0.stdout)
        .contains(ledger_service::subjects::SERVICE_NAME)
    {
        assert!(started.elapsed() < SERVICE_TIMEOUT, "the ledger does not answer $SRV.PING");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The refusals below are the server's own (permissions), answered whether or not a
    // service runs. (Across accounts, nats-server 2.9 does not report "no responders" for an
    // imported service nobody serves: that call waits for the CLI's timeout.)
    // A partner may not read the log: `list lots` folds it over `ledger.range`.
    let nl = ["--nats-partner", "NL"];
    let refused_range = "the NATS server refused user partner-NL permission to publish to stockpile.v1.ledger.range";
    let lots = [&nl[..], &["list", "lots"]].concat();
    fails_fast(dir.path(), &url, &conf, "partner-NL", &lots, &[refused_range, "follows its own feed"]);
    // Nor make the ledger sign a checkpoint: `audit prove` then takes the latest published
    // one (a direct get its account imports), and says so when there is none yet.
    let prove = [&nl[..], &["audit", "prove", "--seq", "1"]].concat();
    fails_fast(dir.path(), &url, &conf, "partner-NL", &prove, &["has published no checkpoint yet"]);
    // Nor watch another partner's feed: the subscription is refused, and the watch ends.
    let watch = [&nl[..], &["watch", "DE.>"]].concat();
    let refused_feed = "refused user partner-NL permission to subscribe to stockpile.v1.feed.DE.>";
    fails_fast(dir.path(), &url, &conf, "partner-NL", &watch, &[refused_feed]);

    let _ = stop.send(());
    runtime.block_on(async {
        let stopped = tokio::time::timeout(SERVICE_TIMEOUT, ledger).await.expect("the ledger stops in time");
        stopped.expect("no panic").expect("the ledger stops cleanly");
    });
}

/// On nats-server 2.10 and later, a request to an imported service that nobody serves gets the
/// server's "no responders" at once, across accounts too (2.9 lets it wait for the timeout:
/// measured 30.0 s on 2.9, 0.01 s on 2.10.26 and 2.15.1). With no services running, a partner's
/// and the Commission's calls end at once naming the service to start.
#[test]
fn on_nats_server_2_10_an_unserved_import_is_answered_no_responders_at_once() {
    let bin = stockpile_tests::nats::newer_nats_server_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = nats_config(dir.path(), "NL");
    let nats = NatsServer::start_with_config_using(&bin, &conf.join("nats-server.conf"));
    let url = nats.url();
    let nl = ["--nats-partner", "NL"];
    let holdings = [&nl[..], &["holdings"]].concat();
    let unserved = "no projector answers on stockpile.v1.holdings.query.NL";
    fails_fast(dir.path(), &url, &conf, "partner-NL", &holdings, &[unserved, "is it running?"]);
    let report = [&nl[..], &["report", "--partner", "NL", "--period", "2026-Q1"]].concat();
    fails_fast(dir.path(), &url, &conf, "partner-NL", &report, &["stockpile.v1.projector.report.NL"]);
    fails_fast(
        dir.path(),
        &url,
        &conf,
        "commission",
        &["holdings"],
        &["no projector answers on stockpile.v1.holdings.query"],
    );
}
