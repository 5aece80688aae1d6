//! `reports`: the Commission's intake of submitted reports, over NATS. Every report is
//! checked on arrival against the ledger's record at its cut (`projector::intake`); a refused
//! one is listed with the reason and never summed.

use crate::args::{Format, ReportsVerb};
use crate::error::{operational, usage, Result};
use crate::output;
use crate::remote::Remote;
use chrono::{DateTime, NaiveDate, Utc};
use std::io::Write;
use stockpile_projector::intake::{self, Arrival};
use stockpile_projector::report::{render, Framework, Period};
use stockpile_projector::submit;

pub fn run(remote: &Remote, format: Format, verb: &ReportsVerb) -> Result<()> {
    let arrivals = remote.arrivals()?;
    let mut out = std::io::stdout().lock();
    let written = match verb {
        ReportsVerb::List { period, partner, framework } => {
            let period = period.as_deref().map(parse_period).transpose()?;
            let framework = framework.as_deref().map(parse_framework).transpose()?;
            let partner = partner.as_deref().map(str::to_ascii_uppercase);
            let rows: Vec<&Arrival> = arrivals
                .iter()
                .filter(|a| period.is_none_or(|p| a.period == p))
                .filter(|a| framework.is_none_or(|f| a.framework == f))
                .filter(|a| partner.as_deref().is_none_or(|p| a.partner == p))
                .collect();
            list(&mut out, format, &rows)
        }
        ReportsVerb::Show { id, revision } => {
            let a = intake::revision_of(&arrivals, id, *revision).ok_or_else(|| not_found(id, *revision))?;
            let report = a.report.as_ref().ok_or_else(|| not_found(id, *revision))?;
            if format != Format::Json {
                eprintln!("{} revision {}: {}", a.report_id, a.revision, a.check.label());
            }
            let bytes = match format {
                Format::Json => render::json(report).map_err(operational)?,
                Format::Csv => render::csv(report).into_bytes(),
                Format::Table => render::markdown(report).into_bytes(),
            };
            out.write_all(&bytes)
        }
        ReportsVerb::Diff { id, from, to } => {
            let old = intake::revision_of(&arrivals, id, Some(*from)).ok_or_else(|| not_found(id, Some(*from)))?;
            let new = intake::revision_of(&arrivals, id, Some(*to)).ok_or_else(|| not_found(id, Some(*to)))?;
            let (Some(a), Some(b)) = (&old.report, &new.report) else { return Err(not_found(id, Some(*from))) };
            let changes = submit::changes(a, b);
            let rows: Vec<Vec<String>> = changes
                .iter()
                .map(|c| {
                    let (pointer, values) = c.split_once(": ").unwrap_or((c.as_str(), ""));
                    let (before, after) = values.split_once(" -> ").unwrap_or((values, ""));
                    vec![pointer.to_string(), before.to_string(), after.to_string()]
                })
                .collect();
            match format {
                Format::Json => json_line(
                    &mut out,
                    &serde_json::json!({"from": old.report_id, "from_revision": old.revision, "to": new.report_id, "to_revision": new.revision, "changes": changes}),
                ),
                Format::Csv => output::csv(&mut out, &["pointer", "from", "to"], &rows),
                Format::Table => output::table(&mut out, &["pointer", "from", "to"], &rows),
            }
        }
        ReportsVerb::Missing { period, framework, deadline } => {
            let (period, framework) = (parse_period(period)?, parse_framework(framework)?);
            let deadline = deadline.as_deref().map(parse_deadline).transpose()?;
            let missing = intake::missing(&arrivals, framework, period, deadline);
            let rows: Vec<Vec<String>> = missing
                .iter()
                .map(|m| vec![m.partner.clone(), m.status.clone(), m.received_at.map(stamp).unwrap_or_default()])
                .collect();
            match format {
                Format::Json => json_line(&mut out, &missing),
                Format::Csv => output::csv(&mut out, &["partner", "status", "received_at"], &rows),
                Format::Table => output::table(&mut out, &["partner", "status", "received_at"], &rows),
            }
        }
        ReportsVerb::Aggregate { framework, period, chart } => {
            let (period, framework) = (parse_period(period)?, parse_framework(framework)?);
            let aggregate = intake::aggregate(&arrivals, framework, period);
            if let Some(path) = chart {
                write_chart(path, &intake::chart_svg(&aggregate))?;
            }
            let headers = [
                "material",
                "partner",
                "gross_g",
                "contained_g",
                "share_pct",
                "withheld",
                "consumption_pct",
                "days_of_cover",
                "report",
                "revision",
            ];
            // A total's coverage, with how many of its States registered the figure.
            let coverage = |c: &intake::Coverage| match &c.value {
                Some(v) => format!("{v} ({} of {})", c.states.len(), c.states.len() + c.states_without_figure.len()),
                None => "-".into(),
            };
            let mut rows = Vec::new();
            for m in &aggregate.materials {
                for s in &m.shares {
                    rows.push(vec![
                        m.material.clone(),
                        s.partner.clone(),
                        s.gross_g.to_string(),
                        s.contained_g.to_string(),
                        s.share_pct.clone(),
                        String::new(),
                        String::new(),
                        String::new(),
                        s.report_id.clone(),
                        s.revision.to_string(),
                    ]);
                }
                rows.push(vec![
                    m.material.clone(),
                    "total".into(),
                    m.gross_g.to_string(),
                    m.contained_g.to_string(),
                    if m.gross_g == 0 { "-".into() } else { "100.00".into() },
                    m.withheld_notices.to_string(),
                    coverage(&m.consumption),
                    coverage(&m.days_of_cover),
                    String::new(),
                    String::new(),
                ]);
            }
            match format {
                Format::Json => json_line(&mut out, &aggregate),
                Format::Csv => output::csv(&mut out, &headers, &rows),
                Format::Table => output::table(&mut out, &headers, &rows),
            }
        }
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(operational(format!("writing: {e}"))),
        _ => Ok(()),
    }
}

