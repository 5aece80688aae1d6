//! (c) The service killed while the outbox is behind: records committed but not yet
//! published, acks in flight lost, the durable cursor's last writes lost. After a restart
//! over the same data directory the outbox publishes the rest; the stream ends holding
//! exactly the log (message count = head seq). JetStream's dedup absorbs a resent record,
//! the expected-last-sequence guard refuses one that would land out of order, and the
//! expected-last-message-id guard one that names another record as the stream's last.

use super::*;
use async_nats::jetstream::context::{Publish, PublishErrorKind};
use stockpile_tests::nats::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_resumes_and_the_stream_ends_equal_to_the_log() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&nats.url()), open_ledger(data.path()));
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();
    append(&client, setup_commands(&world), true).await;
    for batch in 0..4 {
        append(&client, acquires(&world, batch * 25, 25), false).await;
    }
    check_stream_mirrors(&client, &stored_records(&service.ledger)).await;

    // A burst commits, and the service dies while the outbox is publishing it.
    let burst = service.ledger.append(acquires(&world, 100, 300), false).await.expect("append");
    assert!(burst.iter().all(|o| o.seq().is_some()));
    let ledger = service.abort().await;
    // More records commit with no outbox running: they reach the stream only after the restart.
    let later = ledger.append(acquires(&world, 400, 100), false).await.expect("append");
    assert!(later.iter().all(|o| o.seq().is_some()));
    // And the cursor writes after seq 3 were lost.
    ledger.store().set_outbox_cursor(3).expect("rewind the cursor");

    // The process restarts: the ledger reopens from disk and the service comes back.
    ledger.shutdown().expect("the ledger stops");
    let ledger = open_ledger(data.path());
    let head = *ledger.head().borrow();
    let service = InProcess::serve(config(&nats.url()), ledger);
    wait_until_serving(&client).await;
    let records = stored_records(&service.ledger);
    assert_eq!(records.len(), setup_commands(&world).len() + 500, "setup and every acquire are in the log");
    check_stream_mirrors(&client, &records).await;
    wait_for_cursor(&service.ledger, head).await;

    // A record resent with its hash as Nats-Msg-Id is dropped as a duplicate ...
    let js = jetstream::new(client.clone());
    let fifth: serde_json::Value = serde_json::from_slice(&records[4]).expect("JSON");
    let hash = fifth["hash"].as_str().expect("hash");
    let resend = Publish::build().message_id(hash).payload(records[4].clone().into());
    let ack = js.send_publish(expected_subject(&records[4]), resend).await.expect("publish").await.expect("ack");
    assert!(ack.duplicate, "JetStream drops the resend");
    assert_eq!(ack.sequence, 5);
    // ... and a new message that does not follow the stream's last record is refused.
    let misplaced = Publish::build().message_id("not-a-record").expected_last_sequence(head - 1).payload("x".into());
    let refused = js.send_publish("stockpile.v1.events._._.misplaced", misplaced).await.expect("publish").await;
    assert_eq!(refused.expect_err("refused").kind(), PublishErrorKind::WrongLastSequence);
    // ... and so is one at the right sequence that names another record as its predecessor:
    // what a deposed ledger's pipelined publish looks like once another wrote the last one.
    let forked = Publish::build()
        .message_id("not-a-record-either")
        .expected_last_sequence(head)
        .expected_last_message_id(hash)
        .payload("x".into());
    let refused = js.send_publish("stockpile.v1.events._._.forked", forked).await.expect("publish").await;
    assert_eq!(refused.expect_err("refused").kind(), PublishErrorKind::WrongLastMessageId);
    let mut stream = js.get_stream(subjects::EVENTS_STREAM).await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, head, "stream message count = head seq");

    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
