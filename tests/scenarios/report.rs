//! The report against its contract: the JSON of a report cut from a real ledger validates
//! against `schemas/v1/report.schema.json`, is canonical, and its CSV parses back to the same
//! figures.

use super::schemas::{assert_valid, run_scenario, validator};
use std::collections::BTreeMap;
use stockpile_ledger::canonical;
use stockpile_projector::report::{self, render, Framework, Report, ReportRequest};
use stockpile_projector::{LedgerSource, Projector};

fn reports() -> Vec<Report> {
    let run = run_scenario();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Projector::open(dir.path()).expect("open projector");
    p.catch_up(&mut LedgerSource::new(run.ledger.store().clone())).expect("catch up");
    let views = p.snapshot();
    [("NL", "2026-Q1", Framework::Eu), ("NL", "2026", Framework::Nato), ("GR", "2026-02", Framework::Eu)]
        .into_iter()
        .map(|(partner, period, framework)| {
            let req =
                ReportRequest { partner: partner.into(), period: period.parse().unwrap(), framework, materials: None };
            report::build(&views, &req).expect("report")
        })
        .collect()
}

#[test]
fn report_json_validates_and_is_canonical() {
    let v = validator("v1/report.schema.json");
    let reports = reports();
    let nl = &reports[0];
    assert!(!nl.body.materials.is_empty(), "the scenario reports gallium: {nl:?}");
    for r in &reports {
        let bytes = render::json(r).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_valid(&v, &value, &r.header.report_id);
        assert_eq!(&bytes[..bytes.len() - 1], &canonical::to_vec(&value).unwrap()[..], "submitted canonical");
        let back: Report = serde_json::from_value(value).expect("decodes into the Rust type");
        assert_eq!(&back, r);
    }
    // The schema is strict: a float where grams go, or an unknown line, is refused.
    let mut bad = serde_json::to_value(nl).unwrap();
    bad["body"]["materials"][0]["stock"]["gross_g"] = serde_json::json!(1.5);
    assert!(!v.is_valid(&bad));
    let mut bad = serde_json::to_value(nl).unwrap();
    bad["body"]["materials"][0]["movements"][0]["line"] = serde_json::json!("teleported");
    assert!(!v.is_valid(&bad));
}

/// A minimal RFC 4180 reader: quoted fields with doubled quotes, no embedded CR.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[test]
fn report_csv_parses_back_to_the_same_figures() {
    for r in reports() {
        let rows = parse_csv(&render::csv(&r));
        assert_eq!(rows[0], render::CSV_COLUMNS);
        assert!(rows.iter().all(|row| row.len() == render::CSV_COLUMNS.len()), "rectangular");
        let get = |section: &str, material: &str, item: &str| -> Vec<&Vec<String>> {
            rows.iter().filter(|x| x[0] == section && x[1] == material && x[2] == item).collect()
        };
        let header: BTreeMap<&str, &str> =
            rows.iter().filter(|x| x[0] == "header").map(|x| (x[2].as_str(), x[8].as_str())).collect();
        assert_eq!(header["body_sha256"], r.header.body_sha256);
        assert_eq!(header["cut_seq"], r.header.cut_seq.to_string());
        assert_eq!(header["partner"], r.header.partner);
        for m in &r.body.materials {
            let stock = get("stock", &m.material, "closing");
            assert_eq!(stock.len(), 1);
            assert_eq!(stock[0][4].parse::<i64>().unwrap(), m.stock.gross_g);
            assert_eq!(stock[0][6].parse::<i64>().unwrap(), m.stock.contained_g);
            assert_eq!(stock[0][5], m.stock.gross_t);
            let moves: Vec<(String, String, i64)> = rows
                .iter()
                .filter(|x| x[0] == "movement" && x[1] == m.material)
                .map(|x| (x[2].clone(), x[3].clone(), x[4].parse().unwrap()))
                .collect();
            let want: Vec<(String, String, i64)> =
                m.movements.iter().map(|l| (l.line.clone(), l.reason.clone().unwrap_or_default(), l.gross_g)).collect();
            assert_eq!(moves, want);
            let total: i64 = moves.iter().filter(|(l, _, _)| l != "closing").map(|(_, _, g)| g).sum();
            assert_eq!(total, m.stock.gross_g, "opening + flows = closing, read back from the CSV");
            let history: Vec<(String, i64)> = rows
                .iter()
                .filter(|x| x[0] == "history" && x[1] == m.material)
                .map(|x| (x[2].clone(), x[4].parse().unwrap()))
                .collect();
            let want: Vec<(String, i64)> = m.history.iter().map(|y| (y.date.clone(), y.amounts.gross_g)).collect();
            assert_eq!(history, want);
            let rules = get("rules", &m.material, &m.release_rules.status);
            assert_eq!(rules[0][8], m.release_rules.text, "text with commas and quotes survives");
        }
        for w in &r.body.withheld {
            assert_eq!(get("withheld", &w.material, "since")[0][8], w.reason);
        }
    }
}
