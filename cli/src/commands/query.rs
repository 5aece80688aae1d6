//! `holdings` and `history`: reading the record, never writing it.

use super::Ctx;
use crate::args::{Format, HistoryArgs, HoldingsArgs};
use crate::error::{operational, usage, Result};
use crate::known::{self, Kind};
use crate::output;
use std::str::FromStr;
use stockpile_ledger::domain::model::{PositionKey, IN_TRANSIT};
use stockpile_ledger::domain::quantity::format_tonnes;
use stockpile_ledger::domain::{Country, Event, Location, LotId, MaterialId, PartyId};
use stockpile_ledger::record;
use stockpile_projector::query::{AsOf, Dimension, Holdings, HoldingsQuery, KeyValue};
use stockpile_projector::{HistoryQuery, HistoryRow, Registry};

/// Tonnes shown in tables: kilogram precision reads well for stockpiles; JSON keeps grams.
const TABLE_TONNE_DECIMALS: u32 = 3;

/// Records read per page when scanning the log for `history`.
const HISTORY_PAGE_RECORDS: u64 = 10_000;

fn dimension(text: &str) -> Result<Dimension> {
    let canonical = if text == "country" { "facility_country" } else { text };
    Dimension::from_str(canonical).map_err(|e| usage(e.to_string()))
}

fn list<T>(values: &[String], f: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    values.iter().map(|v| f(v)).collect()
}

pub fn build_query(a: &HoldingsArgs) -> Result<HoldingsQuery> {
    let q = HoldingsQuery {
        as_of: a.as_of.as_deref().map(|t| AsOf::from_str(t).map_err(|e| usage(e.to_string()))).transpose()?,
        partner: list(&a.partner, |v| Ok(Country::new(v)))?,
        party: list(&a.party, |v| Ok(PartyId::new(v)))?,
        holder_type: list(&a.holder_type, |v| crate::parse::enum_value("holder type", v))?,
        material: list(&a.material, |v| Ok(MaterialId::new(v)))?,
        programme: list(&a.programme, |v| crate::parse::enum_value("programme", v))?,
        facility: list(&a.facility, |v| Ok(crate::parse::location(v)))?,
        group_by: list(&a.by, dimension)?,
        ..HoldingsQuery::default()
    };
    q.validate().map_err(|e| usage(e.to_string()))?;
    Ok(q)
}

/// Refuses (exit 1, with "did you mean") any id filter of `a` that names nothing known, so a
/// typo never answers zero. `registry` is asked for only when a filter needs it.
pub fn check_ids(a: &HoldingsArgs, registry: impl FnOnce() -> Result<Registry>) -> Result<()> {
    known::check(Kind::Material, &a.material, None)?;
    known::check(Kind::Partner, &a.partner, None)?;
    if a.party.is_empty() && a.facility.is_empty() {
        return Ok(());
    }
    let registry = registry()?;
    known::check(Kind::Party, &a.party, Some(&registry))?;
    known::check(Kind::Facility, &a.facility, Some(&registry))
}

pub fn holdings(ctx: &mut Ctx<'_>, a: &HoldingsArgs) -> Result<()> {
    let query = build_query(a)?;
    check_ids(a, || ctx.backend.registry())?;
    let answer = ctx.backend.holdings(&query)?;
    let totals = material_totals(ctx.format, &answer, |q| ctx.backend.holdings(q))?;
    print_holdings(ctx.format, &answer, &totals)
}

/// One material's total in a table's TOTAL rows: (material, gross g, contained g).
pub type MaterialTotal = (String, i64, i64);

/// The TOTAL rows of a table: one per material, never a sum across materials (tonnes of
/// cobalt and tonnes of helium do not add up to anything). From the rows when they are
/// grouped by material; otherwise `ask` answers the same query grouped by material alone.
/// Only tables have TOTAL rows, so other formats ask nothing.
pub fn material_totals(
    format: Format,
    h: &Holdings,
    ask: impl FnOnce(&HoldingsQuery) -> Result<Holdings>,
) -> Result<Vec<MaterialTotal>> {
    if format != Format::Table {
        return Ok(Vec::new());
    }
    let grouped;
    let source = if h.query.group_by.contains(&Dimension::Material) {
        h
    } else {
        let query = HoldingsQuery { group_by: vec![Dimension::Material], ..h.query.clone() };
        grouped = ask(&query)?;
        &grouped
    };
    let mut totals: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for row in &source.rows {
        let material = row.key.get(Dimension::Material).map(key_text).unwrap_or_default();
        let t = totals.entry(material).or_default();
        t.0 += row.totals.gross_g;
        t.1 += row.totals.contained_g;
    }
    Ok(totals.into_iter().map(|(m, (g, c))| (m, g, c)).collect())
}

