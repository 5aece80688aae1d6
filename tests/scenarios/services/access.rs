//! (g) Partner isolation against a real nats-server running the configuration that
//! `stockpile nats-config` writes (the real binary): one NKey user per partner and role.
//! NL reads its own feed and reports and posts its own commands; it cannot subscribe to DE's
//! feed, create a consumer on DE's feed, DE's reports or the complete stream, read the log,
//! post on DE's channel, listen to other users' replies, or post a DE-signed command through
//! its own channel. The auditor reads and cannot append; the Commission reads every report.
//! Every refusal is checked to be the server's permissions violation (or the ledger's
//! `wrong_origin`), not some other failure. The projector service, connected as its own
//! user, follows the stream and answers the auditor's holdings query, which NL may not ask.

use super::projector::{holdings_at, ProjectorTask};
use super::*;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use stockpile_ledger::service::access::{Identity, COMMISSION_CONSUMER};
use stockpile_projector::service::HOLDINGS_QUERY;
use stockpile_projector::{Dimension, HoldingsQuery};
use stockpile_tests::bins::stockpile_in;
use stockpile_tests::nats::NatsServer;
use tokio::sync::mpsc;

/// How long a request the server refuses for permissions is waited on (it is never
/// answered, so each refusal costs this long). Permitted requests wait up to
/// [`REPLY_TIMEOUT`], and permitted JetStream calls are retried ([`js_api`]).
const REFUSED_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for the server's permissions violation after a refused operation.
const VIOLATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a subscription must stay silent to show nothing reached it.
const SILENCE: Duration = Duration::from_millis(500);

/// A client connected as one generated user, with the server errors it was sent.
struct User {
    client: async_nats::Client,
    js: jetstream::Context,
    errors: mpsc::UnboundedReceiver<String>,
}

