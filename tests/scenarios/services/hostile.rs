//! (h) A corpus of hostile inputs, each sent three ways: as a `post` file to the embedded
//! CLI, over NATS (raw append requests for what cannot be parsed; `stockpile --nats post`
//! for what parses and must be refused by the ledger), and — where the input is an argument
//! — as CLI arguments. Each gets a typed error naming what to fix, nothing is written, and
//! the service goes on serving. Then the key rules: a revoked key is refused from its
//! revocation on, a command changed after signing is refused, and a replayed signed
//! command is a duplicate, not a second movement.

use super::*;
use stockpile_ledger::domain::KeyId;
use stockpile_ledger::signing::OperatorKey;
use stockpile_ledger::store::Store;
use stockpile_tests::bins::stockpile_in;
use stockpile_tests::nats::NatsServer;

/// What a hostile input must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Refused before anything is decided: `post` exits 2 saying nothing was posted; a raw
    /// append request gets an error reply with this code.
    Unreadable(&'static str),
    /// Decided and rejected by the ledger with this code (exit 1, embedded and over NATS).
    Rejected(&'static str),
}
use Expect::{Rejected, Unreadable};

struct Case {
    name: &'static str,
    line: Vec<u8>,
    expect: Expect,
}

/// A valid acquire in the demo ledger (nl-mindef buys gallium), as JSON to mutate. Every
/// case is posted with nl-mindef's key (`--key`), so a case that names another party is
/// decided, not stopped for want of a key.
fn acquire() -> serde_json::Value {
    serde_json::json!({
        "id": "h-acq",
        "occurred_at": "2026-05-01T10:00:00Z",
        "action": {
            "kind": "acquire",
            "lot": {"id": "h-lot", "material": "gallium", "form": "metal", "purity_ppm": 999990, "origin": "JP"},
            "to": {"party": "nl-mindef", "location": "in_transit", "programme": "national"},
            "quantity": {"amount": "2.5", "unit": "t"}
        }
    })
}

/// A valid release in the demo ledger (nl-mindef sells 1 t of its stored gallium).
fn release() -> serde_json::Value {
    serde_json::json!({
        "id": "h-rel",
        "occurred_at": "2026-05-02T10:00:00Z",
        "action": {
            "kind": "release",
            "lot": "ga-2026-001",
            "from": {"party": "nl-mindef", "location": "nl-den-helder", "programme": "national"},
            "quantity": {"amount": "1", "unit": "t"},
            "reason": "sale",
            "recipient": "Thales Nederland"
        }
    })
}

/// `base` with the JSON pointer `at` set to `value` (`None`: removed).
fn with(base: serde_json::Value, at: &str, value: Option<serde_json::Value>) -> Vec<u8> {
    let mut v = base;
    let (parent, key) = at.rsplit_once('/').expect("a pointer");
    let slot = v.pointer_mut(parent).unwrap_or_else(|| panic!("{parent} in the base command"));
    let object = slot.as_object_mut().expect("an object");
    match value {
        Some(value) => object.insert(key.to_string(), value),
        None => object.remove(key),
    };
    serde_json::to_vec(&v).expect("encode")
}

fn raw(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn corpus() -> Vec<Case> {
    use serde_json::json;
    let a = acquire;
    let amount = |text: &str, unit: &str| with(a(), "/action/quantity", Some(json!({"amount": text, "unit": unit})));
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let mut deep_command = acquire();
    deep_command["action"]["lot"]["certificate"] = serde_json::from_str(&deep).expect("deep JSON");
    let case = |name, line, expect| Case { name, line, expect };
    vec![
        // Malformed and truncated JSON, wrong shapes.
        case("empty object", raw("{}"), Unreadable("malformed_request")),
        case("truncated", raw(r#"{"id":"x","occurred_at":"#), Unreadable("malformed_request")),
        case("not JSON", raw("acquire 2.5 t gallium"), Unreadable("malformed_request")),
        case("array", raw("[1,2,3]"), Unreadable("malformed_request")),
        case("null", raw("null"), Unreadable("malformed_request")),
        case("bare string", raw("\"acquire\""), Unreadable("malformed_request")),
        case("invalid UTF-8", b"{\"id\":\"\xff\xfe\"}".to_vec(), Unreadable("malformed_request")),
        case("raw control character in a string", raw("{\"id\":\"a\u{1}b\"}"), Unreadable("malformed_request")),
        case(
            "duplicate key",
            raw(r#"{"id":"a","id":"b","occurred_at":"2026-05-01T10:00:00Z","action":{"kind":"genesis"}}"#),
            Unreadable("malformed_request"),
        ),
        case("deep nesting", serde_json::to_vec(&deep_command).expect("encode"), Unreadable("too_deeply_nested")),
        case(
            "oversized",
            with(a(), "/action/supplier", Some(json!("x".repeat(800 << 10)))),
            Unreadable("request_too_large"),
        ),
        // Unknown fields.
        case("unknown top-level field", with(a(), "/colour", Some(json!("red"))), Unreadable("malformed_request")),
        case(
            "unknown action field",
            with(a(), "/action/discount", Some(json!("10%"))),
            Unreadable("malformed_request"),
        ),
        case("unknown lot field", with(a(), "/action/lot/grade", Some(json!("A"))), Unreadable("malformed_request")),
        case("unknown kind", with(a(), "/action/kind", Some(json!("steal"))), Unreadable("malformed_request")),
        // Wrong types and missing fields.
        case("id as number", with(a(), "/id", Some(json!(42))), Unreadable("malformed_request")),
        case(
            "purity as string",
            with(a(), "/action/lot/purity_ppm", Some(json!("999990"))),
            Unreadable("malformed_request"),
        ),
        case("negative purity", with(a(), "/action/lot/purity_ppm", Some(json!(-5))), Unreadable("malformed_request")),
        case(
            "purity beyond u32",
            with(a(), "/action/lot/purity_ppm", Some(json!(10_000_000_000u64))),
            Unreadable("malformed_request"),
        ),
        case(
            "amount as float",
            with(a(), "/action/quantity/amount", Some(json!(2.5))),
            Unreadable("malformed_request"),
        ),
        case(
            "amount as exponent number",
            with(a(), "/action/quantity/amount", Some(json!(1e3))),
            Unreadable("malformed_request"),
        ),
        case("quantity as text", with(a(), "/action/quantity", Some(json!("2.5 t"))), Unreadable("malformed_request")),
        case("unknown unit", amount("2.5", "lb"), Unreadable("malformed_request")),
        case("unknown form", with(a(), "/action/lot/form", Some(json!("plasma"))), Unreadable("malformed_request")),
        case(
            "unknown programme",
            with(a(), "/action/to/programme", Some(json!("UN"))),
            Unreadable("malformed_request"),
        ),
        case("location as number", with(a(), "/action/to/location", Some(json!(7))), Unreadable("malformed_request")),
        case("date as words", with(a(), "/occurred_at", Some(json!("yesterday"))), Unreadable("malformed_request")),
        case(
            "date without zone",
            with(a(), "/occurred_at", Some(json!("2026-05-01T10:00:00"))),
            Unreadable("malformed_request"),
        ),
        case("missing quantity", with(a(), "/action/quantity", None), Unreadable("malformed_request")),
        case("missing id", with(a(), "/id", None), Unreadable("malformed_request")),
        // Amounts the ledger refuses.
        case("zero amount", amount("0", "t"), Rejected("bad_quantity")),
        case("negative amount", amount("-1", "t"), Rejected("bad_quantity")),
        case("exponent in the amount", amount("1e3", "kg"), Rejected("bad_quantity")),
        case("comma decimal", amount("2,5", "t"), Rejected("bad_quantity")),
        case("finer than a gram (kg)", amount("0.0001", "kg"), Rejected("bad_quantity")),
        case("fraction of a gram", amount("1.5", "g"), Rejected("bad_quantity")),
        case("overflow", amount("99999999999999999999", "t"), Rejected("bad_quantity")),
        case("empty amount", amount("", "t"), Rejected("bad_quantity")),
        case("padded amount", amount(" 2.5", "t"), Rejected("bad_quantity")),
        case("NaN", amount("NaN", "t"), Rejected("bad_quantity")),
        case("too many troy-ounce decimals", amount("1.1234567", "ozt"), Rejected("bad_quantity")),
        // Ids and references.
        case(
            "unknown material",
            with(a(), "/action/lot/material", Some(json!("unobtainium"))),
            Rejected("unknown_material"),
        ),
        case(
            "look-alike material (Cyrillic a)",
            with(a(), "/action/lot/material", Some(json!("g\u{430}llium"))),
            Rejected("unknown_material"),
        ),
        case("unknown party", with(a(), "/action/to/party", Some(json!("nl-nobody"))), Rejected("unknown_reference")),
        case(
            "look-alike party (Cyrillic i)",
            with(a(), "/action/to/party", Some(json!("nl-m\u{456}ndef"))),
            Rejected("invalid_id"),
        ),
        case("control character in the id", with(a(), "/id", Some(json!("acq\u{7}1"))), Rejected("invalid_id")),
        case(
            "zero-width space in the lot id",
            with(a(), "/action/lot/id", Some(json!("h\u{200b}lot"))),
            Rejected("invalid_id"),
        ),
        case("id too long", with(a(), "/id", Some(json!("a".repeat(65)))), Rejected("invalid_id")),
        case("empty id", with(a(), "/id", Some(json!(""))), Rejected("invalid_id")),
        case("id with a space", with(a(), "/id", Some(json!("acq 1"))), Rejected("invalid_id")),
        case(
            "unknown facility",
            with(a(), "/action/to/location", Some(json!("xx-nowhere"))),
            Rejected("unknown_reference"),
        ),
        case("unknown lot", with(release(), "/action/lot", Some(json!("no-such-lot"))), Rejected("unknown_reference")),
        case("purity zero", with(a(), "/action/lot/purity_ppm", Some(json!(0))), Rejected("invalid_field")),
        case(
            "purity above a million",
            with(a(), "/action/lot/purity_ppm", Some(json!(1_000_001))),
            Rejected("invalid_field"),
        ),
        case(
            "control characters in free text",
            with(a(), "/action/supplier", Some(json!("Dowa\u{1b}[31m"))),
            Rejected("invalid_field"),
        ),
        // Dates and balances.
        case(
            "future date",
            with(a(), "/occurred_at", Some(json!("2099-01-01T00:00:00Z"))),
            Rejected("occurred_in_future"),
        ),
        case(
            "absurd past date",
            with(a(), "/occurred_at", Some(json!("1066-10-14T09:00:00Z"))),
            Rejected("occurred_too_early"),
        ),
        case(
            "overdraw",
            with(release(), "/action/quantity", Some(json!({"amount": "1000", "unit": "t"}))),
            Rejected("insufficient_stock"),
        ),
    ]
}

/// The committed head of the ledger in `data` (the process that wrote it has exited).
fn head(data: &Path) -> u64 {
    assert!(data.join("db").exists(), "{} holds a ledger", data.display());
    let store = Store::open(data).expect("open the store");
    store.last_record().expect("read").map_or(0, |(seq, _)| seq)
}

/// Writes `line` to a post file in `dir` and returns its path.
fn post_file(dir: &Path, name: &str, lines: &[&[u8]]) -> String {
    let path = dir.join(format!("{}.jsonl", name.replace(' ', "-")));
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(&path, bytes).expect("write the post file");
    path.to_str().expect("UTF-8 path").to_string()
}

/// Checks one `post` run against `expect`.
fn check_post(name: &str, output: &std::process::Output, expect: Expect) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    match expect {
        Unreadable(_) => {
            assert_eq!(code, Some(2), "{name}: a usage error; stderr: {stderr}");
            assert!(stderr.contains("nothing was posted") || stderr.contains("line 1"), "{name}: says what: {stderr}");
        }
        Rejected(rule) => {
            assert_eq!(code, Some(1), "{name}: rejected by the ledger; stderr: {stderr}");
            assert!(stderr.contains(&format!("[{rule}]")), "{name}: names the rule {rule}: {stderr}");
        }
    }
}

/// A demo key, to sign lines as the CLI would not (changed, or by a key later revoked).
fn demo_key(keys: &Path, id: &str) -> OperatorKey {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keys.join(format!("{id}.key"))).expect("key file")).expect("key JSON");
    let secret: [u8; 32] =
        hex::decode(file["secret_key"].as_str().expect("secret")).expect("hex").try_into().expect("32 bytes");
    OperatorKey::from_secret(KeyId::new(id), secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_typed_errors_change_nothing_and_the_service_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    // `stockpile_in(&demo, …)` passes `--data <demo>/data --keys <demo>/keys`, where the demo
    // then builds (it honours --data and --keys) and every later call reads.
    let made = stockpile_in(&demo, &["demo", "--dir", demo.to_str().expect("UTF-8")]);
    assert!(made.status.success(), "demo: {}", String::from_utf8_lossy(&made.stderr));
    // The embedded CLI keeps the ledger in `<data>/ledger`.
    let (data, keys) = (demo.join("data").join("ledger"), demo.join("keys"));
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    let cases = corpus();
    assert!(cases.len() >= 50, "at least 50 distinct hostile inputs, not {}", cases.len());
    let before = head(&data);
    assert!(before > 30, "the demo ledger has its records ({before})");

    // 1. `post` files, embedded.
    for case in &cases {
        let file = post_file(&files, case.name, &[&case.line]);
        check_post(case.name, &stockpile_in(&demo, &["post", "--key", "nl-mindef-ops", &file]), case.expect);
    }
    // 2. Arguments: the same mistakes typed on the command line.
    let acquire_args = |quantity: &str, material: &str, party: &str, date: &str| {
        let args = [
            "acquire",
            "--lot",
            "h-arg",
            "--material",
            material,
            "--form",
            "metal",
            "--purity",
            "999990",
            "--origin",
            "JP",
            "--party",
            party,
            "--quantity",
            quantity,
            "--occurred-at",
            date,
        ];
        stockpile_in(&demo, &args.map(str::to_string).iter().map(String::as_str).collect::<Vec<_>>())
    };
    for (name, output) in [
        ("zero quantity argument", acquire_args("0 t", "gallium", "nl-mindef", "2026-05-01")),
        ("negative quantity argument", acquire_args("-1 t", "gallium", "nl-mindef", "2026-05-01")),
        ("exponent quantity argument", acquire_args("1e3 kg", "gallium", "nl-mindef", "2026-05-01")),
        ("sub-gram quantity argument", acquire_args("0.0001 kg", "gallium", "nl-mindef", "2026-05-01")),
        ("unknown material argument", acquire_args("1 t", "unobtainium", "nl-mindef", "2026-05-01")),
        ("unknown party argument", acquire_args("1 t", "gallium", "nl-nobody", "2026-05-01")),
        ("future date argument", acquire_args("1 t", "gallium", "nl-mindef", "2099-01-01")),
        ("absurd date argument", acquire_args("1 t", "gallium", "nl-mindef", "0000-13-45")),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(matches!(output.status.code(), Some(1 | 2)), "{name}: exit 1 or 2, not {:?}: {stderr}", output.status);
        assert!(stderr.contains("error") || stderr.contains("rejected"), "{name}: says what is wrong: {stderr}");
    }
    assert_eq!(head(&data), before, "no hostile input changed the embedded ledger");

    // 3. Over NATS, against the ledger service on the same data.
    let nats = NatsServer::start();
    let service = InProcess::serve(config(&nats.url()), open_ledger(&data));
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let url = nats.url();
    for case in &cases {
        match case.expect {
            Unreadable(code) => {
                let mut body = br#"{"commands":[{"command":"#.to_vec();
                body.extend_from_slice(&case.line);
                body.extend_from_slice(br#","key":"nl-mindef-ops","public_key":"00","signature":"00"}]}"#);
                let reply = request(&client, subjects::APPEND, body).await;
                let reply = error_reply(&reply);
                assert_eq!(reply.error.code, code, "{}: {}", case.name, reply.error.message);
            }
            Rejected(_) => {
                let file = post_file(&files, case.name, &[&case.line]);
                let output = stockpile_in(&demo, &["--nats", &url, "post", "--key", "nl-mindef-ops", &file]);
                check_post(case.name, &output, case.expect);
            }
        }
    }
    assert_eq!(*service.ledger.head().borrow(), before, "no hostile input changed the ledger over NATS");

    // 4. Keys. A command changed after signing, and a signature that is not one, are refused.
    let mindef = demo_key(&keys, "nl-mindef-ops");
    let command: stockpile_ledger::domain::Command = serde_json::from_value(acquire()).expect("a command");
    let signed = serde_json::to_value(mindef.sign(command)).expect("encode");
    let mut changed = signed.clone();
    changed["command"]["action"]["quantity"]["amount"] = "250".into();
    let mut forged = signed.clone();
    forged["signature"] = "00".repeat(64).into();
    for (name, line) in [("changed after signing", &changed), ("forged signature", &forged)] {
        let file = post_file(&files, name, &[&serde_json::to_vec(line).expect("encode")]);
        check_post(name, &stockpile_in(&demo, &["--nats", &url, "post", &file]), Rejected("bad_signature"));
    }
    assert_eq!(*service.ledger.head().borrow(), before, "nothing was written");
    // The genuine command appends once; replayed, it is a duplicate with the same seq.
    let genuine = post_file(&files, "genuine", &[&serde_json::to_vec(&signed).expect("encode")]);
    for round in ["first", "replayed"] {
        let output = stockpile_in(&demo, &["--nats", &url, "post", &genuine]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{round}: {}", String::from_utf8_lossy(&output.stderr));
        let want = if round == "first" { "1 appended, 0 duplicate" } else { "0 appended, 1 duplicate" };
        assert!(stdout.contains(want), "{round}: {stdout}");
    }
    assert_eq!(*service.ledger.head().borrow(), before + 1, "the replay was not a second movement");
    // A key signs a command, is revoked, and the command is refused from then on.
    let wire = demo_key(&keys, "nl-wire-ops");
    let mut late = release();
    late["id"] = "h-late".into();
    late["action"]["lot"] = "cu-2026-002".into();
    late["action"]["from"] =
        serde_json::json!({"party": "nl-wire", "location": "nl-rotterdam", "programme": "national"});
    let late = wire.sign(serde_json::from_value(late).expect("a command"));
    let revoked = stockpile_in(&demo, &["--nats", &url, "keys", "revoke", "nl-wire-ops", "--reason", "laptop lost"]);
    assert!(revoked.status.success(), "revoke: {}", String::from_utf8_lossy(&revoked.stderr));
    let file = post_file(&files, "signed before revocation", &[&serde_json::to_vec(&late).expect("encode")]);
    check_post(
        "signed by a revoked key",
        &stockpile_in(&demo, &["--nats", &url, "post", &file]),
        Rejected("key_revoked"),
    );
    assert_eq!(*service.ledger.head().borrow(), before + 2, "only the revocation was written");

    // The service still serves: a valid command appends.
    let file = post_file(&files, "valid", &[&serde_json::to_vec(&release()).expect("encode")]);
    let output = stockpile_in(&demo, &["--nats", &url, "post", &file]);
    assert!(output.status.success(), "a valid post after it all: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(*service.ledger.head().borrow(), before + 3);
    service.stop().await.shutdown().expect("the ledger stops cleanly");
}
