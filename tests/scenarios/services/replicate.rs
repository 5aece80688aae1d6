//! (h) Replicated commit (`--replicate`) on a three-node cluster with an R3
//! `STOCKPILE_EVENTS` stream: an answered append is already in the stream; with the stream's
//! quorum lost, an append is answered `not_replicated` within the bound (committed here, not
//! replicated), never acknowledged; once the quorum is back, a resend of the same commands is
//! answered with the same seqs, and the stream holds every record once, in order.

use super::*;
use stockpile_ledger::service::config::REPLICATE_ACK_TIMEOUT;
use stockpile_tests::nats::NatsCluster;

/// Beyond the bound: the request's own path and the writer's fsync on a loaded machine.
const SLACK: Duration = Duration::from_secs(10);

/// A three-node cluster and a ledger serving `--replicate` with R3 streams, in process,
/// connected to node 0 (as is the returned client): the cluster, the ledger's directory,
/// the service and the client.
async fn replicating_ledger() -> (NatsCluster, tempfile::TempDir, InProcess, async_nats::Client) {
    let cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    cluster.wait_for_jetstream().await;
    let url = cluster.nodes[0].url();
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = config(&url);
    config.stream_replicas = 3;
    config.replicate = true;
    let service = InProcess::serve(config, open_ledger(data.path()));
    let client = client(&url).await;
    wait_until_serving(&client).await;
    (cluster, data, service, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replicate_an_append_is_acknowledged_only_once_the_r3_stream_stored_it() {
    // The ledger and the client talk to node 0, which stays up: core NATS keeps working
    // there while JetStream, without a quorum, cannot store anything.
    let (mut cluster, _data, service, client) = replicating_ledger().await;
    let world = World::new();

    // Answered means stored: the stream's last sequence covers every answered seq at once.
    let answered: Vec<u64> = append(&client, setup_commands(&world), true).await.iter().map(seq_of).collect();
    let js = jetstream::new(client.clone());
    let stream = js_api("get the events stream", || js.get_stream(subjects::EVENTS_STREAM)).await;
    let info = js_api("get the events stream's info", || stream.get_info()).await;
    assert_eq!(info.config.num_replicas, 3);
    let stored = info.state.last_sequence;
    assert!(answered.iter().all(|seq| *seq <= stored), "answered {answered:?}, stream holds 1..={stored}");

    // Two of three nodes down: no quorum. The append is committed here but not replicated.
    tokio::task::block_in_place(|| {
        cluster.nodes[1].kill();
        cluster.nodes[2].kill();
    });
    let commands = acquires(&world, 0, 4);
    let body = serde_json::to_vec(&AppendRequest { commands: commands.clone(), atomic: false }).expect("encode");
    let started = Instant::now();
    let reply = request(&client, subjects::APPEND, body).await;
    let took = started.elapsed();
    let refused: ErrorReply = serde_json::from_slice(&reply)
        .unwrap_or_else(|e| panic!("not an error reply ({e}): {}", String::from_utf8_lossy(&reply)));
    assert_eq!(refused.error.code, "not_replicated", "{refused:?}");
    assert!(refused.error.message.contains("send the same commands again"), "{refused:?}");
    assert!(took >= REPLICATE_ACK_TIMEOUT && took < REPLICATE_ACK_TIMEOUT + SLACK, "answered after {took:?}");

    // The quorum back: a resend is answered with the seqs the first send committed.
    tokio::task::block_in_place(|| {
        cluster.nodes[1].restart();
        cluster.nodes[2].restart();
    });
    let head_before = *service.ledger.head().borrow();
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let results = loop {
        let body = serde_json::to_vec(&AppendRequest { commands: commands.clone(), atomic: false }).expect("encode");
        let reply = request(&client, subjects::APPEND, body).await;
        if let Ok(reply) = serde_json::from_slice::<AppendReply>(&reply) {
            break reply.results;
        }
        assert!(
            Instant::now() < deadline,
            "not replicated after {CATCH_UP_TIMEOUT:?}: {}",
            String::from_utf8_lossy(&reply)
        );
    };
    assert!(
        results.iter().all(|r| matches!(r, AppendResult::Duplicate { .. })),
        "the first send was committed: {results:?}"
    );
    let resent: Vec<u64> = results.iter().map(seq_of).collect();
    assert_eq!(resent, (head_before - 3..=head_before).collect::<Vec<_>>(), "the same seqs");
    assert_eq!(*service.ledger.head().borrow(), head_before, "nothing recorded twice");
    let stored = js_api("get the events stream's info", || stream.get_info()).await.state.last_sequence;
    assert!(stored >= head_before, "acknowledged, so stored: the stream holds 1..={stored}");
    check_stream_mirrors(&client, &stored_records(&service.ledger)).await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

/// The duplicate window the test below gives `STOCKPILE_EVENTS`, so that "idle for longer
/// than it" takes seconds (the ledger's own is two minutes).
const SHORT_DUPLICATE_WINDOW: Duration = Duration::from_secs(2);

/// Records each request of the test below appends: one group, published pipelined.
const PIPELINED_RECORDS: usize = 20;

/// (h2) A replica that was down while records were published, and restarts after the stream
/// has been quiet for longer than its duplicate window, stores them and what follows.
/// nats-server before 2.15 (2.9.10, 2.10.25 and 2.11.0 measured) forgets the last message id
/// on such a restart, and a replica that then applies a message expecting one
/// (`Nats-Expected-Last-Msg-Id`) refuses it and every message after it while raft calls it
/// current: acks still come from a quorum, but fewer nodes store what follows. The outbox
/// sends the expectation only while the message before is unacknowledged, so the first
/// publish of a group carries none. Each node's own replica is read from its monitoring
/// endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_after_a_quiet_spell_keeps_storing_what_follows() {
    let (mut cluster, _data, service, client) = replicating_ledger().await;
    let world = World::new();
    append(&client, setup_commands(&world), true).await;

    let js = jetstream::new(client.clone());
    let stream = js_api("get the events stream", || js.get_stream(subjects::EVENTS_STREAM)).await;
    let mut stream_config = js_api("get the events stream's info", || stream.get_info()).await.config;
    stream_config.duplicate_window = SHORT_DUPLICATE_WINDOW;
    js_api("shorten the duplicate window", || js.update_stream(stream_config.clone())).await;
    append(&client, acquires(&world, 0, PIPELINED_RECORDS), false).await;

    // A follower (not node 0, which the clients use) is down while a group is published
    // pipelined; then a quiet spell past the window; then it restarts and catches up by
    // applying the group's messages itself.
    let leader = js_api("get the events stream's info", || stream.get_info()).await.cluster;
    let leader = leader.and_then(|c| c.leader).expect("the stream has a leader");
    let follower = (1..3).find(|i| leader != format!("n{i}")).expect("a follower besides node 0");
    tokio::task::block_in_place(|| cluster.nodes[follower].kill());
    append(&client, acquires(&world, PIPELINED_RECORDS, PIPELINED_RECORDS), false).await;
    tokio::time::sleep(SHORT_DUPLICATE_WINDOW * 6).await;
    tokio::task::block_in_place(|| cluster.nodes[follower].restart());
    let head = *service.ledger.head().borrow();
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while cluster.replica_last_sequence(follower, subjects::EVENTS_STREAM) != Some(head) {
        assert!(
            Instant::now() < deadline,
            "node {follower}, restarted, never stored record {head}: its replica ends at {:?}",
            cluster.replica_last_sequence(follower, subjects::EVENTS_STREAM)
        );
        tokio::time::sleep(POLL).await;
    }
    for request in 2..=3 {
        append(&client, acquires(&world, request * PIPELINED_RECORDS, PIPELINED_RECORDS), false).await;
    }

    let head = *service.ledger.head().borrow();
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let stored: Vec<Option<u64>> =
            (0..3).map(|i| cluster.replica_last_sequence(i, subjects::EVENTS_STREAM)).collect();
        if stored.iter().all(|s| *s == Some(head)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every replica should hold records 1..={head}; each node's replica ends at {stored:?} (node {follower} was restarted)"
        );
        tokio::time::sleep(POLL).await;
    }
    check_stream_mirrors(&client, &stored_records(&service.ledger)).await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
