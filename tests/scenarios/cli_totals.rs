//! Holdings tables never add tonnes of different materials: one TOTAL row per material.

use std::process::Command;
use stockpile_tests::bins::{binary, stockpile_in};

/// The TOTAL rows of a holdings table: (first cell, gross tonnes).
fn totals(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .filter(|l| l.starts_with("TOTAL"))
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (format!("{} {}", cells[0], cells[1]), cells[cells.len() - 2].to_string())
        })
        .collect()
}

#[test]
fn holdings_tables_total_per_material_never_across_materials() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let demo =
        Command::new(binary("stockpile")).args(["demo", "--dir"]).arg(dir).env("NO_COLOR", "1").output().unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let run = |args: &[&str]| {
        let out = stockpile_in(dir, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    // The demo holds germanium at two partners: its total is their sum; gallium's its own.
    let (by_partner, _) = run(&["holdings", "--by", "partner,material"]);
    let t = totals(&by_partner);
    assert!(t.contains(&("TOTAL germanium".into(), "2.000".into())), "{by_partner}");
    assert!(t.contains(&("TOTAL gallium".into(), "5.000".into())), "{by_partner}");
    assert!(t.iter().all(|(first, _)| first != "TOTAL" && first.split(' ').count() == 2), "{by_partner}");
    // Grouped without material, the totals still come per material, with a note on stderr.
    let (by_party, note) = run(&["holdings", "--by", "party"]);
    assert_eq!(totals(&by_party), t, "{by_party}");
    assert!(note.contains("add material to --by"), "{note}");
    // JSON keeps the exact grams of every row and their sum, as the schema describes.
    let (json, _) = run(&["--format", "json", "holdings", "--by", "material"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let sum: i64 = v["rows"].as_array().unwrap().iter().map(|r| r["totals"]["gross_g"].as_i64().unwrap()).sum();
    assert_eq!(v["total"]["gross_g"].as_i64(), Some(sum));
}
