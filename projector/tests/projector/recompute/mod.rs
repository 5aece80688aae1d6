//! Every figure of every report, recomputed from the export by the rules of docs/REPORTS.md
//! through a second, deliberately simple path ([`oracle`]), must equal `report::build`'s.

mod history;
mod oracle;

use super::harness::fold_export;
use serde_json::Value;
use stockpile_projector::report::{self, Framework, MaterialScope, ReportRequest};

const SEED: u64 = 22;

const PERIODS: [&str; 10] =
    ["2023", "2024-02", "2025", "2025-H1", "2025-Q3", "2026-H1", "2026-Q2", "2026", "2026-Q4", "2026-12"];

/// The first place two JSON values differ, as a JSON pointer with both sides.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (l, r) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                first_difference(&format!("{path}/{k}"), l, r)
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (l, r))| first_difference(&format!("{path}/{i}"), l, r))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: program {a} / recomputed {b}")),
    }
}

#[test]
fn every_report_figure_recomputed_from_the_export_agrees_with_the_program() {
    let (h, coverage) = history::generate(SEED);
    for kind in ["acquired", "stored", "transferred", "released", "converted", "adjusted"] {
        assert!(coverage.reversed.get(kind).is_some_and(|n| *n > 0), "no {kind} reversed: {coverage:?}");
    }
    assert!(coverage.withholdings > 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("export.jsonl");
    h.export(&path);
    let (_views_dir, projector) = fold_export(&path);
    let views = projector.snapshot();
    let log = oracle::Log::read(&std::fs::read_to_string(&path).expect("read export"));

    let mut requests = Vec::new();
    for partner in ["NL", "DE", "BE"] {
        for period in PERIODS {
            for (framework, fw) in [(Framework::Eu, "EU"), (Framework::Iea, "IEA"), (Framework::Nato, "NATO")] {
                requests.push((partner, period, framework, fw, None));
            }
            requests.push((partner, period, Framework::Eu, "EU", Some((MaterialScope::All, "all"))));
            requests.push((partner, period, Framework::Eu, "EU", Some((MaterialScope::Critical, "critical"))));
        }
    }
    let (mut figures, mut seen) = (0usize, Seen::default());
    for (partner, period, framework, fw, scope) in requests {
        let req = ReportRequest {
            partner: partner.into(),
            period: period.parse().unwrap(),
            framework,
            materials: scope.map(|(s, _)| s),
        };
        let built = report::build(&views, &req).unwrap_or_else(|e| panic!("{partner} {period} {fw}: {e}"));
        let program = serde_json::to_value(&built).expect("report as JSON");
        let recomputed = oracle::report(&log, partner, period, fw, scope.map(|(_, s)| s));
        if let Some(diff) = first_difference("", &program, &recomputed) {
            panic!("{fw} report of {partner} for {period} (scope {scope:?}) disagrees at {diff}");
        }
        figures += count_leaves(&program);
        seen.note(&built);
    }
    // the history reaches every case the rules distinguish, so the comparison means something
    assert!(seen.provisional && seen.final_, "provisional and final reports");
    assert!(seen.withheld && seen.private && seen.for_others && seen.in_transit && seen.abroad, "{seen:?}");
    assert!(seen.registered && seen.not_registered && seen.confidential && seen.published, "{seen:?}");
    assert!(seen.reversal_lines, "some reversal moved a transfer or conversion line against its sign: {seen:?}");
    assert_eq!(oracle::days_of_previous_year("2025-H1"), 366, "a period whose previous year is a leap year");
    assert!(figures > 20_000, "compared only {figures} values");
}

fn count_leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.values().map(count_leaves).sum(),
        Value::Array(a) => a.iter().map(count_leaves).sum(),
        _ => 1,
    }
}

/// Which cases the compared reports contain.
#[derive(Debug, Default)]
struct Seen {
    provisional: bool,
    final_: bool,
    withheld: bool,
    private: bool,
    for_others: bool,
    in_transit: bool,
    abroad: bool,
    registered: bool,
    not_registered: bool,
    confidential: bool,
    published: bool,
    /// A transfer-in line below zero or a transfer-out line above zero (only reversals do that).
    reversal_lines: bool,
}

impl Seen {
    fn note(&mut self, r: &report::Report) {
        self.provisional |= r.header.provisional;
        self.final_ |= !r.header.provisional;
        self.withheld |= !r.body.withheld.is_empty();
        self.private |= !r.body.private_stocks.is_empty();
        self.for_others |= !r.body.held_for_others.is_empty();
        for m in &r.body.materials {
            self.in_transit |= m.locations.iter().any(|l| l.placement == "in_transit");
            self.abroad |= m.locations.iter().any(|l| l.placement == "abroad");
            for ratio in [&m.consumption, &m.days_of_cover] {
                self.registered |= ratio.status == "registered";
                self.not_registered |= ratio.status == "not_registered";
            }
            self.confidential |= m.release_rules.status == "confidential";
            self.published |= m.release_rules.status == "published";
            self.reversal_lines |= m.movements.iter().any(|l| {
                (matches!(l.line.as_str(), "transferred_in" | "converted_in") && l.gross_g < 0)
                    || (matches!(l.line.as_str(), "transferred_out" | "converted_out") && l.gross_g > 0)
            });
        }
    }
}
