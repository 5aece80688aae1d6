//! (d) Bad requests on every subject — malformed JSON, the wrong shape, unknown fields,
//! too many commands, oversized payloads — get a typed error reply, change nothing, and
//! the service goes on serving.

use super::*;
use stockpile_ledger::service::Limits;
use stockpile_tests::nats::NatsServer;

/// Commands per append request in this test: small, so "too many" is cheap to reach.
const COMMANDS_MAX: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_the_service_keeps_serving() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = config(&nats.url());
    config.limits = Limits { append_commands_max: COMMANDS_MAX, ..Limits::default() };
    let service = InProcess::serve(config.clone(), open_ledger(data.path()));
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();
    for chunk in setup_commands(&world).chunks(COMMANDS_MAX) {
        for result in append(&client, chunk.to_vec(), false).await {
            seq_of(&result);
        }
    }
    let head = *service.ledger.head().borrow();

    let one = serde_json::to_value(&acquires(&world, 0, 1)[0]).expect("encode");
    let mut with_extra = one.clone();
    with_extra["command"]["colour"] = "red".into();
    let too_many =
        serde_json::to_vec(&AppendRequest { commands: acquires(&world, 0, COMMANDS_MAX + 1), atomic: false })
            .expect("encode");
    let append_oversized = vec![b' '; config.limits.append_request_bytes_max + 1];
    let range_oversized = vec![b' '; config.limits.range_request_bytes_max + 1];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (subjects::APPEND, b"".to_vec(), "malformed_request"),
        (subjects::APPEND, b"{\"commands\": [".to_vec(), "malformed_request"),
        (subjects::APPEND, b"\xff\xfe not utf-8".to_vec(), "malformed_request"),
        (subjects::APPEND, b"[]".to_vec(), "malformed_request"),
        (subjects::APPEND, br#"{"commands": {}}"#.to_vec(), "malformed_request"),
        (subjects::APPEND, br#"{"commands": [], "atomic": "yes"}"#.to_vec(), "malformed_request"),
        (subjects::APPEND, br#"{"commands": []}"#.to_vec(), "malformed_request"),
        (
            subjects::APPEND,
            serde_json::to_vec(&serde_json::json!({"commands": [one], "priority": 1})).unwrap(),
            "malformed_request",
        ),
        (
            subjects::APPEND,
            serde_json::to_vec(&serde_json::json!({"commands": [with_extra]})).unwrap(),
            "malformed_request",
        ),
        (subjects::APPEND, too_many, "too_many_commands"),
        (subjects::APPEND, append_oversized, "request_too_large"),
        (subjects::RANGE, b"".to_vec(), "malformed_request"),
        (subjects::RANGE, b"range please".to_vec(), "malformed_request"),
        (subjects::RANGE, br#"{"from": "1"}"#.to_vec(), "malformed_request"),
        (subjects::RANGE, br#"{"from": -1}"#.to_vec(), "malformed_request"),
        (subjects::RANGE, br#"{"from": 1, "until": 3}"#.to_vec(), "malformed_request"),
        (subjects::RANGE, br#"{"from": 0}"#.to_vec(), "malformed_request"),
        (subjects::RANGE, br#"{"from": 5, "to": 2}"#.to_vec(), "malformed_request"),
        (subjects::RANGE, br#"{"from": 1, "limit": 0}"#.to_vec(), "malformed_request"),
        (subjects::RANGE, range_oversized, "request_too_large"),
    ];
    for (subject, payload, code) in cases {
        let shown = String::from_utf8_lossy(&payload[..payload.len().min(60)]).into_owned();
        let reply = error_reply(&request(&client, subject, payload).await);
        assert_eq!(reply.error.code, code, "{subject} {shown:?}: {}", reply.error.message);
        assert!(!reply.error.message.is_empty());
    }
    // A message published without a reply subject is ignored, not a crash.
    client.publish(subjects::APPEND, "{\"commands\": [".into()).await.expect("publish");
    assert_eq!(*service.ledger.head().borrow(), head, "bad requests wrote nothing");

    // A bad command inside a good request is a per-command result, not a request error.
    let mut tampered = acquires(&world, 0, 2);
    tampered[1].command.occurred_at = at("2026-02-02T00:00:00Z");
    let results = append(&client, tampered, false).await;
    assert!(matches!(results[0], AppendResult::Appended { seq, .. } if seq == head + 1));
    assert!(matches!(&results[1], AppendResult::Rejected { code, .. } if code == "bad_signature"), "{results:?}");

    // Still serving, and the stream has exactly the ledger's records.
    let results = append(&client, acquires(&world, 2, COMMANDS_MAX), false).await;
    assert_eq!(results.iter().map(seq_of).collect::<Vec<_>>(), [head + 2, head + 3, head + 4]);
    let records = stored_records(&service.ledger);
    assert!(records_via_range(&client).await == records);
    check_stream_mirrors(&client, &records).await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
