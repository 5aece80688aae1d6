//! The `proof-flood` scenario, in a release build and at the `--history` size: what
//! `tests/scenarios/services/flood.rs` checks in a debug build at 30k records. On the
//! accounts configuration `stockpile nats-config` writes, partner DE's user sends
//! [`FLOOD_PER_SECOND`] `ledger.proof` requests a second for [`FLOOD`] without waiting for
//! replies, while partner NL's user appends one command every [`APPEND_EVERY`] on its own
//! channel. Reported: the appends' latency during the flood, the proof requests answered
//! with a proof or `overloaded` (and any left unanswered), and, after the flood, how long
//! until every proof request had its reply and a fresh append, range (as the auditor) and
//! proof each answered.

use super::embedded::fresh_dir;
use super::nats_server::{self, Server};
use super::over_nats::{append_batch_on, connect_as, runtime, with_ledger_config, ACCOUNTS_PARTNER};
use super::report::{Figure, Status};
use super::{progress, Plan};
use crate::error::{operational, Result};
use futures::StreamExt as _;
use std::path::Path;
use std::time::{Duration, Instant};
use stockpile_ledger::bench::{self, Latency, Rate};
use stockpile_ledger::service::access::Role;
use stockpile_ledger::service::subjects;
use stockpile_ledger::wire::{ErrorReply, ProofReply, ProofRequest, RangeReply, RangeRequest};
use stockpile_ledger::LedgerHandle;
use stockpile_projector::bench::generate_history;

/// Proof requests sent per second during the flood (the flood test's rate).
pub const FLOOD_PER_SECOND: u64 = 1_000;

/// How long the flood lasts.
pub const FLOOD: Duration = Duration::from_secs(10);

/// Pause between two of the appender's requests (one command each).
pub const APPEND_EVERY: Duration = Duration::from_millis(20);

/// How long after the flood the proof replies are waited for; requests still unanswered
/// then are reported as such (and fail the figure).
pub const REPLIES_DEADLINE: Duration = Duration::from_secs(60);

/// The partner whose user floods `ledger.proof` (the appender is [`ACCOUNTS_PARTNER`]).
pub const FLOOD_PARTNER: &str = "DE";

/// Longest wait for the outbox to publish the generated history before the flood starts
/// (it publishes every record to the events stream and the feeds when the service starts).
pub const OUTBOX_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(900);

/// Pause between two looks at the outbox cursor.
const OUTBOX_POLL: Duration = Duration::from_millis(100);

/// What the flood measured.
struct Flooded {
    appends: Vec<Duration>,
    sent: u64,
    proofs: u64,
    overloaded: u64,
    other: u64,
    /// From the flood's end until every proof request was answered (or the deadline).
    replies_after: Duration,
    /// From the flood's end until, after the replies, an append, a range and a proof answered.
    recovered_after: Duration,
    head: u64,
    outbox: Duration,
}

