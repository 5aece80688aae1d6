//! `report`: the stock report of a partner for a period, cut at the ledger's head.

use super::Ctx;
use crate::args::{Format, ReportArgs};
use crate::error::{operational, usage, Result};
use std::io::Write;
use stockpile_projector::report::{render, Framework, MaterialScope, Period, ReportRequest};

/// The request the arguments name, checked before any ledger is opened.
pub fn request(a: &ReportArgs) -> Result<ReportRequest> {
    let period: Period =
        a.period.parse().map_err(|e: stockpile_projector::report::PeriodError| usage(e.to_string()))?;
    let framework: Framework = a.framework.parse().map_err(usage)?;
    let materials = match a.materials.as_deref() {
        None => None,
        Some("strategic") => Some(MaterialScope::Strategic),
        Some("critical") => Some(MaterialScope::Critical),
        Some("all") => Some(MaterialScope::All),
        Some(other) => {
            return Err(usage(format!("unknown --materials {other:?}: use strategic, critical or all")));
        }
    };
    let partner = a.partner.trim().to_ascii_uppercase();
    if partner == "EL" {
        return Err(usage(
            "partner EL: the ledger spells Greece GR (reports to the Commission say EL): pass --partner GR",
        ));
    }
    Ok(ReportRequest { partner, period, framework, materials })
}

pub fn run(ctx: &mut Ctx<'_>, a: &ReportArgs) -> Result<()> {
    let req = request(a)?;
    let report = ctx.backend.report(&req)?;
    let bytes = match ctx.format {
        Format::Json => render::json(&report).map_err(operational)?,
        Format::Csv => render::csv(&report).into_bytes(),
        Format::Table => render::markdown(&report).into_bytes(),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(&bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(operational(format!("writing the report: {e}"))),
        _ => Ok(()),
    }
}
