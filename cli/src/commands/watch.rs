//! `watch FILTER`: live records over NATS, one line each, until ctrl-c.
//!
//! A record is published once on `stockpile.v1.events.<partner>.<material>.<kind>`, under the
//! *first* partner of its scope (a transfer between DE and NL under `DE`). A filter names the
//! records of a partner, so the watch subscribes to every partner's subject and keeps a record
//! when the filter matches `<p>.<material>.<kind>` for *any* partner `p` of its scope:
//! `watch 'NL.>'` shows NL's outgoing transfer to DE as well as what comes in. A partner's
//! own user (`--nats-partner P`) follows its feed `stockpile.v1.feed.<filter>`, where the
//! ledger already files a copy under each partner a record concerns.
//!
//! Each line gives the quantities in the unit the operator stated (`500 kg`); with
//! `--format json`, one JSON object per line (`schemas/v1/watch-line.schema.json`).

use crate::args::Format;
use crate::error::{operational, usage, Result};
use crate::refusal::{Operation, Refusals};
use crate::remote::{RemoteError, CONNECT_TIMEOUT};
use futures::StreamExt;
use serde_json::{json, Value};
use stockpile_ledger::service::access::{self, Identity};

const EVENTS_PREFIX: &str = "stockpile.v1.events.";
const FEED_PREFIX: &str = "stockpile.v1.feed.";

/// How to watch: where, as whom, and for which partner's feed.
pub struct Watch<'a> {
    pub url: &'a str,
    /// The NATS user and its name (the seed file's stem), for messages.
    pub identity: Option<(&'a Identity, String)>,
    pub partner: Option<String>,
    pub format: Format,
}

/// Follows `filter` (`<partner>.<material>.<kind>`, NATS wildcards) until ctrl-c.
pub fn run(watch: Watch<'_>, filter: &str) -> Result<()> {
    if filter.is_empty() || filter.split('.').any(str::is_empty) {
        return Err(usage(format!("{filter:?} is not a subject filter: use <partner>.<material>.<kind>, e.g. 'NL.>'")));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(operational)?;
    let refusals = Refusals::new();
    let options = access::authenticate(async_nats::ConnectOptions::new(), watch.identity.as_ref().map(|(i, _)| *i))
        .name("stockpile-cli")
        .connection_timeout(CONNECT_TIMEOUT);
    let servers: Vec<&str> = watch.url.split(',').map(str::trim).collect();
    let client = runtime
        .block_on(refusals.watch(options).connect(servers))
        .map_err(|e| operational(format!("cannot reach NATS at {}: {e}", watch.url)))?;
    let user = watch.identity.as_ref().map_or_else(|| "(none: no --nats-nkey)".to_string(), |(_, u)| u.clone());
    // A partner's feed already holds each record under each partner; the event stream holds
    // it under the first only, so every partner's subject is followed and matched here.
    let (subject, partner_wide) = match &watch.partner {
        Some(_) => (format!("{FEED_PREFIX}{filter}"), false),
        None => (format!("{EVENTS_PREFIX}{}", any_partner(filter)), true),
    };
    let mut listener = refusals.listen();
    runtime.block_on(async {
        let mut subscription =
            client.subscribe(subject.clone()).await.map_err(|e| usage(format!("cannot watch {subject}: {e}")))?;
        // The subscription is registered once the server has seen it: flush first, so
        // nothing published after "watching" is printed is missed.
        client.flush().await.map_err(|e| operational(format!("{}: {e}", watch.url)))?;
        eprintln!("watching {}{filter} on {} (ctrl-c to stop)", if partner_wide { EVENTS_PREFIX } else { FEED_PREFIX }, watch.url);
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                refusal = listener.first(|r| r.operation == Operation::Subscribe && r.subject == subject) => {
                    let hint = if partner_wide {
                        "the complete event stream is for the auditor user; a partner watches its own feed with --nats-partner P"
                    } else {
                        "a partner subscribes to its own feed only: pass --nats-partner with its code"
                    };
                    return Err(RemoteError::Refused { user: user.clone(), operation: refusal.operation, subject: refusal.subject, hint }.into());
                }
                message = subscription.next() => match message {
                    Some(m) => {
                        let Some(line) = Line::read(m.subject.as_str(), &m.payload) else { continue };
                        if partner_wide && !line.matches(filter) {
                            continue;
                        }
                        println!("{}", line.render(watch.format));
                    }
                    None => return Err(operational(format!("the connection to {} closed", watch.url))),
                },
            }
        }
    })
}

/// `filter` with its partner token widened to `*` (a `>` filter stays `>`).
fn any_partner(filter: &str) -> String {
    match filter.split_once('.') {
        _ if filter == ">" => ">".to_string(),
        Some((_, rest)) => format!("*.{rest}"),
        None => "*".to_string(),
    }
}

