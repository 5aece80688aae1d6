//! `list`: the ids an operator may name — materials and partners from the compiled reference
//! lists, parties, facilities and lots from the log — as a table, CSV or JSON.

use super::Ctx;
use crate::args::{Format, ListWhat};
use crate::error::Result;
use crate::output;
use serde::Serialize;
use stockpile_ledger::domain::Reference;
use stockpile_projector::Registry;

/// Whether `what` is read from the log (and so needs a backend).
pub fn needs_log(what: ListWhat) -> bool {
    !matches!(what, ListWhat::Materials | ListWhat::Partners)
}

/// Materials or partners: no ledger needed.
pub fn reference(format: Format, what: ListWhat) -> Result<()> {
    let reference = Reference::get();
    match what {
        ListWhat::Materials => {
            let items: Vec<_> = reference.materials().collect();
            let headers = ["id", "name", "strategic", "critical", "nato", "unit"];
            let rows = items
                .iter()
                .map(|m| {
                    let nato = m.nato_defence_critical.map_or("-".to_string(), yes_no);
                    vec![
                        m.id.to_string(),
                        m.name.clone(),
                        yes_no(m.crma_strategic),
                        yes_no(m.crma_critical),
                        nato,
                        wire(&m.typical_unit),
                    ]
                })
                .collect();
            print(format, &items, &headers, rows)
        }
        ListWhat::Partners => {
            let items: Vec<_> = reference.partners().collect();
            let headers = ["code", "name", "eu", "iea", "nato"];
            let rows = items
                .iter()
                .map(|p| vec![p.code.to_string(), p.name.clone(), yes_no(p.eu), yes_no(p.iea), yes_no(p.nato)])
                .collect();
            print(format, &items, &headers, rows)
        }
        _ => unreachable!("read from the log: see `run`"),
    }
}

/// Parties, facilities or lots, as the log registered or created them (in that order).
pub fn run(ctx: &mut Ctx<'_>, what: ListWhat) -> Result<()> {
    if !needs_log(what) {
        return reference(ctx.format, what);
    }
    let registry = ctx.backend.registry()?;
    from_registry(ctx.format, what, &registry)
}

fn from_registry(format: Format, what: ListWhat, registry: &Registry) -> Result<()> {
    match what {
        ListWhat::Parties => {
            let items: Vec<_> = registry.parties().collect();
            let headers = ["id", "partner", "holder_type", "name"];
            let rows = items
                .iter()
                .map(|p| vec![p.id.to_string(), p.partner.to_string(), wire(&p.holder_type), p.name.clone()])
                .collect();
            print(format, &items, &headers, rows)
        }
        ListWhat::Facilities => {
            let items: Vec<_> = registry.facilities().collect();
            let headers = ["id", "country", "name"];
            let rows = items.iter().map(|f| vec![f.id.to_string(), f.country.to_string(), f.name.clone()]).collect();
            print(format, &items, &headers, rows)
        }
        ListWhat::Lots => {
            let items: Vec<_> = registry.lots().collect();
            let headers = ["id", "material", "form", "purity_ppm", "origin"];
            let rows = items
                .iter()
                .map(|l| {
                    let (id, material, origin) = (l.id.to_string(), l.material.to_string(), l.origin.to_string());
                    vec![id, material, l.form.as_str().into(), l.purity_ppm.to_string(), origin]
                })
                .collect();
            print(format, &items, &headers, rows)
        }
        ListWhat::Materials | ListWhat::Partners => reference(format, what),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// A serde enum's wire name (`t`, `kg`, `ozt`).
fn wire(value: &impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// JSON: the items as the ledger spells them; table or CSV: `rows` under `headers`.
fn print<T: Serialize>(format: Format, items: &[T], headers: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    // a closed pipe (`| head`) is not an error
    let _ = match format {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(items).expect("reference and registry entries encode"));
            Ok(())
        }
        Format::Csv => output::csv(&mut out, headers, &rows),
        Format::Table => output::table(&mut out, headers, &rows),
    };
    Ok(())
}
