//! Black-box tests of what the `stockpile` binary does with ids: an unknown material,
//! partner, party, facility or lot in a query is refused (exit 1) with the closest known id,
//! never answered with zero; a ledger rejection of an unknown id gets a hint; and `list`
//! shows every id there is.

use std::path::Path;
use std::process::Command;
use stockpile_tests::bins::{binary, stockpile_in};

/// The demo ledger (parties `nl-mindef`…, facility `nl-vlissingen`…, lot `ga-2026-001`…)
/// in `dir`, with `data/` and `keys/` as `stockpile_in` expects.
fn demo(dir: &Path) {
    let out = Command::new(binary("stockpile"))
        .args(["demo", "--dir"])
        .arg(dir)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .output()
        .expect("run stockpile demo");
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `args`, expects exit `code`, returns (stdout, stderr).
fn expect(dir: &Path, code: i32, args: &[&str]) -> (String, String) {
    let out = stockpile_in(dir, args);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert_eq!(out.status.code(), Some(code), "stockpile {args:?}\nstdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

#[test]
fn unknown_ids_in_queries_exit_1_with_the_closest_known_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    demo(dir);
    let cases: &[(&[&str], &str)] = &[
        (
            &["holdings", "--material", "galium"],
            r#"unknown material "galium": did you mean "gallium"? (stockpile list materials"#,
        ),
        (&["holdings", "--material", "gallium,coballt"], r#"unknown material "coballt": did you mean "cobalt"?"#),
        (&["holdings", "--partner", "nl"], r#"unknown partner "nl": did you mean "NL"? (stockpile list partners"#),
        (
            &["holdings", "--party", "nl-mindeff"],
            r#"unknown party "nl-mindeff": did you mean "nl-mindef"? (stockpile list parties"#,
        ),
        (
            &["holdings", "--party", "xx-nobody"],
            r#"unknown party "xx-nobody": no known party is close; stockpile list parties"#,
        ),
        (&["holdings", "--facility", "in-transit"], r#"unknown facility "in-transit": did you mean "in_transit"?"#),
        (
            &["history", "--lot", "ga-2026-01"],
            r#"unknown lot "ga-2026-01": did you mean "ga-2026-001"? (stockpile list lots"#,
        ),
        (&["history", "--party", "nl-mindeff"], r#"unknown party "nl-mindeff": did you mean "nl-mindef"?"#),
        (&["history", "--facility", "nowhere"], r#"unknown facility "nowhere""#),
        (&["report", "--partner", "NLD", "--period", "2026"], r#"unknown partner "NLD": did you mean "NL"?"#),
    ];
    for (args, message) in cases {
        let (stdout, stderr) = expect(dir, 1, args);
        assert!(stdout.is_empty(), "{args:?}: nothing on stdout, got {stdout}");
        assert!(stderr.contains(message), "{args:?}: want {message:?} in\n{stderr}");
    }
    // Known ids still answer, in_transit included.
    expect(dir, 0, &["holdings", "--material", "gallium", "--party", "nl-mindef", "--facility", "in_transit"]);
    expect(dir, 0, &["history", "--lot", "ga-2026-001"]);
}

#[test]
fn a_rejected_unknown_id_gets_a_hint_and_lots_are_not_told_to_register() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    demo(dir);
    let release = [
        "release",
        "--party",
        "nl-mindef",
        "--at",
        "in_transit",
        "--quantity",
        "1 kg",
        "--reason",
        "sale",
        "--recipient",
        "x",
    ];
    let mut args = release.to_vec();
    args.extend(["--lot", "ga-2026-01"]);
    let (_, stderr) = expect(dir, 1, &args);
    assert!(stderr.contains("[unknown_reference]"), "{stderr}");
    assert!(stderr.contains("no acquire or conversion created a lot of that id"), "{stderr}");
    assert!(!stderr.contains("register it"), "a lot is never registered: {stderr}");
    assert!(stderr.contains("hint: did you mean \"ga-2026-001\"?"), "{stderr}");
    let rules = ["register", "release-rules", "--partner", "NL", "--material", "galium", "--text", "x"];
    let (_, stderr) = expect(dir, 1, &rules);
    assert!(stderr.contains("[unknown_material]") && stderr.contains("hint: did you mean \"gallium\"?"), "{stderr}");
    assert!(!stderr.contains(".json"), "messages name commands, not JSON files: {stderr}");
}

#[test]
fn list_shows_reference_and_registered_ids_as_table_csv_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The reference lists need no ledger.
    let (materials, _) = expect(dir, 0, &["list", "materials"]);
    assert!(materials.starts_with("ID ") && materials.contains("\ncobalt "), "{materials}");
    let (partners, _) = expect(dir, 0, &["--format", "csv", "list", "partners"]);
    assert!(partners.starts_with("code,name,eu,iea,nato\n") && partners.contains("\nNL,"), "{partners}");
    // The log's ids need one.
    let (_, stderr) = expect(dir, 2, &["list", "parties"]);
    assert!(stderr.contains("run `stockpile init` first"), "{stderr}");
    demo(dir);
    let (parties, _) = expect(dir, 0, &["list", "parties"]);
    assert!(parties.contains("\nnl-mindef ") && parties.contains(" public_authority "), "{parties}");
    let (facilities, _) = expect(dir, 0, &["--format", "json", "list", "facilities"]);
    let facilities: serde_json::Value = serde_json::from_str(&facilities).unwrap();
    assert!(facilities.as_array().unwrap().iter().all(|f| f["id"].is_string() && f["country"].is_string()));
    let (lots, _) = expect(dir, 0, &["--format", "json", "list", "lots"]);
    let lots: serde_json::Value = serde_json::from_str(&lots).unwrap();
    let ga = lots.as_array().unwrap().iter().find(|l| l["id"] == "ga-2026-001").expect("the demo's gallium lot");
    assert_eq!(ga["material"], "gallium");
}
