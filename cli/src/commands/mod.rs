//! One module per verb family. Each builds domain commands from arguments, signs them with
//! the right key and hands them to a [`Backend`].

pub mod audit;
pub mod bench;
pub mod completions;
pub mod demo;
pub mod keys;
pub mod list;
pub mod movements;
pub mod nats_config;
pub mod post;
pub mod query;
pub mod register;
pub mod report;
pub mod reports;
pub mod services;
pub mod watch;
pub mod witness;

use crate::args::{Common, Format};
use crate::client::Backend;
use crate::error::{CliError, Result};
use crate::keystore::Keystore;
use crate::known::{self, Kind};
use crate::output;
use crate::parse;
use chrono::Utc;
use stockpile_ledger::domain::{Action, Command, EventId, PartyId};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::wire::AppendResult;

/// What every verb needs: the key directory, the output format and a backend.
pub struct Ctx<'a> {
    pub keys: Keystore,
    pub format: Format,
    pub backend: &'a mut dyn Backend,
}

/// The party whose key must sign `action`: the one it debits (or credits, for an acquire).
/// `None` for registrations (admin key) and reversals (the caller names the party).
pub fn signing_party(action: &Action) -> Option<PartyId> {
    match action {
        Action::Acquire { to, .. } => Some(to.party.clone()),
        Action::Store { party, .. } => Some(party.clone()),
        Action::Transfer { from, .. } | Action::Release { from, .. } | Action::Convert { from, .. } => {
            Some(from.party.clone())
        }
        Action::Adjust { at, .. } => Some(at.party.clone()),
        _ => None,
    }
}

/// A fresh event id: the kind, the time and random bits, so ids sort by time and never collide.
pub fn new_event_id(kind: &str) -> EventId {
    let now = Utc::now().format("%Y%m%dT%H%M%S%.6f").to_string().replace('.', "");
    EventId::new(format!("{kind}-{now}-{:08x}", rand::random::<u32>()))
}

/// Builds, signs and submits one command from a verb's common options.
pub fn post_one(ctx: &mut Ctx<'_>, common: &Common, party: Option<&str>, action: Action) -> Result<()> {
    let id = match &common.id {
        Some(id) => EventId::new(id.as_str()),
        None => new_event_id(action.kind()),
    };
    let occurred_at = match &common.occurred_at {
        Some(t) => parse::time(t)?,
        None => Utc::now(),
    };
    let signer = ctx.keys.select(common.key.as_deref(), party)?;
    let signed = signer.sign(Command { id, occurred_at, action });
    submit(ctx, vec![signed], true)
}

/// Submits commands and prints one line per result; any rejection makes the exit code 1.
pub fn submit(ctx: &mut Ctx<'_>, commands: Vec<SignedCommand>, atomic: bool) -> Result<()> {
    let ids: Vec<EventId> = commands.iter().map(|c| c.command.id.clone()).collect();
    let results = ctx.backend.append(commands, atomic)?;
    let outcome = report(ctx.format, &ids, &results);
    for (kind, id) in results.iter().filter_map(unknown_in) {
        eprintln!("  {}", unknown_hint(ctx, kind, &id));
    }
    outcome
}

/// The kind and id of a ledger rejection for an id it does not know. The wire carries only
/// the code and the text, whose shape is `unknown <noun> "<id>": …` for these codes.
fn unknown_in(result: &AppendResult) -> Option<(Kind, String)> {
    let AppendResult::Rejected { code, message } = result else { return None };
    if !matches!(code.as_str(), "unknown_reference" | "unknown_material" | "unknown_partner") {
        return None;
    }
    let (noun, rest) = message.strip_prefix("unknown ")?.split_once(' ')?;
    let id = rest.strip_prefix('"')?.split('"').next()?;
    Some((Kind::from_noun(noun)?, id.to_string()))
}

/// What to do about an unknown id the ledger refused: the closest known id, or where ids of
/// that kind come from (a lot from an acquire or a conversion, never from registration).
fn unknown_hint(ctx: &mut Ctx<'_>, kind: Kind, id: &str) -> String {
    let registry = if known::needs_registry(kind) { ctx.backend.registry().ok() } else { None };
    let known_ids = known::ids(kind, registry.as_ref());
    format!("hint: {}", known::advice(kind, id, &known_ids))
}

/// Prints results; returns `Rejected` if any command was refused.
pub fn report(format: Format, ids: &[EventId], results: &[AppendResult]) -> Result<()> {
    let rejected = results.iter().filter(|r| matches!(r, AppendResult::Rejected { .. })).count();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> =
                ids.iter().zip(results).map(|(id, r)| serde_json::json!({"event_id": id, "result": r})).collect();
            println!("{}", serde_json::to_string_pretty(&rows).expect("results encode"));
        }
        Format::Table | Format::Csv => {
            for (id, r) in ids.iter().zip(results) {
                match r {
                    AppendResult::Appended { seq, .. } => println!("{} {id} at seq {seq}", output::ok("appended")),
                    AppendResult::Duplicate { seq, .. } => {
                        println!(
                            "{} {id} was already recorded at seq {seq}; nothing new written",
                            output::dim("duplicate")
                        )
                    }
                    AppendResult::Rejected { code, message } => {
                        eprintln!("{} {id}: {message} [{code}]", output::bad("rejected"))
                    }
                }
            }
        }
    }
    if rejected > 0 {
        Err(CliError::Rejected { count: rejected })
    } else {
        Ok(())
    }
}
