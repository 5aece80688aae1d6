//! Randomized decoding: whatever bytes, text or command-shaped JSON arrives, the parsers of
//! the wire (amounts, commands, signed commands, append requests) never panic. Each gives a
//! typed error or a value that encodes — as JSON and as canonical JSON — and decodes back
//! to itself; a decoded command goes through signature verification and, re-signed, through
//! `decide` without a panic.
//!
//! Commands are mutated from valid ones: the golden examples in `schemas/examples/` and the
//! test world's commands. Failures print proptest's seed and the shrunk input.

use crate::harness::Harness;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use stockpile_ledger::canonical;
use stockpile_ledger::domain::quantity::{parse_grams, QUANTITY_GRAMS_MAX};
use stockpile_ledger::domain::{Action, Amount, Command, EventId, Form, Programme, Unit};
use stockpile_ledger::signing::{verify, SignedCommand};
use stockpile_ledger::testkit::{amount, at, command, holding, lot, World};
use stockpile_ledger::wire::AppendRequest;
use stockpile_ledger::Outcome;

/// Cases per property: enough to reach every field of every command kind many times, few
/// enough that the file runs in seconds.
const CASES: u32 = 2_000;
/// Cases for the property that decides every command on a real ledger (a sled commit each).
const DECIDE_CASES: u32 = 300;
/// Mutations applied to one valid command at most.
const MUTATIONS_MAX: usize = 4;

const UNITS: [Unit; 4] = [Unit::G, Unit::Kg, Unit::T, Unit::Ozt];

fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Text shaped like an amount often enough to reach every branch of the parser.
fn amount_text() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,40}", "[-+]?[0-9]{0,34}(\\.[0-9]{0,34})?", "[0-9]{1,3}\\.[0-9]{1,8}", "[0-9. e,_-]{0,12}",]
}

/// A JSON value to put where a field was: each type, boundary integers, words the schema
/// uses, dates (some outside what RFC 3339 allows), and small containers.
fn json_value() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "g",
        "kg",
        "t",
        "ozt",
        "metal",
        "oxide",
        "in_transit",
        "national",
        "acquire",
        "release",
        "reverse",
        "genesis",
        "nl-covra",
        "NL",
        "cobalt",
        "",
        "0",
        "-1",
        "1e3",
        "null",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0i64, -1, i64::from(i32::MAX) + 1, i64::from(i32::MIN) - 1, i64::from(u32::MAX) + 1])
            .prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,24}".prop_map(Value::from),
        words.prop_map(Value::from),
        amount_text().prop_map(Value::from),
        "[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What to do at one place of a command.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    AddField(String, Value),
}

fn mutation() -> impl Strategy<Value = (prop::sample::Index, Mutation)> {
    let op = prop_oneof![
        3 => json_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::Remove),
        1 => ("[a-z_]{1,10}", json_value()).prop_map(|(k, v)| Mutation::AddField(k, v)),
    ];
    (any::<prop::sample::Index>(), op)
}

/// JSON pointers to every node of `value`, the root included.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

