//! `stockpile.v1.ledger.range`: records `from..=to` exactly as stored, a page at a time.
//!
//! Pages are cut by [`Limits::range_page_records_max`] and
//! [`Limits::range_page_bytes_max`]; `next` says where to continue. Records are the stored
//! bytes as they stand (`{"body":…,"hash":…}`), so a receiver hashes each body itself.

use super::config::Limits;
use super::error::RequestError;
use crate::store::Store;
use crate::wire::{RangeReply, RangeRequest};
use crate::LedgerHandle;
use serde_json::value::RawValue;

/// Bytes a range reply holds beside its records: `{"head":N,"next":N,"records":[…]}` and
/// the commas between records, with room to spare.
pub const RANGE_REPLY_ENVELOPE_BYTES: usize = 1 << 10;

/// Answers one range request: the encoded [`RangeReply`], or why it was refused. A page is
/// cut to fit `max_payload` (the server's) as well as the limits, so a server with a small
/// `max_payload` gets more pages, not a dropped reply; only a single record larger than it
/// is refused (`reply_too_large`).
pub(crate) async fn handle(
    payload: &[u8],
    ledger: &LedgerHandle,
    head: u64,
    limits: &Limits,
    max_payload: usize,
) -> Result<Vec<u8>, RequestError> {
    let request = parse(payload, limits)?;
    let to = request.to.map_or(head, |to| to.min(head));
    let records_max = request.limit.map_or(limits.range_page_records_max, |l| l.min(limits.range_page_records_max));
    let (records, next) = if request.from > to {
        (Vec::new(), None)
    } else {
        let store = ledger.store().clone();
        let bytes_max = limits.range_page_bytes_max.min(max_payload.saturating_sub(RANGE_REPLY_ENVELOPE_BYTES));
        let from = request.from;
        tokio::task::spawn_blocking(move || read_page(&store, from, to, records_max as usize, bytes_max))
            .await
            .map_err(|e| RequestError::Internal { reason: e.to_string() })??
    };
    let reply = RangeReply { records, head, next };
    Ok(serde_json::to_vec(&reply).expect("a range reply always encodes"))
}

pub(crate) fn parse(payload: &[u8], limits: &Limits) -> Result<RangeRequest, RequestError> {
    if payload.len() > limits.range_request_bytes_max {
        return Err(RequestError::TooLarge { bytes: payload.len(), max: limits.range_request_bytes_max });
    }
    let malformed = |reason: String| RequestError::Malformed {
        what: "range request ({\"from\": seq, \"to\": seq, \"limit\": count})",
        reason,
    };
    RequestError::check_depth(payload)?;
    let request: RangeRequest = serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
    if request.from == 0 {
        return Err(malformed("from is 0: sequence numbers start at 1".into()));
    }
    if let Some(to) = request.to.filter(|to| *to < request.from) {
        return Err(malformed(format!("to ({to}) is before from ({})", request.from)));
    }
    if request.limit == Some(0) {
        return Err(malformed("limit is 0: ask for at least one record".into()));
    }
    Ok(request)
}

/// Records `from..=to`, at most `records_max` of them and (beyond the first) at most
/// `bytes_max` bytes (a comma counted per record), and the seq to continue from if the page was cut.
fn read_page(
    store: &Store,
    from: u64,
    to: u64,
    records_max: usize,
    bytes_max: usize,
) -> Result<(Vec<Box<RawValue>>, Option<u64>), RequestError> {
    let mut records: Vec<Box<RawValue>> = Vec::new();
    let mut bytes = 0usize;
    let mut next = None;
    let mut failure = None;
    store
        .scan(from, |seq, stored| {
            if seq > to {
                return false;
            }
            if !records.is_empty() && (records.len() >= records_max || bytes + stored.len() + 1 > bytes_max) {
                next = Some(seq);
                return false;
            }
            let raw = String::from_utf8(stored.to_vec())
                .map_err(|e| e.to_string())
                .and_then(|text| RawValue::from_string(text).map_err(|e| e.to_string()));
            match raw {
                Ok(raw) => {
                    // Each record's bytes and the comma after it.
                    bytes += stored.len() + 1;
                    records.push(raw);
                    true
                }
                Err(e) => {
                    failure = Some(RequestError::Internal { reason: format!("record {seq} is not JSON: {e}") });
                    false
                }
            }
        })
        .map_err(|e| RequestError::Internal { reason: e.to_string() })?;
    match failure {
        Some(e) => Err(e),
        None => Ok((records, next)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_get_their_codes() {
        let limits = Limits::default();
        let code = |payload: &str| parse(payload.as_bytes(), &limits).map(|_| "ok").unwrap_or_else(|e| e.code());
        assert_eq!(code(r#"{"from":1}"#), "ok");
        assert_eq!(code(r#"{"from":3,"to":3,"limit":1}"#), "ok");
        assert_eq!(code(r#"{"from":0}"#), "malformed_request");
        assert_eq!(code(r#"{"from":5,"to":4}"#), "malformed_request");
        assert_eq!(code(r#"{"from":1,"limit":0}"#), "malformed_request");
        assert_eq!(code(r#"{"from":-1}"#), "malformed_request");
        assert_eq!(code(r#"{"from":1,"until":2}"#), "malformed_request");
        assert_eq!(code(r#"{"from":"1"}"#), "malformed_request");
        assert_eq!(code(&" ".repeat(limits.range_request_bytes_max + 1)), "request_too_large");
    }
}
