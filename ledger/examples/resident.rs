//! What the ledger's state holds resident, by part, over an existing data directory
//! (`stockpile bench history --work DIR` leaves one in `DIR/history/ledger`):
//!
//!     cargo run --release -p stockpile-ledger --example resident -- DIR/history/ledger
//!
//! Replays the log from seq 1, then drops the state's parts one by one and prints the heap
//! each gave back (malloc's in-use bytes), per record. For comparison it then builds the
//! event-id table the state kept before the hash index (every id with its seq, command
//! digest, movement flag and reversal, sized as replay sized it) from the same log.

use stockpile_ledger::domain::{EventId, State};
use stockpile_ledger::record::ReplayBody;
use stockpile_ledger::store::Store;

fn heap() -> u64 {
    // SAFETY: mallinfo2 only reads allocator statistics.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// The per-id entry the state kept before the hash index.
#[allow(dead_code)]
struct EventEntry {
    seq: u64,
    digest: [u8; 32],
    movement: bool,
    reversed_by: Option<EventId>,
}

fn main() {
    stockpile_ledger::malloc::return_large_frees_to_os();
    let dir = std::env::args().nth(1).expect("usage: resident LEDGER_DIR");
    let store = Store::open(std::path::Path::new(&dir)).expect("open store");
    let base = heap();
    let mut state = stockpile_ledger::ledger::replay(&store).expect("replay");
    let records = state.head.seq;
    let total = heap() - base;
    let per = |bytes: u64| bytes as f64 / records as f64;
    println!("{records} records; state {:.1} MiB = {:.0} B/record", total as f64 / 1048576.0, per(total));
    println!(
        "  {} lots, {} non-zero positions, {} timelines ({} changes, {} in the tree form), {} event ids ({} reversed)",
        state.lots.len(),
        state.positions().count(),
        state.timelines.len(),
        state.timelines.values().map(|t| t.entries().count()).sum::<usize>(),
        state.timelines.values().filter(|t| !t.is_few()).count(),
        state.events.len(),
        state.events.reversals().len(),
    );
    let mut part = |name: &str, drop: &mut dyn FnMut(&mut State)| {
        let before = heap();
        drop(&mut state);
        let freed = before.saturating_sub(heap());
        println!("  {name:<28} {:>7.1} MiB {:>6.0} B/record", freed as f64 / 1048576.0, per(freed));
    };
    part("event-id index", &mut |s| s.events = Default::default());
    part("timelines", &mut |s| s.timelines = Default::default());
    part("lots", &mut |s| s.lots = Default::default());
    drop(state);

    // The table before: every id with its entry, reserved for every record as replay did.
    let before = heap();
    let mut old: std::collections::HashMap<EventId, EventEntry, ahash::RandomState> =
        std::collections::HashMap::default();
    old.reserve(records as usize);
    store
        .scan(1, |seq, line| {
            let (body, _) = stockpile_ledger::record::split_sealed(line).expect("sealed layout");
            let b = ReplayBody::decode(body).expect("decodes");
            old.insert(b.event_id, EventEntry { seq, digest: b.command_digest, movement: true, reversed_by: None });
            true
        })
        .expect("scan");
    let bytes = heap() - before;
    println!("  event-id table before:       {:>7.1} MiB {:>6.0} B/record", bytes as f64 / 1048576.0, per(bytes));
}
