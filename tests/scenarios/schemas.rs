//! The JSON Schemas under `schemas/` agree with the Rust types. They are the contract for
//! partner systems written in other languages, so each direction is checked:
//!
//! - every schema is valid draft 2020-12 and every `$ref` resolves inside `schemas/`;
//! - every golden example in `schemas/examples/` validates, decodes into its Rust type and
//!   re-encodes to the same canonical JSON (signatures and hashes in them verify);
//! - every record a real ledger writes, for every kind of event, validates, and so do the
//!   append and range replies built from it;
//! - invalid documents are refused by the schema and by the Rust side (at decode, or by the
//!   ledger with the expected rejection code);
//! - what `stockpile holdings` and `stockpile history` print as JSON validates (`outputs`);
//! - the reference lists validate and match their vendored sources
//!   (`schemas/reference/source/*.csv`) row for row.
//!
//! Nothing is fetched from the network: `jsonschema` is built without its `resolve-http` and
//! `resolve-file` features, and every schema is handed to the validator from memory under its
//! `$id`. The golden examples are written by `generate_examples` (ignored; run it after a
//! deliberate contract change and review the diff):
//! `cargo test -p stockpile-tests --test integration schemas::generate_examples -- --ignored`.

mod outputs;

use jsonschema::{Resource, Validator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use stockpile_ledger::canonical;
use stockpile_ledger::domain::ids::IdError;
use stockpile_ledger::domain::rules;
use stockpile_ledger::domain::{
    Action, AdjustReason, Command, ConvertInto, Direction, EventId, FigureKind, Form, KeyId, KeyRole, LotId, PartyId,
    Price, Programme, QuantityError, Rejection, ReleaseReason, ShortAt, Unit,
};
use stockpile_ledger::record::{self, Record, GENESIS_PREV_HASH};
use stockpile_ledger::signing::{self, SignedCommand};
use stockpile_ledger::testkit::{amount, at, command, deterministic_key, holding, lot, ManualClock, World};
use stockpile_ledger::wire::{
    AppendReply, AppendRequest, AppendResult, ErrorBody, ErrorReply, RangeReply, RangeRequest,
};
use stockpile_ledger::{Ledger, LedgerOptions, Outcome, Submission};

/// Base of every schema's `$id`; the rest is the path under `schemas/`.
const SCHEMA_ID_BASE: &str = "https://stockpile.example/schemas/";
const META_SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn canonical_text<T: Serialize + ?Sized>(value: &T) -> String {
    String::from_utf8(canonical::to_vec(value).expect("canonical JSON")).expect("UTF-8")
}

/// Every `*.schema.json` under `schemas/`, keyed by its path there (`v1/command.schema.json`).
fn schema_files() -> BTreeMap<String, Value> {
    let root = workspace().join("schemas");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read schemas dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(".schema.json") {
                let rel = path.strip_prefix(&root).expect("under schemas/").to_string_lossy().replace('\\', "/");
                out.insert(rel, read_json(&path));
            }
        }
    }
    assert!(out.len() >= 12, "expected the v1 and reference schemas, found {:?}", out.keys());
    out
}

/// A validator for `schemas/<rel>` with every schema registered under its `$id`, so relative
/// `$ref`s between files resolve from memory. Formats (`date-time`) are asserted, not just
/// annotated.
pub(crate) fn validator(rel: &str) -> Validator {
    let all = schema_files();
    let schema = all.get(rel).unwrap_or_else(|| panic!("no schema {rel}"));
    let mut options = jsonschema::draft202012::options();
    options.should_validate_formats(true);
    for (path, contents) in &all {
        let resource = Resource::from_contents(contents.clone()).unwrap_or_else(|e| panic!("{path}: {e}"));
        options.with_resource(format!("{SCHEMA_ID_BASE}{path}"), resource);
    }
    options.build(schema).unwrap_or_else(|e| panic!("schema {rel} does not compile: {e}"))
}

pub(crate) fn assert_valid(validator: &Validator, instance: &Value, what: &str) {
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("  at {}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} does not match its schema:\n{}\n{instance:#}", errors.join("\n"));
}

/// `schema.$defs.<name>.enum` as strings.
fn enum_of(schema: &Value, name: &str) -> Vec<String> {
    let values = schema["$defs"][name]["enum"].as_array().unwrap_or_else(|| panic!("$defs/{name} has an enum"));
    values.iter().map(|v| v.as_str().expect("string enum").to_string()).collect()
}

/// The `const` of `tag` in each `oneOf` branch of `variants` (a `$ref` list into `$defs`).
fn tags_of(schema: &Value, variants: &Value, tag: &str) -> BTreeSet<String> {
    let branches = variants["oneOf"].as_array().expect("oneOf");
    branches
        .iter()
        .map(|b| {
            let name = b["$ref"].as_str().expect("$ref").trim_start_matches("#/$defs/");
            let tag = &schema["$defs"][name]["properties"][tag]["const"];
            tag.as_str().unwrap_or_else(|| panic!("$defs/{name} has no const tag")).to_string()
        })
        .collect()
}

/// Resolves `reference` (as written in `from`, a path under `schemas/`) to a file and a JSON
/// pointer, and checks that the target exists.
fn resolve_ref(all: &BTreeMap<String, Value>, from: &str, reference: &str) -> Result<(), String> {
    let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    let target = if file.is_empty() {
        from.to_string()
    } else {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for part in file.split('/') {
            match part {
                ".." => {
                    parts.pop();
                }
                "." => {}
                p => parts.push(p),
            }
        }
        parts.join("/")
    };
    let doc = all.get(&target).ok_or_else(|| format!("{from}: $ref {reference:?} names a missing file"))?;
    doc.pointer(pointer).map(|_| ()).ok_or_else(|| format!("{from}: $ref {reference:?} names a missing definition"))
}

