//! (f) A three-node JetStream cluster with an R3 `STOCKPILE_EVENTS` stream: the harness
//! forms the cluster, and when the stream's leader node is killed during appends, every
//! record still arrives, once, in order, and a projector following the stream through the
//! failover ends equal to a rebuild from the ledger.

use super::projector::{assert_views_equal_rebuild, ProjectorTask};
use super::*;
use stockpile_tests::nats::{NatsCluster, CLUSTER_NAME};

const ROUNDS: usize = 24;
const PER_ROUND: usize = 20;
/// The round before which the stream leader's node is killed.
const KILL_AT: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_the_stream_leader_during_appends_still_gets_every_record_in_order() {
    let mut cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    let probe = cluster.wait_for_jetstream().await;
    assert_eq!(probe.name.as_deref(), Some(CLUSTER_NAME), "the nodes formed one cluster");
    assert_eq!(probe.replicas.len(), 2, "an R3 stream has a leader and two replicas: {probe:?}");

    let data = tempfile::tempdir().expect("tempdir");
    let mut config = config(&cluster.urls());
    config.stream_replicas = 3;
    let service = InProcess::serve(config, open_ledger(data.path()));
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let projector = ProjectorTask::run(&cluster.urls(), projector_dir.path());
    let client = client(&cluster.urls()).await;
    wait_until_serving(&client).await;
    let world = World::new();
    let setup_len = append(&client, setup_commands(&world), true).await.len();

    let js = jetstream::new(client.clone());
    let stream = js_api("get the events stream", || js.get_stream(subjects::EVENTS_STREAM)).await;
    let info = js_api("get the events stream's info", || stream.get_info()).await;
    assert_eq!(info.config.num_replicas, 3);
    let leader = info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("the stream has a leader");
    let leader_node: usize = leader.trim_start_matches('n').parse().expect("nodes are named n<i>");

    let mut seqs = Vec::new();
    for round in 0..ROUNDS {
        if round == KILL_AT {
            tokio::task::block_in_place(|| cluster.nodes[leader_node].kill());
        }
        let results = append_retrying(&client, acquires(&world, round * PER_ROUND, PER_ROUND)).await;
        seqs.extend(results.iter().map(seq_of));
    }
    let head = (setup_len + ROUNDS * PER_ROUND) as u64;
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (setup_len as u64 + 1..=head).collect::<Vec<_>>());

    let records = stored_records(&service.ledger);
    check_stream_mirrors(&client, &records).await;
    let info = js_api("get the events stream's info", || stream.get_info()).await;
    assert_ne!(info.cluster.as_ref().and_then(|c| c.leader.clone()), Some(leader), "a new leader took over");
    assert_views_equal_rebuild(&client, service.ledger.store().clone(), head).await;
    projector.stop().await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
