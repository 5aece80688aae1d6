//! The Commission's intake: what arrived on `STOCKPILE_REPORTS`, checked against the ledger,
//! and what it adds up to.
//!
//! - [`read_stream`] reads every submitted revision (at most [`submit::SUBMITTED_SCAN_MAX`]);
//! - [`cut_proof`] and [`Arrival::check_cut`] are the check on arrival: a report is
//!   **accepted** only when its body hashes to its `body_sha256`, its headers agree with its
//!   body, and record `cut_seq` is proved, by an RFC 6962 inclusion proof (`ledger.proof`)
//!   checked against a **signed checkpoint** of the ledger, to have hash `chain_head`;
//!   otherwise it is **refused** with the reason, or **unchecked** when no signed checkpoint
//!   covers `cut_seq` yet or the ledger could not be asked. The proof carries hashes only, so
//!   the check needs no right to read the ledger's records;
//! - [`missing`] and [`aggregate`] are pure: arrivals in, figures out. An aggregate sums only
//!   accepted reports, the last accepted revision per partner, and names each one it sums.

use crate::report::{Framework, Period, Report};
use crate::submit::{self, HEADER_CHANGES, HEADER_REVISION, HEADER_SUPERSEDES, REPORTS_STREAM, SUBMITTED_SCAN_MAX};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stockpile_ledger::audit::checkpoint::Checkpoint;
use stockpile_ledger::audit::proof::InclusionProof;
use stockpile_ledger::canonical;
use stockpile_ledger::domain::Reference;

/// The outcome of the check on arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum Check {
    Accepted,
    Refused(String),
    /// Not decided yet: no signed checkpoint covers the cut, or the ledger could not be asked.
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

/// What the ledger proved about record `cut_seq` of a report: the input of
/// [`Arrival::check_cut`], made by [`cut_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutProof {
    /// Record `seq` has hash `record_hash` (hex) in the signed tree of `tree_size` records.
    Proved { seq: u64, record_hash: String, tree_size: u64 },
    /// The latest signed checkpoint covers records `1..=tree_size` only.
    NotCovered { tree_size: u64 },
    /// No proof could be had: why.
    Unavailable(String),
}

/// Proves record `seq` against `checkpoint`: `prove(tree_size)` asks the ledger for the
/// inclusion proof of `seq` in the tree of `tree_size` records, which is then checked against
/// the checkpoint's root and signature (the signature under the key the checkpoint names;
/// pinning that key is the caller's part). A proof that does not hold proves nothing.
pub fn cut_proof(
    seq: u64,
    checkpoint: &Checkpoint,
    prove: impl FnOnce(u64) -> Result<InclusionProof, String>,
) -> CutProof {
    if seq == 0 || seq > checkpoint.tree_size {
        return CutProof::NotCovered { tree_size: checkpoint.tree_size };
    }
    let proof = match prove(checkpoint.tree_size) {
        Ok(proof) => proof,
        Err(why) => return CutProof::Unavailable(format!("no inclusion proof of record {seq}: {why}")),
    };
    if proof.seq != seq {
        return CutProof::Unavailable(format!("the ledger answered a proof of record {} for {seq}", proof.seq));
    }
    match proof.verify(checkpoint) {
        Ok(()) => {
            CutProof::Proved { seq, record_hash: canonical::hex(&proof.record_hash), tree_size: checkpoint.tree_size }
        }
        Err(e) => CutProof::Unavailable(format!("the ledger's inclusion proof of record {seq} does not hold: {e}")),
    }
}