fn collect_refs<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_schema_is_draft_2020_12_and_resolves_offline() {
    let meta = jsonschema::draft202012::new(&json!({ "$ref": META_SCHEMA_2020_12 })).expect("meta-schema is built in");
    // The meta-schema check is not vacuous: malformed schemas fail it.
    assert!(!meta.is_valid(&json!({ "type": "strin" })));
    assert!(!meta.is_valid(&json!({ "required": "id" })));
    assert!(!meta.is_valid(&json!({ "properties": { "a": 1 } })));
    let all = schema_files();
    for (rel, schema) in &all {
        assert_valid(&meta, schema, &format!("schemas/{rel} (against the draft 2020-12 meta-schema)"));
        assert_eq!(schema["$schema"], META_SCHEMA_2020_12, "{rel}: $schema");
        assert_eq!(schema["$id"], format!("{SCHEMA_ID_BASE}{rel}"), "{rel}: $id names its own path");
        let mut refs = Vec::new();
        collect_refs(schema, &mut refs);
        for r in refs {
            resolve_ref(&all, rel, r).unwrap_or_else(|e| panic!("{e}"));
            assert!(!r.starts_with("http"), "{rel}: $ref {r:?} must be relative so it resolves from the files");
        }
        validator(rel);
    }
    // Tags: each `kind` enum lists exactly the variants of its oneOf.
    let command = &all["v1/command.schema.json"];
    let kinds: BTreeSet<String> = enum_of(command, "kind").into_iter().collect();
    assert_eq!(tags_of(command, &command["$defs"]["action"], "kind"), kinds);
    let event = &all["v1/event.schema.json"];
    let kinds: BTreeSet<String> = enum_of(event, "kind").into_iter().collect();
    assert_eq!(tags_of(event, event, "kind"), kinds);
    let reply = &all["v1/append-reply.schema.json"];
    let statuses = tags_of(reply, &reply["$defs"]["result"], "status");
    assert_eq!(statuses, ["appended", "duplicate", "rejected"].map(String::from).into());
}

