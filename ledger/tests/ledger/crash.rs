//! Crash test: a child process appends with many concurrent submitters and is SIGKILLed at
//! a random moment, over and over on the same directory. After every kill: each event the
//! child saw acknowledged is in the log at the acknowledged seq, the chain verifies from
//! seq 1, and the state recovered on open equals a replay of the log.
//!
//! The child is this test binary again, running the ignored `crash_child` test.

use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stockpile_ledger::domain::{Action, EventId, Form, LotId, Programme, Unit};
use stockpile_ledger::ledger::replay;
use stockpile_ledger::testkit::{amount, at, command, deterministic_key, holding, lot, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerHandle, LedgerOptions, Outcome};

const ROUNDS: usize = 20;
const SUBMITTERS: usize = 16;
/// Longest a child may run before it is killed; the kill comes at a random time below this.
const CHILD_LIFETIME_MAX_MS: u64 = 600;
/// Snapshots every few hundred events, so kills also land during snapshot writes.
const SNAPSHOT_EVERY_EVENTS: u64 = 300;

fn open(dir: &std::path::Path) -> Ledger {
    let clock = ManualClock::new(at("2026-06-01T00:00:00Z"));
    Ledger::open(
        dir,
        Box::new(clock),
        LedgerOptions { snapshot_every_events: SNAPSHOT_EVERY_EVENTS, ..LedgerOptions::default() },
    )
    .expect("open")
}

#[test]
#[ignore = "child process of kill_during_concurrent_appends_loses_nothing_acknowledged"]
fn crash_child() {
    let Ok(dir) = std::env::var("STOCKPILE_CRASH_DIR") else { return };
    let round: usize = std::env::var("STOCKPILE_CRASH_ROUND").unwrap().parse().unwrap();
    let ledger = open(std::path::Path::new(&dir));
    let fresh = ledger.state().head.seq == 0;
    let handle = LedgerHandle::start(ledger);
    if fresh {
        let setup = World::new().setup(at("2026-01-01T00:00:00Z"));
        let out = handle.append_blocking(setup, true).expect("setup");
        assert!(out.iter().all(|o| matches!(o, Outcome::Appended { .. })));
    }
    println!("READY");
    let threads: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let covra = deterministic_key("nl-covra-ops");
                for i in 0.. {
                    let lot_id = format!("r{round}-t{t}-{i}");
                    let acquire = covra.sign(command(
                        &format!("{lot_id}-acq"),
                        at("2026-05-01T00:00:00Z"),
                        Action::Acquire {
                            lot: lot(&lot_id, "tungsten", Form::Metal, 999_000, "AT"),
                            to: holding("nl-covra", "nl-vlissingen", Programme::National),
                            quantity: amount("3", Unit::Kg),
                            supplier: None,
                            contract: None,
                            price: None,
                        },
                    ));
                    let transfer = covra.sign(command(
                        &format!("{lot_id}-xfer"),
                        at("2026-05-01T00:00:00Z"),
                        Action::Transfer {
                            lot: LotId::new(lot_id.as_str()),
                            from: holding("nl-covra", "nl-vlissingen", Programme::National),
                            to: holding("nl-mod", "be-antwerp", Programme::Nato),
                            quantity: amount("1", Unit::Kg),
                        },
                    ));
                    let Ok(outcomes) = handle.append_blocking(vec![acquire, transfer], i % 2 == 0) else { return };
                    for o in outcomes {
                        if let Outcome::Appended { seq, event_id } = o {
                            println!("ACK {event_id} {seq}");
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill_during_concurrent_appends_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let exe = std::env::current_exe().unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut acked: Vec<(String, u64)> = Vec::new();
    for round in 0..ROUNDS {
        assert!(Instant::now() < deadline, "crash test ran out of time (seed {seed})");
        let mut child = Command::new(&exe)
            .args(["--exact", "crash::crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("STOCKPILE_CRASH_DIR", dir.path())
            .env("STOCKPILE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child is appending, then let it run a random while and kill it.
        let ready_by = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.ends_with("READY") => break, // libtest prefixes the first line
                Ok(_) => {}
                Err(_) => assert!(Instant::now() < ready_by, "child never became ready (seed {seed})"),
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..CHILD_LIFETIME_MAX_MS)));
        child.kill().expect("SIGKILL child");
        child.wait().unwrap();
        reader.join().unwrap();
        let before = acked.len();
        for line in rx.try_iter() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (id, seq) = rest.split_once(' ').unwrap();
                acked.push((id.to_string(), seq.parse().unwrap()));
            }
        }
        let ledger = open(dir.path());
        let state = ledger.state();
        for (id, seq) in &acked {
            let entry = ledger.recorded(&EventId::new(id.as_str())).expect("the log reads");
            assert_eq!(entry.map(|e| e.seq), Some(*seq), "round {round}: acknowledged {id} lost (seed {seed})");
        }
        let replayed = replay(ledger.store()).expect("chain verifies from seq 1");
        assert_eq!(&replayed, state, "round {round}: recovered state differs from replay (seed {seed})");
        state.check_conservation().expect("conservation");
        let records = ledger.store().records(1, u64::MAX).unwrap();
        assert_eq!(records.len() as u64, state.head.seq, "round {round}: log is not gap-free");
        eprintln!("round {round}: {} acknowledged this round, head {}", acked.len() - before, state.head.seq);
    }
    assert!(acked.len() > ROUNDS, "too few acknowledgements to prove anything: {} (seed {seed})", acked.len());
}
