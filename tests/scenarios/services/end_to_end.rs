//! (a) Signed commands over NATS → appended → every record on `STOCKPILE_EVENTS`, in order,
//! on its subject, with its headers and its stored bytes, and on `STOCKPILE_FEEDS` once
//! per partner it concerns (a transfer NL → DE on both feeds); `ledger.range` pages the same
//! bytes. (e) The micro service answers `$SRV.PING`, `INFO` and `STATS`.

use super::*;
use stockpile_tests::nats::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_over_nats_reach_the_stream_in_order_byte_for_byte() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&nats.url()), open_ledger(data.path()));
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();

    let setup = setup_commands(&world);
    let setup_len = setup.len() as u64;
    let results = append(&client, setup, true).await;
    let seqs: Vec<u64> = results.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=setup_len).collect::<Vec<_>>(), "an atomic batch appends in order");
    assert!(results.iter().all(|r| matches!(r, AppendResult::Appended { .. })));

    // Twenty requests in flight at once; together they take the next 500 seqs.
    const REQUESTS: usize = 20;
    const PER_REQUEST: usize = 25;
    let batches = (0..REQUESTS).map(|r| acquires(&world, r * PER_REQUEST, PER_REQUEST));
    let replies = futures::future::join_all(batches.map(|batch| append(&client, batch, false))).await;
    let mut seqs: Vec<u64> = replies.iter().flatten().map(seq_of).collect();
    seqs.sort_unstable();
    let head = setup_len + (REQUESTS * PER_REQUEST) as u64;
    assert_eq!(seqs, (setup_len + 1..=head).collect::<Vec<_>>(), "gap-free seqs, one per command");

    // Resending a command returns its original seq and writes nothing.
    let again = append(&client, acquires(&world, 0, 1), false).await;
    assert_eq!(again[0], AppendResult::Duplicate { seq: seq_of(&replies[0][0]), event_id: "acq-0".into() });
    assert_eq!(*service.ledger.head().borrow(), head);

    // A transfer from NL to DE concerns both: it goes on both partners' feeds.
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
    let moved = append(&client, vec![transfer], false).await;
    let head = seq_of(&moved[0]);

    let records = stored_records(&service.ledger);
    let feeds = expected_messages(&records[head as usize - 1..], true);
    let partners: Vec<_> = feeds.iter().map(|m| (m.subject.as_str(), m.partner.as_deref())).collect();
    assert_eq!(
        partners,
        [("stockpile.v1.feed.DE.cobalt.transfer", Some("DE")), ("stockpile.v1.feed.NL.cobalt.transfer", Some("NL"))]
    );
    assert_eq!(expected_subject(&records[0]), "stockpile.v1.events._._.genesis", "absent parts are `_`");
    // acq-0 (NL cobalt); the 20 concurrent requests may commit in any order.
    let acq_0 = &records[(seq_of(&replies[0][0]) - 1) as usize];
    assert_eq!(expected_subject(acq_0), "stockpile.v1.events.NL.cobalt.acquire");
    check_stream_mirrors(&client, &records).await;
    wait_for_cursor(&service.ledger, head).await;

    // ledger.range: the same bytes, in pages.
    assert!(records_via_range(&client).await == records, "range returns the stored bytes");
    let page = range(&client, RangeRequest { from: 3, to: Some(10), limit: Some(4) }).await;
    assert_eq!(page.records.len(), 4);
    assert_eq!(page.records[0].get().as_bytes(), records[2].as_slice());
    assert_eq!((page.head, page.next), (head, Some(7)));
    let tail = range(&client, RangeRequest { from: head - 1, to: Some(head + 50), limit: None }).await;
    assert_eq!((tail.records.len(), tail.next), (2, None), "a range past the head ends at the head");
    let beyond = range(&client, RangeRequest { from: head + 1, to: None, limit: None }).await;
    assert_eq!((beyond.records.len(), beyond.head, beyond.next), (0, head, None));

    let ledger = service.stop().await;
    assert_eq!(ledger.store().outbox_cursor().expect("cursor"), head, "the cursor is written after the acks");
    ledger.shutdown().expect("the ledger stops cleanly");
}

