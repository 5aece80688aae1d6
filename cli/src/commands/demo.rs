//! `init` and `demo`.
//!
//! The demo builds, from an empty directory, the situation the product was made for: the
//! Netherlands' two stockpiling pilots — defence shipbuilding (radar and hull: gallium,
//! germanium, titanium, rare-earth magnet metals) and medical technology (helium, tungsten,
//! platinum-group metals) — beside a fully public copper stock, a mandated operator holding
//! for the state, stock held abroad in Belgium and Germany, a transfer into a joint NATO
//! stock between Allies, an emergency release during a supply disruption, a stock-take
//! adjustment and the reversal of a mistaken entry. Every step goes through the real ledger.
//! Names of organisations are illustrative, and so are the consumption and import figures.

use super::{report, Ctx};
use crate::args::{Format, HoldingsArgs};
use crate::client::{Backend, Embedded};
use crate::error::{operational, usage, Result};
use crate::keystore::Keystore;
use crate::output;
use chrono::{DateTime, Utc};
use std::path::Path;
use stockpile_ledger::domain::{
    Action, AdjustReason, Amount, Command, ConvertInto, Country, Direction, EventId, FacilityId, FigureKind, Form,
    HolderType, Holding, KeyId, KeyRole, Location, LotId, LotSpec, MaterialId, PartyId, Programme, ReleaseReason, Unit,
};
use stockpile_ledger::signing::OperatorKey;
use stockpile_ledger::testkit::{holding as at, lot};

/// Marks a directory as the demo's own, so a rerun may replace it and nothing else.
const DEMO_MARKER: &str = ".stockpile-demo";

pub fn init(ctx: &mut Ctx<'_>, ledger: &str, admin_key: &str) -> Result<()> {
    if ctx.backend.head()? > 0 {
        return Err(usage("this data directory already holds a ledger; choose another --data"));
    }
    // The key file appears only once the genesis naming it is recorded: a failed or
    // refused init leaves nothing behind, so the retry is the same command.
    let pending = ctx.keys.generate_pending(admin_key, KeyRole::Admin, None)?;
    let signer = pending.file.signer()?;
    let genesis = genesis(&signer, ledger, Utc::now());
    let ids = vec![genesis.command.id.clone()];
    let results = ctx.backend.append(vec![genesis], true)?;
    report(ctx.format, &ids, &results)?;
    let key = pending.file.key.clone();
    let path = pending.keep()?;
    eprintln!("admin key {key} written to {} (mode 0600); keep it safe", path.display());
    Ok(())
}

fn genesis(admin: &OperatorKey, ledger: &str, at: DateTime<Utc>) -> stockpile_ledger::signing::SignedCommand {
    admin.sign(Command {
        id: EventId::new("genesis"),
        occurred_at: at,
        action: Action::Genesis {
            ledger: ledger.to_string(),
            admin_key: admin.id.clone(),
            public_key: admin.public_key_hex(),
            rules: Some(stockpile_ledger::domain::rules::LATEST),
        },
    })
}

/// Which of `--data` and `--keys` the operator gave (on the command line or in the
/// environment) rather than left at their defaults.
#[derive(Debug, Clone, Copy)]
pub struct Places {
    pub data: bool,
    pub keys: bool,
}

/// Why `demo --nats URL` is refused: the log is append-only, so the demo's fictional story
/// posted to real services could never be taken out of their ledger again.
pub fn refuse_nats(url: &str) -> String {
    format!(
        "demo builds a fictional ledger of its own and does not post to the services at {url}: their log is \
         append-only, so the demo's made-up parties and movements could never be removed from it. Run \
         `stockpile demo` without --nats (it needs no server); to feed services a story of your own, \
         `stockpile --nats {url} post FILE`"
    )
}