#[test]
fn material_enum_is_the_reference_list() {
    let common = &schema_files()["v1/common.schema.json"];
    let file = read_json(&workspace().join("schemas/reference/materials.v1.json"));
    let listed: Vec<String> =
        file["materials"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(enum_of(common, "material_id"), listed, "common.schema.json material_id vs materials.v1.json");
    assert_eq!(listed.len(), 53);
    let compiled: BTreeSet<String> =
        stockpile_ledger::domain::Reference::get().materials().map(|m| m.id.to_string()).collect();
    assert_eq!(compiled, listed.into_iter().collect::<BTreeSet<_>>(), "the list compiled into the ledger");
}

#[test]
fn every_rejection_code_is_in_the_reply_schema() {
    let reply = &schema_files()["v1/append-reply.schema.json"];
    let listed: BTreeSet<String> = enum_of(reply, "rejection_code").into_iter().collect();
    let codes: BTreeSet<String> = every_rejection().iter().map(|r| r.code().to_string()).collect();
    assert_eq!(codes, listed, "append-reply.schema.json rejection_code vs Rejection::code");
    let v = validator("v1/append-reply.schema.json");
    let results: Vec<AppendResult> = every_rejection().iter().map(AppendResult::from).collect();
    assert_valid(&v, &serde_json::to_value(AppendReply { results }).unwrap(), "a reply with every rejection");
}

/// One rejection of each variant. The match has no wildcard: a new variant does not compile
/// here until it is added, and then this test checks its code is in the schema.
fn every_rejection() -> Vec<Rejection> {
    let key = || KeyId::new("nl-covra-ops");
    let position = || holding("nl-covra", "in_transit", Programme::National).position(&LotId::new("ga-001"));
    let t = at("2026-01-01T00:00:00Z");
    let all = vec![
        Rejection::NotInitialised,
        Rejection::AlreadyInitialised,
        Rejection::InvalidId(IdError::Empty { what: "lot id" }),
        Rejection::BadQuantity { field: "quantity", error: QuantityError::Empty },
        Rejection::InvalidField { field: "name", reason: "is empty".into() },
        Rejection::UnknownMaterial { material: "unobtainium".into() },
        Rejection::UnknownPartner { partner: "XX".into() },
        Rejection::Unknown { what: "party", id: "nobody".into() },
        Rejection::AlreadyRegistered { what: "party", id: "nl-covra".into() },
        Rejection::IdConflict { event_id: EventId::new("acq-1"), seq: Some(3) },
        Rejection::InsufficientStock { position: position(), requested_g: 2, available_g: 1, unit: Unit::T },
        Rejection::InsufficientStockAt(Box::new(ShortAt {
            position: position(),
            at: t,
            balance_g: 0,
            requested_g: 1_000_000,
            requested_at: t,
            holds_from: Some(t),
            unit: Unit::T,
        })),
        Rejection::QuantityOverflow { position: position() },
        Rejection::NotOwner { key: key(), key_party: "nl-covra".into(), party: Some("nl-mod".into()) },
        Rejection::WrongOrigin { key: key(), origin: "NL".into(), key_partner: "partner DE".into() },
        Rejection::NotAdmin { key: key() },
        Rejection::NoParty { key: key() },
        Rejection::KeyRevoked { key: key(), revoked_at: 9 },
        Rejection::KeyMismatch { key: key() },
        Rejection::BadSignature { key: key() },
        Rejection::OccurredInFuture { occurred_at: t, now: t, skew_max_s: 300 },
        Rejection::OccurredTooEarly { occurred_at: t, min: t },
        Rejection::NotReversible { target: EventId::new("genesis"), kind: "genesis".into() },
        Rejection::AlreadyReversed { target: EventId::new("rel-1"), by: Some(EventId::new("rev-1")) },
        Rejection::SamePosition { position: position() },
        Rejection::BatchAborted { index: 0 },
    ];
    for r in &all {
        match r {
            Rejection::NotInitialised
            | Rejection::AlreadyInitialised
            | Rejection::InvalidId(_)
            | Rejection::BadQuantity { .. }
            | Rejection::InvalidField { .. }
            | Rejection::UnknownMaterial { .. }
            | Rejection::UnknownPartner { .. }
            | Rejection::Unknown { .. }
            | Rejection::AlreadyRegistered { .. }
            | Rejection::IdConflict { .. }
            | Rejection::InsufficientStock { .. }
            | Rejection::InsufficientStockAt(_)
            | Rejection::QuantityOverflow { .. }
            | Rejection::NotOwner { .. }
            | Rejection::WrongOrigin { .. }
            | Rejection::NotAdmin { .. }
            | Rejection::NoParty { .. }
            | Rejection::KeyRevoked { .. }
            | Rejection::KeyMismatch { .. }
            | Rejection::BadSignature { .. }
            | Rejection::OccurredInFuture { .. }
            | Rejection::OccurredTooEarly { .. }
            | Rejection::NotReversible { .. }
            | Rejection::AlreadyReversed { .. }
            | Rejection::SamePosition { .. }
            | Rejection::BatchAborted { .. } => {}
        }
    }
    all
}

// ---------------------------------------------------------------------------------------------
// A real ledger, driven through every kind of command.

/// Business time of the scenario's commands and ledger time of its records (with a fraction,
/// so the examples show how fractional seconds are written).
const OCCURRED_AT: &str = "2026-02-01T10:00:00Z";
const RECORDED_AT: &str = "2026-02-02T09:30:00.250Z";

pub(crate) struct Run {
    _dir: tempfile::TempDir,
    pub(crate) ledger: Ledger,
    /// Every command submitted, setup included, in order, with its outcome.
    submitted: Vec<(SignedCommand, Outcome)>,
    /// The last batch: a duplicate, a rejection and an append.
    last_batch: Vec<Outcome>,
}

impl Run {
    fn submit(&mut self, commands: Vec<SignedCommand>, atomic: bool) -> Vec<Outcome> {
        let verified = signing::verify_all(commands.clone());
        let mut out = self.ledger.commit_group(vec![Submission { commands: verified, atomic }]).expect("commit");
        let outcomes = out.pop().expect("one submission");
        self.submitted.extend(commands.into_iter().zip(outcomes.iter().cloned()));
        outcomes
    }

    fn submit_ok(&mut self, commands: Vec<SignedCommand>) {
        for o in self.submit(commands, true) {
            assert!(matches!(o, Outcome::Appended { .. }), "{o:?}");
        }
    }

    /// The first appended command of `kind`.
    fn appended(&self, kind: &str) -> &SignedCommand {
        self.submitted
            .iter()
            .find(|(c, o)| c.command.action.kind() == kind && matches!(o, Outcome::Appended { .. }))
            .map(|(c, _)| c)
            .unwrap_or_else(|| panic!("no appended {kind} command"))
    }
}

/// Setup (genesis, parties, facilities, keys), then every registration and movement kind.
pub(crate) fn run_scenario() -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
    let ledger = Ledger::open(dir.path(), Box::new(clock.clone()), LedgerOptions::default()).expect("open ledger");
    let mut run = Run { _dir: dir, ledger, submitted: Vec::new(), last_batch: Vec::new() };
    // A genesis as ledgers wrote it before rules were recorded (rules 1), raised to rules 2
    // before the last batch: the examples show both spellings of a genesis's rules.
    run.submit_ok(World::new().setup_under(at("2026-01-01T00:00:00Z"), None));
    clock.set(at(RECORDED_AT));
    let t = at(OCCURRED_AT);
    let admin = deterministic_key("admin");
    let covra = deterministic_key("nl-covra-ops");
    let nl_mod = deterministic_key("nl-mod-ops");
    let laptop = deterministic_key("nl-covra-laptop");
    run.submit_ok(vec![
        admin.sign(command(
            "fig-nl-ga-2025",
            t,
            Action::RegisterFigure {
                figure: FigureKind::Consumption,
                partner: "NL".into(),
                material: "gallium".into(),
                year: 2025,
                quantity: amount("12.5", Unit::T),
            },
        )),
        admin.sign(command(
            "reg-key-nl-covra-laptop",
            t,
            Action::RegisterKey {
                key: laptop.id.clone(),
                public_key: laptop.public_key_hex(),
                role: KeyRole::Operator,
                party: Some(PartyId::new("nl-covra")),
            },
        )),
        admin.sign(command(
            "revoke-nl-covra-laptop",
            t,
            Action::RevokeKey { key: laptop.id.clone(), reason: "laptop lost in transit".into() },
        )),
    ]);
    let acquire = covra.sign(command(
        "acq-ga-001",
        t,
        Action::Acquire {
            lot: lot("ga-001", "gallium", Form::Metal, 999_990, "JP"),
            to: holding("nl-covra", "in_transit", Programme::National),
            quantity: amount("2.5", Unit::T),
            supplier: Some("Dowa Metals & Mining".into()),
            contract: Some("NL-2026-017".into()),
            price: Some(Price { amount: "1187500.00".into(), currency: "EUR".into() }),
        },
    ));
    let mut pgm = lot("pt-001", "platinum", Form::Metal, 999_500, "ZA");
    pgm.certificate = Some("LPPM good delivery 2026/0042".into());
    let acquire_ozt = covra.sign(command(
        "acq-pt-001",
        t,
        Action::Acquire {
            lot: pgm,
            to: holding("nl-covra", "nl-vlissingen", Programme::Eu),
            quantity: amount("1000.5", Unit::Ozt),
            supplier: Some("Société des \"Métaux Précieux\"".into()),
            contract: None,
            price: None,
        },
    ));
    let store = covra.sign(command(
        "store-ga-001",
        t,
        Action::Store {
            lot: LotId::new("ga-001"),
            party: "nl-covra".into(),
            programme: Programme::National,
            from: holding("nl-covra", "in_transit", Programme::National).location,
            to: "be-antwerp".into(),
            quantity: amount("2000", Unit::Kg),
        },
    ));
    let transfer = covra.sign(command(
        "xfer-ga-001",
        t,
        Action::Transfer {
            lot: LotId::new("ga-001"),
            from: holding("nl-covra", "be-antwerp", Programme::National),
            to: holding("nl-mod", "be-antwerp", Programme::Nato),
            quantity: amount("750", Unit::Kg),
        },
    ));
    run.submit_ok(vec![acquire.clone(), acquire_ozt, store, transfer]);
    let release = nl_mod.sign(command(
        "rel-ga-001",
        t,
        Action::Release {
            lot: LotId::new("ga-001"),
            from: holding("nl-mod", "be-antwerp", Programme::Nato),
            quantity: amount("100", Unit::Kg),
            reason: ReleaseReason::EmergencyDrawdown,
            recipient: "Thales Nederland".into(),
        },
    ));
    let convert = covra.sign(command(
        "conv-ga-001",
        t,
        Action::Convert {
            lot: LotId::new("ga-001"),
            from: holding("nl-covra", "in_transit", Programme::National),
            consumed: amount("500", Unit::Kg),
            into: ConvertInto {
                id: LotId::new("ga-ox-001"),
                form: Form::Oxide,
                purity_ppm: 999_999,
                to: holding("nl-covra", "nl-vlissingen", Programme::National).location,
                certificate: Some("assay 2026-118".into()),
            },
            produced: amount("672", Unit::Kg),
        },
    ));
    let adjust = covra.sign(command(
        "adj-ga-001",
        t,
        Action::Adjust {
            lot: LotId::new("ga-001"),
            at: holding("nl-covra", "be-antwerp", Programme::National),
            direction: Direction::Decrease,
            quantity: amount("3", Unit::Kg),
            reason: AdjustReason::StockTake,
            note: "annual count 2026".into(),
        },
    ));
    let reverse = nl_mod.sign(command(
        "rev-rel-ga-001",
        t,
        Action::Reverse { target: EventId::new("rel-ga-001"), reason: "drawdown cancelled".into() },
    ));
    run.submit_ok(vec![release, convert, adjust, reverse]);
    let ga = || LotId::new("ga-001");
    run.submit_ok(vec![
        admin.sign(command(
            "rules-nl-ga",
            t,
            Action::RegisterReleaseRules {
                partner: "NL".into(),
                material: "gallium".into(),
                text: "Released by order of the Minister of Economic Affairs; NL industry first.".into(),
                confidential: false,
            },
        )),
        admin.sign(command(
            "withhold-ga-001",
            t,
            Action::Withhold { party: "nl-mod".into(), lot: ga(), reason: "defence stock".into() },
        )),
        admin.sign(command(
            "unwithhold-ga-001",
            t,
            Action::Unwithhold { party: "nl-mod".into(), lot: ga(), reason: "declassified".into() },
        )),
    ]);
    run.submit_ok(vec![admin.sign(command("raise-rules-2", t, Action::RaiseRules { rules: rules::BUSINESS_TIME }))]);
    // A resend, an overdraw and a regrade, each standing alone.
    let overdraw = nl_mod.sign(command(
        "rel-too-much",
        t,
        Action::Release {
            lot: LotId::new("ga-001"),
            from: holding("nl-mod", "be-antwerp", Programme::Nato),
            quantity: amount("1", Unit::T),
            reason: ReleaseReason::Sale,
            recipient: "Umicore".into(),
        },
    ));
    let regrade = covra.sign(command(
        "adj-pt-001",
        t,
        Action::Adjust {
            lot: LotId::new("pt-001"),
            at: holding("nl-covra", "nl-vlissingen", Programme::Eu),
            direction: Direction::Increase,
            quantity: amount("0.25", Unit::Ozt),
            reason: AdjustReason::Regrade,
            note: "re-assay".into(),
        },
    ));
    run.last_batch = run.submit(vec![acquire, overdraw, regrade], false);
    run
}

