//! Submitting a report: the JetStream stream `STOCKPILE_REPORTS`, one message per revision
//! on `stockpile.v1.reports.<framework>.<partner>`, with `Nats-Msg-Id` = the report id and
//! revision, published only if the subject's last message is the one the revision was
//! decided from (`Nats-Expected-Last-Subject-Sequence`).
//!
//! **Revisions.** A period is submitted as revision 1; when a later cut of the same period
//! has a different body (a back-dated event changed it) it is submitted as the next revision;
//! when the body is unchanged (only unrelated records were added since) nothing is sent. The
//! revision is carried in the `Stockpile-Revision` header, not in the report: the report stays
//! a function of the log alone, and the stream records what was sent when.

use crate::report::{render, Report, ReportError};
use async_nats::header::HeaderMap;
use async_nats::jetstream::{self, stream};
use std::collections::BTreeMap;
use stockpile_ledger::service::stream::kept_stream_config;

pub use stockpile_ledger::service::subjects::{REPORTS_STREAM, REPORTS_SUBJECTS};
/// Header: the report's period (`2026-H1`).
pub const HEADER_PERIOD: &str = "Stockpile-Period";
/// Header: the revision number of this period's report, from 1.
pub const HEADER_REVISION: &str = "Stockpile-Revision";
/// Header: the ledger seq the report was cut at (its `header.cut_seq`), decimal.
pub const HEADER_CUT_SEQ: &str = "Stockpile-Cut-Seq";
/// Header: the hash of record `cut_seq` (its `header.chain_head`), hex: the intake checks it
/// against the ledger before it accepts the report.
pub const HEADER_CHAIN_HEAD: &str = "Stockpile-Chain-Head";
/// Header: SHA-256 of the report's canonical body, hex.
pub const HEADER_BODY_HASH: &str = "Stockpile-Body-Sha256";
/// Header (revisions from 2): the report id of the revision this one replaces.
pub const HEADER_SUPERSEDES: &str = "Stockpile-Supersedes";
/// Header (revisions from 2): what changed since that revision, as `pointer: old -> new`
/// entries separated by `; ` (JSON pointers into the body, materials named by id).
pub const HEADER_CHANGES: &str = "Stockpile-Changes";
/// Changes named in [`HEADER_CHANGES`]; more are counted, not listed.
pub const CHANGES_LISTED_MAX: usize = 24;

/// Header: JetStream's de-duplication id; here the report id and revision ([`msg_id`]).
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Header: JetStream refuses the message unless the subject's last message has this stream
/// sequence (0: the subject has none).
pub const HEADER_EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";

/// Most messages read on a subject to find a period's last revision: a partner submits a
/// few reports a year per framework, so this is decades of them; past it, refuse rather than
/// read without bound.
pub const SUBMITTED_SCAN_MAX: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{REPORTS_STREAM}: {0}: check that the NATS server has JetStream enabled")]
    Stream(String),
    #[error("publishing the report: {0}: nothing new was recorded; run the command again")]
    Publish(String),
    #[error("more than {SUBMITTED_SCAN_MAX} reports on {subject}: too many to find the last revision of {period}")]
    TooMany { subject: String, period: String },
    #[error("{subject}: other submitters published first {attempts} times running; run the command again")]
    Contended { subject: String, attempts: u32 },
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Published as this revision, at this stream sequence; from revision 2, what changed
    /// since the one it supersedes.
    Published { revision: u64, stream_seq: u64, subject: String, changes: Vec<String> },
    /// The period's last revision has the same body: nothing was sent.
    Unchanged { revision: u64 },
}

/// The subject of a report: `stockpile.v1.reports.<framework>.<partner>`.
pub fn report_subject(report: &Report) -> String {
    format!("stockpile.v1.reports.{}.{}", report.header.framework.as_str(), report.header.partner)
}

/// The stream's configuration: a kept stream (every field spelled out in
/// [`kept_stream_config`]): a record of what was submitted, never deleted or purged.
pub fn reports_stream_config() -> stream::Config {
    kept_stream_config(REPORTS_STREAM, "stock reports as submitted, one message per revision", REPORTS_SUBJECTS, 1)
}

