//! (g) Partner isolation against a real nats-server running the configuration that
//! `stockpile nats-config` writes (the real binary): the streams and services in account
//! `STOCKPILE`, every partner, the Commission, the auditor and `ADMIN` accounts of their own
//! that import what they may use. NL reads its own feed and reports (through the consumers
//! the ledger pre-created) and posts its own commands; it cannot subscribe to DE's feed,
//! create or widen a consumer, read the log, post on DE's channel, or post a DE-signed
//! command through its own channel. The auditor reads and cannot append; the Commission reads
//! every report. Every refusal is checked to be the server's permissions violation (or the
//! ledger's `wrong_origin`), not some other failure.
//!
//! The adversarial half: every role sends every request it may send with its reply subject
//! set into each stream's subjects and `stockpile.v1.checkpoints`, JetStream API calls (its
//! consumer's info and next messages, the latest checkpoint) with such replies, and consumer
//! creations with wider filters; afterwards the streams still mirror the log record for
//! record, the checkpoints stream holds only signed checkpoints, and the projector follows.

use super::projector::ProjectorTask;
use super::*;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use std::path::PathBuf;
use stockpile_ledger::audit::Checkpoint;
use stockpile_ledger::service::access::{self, Identity, Import, Role, COMMISSION_CONSUMER};
use stockpile_projector::service::HOLDINGS_QUERY;
use stockpile_projector::HoldingsQuery;
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
    /// The JetStream API prefix this user's account reaches the API under.
    prefix: &'static str,
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
        // Reading accounts reach the imported JetStream API under their own prefix.
        let reader = !matches!(user, "ledger" | "ledger-publisher" | "projector" | "projector-publisher");
        let prefix = if reader { access::JS_IMPORT_PREFIX } else { "$JS.API" };
        let mut js = jetstream::with_prefix(client.clone(), prefix);
        js.set_timeout(REFUSED_REQUEST_TIMEOUT);
        User { js, client, errors, prefix }
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

    /// The pre-created durable pull consumer `name` on `stream`, bound through the account's
    /// imports (its info, its next messages): no stream info, no create.
    async fn bound(&self, stream: &str, name: &str) -> pull::Stream {
        js_api("bind to an imported consumer", || async {
            let consumer: jetstream::consumer::PullConsumer =
                self.js.get_consumer_from_stream(name, stream).await.map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        })
        .await
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
        self.violation(&format!("{}.CONSUMER.CREATE.{stream}.{name}.{filter}", self.prefix)).await;
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

/// A server on the generated configuration and the ledger service on it as its two users.
struct Deployment {
    dir: tempfile::TempDir,
    conf: PathBuf,
    nats: NatsServer,
    service: InProcess,
    url: String,
}

/// The partners of the deployments in these tests.
const PARTNERS: &str = "NL,DE,BE";

impl Deployment {
    async fn start() -> Deployment {
        // The configuration, written by the real CLI.
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("nats");
        let store = dir.path().join("jetstream");
        let args = ["nats-config", "--out", path_str(&conf), "--partners", PARTNERS, "--store-dir", path_str(&store)];
        let written = stockpile_in(dir.path(), &args);
        assert!(written.status.success(), "nats-config: {}", String::from_utf8_lossy(&written.stderr));
        let nats = NatsServer::start_with_config(&conf.join("nats-server.conf"));
        let url = nats.url();
        // The ledger as its responder and its publisher; the world set up through the
        // embedded handle.
        let mut ledger_config = config(&url);
        ledger_config.identity = Some(seed(&conf, "ledger"));
        ledger_config.publisher_identity = Some(seed(&conf, "ledger-publisher"));
        ledger_config.partners = PARTNERS.split(',').map(String::from).collect();
        let service = InProcess::serve(ledger_config, open_ledger(&dir.path().join("ledger")));
        let admin = User::connect(&url, &conf, "admin").await;
        wait_until_serving(&admin.client).await;
        Deployment { dir, conf, nats, service, url }
    }

    async fn user(&self, user: &str) -> User {
        User::connect(&self.url, &self.conf, user).await
    }
}

fn seed(conf: &Path, user: &str) -> Identity {
    Identity::from_file(&conf.join("users").join(format!("{user}.nk"))).expect("seed file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_see_and_post_only_their_own_and_auditors_write_nothing() {
    let deployment = Deployment::start().await;
    let (url, service) = (&deployment.url, &deployment.service);
    let auditor = deployment.user("auditor").await;
    let world = World::new();
    let setup = service.ledger.append(setup_commands(&world), true).await.expect("setup");
    assert!(setup.iter().all(|o| o.seq().is_some()), "setup appends");

    let mut nl = deployment.user("partner-NL").await;
    let de = deployment.user("partner-DE").await;
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

    // A DE-signed command through NL's channel: refused by the ledger, nothing written.
    let head = *service.ledger.head().borrow();
    let posted = append_on(&nl.client, &subjects::partner_append_subject("NL"), vec![command_of(7)]).await;
    match &posted[0] {
        AppendResult::Rejected { code, .. } => assert_eq!(code, "wrong_origin"),
        other => panic!("a DE-signed command through NL's channel must be refused: {other:?}"),
    }
    assert_eq!(*service.ledger.head().borrow(), head, "nothing was written");
    // NL may not use DE's channel, nor the operator's channel, nor read the log, nor make
    // the ledger sign a checkpoint.
    let body =
        serde_json::to_vec(&AppendRequest { commands: vec![de_acquire.clone()], atomic: false }).expect("encode");
    nl.refused_request(&subjects::partner_append_subject("DE"), body.clone()).await;
    nl.refused_request(subjects::APPEND, body.clone()).await;
    let range_body = serde_json::to_vec(&RangeRequest { from: 1, to: None, limit: None }).expect("encode");
    nl.refused_request(subjects::RANGE, range_body.clone()).await;
    nl.refused_request(subjects::CHECKPOINT, Vec::new()).await;

    // NL's feed: its acquire and the transfer, live and through its pre-created consumer.
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
    let mut durable = nl.bound(subjects::FEEDS_STREAM, "NL").await;
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
    nl.refused_consumer(subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.DE.>").await;
    nl.refused_consumer(subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.*.>").await;
    nl.refused_consumer(subjects::FEEDS_STREAM, "DE", "stockpile.v1.feed.DE.>").await;
    nl.refused_consumer(subjects::EVENTS_STREAM, "NL", "stockpile.v1.events.NL.>").await;
    let api = access::JS_IMPORT_PREFIX;
    nl.refused_request(&format!("{api}.STREAM.MSG.GET.{}", subjects::FEEDS_STREAM), br#"{"seq":1}"#.to_vec()).await;
    nl.refused_request(&format!("{api}.CONSUMER.MSG.NEXT.{}.DE", subjects::FEEDS_STREAM), b"{}".to_vec()).await;
    let more =
        append_on(&de.client, &subjects::partner_append_subject("DE"), vec![command_of(4), command_of(10)]).await;
    assert!(more.iter().all(|r| matches!(r, AppendResult::Appended { .. })), "DE goes on posting");
    assert!(tokio::time::timeout(SILENCE, spy.next()).await.is_err(), "nothing of DE's reaches NL");
    // DE's own consumer sees the transfer it received.
    let mut de_durable = de.bound(subjects::FEEDS_STREAM, "DE").await;
    let de_count = expected_messages(&stored_records(&service.ledger), true)
        .iter()
        .filter(|m| m.partner.as_deref() == Some("DE"))
        .count();
    let de_feed = read(&mut de_durable, de_count).await;
    assert!(de_feed.iter().any(|(s, _)| s == "stockpile.v1.feed.DE.cobalt.transfer"), "{de_feed:?}");

    // Reports: published by the projector's publisher; NL reads its own only, the
    // Commission all.
    let projector = deployment.user("projector-publisher").await;
    for partner in ["NL", "DE"] {
        let subject = format!("stockpile.v1.reports.EU.{partner}");
        let ack =
            projector.js.publish(subject, format!("{{\"partner\":\"{partner}\"}}").into()).await.expect("publish");
        ack.await.expect("stored");
    }
    let mut reports = nl.bound(subjects::REPORTS_STREAM, "NL").await;
    assert_eq!(read(&mut reports, 1).await[0].0, "stockpile.v1.reports.EU.NL");
    nl.refused_consumer(subjects::REPORTS_STREAM, "NL", "stockpile.v1.reports.>").await;
    let mut commission = deployment.user("commission").await;
    let mut intake = commission.bound(subjects::REPORTS_STREAM, COMMISSION_CONSUMER).await;
    let subjects_read: Vec<String> = read(&mut intake, 2).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(subjects_read, ["stockpile.v1.reports.EU.NL", "stockpile.v1.reports.EU.DE"]);
    commission.refused_request(&subjects::partner_append_subject("NL"), body.clone()).await;

    // The auditor reads the log and the streams, and cannot append on any channel.
    let mut auditor = auditor;
    assert!(records_via_range(&auditor.client).await == stored_records(&service.ledger), "the auditor reads the log");
    let stream = auditor.js.get_stream(subjects::EVENTS_STREAM).await.expect("stream info");
    let first = stream.get_raw_message(1).await.expect("the auditor reads a message");
    assert!(first.payload.as_ref() == records[0].as_slice());
    auditor.refused_request(subjects::APPEND, body.clone()).await;
    auditor.refused_request(&subjects::partner_append_subject("NL"), body).await;
    auditor.refused_consumer(subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.NL.>").await;
    assert_eq!(
        *service.ledger.head().borrow(),
        head + 2,
        "only DE's two later acquires were written after the refusals"
    );
    // A partner may not ask for everyone's holdings.
    let everything = HoldingsQuery::default();
    nl.refused_request(HOLDINGS_QUERY, serde_json::to_vec(&everything).expect("encode")).await;
    let _ = url;
    deployment.service.stop().await.shutdown().expect("the ledger stops cleanly");
    drop(deployment.nats);
    drop(deployment.dir);
}

/// Where a forged reply subject points: each stream's subjects (another partner's feed
/// included) and the checkpoints subject.
const FORGED_REPLIES: [&str; 6] = [
    "stockpile.v1.events.NL.cobalt.acquire",
    "stockpile.v1.events._._.genesis",
    "stockpile.v1.feed.NL.cobalt.acquire",
    "stockpile.v1.feed.DE.cobalt.acquire",
    "stockpile.v1.reports.EU.DE",
    "stockpile.v1.checkpoints",
];

/// The reading roles (each an account of its own) and a plausible body for each request
/// subject their accounts import: answered for real wherever the role may ask.
fn forged_request_body(subject: &str, world: &World) -> Vec<u8> {
    if subject.starts_with("stockpile.v1.ledger.append") {
        // A resend of the genesis-era registration: answered (as a duplicate or a
        // rejection), never a new record.
        let command = setup_commands(world).remove(1);
        serde_json::to_vec(&AppendRequest { commands: vec![command], atomic: false }).expect("encode")
    } else if subject == subjects::PROOF {
        br#"{"inclusion":{"seq":1,"tree_size":2}}"#.to_vec()
    } else if subject == subjects::RANGE {
        br#"{"from":1}"#.to_vec()
    } else if subject.contains(".API.CONSUMER.MSG.NEXT.") {
        br#"{"batch":5,"no_wait":true}"#.to_vec()
    } else if subject.contains(".API.STREAM.MSG.GET.") {
        br#"{"seq":1}"#.to_vec()
    } else {
        b"{}".to_vec()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_reply_subjects_and_wider_consumers_write_nothing_into_the_streams() {
    let deployment = Deployment::start().await;
    let service = &deployment.service;
    let world = World::new();
    let setup = service.ledger.append(setup_commands(&world), true).await.expect("setup");
    assert!(setup.iter().all(|o| o.seq().is_some()), "setup appends");
    service.ledger.append(acquires(&world, 0, 6), false).await.expect("acquires");
    let publisher = deployment.user("ledger-publisher").await;
    let admin = deployment.user("admin").await;
    // A signed checkpoint in the checkpoints stream, and a report in the reports stream.
    request(&admin.client, subjects::CHECKPOINT, Vec::new()).await;
    let projector_publisher = deployment.user("projector-publisher").await;
    let ack = projector_publisher.js.publish("stockpile.v1.reports.EU.NL", "{}".into()).await.expect("publish");
    ack.await.expect("stored");
    // The projector follows the stream through the attack and answers the forged requests
    // too: `projector` answers, `projector-publisher` reads the stream.
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let projector = ProjectorTask::run_as_pair(
        &deployment.url,
        projector_dir.path(),
        Some(seed(&deployment.conf, "projector")),
        Some(seed(&deployment.conf, "projector-publisher")),
    );

    let roles = [Role::Partner("NL".into()), Role::Partner("DE".into()), Role::Commission, Role::Auditor, Role::Admin];
    let mut sent = 0usize;
    for role in &roles {
        let mut user = deployment.user(&role.user()).await;
        for import in access::imports(role) {
            let Import::Service { subject, .. } = import else { continue };
            if subject.starts_with("$JS.ACK.") || subject.starts_with("$SRV.") {
                continue; // acks carry no answer; $SRV answers are the service's pings
            }
            let subject = access::local_subject(&subject.replace('*', "NL"));
            let body = forged_request_body(&subject, &world);
            for reply in FORGED_REPLIES {
                user.client
                    .publish_with_reply(subject.clone(), reply.to_string(), body.clone().into())
                    .await
                    .expect("the client sends it");
                sent += 1;
            }
        }
        // A consumer with a wider filter, on its own consumer's name and a new one.
        for (stream, name, filter) in [
            (subjects::FEEDS_STREAM, "NL", "stockpile.v1.feed.>"),
            (subjects::FEEDS_STREAM, "spy", "stockpile.v1.feed.>"),
            (subjects::EVENTS_STREAM, "spy", "stockpile.v1.events.>"),
            (subjects::REPORTS_STREAM, "NL", "stockpile.v1.reports.>"),
        ] {
            user.refused_consumer(stream, name, filter).await;
        }
        user.client.flush().await.expect("flush");
    }
    assert!(sent > 100, "every role sent its forged requests ({sent})");
    // Let every answer land wherever it lands.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The ledger goes on, and the streams mirror the log record for record.
    let more = service.ledger.append(acquires(&world, 6, 3), false).await.expect("more acquires");
    assert!(more.iter().all(|o| o.seq().is_some()));
    let head = *service.ledger.head().borrow();
    let records = stored_records(&service.ledger);
    assert_eq!(records.len() as u64, head);
    check_stream_mirrors(&publisher.client, &records).await;
    wait_for_cursor(&service.ledger, head).await;
    // The reports stream holds the one report; the checkpoints stream only signed checkpoints.
    let reports = js_api("reports info", || publisher.js.get_stream(subjects::REPORTS_STREAM)).await;
    assert_eq!(reports.cached_info().state.messages, 1, "no answer was stored as a report");
    let checkpoints = js_api("checkpoints info", || publisher.js.get_stream(subjects::CHECKPOINTS_STREAM)).await;
    let stored = checkpoints.cached_info().state.messages;
    assert!(stored >= 1, "the requested checkpoint is stored");
    for seq in 1..=stored {
        let message = js_api("read a checkpoint", || checkpoints.get_raw_message(seq)).await;
        let checkpoint: Checkpoint = serde_json::from_slice(&message.payload)
            .unwrap_or_else(|e| panic!("checkpoints message {seq} is not a checkpoint ({e}): {:?}", message.payload));
        checkpoint.verify_signature().expect("a signed checkpoint");
    }
    // The pre-created consumers keep their filters.
    for spec in access::consumers(&["NL".to_string(), "DE".to_string()]) {
        let consumer: jetstream::consumer::PullConsumer =
            js_api("consumer", || publisher.js.get_consumer_from_stream(&spec.name, spec.stream)).await;
        let info = consumer.cached_info();
        assert_eq!(info.config.filter_subject, spec.filter, "{}", spec.name);
    }
    // The projector follows to the head.
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let consumer: jetstream::consumer::PullConsumer = js_api("projector's consumer", || {
            publisher.js.get_consumer_from_stream("stockpile-projector", subjects::EVENTS_STREAM)
        })
        .await;
        let info = consumer.cached_info();
        if info.ack_floor.stream_sequence == head {
            break;
        }
        assert!(Instant::now() < deadline, "the projector did not follow to {head}: {:?}", info.ack_floor);
        tokio::time::sleep(POLL).await;
    }
    // Through its account, a partner reads its own holdings from the projector, and only
    // its own: the scope is the subject's, whatever the body asks.
    let nl = deployment.user("partner-NL").await;
    let own = format!("{HOLDINGS_QUERY}.NL");
    let by_partner = serde_json::json!({ "group_by": ["partner", "material"] });
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let holdings = loop {
        let reply = request(&nl.client, &own, serde_json::to_vec(&by_partner).expect("encode")).await;
        let holdings: serde_json::Value = serde_json::from_slice(&reply)
            .unwrap_or_else(|e| panic!("not a holdings answer ({e}): {}", String::from_utf8_lossy(&reply)));
        if holdings["seq"].as_u64() == Some(head) {
            break holdings;
        }
        assert!(Instant::now() < deadline, "the projector's answer stays behind {head}: {holdings}");
        tokio::time::sleep(POLL).await;
    };
    let rows = holdings["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "NL holds stock: {holdings}");
    for row in rows {
        assert_eq!(row["key"]["partner"], "NL", "only NL's rows on NL's subject: {holdings}");
    }
    let other = serde_json::json!({ "partner": ["DE"] });
    let refused = request(&nl.client, &own, serde_json::to_vec(&other).expect("encode")).await;
    let refused: serde_json::Value = serde_json::from_slice(&refused).expect("an error reply");
    assert_eq!(refused["error"]["code"], "wrong_partner", "NL may not ask for DE's holdings: {refused}");
    // The CLI as partner NL asks the same scoped subject (and not the ledger's head, which a
    // partner may not read).
    let (conf, url) = (deployment.conf.clone(), deployment.url.clone());
    let cli = tokio::task::spawn_blocking(move || {
        let nkey = conf.join("users").join("partner-NL.nk");
        let args = ["--nats", &url, "--nats-nkey", nkey.to_str().expect("utf-8"), "--nats-partner", "NL"];
        let dir = tempfile::tempdir().expect("tempdir");
        stockpile_in(dir.path(), &[&args[..], &["--format", "json", "holdings", "--by", "partner,material"]].concat())
    })
    .await
    .expect("the CLI runs");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "holdings as partner NL: {stdout}{}", String::from_utf8_lossy(&cli.stderr));
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("JSON holdings");
    let rows = answer["rows"].as_array().expect("rows");
    assert!(!rows.is_empty() && rows.iter().all(|r| r["key"]["partner"] == "NL"), "NL's rows only: {answer}");
    projector.stop().await;
    deployment.service.stop().await.shutdown().expect("the ledger stops cleanly");
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
