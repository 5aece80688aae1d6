//! `report`: the stock report of a partner for a period, cut at the ledger's head; with
//! `--submit` (over NATS only) the projector service builds and publishes it; with `--out DIR`
//! its Markdown, chart SVGs and HTML are written into DIR (`report::files` names them).

use super::Ctx;
use crate::args::{Format, ReportArgs};
use crate::error::{operational, usage, Result};
use crate::known::{self, Kind};
use std::io::Write;
use std::path::{Path, PathBuf};
use stockpile_projector::report::{files, render, Framework, MaterialScope, Period, Report, ReportRequest};
use stockpile_projector::service::wire::SubmitReply;

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

/// Prints the report, or with `--submit` asks the projector service to publish it.
pub fn run(ctx: &mut Ctx<'_>, a: &ReportArgs) -> Result<()> {
    let req = request(a)?;
    if a.submit {
        return submitted(&ctx.backend.submit_report(&req, a.provisional)?);
    }
    let report = ctx.backend.report(&req)?;
    if let Some(dir) = &a.out {
        return write_files(dir, &report, ctx.format);
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

/// Writes the report's files into `dir` (created if missing; a file there of the same name is
/// replaced, any other left alone) and prints their paths: one a line, or with `--format json`
/// a JSON array. `dir` naming anything but a directory is refused before anything is written.
fn write_files(dir: &Path, report: &Report, format: Format) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(usage(format!(
            "--out {}: not a directory (name a directory to write the report into)",
            dir.display()
        )));
    }
    let files = files::files(report).map_err(|e| operational(format!("the report's files: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| operational(format!("creating {}: {e}", dir.display())))?;
    let mut written: Vec<PathBuf> = Vec::with_capacity(files.len());
    for f in files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.bytes).map_err(|e| operational(format!("writing {}: {e}", path.display())))?;
        written.push(path);
    }
    let mut out = std::io::stdout().lock();
    let text = match format {
        Format::Json => {
            let paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            format!("{}\n", serde_json::to_string_pretty(&paths).map_err(|e| operational(e.to_string()))?)
        }
        Format::Table | Format::Csv => written.iter().map(|p| format!("{}\n", p.display())).collect(),
    };
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(operational(format!("writing the paths: {e}"))),
        _ => Ok(()),
    }
}

/// Says what the service's submission did.
fn submitted(r: &SubmitReply) -> Result<()> {
    let id = &r.report_id;
    if r.published {
        let mark = if r.provisional { " (provisional: the period has not ended)" } else { "" };
        let seq = r.stream_seq.map(|s| format!(" (stream seq {s})")).unwrap_or_default();
        println!("submitted {id}{mark} as revision {} of {} on {}{seq}", r.revision, r.period, r.subject);
        for change in &r.changes {
            println!("  changed {change}");
        }
    } else {
        println!(
            "unchanged: revision {} of {} has the same body ({}); nothing sent",
            r.revision, r.period, r.body_sha256
        );
    }
    println!("  cut at record {}, chain head {}", r.cut_seq, r.chain_head);
    Ok(())
}
