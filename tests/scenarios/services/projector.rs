//! The projector service over a real nats-server, beside the ledger service: it follows
//! `STOCKPILE_EVENTS` with a durable consumer and answers `stockpile.v1.holdings.query`.
//! Holdings come back exact (now and as of a date); a projector killed mid-stream resumes
//! on its data directory (its unacknowledged messages still pending: the gap is repaired
//! from `ledger.range`) and ends equal to a from-zero rebuild over the ledger's store; a
//! malformed query gets a typed error and the responder keeps serving. A consumer
//! that starts past the views' head is repaired from the ledger.

use super::*;
use stockpile_ledger::store::Store;
use stockpile_projector::service::{self as projector_service, ProjectorConfig, HOLDINGS_QUERY};
use stockpile_projector::{AsOf, Dimension, Holdings, HoldingsQuery, LedgerSource, Projector};
use stockpile_tests::nats::NatsServer;

/// The projector service running in this process.
pub struct ProjectorTask {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), projector_service::ServiceError>>,
}

impl ProjectorTask {
    /// Spawns [`projector_service::run`] on its own data directory.
    pub fn run(nats_url: &str, data_dir: &Path) -> ProjectorTask {
        ProjectorTask::run_as(nats_url, data_dir, None)
    }

    /// [`ProjectorTask::run`] connected as a NATS user (the `projector` role).
    pub fn run_as(
        nats_url: &str,
        data_dir: &Path,
        identity: Option<stockpile_ledger::service::access::Identity>,
    ) -> ProjectorTask {
        ProjectorTask::run_as_pair(nats_url, data_dir, identity, None)
    }

    /// [`ProjectorTask::run_as`] with its two connections as two users: `identity` answers
    /// requests (`projector`), `publisher` reads JetStream and publishes (`projector-publisher`).
    pub fn run_as_pair(
        nats_url: &str,
        data_dir: &Path,
        identity: Option<stockpile_ledger::service::access::Identity>,
        publisher: Option<stockpile_ledger::service::access::Identity>,
    ) -> ProjectorTask {
        let (stop, stopped) = oneshot::channel::<()>();
        let mut config = ProjectorConfig::new(nats_url, data_dir);
        config.identity = identity;
        config.publisher_identity = publisher;
        let task = tokio::spawn(projector_service::run(config, async move {
            let _ = stopped.await;
        }));
        ProjectorTask { stop: Some(stop), task }
    }

    /// Asks the service to stop and waits for a clean exit.
    pub async fn stop(mut self) {
        let _ = self.stop.take().expect("not stopped yet").send(());
        let result = tokio::time::timeout(CATCH_UP_TIMEOUT, &mut self.task).await.expect("the projector stops in time");
        result.expect("the projector task does not panic").expect("the projector stops cleanly");
    }