fn kind_of(value: &Value) -> String {
    value["kind"].as_str().expect("kind").to_string()
}

#[test]
fn every_record_a_real_ledger_writes_validates() {
    let run = run_scenario();
    let v = validator("v1/record.schema.json");
    let head = run.ledger.state().head.seq;
    let stored = run.ledger.store().records(1, u64::MAX).expect("read records");
    assert_eq!(stored.len() as u64, head, "one stored record per seq");
    let mut event_kinds = BTreeSet::new();
    let mut command_kinds = BTreeSet::new();
    let mut prev = GENESIS_PREV_HASH;
    for (i, bytes) in stored.iter().enumerate() {
        let value: Value = serde_json::from_slice(bytes).expect("record JSON");
        assert_valid(&v, &value, &format!("record {}", i + 1));
        // The stored form is itself canonical: what CANONICAL.md tells a verifier to expect.
        assert_eq!(canonical_text(&value).as_bytes(), &bytes[..], "record {} is stored canonical", i + 1);
        let (_, hash) = record::check_link(bytes, i as u64 + 1, &prev).expect("chain");
        prev = hash;
        fields_agree::<Record>(&v, &value, &format!("record {}", i + 1));
        event_kinds.insert(kind_of(&value["body"]["event"]));
        command_kinds.insert(kind_of(&value["body"]));
    }
    let all = schema_files();
    let expected: BTreeSet<String> = enum_of(&all["v1/event.schema.json"], "kind").into_iter().collect();
    assert_eq!(event_kinds, expected, "the scenario writes every kind of event");
    let expected: BTreeSet<String> = enum_of(&all["v1/command.schema.json"], "kind").into_iter().collect();
    assert_eq!(command_kinds, expected, "the scenario records every kind of command");

    let statuses: Vec<&str> = run
        .last_batch
        .iter()
        .map(|o| match o {
            Outcome::Appended { .. } => "appended",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Rejected(r) => r.code(),
        })
        .collect();
    assert_eq!(statuses, ["duplicate", "insufficient_stock", "appended"]);
    let reply = AppendReply { results: run.last_batch.iter().cloned().map(AppendResult::from).collect() };
    assert_valid(&validator("v1/append-reply.schema.json"), &serde_json::to_value(&reply).unwrap(), "append reply");
    let range = range_reply(&run, 1, head);
    let range = serde_json::to_value(&range).unwrap();
    assert_valid(&validator("v1/range-reply.schema.json"), &range, "range reply of the whole log");
    let commands: Vec<SignedCommand> = run.submitted.iter().map(|(c, _)| c.clone()).collect();
    let request = AppendRequest { commands, atomic: false };
    assert_valid(&validator("v1/append-request.schema.json"), &serde_json::to_value(&request).unwrap(), "request");
}

fn range_reply(run: &Run, from: u64, to: u64) -> RangeReply {
    let head = run.ledger.state().head.seq;
    let records = run.ledger.store().records(from, to).expect("read records");
    let records = records
        .into_iter()
        .map(|b| serde_json::value::RawValue::from_string(String::from_utf8(b).expect("UTF-8")).expect("JSON"))
        .collect();
    RangeReply { records, head, next: (to < head).then_some(to + 1) }
}

// ---------------------------------------------------------------------------------------------
// Golden examples.

fn examples_dir() -> PathBuf {
    workspace().join("schemas/examples")
}

/// Validates `value` against `schemas/v1/<stem>.schema.json`, decodes it into `T` and checks
/// that `T` encodes back to the same canonical JSON (nothing lost, added or re-spelled), and
/// that schema and serde agree on which of its fields are required and that no other is
/// allowed. (Not inside a range reply's records: serde keeps those as raw JSON.)
fn round_trip<T: Serialize + DeserializeOwned>(stem: &str, name: &str, value: &Value) -> T {
    let v = validator(&format!("v1/{stem}.schema.json"));
    assert_valid(&v, value, name);
    if stem != "range-reply" {
        fields_agree::<T>(&v, value, name);
    }
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    assert_eq!(canonical_text(&typed), canonical_text(value), "{name} re-encodes differently");
    typed
}

