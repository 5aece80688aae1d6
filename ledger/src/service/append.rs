//! `stockpile.v1.ledger.append`: a batch of signed commands in, one result per command out.
//!
//! The request is checked for size and shape here; signatures, authority and balances are
//! the ledger's business (a rejected command is a result, not an error). The handler
//! awaits the group-commit writer, so many requests in flight share one fsync.

use super::config::{Limits, REPLICATE_ACK_TIMEOUT};
use super::error::RequestError;
use crate::domain::reference::Reference;
use crate::domain::Country;
use crate::ledger::Outcome;
use crate::wire::{AppendReply, AppendRequest, AppendResult};
use crate::LedgerHandle;
use std::time::Duration;
use tokio::sync::watch;

/// Answers one append request: the encoded [`AppendReply`], or why the whole request was
/// refused (nothing was written then).
/// `origin`: the partner whose channel it came through.
/// `replicated`: with `--replicate`, the last seq the `STOCKPILE_EVENTS` stream has stored
/// (the events outbox's acks); the reply then waits until it covers every seq answered.
pub(crate) async fn handle(
    payload: &[u8],
    origin: Option<Country>,
    ledger: &LedgerHandle,
    limits: &Limits,
    replicated: Option<&watch::Receiver<u64>>,
) -> Result<Vec<u8>, RequestError> {
    let request = parse(payload, limits)?;
    let outcomes = ledger
        .append_from(origin, request.commands, request.atomic)
        .await
        .map_err(|e| RequestError::Unavailable { reason: e.to_string() })?;
    if let Some(replicated) = replicated {
        let last = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Appended { seq, .. } | Outcome::Duplicate { seq, .. } => Some(*seq),
                Outcome::Rejected(_) => None,
            })
            .max();
        if let Some(seq) = last {
            wait_replicated(replicated.clone(), seq, REPLICATE_ACK_TIMEOUT).await?;
        }
    }
    let reply = AppendReply { results: outcomes.into_iter().map(AppendResult::from).collect() };
    Ok(serde_json::to_vec(&reply).expect("an append reply always encodes"))
}

/// Waits until the stream has stored record `seq` (`replicated` ≥ `seq`), at most `bound`.
async fn wait_replicated(mut replicated: watch::Receiver<u64>, seq: u64, bound: Duration) -> Result<(), RequestError> {
    let not_replicated = || RequestError::NotReplicated { seq, waited_ms: bound.as_millis() as u64 };
    match tokio::time::timeout(bound, replicated.wait_for(|stored| *stored >= seq)).await {
        Ok(Ok(_)) => Ok(()),
        // The outbox is gone (the service is stopping): not replicated, and never will be here.
        Ok(Err(_)) | Err(_) => Err(not_replicated()),
    }
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

    #[tokio::test]
    async fn an_answer_waits_for_the_stream_to_store_its_records_and_no_longer_than_the_bound() {
        let (stored, replicated) = watch::channel(4);
        let bound = Duration::from_millis(200);
        assert!(wait_replicated(replicated.clone(), 4, bound).await.is_ok(), "already stored");
        let later = tokio::spawn(wait_replicated(replicated.clone(), 6, bound));
        stored.send(5).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!later.is_finished(), "seq 6 is not stored yet");
        stored.send(6).unwrap();
        assert!(later.await.unwrap().is_ok());
        let refused = wait_replicated(replicated.clone(), 9, bound).await.unwrap_err();
        assert_eq!(refused.code(), "not_replicated");
        assert!(refused.to_string().contains("up to seq 9"), "{refused}");
        drop(stored);
        assert_eq!(wait_replicated(replicated, 10, bound).await.unwrap_err().code(), "not_replicated");
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
