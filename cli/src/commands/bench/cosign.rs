//! The `cosign` scenario: latency of `stockpile.v1.ledger.checkpoint` when the ledger has
//! three witnesses, i.e. sign a checkpoint, ask the three witnesses at once (each one fsyncs
//! its state before it answers), store the cosigned note, answer. The witnesses are this
//! binary's `witness serve`, spawned as child processes; the ledger service runs in this
//! process over the nats-server the bench starts. The ledger holds a generated history of
//! `--history` commands (as the history scenario makes it, in a directory of its own), so
//! the latency is measured at that tree size.

use super::embedded::fresh_dir;
use super::flood::wait_for_outbox;
use super::nats_server::{self, Server};
use super::over_nats::{append_batch, connect, runtime, with_ledger_config};
use super::report::{Figure, Status};
use super::{progress, Plan};
use crate::error::{operational, Result};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use stockpile_ledger::audit::checkpoint::{self, Checkpoint};
use stockpile_ledger::audit::witness::WitnessKey;
use stockpile_ledger::audit::LedgerKey;
use stockpile_ledger::bench::{self, Latency};
use stockpile_ledger::service::{subjects, ServiceConfig};
use stockpile_projector::bench::generate_history;

/// Witnesses the ledger asks in the cosign scenario.
pub const COSIGN_WITNESSES: usize = 3;

/// Checkpoints measured (one record appended before each): enough for a stable p99.
pub const COSIGN_CHECKPOINTS: usize = 500;

/// Kills the spawned witnesses when the scenario ends, however it ends.
struct Witnesses(Vec<Child>);

impl Drop for Witnesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn cosign(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    const NAME: &str = "checkpoint with 3 witness cosignatures over NATS";
    let found = nats_server::candidates();
    let bin = match nats_server::preferred(&found) {
        Ok(b) => b,
        Err(why) => return Ok(vec![Figure::not_measured("cosign", NAME, None, Status::Unavailable, why)]),
    };
    let dir = fresh_dir(work, "cosign")?;
    let ledger_dir = dir.join("ledger");
    let bar = progress(plan.history, "history for cosign");
    let history = generate_history(&ledger_dir, plan.history, plan.deadline(), &|n| bar.inc(n)).map_err(operational)?;
    bar.finish_and_clear();
    // One more for the checkpoint before the timed ones.
    let workload = bench::prepare_appends_after_history(&ledger_dir, 1, COSIGN_CHECKPOINTS + 1);
    let ledger = bench::start(&ledger_dir);
    let key = LedgerKey::load_or_create(&ledger_dir).map_err(operational)?;
    let origin = checkpoint::origin(&checkpoint::genesis_hash(ledger.store()).map_err(operational)?);
    let ledger_vkey = key.note_verifier(&origin).map_err(operational)?.to_string();
    let server = Server::start(&bin, work, false).map_err(operational)?;
    let exe = std::env::current_exe().map_err(operational)?;
    let mut witnesses = Witnesses(Vec::new());
    let mut config = ServiceConfig::new(server.url(), &ledger_dir);
    for i in 0..COSIGN_WITNESSES {
        let wdir = fresh_dir(&dir, &format!("witness-{i}"))?;
        let mut child = Command::new(&exe)
            .args(["--nats", server.url(), "--data", &wdir.join("state").display().to_string()])
            .args(["witness", "serve", "--key", &wdir.join("key").display().to_string()])
            .args(["--name", &format!("bench.witness/w{i}"), "--ledger", &ledger_vkey])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| operational(format!("cannot spawn a witness: {e}")))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or_else(|| operational("the witness has no stdout"))?;
        witnesses.0.push(child);
        std::io::BufReader::new(stdout).read_line(&mut line).map_err(operational)?;
        if line.trim().is_empty() {
            return Err(operational(format!("witness {i} did not start (see {})", wdir.display())));
        }
        config.witnesses.push(WitnessKey::parse(line.trim()).map_err(operational)?);
    }
    config.witness_quorum = COSIGN_WITNESSES;
    let rt = runtime()?;
    let bar = progress(COSIGN_CHECKPOINTS as u64, "checkpoints cosigned");
    let deadline = plan.deadline();
    let began = Instant::now();
    let (first, outbox, samples, size) = rt.block_on(with_ledger_config(config, None, ledger.clone(), async {
        let client = connect(server.url()).await?;
        // The outbox publishes the history first; the timed checkpoints start once it has.
        let outbox = wait_for_outbox(&ledger).await?;
        let mut commands = workload.commands.into_iter().flatten();
        // The first checkpoint: the witnesses' first look at this log (and the ledger's first
        // checkpoint over the whole history), reported apart from the timed ones.
        let first_command = commands.next().ok_or_else(|| operational("no command to append"))?;
        append_batch(&client, vec![first_command]).await?;
        let one = Instant::now();
        client.request(subjects::CHECKPOINT, "".into()).await.map_err(operational)?;
        let first = one.elapsed();
        let mut samples = Vec::new();
        let mut size = 0;
        for command in commands {
            if Instant::now() >= deadline {
                break;
            }
            append_batch(&client, vec![command]).await?;
            let one = Instant::now();
            let reply = client.request(subjects::CHECKPOINT, "".into()).await.map_err(operational)?;
            samples.push(one.elapsed());
            let c: Checkpoint = serde_json::from_slice(&reply.payload).map_err(operational)?;
            let lines = c.note.as_deref().map_or(0, |n| n.lines().filter(|l| l.starts_with('\u{2014}')).count());
            // The first checkpoints may wait for the witnesses' connections: require all three after.
            if lines != 1 + COSIGN_WITNESSES && samples.len() > 1 {
                return Err(operational(format!("checkpoint {} carries {} cosignatures", c.tree_size, lines - 1)));
            }
            size = c.tree_size;
            bar.inc(1);
        }
        Ok((first, outbox, samples, size))
    }))?;
    bar.finish_and_clear();
    ledger.shutdown().map_err(operational)?;
    drop(witnesses);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(latency) = Latency::of(NAME, samples) else { return Ok(Vec::new()) };
    let note = format!(
        "{COSIGN_WITNESSES} witnesses (spawned `stockpile witness serve`, each fsyncs before answering), one record appended before each, over a generated history of {} records (tree size up to {size}; the outbox published it in {:.1} s first); the first checkpoint, not timed with these, took {:.1} ms",
        history.records,
        outbox.as_secs_f64(),
        first.as_secs_f64() * 1e3
    );
    Ok(vec![Figure::latency("cosign", latency, began.elapsed().as_secs_f64()).with_note(note)])
}