fn check_signed(signed: &SignedCommand, name: &str) {
    signing::verify(signed.clone()).unwrap_or_else(|e| panic!("{name}: signature does not verify: {e}"));
}

fn check_record(record: &Record, name: &str) {
    let body = canonical::to_vec(&record.body).expect("canonical");
    assert_eq!(canonical::sha256(&body), record.hash, "{name}: hash is SHA-256 of the canonical body");
    let command = canonical::to_vec(&record.body.command.command).expect("canonical");
    assert_eq!(canonical::sha256(&command), record.body.command_digest, "{name}: command_digest");
    check_signed(&record.body.command, name);
    if record.body.seq == 1 {
        assert_eq!(record.body.prev_hash, GENESIS_PREV_HASH, "{name}: seq 1 chains to zeros");
    }
}

#[test]
fn golden_examples_validate_and_round_trip() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("schemas/examples exists")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut command_kinds = BTreeSet::new();
    let mut stems = BTreeSet::new();
    for name in &names {
        let value = read_json(&examples_dir().join(name));
        let stem = name.split('.').next().expect("stem");
        stems.insert(stem.to_string());
        match stem {
            "command" => {
                let c: Command = round_trip(stem, name, &value);
                assert_eq!(name, &format!("command.{}.json", c.action.kind()), "example named after its kind");
                command_kinds.insert(c.action.kind().to_string());
            }
            "signed-command" => check_signed(&round_trip(stem, name, &value), name),
            "record" => check_record(&round_trip(stem, name, &value), name),
            "event" => drop(round_trip::<stockpile_ledger::domain::Event>(stem, name, &value)),
            "append-request" => {
                let r: AppendRequest = round_trip(stem, name, &value);
                r.commands.iter().for_each(|c| check_signed(c, name));
            }
            "append-reply" => drop(round_trip::<AppendReply>(stem, name, &value)),
            "error-reply" => drop(round_trip::<ErrorReply>(stem, name, &value)),
            "range-request" => drop(round_trip::<RangeRequest>(stem, name, &value)),
            "range-reply" => {
                let r: RangeReply = round_trip(stem, name, &value);
                for raw in &r.records {
                    check_record(&record::decode(raw.get().as_bytes()).expect("record"), name);
                }
            }
            other => panic!("example {name}: no schema or Rust type is known for {other:?}"),
        }
    }
    let kinds: BTreeSet<String> = enum_of(&schema_files()["v1/command.schema.json"], "kind").into_iter().collect();
    assert_eq!(command_kinds, kinds, "an example command of every kind");
    let wanted = "command signed-command record append-request append-reply error-reply range-request range-reply";
    for stem in wanted.split(' ') {
        assert!(stems.contains(stem), "no example of {stem}");
    }
}

