//! Measurements of the read side over a long, realistic history, shared by `stockpile bench`
//! and `examples/bench.rs`:
//!
//! - [`generate_history`]: a real ledger (signed commands, the real `decide`, sled, fsync)
//!   built from the seeded [`generator`]: five years of acquisitions, stores, transfers
//!   across partners, releases, conversions, adjustments and reversals over the test world,
//!   about one movement in ten back-dated by up to 30 days;
//! - [`catch_up_rate`]: a projector folded from zero over that ledger's store;
//! - [`query_mixes`] and [`query_latency`]: holdings queries now and as of random dates.
//!
//! What bounds each figure: generation is signing (the client's cost) plus the ledger's group
//! commits; catch-up is decoding (JSON + SHA-256, on every core), the fold (one core) and the
//! view store's sled batches; an as-of query walks the as-of index of every class it touches.

pub mod generator;

use crate::{AsOf, Dimension, HoldingsQuery, LedgerSource, Projector, ProjectorError, Views};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};
use stockpile_ledger::bench::{Latency, Rate};
use stockpile_ledger::domain::{Command, Rejection};
use stockpile_ledger::signing::{verify_all, Verified};
use stockpile_ledger::store::Store;
use stockpile_ledger::testkit::{at, ManualClock, World};
use stockpile_ledger::{Ledger, LedgerError, LedgerOptions, Outcome, Submission};

/// Commands per group commit while generating: the ledger writer's own group bound.
pub const GENERATE_GROUP_COMMANDS: usize = 4096;

/// Seed of the generated history (and, plus one, of the query mix): the same sizes give the
/// same log on every machine.
pub const HISTORY_SEED: u64 = 20260101;

/// First business day of the generated history; it spans five years from here.
const HISTORY_START: &str = "2021-01-01T00:00:00Z";
const HISTORY_END: &str = "2025-12-31T00:00:00Z";

/// A benchmark's storage failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Projector(#[from] ProjectorError),
}

/// What [`generate_history`] built.
#[derive(Debug, Clone)]
pub struct History {
    /// Records in the ledger (the world's setup included).
    pub records: u64,
    /// Commands the ledger refused (the generator's model should make this zero).
    pub rejected: u64,
    /// Commands generated, signed and committed per second (signing included).
    pub rate: Rate,
}

/// Builds a ledger of about `events` generated commands in `ledger_dir` (replaced), stopping
/// early at `deadline`; `progress` is told of every committed group's size.
pub fn generate_history(
    ledger_dir: &Path,
    events: u64,
    deadline: Instant,
    progress: &dyn Fn(u64),
) -> Result<History, LedgerError> {
    let _ = std::fs::remove_dir_all(ledger_dir);
    let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
    let mut ledger = Ledger::open(ledger_dir, Box::new(clock), LedgerOptions::default())?;
    let world = World::new();
    submit(&mut ledger, verify_all(world.setup(at(HISTORY_START))))?;
    let mut gen = generator::Generator::new(HISTORY_SEED);
    let start = at(HISTORY_START).timestamp();
    let span = at(HISTORY_END).timestamp() - start;
    let began = Instant::now();
    let (mut i, mut rejected) = (0u64, 0u64);
    while i < events && Instant::now() < deadline {
        let n = GENERATE_GROUP_COMMANDS.min((events - i) as usize);
        let unsigned: Vec<(usize, Command)> = (i..i + n as u64)
            .map(|k| gen.next(&world, &format!("e{k}"), start + span * k as i64 / events as i64))
            .collect();
        let signed: Vec<_> =
            unsigned.into_par_iter().map(|(party, c)| world.key(world.parties[party].0).sign(c)).collect();
        for o in submit(&mut ledger, verify_all(signed))? {
            if let Outcome::Rejected(r) = o {
                rejected += 1;
                tracing::warn!(%r, "generated command rejected");
            }
        }
        i += n as u64;
        progress(n as u64);
    }
    let records = ledger.state().head.seq;
    Ok(History { records, rejected, rate: Rate::new("generate history (sign + decide + commit)", i, began) })
}

