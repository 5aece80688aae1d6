//! The request/reply side: the NATS micro service `stockpile-projector`
//! (`$SRV.PING|INFO|STATS.stockpile-projector`) with its endpoints:
//!
//! | endpoint | subject | answers |
//! |---|---|---|
//! | `holdings` | `stockpile.v1.holdings.query` | holdings of every partner |
//! | `holdings-as-partner` | `stockpile.v1.holdings.query.<P>` | holdings of `<P>` only |
//! | `history` | `stockpile.v1.history.query` | postings of every partner |
//! | `history-as-partner` | `stockpile.v1.history.query.<P>` | postings of `<P>` only |
//! | `report` | `stockpile.v1.projector.report` | any partner's report |
//! | `report-as-partner` | `stockpile.v1.projector.report.<P>` | `<P>`'s report |
//! | `submit-as-partner` | `stockpile.v1.projector.submit.<P>` | `<P>`'s report, published |
//!
//! On a partner-scoped subject the scope is the subject's last token, never the body: a body
//! naming another partner is refused (`wrong_partner`). Every request is checked for size,
//! then JSON depth, before it is parsed; every answer fits the server's `max_payload` (rows
//! cut with `next`, or a typed `reply_too_large`). Requests run concurrently, at most
//! [`REQUESTS_IN_FLIGHT_MAX`] at once.

use super::wire::{ReportAsk, SubmitAsk, SubmitReply};
use super::{error_reply, fit_one_message, rows_that_fit, LEDGER_RANGE};
use crate::history::{History, HistoryQuery};
use crate::projector::Reader;
use crate::query::HoldingsQuery;
use crate::report::{self, render, Report, ReportRequest};
use crate::submit::{self, Submitted};
use async_nats::service::{Request, ServiceExt};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use stockpile_ledger::domain::{Country, Reference};
use stockpile_ledger::service::subjects::{
    HISTORY_QUERY, HISTORY_QUERY_AS_PARTNER, HOLDINGS_QUERY, HOLDINGS_QUERY_AS_PARTNER, PROJECTOR_REPORT,
    PROJECTOR_REPORT_AS_PARTNER, PROJECTOR_SERVICE_NAME, PROJECTOR_SUBMIT_AS_PARTNER,
};
use stockpile_ledger::wire::{RangeReply, RangeRequest};
use tokio::sync::{Mutex, Semaphore};

/// Largest request accepted on any endpoint, in bytes: a query or a report request is a few
/// hundred bytes.
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// Requests handled at once; more wait in the subscription.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 64;
/// Longest wait for the ledger's head (`ledger.range`) before a report is built. Past it the
/// report is cut at the views' own head — still a prefix of the log, named in its header.
pub const LEDGER_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the views to fold the ledger's head before a report is built; past it
/// the request is refused (`behind`).
pub const REPORT_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two looks at the views' head while catching up.
const CATCH_UP_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
enum Api {
    Holdings,
    HoldingsAsPartner,
    History,
    HistoryAsPartner,
    Report,
    ReportAsPartner,
    SubmitAsPartner,
}