fn list(out: &mut dyn Write, format: Format, rows: &[&Arrival]) -> std::io::Result<()> {
    if format == Format::Json {
        return json_line(out, &rows);
    }
    let headers = [
        "report",
        "partner",
        "framework",
        "period",
        "revision",
        "received_at",
        "cut_seq",
        "chain_head",
        "status",
        "check",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            vec![
                a.report_id.clone(),
                a.partner.clone(),
                a.framework.as_str().to_string(),
                a.period.to_string(),
                a.revision.to_string(),
                stamp(a.received_at),
                a.cut_seq.to_string(),
                a.chain_head.clone(),
                if a.provisional { "provisional" } else { "final" }.to_string(),
                a.check.label(),
            ]
        })
        .collect();
    match format {
        Format::Csv => output::csv(out, &headers, &table),
        _ => output::table(out, &headers, &table),
    }
}

fn json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value).expect("encodes"))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn not_found(id: &str, revision: Option<u64>) -> crate::error::CliError {
    let what = revision.map(|r| format!(" revision {r}")).unwrap_or_default();
    usage(format!("no report {id}{what} on STOCKPILE_REPORTS: see `stockpile reports list`"))
}

fn parse_period(text: &str) -> Result<Period> {
    text.parse().map_err(|e: stockpile_projector::report::PeriodError| usage(e.to_string()))
}

fn parse_framework(text: &str) -> Result<Framework> {
    text.parse().map_err(usage)
}

/// An RFC 3339 instant, or a date meaning the end of that day (UTC).
fn parse_deadline(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| usage(format!("--deadline {text:?}: use a date (2026-05-15) or an RFC 3339 instant")))?;
    Ok(date.and_hms_opt(23, 59, 59).expect("a valid time").and_utc())
}

/// Writes the aggregate's chart to `path`: PNG when its name ends in `.png` (rendered from the
/// SVG by resvg, at the SVG's own size, with the system fonts), else the SVG itself.
fn write_chart(path: &std::path::Path, svg: &str) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| operational(format!("writing the chart {}: {e}", path.display()));
    let is_png = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let bytes = if is_png { png(svg).map_err(|e| failed(&e))? } else { svg.as_bytes().to_vec() };
    std::fs::write(path, bytes).map_err(|e| failed(&e))
}

/// `svg` rasterised to PNG.
fn png(svg: &str) -> std::result::Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| format!("the chart's SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| format!("a {}×{} image cannot be made", size.width(), size.height()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| e.to_string())
}
