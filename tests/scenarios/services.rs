//! The ledger service over a real nats-server: request/reply, the outbox and the
//! `STOCKPILE_EVENTS` stream, through NATS outages, crashes and a cluster losing a node.
//!
//! Each test starts its own nats-server ([`stockpile_tests::nats`]) and runs the service
//! in-process ([`InProcess`], over [`service::serve`]) — or, in [`real_binary`],
//! [`kill_loop`] and [`soak`], as the built `stockpile-ledger` binary. Every wait is
//! bounded by a generous deadline; nothing asserts on speed.

mod access;
mod bad_requests;
mod cluster;
mod crash;
mod end_to_end;
mod failover;
mod flood;
mod harness_checks;
mod hostile;
mod kill_loop;
mod load;
mod outage;
mod paging;
mod projector;
mod real_binary;
mod replicate;
mod restore;
mod soak;

use async_nats::jetstream;
use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};
use stockpile_ledger::domain::{Action, Form, Programme, Unit};
use stockpile_ledger::service::{self, subjects, ServiceConfig, ServiceError};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::testkit::{amount, at, command, holding, lot, World};
use stockpile_ledger::wire::{AppendReply, AppendRequest, AppendResult, ErrorReply, RangeReply, RangeRequest};
use stockpile_ledger::{Ledger, LedgerHandle, LedgerOptions, SystemClock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest wait for one reply. Generous: a loaded two-core CI machine may be slow, and
/// a test must fail on a lost reply, not on a slow one.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for the stream to catch up with the ledger (after an outage, a crash or a
/// failover, the outbox retries with a backoff of at most two seconds).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// Pause between two looks at something a test waits for.
pub const POLL: Duration = Duration::from_millis(100);

/// The world's setup commands, all dated 2026-01-01 (in the past of the system clock).
pub fn setup_commands(world: &World) -> Vec<SignedCommand> {
    world.setup(at("2026-01-01T00:00:00Z"))
}

/// `count` acquires numbered from `first`, spread over three partners and materials so
/// the events land on different subjects: NL cobalt, DE germanium, BE tungsten.
pub fn acquires(world: &World, first: usize, count: usize) -> Vec<SignedCommand> {
    const WHO: [(&str, &str); 3] = [("nl-covra", "cobalt"), ("de-rohstoff", "germanium"), ("be-defence", "tungsten")];
    (first..first + count)
        .map(|i| {
            let (party, material) = WHO[i % WHO.len()];
            world.key(party).sign(command(
                &format!("acq-{i}"),
                at("2026-02-01T00:00:00Z"),
                Action::Acquire {
                    lot: lot(&format!("lot-{i}"), material, Form::Metal, 999_000, "JP"),
                    to: holding(party, "in_transit", Programme::National),
                    quantity: amount("1.5", Unit::T),
                    supplier: None,
                    contract: None,
                    price: None,
                },
            ))
        })
        .collect()
}

/// Opens (or creates) a ledger in `dir` and starts its group-commit writer.
pub fn open_ledger(dir: &Path) -> LedgerHandle {
    let ledger = Ledger::open(dir, Box::new(SystemClock), LedgerOptions::default()).expect("open the ledger");
    LedgerHandle::start(ledger)
}

/// A config for `nats_url` with the default limits; `data_dir` is unused by [`service::serve`].
pub fn config(nats_url: &str) -> ServiceConfig {
    ServiceConfig::new(nats_url, "unused-by-serve")
}

/// The service running in this process over a ledger the test also holds.
pub struct InProcess {
    pub ledger: LedgerHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServiceError>>,
}

impl InProcess {
    /// Spawns [`service::serve`] over `ledger`. Use [`wait_until_serving`] before requests.
    pub fn serve(config: ServiceConfig, ledger: LedgerHandle) -> InProcess {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = ledger.clone();
        let task = tokio::spawn(async move {
            service::serve(&config, handle, async move {
                let _ = stopped.await;
            })
            .await
        });
        InProcess { ledger, stop: Some(stop), task }
    }

    /// Asks the service to stop and waits for a clean exit; the ledger keeps running.
    pub async fn stop(mut self) -> LedgerHandle {
        let _ = self.stop.take().expect("not stopped yet").send(());
        let result = tokio::time::timeout(CATCH_UP_TIMEOUT, &mut self.task).await.expect("the service stops in time");
        result.expect("the service task does not panic").expect("the service stops cleanly");
        self.ledger
    }

    /// Kills the service's task mid-flight (no clean shutdown: the NATS connection drops,
    /// acks in flight are lost, the cursor is not written). The ledger keeps running.
    pub async fn abort(self) -> LedgerHandle {
        self.task.abort();
        let _ = self.task.await;
        self.ledger
    }
}

/// A NATS client with a reply timeout fit for slow machines.
pub async fn client(url: &str) -> async_nats::Client {
    let servers: Vec<&str> = url.split(',').collect();
    async_nats::ConnectOptions::new()
        .request_timeout(Some(REPLY_TIMEOUT))
        .connect(servers)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Endpoints of the ledger's micro service: append, append-as-partner, range, checkpoint, proof.
pub const LEDGER_ENDPOINTS: usize = 5;

/// Waits until the ledger service answers `$SRV.INFO` with all its endpoints.
pub async fn wait_until_serving(client: &async_nats::Client) {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let subject = format!("$SRV.INFO.{}", subjects::SERVICE_NAME);
    loop {
        if let Ok(Ok(reply)) = tokio::time::timeout(POLL * 5, client.request(subject.clone(), "".into())).await {
            let info: serde_json::Value = serde_json::from_slice(&reply.payload).expect("INFO is JSON");
            if info["endpoints"].as_array().is_some_and(|e| e.len() == LEDGER_ENDPOINTS) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the ledger service did not come up within {REPLY_TIMEOUT:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Sends a raw request and returns the raw reply.
pub async fn request(client: &async_nats::Client, subject: &str, payload: Vec<u8>) -> Vec<u8> {
    let reply = client
        .request(subject.to_string(), payload.into())
        .await
        .unwrap_or_else(|e| panic!("request on {subject}: {e}"));
    reply.payload.to_vec()
}

/// Appends over NATS and expects a reply with one result per command.
pub async fn append(client: &async_nats::Client, commands: Vec<SignedCommand>, atomic: bool) -> Vec<AppendResult> {
    let count = commands.len();
    let body = serde_json::to_vec(&AppendRequest { commands, atomic }).expect("encode");
    let reply = request(client, subjects::APPEND, body).await;
    let reply: AppendReply = serde_json::from_slice(&reply)
        .unwrap_or_else(|e| panic!("not an append reply ({e}): {}", String::from_utf8_lossy(&reply)));
    assert_eq!(reply.results.len(), count, "one result per command");
    reply.results
}

/// [`append`], retried while the service or NATS is coming back (no reply, or no
/// responders). A retried command that had landed comes back as a duplicate with its seq.
pub async fn append_retrying(client: &async_nats::Client, commands: Vec<SignedCommand>) -> Vec<AppendResult> {
    let body = serde_json::to_vec(&AppendRequest { commands, atomic: false }).expect("encode");
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        match client.request(subjects::APPEND.to_string(), body.clone().into()).await {
            Ok(reply) => {
                if let Ok(reply) = serde_json::from_slice::<AppendReply>(&reply.payload) {
                    return reply.results;
                }
                panic!("not an append reply: {}", String::from_utf8_lossy(&reply.payload));
            }
            Err(e) => assert!(Instant::now() < deadline, "append kept failing for {CATCH_UP_TIMEOUT:?}: {e}"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The seq of a result that appended (or was already appended); panics on a rejection.
pub fn seq_of(result: &AppendResult) -> u64 {
    match result {
        AppendResult::Appended { seq, .. } | AppendResult::Duplicate { seq, .. } => *seq,
        AppendResult::Rejected { code, message } => panic!("rejected ({code}): {message}"),
    }
}

/// Decodes an error reply, panicking with the reply if it is something else.
pub fn error_reply(reply: &[u8]) -> ErrorReply {
    serde_json::from_slice(reply)
        .unwrap_or_else(|e| panic!("expected an error reply ({e}), got {}", String::from_utf8_lossy(reply)))
}

/// Every record, from seq 1 to the head, through `ledger.range` pages.
pub async fn records_via_range(client: &async_nats::Client) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut from = 1;
    for _page in 0..10_000 {
        let body = serde_json::to_vec(&RangeRequest { from, to: None, limit: None }).expect("encode");
        let reply = request(client, subjects::RANGE, body).await;
        let reply: RangeReply = serde_json::from_slice(&reply).expect("a range reply");
        records.extend(reply.records.iter().map(|r| r.get().as_bytes().to_vec()));
        match reply.next {
            Some(next) => from = next,
            None => return records,
        }
    }
    panic!("range paging did not end");
}

/// One message a stream must hold: a record on a subject, with its headers.
#[derive(Debug, PartialEq)]
pub struct Expected {
    pub subject: String,
    pub msg_id: String,
    pub seq: u64,
    pub hash: String,
    /// `Stockpile-Partner`, on feed messages only.
    pub partner: Option<String>,
    pub payload: Vec<u8>,
}

/// What `STOCKPILE_EVENTS` (`feeds`: false) or `STOCKPILE_FEEDS` (`feeds`: true) must hold
/// for `records`, worked out from the records themselves: every record once on its first
/// partner's event subject; or once per partner it concerns, on that partner's feed.
pub fn expected_messages(records: &[Vec<u8>], feeds: bool) -> Vec<Expected> {
    let mut out = Vec::new();
    for record in records {
        let value: serde_json::Value = serde_json::from_slice(record).expect("a record is JSON");
        let body = &value["body"];
        let partners: Vec<&str> = body["scope"]["partners"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default();
        let material = body["scope"]["material"].as_str().unwrap_or("_");
        let kind = body["kind"].as_str().expect("a kind");
        let event_id = body["event_id"].as_str().expect("an event id");
        let expected = |subject: String, msg_id: String, partner: Option<&str>| Expected {
            subject,
            msg_id,
            seq: body["seq"].as_u64().expect("a seq"),
            hash: value["hash"].as_str().expect("a hash").to_string(),
            partner: partner.map(str::to_string),
            payload: record.clone(),
        };
        if feeds {
            for partner in partners {
                let subject = format!("stockpile.v1.feed.{partner}.{material}.{kind}");
                out.push(expected(subject, format!("{event_id}@{partner}"), Some(partner)));
            }
        } else {
            let partner = partners.first().copied().unwrap_or("_");
            let subject = format!("stockpile.v1.events.{partner}.{material}.{kind}");
            // On the events stream the message id is the record's hash: the outbox's next
            // publish expects it as the stream's last message.
            out.push(expected(subject, value["hash"].as_str().expect("a hash").to_string(), None));
        }
    }
    out
}

/// The subject of a record on `STOCKPILE_EVENTS`.
pub fn expected_subject(record: &[u8]) -> String {
    expected_messages(std::slice::from_ref(&record.to_vec()), false).remove(0).subject
}

/// Waits until `STOCKPILE_EVENTS` and `STOCKPILE_FEEDS` hold every message `records` give
/// them (failing at once if one ever holds more), then checks each message exactly: subject,
/// `Nats-Msg-Id`, `Stockpile-Seq`, `Stockpile-Hash`, `Stockpile-Partner` and the
/// byte-identical payload, in order with no hole.
pub async fn check_stream_mirrors(client: &async_nats::Client, records: &[Vec<u8>]) {
    check_stream_holds(client, subjects::EVENTS_STREAM, &expected_messages(records, false)).await;
    check_stream_holds(client, subjects::FEEDS_STREAM, &expected_messages(records, true)).await;
}

async fn check_stream_holds(client: &async_nats::Client, name: &str, expected: &[Expected]) {
    let js = jetstream::new(client.clone());
    let want = expected.len() as u64;
    let stream = js_api("get the stream", || js.get_stream(name)).await;
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let state = js_api("get the stream's info", || stream.get_info()).await.state;
        assert!(state.messages <= want, "{name} holds {} messages, more than the {want} expected", state.messages);
        assert_eq!(state.messages, state.last_sequence, "{name} has no holes");
        if state.messages == want {
            break;
        }
        assert!(Instant::now() < deadline, "{name} did not reach {want} messages within {CATCH_UP_TIMEOUT:?}");
        tokio::time::sleep(POLL).await;
    }
    let messages = js_api("read the stream with an ordered consumer", || async {
        let consumer = stream.create_consumer(jetstream::consumer::pull::OrderedConfig::default()).await?;
        consumer.messages().await.map_err(async_nats::Error::from)
    })
    .await;
    let mut messages = messages.take(expected.len());
    let mut seen = 0usize;
    while let Some(message) = tokio::time::timeout(REPLY_TIMEOUT, messages.next()).await.expect("next message in time")
    {
        let message = message.expect("a message");
        let stream_seq = message.info().expect("JetStream metadata").stream_sequence;
        let header = |name: &str| message.headers.as_ref().and_then(|h| header_value(h, name));
        let got = Expected {
            subject: message.subject.to_string(),
            msg_id: header("Nats-Msg-Id").unwrap_or_default(),
            seq: header("Stockpile-Seq").and_then(|s| s.parse().ok()).unwrap_or_default(),
            hash: header("Stockpile-Hash").unwrap_or_default(),
            partner: header("Stockpile-Partner"),
            payload: message.payload.to_vec(),
        };
        seen += 1;
        assert_eq!(stream_seq, seen as u64, "{name}: messages in order");
        let want = &expected[seen - 1];
        if got != *want {
            panic!(
                "{name} message {seen} is not as expected: got {} {} seq {} partner {:?}, want {} {} seq {} partner {:?} (payloads equal: {})",
                got.subject, got.msg_id, got.seq, got.partner, want.subject, want.msg_id, want.seq, want.partner, got.payload == want.payload
            );
        }
    }
    assert_eq!(seen, expected.len(), "{name}: every message was read back");
}

/// Longest wait for one JetStream API call in a test before it is sent again: a request
/// can be lost while a cluster elects a leader, and waiting long for a lost one only
/// spends the test's deadline.
pub const JS_API_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Calls a JetStream API until it answers (each attempt bounded by
/// [`JS_API_ATTEMPT_TIMEOUT`], all of them by [`CATCH_UP_TIMEOUT`]).
pub async fn js_api<T, E, F>(what: &str, mut call: impl FnMut() -> F) -> T
where
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let error = match tokio::time::timeout(JS_API_ATTEMPT_TIMEOUT, call()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {JS_API_ATTEMPT_TIMEOUT:?}"),
        };
        assert!(Instant::now() < deadline, "{what} kept failing for {CATCH_UP_TIMEOUT:?}: {error}");
        tokio::time::sleep(POLL).await;
    }
}

/// A header's value, found by its name as sent on the wire. (async-nats keys the headers
/// it knows, like `Nats-Msg-Id`, apart from names given as text, so `get("…")` can miss.)
pub fn header_value(headers: &async_nats::HeaderMap, name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(key, _)| key.to_string() == name)
        .and_then(|(_, values)| values.first())
        .map(|v| v.as_str().to_string())
}

/// Every stored record of an in-process ledger, seq 1 to the head.
pub fn stored_records(ledger: &LedgerHandle) -> Vec<Vec<u8>> {
    let head = *ledger.head().borrow();
    let records = ledger.store().records(1, head).expect("read the log");
    assert_eq!(records.len() as u64, head);
    records
}

/// Waits until the durable outbox cursor reaches `seq`.
pub async fn wait_for_cursor(ledger: &LedgerHandle, seq: u64) {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while ledger.store().outbox_cursor().expect("cursor") < seq {
        assert!(Instant::now() < deadline, "the outbox cursor did not reach {seq} within {CATCH_UP_TIMEOUT:?}");
        tokio::time::sleep(POLL).await;
    }
}