/// A request refused: its code and why.
struct Refusal {
    code: &'static str,
    message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

struct Context {
    /// Answers requests.
    responder: async_nats::Client,
    /// Asks the ledger for its head and publishes reports.
    publisher: async_nats::Client,
    reader: Reader,
    /// One submission at a time in this process (shared with the scheduler): each reads the
    /// period's last revision and publishes the next; JetStream's expected subject sequence
    /// guards the same across processes.
    submitting: Arc<Mutex<()>>,
}

type Requests = futures::stream::SelectAll<futures::stream::BoxStream<'static, (Api, Request)>>;

/// The registered micro service and its endpoints, not yet serving.
pub(super) struct Endpoints {
    /// Kept for as long as the endpoints serve: it answers `$SRV.PING|INFO|STATS`.
    _service: async_nats::service::Service,
    requests: Requests,
}

/// Registers the micro service and subscribes its endpoints.
pub(super) async fn register(responder: &async_nats::Client) -> Result<Endpoints, super::ServiceError> {
    let failed = |e: async_nats::Error| super::ServiceError::Register(e.to_string());
    let service = responder
        .service_builder()
        .description("stockpile projector: holdings, history and stock reports from the ledger's event stream")
        .start(PROJECTOR_SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(failed)?;
    let mut streams = Vec::new();
    for (api, name, subject) in [
        (Api::Holdings, "holdings", HOLDINGS_QUERY),
        (Api::HoldingsAsPartner, "holdings-as-partner", HOLDINGS_QUERY_AS_PARTNER),
        (Api::History, "history", HISTORY_QUERY),
        (Api::HistoryAsPartner, "history-as-partner", HISTORY_QUERY_AS_PARTNER),
        (Api::Report, "report", PROJECTOR_REPORT),
        (Api::ReportAsPartner, "report-as-partner", PROJECTOR_REPORT_AS_PARTNER),
        (Api::SubmitAsPartner, "submit-as-partner", PROJECTOR_SUBMIT_AS_PARTNER),
    ] {
        let endpoint = service.endpoint_builder().name(name).add(subject).await.map_err(failed)?;
        streams.push(endpoint.map(move |r| (api, r)).boxed());
    }
    Ok(Endpoints { _service: service, requests: futures::stream::select_all(streams) })
}

impl Endpoints {
    /// Serves requests until the task is aborted.
    pub(super) async fn serve(
        self,
        responder: async_nats::Client,
        publisher: async_nats::Client,
        reader: Reader,
        submitting: Arc<Mutex<()>>,
    ) {
        let Endpoints { _service, mut requests } = self;
        let context = Arc::new(Context { responder, publisher, reader, submitting });
        let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT_MAX));
        while let Some((api, request)) = requests.next().await {
            let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
            let context = context.clone();
            tokio::spawn(async move {
                handle(api, request, &context).await;
                drop(permit);
            });
        }
    }
}

async fn handle(api: Api, request: Request, context: &Context) {
    if request.message.reply.is_none() {
        return; // published, not requested: nobody would see the outcome
    }
    let subject = request.message.subject.to_string();
    let payload = &request.message.payload;
    let result = if payload.len() > REQUEST_BYTES_MAX {
        Err(refuse("request_too_large", format!("a request is at most {REQUEST_BYTES_MAX} bytes")))
    } else if let Err(reason) = stockpile_ledger::wire::check_json_depth(payload) {
        Err(refuse("too_deeply_nested", reason))
    } else {
        answer(api, &subject, payload, context).await
    };
    let max = context.responder.server_info().max_payload;
    let body = match result {
        Ok(body) if body.len() <= max => body,
        Ok(body) => error_reply(
            "reply_too_large",
            format!("the answer is {} bytes, over the server's max_payload of {max}: narrow the request", body.len()),
        ),
        Err(r) => {
            tracing::debug!(?api, code = r.code, message = %r.message, "request refused");
            error_reply(r.code, r.message)
        }
    };
    if let Err(e) = request.respond(Ok(body.into())).await {
        tracing::warn!(?api, error = %e, "could not send a reply");
    }
}