fn mutate(mut value: Value, mutations: &[(prop::sample::Index, Mutation)]) -> Value {
    for (place, mutation) in mutations {
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let pointer = place.get(&all).clone();
        match mutation {
            Mutation::Replace(v) => *value.pointer_mut(&pointer).expect("a pointer just listed") = v.clone(),
            Mutation::Remove => {
                let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", ""));
                match value.pointer_mut(parent) {
                    Some(Value::Object(map)) => drop(map.remove(key)),
                    Some(Value::Array(items)) => {
                        if let Ok(i) = key.parse::<usize>() {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            Mutation::AddField(k, v) => {
                if let Some(Value::Object(map)) = value.pointer_mut(&pointer) {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
    }
    value
}

/// Valid commands of every kind: the schema's golden examples and the test world's.
fn valid_commands() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/examples");
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .expect("schemas/examples")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("command.")))
        .map(|p| serde_json::from_slice(&std::fs::read(&p).expect("read an example")).expect("an example is JSON"))
        .collect();
    assert!(out.len() >= 16, "an example per command kind");
    let world = World::new();
    out.extend(
        world.setup(at("2026-01-01T00:00:00Z")).into_iter().map(|s| serde_json::to_value(s.command).expect("encode")),
    );
    out.push(serde_json::to_value(world_acquire()).expect("encode"));
    out
}

fn world_acquire() -> Command {
    command(
        "acq-fuzz",
        at("2026-02-01T00:00:00Z"),
        Action::Acquire {
            lot: lot("lot-fuzz", "cobalt", Form::Metal, 999_000, "JP"),
            to: holding("nl-covra", "in_transit", Programme::National),
            quantity: amount("1.5", Unit::T),
            supplier: None,
            contract: None,
            price: None,
        },
    )
}

/// A mutated valid command, as JSON.
fn mutated_command() -> impl Strategy<Value = Value> {
    let corpus = valid_commands();
    (prop::sample::select(corpus), prop::collection::vec(mutation(), 0..=MUTATIONS_MAX))
        .prop_map(|(valid, mutations)| mutate(valid, &mutations))
}

/// `T` decoded from `bytes`, if it decodes, must encode and decode back to itself, in plain
/// and in canonical JSON.
fn decodes_to_itself<T>(bytes: &[u8]) -> Result<Option<T>, TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(bytes) else { return Ok(None) };
    let plain = serde_json::to_vec(&value).expect("a decoded value encodes");
    prop_assert_eq!(&serde_json::from_slice::<T>(&plain).expect("its encoding decodes"), &value);
    let canonical = canonical::to_vec(&value).expect("a decoded value has a canonical form");
    prop_assert_eq!(&serde_json::from_slice::<T>(&canonical).expect("its canonical form decodes"), &value);
    Ok(Some(value))
}

/// A signed command around `command` (JSON), with a signature that does not verify.
fn signed_json(command: Value) -> Value {
    json!({"command": command, "key": "nl-covra-ops", "public_key": "ab".repeat(32), "signature": "cd".repeat(64)})
}

#[test]
fn amounts_parse_to_grams_in_range_or_a_typed_error() {
    proptest!(config(CASES), |(text in amount_text(), unit in prop::sample::select(UNITS.to_vec()))| {
        if let Ok(grams) = parse_grams(&text, unit) {
            prop_assert!((1..=QUANTITY_GRAMS_MAX).contains(&grams), "{text} {unit} gave {grams} g");
            prop_assert_eq!(Amount::grams(grams).to_grams(), Ok(grams), "grams re-encode");
        }
        let stated = Amount::new(text, unit);
        let decoded = decodes_to_itself::<Amount>(&serde_json::to_vec(&stated).expect("encode"))?;
        prop_assert_eq!(decoded, Some(stated));
    });
}

#[test]
fn arbitrary_bytes_never_panic_a_decoder() {
    proptest!(config(CASES), |(bytes in prop::collection::vec(any::<u8>(), 0..256))| {
        decodes_to_itself::<Amount>(&bytes)?;
        decodes_to_itself::<Command>(&bytes)?;
        decodes_to_itself::<SignedCommand>(&bytes)?;
        let _ = serde_json::from_slice::<AppendRequest>(&bytes);
    });
}

#[test]
fn mutated_commands_decode_to_themselves_or_a_typed_error() {
    proptest!(config(CASES), |(mutated in mutated_command())| {
        let bytes = serde_json::to_vec(&mutated).expect("encode");
        let command = decodes_to_itself::<Command>(&bytes)?;
        let signed_bytes = serde_json::to_vec(&signed_json(mutated.clone())).expect("encode");
        let signed = decodes_to_itself::<SignedCommand>(&signed_bytes)?;
        prop_assert_eq!(command.is_some(), signed.is_some(), "a command decodes alone iff it decodes signed");
        if let Some(signed) = signed {
            prop_assert!(verify(signed).is_err(), "a made-up signature never verifies");
        }
        // Inside a request, beside a valid command.
        let request = json!({"commands": [signed_json(serde_json::to_value(world_acquire()).expect("encode")), signed_json(mutated)], "atomic": true});
        let decoded = serde_json::from_slice::<AppendRequest>(&serde_json::to_vec(&request).expect("encode"));
        prop_assert_eq!(decoded.is_ok(), command.is_some());
        if let Ok(decoded) = decoded {
            let again: AppendRequest = serde_json::from_slice(&serde_json::to_vec(&decoded).expect("encode")).expect("decode");
            prop_assert_eq!(again.commands, decoded.commands);
        }
    });
}

/// Mutated commands that decode, signed by a registered key, are decided by a real ledger:
/// appended or rejected, never a panic, and the ledger's invariants hold after each.
#[test]
fn decoded_commands_signed_by_a_registered_key_are_decided_without_panic() {
    // proptest wants a `Fn`: the one ledger all cases share sits in a RefCell.
    let harness = std::cell::RefCell::new(Harness::new());
    // Every example's business time is in the past, so `decide` looks past the date check.
    harness.borrow().clock.set(at("2030-01-01T00:00:00Z"));
    let cases = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(config(DECIDE_CASES));
    runner
        .run(&mutated_command(), |mutated| {
            let Ok(mut command) = serde_json::from_value::<Command>(mutated) else { return Ok(()) };
            // A fresh id, so the case is decided rather than answered as a duplicate.
            cases.set(cases.get() + 1);
            command.id = EventId::new(format!("fuzz-{}", cases.get()));
            let mut harness = harness.borrow_mut();
            let party = serde_json::to_value(&command.action).ok().and_then(|a| {
                ["party", "from", "to", "at"]
                    .iter()
                    .find_map(|f| a[f]["party"].as_str().or(a[f].as_str()).map(String::from))
            });
            let key = match party.as_deref().filter(|p| harness.world.operators.contains_key(*p)) {
                Some(p) if !command.action.is_registration() => harness.world.key(p),
                _ => &harness.world.admin,
            };
            let signed = key.sign(command);
            let outcome = harness.submit_one(signed);
            prop_assert!(
                matches!(outcome, Outcome::Appended { .. } | Outcome::Rejected(_) | Outcome::Duplicate { .. }),
                "{outcome:?}"
            );
            harness.check_invariants();
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The events of a random history (the model test's), as JSON: every kind it makes.
fn valid_events() -> Vec<Value> {
    let h = super::model::random_ledger(7);
    let head = h.state().head.seq;
    let records = h.ledger.as_ref().expect("open").store().records(1, head).expect("read the log");
    let events: Vec<Value> = records
        .iter()
        .map(|bytes| {
            let record: stockpile_ledger::record::Record = serde_json::from_slice(bytes).expect("a stored record");
            serde_json::to_value(&record.body.event).expect("encode")
        })
        .collect();
    // The kinds the model does not make.
    let position = json!({"location": "nl-vlissingen", "lot": "lot-1", "party": "nl-covra", "programme": "national"});
    let grams = json!({"grams": 5, "stated": {"amount": "5", "unit": "g"}});
    let mut events = events;
    events.extend([
        json!({"kind": "stored", "from": position, "to": position, "quantity": grams}),
        json!({"kind": "key_revoked", "key": "nl-covra-ops", "reason": "lost"}),
        json!({"kind": "figure_registered", "figure": "net_imports", "partner": "NL", "material": "cobalt",
               "year": 2025, "quantity": grams}),
        json!({"kind": "release_rules_registered", "partner": "NL", "material": "cobalt", "text": "by decree",
               "confidential": false}),
        json!({"kind": "withheld", "party": "nl-covra", "lot": "lot-1", "reason": "sanctions"}),
        json!({"kind": "unwithheld", "party": "nl-covra", "lot": "lot-1", "reason": "lifted"}),
    ]);
    let kinds: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.len(), 16, "every kind of event occurs: {kinds:?}");
    events
}

/// `Event::from_json` (replay's decoder: the kind first, then straight into its variant)
/// accepts exactly what serde's derived decoder accepts and gives the same event, for valid
/// events of every kind in plain and canonical JSON and for mutations of them.
#[test]
fn replays_event_decoder_agrees_with_the_derived_one() {
    use stockpile_ledger::domain::Event;
    let corpus = valid_events();
    for event in &corpus {
        for bytes in [serde_json::to_vec(event).expect("encode"), canonical::to_vec(event).expect("canonical")] {
            let derived: Event = serde_json::from_slice(&bytes).expect("a recorded event decodes");
            let text = std::str::from_utf8(&bytes).expect("JSON is UTF-8");
            assert_eq!(Event::from_json(text).expect("and decodes by kind"), derived);
        }
    }
    let mutated = (prop::sample::select(corpus), prop::collection::vec(mutation(), 1..=MUTATIONS_MAX))
        .prop_map(|(valid, mutations)| mutate(valid, &mutations));
    proptest!(config(CASES), |(event in mutated)| {
        let bytes = serde_json::to_vec(&event).expect("encode");
        let derived = serde_json::from_slice::<Event>(&bytes);
        let by_kind = Event::from_json(std::str::from_utf8(&bytes).expect("JSON is UTF-8"));
        prop_assert_eq!(by_kind.as_ref().ok(), derived.as_ref().ok(), "{}", String::from_utf8_lossy(&bytes));
    });
}

/// A command's `action` is decoded by kind (`domain::tagged::by_kind`, `Action::from_json`):
/// a command decodes, from bytes and from a `Value`, exactly as it did through serde's derived
/// decoder of the tagged enum (this mirror of `Command` keeps that decoder), for valid
/// commands of every kind and for mutations of them, canonical or not.
#[test]
fn commands_decoded_by_kind_agree_with_the_derived_decoder() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Derived {
        id: EventId,
        occurred_at: chrono::DateTime<chrono::Utc>,
        action: Action,
    }
    let same = |bytes: &[u8]| -> Result<(), TestCaseError> {
        let derived = serde_json::from_slice::<Derived>(bytes).map(|d| Command {
            id: d.id,
            occurred_at: d.occurred_at,
            action: d.action,
        });
        let by_kind = serde_json::from_slice::<Command>(bytes);
        prop_assert_eq!(by_kind.as_ref().ok(), derived.as_ref().ok(), "{}", String::from_utf8_lossy(bytes));
        if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
            let from_value = serde_json::from_value::<Command>(value);
            prop_assert_eq!(from_value.as_ref().ok(), derived.as_ref().ok(), "from a Value");
        }
        if let Some(action) = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| v.get("action").cloned()) {
            let text = serde_json::to_string(&action).expect("encode");
            let derived = serde_json::from_str::<Action>(&text);
            prop_assert_eq!(Action::from_json(&text).ok(), derived.ok(), "{}", text);
        }
        Ok(())
    };
    for command in valid_commands() {
        for bytes in [serde_json::to_vec(&command).expect("encode"), canonical::to_vec(&command).expect("canonical")] {
            serde_json::from_slice::<Command>(&bytes).expect("a valid command decodes");
            same(&bytes).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    proptest!(config(CASES), |(command in mutated_command())| {
        same(&serde_json::to_vec(&command).expect("encode"))?;
    });
    // Spellings serde's buffer takes and serde_json alone does not: a unit variant as a map
    // with an empty object, the tagged enum as an array. Both decoders take them alike.
    let key = "00".repeat(32);
    for odd in [
        format!(
            r#"{{"action":{{"kind":"register_key","key":"k1","public_key":"{key}","role":{{"admin":{{}}}}}},"id":"e1","occurred_at":"2026-01-01T00:00:00Z"}}"#
        ),
        r#"{"action":["raise_rules",5],"id":"e1","occurred_at":"2026-01-01T00:00:00Z"}"#.to_string(),
        r#"{"action":{"kind":5},"id":"e1","occurred_at":"2026-01-01T00:00:00Z"}"#.to_string(),
        r#"{"action":null,"id":"e1","occurred_at":"2026-01-01T00:00:00Z"}"#.to_string(),
    ] {
        same(odd.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let derived = serde_json::from_str::<Derived>(&odd).map(|_| ()).map_err(|e| e.to_string());
        let by_kind = serde_json::from_str::<Command>(&odd).map(|_| ()).map_err(|e| e.to_string());
        let without_position =
            |r: Result<(), String>| r.map_err(|e| e.split(" at line ").next().unwrap_or("").to_string());
        assert_eq!(without_position(by_kind), without_position(derived), "the same words: {odd}");
    }
    // The error still names what is wrong, once, with the position of the action.
    let unknown = r#"{"action":{"kind":"steal","lot":"x"},"id":"e1","occurred_at":"2026-01-01T00:00:00Z"}"#;
    let e = serde_json::from_str::<Command>(unknown).unwrap_err().to_string();
    assert!(e.starts_with("unknown variant `steal`, expected one of `genesis`"), "{e}");
    assert_eq!(e.matches(" at line ").count(), 1, "{e}");
}