impl User {
    async fn connect(url: &str, conf: &Path, user: &str) -> User {
        let identity = Identity::from_file(&conf.join("users").join(format!("{user}.nk"))).expect("seed file");
        let (sender, errors) = mpsc::unbounded_channel();
        let options = identity
            .connect_options(async_nats::ConnectOptions::new())
            .request_timeout(Some(REPLY_TIMEOUT))
            .event_callback(move |event| {
                let sender = sender.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = sender.send(e.to_string());
                    }
                }
            });
        let client = options.connect(url).await.unwrap_or_else(|e| panic!("connect as {user}: {e}"));
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REFUSED_REQUEST_TIMEOUT);
        User { js, client, errors }
    }

    /// Waits for the server's permissions violation naming `subject`.
    async fn violation(&mut self, subject: &str) {
        let deadline = tokio::time::Instant::now() + VIOLATION_TIMEOUT;
        loop {
            let error = tokio::time::timeout_at(deadline, self.errors.recv())
                .await
                .unwrap_or_else(|_| panic!("no permissions violation for {subject} within {VIOLATION_TIMEOUT:?}"))
                .expect("the client is alive");
            if error.to_lowercase().contains("permissions violation") && error.contains(subject) {
                return;
            }
        }
    }

    /// A durable pull consumer `name` on `stream` with `filter`, which must be permitted.
    async fn consumer(&self, stream: &str, name: &str, filter: &str) -> pull::Stream {
        js_api("create a permitted consumer", || self.try_consumer(stream, name, filter)).await
    }

    /// A durable pull consumer `name` on `stream` with `filter`, or the error.
    async fn try_consumer(&self, stream: &str, name: &str, filter: &str) -> Result<pull::Stream, String> {
        let config = pull::Config {
            durable_name: Some(name.to_string()),
            filter_subject: filter.to_string(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        let consumer = self.js.create_consumer_on_stream(config, stream).await.map_err(|e| e.to_string())?;
        consumer.messages().await.map_err(|e| e.to_string())
    }

    /// Creating `name` on `stream` with `filter` is refused by the server.
    async fn refused_consumer(&mut self, stream: &str, name: &str, filter: &str) {
        // Bounded here: a refused create is never answered, and the client's own wait is long.
        let created = tokio::time::timeout(REFUSED_REQUEST_TIMEOUT, self.try_consumer(stream, name, filter)).await;
        assert!(!matches!(created, Ok(Ok(_))), "{name} on {stream} with {filter} must be refused");
        self.violation(&format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}")).await;
    }

    /// Publishing a request on `subject` is refused by the server.
    async fn refused_request(&mut self, subject: &str, body: Vec<u8>) {
        let request = async_nats::Request::new().payload(body.into()).timeout(Some(REFUSED_REQUEST_TIMEOUT));
        let answered = self.client.send_request(subject.to_string(), request).await;
        assert!(answered.is_err(), "a request on {subject} must not be answered");
        self.violation(subject).await;
    }
}

/// Reads `count` messages from `messages`, acknowledging each: `(subject, Stockpile-Seq)`.
async fn read(messages: &mut pull::Stream, count: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let message = tokio::time::timeout(REPLY_TIMEOUT, messages.next())
            .await
            .expect("next message in time")
            .expect("the consumer goes on")
            .expect("a message");
        let seq = message.headers.as_ref().and_then(|h| header_value(h, "Stockpile-Seq")).unwrap_or_default();
        out.push((message.subject.to_string(), seq));
        message.ack().await.expect("ack");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_see_and_post_only_their_own_and_auditors_write_nothing() {
    // The configuration, written by the real CLI.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nats");
    let store = dir.path().join("jetstream");
    let args = ["nats-config", "--out", path_str(&conf), "--partners", "NL,DE,BE", "--store-dir", path_str(&store)];
    let written = stockpile_in(dir.path(), &args);
    assert!(written.status.success(), "nats-config: {}", String::from_utf8_lossy(&written.stderr));
    let nats = NatsServer::start_with_config(&conf.join("nats-server.conf"));
    let url = nats.url();

    // The ledger as its own user; the world set up through the embedded handle.
    let mut ledger_config = config(&url);
    ledger_config.identity = Some(Identity::from_file(&conf.join("users/ledger.nk")).expect("ledger seed"));
    let service = InProcess::serve(ledger_config, open_ledger(&dir.path().join("ledger")));
    let mut auditor = User::connect(&url, &conf, "auditor").await;
    wait_until_serving(&auditor.client).await;
    let world = World::new();
    let setup = service.ledger.append(setup_commands(&world), true).await.expect("setup");
    assert!(setup.iter().all(|o| o.seq().is_some()), "setup appends");

    let mut nl = User::connect(&url, &conf, "partner-NL").await;
    let de = User::connect(&url, &conf, "partner-DE").await;
    // NL's live feed, subscribed before anything moves.
    let mut live = nl.client.subscribe("stockpile.v1.feed.NL.>").await.expect("subscribe to the own feed");
    nl.client.flush().await.expect("flush");

    // NL posts its own command on its own channel; DE posts its own. (`acquires` numbers
    // 0, 3, 6 … are NL's, 1, 4, 7 … DE's.)
    let command_of = |i: usize| acquires(&world, i, 1).remove(0);
    let (nl_acquire, de_acquire) = (command_of(0), command_of(1));
    let posted = append_on(&nl.client, &subjects::partner_append_subject("NL"), vec![nl_acquire.clone()]).await;
    assert!(matches!(posted[0], AppendResult::Appended { .. }), "NL posts its own: {posted:?}");
    let posted = append_on(&de.client, &subjects::partner_append_subject("DE"), vec![de_acquire.clone()]).await;
    assert!(matches!(posted[0], AppendResult::Appended { .. }), "DE posts its own: {posted:?}");
    // A transfer NL → DE concerns both.
    let transfer = world.key("nl-covra").sign(command(
        "nl-to-de",
        at("2026-02-02T00:00:00Z"),
        Action::Transfer {
            lot: stockpile_ledger::domain::LotId::new("lot-0"),
            from: holding("nl-covra", "in_transit", Programme::National),
            to: holding("de-rohstoff", "in_transit", Programme::Nato),
            quantity: amount("0.5", Unit::T),
        },
    ));
    let posted = append_on(&nl.client, &subjects::partner_append_subject("NL"), vec![transfer]).await;
    assert!(matches!(posted[0], AppendResult::Appended { .. }), "NL transfers to DE: {posted:?}");

    // A DE-signed command through NL's channel: refused by the ledger, nothing written —
    // not even a resend of one already in the log is confirmed to NL.
    let head = *service.ledger.head().borrow();
    for command in [command_of(7), de_acquire.clone()] {
        let posted = append_on(&nl.client, &subjects::partner_append_subject("NL"), vec![command]).await;
        match &posted[0] {
            AppendResult::Rejected { code, message, .. } => {
                assert_eq!(code, "wrong_origin");
                assert!(message.contains("partner DE") && message.contains("partner NL's channel"), "{message}");
            }
            other => panic!("a DE-signed command through NL's channel must be refused: {other:?}"),
        }
    }
    assert_eq!(*service.ledger.head().borrow(), head, "nothing was written");
    // NL may not use DE's channel, nor the operator's channel, nor read the log.
    let body =
        serde_json::to_vec(&AppendRequest { commands: vec![de_acquire.clone()], atomic: false }).expect("encode");
    nl.refused_request(&subjects::partner_append_subject("DE"), body.clone()).await;
    nl.refused_request(subjects::APPEND, body.clone()).await;
    let range_body = serde_json::to_vec(&RangeRequest { from: 1, to: None, limit: None }).expect("encode");
    nl.refused_request(subjects::RANGE, range_body.clone()).await;

    // NL's feed: its acquire and the transfer, live and through its durable consumer.
    let records = stored_records(&service.ledger);
    let nl_feed: Vec<(String, String)> = expected_messages(&records, true)
        .into_iter()
        .filter(|m| m.partner.as_deref() == Some("NL"))
        .map(|m| (m.subject, m.seq.to_string()))
        .collect();
    let kinds: Vec<&str> = nl_feed.iter().map(|(subject, _)| subject.as_str()).collect();
    assert!(
        kinds.contains(&"stockpile.v1.feed.NL.cobalt.acquire")
            && kinds.contains(&"stockpile.v1.feed.NL.cobalt.transfer")
    );
    let mut durable = nl.consumer(subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.NL.>").await;
    assert_eq!(read(&mut durable, nl_feed.len()).await, nl_feed, "NL's feed: NL's registrations and movements");
    loop {
        let message = tokio::time::timeout(REPLY_TIMEOUT, live.next()).await.expect("live in time").expect("message");
        assert!(message.subject.starts_with("stockpile.v1.feed.NL."), "{}", message.subject);
        if message.subject.as_str() == "stockpile.v1.feed.NL.cobalt.transfer" {
            break;
        }
    }
    // ... and nothing else: not DE's feed (live or durable), not the complete stream.
    let mut spy = nl.client.subscribe("stockpile.v1.feed.DE.>").await.expect("the client sends it");
    nl.violation("stockpile.v1.feed.DE.>").await;
    nl.client.subscribe("stockpile.v1.events.>").await.expect("the client sends it");
    nl.violation("stockpile.v1.events.>").await;
    nl.client.subscribe("_INBOX.>").await.expect("the client sends it");
    nl.violation("_INBOX.>").await;
    nl.refused_consumer(subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.DE.>").await;
    nl.refused_consumer(subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.*.>").await;
    nl.refused_consumer(subjects::FEEDS_STREAM, "DE", "stockpile.v1.feed.DE.>").await;
    nl.refused_consumer(subjects::EVENTS_STREAM, "NL", "stockpile.v1.events.NL.>").await;
    nl.refused_request(&format!("$JS.API.STREAM.MSG.GET.{}", subjects::FEEDS_STREAM), br#"{"seq":1}"#.to_vec()).await;
    let more =
        append_on(&de.client, &subjects::partner_append_subject("DE"), vec![command_of(4), command_of(10)]).await;
    assert!(more.iter().all(|r| matches!(r, AppendResult::Appended { .. })), "DE goes on posting");
    assert!(tokio::time::timeout(SILENCE, spy.next()).await.is_err(), "nothing of DE's reaches NL");
    // DE's own consumer sees the transfer it received.
    let mut de_durable = de.consumer(subjects::FEEDS_STREAM, "DE", "stockpile.v1.feed.DE.>").await;
    let de_count = expected_messages(&stored_records(&service.ledger), true)
        .iter()
        .filter(|m| m.partner.as_deref() == Some("DE"))
        .count();
    let de_feed = read(&mut de_durable, de_count).await;
    assert!(de_feed.iter().any(|(s, _)| s == "stockpile.v1.feed.DE.cobalt.transfer"), "{de_feed:?}");

    // Reports: published by the projector's user; NL reads its own only, the Commission all.
    let projector = User::connect(&url, &conf, "projector").await;
    js_api("create the reports stream", || {
        stockpile_ledger::service::stream::ensure_stream(
            &projector.js,
            stockpile_projector::submit::reports_stream_config(),
        )
    })
    .await;
    for partner in ["NL", "DE"] {
        let subject = format!("stockpile.v1.reports.EU.{partner}");
        let ack =
            projector.js.publish(subject, format!("{{\"partner\":\"{partner}\"}}").into()).await.expect("publish");
        ack.await.expect("stored");
    }
    let mut reports = nl.consumer(subjects::REPORTS_STREAM, "NL", "stockpile.v1.reports.*.NL").await;
    assert_eq!(read(&mut reports, 1).await[0].0, "stockpile.v1.reports.EU.NL");
    nl.refused_consumer(subjects::REPORTS_STREAM, "NL", "stockpile.v1.reports.*.DE").await;
    nl.refused_consumer(subjects::REPORTS_STREAM, "NL", "stockpile.v1.reports.>").await;
    let mut commission = User::connect(&url, &conf, "commission").await;
    let mut intake = commission.consumer(subjects::REPORTS_STREAM, COMMISSION_CONSUMER, "stockpile.v1.reports.>").await;
    let subjects_read: Vec<String> = read(&mut intake, 2).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(subjects_read, ["stockpile.v1.reports.EU.NL", "stockpile.v1.reports.EU.DE"]);
    commission.refused_request(&subjects::partner_append_subject("NL"), body.clone()).await;

    // The auditor reads the log and the streams, and cannot append on any channel.
    assert!(records_via_range(&auditor.client).await == stored_records(&service.ledger), "the auditor reads the log");
    let stream = auditor.js.get_stream(subjects::EVENTS_STREAM).await.expect("stream info");
    let first = stream.get_raw_message(1).await.expect("the auditor reads a message");
    assert!(first.payload.as_ref() == records[0].as_slice());
    auditor.refused_request(subjects::APPEND, body.clone()).await;
    auditor.refused_request(&subjects::partner_append_subject("NL"), body).await;
    auditor.refused_consumer(subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.NL.>").await;
    let head_after = *service.ledger.head().borrow();
    assert_eq!(head_after, head + 2, "only DE's two later acquires were written after the refusals");

    // The projector service as its own user: it consumes the complete stream and answers
    // holdings queries, which the auditor may ask (partners may not).
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let identity = Identity::from_file(&conf.join("users/projector.nk")).expect("projector seed");
    let projector_service = ProjectorTask::run_as(&url, projector_dir.path(), Some(identity));
    let by_party = HoldingsQuery { group_by: vec![Dimension::Party], ..HoldingsQuery::default() };
    let holdings = holdings_at(&auditor.client, &by_party, head_after).await;
    let parties: Vec<&str> =
        holdings.rows.iter().filter_map(|r| r.key.get(Dimension::Party).and_then(|v| v.as_str())).collect();
    assert!(parties.contains(&"nl-covra") && parties.contains(&"de-rohstoff"), "{parties:?}");
    nl.refused_request(HOLDINGS_QUERY, serde_json::to_vec(&by_party).expect("encode")).await;
    projector_service.stop().await;

    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

/// Appends over `subject` (a partner's channel) and returns the results.
async fn append_on(client: &async_nats::Client, subject: &str, commands: Vec<SignedCommand>) -> Vec<AppendResult> {
    let count = commands.len();
    let body = serde_json::to_vec(&AppendRequest { commands, atomic: false }).expect("encode");
    let reply = tokio::time::timeout(REPLY_TIMEOUT, client.request(subject.to_string(), body.into()))
        .await
        .expect("a reply in time")
        .unwrap_or_else(|e| panic!("append on {subject}: {e}"));
    let reply: AppendReply = serde_json::from_slice(&reply.payload)
        .unwrap_or_else(|e| panic!("not an append reply ({e}): {}", String::from_utf8_lossy(&reply.payload)));
    assert_eq!(reply.results.len(), count, "one result per command");
    reply.results
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