pub fn proof_flood(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    const NAME: &str = "appends during a proof flood";
    let found = nats_server::candidates();
    let bin = match nats_server::preferred(&found) {
        Ok(b) => b,
        Err(why) => return Ok(vec![Figure::not_measured("proof-flood-append", NAME, None, Status::Unavailable, why)]),
    };
    let dir = fresh_dir(work, "proof-flood")?;
    let ledger_dir = dir.join("ledger");
    let bar = progress(plan.history, "history for proof-flood");
    let history = generate_history(&ledger_dir, plan.history, plan.deadline(), &|n| bar.inc(n)).map_err(operational)?;
    bar.finish_and_clear();
    // One command per tick of the flood, one after it, and a few to spare.
    let live = (FLOOD.as_millis() / APPEND_EVERY.as_millis()) as usize + 8;
    let workload = bench::prepare_appends_after_history(&ledger_dir, 1, live);
    let mut commands = workload.commands.into_iter().flatten();
    let (server, users) = Server::start_accounts(&bin, work).map_err(operational)?;
    let ledger = bench::start(&ledger_dir);
    let config = users.ledger_config(server.url(), &ledger_dir);
    let admin = users.identity(&Role::Admin);
    let (flooder, appender, auditor) = (
        users.identity(&Role::Partner(FLOOD_PARTNER.into())),
        users.identity(&Role::Partner(ACCOUNTS_PARTNER.into())),
        users.identity(&Role::Auditor),
    );
    let rt = runtime()?;
    let began = Instant::now();
    let url = server.url();
    let flooded = rt.block_on(with_ledger_config(config, Some(admin), ledger.clone(), async {
        let flooder = connect_as(url, Some(&flooder)).await?;
        let appender = connect_as(url, Some(&appender)).await?;
        let auditor = connect_as(url, Some(&auditor)).await?;
        let outbox = wait_for_outbox(&ledger).await?;
        let head = *ledger.head().borrow();
        let channel = subjects::partner_append_subject(ACCOUNTS_PARTNER);
        let flood = tokio::spawn(flood_proofs(flooder, head));
        let started = Instant::now();
        let mut appends = Vec::new();
        while started.elapsed() < FLOOD {
            let command = commands.next().ok_or_else(|| operational("too few live commands"))?;
            let sent = Instant::now();
            append_batch_on(&appender, &channel, vec![command]).await?;
            appends.push(sent.elapsed());
            tokio::time::sleep(APPEND_EVERY).await;
        }
        let (sent, answers, flood_ended, replied_at) = flood.await.map_err(operational)??;
        // Right after the replies: each kind answers with its real reply.
        let command = commands.next().ok_or_else(|| operational("too few live commands"))?;
        append_batch_on(&appender, &channel, vec![command]).await?;
        let range = serde_json::to_vec(&RangeRequest { from: 1, to: None, limit: Some(10) }).expect("encodes");
        let range = auditor.request(subjects::RANGE, range.into()).await.map_err(operational)?;
        let range: RangeReply = serde_json::from_slice(&range.payload)
            .map_err(|e| operational(format!("a range after the flood: not a range reply ({e})")))?;
        if range.records.len() != 10 {
            return Err(operational(format!("a range of 10 after the flood gave {}", range.records.len())));
        }
        let proof = serde_json::to_vec(&ProofRequest::Inclusion { seq: 7, tree_size: head }).expect("encodes");
        let proof = appender.request(subjects::PROOF, proof.into()).await.map_err(operational)?;
        serde_json::from_slice::<ProofReply>(&proof.payload)
            .map_err(|e| operational(format!("a proof after the flood: not a proof ({e})")))?;
        let recovered_after = flood_ended.elapsed();
        Ok(Flooded {
            appends,
            sent,
            proofs: answers[0],
            overloaded: answers[1],
            other: answers[2],
            replies_after: replied_at.saturating_duration_since(flood_ended),
            recovered_after,
            head,
            outbox,
        })
    }))?;
    ledger.shutdown().map_err(operational)?;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let seconds = began.elapsed().as_secs_f64();
    let unanswered = flooded.sent - flooded.proofs - flooded.overloaded - flooded.other;
    let over = format!(
        "partner {ACCOUNTS_PARTNER} appends every {} ms on its channel while partner {FLOOD_PARTNER} sends {FLOOD_PER_SECOND} ledger.proof/s for {} s; accounts config; tree size {} ({} generated records; outbox published them in {:.1} s before the flood)",
        APPEND_EVERY.as_millis(),
        FLOOD.as_secs(),
        flooded.head,
        history.records,
        flooded.outbox.as_secs_f64()
    );
    let mut figures = Vec::new();
    match Latency::of(NAME, flooded.appends) {
        Some(l) => figures.push(Figure::latency("proof-flood-append", l, FLOOD.as_secs_f64()).with_note(over)),
        None => figures.push(Figure::not_measured(
            "proof-flood-append",
            NAME,
            None,
            Status::Failed,
            "no append was made".into(),
        )),
    }
    let proofs = Rate {
        name: "proof requests answered with a proof during the flood".into(),
        events: flooded.proofs,
        seconds: FLOOD.as_secs_f64(),
        per_second: flooded.proofs as f64 / FLOOD.as_secs_f64(),
    };
    let mut answered = Figure::rate("proof-flood-proofs", None, proofs).with_note(format!(
        "{} sent: {} proofs, {} overloaded, {} other errors, {unanswered} unanswered within {} s",
        flooded.sent,
        flooded.proofs,
        flooded.overloaded,
        flooded.other,
        REPLIES_DEADLINE.as_secs()
    ));
    if unanswered > 0 || flooded.other > 0 {
        answered.status = Status::Failed;
    }
    figures.push(answered);
    let after = Latency::of(
        "after the flood: every proof answered, then an append, a range and a proof",
        vec![flooded.recovered_after],
    );
    if let Some(l) = after {
        figures.push(Figure::latency("proof-flood-recovery", l, seconds).with_note(format!(
            "from the flood's last request: the last proof reply after {:.1} ms",
            flooded.replies_after.as_secs_f64() * 1e3
        )));
    }
    Ok(figures)
}