#[test]
fn canonical_md_worked_example_is_the_golden_record() {
    let doc = std::fs::read_to_string(workspace().join("schemas/CANONICAL.md")).expect("schemas/CANONICAL.md");
    for name in ["record.genesis.json", "record.json"] {
        let value = read_json(&examples_dir().join(name));
        let body = canonical_text(&value["body"]);
        let hash = canonical::hex(&canonical::sha256(body.as_bytes()));
        assert_eq!(value["hash"], hash.as_str(), "{name}: hash");
        assert!(doc.contains(&hash), "CANONICAL.md quotes the hash of {name}: {hash}");
        if name == "record.genesis.json" {
            assert!(doc.contains(&body), "CANONICAL.md quotes the canonical body of {name} byte for byte");
            let command = canonical_text(&value["body"]["command"]["command"]);
            assert!(doc.contains(&command), "CANONICAL.md quotes the signed command of {name} byte for byte");
            for field in ["signature", "public_key"] {
                let text = value["body"]["command"][field].as_str().expect("hex");
                assert!(doc.contains(text), "CANONICAL.md quotes the {field} of {name}");
            }
            let digest = value["body"]["command_digest"].as_str().expect("digest");
            assert!(doc.contains(digest), "CANONICAL.md quotes the command_digest of {name}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Invalid documents: refused by the schema and by the Rust side.

/// How the Rust side refuses a document the schema refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// serde does not decode it into the type.
    Decode,
    /// It decodes, and the ledger rejects it with this code.
    Ledger(&'static str),
    /// It decodes, but encodes back to other bytes (the same instant in another spelling, a
    /// `null` for an absent field): a signature over the partner's bytes could never verify.
    ReEncoded,
}

/// `base` with the value at `pointer` replaced (or added), or removed when `new` is `None`.
fn mutated(base: &Value, pointer: &str, new: Option<Value>) -> Value {
    let mut doc = base.clone();
    let (parent, key) = pointer.rsplit_once('/').expect("pointer with a parent");
    let map = doc.pointer_mut(parent).and_then(Value::as_object_mut).expect("parent is an object");
    match new {
        Some(v) => map.insert(key.to_string(), v),
        None => map.remove(key),
    };
    doc
}

#[test]
fn invalid_commands_are_refused_by_schema_and_by_the_ledger() {
    let mut run = run_scenario();
    let v = validator("v1/command.schema.json");
    let covra = deterministic_key("nl-covra-ops");
    let base = serde_json::to_value(command(
        "acq-ga-002",
        at(OCCURRED_AT),
        Action::Acquire {
            lot: lot("ga-002", "gallium", Form::Metal, 999_990, "JP"),
            to: holding("nl-covra", "in_transit", Programme::National),
            quantity: amount("1.25", Unit::T),
            supplier: Some("Dowa".into()),
            contract: None,
            price: None,
        },
    ))
    .unwrap();
    use Refusal::{Decode, Ledger, ReEncoded};
    let long_id = "a".repeat(65);
    let cases: Vec<(&str, &str, Option<Value>, Refusal)> = vec![
        ("unknown top-level field", "/extra", Some(json!(1)), Decode),
        ("unknown action field", "/action/colour", Some(json!("red")), Decode),
        ("unknown amount field", "/action/quantity/precision", Some(json!(3)), Decode),
        ("unknown lot field", "/action/lot/grade", Some(json!("A")), Decode),
        ("float amount", "/action/quantity/amount", Some(json!(1.25)), Decode),
        ("exponent in amount", "/action/quantity/amount", Some(json!("1.25e3")), Ledger("bad_quantity")),
        ("negative amount", "/action/quantity/amount", Some(json!("-1")), Ledger("bad_quantity")),
        ("zero amount", "/action/quantity/amount", Some(json!("0.000")), Ledger("bad_quantity")),
        ("finer than a gram", "/action/quantity/amount", Some(json!("1.0000005")), Ledger("bad_quantity")),
        ("bad unit", "/action/quantity/unit", Some(json!("lb")), Decode),
        ("upper-case unit", "/action/quantity/unit", Some(json!("T")), Decode),
        ("bad lot id", "/action/lot/id", Some(json!("ga 002")), Ledger("invalid_id")),
        ("look-alike id", "/action/lot/id", Some(json!("g\u{430}-002")), Ledger("invalid_id")),
        ("id too long", "/action/lot/id", Some(json!(long_id)), Ledger("invalid_id")),
        ("bad event id", "/id", Some(json!("-acq")), Ledger("invalid_id")),
        ("lower-case country", "/action/lot/origin", Some(json!("jp")), Ledger("invalid_id")),
        ("unknown material", "/action/lot/material", Some(json!("unobtainium")), Ledger("unknown_material")),
        ("purity above 100 %", "/action/lot/purity_ppm", Some(json!(1_000_001)), Ledger("invalid_field")),
        ("control character", "/action/supplier", Some(json!("Dowa\u{7}")), Ledger("invalid_field")),
        ("blank text", "/action/supplier", Some(json!("   ")), Ledger("invalid_field")),
        ("bad programme", "/action/to/programme", Some(json!("eu")), Decode),
        ("missing required field", "/action/to", None, Decode),
        ("missing kind", "/action/kind", None, Decode),
        ("unknown kind", "/action/kind", Some(json!("borrow")), Decode),
        ("missing occurred_at", "/occurred_at", None, Decode),
        ("date without time", "/occurred_at", Some(json!("2026-02-01")), Decode),
        ("impossible date", "/occurred_at", Some(json!("2026-02-30T10:00:00Z")), Decode),
        ("offset instead of Z", "/occurred_at", Some(json!("2026-02-01T11:00:00+01:00")), ReEncoded),
        ("+00:00 instead of Z", "/occurred_at", Some(json!("2026-02-01T10:00:00+00:00")), ReEncoded),
        ("short fraction", "/occurred_at", Some(json!("2026-02-01T10:00:00.5Z")), ReEncoded),
        ("fraction longer than exact", "/occurred_at", Some(json!("2026-02-01T10:00:00.500000Z")), ReEncoded),
        ("zero fraction", "/occurred_at", Some(json!("2026-02-01T10:00:00.000Z")), ReEncoded),
        ("null for an absent field", "/action/contract", Some(Value::Null), ReEncoded),
    ];
    for (what, pointer, new, refusal) in cases {
        let doc = mutated(&base, pointer, new);
        assert!(!v.is_valid(&doc), "schema accepts {what}: {doc}");
        let got = match serde_json::from_value::<Command>(doc.clone()) {
            Err(_) => Decode,
            Ok(c) if canonical_text(&c) != canonical_text(&doc) => ReEncoded,
            Ok(c) => match run.submit(vec![covra.sign(c)], false).pop().expect("one outcome") {
                Outcome::Rejected(r) => Ledger(r.code()),
                other => panic!("ledger accepts {what}: {other:?}"),
            },
        };
        assert_eq!(got, refusal, "{what}");
    }
    // Every exact spelling of a time the ledger writes is accepted.
    for ok in ["2026-02-01T10:00:00.250Z", "2026-02-01T10:00:00.000001Z", "2026-02-01T10:00:00.123456789Z"] {
        let doc = mutated(&base, "/occurred_at", Some(json!(ok)));
        assert_valid(&v, &doc, ok);
        let c: Command = serde_json::from_value(doc.clone()).expect("decodes");
        assert_eq!(canonical_text(&c), canonical_text(&doc), "{ok} is the ledger's own spelling");
    }
    // The schema's one rule stricter than serde: an operator key names its party (the ledger agrees).
    let spare = mutated(&read_json(&examples_dir().join("command.register_key.json")), "/id", Some(json!("reg-spare")));
    let spare = mutated(&spare, "/action/key", Some(json!("be-defence-spare")));
    let no_party = mutated(&spare, "/action/party", None);
    assert!(!v.is_valid(&no_party), "schema accepts an operator key without a party");
    let c: Command = serde_json::from_value(no_party).expect("serde lets party be absent");
    let outcome = run.submit(vec![deterministic_key("admin").sign(c)], false);
    assert!(matches!(&outcome[..], [Outcome::Rejected(r)] if r.code() == "invalid_field"), "{outcome:?}");
    assert_valid(&v, &spare, "an operator key with its party");
    // The control: the unmutated command is valid and the ledger appends it.
    assert_valid(&v, &base, "the base command");
    let outcome = run.submit(vec![covra.sign(serde_json::from_value(base).unwrap())], false);
    assert!(matches!(outcome[..], [Outcome::Appended { .. }]), "{outcome:?}");
}

/// JSON pointers of every object inside `value`, `value` itself first.
fn object_pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            out.push(at.to_string());
            map.iter().for_each(|(k, v)| object_pointers(v, &format!("{at}/{k}"), out));
        }
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| object_pointers(v, &format!("{at}/{i}"), out))
        }
        _ => {}
    }
}

/// In every object of `doc`: an unknown field is refused by both the schema and serde, and
/// leaving out any one field is accepted by both or refused by both (a field is optional in the
/// schema exactly when serde may skip it), except where the schema is deliberately stricter.
fn fields_agree<T: DeserializeOwned>(v: &Validator, doc: &Value, name: &str) {
    let mut pointers = Vec::new();
    object_pointers(doc, "", &mut pointers);
    for at in pointers {
        let unknown = mutated(doc, &format!("{at}/x_unknown"), Some(json!(1)));
        assert!(!v.is_valid(&unknown), "{name}: schema accepts an unknown field at {at:?}");
        assert!(serde_json::from_value::<T>(unknown).is_err(), "{name}: serde accepts an unknown field at {at:?}");
        let parent = doc.pointer(&at).expect("pointer");
        for key in parent.as_object().expect("object").keys() {
            let without = mutated(doc, &format!("{at}/{key}"), None);
            let schema = v.is_valid(&without);
            let serde = serde_json::from_value::<T>(without).is_ok();
            if !(schema == serde || (serde && schema_stricter(parent, key))) {
                panic!("{name}: without {at}/{key} the schema says valid={schema} but serde says decodes={serde}");
            }
        }
    }
}