impl Arrival {
    /// Decides the check on arrival from what the ledger proved about record `cut_seq`
    /// ([`cut_proof`]). A report already refused stays refused.
    pub fn check_cut(&mut self, proof: &CutProof) {
        if self.check != Check::Accepted {
            return;
        }
        self.check = match proof {
            CutProof::Unavailable(why) => Check::Unchecked(why.clone()),
            CutProof::NotCovered { tree_size } => Check::Unchecked(format!(
                "no signed checkpoint covers record {} yet (the latest covers 1..={tree_size}); the ledger signs one every interval in which the log grew",
                self.cut_seq
            )),
            CutProof::Proved { seq, .. } if *seq != self.cut_seq => {
                Check::Unchecked(format!("a proof of record {seq} is not one of record {}", self.cut_seq))
            }
            CutProof::Proved { record_hash, .. } if *record_hash == self.chain_head => Check::Accepted,
            CutProof::Proved { record_hash, tree_size, .. } => Check::Refused(format!(
                "chain head {} is not in the log: record {} has hash {record_hash} in the signed tree of {tree_size} records",
                self.chain_head, self.cut_seq
            )),
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
    /// The States' stock against the sum of their registered annual consumption figures.
    pub consumption: Coverage,
    /// The States' stock against the sum of their registered annual net-import figures.
    pub days_of_cover: Coverage,
}

/// A material's total set against the annual figures the States registered (as their reports
/// carry them): only the States whose report has a registered, non-zero figure count, on both
/// sides of the ratio, so a State without one neither dilutes nor inflates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// The year of the figures: the calendar year before the period's end.
    pub year: i32,
    /// The States counted (a registered, non-zero figure of `year`), and those without one.
    pub states: Vec<String>,
    pub states_without_figure: Vec<String>,
    /// Their gross stock and their figures, summed (grams).
    pub stock_g: i64,
    pub figure_g: i64,
    /// `consumption`: `stock_g × 100 / figure_g`, percent, 2 decimals; `days_of_cover`:
    /// `stock_g × days(year) / figure_g`, days, 1 decimal (days 366 in a leap year, else 365);
    /// both rounded half away from zero. Absent when no State counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
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
            let t = entry(&mut materials, &m.material, period);
            t.gross_g += m.stock.gross_g;
            t.contained_g += m.stock.contained_g;
            t.consumption.add(partner, m.stock.gross_g, &m.consumption);
            t.days_of_cover.add(partner, m.stock.gross_g, &m.days_of_cover);
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
            entry(&mut materials, &w.material, period).withheld_notices += 1;
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
            t.consumption.value = t.consumption.ratio(100, 2);
            let days = i128::from(crate::report::days_in_year(t.days_of_cover.year));
            t.days_of_cover.value = t.days_of_cover.ratio(days, 1);
            t
        })
        .collect();
    Aggregate { framework, period, sources, materials }
}

impl Coverage {
    fn new(year: i32) -> Coverage {
        Coverage { year, states: Vec::new(), states_without_figure: Vec::new(), stock_g: 0, figure_g: 0, value: None }
    }

    /// Counts `partner`'s gross stock when its report has a registered, non-zero figure.
    fn add(&mut self, partner: &str, gross_g: i64, figure: &crate::report::Ratio) {
        match figure.figure_g {
            Some(f) if figure.status == "registered" && f > 0 && figure.year == self.year => {
                self.states.push(partner.to_string());
                self.stock_g += gross_g;
                self.figure_g += f;
            }
            _ => self.states_without_figure.push(partner.to_string()),
        }
    }

    fn ratio(&self, scale: i128, decimals: u32) -> Option<String> {
        (self.figure_g > 0)
            .then(|| crate::report::decimal(i128::from(self.stock_g) * scale, i128::from(self.figure_g), decimals))
    }
}