async fn range(client: &async_nats::Client, request: RangeRequest) -> RangeReply {
    let reply = super::request(client, subjects::RANGE, serde_json::to_vec(&request).expect("encode")).await;
    serde_json::from_slice(&reply)
        .unwrap_or_else(|e| panic!("not a range reply ({e}): {}", String::from_utf8_lossy(&reply)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micro_service_answers_ping_info_and_stats() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&nats.url()), open_ledger(data.path()));
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;

    let ping = request(&client, "$SRV.PING.stockpile-ledger", Vec::new()).await;
    let ping: serde_json::Value = serde_json::from_slice(&ping).expect("PING reply is JSON");
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    assert_eq!(ping["name"], "stockpile-ledger");
    // The unnamed PING reaches every service; ours answers it too.
    let any = request(&client, "$SRV.PING", Vec::new()).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&any).expect("JSON")["name"], "stockpile-ledger");

    let info = request(&client, "$SRV.INFO.stockpile-ledger", Vec::new()).await;
    let info: serde_json::Value = serde_json::from_slice(&info).expect("INFO reply is JSON");
    let mut endpoints: Vec<&str> = info["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["subject"].as_str().expect("subject"))
        .collect();
    endpoints.sort_unstable();
    assert_eq!(
        endpoints,
        [
            "stockpile.v1.ledger.append",
            "stockpile.v1.ledger.append.*",
            "stockpile.v1.ledger.checkpoint",
            "stockpile.v1.ledger.proof",
            "stockpile.v1.ledger.range"
        ]
    );

    let bad = request(&client, subjects::RANGE, b"{}".to_vec()).await;
    assert_eq!(error_reply(&bad).error.code, "malformed_request");
    let stats = request(&client, "$SRV.STATS.stockpile-ledger", Vec::new()).await;
    let stats: serde_json::Value = serde_json::from_slice(&stats).expect("STATS reply is JSON");
    let range_stats = stats["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["subject"] == "stockpile.v1.ledger.range")
        .expect("range endpoint stats");
    assert_eq!(range_stats["num_requests"], 1);

    service.stop().await.shutdown().expect("the ledger stops cleanly");
}

/// Checkpoints are signed on request and at the interval, published on
/// `stockpile.v1.checkpoints`, and proofs from `ledger.proof` hold against them offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_published_and_proofs_over_nats_hold_against_them() {
    use stockpile_ledger::audit::Checkpoint;
    use stockpile_ledger::wire::{ProofReply, ProofRequest};
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = config(&nats.url());
    config.checkpoint_interval = Duration::from_millis(200);
    let service = InProcess::serve(config, open_ledger(data.path()));
    let client = client(&nats.url()).await;
    let mut published = client.subscribe(subjects::CHECKPOINTS).await.expect("subscribe");
    wait_until_serving(&client).await;
    let world = World::new();
    append(&client, setup_commands(&world), true).await;
    let old: Checkpoint =
        serde_json::from_slice(&request(&client, subjects::CHECKPOINT, Vec::new()).await).expect("a checkpoint");
    let head = *service.ledger.head().borrow();
    assert_eq!(old.tree_size, head);
    old.verify_signature().expect("signed by the key it names");

    // The log grows; the interval task signs and publishes a checkpoint over the new head.
    append(&client, acquires(&world, 0, 40), false).await;
    let new_head = *service.ledger.head().borrow();
    let new = loop {
        let message = tokio::time::timeout(CATCH_UP_TIMEOUT, published.next())
            .await
            .expect("a checkpoint is published within the timeout")
            .expect("subscription open");
        let c: Checkpoint = serde_json::from_slice(&message.payload).expect("a published checkpoint");
        if c.tree_size == new_head {
            break c;
        }
    };
    assert_eq!(new.key, old.key, "one ledger key");

    let proof = |r: ProofRequest| {
        let client = client.clone();
        async move {
            let reply = request(&client, subjects::PROOF, serde_json::to_vec(&r).expect("encode")).await;
            serde_json::from_slice::<ProofReply>(&reply)
                .unwrap_or_else(|e| panic!("not a proof ({e}): {}", String::from_utf8_lossy(&reply)))
        }
    };
    let ProofReply::Inclusion(inclusion) = proof(ProofRequest::Inclusion { seq: 2, tree_size: old.tree_size }).await
    else {
        panic!("an inclusion proof")
    };
    inclusion.verify(&old).expect("record 2 is in the old checkpoint's tree");
    let ProofReply::Consistency(consistency) =
        proof(ProofRequest::Consistency { old_size: old.tree_size, new_size: new.tree_size }).await
    else {
        panic!("a consistency proof")
    };
    consistency.verify(&old, &new).expect("the new tree extends the old one");
    let beyond = serde_json::to_vec(&ProofRequest::Inclusion { seq: 1, tree_size: new_head + 1 }).unwrap();
    assert_eq!(error_reply(&request(&client, subjects::PROOF, beyond).await).error.code, "malformed_request");

    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
