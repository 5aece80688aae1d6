//! The JSON the `stockpile` binary prints for `holdings` and `history` matches
//! `v1/holdings.schema.json` and `v1/history.schema.json`, on the demo ledger (built by the real
//! `stockpile demo`), whose gallium is in transit from 3 to 20 February 2026.

use super::{assert_valid, validator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use stockpile_tests::bins::{binary, stockpile_in};

/// Every dimension a holdings query can group by.
const EVERY_DIMENSION: &str =
    "partner,party,holder_type,material,form,purity,origin,lot,facility,facility_country,programme";

/// A day on which the demo's gallium is in transit.
const GALLIUM_IN_TRANSIT_ON: &str = "2026-02-10";

/// `stockpile --data DIR/data --keys DIR/keys --format json ARGS`; its stdout as JSON.
fn json(demo: &Path, args: &[&str]) -> Value {
    let out = stockpile_in(demo, &[&["--format", "json"][..], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stockpile {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stockpile {args:?} printed no JSON: {e}"))
}

/// The demo ledger in a temporary directory: `data/` and `keys/` in the directory returned.
fn demo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");
    let out = Command::new(binary("stockpile")).args(["demo", "--dir"]).arg(&demo).env("NO_COLOR", "1").output();
    let out = out.expect("run stockpile demo");
    assert!(out.status.success(), "stockpile demo failed: {}", String::from_utf8_lossy(&out.stderr));
    (dir, demo)
}

/// The dimensions a holdings answer was grouped by.
fn group_by(holdings: &Value) -> Vec<&str> {
    let dims = holdings["query"]["group_by"].as_array().map(Vec::as_slice).unwrap_or_default();
    dims.iter().map(|d| d.as_str().expect("dimension text")).collect()
}

/// Valid, and each row's key has exactly the `group_by` dimensions (which a schema cannot say).
fn check_holdings(holdings: &Value, what: &str) {
    assert_valid(&validator("v1/holdings.schema.json"), holdings, what);
    let mut dims = group_by(holdings);
    dims.sort_unstable();
    for row in holdings["rows"].as_array().expect("rows") {
        let mut members: Vec<&str> = row["key"].as_object().expect("key object").keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, dims, "{what}: a row's key has other members than group_by: {row}");
    }
}

#[test]
fn holdings_json_with_stock_in_transit_matches_its_schema() {
    let (_dir, demo) = demo();
    let by = ["--by", EVERY_DIMENSION];
    let in_transit = json(&demo, &[&["holdings", "--as-of", GALLIUM_IN_TRANSIT_ON][..], &by].concat());
    check_holdings(&in_transit, "holdings by every dimension with gallium in transit");
    let rows = in_transit["rows"].as_array().expect("rows");
    let transit: Vec<&Value> = rows.iter().filter(|r| r["key"]["facility"] == "in_transit").collect();
    assert_eq!(transit.len(), 1, "one position in transit on {GALLIUM_IN_TRANSIT_ON}: {rows:#?}");
    assert_eq!(transit[0]["key"]["facility_country"], Value::Null, "stock in transit is in no country");
    assert_eq!(transit[0]["key"]["material"], "gallium");
    assert_eq!(transit[0]["totals"]["gross_g"], 5_000_000);

    let now = json(&demo, &[&["holdings"][..], &by].concat());
    check_holdings(&now, "holdings by every dimension now");
    assert!(!now["rows"].as_array().expect("rows").is_empty(), "the demo holds stock");
    let filtered = json(
        &demo,
        &[
            "holdings",
            "--as-of",
            "2026-02-10T12:00:00Z",
            "--partner",
            "NL,DE",
            "--material",
            "gallium",
            "--programme",
            "national",
            "--holder-type",
            "public_authority",
            "--facility",
            "in_transit",
        ],
    );
    check_holdings(&filtered, "holdings filtered, without group_by");
    assert_eq!(filtered["total"]["gross_t"], "5.000000", "{filtered:#}");
    check_holdings(&json(&demo, &["holdings", "--material", "osmium"]), "holdings of nothing");
}

#[test]
fn holdings_json_that_breaks_its_schema_is_refused() {
    let (_dir, demo) = demo();
    let holdings = json(&demo, &["holdings", "--as-of", GALLIUM_IN_TRANSIT_ON, "--by", "facility,facility_country"]);
    check_holdings(&holdings, "holdings by facility and country");
    let schema = validator("v1/holdings.schema.json");
    let transit = holdings["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .position(|r| r["key"]["facility"] == "in_transit")
        .expect("a row in transit");
    let broken = |pointer: &str, value: Value| {
        let mut doc = holdings.clone();
        *doc.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} in {holdings}")) = value;
        assert!(!schema.is_valid(&doc), "the holdings schema accepts {pointer} = {}", doc.pointer(pointer).unwrap());
    };
    broken(&format!("/rows/{transit}/key/facility_country"), Value::from("in_transit"));
    broken(&format!("/rows/{transit}/key/facility"), Value::Null);
    broken("/rows/0/totals/gross_t", Value::from("5"));
    broken("/rows/0/totals/gross_g", Value::from(5.5));
    broken("/query/group_by", serde_json::json!(["facility", "facility"]));
    broken("/head_hash", Value::from("AB".repeat(32)));
}

#[test]
fn history_json_matches_its_schema() {
    let (_dir, demo) = demo();
    let schema = validator("v1/history.schema.json");
    for subject in [["--lot", "ga-2026-001"], ["--party", "nl-mindef"], ["--facility", "nl-den-helder"]] {
        let history = json(&demo, &[&["history"][..], &subject].concat());
        assert_valid(&schema, &history, &format!("history {subject:?}"));
        let seqs: Vec<u64> =
            history.as_array().expect("array").iter().map(|r| r["body"]["seq"].as_u64().expect("seq")).collect();
        assert!(!seqs.is_empty(), "history {subject:?} is empty");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "history {subject:?} is not in seq order: {seqs:?}");
    }
    let lot = json(&demo, &["history", "--lot", "ga-2026-001"]);
    let kinds: Vec<&str> =
        lot.as_array().unwrap().iter().map(|r| r["body"]["event"]["kind"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..2], ["acquired", "stored"], "the gallium is bought in transit, then stored");
    // An empty history is valid; a lot the log never mentioned is refused (exit 1, with a
    // suggestion), not answered with an empty list.
    assert_valid(&schema, &serde_json::json!([]), "an empty history");
    let unknown = stockpile_in(&demo, &["--format", "json", "history", "--lot", "no-such-lot"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", String::from_utf8_lossy(&unknown.stderr));
    let mut broken = lot.clone();
    broken[0]["body"]["event"]["kind"] = Value::from("acquire");
    assert!(!schema.is_valid(&broken), "the history schema accepts a record with an unknown event kind");
}