/// Attempts at a publication whose subject moved on meanwhile (another submitter published
/// on it between our read and our publish): each reads the stream again.
pub const SUBMIT_ATTEMPTS_MAX: u32 = 8;

/// The revision a report gets against its period's last submitted revision `last`
/// (revision, body SHA-256, provisional): 1 when nothing was submitted, the next when the
/// body or the provisional mark differ, `None` (nothing to send) when neither does. A final
/// report whose body equals a provisional revision's is still sent: the addressee must
/// learn the figures are final. Pure: the scheduler plans with it from its store, and
/// [`submit`] decides with it from the stream.
pub fn next_revision(last: Option<(u64, &str, bool)>, body_sha256: &str, provisional: bool) -> Option<u64> {
    match last {
        None => Some(1),
        Some((_, body, was_provisional)) if body == body_sha256 && was_provisional == provisional => None,
        Some((revision, _, _)) => Some(revision + 1),
    }
}

/// The de-duplication id of a revision: `<report id>.r<revision>` (JetStream drops a second
/// message with the same id inside the stream's duplicate window).
pub fn msg_id(report_id: &str, revision: u64) -> String {
    format!("{report_id}.r{revision}")
}

/// Publishes `report` as the next revision of its period, unless the last revision has the
/// same body. The one place a revision number is given, for `submit.<P>` and the schedule
/// alike: the period's last revision is read from the stream with the subject's last
/// sequence, and the message is published with `Nats-Expected-Last-Subject-Sequence` = that
/// sequence, so JetStream refuses it if anyone published on the subject in between; then
/// the stream is read again and the revision decided anew (at most [`SUBMIT_ATTEMPTS_MAX`]
/// times). A publication JetStream reports as a duplicate (`Nats-Msg-Id` already seen: a
/// resend, or another scope's report of the same cut) is read again the same way. Two
/// submitters can therefore never give one revision number twice.
pub async fn submit(js: &jetstream::Context, report: &Report) -> Result<Submitted, SubmitError> {
    let stream =
        js.get_or_create_stream(reports_stream_config()).await.map_err(|e| SubmitError::Stream(e.to_string()))?;
    let subject = report_subject(report);
    let period = report.header.period.to_string();
    for _ in 0..SUBMIT_ATTEMPTS_MAX {
        let (last, subject_last_seq) = last_revision(stream.clone(), &subject, &period).await?;
        let h = &report.header;
        let Some(revision) = next_revision(
            last.as_ref().map(|l| (l.revision, l.body_sha256.as_str(), l.report.header.provisional)),
            &h.body_sha256,
            h.provisional,
        ) else {
            return Ok(Submitted::Unchanged { revision: last.map_or(0, |l| l.revision) });
        };
        let mut headers = HeaderMap::new();
        let changes = match &last {
            Some(last) => {
                let changes = changes(&last.report, report);
                headers.insert(HEADER_SUPERSEDES, last.report.header.report_id.as_str());
                headers.insert(HEADER_CHANGES, changes_header(&changes).as_str());
                changes
            }
            None => Vec::new(),
        };
        headers.insert(HEADER_MSG_ID, msg_id(&h.report_id, revision).as_str());
        headers.insert(HEADER_EXPECTED_LAST_SUBJECT_SEQUENCE, subject_last_seq.to_string().as_str());
        headers.insert(HEADER_PERIOD, period.as_str());
        headers.insert(HEADER_REVISION, revision.to_string().as_str());
        headers.insert(HEADER_BODY_HASH, h.body_sha256.as_str());
        headers.insert(HEADER_CUT_SEQ, h.cut_seq.to_string().as_str());
        headers.insert(HEADER_CHAIN_HEAD, h.chain_head.as_str());
        let payload = render::json(report)?;
        let acked = js
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| SubmitError::Publish(e.to_string()))?
            .await;
        match acked {
            // A duplicate id: this revision number is taken — by a resend of ours or another
            // report of the same cut (another material scope). Read the stream again.
            Ok(ack) if ack.duplicate => {
                tracing::info!(%subject, revision, "revision already on the stream (duplicate id); reading it again");
            }
            Ok(ack) => return Ok(Submitted::Published { revision, stream_seq: ack.sequence, subject, changes }),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                tracing::info!(%subject, revision, "another submitter published on the subject first; reading it again");
            }
            Err(e) => return Err(SubmitError::Publish(e.to_string())),
        }
    }
    Err(SubmitError::Contended { subject, attempts: SUBMIT_ATTEMPTS_MAX })
}

