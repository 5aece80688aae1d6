//! A seeded random log (a tenth of its movements back-dated) against a plain model: the
//! balance of a position as of a time is the sum of its postings dated before it. The
//! projector catches up at random points and is reopened at random; at the end its answers
//! must equal the model's. A failure prints the seed; `PROJECTOR_TEST_SEED=<n>` replays it.

use super::harness::{query, rows, Harness};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use stockpile_ledger::domain::Direction;
use stockpile_ledger::testkit::at;
use stockpile_ledger::Outcome;
use stockpile_projector::bench::generator::Generator;
use stockpile_projector::{decode, AsOf, Dimension, Projector};

/// Commands in one run: enough for blocks to split (512 points) in the busiest classes.
const COMMANDS: u64 = 3_000;

/// Per position (party, lot, facility, programme): its postings as (occurred_at ns, grams).
type Postings = BTreeMap<Vec<String>, Vec<(i64, i64)>>;

fn model(records: &[Vec<u8>]) -> Postings {
    let mut out = Postings::new();
    for r in records {
        let d = decode(r).expect("decode");
        let at = d.record.occurred_at.timestamp_nanos_opt().expect("in range");
        for p in d.record.event.effects().postings {
            let k = &p.position;
            let key = vec![k.party.to_string(), k.lot.to_string(), k.location.to_string(), k.programme.to_string()];
            let g = p.grams as i64;
            out.entry(key).or_default().push((at, if p.direction == Direction::Increase { g } else { -g }));
        }
    }
    out
}

#[test]
fn random_logs_fold_like_the_model_across_reopens() {
    let seed: u64 = std::env::var("PROJECTOR_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("PROJECTOR_TEST_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut h = Harness::new();
    h.clock.set(at("2027-01-01T00:00:00Z"));
    let mut gen = Generator::new(seed);
    gen.back_dated = 0.2;
    let dir = tempfile::tempdir().unwrap();
    let mut p = Some(Projector::open(dir.path()).unwrap());
    let start = at("2026-01-01T00:00:00Z").timestamp();
    let mut i = 0;
    while i < COMMANDS {
        let n = rng.gen_range(1..=64).min(COMMANDS - i);
        let commands: Vec<_> = (i..i + n)
            .map(|k| {
                let (party, c) = gen.next(&h.world, &format!("e{k}"), start + k as i64 * 3_000);
                h.world.key(h.world.parties[party].0).sign(c)
            })
            .collect();
        for o in h.submit(commands) {
            assert!(matches!(o, Outcome::Appended { .. }), "seed {seed}: {o:?}");
        }
        i += n;
        match rng.gen_range(0..10) {
            0 => drop(p.take()),
            1..=4 => {
                let proj = p.get_or_insert_with(|| Projector::open(dir.path()).unwrap());
                proj.catch_up(&mut h.source()).unwrap();
            }
            _ => {}
        }
    }
    let mut p = p.unwrap_or_else(|| Projector::open(dir.path()).unwrap());
    p.catch_up(&mut h.source()).unwrap();

    let postings = model(&h.records());
    let end = start + COMMANDS as i64 * 3_000;
    let mut cutoffs: Vec<Option<i64>> = (0..12).map(|_| Some(rng.gen_range(start - 86_400..end + 86_400))).collect();
    cutoffs.push(None);
    for cutoff in cutoffs {
        let as_of = cutoff.map(|s| AsOf::Instant(chrono::DateTime::from_timestamp(s, 0).unwrap()));
        let q = stockpile_projector::HoldingsQuery {
            as_of,
            ..query(None, &[Dimension::Party, Dimension::Lot, Dimension::Facility, Dimension::Programme])
        };
        let got = rows(&p.holdings(&q).unwrap());
        let limit = cutoff.map_or(i64::MAX, |s| s * 1_000_000_000 + 1);
        let want: Vec<(Vec<String>, i64)> = postings
            .iter()
            .map(|(k, ps)| (k.clone(), ps.iter().filter(|(at, _)| *at < limit).map(|(_, g)| g).sum::<i64>()))
            .filter(|(_, g)| *g != 0)
            .collect();
        let got: Vec<(Vec<String>, i64)> = got.into_iter().map(|(k, g, _)| (k, g)).collect();
        assert_eq!(got, want, "seed {seed}, as of {as_of:?}");
        // Grouped by class dimensions only, the class index must agree with the sum by lot.
        let by_partner =
            p.holdings(&stockpile_projector::HoldingsQuery { as_of, ..query(None, &[Dimension::Partner]) });
        let total: i64 = want.iter().map(|(_, g)| g).sum();
        assert_eq!(by_partner.unwrap().total.gross_g, total, "seed {seed}, as of {as_of:?}");
    }
    let (_d, fresh) = h.fresh_projector();
    assert!(p.snapshot() == fresh.snapshot(), "seed {seed}: reopened projector differs from a fold from zero");
}
