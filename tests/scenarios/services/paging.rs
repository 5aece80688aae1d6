//! A holdings answer larger than one NATS message: 20,000 lots grouped by lot (~4 MiB of
//! rows, the server's max_payload is 1 MiB). The projector answers in pages, each within
//! max_payload with `next`; `stockpile --nats URL holdings --by lot` follows them and prints
//! every row. Before paging, the reply was dropped (`max payload size exceeded`) and the asker
//! got nothing.

use super::projector::{holdings_at, holdings_reply, ProjectorTask};
use super::*;
use stockpile_projector::{Dimension, Holdings, HoldingsQuery};
use stockpile_tests::bins::binary;
use stockpile_tests::nats::NatsServer;

/// Lots in the ledger: one row each when grouped by lot, several pages of replies.
const LOTS: usize = 20_000;

/// Commands per append: the service's limit is 1,024 and 768 KiB.
const APPEND_CHUNK: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holdings_answer_too_large_for_one_message_comes_in_pages_and_the_cli_follows_them() {
    let nats = NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let service = InProcess::serve(config(&url), open_ledger(&dir.path().join("ledger")));
    let nc = client(&url).await;
    wait_until_serving(&nc).await;
    let world = World::new();
    service.ledger.append(setup_commands(&world), true).await.expect("setup");
    // `acquires` brings each command a lot of its own.
    let commands = acquires(&world, 0, LOTS);
    for chunk in commands.chunks(APPEND_CHUNK) {
        let outcomes = service.ledger.append(chunk.to_vec(), false).await.expect("append");
        assert!(outcomes.iter().all(|o| o.seq().is_some()), "every acquire is appended");
    }
    let head = *service.ledger.head().borrow();
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let projector = ProjectorTask::run(&url, projector_dir.path());
    holdings_at(&nc, &HoldingsQuery::default(), head).await;

    // On the wire: the first page fits one message and says where the next begins.
    let by_lot = HoldingsQuery { group_by: vec![Dimension::Lot], ..HoldingsQuery::default() };
    let reply = holdings_reply(&nc, serde_json::to_vec(&by_lot).expect("encode")).await;
    let max_payload = nc.server_info().max_payload;
    assert!(reply.len() <= max_payload, "a page of {} bytes fits max_payload {max_payload}", reply.len());
    let first: Holdings = serde_json::from_slice(&reply).expect("a holdings page");
    let next = first.next.expect("the answer is paged: the first page names the next");
    assert_eq!(next, first.rows.len() as u64, "the next page begins after this one's rows");
    assert!(first.rows.len() < LOTS, "one message cannot hold {LOTS} rows");
    // An explicit limit pages too, and the total is the whole answer's on every page.
    let limited = HoldingsQuery { offset: 10, limit: Some(5), ..by_lot.clone() };
    let page: Holdings =
        serde_json::from_slice(&holdings_reply(&nc, serde_json::to_vec(&limited).expect("encode")).await)
            .expect("a holdings page");
    assert_eq!(page.rows, first.rows[10..15], "rows 10..15 of the sorted answer");
    assert_eq!((page.next, &page.total), (Some(15), &first.total));

    // The CLI follows every page: every lot, once, sorted, and the rows sum to the total.
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binary("stockpile"))
            .args(["--nats", &url, "--format", "json", "holdings", "--by", "lot"])
            .env("NO_COLOR", "1")
            .env_remove("STOCKPILE_NATS_URL")
            .output()
            .expect("run stockpile")
    });
    let out = cli.await.expect("the CLI's thread");
    assert_eq!(out.status.code(), Some(0), "holdings --by lot: {}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("holdings JSON");
    let rows = answer["rows"].as_array().expect("rows");
    let lots: Vec<&str> = rows.iter().map(|r| r["key"]["lot"].as_str().expect("a lot key")).collect();
    assert_eq!(lots.len(), LOTS, "every lot's row");
    assert!(lots.windows(2).all(|w| w[0] < w[1]), "sorted by lot, each once");
    let sum: i64 = rows.iter().map(|r| r["totals"]["gross_g"].as_i64().expect("grams")).sum();
    assert_eq!(sum, first.total.gross_g, "the rows add up to the total");
    assert!(answer.get("next").is_none(), "the CLI's answer is whole: {:?}", answer.get("next"));

    projector.stop().await;
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
