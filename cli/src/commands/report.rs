//! `report`: the stock report of a partner for a period, cut at the ledger's head.

use super::Ctx;
use crate::args::{Format, ReportArgs};
use crate::error::{operational, usage, Result};
use crate::known::{self, Kind};
use std::io::Write;
use stockpile_ledger::service::access::{self, Identity};
use stockpile_projector::report::{render, Framework, MaterialScope, Period, Report, ReportRequest};
use stockpile_projector::submit::{self, Submitted};

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
    known::check(Kind::Partner, std::slice::from_ref(&partner), None)?;
    Ok(ReportRequest { partner, period, framework, materials })
}

/// `nats`: where `--submit` publishes, and as whom.
pub fn run(ctx: &mut Ctx<'_>, a: &ReportArgs, nats: Option<(&str, Option<&Identity>)>) -> Result<()> {
    let req = request(a)?;
    let report = ctx.backend.report(&req)?;
    if a.submit {
        let (url, identity) = nats.ok_or_else(|| usage("--submit publishes over NATS: pass --nats URL"))?;
        if report.header.provisional && !a.provisional {
            return Err(usage(format!(
                "report {} is provisional: period {} has not ended by ledger time (it ends at the end of {}, UTC); submit it after the period has ended, or pass --provisional to submit it marked provisional",
                report.header.report_id, report.header.period, report.body.period_end
            )));
        }
        return submit(url, identity, &report);
    }
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

/// Publishes `report` to `STOCKPILE_REPORTS` at `url` and says what happened.
fn submit(url: &str, identity: Option<&Identity>, report: &Report) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(operational)?;
    let outcome = runtime.block_on(async {
        let options = access::authenticate(async_nats::ConnectOptions::new(), identity);
        let client = options
            .connect(url)
            .await
            .map_err(|e| operational(format!("cannot reach NATS at {url}: {e}; is the server running?")))?;
        let js = async_nats::jetstream::new(client.clone());
        let outcome = submit::submit(&js, report).await.map_err(operational);
        client.flush().await.map_err(operational)?;
        outcome
    })?;
    let id = &report.header.report_id;
    match outcome {
        Submitted::Published { revision, stream_seq, subject, changes } => {
            let mark = if report.header.provisional { " (provisional: the period has not ended)" } else { "" };
            println!(
                "submitted {id}{mark} as revision {revision} of {} on {subject} (stream seq {stream_seq})",
                report.header.period
            );
            for change in &changes {
                println!("  changed {change}");
            }
        }
        Submitted::Unchanged { revision } => println!(
            "unchanged: revision {revision} of {} has the same body ({}); nothing sent",
            report.header.period, report.header.body_sha256
        ),
    }
    Ok(())
}