/// Fields the schema requires where serde would not (the ledger rejects their absence):
/// an operator key names its party.
fn schema_stricter(parent: &Value, key: &str) -> bool {
    key == "party" && parent["role"] == "operator"
}

/// Values of the wrong type or range in the other messages, refused by the schema and by serde
/// (unknown and missing fields are covered for every object by `fields_agree`).
#[test]
fn invalid_messages_are_refused_by_schema_and_by_serde() {
    fn refused<T: DeserializeOwned>(stem: &str, base: &str, pointer: &str, new: Option<Value>) {
        let base = read_json(&examples_dir().join(base));
        let doc = mutated(&base, pointer, new);
        assert!(!validator(&format!("v1/{stem}.schema.json")).is_valid(&doc), "{stem} schema accepts {doc}");
        assert!(serde_json::from_value::<T>(doc.clone()).is_err(), "serde accepts {stem} {doc}");
    }
    let s = "signed-command.json";
    refused::<SignedCommand>("signed-command", s, "/command/action/quantity/amount", Some(json!(2.5)));
    let r = "record.json";
    refused::<Record>("record", r, "/hash", Some(json!("00")));
    refused::<Record>("record", r, "/body/seq", Some(json!(-1)));
    refused::<Record>("record", r, "/body/event/quantity/grams", Some(json!(31118.5)));
    refused::<Record>("record", r, "/body/event/kind", Some(json!("acquire")));
    refused::<AppendRequest>("append-request", "append-request.json", "/atomic", Some(json!("yes")));
    refused::<AppendReply>("append-reply", "append-reply.json", "/results/0/status", Some(json!("accepted")));
    refused::<RangeRequest>("range-request", "range-request.json", "/from", Some(json!(-1)));
    refused::<RangeRequest>("range-request", "range-request.json", "/limit", Some(json!(2.5)));
    // serde's hex decoding accepts upper case; the contract says lower case, as the ledger writes.
    let upper = mutated(&read_json(&examples_dir().join(r)), "/hash", Some(json!("AB".repeat(32))));
    assert!(!validator("v1/record.schema.json").is_valid(&upper), "record schema accepts an upper-case hash");
}

// ---------------------------------------------------------------------------------------------
// Reference data.

/// Parses CSV as the reference files write it: a header row, fields separated by
/// commas, double quotes around fields that hold commas (`""` for a quote), CRLF or LF.
fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut rows: Vec<Vec<String>> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    fields.last_mut().unwrap().push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => fields.push(String::new()),
                (c, _) => fields.last_mut().unwrap().push(c),
            }
        }
        assert!(!quoted, "{}: unterminated quote in {line:?}", path.display());
        rows.push(fields);
    }
    let header = rows.remove(0);
    rows.into_iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "{}: row {r:?}", path.display());
            header.iter().cloned().zip(r).collect()
        })
        .collect()
}

/// The vendored copies of the team's domain reference (`schemas/reference/source/`).
fn source_dir() -> PathBuf {
    workspace().join("schemas/reference/source")
}

/// Each file named in `schemas/reference/source/README.md`'s table still has the SHA-256 it was
/// copied with: the vendored reference (and the RFC 6962 vectors the ledger's Merkle tests
/// read) changes only deliberately, with its digest.
#[test]
fn vendored_reference_files_match_their_recorded_digests() {
    let readme = std::fs::read_to_string(source_dir().join("README.md")).expect("read source README");
    let mut checked = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
        let (file, digest) = (cells[1], cells[2]);
        let bytes = std::fs::read(workspace().join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let actual = canonical::hex(&canonical::sha256(&bytes));
        assert_eq!(actual, digest, "{file} differs from the copy recorded in schemas/reference/source/README.md");
        checked.insert(file.to_string());
    }
    let expected = ["materials.csv", "partners.csv", "domain.md"].map(|f| format!("schemas/reference/source/{f}"));
    for file in expected.iter().map(String::as_str).chain(["ledger/tests/data/rfc6962-vectors.json"]) {
        assert!(checked.contains(file), "schemas/reference/source/README.md records no digest for {file}");
    }
}

#[test]
fn reference_files_validate_and_match_the_source_csv() {
    let materials = read_json(&workspace().join("schemas/reference/materials.v1.json"));
    assert_valid(&validator("reference/materials.v1.schema.json"), &materials, "materials.v1.json");
    let partners = read_json(&workspace().join("schemas/reference/partners.v1.json"));
    assert_valid(&validator("reference/partners.v1.schema.json"), &partners, "partners.v1.json");

    let rows = read_csv(&source_dir().join("materials.csv"));
    let listed = materials["materials"].as_array().unwrap();
    assert_eq!(listed.len(), rows.len(), "materials: one entry per CSV row");
    for (m, row) in listed.iter().zip(&rows) {
        let flag = |text: &str| match text {
            "true" => json!(true),
            "false" => json!(false),
            "unknown" => Value::Null,
            other => panic!("materials.csv: flag {other:?}"),
        };
        let unit = match row["typical_unit"].as_str() {
            "troy_oz" => "ozt",
            other => other,
        };
        let expected = json!({
            "id": row["id"],
            "name": row["name"],
            "crma_strategic": flag(&row["crma_strategic"]),
            "crma_critical": flag(&row["crma_critical"]),
            "nato_defence_critical": flag(&row["nato_defence_critical"]),
            "typical_unit": unit,
            "notes": row["notes"],
        });
        assert_eq!(m, &expected, "materials.v1.json vs materials.csv row {}", row["id"]);
    }

    let rows = read_csv(&source_dir().join("partners.csv"));
    let listed = partners["partners"].as_array().unwrap();
    assert_eq!(listed.len(), rows.len(), "partners: one entry per CSV row");
    for (p, row) in listed.iter().zip(&rows) {
        let code = row["code"].as_str();
        // The Commission writes Greece EL and the United Kingdom UK; the CSV says so in the name.
        let eu_code = match code {
            "GR" => "EL",
            "GB" => "UK",
            other => other,
        };
        if eu_code != code {
            assert!(row["name"].contains(&format!("code {eu_code}")), "partners.csv names {eu_code} for {code}");
        }
        let flag = |k: &str| json!(row[k] == "true");
        let expected = json!({
            "code": code, "eu_code": eu_code, "name": row["name"],
            "eu": flag("eu"), "iea": flag("iea"), "nato": flag("nato"),
        });
        assert_eq!(p, &expected, "partners.v1.json vs partners.csv row {code}");
    }
    let reference = stockpile_ledger::domain::Reference::get();
    assert_eq!(materials["version"], reference.materials_version.as_str(), "compiled-in materials version");
    assert_eq!(partners["version"], reference.partners_version.as_str(), "compiled-in partners version");
}

