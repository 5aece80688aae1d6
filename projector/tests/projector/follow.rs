//! A projector following a ledger running in the same process: it folds whatever the ledger
//! commits, up to the committed head, until told to stop.

use std::time::Duration;
use stockpile_ledger::domain::{Action, Form, Programme, Unit};
use stockpile_ledger::testkit::{amount, at, command, holding, lot, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerHandle, LedgerOptions};
use stockpile_projector::{LedgerSource, Projector};

/// How long a test waits for the projector to reach the ledger's head.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_running_ledger_until_shutdown() {
    let ledger_dir = tempfile::tempdir().unwrap();
    let projector_dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at("2026-03-01T00:00:00Z"));
    let ledger = Ledger::open(ledger_dir.path(), Box::new(clock), LedgerOptions::default()).unwrap();
    let handle = LedgerHandle::start(ledger);
    let world = World::new();
    handle.append(world.setup(at("2026-01-01T00:00:00Z")), true).await.unwrap();

    let projector = Projector::open(projector_dir.path()).unwrap();
    let reader = projector.reader();
    let source = LedgerSource::following(handle.store().clone(), handle.head());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn(projector.follow(source, handle.head(), async {
        let _ = stopped.await;
    }));

    for i in 0..5 {
        let acquire = world.key("nl-mod").sign(command(
            &format!("acq-{i}"),
            at("2026-02-01T00:00:00Z"),
            Action::Acquire {
                lot: lot(&format!("w-{i}"), "tungsten", Form::Concentrate, 650_000, "RW"),
                to: holding("nl-mod", "nl-vlissingen", Programme::National),
                quantity: amount("1", Unit::T),
                supplier: None,
                contract: None,
                price: None,
            },
        ));
        handle.append(vec![acquire], false).await.unwrap();
    }
    let head = *handle.head().borrow();
    let waited = tokio::time::timeout(CATCH_UP_WAIT, async {
        while reader.head().seq < head {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the projector did not reach the ledger's head {head}");
    let total = reader.holdings(&Default::default()).unwrap().total;
    assert_eq!(total.gross_g, 5_000_000);

    stop.send(()).unwrap();
    let projector = follower.await.unwrap().unwrap();
    assert_eq!(projector.head().seq, head);
    handle.shutdown().unwrap();
}
