//! (b) nats-server killed and restarted in the middle of a stream of appends. While it is
//! down, appends go on through the embedded ledger handle (the writer never waits on NATS);
//! after it returns, appends go over NATS again and the outbox catches up: every record is
//! in the stream exactly once, in order, and a projector that followed the stream across
//! the outage ends equal to a rebuild from the ledger.

use super::projector::{assert_views_equal_rebuild, ProjectorTask};
use super::*;
use stockpile_tests::nats::NatsServer;

const ROUNDS: usize = 30;
const PER_ROUND: usize = 20;
/// Rounds `KILL_AT..RESTART_AT` run while nats-server is down.
const KILL_AT: usize = 10;
const RESTART_AT: usize = 20;
/// Pause per round while NATS is down, so the outbox tries (and fails) to publish meanwhile.
const DOWN_ROUND_PAUSE: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_committed_while_nats_is_down_are_published_once_in_order_when_it_returns() {
    let mut nats = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&nats.url()), open_ledger(data.path()));
    let projector = ProjectorTask::run(&nats.url(), projector_dir.path());
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();
    let setup_len = append(&client, setup_commands(&world), true).await.len();

    let mut seqs = Vec::new();
    for round in 0..ROUNDS {
        if round == KILL_AT {
            tokio::task::block_in_place(|| nats.kill());
        }
        if round == RESTART_AT {
            let published = service.ledger.store().outbox_cursor().expect("cursor");
            let head = *service.ledger.head().borrow();
            assert!(published < head, "records committed during the outage wait for NATS ({published} < {head})");
            tokio::task::block_in_place(|| nats.restart());
        }
        let batch = acquires(&world, round * PER_ROUND, PER_ROUND);
        let results: Vec<AppendResult> = if (KILL_AT..RESTART_AT).contains(&round) {
            let outcomes = service.ledger.append(batch, false).await.expect("the ledger appends while NATS is down");
            tokio::time::sleep(DOWN_ROUND_PAUSE).await;
            outcomes.into_iter().map(AppendResult::from).collect()
        } else if round < KILL_AT {
            append(&client, batch, false).await
        } else {
            append_retrying(&client, batch).await
        };
        seqs.extend(results.iter().map(seq_of));
    }
    let head = (setup_len + ROUNDS * PER_ROUND) as u64;
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (setup_len as u64 + 1..=head).collect::<Vec<_>>(), "every command appended once");

    let records = stored_records(&service.ledger);
    assert_eq!(records.len() as u64, head);
    check_stream_mirrors(&client, &records).await;
    wait_for_cursor(&service.ledger, head).await;
    assert_views_equal_rebuild(&client, service.ledger.store().clone(), head).await;
    projector.stop().await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