fn key_text(v: &KeyValue) -> String {
    match v {
        KeyValue::Null => "-".into(),
        KeyValue::Ppm(p) => format!("{}.{:04}%", p / 10_000, p % 10_000),
        KeyValue::Text(s) => s.clone(),
    }
}

/// Prints `h`; a table ends with one TOTAL row per material of `totals` (see
/// [`material_totals`]).
pub fn print_holdings(format: Format, h: &Holdings, totals: &[MaterialTotal]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        let text = serde_json::to_string_pretty(h).expect("holdings encode");
        println!("{text}");
        return Ok(());
    }
    let dims: Vec<&str> = h.query.group_by.iter().map(|d| d.as_str()).collect();
    let (gross, contained) =
        if format == Format::Csv { ("gross_g", "contained_g") } else { ("gross_t", "contained_t") };
    let mut headers: Vec<&str> = dims.clone();
    headers.extend([gross, contained]);
    let figure = |g: i64| {
        if format == Format::Csv {
            g.to_string()
        } else {
            let t = format_tonnes(g.unsigned_abs(), TABLE_TONNE_DECIMALS);
            if g < 0 {
                format!("-{t}")
            } else {
                t
            }
        }
    };
    let mut rows: Vec<Vec<String>> = h
        .rows
        .iter()
        .map(|r| {
            let mut row: Vec<String> = r.key.0.iter().map(|(_, v)| key_text(v)).collect();
            row.extend([figure(r.totals.gross_g), figure(r.totals.contained_g)]);
            row
        })
        .collect();
    let result = if format == Format::Csv {
        output::csv(&mut out, &headers, &rows)
    } else {
        if dims.is_empty() {
            headers.insert(0, "");
            for r in rows.iter_mut() {
                r.insert(0, String::new());
            }
        }
        for (material, gross_g, contained_g) in totals {
            let mut total = vec![String::new(); dims.len().max(1)];
            total[0] = format!("TOTAL {material}");
            total.extend([figure(*gross_g), figure(*contained_g)]);
            rows.push(total);
        }
        output::table(&mut out, &headers, &rows)
    };
    let _ = result; // a closed pipe (`| head`) is not an error
    if format == Format::Table {
        let as_of = h.query.as_of.map(|a| a.to_string()).unwrap_or_else(|| "now".into());
        eprintln!(
            "{}",
            output::dim(&format!(
                "as of {as_of}; cut at seq {}; tonnes rounded to the kg (exact grams with --format json)",
                h.seq
            ))
        );
        if totals.len() > 1 && !h.query.group_by.contains(&Dimension::Material) {
            eprintln!(
                "{}",
                output::dim(&format!(
                    "these rows add up tonnes of {} materials; add material to --by to split them",
                    totals.len()
                ))
            );
        }
    }
    Ok(())
}

/// Whether a record concerns the subject asked about.
fn concerns(a: &HistoryArgs, body: &record::RecordBody) -> bool {
    let postings = body.event.effects().postings;
    let touches = |f: &dyn Fn(&PositionKey) -> bool| postings.iter().any(|p| f(&p.position));
    let lot_created = |id: &LotId| match &body.event {
        Event::Acquired { lot, .. } | Event::Converted { lot, .. } => lot.id == *id,
        _ => false,
    };
    if let Some(lot) = &a.lot {
        let lot = LotId::new(lot.as_str());
        return touches(&|k| k.lot == lot) || lot_created(&lot);
    }
    if let Some(party) = &a.party {
        return touches(&|k| k.party.as_str() == party) || body.actor.as_ref().is_some_and(|p| p.as_str() == party);
    }
    if let Some(facility) = &a.facility {
        return touches(&|k| k.location.as_str() == facility);
    }
    false
}

