//! Memory experiment: 8 threads append acquires (a new lot each, 5 per request) through the
//! embedded `LedgerHandle`; prints RSS and malloc's in-use bytes every 10k events.
//! `MEM_EVENTS` (default 110,000) events; `MEM_GLIBC_DEFAULTS=1` leaves glibc's dynamic
//! mmap threshold on (see [`stockpile_ledger::malloc`]); `MEM_EXIT_EARLY=1` exits before
//! shutdown, so a heap profiler (heaptrack) reports everything live at the end as leaked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use stockpile_ledger::domain::{Action, Form, Programme, Unit};
use stockpile_ledger::ledger::{Ledger, LedgerOptions, SystemClock};
use stockpile_ledger::testkit::{amount, at, command, holding, lot, World};
use stockpile_ledger::writer::LedgerHandle;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn heap_kib() -> (u64, u64) {
    // SAFETY: mallinfo2 only reads allocator statistics.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) as u64 / 1024, m.fordblks as u64 / 1024)
}

fn main() {
    let events: usize = std::env::var("MEM_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(110_000);
    if std::env::var("MEM_GLIBC_DEFAULTS").is_err() {
        stockpile_ledger::malloc::return_large_frees_to_os();
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), Box::new(SystemClock), LedgerOptions::default()).unwrap();
    let handle = LedgerHandle::start(ledger);
    let world = Arc::new(World::new());
    handle.append_blocking(world.setup(at("2026-01-01T00:00:00Z")), true).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..8usize {
            let (handle, world, done) = (handle.clone(), world.clone(), done.clone());
            scope.spawn(move || {
                const WHO: [(&str, &str); 3] =
                    [("nl-covra", "cobalt"), ("de-rohstoff", "germanium"), ("be-defence", "tungsten")];
                let mut i = c * 100_000_000;
                while done.load(Ordering::Relaxed) < events {
                    let commands = (i..i + 5)
                        .map(|i| {
                            let (party, material) = WHO[i % 3];
                            world.key(party).sign(command(
                                &format!("acq-{i}"),
                                at("2026-02-01T00:00:00Z"),
                                Action::Acquire {
                                    lot: lot(&format!("lot-{i}"), material, Form::Metal, 999_000, "JP"),
                                    to: holding(party, "in_transit", Programme::National),
                                    quantity: amount("1.5", Unit::T),
                                    supplier: None,
                                    contract: None,
                                    price: None,
                                },
                            ))
                        })
                        .collect();
                    i += 5;
                    handle.append_blocking(commands, false).unwrap();
                    let before = done.fetch_add(5, Ordering::Relaxed);
                    if (before + 5) / 10_000 != before / 10_000 {
                        let (heap, free) = heap_kib();
                        eprintln!(
                            "{:>7} events {:6.1} s  rss {:>7} KiB  heap in use {:>7} KiB  free in arenas {:>7} KiB",
                            before + 5,
                            started.elapsed().as_secs_f64(),
                            rss_kib(),
                            heap,
                            free
                        );
                    }
                }
            });
        }
    });
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    eprintln!("{rate:.0} events/s; data dir {} MiB", dir_bytes(dir.path()) >> 20);
    if std::env::var("MEM_EXIT_EARLY").is_ok() {
        std::process::exit(0);
    }
    handle.shutdown().unwrap();
    let (heap, _) = heap_kib();
    eprintln!("after shutdown: rss {} KiB heap {} KiB", rss_kib(), heap);
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
