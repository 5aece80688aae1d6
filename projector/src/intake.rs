//! The Commission's intake: what arrived on `STOCKPILE_REPORTS`, checked against the ledger,
//! and what it adds up to.
//!
//! - [`read_stream`] reads every submitted revision (at most [`submit::SUBMITTED_SCAN_MAX`]);
//! - [`Arrival::check`] is the check on arrival: a report is **accepted** only when its body
//!   hashes to its `body_sha256`, its headers agree with its body, and record `cut_seq` of the
//!   ledger (read over `stockpile.v1.ledger.range`, its hash recomputed) has hash
//!   `chain_head`; otherwise it is **refused** with the reason, or **unchecked** when the
//!   ledger could not be asked;
//! - [`missing`] and [`aggregate`] are pure: arrivals in, figures out. An aggregate sums only
//!   accepted reports, the last accepted revision per partner, and names each one it sums.

use crate::report::{Framework, Period, Report};
use crate::submit::{self, HEADER_CHANGES, HEADER_REVISION, HEADER_SUPERSEDES, REPORTS_STREAM, SUBMITTED_SCAN_MAX};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stockpile_ledger::canonical;
use stockpile_ledger::domain::Reference;

/// The outcome of the check on arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum Check {
    Accepted,
    Refused(String),
    /// The ledger could not be asked (not running, or this user may not read its range).
    Unchecked(String),
}

impl Check {
    pub fn label(&self) -> String {
        match self {
            Check::Accepted => "accepted".into(),
            Check::Refused(why) => format!("refused: {why}"),
            Check::Unchecked(why) => format!("unchecked: {why}"),
        }
    }
}

/// One submitted revision as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// The message's sequence in `STOCKPILE_REPORTS`.
    pub stream_seq: u64,
    pub received_at: DateTime<Utc>,
    pub report_id: String,
    pub framework: Framework,
    pub partner: String,
    pub period: Period,
    pub revision: u64,
    pub cut_seq: u64,
    pub chain_head: String,
    pub provisional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<String>,
    pub check: Check,
    #[serde(skip)]
    pub report: Option<Report>,
}

/// Why the stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{REPORTS_STREAM}: {0}")]
    Stream(String),
    #[error("more than {SUBMITTED_SCAN_MAX} messages on {REPORTS_STREAM}: too many to read at once")]
    TooMany,
}

/// Every message of `STOCKPILE_REPORTS`, in stream order, unchecked (a message that is not a
/// report is kept, refused with the reason).
pub async fn read_stream(js: &async_nats::jetstream::Context) -> Result<Vec<Arrival>, IntakeError> {
    let mut stream = match js.get_stream(REPORTS_STREAM).await {
        Ok(s) => s,
        Err(e) if e.to_string().contains("not found") => return Ok(Vec::new()),
        Err(e) => return Err(IntakeError::Stream(e.to_string())),
    };
    let info = stream.info().await.map_err(|e| IntakeError::Stream(e.to_string()))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    if info.state.messages == 0 {
        return Ok(Vec::new());
    }
    if last.saturating_sub(first) >= SUBMITTED_SCAN_MAX {
        return Err(IntakeError::TooMany);
    }
    let mut out = Vec::new();
    for seq in first..=last {
        let m = stream.get_raw_message(seq).await.map_err(|e| IntakeError::Stream(e.to_string()))?;
        let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_string());
        let received_at =
            i64::try_from(m.time.unix_timestamp_nanos()).map(DateTime::from_timestamp_nanos).unwrap_or_default();
        let revision = header(HEADER_REVISION).and_then(|r| r.parse().ok()).unwrap_or(0);
        let (supersedes, changes) = (header(HEADER_SUPERSEDES), header(HEADER_CHANGES));
        match serde_json::from_slice::<Report>(&m.payload) {
            Ok(report) => {
                let h = &report.header;
                let mut check = Check::Accepted;
                if m.subject.as_str() != submit::report_subject(&report) {
                    check = Check::Refused(format!("published on {}, not its partner's subject", m.subject));
                } else if revision == 0 {
                    check = Check::Refused("no Stockpile-Revision header".into());
                } else {
                    match canonical::to_vec(&report.body) {
                        Ok(bytes) if canonical::hex(&canonical::sha256(&bytes)) == h.body_sha256 => {}
                        _ => check = Check::Refused("the body does not hash to its body_sha256".into()),
                    }
                }
                out.push(Arrival {
                    stream_seq: seq,
                    received_at,
                    report_id: h.report_id.clone(),
                    framework: h.framework,
                    partner: h.partner.clone(),
                    period: h.period,
                    revision,
                    cut_seq: h.cut_seq,
                    chain_head: h.chain_head.clone(),
                    provisional: h.provisional,
                    supersedes,
                    changes,
                    check,
                    report: Some(report),
                });
            }
            Err(e) => tracing::warn!(seq, error = %e, "a message of {REPORTS_STREAM} is not a report; skipped"),
        }
    }
    Ok(out)
}