/// Whether NATS subject filter `filter` matches `subject` (`*` one token, `>` the rest).
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for f in filter.split('.') {
        if f == ">" {
            return tokens.next().is_some();
        }
        match tokens.next() {
            Some(t) if f == "*" || f == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// One published record, as the watch shows it.
struct Line {
    seq: Option<u64>,
    subject: String,
    kind: String,
    event_id: String,
    occurred_at: String,
    material: Option<String>,
    partners: Vec<String>,
    /// From/at/to positions: `party@location` with the field's name.
    positions: Vec<(String, String)>,
    /// Every quantity of the event: field, grams, and the amount as stated.
    quantities: Vec<(String, i64, String)>,
}

impl Line {
    fn read(subject: &str, payload: &[u8]) -> Option<Line> {
        let value: Value = serde_json::from_slice(payload).ok()?;
        let body = &value["body"];
        let text = |v: &Value| v.as_str().map(str::to_string);
        let event = &body["event"];
        let mut positions = Vec::new();
        for field in ["from", "at", "to"] {
            if let Some(party) = event[field]["party"].as_str() {
                let at = event[field]["location"].as_str().unwrap_or("?");
                positions.push((field.to_string(), format!("{party}@{at}")));
            }
        }
        let mut quantities = Vec::new();
        collect_quantities("", event, &mut quantities);
        Some(Line {
            seq: body["seq"].as_u64(),
            subject: subject.to_string(),
            kind: text(&body["kind"]).unwrap_or_else(|| "?".into()),
            event_id: text(&body["event_id"]).unwrap_or_else(|| "?".into()),
            occurred_at: text(&body["occurred_at"]).unwrap_or_else(|| "?".into()),
            material: text(&body["scope"]["material"]),
            partners: body["scope"]["partners"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            positions,
            quantities,
        })
    }

    /// Whether `filter` matches this record under any partner of its scope (or its subject).
    fn matches(&self, filter: &str) -> bool {
        let tail = self.subject.strip_prefix(EVENTS_PREFIX).unwrap_or(&self.subject);
        let rest = tail.split_once('.').map_or("", |(_, r)| r);
        subject_matches(filter, tail) || self.partners.iter().any(|p| subject_matches(filter, &format!("{p}.{rest}")))
    }

    fn render(&self, format: Format) -> String {
        let seq = self.seq.map_or_else(|| "?".to_string(), |s| s.to_string());
        match format {
            Format::Json => json!({
                "seq": self.seq,
                "subject": self.subject,
                "kind": self.kind,
                "event_id": self.event_id,
                "occurred_at": self.occurred_at,
                "material": self.material,
                "partners": self.partners,
                "positions": self.positions.iter().map(|(f, p)| json!({"role": f, "position": p})).collect::<Vec<_>>(),
                "quantities": self.quantities.iter().map(|(f, g, s)| json!({"field": f, "grams": g, "stated": s})).collect::<Vec<_>>(),
            })
            .to_string(),
            Format::Table | Format::Csv => {
                let mut parts = vec![seq, self.occurred_at.clone(), self.kind.clone(), self.event_id.clone()];
                parts.extend(self.material.clone());
                if !self.partners.is_empty() {
                    parts.push(self.partners.join(","));
                }
                let positions: Vec<String> = self.positions.iter().map(|(_, p)| p.clone()).collect();
                if !positions.is_empty() {
                    parts.push(positions.join(" -> "));
                }
                for (field, _, stated) in &self.quantities {
                    parts.push(if field == "quantity" { stated.clone() } else { format!("{field} {stated}") });
                }
                parts.join("  ")
            }
        }
    }
}

/// Every `{"grams": N, "stated": {"amount", "unit"}}` below `value`, with its field's path
/// (`quantity`, `into.quantity`), the amount as the operator stated it (`500 kg`), or in kg
/// when the record states none.
fn collect_quantities(path: &str, value: &Value, out: &mut Vec<(String, i64, String)>) {
    let Value::Object(map) = value else { return };
    if let Some(grams) = map.get("grams").and_then(Value::as_i64) {
        let stated = match (map["stated"]["amount"].as_str(), map["stated"]["unit"].as_str()) {
            (Some(amount), Some(unit)) => format!("{amount} {unit}"),
            _ => format!(
                "{} kg",
                stockpile_ledger::domain::quantity::in_unit(grams, stockpile_ledger::domain::quantity::Unit::Kg)
            ),
        };
        out.push((path.to_string(), grams, stated));
        return;
    }
    for (key, child) in map {
        let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        collect_quantities(&child_path, child, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_nats_does_and_any_partner_of_the_scope_counts() {
        assert!(subject_matches("NL.>", "NL.cobalt.acquire"));
        assert!(!subject_matches("NL.>", "NL"));
        assert!(subject_matches("*.cobalt.*", "DE.cobalt.transfer"));
        assert!(!subject_matches("NL.cobalt", "NL.cobalt.acquire"));
        assert_eq!(any_partner("NL.>"), "*.>");
        assert_eq!(any_partner(">"), ">");
        let payload = br#"{"body":{"seq":7,"kind":"transfer","event_id":"t1","occurred_at":"2026-03-01T00:00:00Z",
            "scope":{"material":"germanium","partners":["DE","NL"]},
            "event":{"kind":"transferred","from":{"party":"nl-mindef","location":"be-antwerp"},
                     "to":{"party":"de-bundeswehr","location":"de-hamburg"},
                     "quantity":{"grams":500000,"stated":{"amount":"500","unit":"kg"}}}}}"#;
        let line = Line::read("stockpile.v1.events.DE.germanium.transfer", payload).unwrap();
        assert!(line.matches("NL.>") && line.matches("DE.germanium.*") && !line.matches("BE.>"));
        let table = line.render(Format::Table);
        assert!(
            table.contains("nl-mindef@be-antwerp -> de-bundeswehr@de-hamburg") && table.contains("500 kg"),
            "{table}"
        );
    }
}
