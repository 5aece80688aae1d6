//! The real `stockpile-ledger` binary SIGKILLed [`KILL_ROUNDS`] times under concurrent
//! appends, restarted over the same data directory each time. In the end every acknowledged
//! command is in the log exactly once (a resend returns its seq; no event id twice in the
//! log read back through `ledger.range`), the hash chain links, `STOCKPILE_EVENTS` equals
//! the log, and a projector that followed the stream across the kills equals a rebuild.
//!
//! When to kill is drawn from a seeded RNG (printed; `STOCKPILE_KILL_SEED` repeats it, the
//! timing of the machine aside).

use super::load::{check_acked_in_log, Load, Workload};
use super::projector::{assert_views_equal_rebuild, ProjectorTask};
use super::real_binary::BinaryLedger;
use super::*;
use rand::{Rng, SeedableRng};
use stockpile_ledger::store::Store;
use tokio::sync::watch;

/// Times the ledger is killed. Each round is a start (recovery, stream, service), a few
/// replies and a kill: well under a second on a loaded two-core machine.
const KILL_ROUNDS: usize = 50;
/// Clients appending concurrently through every round.
const KILL_LOOP_CLIENTS: usize = 4;
/// After a restart, the kill waits for 1..=this many more answered requests, so every
/// round kills a ledger that is serving and loaded, at a point that varies.
const KILL_AFTER_REPLIES_MAX: usize = 8;
/// And then for 0..=this many milliseconds more, to land between replies too.
const KILL_JITTER_MS_MAX: u64 = 20;
/// Commands per request when acknowledged commands are resent at the end.
const RESEND_COMMANDS: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_killed_fifty_times_under_load_loses_and_duplicates_nothing() {
    let seed = std::env::var("STOCKPILE_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("kill loop seed: STOCKPILE_KILL_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();

    let mut ledger = BinaryLedger::start().await;
    let client = ledger.client.clone();
    let projector_dir = tempfile::tempdir().expect("tempdir");
    let projector = ProjectorTask::run(&ledger.nats.url(), projector_dir.path());

    let (restarts, restarts_seen) = watch::channel(0u64);
    let load = Load::start(&client, KILL_LOOP_CLIENTS, Workload::Acquires, &restarts_seen);
    for round in 0..KILL_ROUNDS {
        load.wait_for_acked(load.acked() + rng.gen_range(1..=KILL_AFTER_REPLIES_MAX)).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=KILL_JITTER_MS_MAX))).await;
        tokio::task::block_in_place(|| ledger.process.kill());
        restarts.send_modify(|n| *n += 1);
        ledger.respawn().await;
        assert_eq!(*restarts.borrow(), round as u64 + 1);
    }
    load.wait_for_acked(load.acked() + KILL_AFTER_REPLIES_MAX).await;
    let acked = load.finish().await;
    let commands: usize = acked.iter().map(|a| a.commands.len()).sum();
    let resent = acked.iter().filter(|a| a.attempts > 1).count();
    assert!(resent > 0, "no kill caught a request in flight: the clients were not loading the ledger");

    // Every acknowledged command, resent, is a duplicate with the seq it was given.
    let sent: Vec<(SignedCommand, u64)> =
        acked.iter().flat_map(|a| a.commands.iter().cloned().zip(a.seqs.iter().copied())).collect();
    for chunk in sent.chunks(RESEND_COMMANDS) {
        let again = append(&client, chunk.iter().map(|(c, _)| c.clone()).collect(), false).await;
        for ((command, seq), result) in chunk.iter().zip(&again) {
            let id = &command.command.id;
            assert!(matches!(result, AppendResult::Duplicate { .. }), "{id} resent: {result:?}");
            assert_eq!(seq_of(result), *seq, "{id} kept its seq");
        }
    }

    let records = records_via_range(&client).await;
    check_acked_in_log(&records, &acked);
    check_stream_mirrors(&client, &records).await;
    let status = tokio::task::block_in_place(|| ledger.process.terminate());
    assert!(status.success(), "stockpile-ledger exits 0 on SIGTERM: {status}");
    let store = tokio::task::block_in_place(|| Store::open(&ledger.data)).expect("open the ledger's store");
    assert_views_equal_rebuild(&client, store, records.len() as u64).await;
    projector.stop().await;
    eprintln!(
        "kill loop: {KILL_ROUNDS} kills, {} requests ({commands} commands) acknowledged, {resent} of them sent again after a kill, {} records, {:.1} s",
        acked.len(),
        records.len(),
        started.elapsed().as_secs_f64()
    );
}