impl Arrival {
    /// Checks the chain head against the ledger's record `cut_seq`: `record` is what the
    /// ledger's range returned for it (`None`: the log has no such record), or why it could
    /// not be asked. A report already refused stays refused.
    pub fn check(&mut self, record: Result<Option<&[u8]>, String>) {
        if self.check != Check::Accepted {
            return;
        }
        self.check = match record {
            Err(why) => Check::Unchecked(why),
            Ok(None) => Check::Refused(format!("the ledger has no record {} (the report claims it)", self.cut_seq)),
            Ok(Some(bytes)) => match crate::fold::decode(bytes) {
                Err(e) => Check::Refused(format!("record {} of the ledger does not decode: {e}", self.cut_seq)),
                Ok(d) if d.record.seq != self.cut_seq => {
                    Check::Refused(format!("the ledger answered record {} for {}", d.record.seq, self.cut_seq))
                }
                Ok(d) if canonical::hex(&d.hash) != self.chain_head => Check::Refused(format!(
                    "chain head {} is not in the log: record {} has hash {}",
                    self.chain_head,
                    self.cut_seq,
                    canonical::hex(&d.hash)
                )),
                Ok(_) => Check::Accepted,
            },
        };
    }
}

/// The series a report id belongs to (framework, partner, period), from any of its revisions.
pub fn series_of<'a>(arrivals: &'a [Arrival], report_id: &str) -> Option<(Framework, &'a str, Period)> {
    arrivals.iter().find(|a| a.report_id == report_id).map(|a| (a.framework, a.partner.as_str(), a.period))
}

/// Revision `revision` of the series of `report_id` (its own revision when `None`).
pub fn revision_of<'a>(arrivals: &'a [Arrival], report_id: &str, revision: Option<u64>) -> Option<&'a Arrival> {
    let Some(revision) = revision else {
        return arrivals.iter().rev().find(|a| a.report_id == report_id);
    };
    let (framework, partner, period) = series_of(arrivals, report_id)?;
    arrivals
        .iter()
        .rev()
        .find(|a| a.framework == framework && a.partner == partner && a.period == period && a.revision == revision)
}

/// A partner of the framework without an accepted, final report of `period` (or whose first
/// one arrived after `deadline`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    pub partner: String,
    /// `missing`, `provisional_only` or `late`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}

/// Which members of `framework` (the reference list, spelled as on its reports) have not
/// submitted an accepted final report of `period` by `deadline`.
pub fn missing(
    arrivals: &[Arrival],
    framework: Framework,
    period: Period,
    deadline: Option<DateTime<Utc>>,
) -> Vec<Missing> {
    let mut out = Vec::new();
    for partner in Reference::get().partners() {
        let member = match framework {
            Framework::Eu => partner.eu,
            Framework::Iea => partner.iea,
            Framework::Nato => partner.nato,
        };
        if !member {
            continue;
        }
        let code = match framework {
            Framework::Eu => partner.eu_code.clone(),
            _ => partner.code.to_string(),
        };
        let of: Vec<&Arrival> = arrivals
            .iter()
            .filter(|a| a.framework == framework && a.period == period && a.partner == code)
            .filter(|a| a.check == Check::Accepted)
            .collect();
        let first_final = of.iter().find(|a| !a.provisional);
        let (status, at) = match first_final {
            Some(a) if deadline.is_some_and(|d| a.received_at > d) => ("late", Some(a.received_at)),
            Some(_) => continue,
            None if !of.is_empty() => ("provisional_only", of.last().map(|a| a.received_at)),
            None => ("missing", None),
        };
        out.push(Missing { partner: code, status: status.into(), received_at: at });
    }
    out
}

/// One report an aggregate sums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub partner: String,
    pub report_id: String,
    pub revision: u64,
    pub provisional: bool,
}

/// One State's part of a material's total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub partner: String,
    pub gross_g: i64,
    pub contained_g: i64,
    /// Of the total gross, percent with 2 decimals (rounded half up); `-` when the total is 0.
    pub share_pct: String,
    pub report_id: String,
    pub revision: u64,
}

/// A material's sum over the States.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialTotal {
    pub material: String,
    pub gross_g: i64,
    pub gross_t: String,
    pub contained_g: i64,
    pub contained_t: String,
    pub shares: Vec<Share>,
    /// Withheld notifications (national security): counted, never quantified.
    pub withheld_notices: u64,
}

/// What the States' reports of a framework and period add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    pub framework: Framework,
    pub period: Period,
    /// Every report summed: the last accepted revision of each partner.
    pub sources: Vec<Source>,
    pub materials: Vec<MaterialTotal>,
}