fn describe(event: &Event) -> String {
    let t = |g: u64| format!("{} t", format_tonnes(g, TABLE_TONNE_DECIMALS));
    match event {
        Event::Acquired { lot, to, quantity, .. } => {
            format!("{} {} of {} → {to}", t(quantity.grams), lot.material, lot.id)
        }
        Event::Stored { from, to, quantity } | Event::Transferred { from, to, quantity } => {
            format!("{} {from} → {to}", t(quantity.grams))
        }
        Event::Released { from, quantity, reason, recipient } => {
            format!(
                "{} from {from} ({}) to {recipient}",
                t(quantity.grams),
                serde_json::to_value(reason).unwrap_or_default().as_str().unwrap_or("")
            )
        }
        Event::Converted { from, consumed, lot, to, produced } => {
            format!("{} of {from} → {} {} {} at {to}", t(consumed.grams), t(produced.grams), lot.form.as_str(), lot.id)
        }
        Event::Adjusted { at, direction, quantity, note, .. } => {
            format!(
                "{at} {} {} ({note})",
                if *direction == stockpile_ledger::domain::Direction::Increase { "+" } else { "−" },
                t(quantity.grams)
            )
        }
        Event::Reversed { target, reason, .. } => format!("reverses {target}: {reason}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(String::from)))
            .unwrap_or_default(),
    }
}

pub fn history(ctx: &mut Ctx<'_>, a: &HistoryArgs) -> Result<()> {
    let (kind, id) = match (&a.lot, &a.party, &a.facility) {
        (Some(lot), _, _) => (Kind::Lot, lot),
        (_, Some(party), _) => (Kind::Party, party),
        (_, _, Some(facility)) => (Kind::Facility, facility),
        _ => return Err(usage("name what to show: --lot ID, --party ID or --facility ID")),
    };
    let asked = HistoryQuery {
        lot: a.lot.as_deref().map(LotId::new),
        party: a.party.as_deref().map(PartyId::new),
        facility: a
            .facility
            .as_deref()
            .map(|f| if f == IN_TRANSIT { Location::InTransit } else { Location::facility(f) }),
        ..HistoryQuery::default()
    };
    if let Some(rows) = ctx.backend.partner_history(&asked)? {
        return print_postings(ctx.format, &rows);
    }
    known::check(kind, std::slice::from_ref(id), Some(&ctx.backend.registry()?))?;
    let head = ctx.backend.head()?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let mut from = 1;
    while from <= head {
        let to = (from + HISTORY_PAGE_RECORDS - 1).min(head);
        for bytes in ctx.backend.records(from, to)? {
            let rec = record::decode(&bytes).map_err(|e| operational(format!("record does not decode: {e}")))?;
            let b = &rec.body;
            if concerns(a, b) {
                rows.push(vec![
                    b.seq.to_string(),
                    b.occurred_at.format("%Y-%m-%d").to_string(),
                    b.kind.clone(),
                    b.event_id.to_string(),
                    describe(&b.event),
                ]);
                json.push(rec);
            }
        }
        from = to + 1;
    }
    let headers = ["seq", "occurred", "kind", "event", "what"];
    let mut out = std::io::stdout().lock();
    let _ = match ctx.format {
        Format::Table => output::table(&mut out, &headers, &rows),
        Format::Csv => output::csv(&mut out, &headers, &rows),
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&json).expect("records encode"));
            Ok(())
        }
    };
    Ok(())
}

/// A partner's own postings (`--nats-partner`), one row per position a record touched: the
/// projector's history service answers only these (other partners' ids are never shown, so an
/// id that matches nothing is not told apart from another partner's).
fn print_postings(format: Format, postings: &[HistoryRow]) -> Result<()> {
    if postings.is_empty() {
        eprintln!("no postings of this partner match (another partner's ids are never shown)");
    }
    let rows: Vec<Vec<String>> = postings
        .iter()
        .map(|p| {
            let movement = serde_json::to_value(p.movement).ok().and_then(|v| v.as_str().map(String::from));
            vec![
                p.seq.to_string(),
                p.occurred_at.get(..10).unwrap_or(&p.occurred_at).to_string(),
                movement.unwrap_or_default(),
                p.party.to_string(),
                p.lot.to_string(),
                p.location.to_string(),
                format_signed_tonnes(p.delta_g),
            ]
        })
        .collect();
    let headers = ["seq", "occurred", "movement", "party", "lot", "location", "delta_t"];
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Table => output::table(&mut out, &headers, &rows),
        Format::Csv => output::csv(&mut out, &headers, &rows),
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(postings).expect("postings encode"));
            Ok(())
        }
    };
    written.map_err(operational)
}

/// Signed grams as tonnes (`-0.020`).
fn format_signed_tonnes(grams: i64) -> String {
    let sign = if grams < 0 { "-" } else { "" };
    format!("{sign}{}", format_tonnes(grams.unsigned_abs(), TABLE_TONNE_DECIMALS))
}
