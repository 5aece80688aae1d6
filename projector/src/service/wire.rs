//! Request and reply shapes of the projector's report endpoints (`schemas/v1/projector/`).

use crate::report::{Framework, MaterialScope, Period};
use serde::{Deserialize, Serialize};

/// `stockpile.v1.projector.report[.<P>]`: which report to build, cut at the ledger's head.
/// On the partner-scoped subject `partner` may be left out; if given it must be `<P>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportAsk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    pub period: Period,
    #[serde(default = "eu")]
    pub framework: Framework,
    /// `None`: the framework's default scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materials: Option<MaterialScope>,
}

/// `stockpile.v1.projector.submit.<P>`: build `<P>`'s report at the ledger's head and
/// publish it to `STOCKPILE_REPORTS` as the period's next revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitAsk {
    pub period: Period,
    #[serde(default = "eu")]
    pub framework: Framework,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materials: Option<MaterialScope>,
    /// Submit even though the period has not ended by ledger time (marked provisional);
    /// without it, such a report is refused (`provisional`).
    #[serde(default)]
    pub provisional: bool,
}

fn eu() -> Framework {
    Framework::Eu
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitReply {
    pub report_id: String,
    pub framework: Framework,
    pub partner: String,
    pub period: Period,
    /// The revision now last on the stream: the one published, or the unchanged one.
    pub revision: u64,
    /// `false`: the last revision had the same body; nothing was sent.
    pub published: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_seq: Option<u64>,
    pub subject: String,
    /// From revision 2: what changed (`pointer: old -> new`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    pub cut_seq: u64,
    pub chain_head: String,
    pub body_sha256: String,
    pub provisional: bool,
}
