//! A commit that fails on a real file: the child runs the pipelined writer with 8 submitters
//! under a file-size limit (`RLIMIT_FSIZE`, `SIGXFSZ` ignored), so a `pwrite` of the record
//! log fails with `EFBIG` part-way through a frame. Afterwards: every command the child saw
//! acknowledged is in the log at its seq, the log holds nothing else (the failed frame was
//! cut back), every submitter heard an error rather than a seq once the ledger stopped,
//! `shutdown` reports the I/O error, and the ledger opens again and goes on.
//!
//! The child is this test binary again, running the ignored `commit_failure_child` test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stockpile_ledger::domain::{Action, EventId, Form, Programme, Unit};
use stockpile_ledger::ledger::replay;
use stockpile_ledger::store::log::LOG_FILE;
use stockpile_ledger::testkit::{amount, at, command, deterministic_key, holding, lot, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerHandle, LedgerOptions, Outcome};

const SUBMITTERS: usize = 8;
/// Bytes the record log may grow by in the child before its writes fail: a few hundred records.
const GROWTH_ALLOWED_BYTES: u64 = 256 << 10;
/// Longest the child may take; it needs well under a second.
const CHILD_WAIT: Duration = Duration::from_secs(120);

fn open(dir: &std::path::Path) -> Ledger {
    let clock = ManualClock::new(at("2026-06-01T00:00:00Z"));
    Ledger::open(dir, Box::new(clock), LedgerOptions { snapshot_every_events: 1_000_000, ..LedgerOptions::default() })
        .expect("open")
}

fn acquire(id: &str) -> stockpile_ledger::signing::SignedCommand {
    deterministic_key("nl-covra-ops").sign(command(
        id,
        at("2026-05-01T00:00:00Z"),
        Action::Acquire {
            lot: lot(id, "tungsten", Form::Metal, 999_000, "AT"),
            to: holding("nl-covra", "nl-vlissingen", Programme::National),
            quantity: amount("3", Unit::Kg),
            supplier: None,
            contract: None,
            price: None,
        },
    ))
}

#[test]
#[ignore = "child process of a_failed_commit_stops_the_ledger_and_acknowledges_only_what_is_durable"]
fn commit_failure_child() {
    let Ok(dir) = std::env::var("STOCKPILE_FAIL_DIR") else { return };
    let dir = std::path::Path::new(&dir);
    let handle = LedgerHandle::start(open(dir));
    let setup = World::new().setup(at("2026-01-01T00:00:00Z"));
    let out = handle.append_blocking(setup, true).expect("setup");
    assert!(out.iter().all(|o| matches!(o, Outcome::Appended { .. })));
    let log_bytes = std::fs::metadata(dir.join(LOG_FILE)).expect("the log").len();
    // SAFETY: this process is the child alone; ignoring SIGXFSZ turns a write past the limit
    // into an EFBIG error instead of killing the process.
    unsafe {
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        let limit = libc::rlimit { rlim_cur: log_bytes + GROWTH_ALLOWED_BYTES, rlim_max: libc::RLIM_INFINITY };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let threads: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let id = format!("t{t}-{i}");
                    match handle.append_blocking(vec![acquire(&id)], false) {
                        Ok(outcomes) => match &outcomes[..] {
                            [Outcome::Appended { seq, .. }] => println!("ACK {id} {seq}"),
                            other => panic!("{id}: {other:?}"),
                        },
                        Err(e) => {
                            println!("ERR {id} {e}");
                            // Once stopped, the ledger answers every append with an error.
                            let again = handle.append_blocking(vec![acquire(&format!("{id}-again"))], false);
                            assert!(again.is_err(), "an append after the failure got {again:?}");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("submitter");
    }
    match handle.shutdown() {
        Ok(()) => println!("SHUTDOWN ok"),
        Err(e) => println!("SHUTDOWN {e}"),
    }
}

#[test]
fn a_failed_commit_stops_the_ledger_and_acknowledges_only_what_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "failure::commit_failure_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("STOCKPILE_FAIL_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the child");
    // A submitter left waiting for an answer hangs the child: give up on it after a while.
    let deadline = Instant::now() + CHILD_WAIT;
    while child.try_wait().expect("wait for the child").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("kill the child");
            let out = child.wait_with_output().expect("the child's output");
            panic!("the child hung (a caller never answered?): {}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let child = child.wait_with_output().expect("the child's output");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "the child failed: {stdout}\n{}", String::from_utf8_lossy(&child.stderr));
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut errors = Vec::new();
    let mut shutdown = None;
    // libtest may put its own text before the first line of ours.
    for line in stdout.lines() {
        if let Some(at) = line.find("ACK ") {
            let (id, seq) = line[at + 4..].split_once(' ').unwrap();
            acked.push((id.to_string(), seq.parse().unwrap()));
        } else if let Some(at) = line.find("ERR ") {
            errors.push(line[at + 4..].to_string());
        } else if let Some(at) = line.find("SHUTDOWN ") {
            shutdown = Some(line[at + 9..].to_string());
        }
    }
    assert!(acked.len() > 50, "too few acknowledgements before the limit: {}", acked.len());
    assert_eq!(errors.len(), SUBMITTERS, "every submitter hears the failure: {errors:?}");
    assert!(errors.iter().any(|e| e.contains("File too large")), "no submitter was told the cause: {errors:?}");
    let shutdown = shutdown.expect("the child shut the ledger down");
    assert!(shutdown.contains("File too large"), "shutdown hides the cause: {shutdown}");

    let ledger = open(dir.path());
    let state = ledger.state();
    for (id, seq) in &acked {
        let entry = ledger.recorded(&EventId::new(id.as_str())).expect("the log reads");
        assert_eq!(entry.map(|e| e.seq), Some(*seq), "acknowledged {id} is not in the log at its seq");
    }
    let setup_records = World::new().setup(at("2026-01-01T00:00:00Z")).len() as u64;
    let head = state.head.seq;
    assert_eq!(head, setup_records + acked.len() as u64, "the log holds records nobody was told of");
    assert_eq!(&replay(ledger.store()).expect("chain verifies from seq 1"), state);
    let handle = LedgerHandle::start(ledger);
    let failed = errors[0].split_once(' ').unwrap().0;
    let again = handle.append_blocking(vec![acquire(failed)], false).expect("the reopened ledger appends");
    assert!(matches!(&again[..], [Outcome::Appended { seq, .. }] if *seq == head + 1), "{again:?}");
    handle.shutdown().expect("shutdown");
}
