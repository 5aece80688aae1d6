//! One client floods `ledger.proof` (about [`FLOOD_PER_SECOND`] requests a second for
//! [`FLOOD`]) against a ledger of [`RECORDS`] records while another appends one command at a
//! time: every append is answered, every proof request gets a reply (a proof or
//! `overloaded`, never silence), and right after the flood append, range and proof each
//! answer within [`AFTER_FLOOD_DEADLINE`]. The appends' latencies are printed (p50/p99),
//! never asserted. Before per-class bounds and stored Merkle nodes, proofs (each rebuilding
//! the tree from every record) took all of the service's request slots: appends waited
//! behind them and nothing answered long after the flood.

use super::*;
use futures::FutureExt;
use stockpile_ledger::bench;
use stockpile_ledger::wire::{ProofReply, ProofRequest};
use stockpile_tests::nats::NatsServer;

/// Records in the ledger: the 100k takes long to write in a debug build, so the
/// test uses 30k (old proofs cost ~0.06 s each at that size in release, far more in debug:
/// enough to starve appends without bounds).
const RECORDS: usize = 30_000;

/// Proof requests sent per second during the flood.
const FLOOD_PER_SECOND: u64 = 1_000;

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(10);

/// Pause between two of the appender's requests.
const APPEND_EVERY: Duration = Duration::from_millis(20);

/// How long each request may take right after the flood: generous for a loaded debug build,
/// and far shorter than the backlog an unbounded service builds.
const AFTER_FLOOD_DEADLINE: Duration = Duration::from_secs(10);

/// How long after the flood every proof request must have had its reply.
const REPLIES_DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_flood_never_starves_appends_and_everything_answers_after_it() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_path_buf();
    let building = Instant::now();
    let (bulk, mut live) = tokio::task::spawn_blocking(move || build_ledger(&dir)).await.expect("build the ledger");
    println!("proof flood: {bulk} records written in {:?}", building.elapsed());
    let nats = NatsServer::start();
    let service = InProcess::serve(config(&nats.url()), bench::start(data.path()));
    let flooder = client(&nats.url()).await;
    let appender = client(&nats.url()).await;
    wait_until_serving(&appender).await;
    let head = *service.ledger.head().borrow();
    assert!(head as usize > bulk, "the ledger holds what was written: {head} records");
    // The outbox publishes the whole log first; the flood starts once it has.
    wait_for_cursor(&service.ledger, head).await;

    let flood = tokio::spawn(flood_proofs(flooder, head));
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < FLOOD {
        let command = live.next().expect("enough live commands");
        let sent = Instant::now();
        let reply =
            tokio::time::timeout(REPLY_TIMEOUT, append(&appender, vec![command], false)).await.unwrap_or_else(|_| {
                panic!("an append sent {:?} into the flood got no reply within {REPLY_TIMEOUT:?}", sent - started)
            });
        seq_of(&reply[0]);
        latencies.push(sent.elapsed());
        tokio::time::sleep(APPEND_EVERY).await;
    }
    let (sent, proofs, overloaded) = flood.await.expect("the flood task");
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "proof flood: {sent} proof requests, {proofs} proofs, {overloaded} overloaded; {} appends: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    assert_eq!(proofs + overloaded, sent, "every proof request got a reply: a proof or overloaded");
    assert!(proofs > 0, "some proofs were made during the flood");

    // Right after: each kind answers, and with its real reply.
    let command = live.next().expect("a live command");
    let after = tokio::time::timeout(AFTER_FLOOD_DEADLINE, append(&appender, vec![command], false))
        .await
        .expect("an append right after the flood answers in time");
    seq_of(&after[0]);
    let range = serde_json::to_vec(&RangeRequest { from: 1, to: None, limit: Some(10) }).unwrap();
    let range = tokio::time::timeout(AFTER_FLOOD_DEADLINE, request(&appender, subjects::RANGE, range))
        .await
        .expect("a range right after the flood answers in time");
    let range: RangeReply = serde_json::from_slice(&range).expect("a range reply");
    assert_eq!(range.records.len(), 10);
    let proof = serde_json::to_vec(&ProofRequest::Inclusion { seq: 7, tree_size: head }).unwrap();
    let proof = tokio::time::timeout(AFTER_FLOOD_DEADLINE, request(&appender, subjects::PROOF, proof))
        .await
        .expect("a proof right after the flood answers in time");
    let proof: ProofReply = serde_json::from_slice(&proof)
        .unwrap_or_else(|e| panic!("not a proof ({e}): {}", String::from_utf8_lossy(&proof)));
    assert!(matches!(proof, ProofReply::Inclusion(p) if p.seq == 7 && p.tree_size == head));
    service.stop().await;
}

/// Writes the bench workload's setup and `RECORDS` store commands of submitter 0; returns
/// how many were written and submitter 1's commands for the live appender.
fn build_ledger(dir: &Path) -> (usize, std::vec::IntoIter<SignedCommand>) {
    let workload = bench::prepare_appends(dir, 2, 2 * RECORDS);
    let mut commands = workload.commands.into_iter();
    let bulk = commands.next().expect("submitter 0");
    let live = commands.next().expect("submitter 1");
    let handle = bench::start(dir);
    for chunk in bulk.chunks(stockpile_ledger::writer::GROUP_COMMANDS_MAX / 2) {
        let out = handle.append_blocking(chunk.to_vec(), false).expect("append");
        assert!(out.iter().all(|o| matches!(o, stockpile_ledger::Outcome::Appended { .. })));
    }
    handle.shutdown().expect("shutdown");
    (bulk.len(), live.into_iter())
}

/// Sends proof requests at [`FLOOD_PER_SECOND`] for [`FLOOD`] without waiting for replies,
/// then waits up to [`REPLIES_DEADLINE`] for them: (sent, proofs, overloaded).
async fn flood_proofs(client: async_nats::Client, head: u64) -> (u64, u64, u64) {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.*")).await.expect("subscribe to the inbox");
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FLOOD_PER_SECOND));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut answers = [0u64; 2];
    while started.elapsed() < FLOOD {
        tick.tick().await;
        let seq = 1 + (sent * 7919) % head;
        let body = if sent % 4 == 3 {
            ProofRequest::Consistency { old_size: seq, new_size: head }
        } else {
            ProofRequest::Inclusion { seq, tree_size: head }
        };
        let body = serde_json::to_vec(&body).unwrap();
        client.publish_with_reply(subjects::PROOF, format!("{inbox}.{sent}"), body.into()).await.expect("publish");
        sent += 1;
        while let Some(Some(reply)) = replies.next().now_or_never() {
            count(&reply.payload, &mut answers);
        }
    }
    let deadline = Instant::now() + REPLIES_DEADLINE;
    while answers[0] + answers[1] < sent {
        match tokio::time::timeout_at(deadline.into(), replies.next()).await {
            Ok(Some(reply)) => count(&reply.payload, &mut answers),
            _ => break,
        }
    }
    (sent, answers[0], answers[1])
}

/// Counts a reply to a proof request: `answers[0]` proofs, `answers[1]` overloaded.
fn count(payload: &[u8], answers: &mut [u64; 2]) {
    if serde_json::from_slice::<ProofReply>(payload).is_ok() {
        answers[0] += 1;
    } else {
        let e = error_reply(payload);
        assert_eq!(e.error.code, "overloaded", "a proof request is answered with a proof or overloaded: {e:?}");
        answers[1] += 1;
    }
}