/// Sums the last accepted revision of each partner's report of `framework` and `period`.
pub fn aggregate(arrivals: &[Arrival], framework: Framework, period: Period) -> Aggregate {
    let mut last: BTreeMap<&str, &Arrival> = BTreeMap::new();
    for a in arrivals.iter().filter(|a| a.framework == framework && a.period == period && a.check == Check::Accepted) {
        if last.get(a.partner.as_str()).is_none_or(|l| a.revision >= l.revision) {
            last.insert(a.partner.as_str(), a);
        }
    }
    let mut materials: BTreeMap<String, MaterialTotal> = BTreeMap::new();
    let mut sources = Vec::new();
    for (partner, a) in &last {
        let Some(report) = &a.report else { continue };
        sources.push(Source {
            partner: partner.to_string(),
            report_id: a.report_id.clone(),
            revision: a.revision,
            provisional: a.provisional,
        });
        for m in &report.body.materials {
            let t = entry(&mut materials, &m.material);
            t.gross_g += m.stock.gross_g;
            t.contained_g += m.stock.contained_g;
            t.shares.push(Share {
                partner: partner.to_string(),
                gross_g: m.stock.gross_g,
                contained_g: m.stock.contained_g,
                share_pct: String::new(),
                report_id: a.report_id.clone(),
                revision: a.revision,
            });
        }
        for w in &report.body.withheld {
            entry(&mut materials, &w.material).withheld_notices += 1;
        }
    }
    let materials = materials
        .into_values()
        .map(|mut t| {
            t.gross_t = crate::query::tonnes(t.gross_g);
            t.contained_t = crate::query::tonnes(t.contained_g);
            for s in &mut t.shares {
                s.share_pct = percent(s.gross_g, t.gross_g);
            }
            t
        })
        .collect();
    Aggregate { framework, period, sources, materials }
}

fn entry<'a>(materials: &'a mut BTreeMap<String, MaterialTotal>, material: &str) -> &'a mut MaterialTotal {
    materials.entry(material.to_string()).or_insert_with(|| MaterialTotal {
        material: material.to_string(),
        gross_g: 0,
        gross_t: String::new(),
        contained_g: 0,
        contained_t: String::new(),
        shares: Vec::new(),
        withheld_notices: 0,
    })
}

/// `part / whole` in percent with 2 decimals, rounded half up, in integers; `-` for a zero whole.
pub fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let (part, whole) = (i128::from(part), i128::from(whole));
    let hundredths = (part * 20_000 + whole) / (2 * whole);
    format!("{}.{:02}", hundredths / 100, (hundredths % 100).abs())
}

/// Bar chart of each material's gross stock by State (SVG, integer geometry): one group of
/// bars per material, each bar's height its share of the largest State stock.
pub fn chart_svg(aggregate: &Aggregate) -> String {
    const BAR: i64 = 18;
    const GAP: i64 = 30;
    const HEIGHT: i64 = 200;
    const TOP: i64 = 30;
    let max = aggregate.materials.iter().flat_map(|m| m.shares.iter().map(|s| s.gross_g)).max().unwrap_or(0).max(1);
    let bars: usize = aggregate.materials.iter().map(|m| m.shares.len()).sum();
    let width = 40 + (bars as i64) * BAR + (aggregate.materials.len() as i64) * GAP;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"10\">\n<text x=\"10\" y=\"16\">{} {}: gross stock per material by State</text>\n",
        TOP + HEIGHT + 50,
        aggregate.framework.as_str(),
        aggregate.period
    );
    let mut x = 30;
    for m in &aggregate.materials {
        let start = x;
        for s in &m.shares {
            let h = (i128::from(s.gross_g.max(0)) * i128::from(HEIGHT) / i128::from(max)) as i64;
            svg.push_str(&format!(
                "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h}\" fill=\"#4a7ab5\"><title>{} {}: {} t</title></rect>\n<text x=\"{x}\" y=\"{}\">{}</text>\n",
                TOP + HEIGHT - h,
                BAR - 2,
                s.partner,
                m.material,
                crate::query::tonnes(s.gross_g),
                TOP + HEIGHT + 12,
                s.partner
            ));
            x += BAR;
        }
        svg.push_str(&format!("<text x=\"{start}\" y=\"{}\">{}</text>\n", TOP + HEIGHT + 28, m.material));
        x += GAP;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percent_rounds_half_up_in_integers() {
        assert_eq!(percent(1, 3), "33.33");
        assert_eq!(percent(2, 3), "66.67");
        assert_eq!(percent(1, 8), "12.50");
        assert_eq!(percent(5, 5), "100.00");
        assert_eq!(percent(0, 0), "-");
    }
}