async fn answer(api: Api, subject: &str, payload: &[u8], context: &Context) -> Result<Vec<u8>, Refusal> {
    let max = context.responder.server_info().max_payload;
    match api {
        Api::Holdings | Api::HoldingsAsPartner => {
            let mut query: HoldingsQuery =
                parse(payload).map_err(|e| refuse("malformed_request", format!("not a holdings query: {e}")))?;
            if matches!(api, Api::HoldingsAsPartner) {
                let partner = scope(subject)?;
                if query.partner.iter().any(|p| *p != partner) {
                    return Err(wrong_partner(&partner));
                }
                query.partner = vec![partner];
            }
            let reader = context.reader.clone();
            match tokio::task::spawn_blocking(move || reader.holdings(&query)).await {
                Ok(Ok(h)) => Ok(fit_one_message(h, max)),
                Ok(Err(e)) => Err(refuse("invalid_query", e.to_string())),
                Err(e) => Err(refuse("unavailable", e.to_string())),
            }
        }
        Api::History | Api::HistoryAsPartner => {
            let mut query: HistoryQuery =
                parse(payload).map_err(|e| refuse("malformed_request", format!("not a history query: {e}")))?;
            if matches!(api, Api::HistoryAsPartner) {
                let partner = scope(subject)?;
                if query.partner.iter().any(|p| *p != partner) {
                    return Err(wrong_partner(&partner));
                }
                query.partner = vec![partner];
            }
            let reader = context.reader.clone();
            let history = tokio::task::spawn_blocking(move || reader.views().history(&query))
                .await
                .map_err(|e| refuse("unavailable", e.to_string()))?;
            fit_history(history, max)
        }
        Api::Report | Api::ReportAsPartner => {
            let ask: ReportAsk =
                parse(payload).map_err(|e| refuse("malformed_request", format!("not a report request: {e}")))?;
            let partner = match api {
                Api::ReportAsPartner => {
                    let partner = scope(subject)?;
                    if ask.partner.as_deref().is_some_and(|p| !p.eq_ignore_ascii_case(partner.as_str())) {
                        return Err(wrong_partner(&partner));
                    }
                    partner.to_string()
                }
                _ => ask.partner.clone().ok_or_else(|| {
                    refuse("malformed_request", "name the partner (\"partner\": \"NL\") or ask on report.<P>")
                })?,
            };
            let request = ReportRequest {
                partner: partner.to_ascii_uppercase(),
                period: ask.period,
                framework: ask.framework,
                materials: ask.materials,
            };
            let report = build_at_ledger_head(context, request).await?;
            render::json(&report).map_err(|e| refuse("report_refused", e.to_string()))
        }
        Api::SubmitAsPartner => {
            let partner = scope(subject)?;
            let ask: SubmitAsk =
                parse(payload).map_err(|e| refuse("malformed_request", format!("not a submit request: {e}")))?;
            let request = ReportRequest {
                partner: partner.to_string(),
                period: ask.period,
                framework: ask.framework,
                materials: ask.materials,
            };
            let report = build_at_ledger_head(context, request).await?;
            if report.header.provisional && !ask.provisional {
                return Err(refuse(
                    "provisional",
                    format!(
                        "report {} is provisional: period {} has not ended by ledger time (it ends at the end of {}, UTC); submit it after the period has ended, or ask with \"provisional\": true (the CLI: pass --provisional) to submit it marked provisional",
                        report.header.report_id, report.header.period, report.body.period_end
                    ),
                ));
            }
            let reply = publish(context, &report).await?;
            Ok(serde_json::to_vec(&reply).expect("a submit reply encodes"))
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, serde_json::Error> {
    // An empty body is the empty object: every field optional, or the error names the first.
    serde_json::from_slice(if payload.is_empty() { b"{}" } else { payload })
}

fn wrong_partner(partner: &Country) -> Refusal {
    refuse(
        "wrong_partner",
        format!("this subject answers for partner {partner} only; the request names another partner"),
    )
}

/// The partner of a scoped subject: its last token, a partner of the reference list.
fn scope(subject: &str) -> Result<Country, Refusal> {
    let token = subject.rsplit('.').next().unwrap_or_default();
    let code = Country::new(token);
    if Reference::get().partner(&code).is_none() {
        return Err(refuse(
            "unknown_partner",
            format!("{token:?} is not a partner code (schemas/reference/partners.v1.json; Greece is GR)"),
        ));
    }
    Ok(code)
}

/// Builds `request` once the views hold the ledger's committed head (asked now), so a
/// report asked right after an append includes it.
async fn build_at_ledger_head(context: &Context, request: ReportRequest) -> Result<Report, Refusal> {
    if let Some(head) = ledger_head(&context.publisher).await {
        let deadline = tokio::time::Instant::now() + REPORT_CATCH_UP_TIMEOUT;
        while context.reader.head().seq < head {
            if tokio::time::Instant::now() >= deadline {
                return Err(refuse(
                    "behind",
                    format!(
                        "the projector is at record {}, behind the ledger's head {head}, after {}s: ask again shortly",
                        context.reader.head().seq,
                        REPORT_CATCH_UP_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }
    let reader = context.reader.clone();
    tokio::task::spawn_blocking(move || report::build(&reader.views(), &request))
        .await
        .map_err(|e| refuse("unavailable", e.to_string()))?
        .map_err(|e| refuse("report_refused", e.to_string()))
}

/// The ledger's committed head, or `None` when the ledger does not answer in time (the
/// report is then cut at the views' head, which its header names).
async fn ledger_head(client: &async_nats::Client) -> Option<u64> {
    let request = serde_json::to_vec(&RangeRequest { from: u64::MAX, to: None, limit: None }).expect("encodes");
    match tokio::time::timeout(LEDGER_HEAD_TIMEOUT, client.request(LEDGER_RANGE, request.into())).await {
        Ok(Ok(reply)) => match serde_json::from_slice::<RangeReply>(&reply.payload) {
            Ok(r) => Some(r.head),
            Err(e) => {
                tracing::warn!(error = %e, "ledger.range answered no head; cutting the report at the views' head");
                None
            }
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "ledger.range failed; cutting the report at the views' head");
            None
        }
        Err(_) => {
            tracing::warn!("ledger.range timed out; cutting the report at the views' head");
            None
        }
    }
}

async fn publish(context: &Context, report: &Report) -> Result<SubmitReply, Refusal> {
    let _one_at_a_time = context.submitting.lock().await;
    let js = async_nats::jetstream::new(context.publisher.clone());
    let outcome = submit::submit(&js, report).await.map_err(|e| refuse("submit_failed", e.to_string()))?;
    let h = &report.header;
    let (revision, published, stream_seq, changes) = match outcome {
        Submitted::Published { revision, stream_seq, changes, .. } => (revision, true, Some(stream_seq), changes),
        Submitted::Unchanged { revision } => (revision, false, None, Vec::new()),
    };
    Ok(SubmitReply {
        report_id: h.report_id.clone(),
        framework: h.framework,
        partner: h.partner.clone(),
        period: h.period,
        revision,
        published,
        stream_seq,
        subject: submit::report_subject(report),
        changes,
        cut_seq: h.cut_seq,
        chain_head: h.chain_head.clone(),
        body_sha256: h.body_sha256.clone(),
        provisional: h.provisional,
    })
}

/// `history` encoded to fit one message of at most `max_payload` bytes: as many rows as fit,
/// with `next` naming the first row left out.
fn fit_history(mut history: History, max_payload: usize) -> Result<Vec<u8>, Refusal> {
    let whole = serde_json::to_vec(&history).expect("history encodes");
    if whole.len() <= max_payload {
        return Ok(whole);
    }
    let rows = std::mem::take(&mut history.rows);
    let after = history.next;
    history.next = Some(u64::MAX);
    let envelope = serde_json::to_vec(&history).expect("history encodes").len();
    let kept = rows_that_fit(envelope, &rows, max_payload);
    if kept == 0 {
        return Err(refuse("reply_too_large", format!("not even one row fits max_payload of {max_payload} bytes")));
    }
    history.next = if kept < rows.len() { Some(history.query.offset + kept as u64) } else { after };
    history.rows = rows.into_iter().take(kept).collect();
    Ok(serde_json::to_vec(&history).expect("history encodes"))
}