fn entry<'a>(
    materials: &'a mut BTreeMap<String, MaterialTotal>,
    material: &str,
    period: Period,
) -> &'a mut MaterialTotal {
    let year = period.year() - 1;
    materials.entry(material.to_string()).or_insert_with(|| MaterialTotal {
        material: material.to_string(),
        gross_g: 0,
        gross_t: String::new(),
        contained_g: 0,
        contained_t: String::new(),
        shares: Vec::new(),
        withheld_notices: 0,
        consumption: Coverage::new(year),
        days_of_cover: Coverage::new(year),
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
    use super::*;
    use stockpile_ledger::audit::checkpoint::LedgerKey;
    use stockpile_ledger::merkle::{leaf_hash, MerkleLog};

    /// Three records with hashes [1; 32], [2; 32], [3; 32] under a signed checkpoint.
    fn signed_log() -> (MerkleLog, Checkpoint) {
        let mut log = MerkleLog::new();
        for i in 1..=3u8 {
            log.push(leaf_hash(&[i; 32]));
        }
        let at = DateTime::parse_from_rfc3339("2026-04-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let checkpoint = LedgerKey::from_secret([9; 32]).sign(3, log.root(), at);
        (log, checkpoint)
    }

    fn arrival(cut_seq: u64, chain_head: [u8; 32]) -> Arrival {
        Arrival {
            stream_seq: 1,
            received_at: DateTime::from_timestamp(0, 0).unwrap(),
            report_id: "EU-NL-2026-Q1-2".into(),
            framework: Framework::Eu,
            partner: "NL".into(),
            period: "2026-Q1".parse().unwrap(),
            revision: 1,
            cut_seq,
            chain_head: canonical::hex(&chain_head),
            provisional: false,
            supersedes: None,
            changes: None,
            check: Check::Accepted,
            report: None,
        }
    }

    #[test]
    fn a_cut_is_accepted_only_when_proved_in_the_signed_tree_with_its_chain_head() {
        let (log, checkpoint) = signed_log();
        let honest = |seq: u64, size: u64| -> Result<InclusionProof, String> {
            let path = log.inclusion_proof(seq - 1, size).map_err(|e| e.to_string())?;
            Ok(InclusionProof { seq, record_hash: [seq as u8; 32], tree_size: size, path })
        };
        let proved = cut_proof(2, &checkpoint, |size| honest(2, size));
        assert!(matches!(proved, CutProof::Proved { seq: 2, tree_size: 3, .. }), "{proved:?}");
        let mut good = arrival(2, [2; 32]);
        good.check_cut(&proved);
        assert_eq!(good.check, Check::Accepted);
        let mut forged = arrival(2, [0; 32]);
        forged.check_cut(&proved);
        assert!(
            matches!(&forged.check, Check::Refused(why) if why.contains("is not in the log")),
            "{:?}",
            forged.check
        );

        // A ledger that claims another hash for record 2 proves nothing.
        let lying =
            cut_proof(2, &checkpoint, |size| honest(2, size).map(|p| InclusionProof { record_hash: [0; 32], ..p }));
        let mut fooled = arrival(2, [0; 32]);
        fooled.check_cut(&lying);
        assert!(matches!(&fooled.check, Check::Unchecked(why) if why.contains("does not hold")), "{:?}", fooled.check);

        // A proof of another record, and a cut the checkpoint does not cover yet: unchecked.
        let other = cut_proof(2, &checkpoint, |size| honest(1, size));
        assert!(matches!(other, CutProof::Unavailable(_)), "{other:?}");
        let mut later = arrival(4, [4; 32]);
        later.check_cut(&cut_proof(4, &checkpoint, |_| panic!("no proof is asked for an uncovered cut")));
        assert!(matches!(&later.check, Check::Unchecked(why) if why.contains("covers 1..=3")), "{:?}", later.check);

        // A checkpoint whose signature does not verify proves nothing either.
        let mut unsigned = checkpoint.clone();
        unsigned.signature = "00".repeat(64);
        let mut dubious = arrival(2, [2; 32]);
        dubious.check_cut(&cut_proof(2, &unsigned, |size| honest(2, size)));
        assert!(matches!(dubious.check, Check::Unchecked(_)), "{:?}", dubious.check);
    }

    #[test]
    fn percent_rounds_half_up_in_integers() {
        assert_eq!(percent(1, 3), "33.33");
        assert_eq!(percent(2, 3), "66.67");
        assert_eq!(percent(1, 8), "12.50");
        assert_eq!(percent(5, 5), "100.00");
        assert_eq!(percent(0, 0), "-");
    }
}