    /// Kills the task mid-flight: its fetched messages stay unacknowledged, its connection drops.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Asks `stockpile.v1.holdings.query`, retrying while no projector responds yet.
pub async fn holdings_reply(client: &async_nats::Client, payload: Vec<u8>) -> Vec<u8> {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        match client.request(HOLDINGS_QUERY.to_string(), payload.clone().into()).await {
            Ok(reply) => return reply.payload.to_vec(),
            Err(e) => assert!(Instant::now() < deadline, "no holdings answer within {CATCH_UP_TIMEOUT:?}: {e}"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The answer to `query` once the projector has folded every record up to `seq`.
pub async fn holdings_at(client: &async_nats::Client, query: &HoldingsQuery, seq: u64) -> Holdings {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let reply = holdings_reply(client, serde_json::to_vec(query).expect("encode")).await;
        let answer: Holdings = serde_json::from_slice(&reply)
            .unwrap_or_else(|e| panic!("not a holdings answer ({e}): {}", String::from_utf8_lossy(&reply)));
        assert!(answer.seq <= seq, "the projector is at {} past the ledger's head {seq}", answer.seq);
        if answer.seq == seq {
            return answer;
        }
        assert!(Instant::now() < deadline, "the projector stayed at {} short of {seq}", answer.seq);
        tokio::time::sleep(POLL).await;
    }
}

fn by(dimensions: &[Dimension]) -> HoldingsQuery {
    HoldingsQuery { group_by: dimensions.to_vec(), ..HoldingsQuery::default() }
}

fn as_of(date: &str, dimensions: &[Dimension]) -> HoldingsQuery {
    HoldingsQuery { as_of: Some(date.parse::<AsOf>().expect("a date")), ..by(dimensions) }
}

/// `(material, gross_g, contained_g, gross_t)` of each row of a by-material answer.
fn material_rows(answer: &Holdings) -> Vec<(String, i64, i64, String)> {
    answer
        .rows
        .iter()
        .map(|r| {
            let material = r.key.get(Dimension::Material).and_then(|v| v.as_str()).expect("a material key");
            (material.to_string(), r.totals.gross_g, r.totals.contained_g, r.totals.gross_t.clone())
        })
        .collect()
}

/// `count` acquires numbered from `first` as [`acquires`] makes them, but dated `date`.
fn acquires_dated(world: &World, first: usize, count: usize, date: &str) -> Vec<SignedCommand> {
    const WHO: [(&str, &str); 3] = [("nl-covra", "cobalt"), ("de-rohstoff", "germanium"), ("be-defence", "tungsten")];
    (first..first + count)
        .map(|i| {
            let (party, material) = WHO[i % WHO.len()];
            world.key(party).sign(command(
                &format!("acq-{i}"),
                at(date),
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

/// The same figures for each of the three materials, in row order.
fn per_material(gross_g: i64, contained_g: i64, gross_t: &str) -> Vec<(String, i64, i64, String)> {
    ["cobalt", "germanium", "tungsten"]
        .iter()
        .map(|m| (m.to_string(), gross_g, contained_g, gross_t.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_answers_exact_holdings_now_and_as_of_a_date() {
    let nats = NatsServer::start();
    let ledger_dir = tempfile::tempdir().expect("tempdir");
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&nats.url()), open_ledger(ledger_dir.path()));
    let projector = ProjectorTask::run(&nats.url(), projector_dir.path());
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();

    append(&client, setup_commands(&world), true).await;
    // 30 acquires in February, 30 in March: ten of each material in each month.
    let february = append(&client, acquires_dated(&world, 0, 30, "2026-02-01T00:00:00Z"), false).await;
    let march = append(&client, acquires_dated(&world, 30, 30, "2026-03-01T00:00:00Z"), false).await;
    let head = seq_of(march.last().expect("results"));
    assert_eq!(seq_of(&february[0]) + 59, head, "sixty acquires, gap-free");

    // Ten lots of 1.5 t at 99.9 % per material per month.
    let now = holdings_at(&client, &by(&[Dimension::Material]), head).await;
    assert_eq!(material_rows(&now), per_material(30_000_000, 29_970_000, "30.000000"));
    assert_eq!((now.total.gross_g, now.total.gross_t.as_str()), (90_000_000, "90.000000"));
    assert_eq!(now.head_hash, stored_head_hash(&service.ledger), "the answer names the ledger's head record");

    let mid_february = holdings_at(&client, &as_of("2026-02-15", &[Dimension::Material]), head).await;
    assert_eq!(material_rows(&mid_february), per_material(15_000_000, 14_985_000, "15.000000"));
    let january = holdings_at(&client, &as_of("2026-01-31", &[Dimension::Material]), head).await;
    assert!(january.rows.is_empty(), "nothing was held before the first acquire: {:?}", january.rows);
    assert_eq!(january.total.gross_g, 0);
    let by_partner = holdings_at(&client, &by(&[Dimension::Partner]), head).await;
    let partners: Vec<_> = by_partner
        .rows
        .iter()
        .map(|r| (r.key.get(Dimension::Partner).and_then(|v| v.as_str()).expect("partner"), r.totals.gross_g))
        .collect();
    assert_eq!(partners, [("BE", 30_000_000), ("DE", 30_000_000), ("NL", 30_000_000)]);

    // Malformed queries get a typed error; the responder keeps serving.
    for bad in [&b"not json"[..], br#"{"group_by":["colour"]}"#, br#"{"as_of":"yesterday"}"#] {
        let reply = holdings_reply(&client, bad.to_vec()).await;
        assert_eq!(error_reply(&reply).error.code, "malformed_request", "for {}", String::from_utf8_lossy(bad));
    }
    let again = holdings_at(&client, &by(&[Dimension::Material]), head).await;
    assert_eq!(again, now, "the same log and query give the same answer");

    projector.stop().await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

fn stored_head_hash(ledger: &LedgerHandle) -> stockpile_ledger::canonical::Hash {
    let records = stored_records(ledger);
    let last: serde_json::Value = serde_json::from_slice(records.last().expect("a record")).expect("JSON");
    stockpile_ledger::canonical::parse_hex(last["hash"].as_str().expect("a hash")).expect("a hex hash")
}

/// A ledger service over its own nats-server, set up with the test world and `pages` × 100
/// acquisitions on its stream, and a data directory for a projector.
struct Served {
    nats: NatsServer,
    ledger_dir: tempfile::TempDir,
    projector_dir: tempfile::TempDir,
    service: InProcess,
    client: async_nats::Client,
    world: World,
}

async fn served_with_acquires(pages: usize) -> Served {
    let nats = NatsServer::start();
    let ledger_dir = tempfile::tempdir().expect("tempdir");
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&nats.url()), open_ledger(ledger_dir.path()));
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();
    append(&client, setup_commands(&world), true).await;
    for page in 0..pages {
        append(&client, acquires(&world, page * 100, 100), false).await;
    }
    Served { nats, ledger_dir, projector_dir, service, client, world }
}

/// The projector's durable consumer, created ahead of it to start at `start_sequence` (as if
/// its views were restored from an older backup): the records before it never come from the
/// stream, and the projector must fill them from `ledger.range`, not fold past them.
async fn consumer_starting_at(client: &async_nats::Client, start_sequence: u64) {
    let stream = jetstream::new(client.clone()).get_stream(subjects::EVENTS_STREAM).await.expect("the stream");
    let ahead = jetstream::consumer::pull::Config {
        durable_name: Some(ProjectorConfig::new("", "").durable),
        deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence },
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        // As the service would: room for the pages a killed instance leaves unacknowledged.
        ack_wait: projector_service::ACK_WAIT,
        max_ack_pending: (projector_service::FETCH_MESSAGES_MAX * 4) as i64,
        ..Default::default()
    };
    stream.create_consumer(ahead).await.expect("create the durable consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_stream_resumes_equal_to_a_rebuild() {
    // Several pages of records on the stream before the projector starts, whose consumer
    // starts at record 1500.
    let Served { nats, ledger_dir: _ledger_dir, projector_dir, service, client, world } =
        served_with_acquires(30).await;
    consumer_starting_at(&client, 1500).await;

    // The projector starts and is killed as soon as it has folded something.
    let projector = ProjectorTask::run(&nats.url(), projector_dir.path());
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let reply = holdings_reply(&client, serde_json::to_vec(&by(&[])).expect("encode")).await;
        let answer: Holdings = serde_json::from_slice(&reply).expect("a holdings answer");
        if answer.seq > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the projector folded nothing within {CATCH_UP_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    projector.abort().await;

    // More records while it is down, then a restart on the same data directory.
    for batch in 30..35 {
        append(&client, acquires(&world, batch * 100, 100), false).await;
    }
    let head = *service.ledger.head().borrow();
    let projector = restart(&nats.url(), projector_dir.path()).await;

    assert_views_equal_rebuild(&client, service.ledger.store().clone(), head).await;
    assert_eq!(holdings_at(&client, &by(&[]), head).await.total.gross_g, 3_500 * 1_500_000);

    projector.stop().await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

/// A gap to repair while the ledger is down: the projector waits for it (the repair is tried
/// again), keeps answering queries, and once the ledger is back folds everything and equals
/// a rebuild. It used to end with "gap repair from the ledger failed", its queries going
/// unanswered (seen in the kill loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_met_while_the_ledger_is_down_is_repaired_when_it_returns() {
    let Served { nats, ledger_dir, projector_dir, service, client, .. } = served_with_acquires(5).await;
    let head = *service.ledger.head().borrow();
    consumer_starting_at(&client, 300).await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");

    // The projector meets the gap with no ledger to answer: it must keep running and serving.
    let projector = ProjectorTask::run(&nats.url(), projector_dir.path());
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let reply = holdings_reply(&client, serde_json::to_vec(&by(&[])).expect("encode")).await;
        let answer: Holdings = serde_json::from_slice(&reply).expect("a holdings answer");
        assert_eq!(answer.seq, 0, "nothing folded past the gap");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let service = InProcess::serve(config(&nats.url()), open_ledger(ledger_dir.path()));
    assert_views_equal_rebuild(&client, service.ledger.store().clone(), head).await;
    projector.stop().await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

/// Checks that the projector serving `stockpile.v1.holdings.query` has folded up to `head`
/// and answers a spread of queries (totals, every grouping, as of two dates) exactly as a
/// projector rebuilt from zero over the ledger's `store` does.
pub async fn assert_views_equal_rebuild(client: &async_nats::Client, store: Store, head: u64) {
    let rebuild_dir = tempfile::tempdir().expect("tempdir");
    let rebuilt = tokio::task::block_in_place(|| {
        let mut rebuilt = Projector::open(rebuild_dir.path()).expect("open");
        let done = rebuilt.rebuild(&mut LedgerSource::new(store)).expect("rebuild");
        assert_eq!(done.head.seq, head, "the rebuild reaches the ledger's head");
        rebuilt
    });
    let queries = [
        by(&[]),
        by(&[Dimension::Material]),
        by(&[Dimension::Partner, Dimension::Party, Dimension::Facility]),
        by(&[Dimension::Lot]),
        as_of("2026-01-31", &[Dimension::Material]),
        as_of("2026-02-01", &[Dimension::Partner, Dimension::Material]),
    ];
    for query in &queries {
        // A large answer is served in pages (each cut to fit NATS's max_payload): gather them.
        let mut served = holdings_at(client, query, head).await;
        while let Some(offset) = served.next {
            let page = holdings_at(client, &HoldingsQuery { offset, ..query.clone() }, head).await;
            assert!(!page.rows.is_empty() && page.total == served.total, "page at {offset}: {page:?}");
            served.rows.extend(page.rows);
            served.next = page.next;
        }
        let expected = rebuilt.holdings(query).expect("a query");
        if served != expected {
            // Name what differs: a lot-by-lot answer has thousands of rows.
            let differing: Vec<String> = served
                .rows
                .iter()
                .zip(&expected.rows)
                .filter(|(a, b)| a != b)
                .take(5)
                .map(|(a, b)| format!("served {a:?}, rebuilt {b:?}"))
                .collect();
            panic!(
                "the followed views differ from a rebuild for {query:?}: {} rows served, {} rebuilt; seq {} / {}, hash equal: {}, totals {:?} / {:?}; first differing rows: {differing:#?}",
                served.rows.len(),
                expected.rows.len(),
                served.seq,
                expected.seq,
                served.head_hash == expected.head_hash,
                served.total,
                expected.total
            );
        }
    }
}

/// Starts the projector again on `dir`. The killed one's last blocking fold may still hold
/// the directory's lock for a moment (an aborted task's `spawn_blocking` work runs to its
/// end): a start refused for that is tried again.
async fn restart(nats_url: &str, dir: &Path) -> ProjectorTask {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let mut projector = ProjectorTask::run(nats_url, dir);
        match tokio::time::timeout(Duration::from_secs(1), &mut projector.task).await {
            Err(_) => return projector, // still running: it opened its store
            Ok(exit) => {
                let error = format!("{exit:?}");
                assert!(Instant::now() < deadline, "the projector would not restart: {error}");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}
