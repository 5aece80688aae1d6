//! The report as data: what the JSON submission carries (`schemas/v1/report.schema.json`).
//!
//! Quantities are signed integers in grams (`*_g`) beside exact tonnes as decimal text
//! (`*_t`, 6 decimals); percentages and days are decimal text with fixed precision. No float
//! ever enters the canonical body.

use super::period::Period;
use serde::{Deserialize, Serialize};

/// Which programme's report: the Commission's (CRMA Art. 22) or a framework variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Framework {
    #[serde(rename = "EU")]
    Eu,
    #[serde(rename = "IEA")]
    Iea,
    #[serde(rename = "NATO")]
    Nato,
}

impl Framework {
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Eu => "EU",
            Framework::Iea => "IEA",
            Framework::Nato => "NATO",
        }
    }
}

impl std::str::FromStr for Framework {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EU" | "eu" => Ok(Framework::Eu),
            "IEA" | "iea" => Ok(Framework::Iea),
            "NATO" | "nato" => Ok(Framework::Nato),
            _ => Err(format!("unknown framework {s:?}: use EU, IEA or NATO")),
        }
    }
}

/// Which materials an EU report covers (CRMA Art. 22(3): critical and others when asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaterialScope {
    /// Annex I strategic raw materials.
    Strategic,
    /// Annex I and Annex II.
    Critical,
    /// Every material held.
    All,
    /// The NATO list of defence-critical raw materials (the NATO framework).
    NatoDefenceCritical,
}

/// What to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// The reporting partner as the ledger spells it (`GR`, not `EL`).
    pub partner: String,
    pub period: Period,
    pub framework: Framework,
    /// `None`: the framework's default (EU: strategic; IEA: all; NATO: defence-critical).
    pub materials: Option<MaterialScope>,
}

/// Gross and contained mass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amounts {
    pub gross_g: i64,
    pub gross_t: String,
    pub contained_g: i64,
    pub contained_t: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub header: Header,
    pub body: Body,
}

/// Where the report was cut and what it hashes to: an auditor folds the log up to `cut_seq`
/// (whose record hash is `chain_head`) and gets `body_sha256` again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub report_id: String,
    pub framework: Framework,
    /// As the addressee spells it: `EL` for Greece on Commission (EU) output.
    pub partner: String,
    pub period: Period,
    pub cut_seq: u64,
    /// The hash of record `cut_seq` (hex); the Merkle root will join it with the audit work.
    pub chain_head: String,
    /// SHA-256 (hex) of the canonical JSON of `body`.
    pub body_sha256: String,
    /// The period had not ended by ledger time at the cut (record `cut_seq`'s `recorded_at` is
    /// before the end of `period_end`, UTC): movements recorded later may still change it.
    pub provisional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub framework: Framework,
    pub partner: String,
    pub partner_name: String,
    pub period: Period,
    /// First and last day of the period (the stock is as of the end of `period_end`, UTC).
    pub period_start: String,
    pub period_end: String,
    pub material_scope: MaterialScope,
    /// Which holdings count: EU, all programmes; IEA or NATO, only those earmarked to it.
    pub programmes: Vec<String>,
    pub materials: Vec<MaterialReport>,
    /// Stocks of private holders: outside the CRMA Art. 22 scope, listed for information.
    pub private_stocks: Vec<MaterialAmounts>,
    /// Stock on this partner's territory held by other partners' parties.
    pub held_for_others: Vec<HeldForOther>,
    /// Positions left out on national-security grounds (CRMA Art. 22(1)).
    pub withheld: Vec<WithheldNotice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialReport {
    pub material: String,
    pub name: String,
    pub crma_strategic: bool,
    pub crma_critical: bool,
    /// As the period ends: public authorities, public undertakings and mandated operators.
    pub stock: Amounts,
    pub consumption: Ratio,
    pub days_of_cover: Ratio,
    pub forms: Vec<FormLine>,
    /// The level at each of the five previous year-ends, oldest first.
    pub history: Vec<YearEnd>,
    pub release_rules: RulesNote,
    pub holders: Vec<HolderLine>,
    pub locations: Vec<LocationLine>,
    /// Gross grams; opening + the flows = closing, checked before the report is emitted.
    pub movements: Vec<MovementLine>,
}

/// A stock set against a registered annual figure: % of consumption or days of cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ratio {
    /// `registered`, `not_registered` or `zero` (a registered figure of zero: no ratio).
    pub status: String,
    /// The year of the figure: the calendar year before the period's end.
    pub year: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figure_g: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figure_t: Option<String>,
    /// Percent with 2 decimals, or days with 1 decimal; of the gross stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormLine {
    pub form: String,
    pub purity_ppm: u32,
    /// Percent with 4 decimals (exact: ppm / 10 000).
    pub purity_pct: String,
    #[serde(flatten)]
    pub amounts: Amounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YearEnd {
    pub date: String,
    #[serde(flatten)]
    pub amounts: Amounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesNote {
    /// `published`, `confidential` or `not_registered`.
    pub status: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderLine {
    pub holder_type: String,
    #[serde(flatten)]
    pub amounts: Amounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationLine {
    /// The host country (ISO code, `EL` for Greece on EU output) or `in_transit`.
    pub country: String,
    /// `home`, `abroad` or `in_transit`.
    pub placement: String,
    #[serde(flatten)]
    pub amounts: Amounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovementLine {
    /// opening, acquired, transferred_in, transferred_out, converted_in, converted_out,
    /// released (one line per reason), adjusted, relocated (between sites of one holder),
    /// closing. A reversal counts on the line of what it reverses, with the opposite sign (a
    /// reversed transfer out reduces `transferred_out`).
    pub line: String,
    /// For `released`: the release reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub gross_g: i64,
    pub gross_t: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialAmounts {
    pub material: String,
    #[serde(flatten)]
    pub amounts: Amounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldForOther {
    pub material: String,
    /// The owning partner (as the addressee spells it).
    pub owner: String,
    #[serde(flatten)]
    pub amounts: Amounts,
}

/// A reasoned notification in place of withheld figures: no quantity, no holder, no site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithheldNotice {
    pub material: String,
    /// The business date the withholding took effect.
    pub since: String,
    pub reason: String,
}