/// Waits until the outbox has published the whole log; how long that took.
pub async fn wait_for_outbox(ledger: &LedgerHandle) -> Result<Duration> {
    let began = Instant::now();
    let head = *ledger.head().borrow();
    while ledger.store().outbox_cursor().map_err(operational)? < head {
        if began.elapsed() > OUTBOX_CATCH_UP_TIMEOUT {
            return Err(operational(format!("the outbox did not reach seq {head} within {OUTBOX_CATCH_UP_TIMEOUT:?}")));
        }
        tokio::time::sleep(OUTBOX_POLL).await;
    }
    Ok(began.elapsed())
}

/// Sends proof requests at [`FLOOD_PER_SECOND`] for [`FLOOD`] without waiting for replies,
/// then waits up to [`REPLIES_DEADLINE`] for them: requests sent, answers (proofs,
/// `overloaded`, other errors), when the flood ended and when the last reply came.
async fn flood_proofs(client: async_nats::Client, head: u64) -> Result<(u64, [u64; 3], Instant, Instant)> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.*")).await.map_err(operational)?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FLOOD_PER_SECOND));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut answers = [0u64; 3];
    let mut last_reply = Instant::now();
    while started.elapsed() < FLOOD {
        tokio::select! {
            _ = tick.tick() => {
                let seq = 1 + (sent * 7919) % head;
                let body = if sent % 4 == 3 {
                    ProofRequest::Consistency { old_size: seq, new_size: head }
                } else {
                    ProofRequest::Inclusion { seq, tree_size: head }
                };
                let body = serde_json::to_vec(&body).expect("encodes");
                client
                    .publish_with_reply(subjects::PROOF, format!("{inbox}.{sent}"), body.into())
                    .await
                    .map_err(operational)?;
                sent += 1;
            }
            Some(reply) = replies.next() => {
                count(&reply.payload, &mut answers);
                last_reply = Instant::now();
            }
        }
    }
    let ended = Instant::now();
    let deadline = ended + REPLIES_DEADLINE;
    while answers.iter().sum::<u64>() < sent {
        match tokio::time::timeout_at(deadline.into(), replies.next()).await {
            Ok(Some(reply)) => {
                count(&reply.payload, &mut answers);
                last_reply = Instant::now();
            }
            _ => break,
        }
    }
    Ok((sent, answers, ended, last_reply.max(ended)))
}

/// Counts a reply to a proof request: a proof, `overloaded`, or anything else.
fn count(payload: &[u8], answers: &mut [u64; 3]) {
    if serde_json::from_slice::<ProofReply>(payload).is_ok() {
        answers[0] += 1;
    } else if serde_json::from_slice::<ErrorReply>(payload).is_ok_and(|e| e.error.code == "overloaded") {
        answers[1] += 1;
    } else {
        answers[2] += 1;
    }
}