/// What differs between two reports' bodies: `pointer: old -> new` for every changed value
/// (JSON pointers; array elements that name a material are addressed by it), in body order.
pub fn changes(old: &Report, new: &Report) -> Vec<String> {
    let (a, b) = (serde_json::to_value(&old.body), serde_json::to_value(&new.body));
    let mut out = Vec::new();
    if old.header.provisional != new.header.provisional {
        out.push(format!("/header/provisional: {} -> {}", old.header.provisional, new.header.provisional));
    }
    if let (Ok(a), Ok(b)) = (a, b) {
        diff(String::new(), &a, &b, &mut out);
    }
    out
}

fn diff(path: String, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                diff(format!("{path}/{k}"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            let key = |v: &Value| v.get("material").and_then(Value::as_str).map(str::to_string);
            if x.iter().chain(y).all(|v| key(v).is_some()) {
                let named = |list: &Vec<Value>| -> BTreeMap<String, Value> {
                    list.iter().filter_map(|v| key(v).map(|k| (k, v.clone()))).collect()
                };
                let (x, y) = (named(x), named(y));
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let (va, vb) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                    diff(format!("{path}/{k}"), va, vb, out);
                }
            } else if x.len() == y.len() {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    diff(format!("{path}/{i}"), va, vb, out);
                }
            } else if a != b {
                out.push(format!("{path}: {} entries -> {} entries", x.len(), y.len()));
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

/// The changes as one header value: at most [`CHANGES_LISTED_MAX`] entries, then a count.
fn changes_header(changes: &[String]) -> String {
    let mut text = changes.iter().take(CHANGES_LISTED_MAX).cloned().collect::<Vec<_>>().join("; ");
    if changes.len() > CHANGES_LISTED_MAX {
        text.push_str(&format!("; and {} more", changes.len() - CHANGES_LISTED_MAX));
    }
    // Header values are one line.
    text.replace(['\r', '\n'], " ")
}

/// A period's last submitted revision.
struct LastRevision {
    revision: u64,
    body_sha256: String,
    report: Report,
}

/// The last revision of `period` on `subject`, with its report, and the stream sequence of
/// the subject's last message (0: none).
async fn last_revision(
    mut stream: jetstream::stream::Stream,
    subject: &str,
    period: &str,
) -> Result<(Option<LastRevision>, u64), SubmitError> {
    let info = stream.info().await.map_err(|e| SubmitError::Stream(e.to_string()))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    if info.state.messages == 0 {
        return Ok((None, 0));
    }
    if last.saturating_sub(first) >= SUBMITTED_SCAN_MAX {
        return Err(SubmitError::TooMany { subject: subject.to_string(), period: period.to_string() });
    }
    let mut found = None;
    let mut subject_last_seq = 0;
    for seq in first..=last {
        let message = stream.get_raw_message(seq).await.map_err(|e| SubmitError::Stream(e.to_string()))?;
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
        if message.subject.as_str() != subject {
            continue;
        }
        subject_last_seq = seq;
        if header(HEADER_PERIOD).as_deref() != Some(period) {
            continue;
        }
        let revision = header(HEADER_REVISION).and_then(|r| r.parse::<u64>().ok()).unwrap_or(0);
        if found.as_ref().is_none_or(|f: &LastRevision| revision >= f.revision) {
            let report: Report = serde_json::from_slice(&message.payload).map_err(|e| {
                SubmitError::Stream(format!("stream message {seq} is not a report this version reads: {e}"))
            })?;
            found = Some(LastRevision { revision, body_sha256: header(HEADER_BODY_HASH).unwrap_or_default(), report });
        }
    }
    Ok((found, subject_last_seq))
}