/// Refuses a `dir` the demo may not replace: one that exists, is not empty and was not made
/// by an earlier demo (it carries no [`DEMO_MARKER`]); `flag` names the option that chose it.
fn check_replaceable(dir: &Path, flag: &str) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir).map_err(operational)?.next().is_none();
        if !empty && !dir.join(DEMO_MARKER).exists() {
            return Err(usage(format!(
                "{} exists and was not made by `stockpile demo`; choose another {flag}",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Makes `dir` (checked by [`check_replaceable`]) an empty directory marked as the demo's own.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| operational(format!("remove {}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| operational(format!("create {}: {e}", dir.display())))?;
    std::fs::write(dir.join(DEMO_MARKER), "made by `stockpile demo`; safe to delete\n").map_err(operational)
}

/// One step of the story: who does what, and the command.
struct Step {
    say: String,
    signer: &'static str,
    command: Command,
}

struct Story {
    steps: Vec<Step>,
}

fn t(date: &str) -> DateTime<Utc> {
    crate::parse::time(date).expect("demo dates are valid")
}

fn q(text: &str, unit: Unit) -> Amount {
    Amount::new(text, unit)
}

impl Story {
    fn step(&mut self, say: impl Into<String>, signer: &'static str, id: &str, when: &str, action: Action) {
        self.steps.push(Step {
            say: say.into(),
            signer,
            command: Command { id: EventId::new(id), occurred_at: t(when), action },
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &mut self,
        say: &str,
        party: &'static str,
        id: &str,
        when: &str,
        spec: LotSpec,
        to: Holding,
        qty: Amount,
        supplier: &str,
    ) {
        let action = Action::Acquire {
            lot: spec,
            to,
            quantity: qty,
            supplier: Some(supplier.into()),
            contract: None,
            price: None,
        };
        self.step(say, party, id, when, action);
    }
}

const PARTIES: [(&str, &str, &str, HolderType); 7] = [
    ("nl-mindef", "NL", "Ministry of Defence — shipbuilding pilot (radar, hull)", HolderType::PublicAuthority),
    ("nl-vws", "NL", "Ministry of Health — medical technology pilot", HolderType::PublicAuthority),
    ("nl-copper", "NL", "State copper reserve (fully public)", HolderType::PublicAuthority),
    ("nl-reserve", "NL", "Mandated stockholding operator (public-private)", HolderType::MandatedOperator),
    ("nl-wire", "NL", "Cable manufacturer (private stock)", HolderType::Private),
    ("de-bundeswehr", "DE", "German armed forces procurement", HolderType::PublicAuthority),
    ("be-defence", "BE", "Belgian Defence", HolderType::PublicAuthority),
];

const FACILITIES: [(&str, &str, &str); 4] = [
    ("nl-den-helder", "NL", "Naval depot Den Helder"),
    ("nl-rotterdam", "NL", "Bonded warehouse Rotterdam"),
    ("be-antwerp", "BE", "Metals warehouse Antwerp (held abroad)"),
    ("de-hamburg", "DE", "Joint NATO depot Hamburg"),
];

fn story() -> Story {
    let mut s = Story { steps: Vec::new() };
    for (id, partner, name, holder) in PARTIES {
        let action = Action::RegisterParty {
            party: PartyId::new(id),
            partner: Country::new(partner),
            name: name.into(),
            holder_type: holder,
        };
        s.step(format!("register party {id}: {name}"), "admin", &format!("reg-{id}"), "2025-01-02", action);
    }
    for (id, country, name) in FACILITIES {
        let action = Action::RegisterFacility {
            facility: FacilityId::new(id),
            name: name.into(),
            country: Country::new(country),
        };
        s.step(
            format!("register facility {id} ({country}): {name}"),
            "admin",
            &format!("reg-{id}"),
            "2025-01-02",
            action,
        );
    }
    let figures = [
        (FigureKind::Consumption, "gallium", "12 t"),
        (FigureKind::NetImports, "gallium", "14 t"),
        (FigureKind::Consumption, "germanium", "9 t"),
        (FigureKind::Consumption, "copper", "95000 t"),
        (FigureKind::NetImports, "copper", "88000 t"),
        (FigureKind::Consumption, "tungsten", "400 t"),
    ];
    for (kind, material, qty) in figures {
        let amount = crate::parse::amount(qty).expect("demo quantity");
        let label = if kind == FigureKind::Consumption { "consumption" } else { "net imports" };
        let action = Action::RegisterFigure {
            figure: kind,
            partner: Country::new("NL"),
            material: MaterialId::new(material),
            year: 2025,
            quantity: amount,
        };
        s.step(
            format!("register NL 2025 {label} of {material}: {qty} (illustrative)"),
            "admin",
            &format!("fig-{label}-{material}").replace(' ', "-"),
            "2026-01-15",
            action,
        );
    }
    // Defence shipbuilding pilot.
    s.acquire(
        "MinDef buys 5 t gallium metal (99.99 %, JP), shipped",
        "nl-mindef",
        "acq-ga-1",
        "2026-02-03",
        lot("ga-2026-001", "gallium", Form::Metal, 999_900, "JP"),
        at("nl-mindef", "in_transit", Programme::National),
        q("5", Unit::T),
        "Dowa Metals",
    );
    s.step(
        "the gallium arrives at the naval depot",
        "nl-mindef",
        "sto-ga-1",
        "2026-02-20",
        Action::Store {
            lot: LotId::new("ga-2026-001"),
            party: "nl-mindef".into(),
            programme: Programme::National,
            from: Location::InTransit,
            to: "nl-den-helder".into(),
            quantity: q("5", Unit::T),
        },
    );
    s.acquire(
        "MinDef buys 2 t germanium metal (99.999 %, BE), kept in Antwerp",
        "nl-mindef",
        "acq-ge-1",
        "2026-02-10",
        lot("ge-2026-001", "germanium", Form::Metal, 999_990, "BE"),
        at("nl-mindef", "be-antwerp", Programme::National),
        q("2", Unit::T),
        "Umicore",
    );
    s.acquire(
        "MinDef buys 40 t titanium metal (99.6 %, JP) for hulls",
        "nl-mindef",
        "acq-ti-1",
        "2026-03-02",
        lot("ti-2026-001", "titanium_metal", Form::Metal, 996_000, "JP"),
        at("nl-mindef", "nl-den-helder", Programme::National),
        q("40", Unit::T),
        "Toho Titanium",
    );
    s.acquire(
        "MinDef buys 12 t neodymium oxide (99.5 %, MY) for radar magnets",
        "nl-mindef",
        "acq-nd-1",
        "2026-03-05",
        lot("nd-2026-001", "neodymium", Form::Oxide, 995_000, "MY"),
        at("nl-mindef", "nl-den-helder", Programme::National),
        q("12", Unit::T),
        "Lynas",
    );
    // Medical technology pilot, partly through the mandated operator.
    s.acquire(
        "the mandated operator buys 25 t tungsten (APT, 88.5 % W, AT) for the Health ministry",
        "nl-reserve",
        "acq-w-1",
        "2026-02-12",
        lot("w-2026-001", "tungsten", Form::Intermediate, 885_000, "AT"),
        at("nl-reserve", "nl-rotterdam", Programme::National),
        q("25", Unit::T),
        "Wolfram Bergbau",
    );
    s.acquire(
        "Health buys 800 kg liquid helium (99.999 %, QA)",
        "nl-vws",
        "acq-he-1",
        "2026-02-14",
        lot("he-2026-001", "helium", Form::Gas, 999_990, "QA"),
        at("nl-vws", "nl-rotterdam", Programme::National),
        q("800", Unit::Kg),
        "QatarEnergy",
    );
    s.acquire(
        "Health buys 5,000 ozt platinum (99.95 %, ZA), vaulted in Antwerp",
        "nl-vws",
        "acq-pt-1",
        "2026-02-18",
        lot("pt-2026-001", "platinum", Form::Metal, 999_500, "ZA"),
        at("nl-vws", "be-antwerp", Programme::National),
        q("5000", Unit::Ozt),
        "Heraeus",
    );
    // Copper: a fully public stock, and a private one for information.
    s.acquire(
        "the state copper reserve buys 500 t cathodes (99.99 %, CL)",
        "nl-copper",
        "acq-cu-1",
        "2026-01-20",
        lot("cu-2026-001", "copper", Form::Metal, 999_900, "CL"),
        at("nl-copper", "nl-rotterdam", Programme::Eu),
        q("500", Unit::T),
        "Codelco",
    );
    s.acquire(
        "a cable maker holds 120 t copper of its own (private, information only)",
        "nl-wire",
        "acq-cu-2",
        "2026-01-25",
        lot("cu-2026-002", "copper", Form::Metal, 999_900, "PE"),
        at("nl-wire", "nl-rotterdam", Programme::National),
        q("120", Unit::T),
        "Southern Copper",
    );
    // Joint NATO stock between Allies.
    s.step(
        "MinDef pools 500 kg germanium into the joint NATO stock held by Germany in Hamburg",
        "nl-mindef",
        "xfer-ge-nato",
        "2026-04-01",
        Action::Transfer {
            lot: LotId::new("ge-2026-001"),
            from: at("nl-mindef", "be-antwerp", Programme::National),
            to: at("de-bundeswehr", "de-hamburg", Programme::Nato),
            quantity: q("500", Unit::Kg),
        },
    );
    // Refining for magnets.
    s.step(
        "12 t neodymium oxide is refined into 9.8 t neodymium metal (99.9 %)",
        "nl-mindef",
        "conv-nd-1",
        "2026-04-20",
        Action::Convert {
            lot: LotId::new("nd-2026-001"),
            from: at("nl-mindef", "nl-den-helder", Programme::National),
            consumed: q("12", Unit::T),
            into: ConvertInto {
                id: LotId::new("nd-2026-002"),
                form: Form::Metal,
                purity_ppm: 999_000,
                to: Location::Facility("nl-den-helder".into()),
                certificate: None,
            },
            produced: q("9.8", Unit::T),
        },
    );
    // Supply disruption: emergency release to hospital equipment makers.
    s.step(
        "export restrictions bite: 5 t tungsten released to X-ray tube makers",
        "nl-reserve",
        "rel-w-1",
        "2026-05-06",
        Action::Release {
            lot: LotId::new("w-2026-001"),
            from: at("nl-reserve", "nl-rotterdam", Programme::National),
            quantity: q("5", Unit::T),
            reason: ReleaseReason::EmergencyDrawdown,
            recipient: "medical X-ray tube manufacturers".into(),
        },
    );
    // Stock-take and a mistaken entry.
    s.step(
        "the annual stock-take finds 1.2 t copper less than booked",
        "nl-copper",
        "adj-cu-1",
        "2026-06-30",
        Action::Adjust {
            lot: LotId::new("cu-2026-001"),
            at: at("nl-copper", "nl-rotterdam", Programme::Eu),
            direction: Direction::Decrease,
            quantity: q("1.2", Unit::T),
            reason: AdjustReason::StockTake,
            note: "annual count 2026".into(),
        },
    );
    s.acquire(
        "a clerk books the helium delivery a second time by mistake",
        "nl-vws",
        "acq-he-dup",
        "2026-02-14",
        lot("he-2026-002", "helium", Form::Gas, 999_990, "QA"),
        at("nl-vws", "nl-rotterdam", Programme::National),
        q("800", Unit::Kg),
        "QatarEnergy",
    );
    s.step(
        "…and the mistaken entry is reversed (nothing is ever deleted)",
        "nl-vws",
        "rev-he-dup",
        "2026-02-15",
        Action::Reverse {
            target: EventId::new("acq-he-dup"),
            reason: "duplicate booking of delivery 2026-02-14".into(),
        },
    );
    s
}

/// Builds the demo: the ledger in `data` (default `<dir>/data`), the keys in `keys` (default
/// `<dir>/keys`), as every verb reads them from `--data` and `--keys`. Each place given
/// outside `dir` is prepared as `dir` is: created, or replaced if an earlier demo made it.
pub fn run(dir: &Path, data: Option<&Path>, keys: Option<&Path>) -> Result<()> {
    let data_dir = data.map_or_else(|| dir.join("data"), Path::to_path_buf);
    let keys_dir = keys.map_or_else(|| dir.join("keys"), Path::to_path_buf);
    // Every place is checked before any is replaced: a refusal changes nothing.
    let outside: Vec<(&Path, &str)> = [(data_dir.as_path(), "--data"), (keys_dir.as_path(), "--keys")]
        .into_iter()
        .filter(|(place, _)| !place.starts_with(dir))
        .collect();
    check_replaceable(dir, "--dir")?;
    for (place, flag) in &outside {
        check_replaceable(place, flag)?;
    }
    prepare_dir(dir)?;
    for (place, _) in &outside {
        prepare_dir(place)?;
    }
    let keys = Keystore::new(&keys_dir);
    let mut backend = Embedded::open(&data_dir, true)?;
    let admin = keys.generate("admin", KeyRole::Admin, None)?.0.signer()?;
    let mut signers: std::collections::BTreeMap<&str, OperatorKey> = std::collections::BTreeMap::new();
    let mut setup = vec![genesis(&admin, "Netherlands strategic stockpile (demo)", t("2025-01-01"))];
    println!("Building a demo ledger in {} (keys in {})", data_dir.display(), keys_dir.display());
    for (party, ..) in PARTIES {
        let id = format!("{party}-ops");
        let key = keys.generate(&id, KeyRole::Operator, Some(party.to_string()))?.0.signer()?;
        setup.push(admin.sign(Command {
            id: EventId::new(format!("reg-key-{party}")),
            occurred_at: t("2025-01-02"),
            action: Action::RegisterKey {
                key: KeyId::new(id.as_str()),
                public_key: key.public_key_hex(),
                role: KeyRole::Operator,
                party: Some(PartyId::new(party)),
            },
        }));
        signers.insert(party, key);
    }
    let story = story();
    // Parties must exist before their keys: register parties first, then keys, then the story.
    let (registrations, movements): (Vec<Step>, Vec<Step>) = story.steps.into_iter().partition(|s| s.signer == "admin");
    let mut first = vec![setup.remove(0)];
    for step in &registrations {
        println!("  {} {}", output::dim("·"), step.say);
        first.push(admin.sign(step.command.clone()));
    }
    first.extend(setup);
    expect_appended(&mut backend, first)?;
    println!(
        "  {} genesis, {} registrations and {} operator keys recorded",
        output::ok("✓"),
        registrations.len(),
        PARTIES.len()
    );
    for step in movements {
        let signed = signers[step.signer].sign(step.command);
        let seq = expect_appended(&mut backend, vec![signed])?;
        println!("  {} seq {seq:>3}  {}", output::ok("✓"), step.say);
    }
    println!();
    let mut ctx = Ctx { keys, format: Format::Table, backend: &mut backend };
    println!("Holdings now, by partner, holder type and material:");
    let args = HoldingsArgs {
        as_of: None,
        by: vec!["partner".into(), "holder_type".into(), "material".into()],
        partner: vec![],
        party: vec![],
        material: vec![],
        programme: vec![],
        facility: vec![],
        holder_type: vec![],
    };
    super::query::holdings(&mut ctx, &args)?;
    Box::new(backend).close()?;
    let (data, keys) = (data_dir.display(), keys_dir.display());
    println!();
    println!("Next, try:");
    println!("  stockpile --data {data} holdings --by country,material          # where the stock is");
    println!("  stockpile --data {data} holdings --as-of 2026-03-31 --by party  # as it was on a date");
    println!("  stockpile --data {data} history --lot ge-2026-001               # every movement of a lot");
    println!("  stockpile --data {data} report --partner NL --period 2026      # the Commission stock report");
    println!("  stockpile --data {data} --keys {keys} release --lot ga-2026-001 --party nl-mindef \\");
    println!("      --at nl-den-helder --quantity '100 kg' --reason sale --recipient 'radar maker'");
    Ok(())
}

fn expect_appended(backend: &mut Embedded, commands: Vec<stockpile_ledger::signing::SignedCommand>) -> Result<u64> {
    let ids: Vec<EventId> = commands.iter().map(|c| c.command.id.clone()).collect();
    let results = backend.append(commands, true)?;
    let mut last = 0;
    for (id, r) in ids.iter().zip(&results) {
        match r {
            stockpile_ledger::wire::AppendResult::Appended { seq, .. } => last = *seq,
            other => return Err(operational(format!("demo step {id} was not appended: {other:?}"))),
        }
    }
    Ok(last)
}