fn submit(ledger: &mut Ledger, commands: Vec<Result<Verified, Rejection>>) -> Result<Vec<Outcome>, LedgerError> {
    let mut out = ledger.commit_group(vec![Submission { commands, atomic: false }])?;
    Ok(out.pop().expect("one submission"))
}

/// Folds the ledger in `ledger_dir` from zero into a fresh projector in `projector_dir`
/// (replaced): records folded and persisted per second. Returns the projector for queries.
pub fn catch_up_rate(ledger_dir: &Path, projector_dir: &Path) -> Result<(Rate, Projector), BenchError> {
    let _ = std::fs::remove_dir_all(projector_dir);
    let mut projector = Projector::open(projector_dir)?;
    let mut source = LedgerSource::new(Store::open(ledger_dir)?);
    let began = Instant::now();
    let done = projector.catch_up(&mut source)?;
    let rate = Rate::new("projector catch-up (decode + fold + persist)", done.applied, began);
    projector.flush()?;
    Ok((rate, projector))
}

/// The query mixes timed over a generated history, `n` queries in the first (fewer in the
/// heavier ones), seeded: a name and its queries.
pub fn query_mixes(n: usize) -> Vec<(&'static str, Vec<HoldingsQuery>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(HISTORY_SEED + 1);
    let dims = [
        Dimension::Partner,
        Dimension::Material,
        Dimension::HolderType,
        Dimension::FacilityCountry,
        Dimension::Form,
        Dimension::Programme,
        Dimension::Party,
    ];
    let materials = ["cobalt", "gallium", "germanium", "tungsten", "copper"];
    let start = at(HISTORY_START).date_naive();
    let random_date = |rng: &mut ChaCha8Rng| AsOf::Date(start + chrono::Days::new(rng.gen_range(0..5 * 365)));
    let mixed = (0..n)
        .map(|_| {
            let mut q = HoldingsQuery::default();
            if rng.gen_bool(0.9) {
                q.as_of = Some(random_date(&mut rng));
            }
            let groups = rng.gen_range(1..=3);
            while q.group_by.len() < groups {
                let d = dims[rng.gen_range(0..dims.len())];
                if !q.group_by.contains(&d) {
                    q.group_by.push(d);
                }
            }
            if rng.gen_bool(0.3) {
                q.material.push(materials[rng.gen_range(0..materials.len())].into());
            }
            if rng.gen_bool(0.2) {
                q.partner.push(["NL", "DE", "BE"][rng.gen_range(0..3)].into());
            }
            q
        })
        .collect();
    let widest = (0..n.div_ceil(4))
        .map(|_| HoldingsQuery {
            as_of: Some(random_date(&mut rng)),
            group_by: vec![Dimension::Partner, Dimension::Material, Dimension::HolderType, Dimension::FacilityCountry],
            ..HoldingsQuery::default()
        })
        .collect();
    let by_lot = (0..n.div_ceil(20))
        .map(|_| HoldingsQuery {
            as_of: Some(random_date(&mut rng)),
            group_by: vec![Dimension::Lot],
            ..HoldingsQuery::default()
        })
        .collect();
    vec![
        ("as-of query: mixed as-of/current, 1-3 group_by, some filters", mixed),
        ("as-of query: unfiltered, group_by partner/material/holder_type/facility_country", widest),
        ("as-of query: unfiltered, group_by lot (one row per lot)", by_lot),
    ]
}

/// Times each query on `views`, one after another, until `deadline`.
pub fn query_latency(name: &str, views: &Views, queries: &[HoldingsQuery], deadline: Instant) -> Option<Latency> {
    let mut times: Vec<Duration> = Vec::with_capacity(queries.len());
    for q in queries {
        if Instant::now() >= deadline {
            break;
        }
        let began = Instant::now();
        let answer = views.holdings(q).expect("a generated query is valid");
        times.push(began.elapsed());
        std::hint::black_box(answer);
    }
    Latency::of(name, times)
}
