//! `stockpile.v1.ledger.append`: a batch of signed commands in, one result per command out.
//!
//! The request is checked for size and shape here; signatures, authority and balances are
//! the ledger's business (a rejected command is a result, not an error). The handler
//! awaits the group-commit writer, so many requests in flight share one fsync.

use super::config::Limits;
use super::error::RequestError;
use crate::domain::reference::Reference;
use crate::domain::Country;
use crate::wire::{AppendReply, AppendRequest, AppendResult};
use crate::LedgerHandle;

/// Answers one append request: the encoded [`AppendReply`], or why the whole request was
/// refused (nothing was written then).
/// `origin`: the partner whose channel it came through.
pub(crate) async fn handle(
    payload: &[u8],
    origin: Option<Country>,
    ledger: &LedgerHandle,
    limits: &Limits,
) -> Result<Vec<u8>, RequestError> {
    let request = parse(payload, limits)?;
    let outcomes = ledger
        .append_from(origin, request.commands, request.atomic)
        .await
        .map_err(|e| RequestError::Unavailable { reason: e.to_string() })?;
    let reply = AppendReply { results: outcomes.into_iter().map(AppendResult::from).collect() };
    Ok(serde_json::to_vec(&reply).expect("an append reply always encodes"))
}

/// The partner of a `stockpile.v1.ledger.append.<partner>` subject: one of the reference
/// partners. (NATS permissions decide who may publish there.)
pub(crate) fn origin(subject: &str) -> Result<Country, RequestError> {
    let code = subject.rsplit('.').next().unwrap_or_default();
    let country = Country::new(code);
    if Reference::get().partner(&country).is_none() {
        return Err(RequestError::Malformed {
            what: "append subject (stockpile.v1.ledger.append.<partner>)",
            reason: format!("{code:?} is not a partner code of the reference list"),
        });
    }
    Ok(country)
}

/// Checks the request's size, shape and command count, in that order, so an oversized
/// request is refused before it is parsed.
pub(crate) fn parse(payload: &[u8], limits: &Limits) -> Result<AppendRequest, RequestError> {
    if payload.len() > limits.append_request_bytes_max {
        return Err(RequestError::TooLarge { bytes: payload.len(), max: limits.append_request_bytes_max });
    }
    RequestError::check_depth(payload)?;
    let request: AppendRequest = serde_json::from_slice(payload).map_err(|e| RequestError::Malformed {
        what: "append request ({\"commands\": [signed command, …], \"atomic\": bool})",
        reason: e.to_string(),
    })?;
    if request.commands.is_empty() {
        return Err(RequestError::Malformed {
            what: "append request",
            reason: "commands is empty: send at least one signed command".into(),
        });
    }
    if request.commands.len() > limits.append_commands_max {
        return Err(RequestError::TooManyCommands { count: request.commands.len(), max: limits.append_commands_max });
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(payload: &[u8], limits: &Limits) -> &'static str {
        parse(payload, limits).map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn bad_requests_get_their_codes() {
        let limits = Limits { append_request_bytes_max: 64, ..Limits::default() };
        let cases: &[(&[u8], &str)] = &[
            (b"", "malformed_request"),
            (b"not json", "malformed_request"),
            (b"[]", "malformed_request"),
            (b"{}", "malformed_request"),
            (br#"{"commands":[]}"#, "malformed_request"),
            (br#"{"commands":[],"extra":1}"#, "malformed_request"),
            (br#"{"commands":"x"}"#, "malformed_request"),
            (br#"{"commands":[{"command":{}}]}"#, "malformed_request"),
            (&[b' '; 65], "request_too_large"),
        ];
        for (payload, expect) in cases {
            assert_eq!(code(payload, &limits), *expect, "payload {:?}", String::from_utf8_lossy(payload));
        }
    }
}