// ---------------------------------------------------------------------------------------------
// The generator of the golden examples.

/// Pretty-printed in field order, for reading. A range reply's records stay the stored
/// one-line canonical bytes, as on the wire.
fn write_example<T: Serialize>(name: &str, value: &T) {
    let text = serde_json::to_string_pretty(value).expect("JSON") + "\n";
    std::fs::write(examples_dir().join(name), text).expect("write example");
}

#[test]
#[ignore = "writes schemas/examples/: run after a deliberate contract change and review the diff"]
fn generate_examples() {
    let run = run_scenario();
    std::fs::create_dir_all(examples_dir()).expect("create schemas/examples");
    for kind in enum_of(&schema_files()["v1/command.schema.json"], "kind") {
        write_example(&format!("command.{kind}.json"), &run.appended(&kind).command);
    }
    write_example("signed-command.json", run.appended("acquire"));
    let record_at = |seq: u64| record::decode(&run.ledger.store().record(seq).unwrap().unwrap()).expect("record");
    let genesis = record_at(1);
    write_example("record.genesis.json", &genesis);
    let acquired = record_at(run.ledger.recorded(&EventId::new("acq-pt-001")).unwrap().expect("recorded").seq);
    write_example("record.json", &acquired);
    let batch = vec![run.appended("store").clone(), run.appended("transfer").clone()];
    write_example("append-request.json", &AppendRequest { commands: batch, atomic: true });
    let reply = AppendReply { results: run.last_batch.iter().cloned().map(AppendResult::from).collect() };
    write_example("append-reply.json", &reply);
    let malformed = serde_json::from_str::<AppendRequest>("{}").expect_err("a request needs commands");
    let message = format!("request is not an append request: {malformed}");
    write_example("error-reply.json", &ErrorReply { error: ErrorBody { code: "malformed_request".into(), message } });
    write_example("range-request.json", &RangeRequest { from: 1, to: Some(2), limit: Some(2) });
    write_example("range-reply.json", &range_reply(&run, 1, 2));

    // For CANONICAL.md's worked example, byte for byte.
    let admin = deterministic_key("admin");
    println!("admin secret: {}", canonical::hex(&admin.secret_bytes()));
    println!("admin public: {}", admin.public_key_hex());
    println!("signed message: stockpile.v1.command\\n{}", canonical_text(&genesis.body.command.command));
    for (name, r) in [("record.genesis.json", &genesis), ("record.json", &acquired)] {
        println!("{name} body: {}", canonical_text(&r.body));
        println!("{name} hash: {}", canonical::hex(&r.hash));
    }
}

/// The rules CANONICAL.md states, each with the example it gives.
#[test]
fn canonical_json_follows_the_documented_rules() {
    let cases = [
        (json!({ "b": 1, "a": 2 }), r#"{"a":2,"b":1}"#),
        (json!({ "é": 1, "z": 2, "B": 3, "a": 4, "aa": 5 }), r#"{"B":3,"a":4,"aa":5,"z":2,"é":1}"#),
        (json!({ "a": [3, 1, { "y": null, "x": true }] }), r#"{"a":[3,1,{"x":true,"y":null}]}"#),
        (json!([-3, 0, u64::MAX]), "[-3,0,18446744073709551615]"),
        (json!("q\"b\\s/\u{7}\n\t\u{1f}\u{7f}é€😀"), "\"q\\\"b\\\\s/\\u0007\\n\\t\\u001f\u{7f}é€😀\""),
    ];
    for (value, expected) in cases {
        assert_eq!(canonical_text(&value), expected, "canonical form of {value}");
    }
    let reparsed: Value = serde_json::from_str(" { \"b\" : [ 1 , 2 ] ,\n \"a\" : { } } ").unwrap();
    assert_eq!(canonical_text(&reparsed), r#"{"a":{},"b":[1,2]}"#, "insignificant whitespace is dropped");
    for float in [json!(1.5), json!(1.0), json!({ "grams": 2e3 })] {
        assert!(canonical::to_vec(&float).is_err(), "{float} has a float and must be refused");
    }
}

#[test]
fn checkpoints_and_proofs_validate_against_their_schemas() {
    use stockpile_ledger::audit::{checkpoint, proof, Checkpoint, LedgerKey};
    use stockpile_ledger::wire::{ProofReply, ProofRequest};
    let run = run_scenario();
    let store = run.ledger.store();
    let head = run.ledger.state().head.seq;
    let key = LedgerKey::from_secret([5; 32]);
    let old = checkpoint::create(store, &key, head / 2, at(RECORDED_AT)).expect("checkpoint");
    let new = checkpoint::create(store, &key, head, at(RECORDED_AT)).expect("checkpoint");
    let v = validator("v1/checkpoint.schema.json");
    for c in [&old, &new] {
        let value = serde_json::to_value(c).unwrap();
        assert_valid(&v, &value, "checkpoint");
        fields_agree::<Checkpoint>(&v, &value, "checkpoint");
        // The export line holds the same object.
        let line: Value = serde_json::from_slice(&c.to_line()).unwrap();
        assert_valid(&v, &line["checkpoint"], "checkpoint line");
    }
    let requests = [
        ProofRequest::Inclusion { seq: 1, tree_size: old.tree_size },
        ProofRequest::Consistency { old_size: old.tree_size, new_size: new.tree_size },
    ];
    let v = validator("v1/proof-request.schema.json");
    for r in &requests {
        assert_valid(&v, &serde_json::to_value(r).unwrap(), "proof request");
    }
    let proofs = [
        ProofReply::Inclusion(proof::prove_inclusion(store, 1, old.tree_size).unwrap()),
        ProofReply::Consistency(proof::prove_consistency(store, old.tree_size, new.tree_size).unwrap()),
    ];
    let v = validator("v1/proof.schema.json");
    for p in &proofs {
        let value = serde_json::to_value(p).unwrap();
        assert_valid(&v, &value, "proof");
        assert_eq!(&serde_json::from_value::<ProofReply>(value).unwrap(), p, "proofs round-trip");
    }
    assert!(!v.is_valid(&json!({"proof": "inclusion", "seq": 1, "tree_size": 1, "path": []})), "record_hash required");
}
