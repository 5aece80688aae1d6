//! Subjects and headers of the NATS contract (DESIGN.md §7). Every name the ledger puts on
//! the wire is here, once, and the projector's subjects too, so that the access rules
//! ([`super::access`]) and the services name the same things.

/// The micro-service name: `$SRV.PING.stockpile-ledger` and friends answer under it.
pub const SERVICE_NAME: &str = "stockpile-ledger";

/// `ledger.append`: a batch of signed commands → sequence numbers, or a typed error.
pub const APPEND: &str = "stockpile.v1.ledger.append";

/// `ledger.append.<partner>`: [`APPEND`] for a partner's own NATS user, which may publish
/// on its own partner's subject only; every command must be signed by a key of that
/// partner's parties (rejection `wrong_origin` otherwise).
pub const APPEND_AS_PARTNER: &str = "stockpile.v1.ledger.append.*";

/// The append subject of partner `code`.
pub fn partner_append_subject(code: &str) -> String {
    format!("{APPEND}.{code}")
}

/// `ledger.range`: records `from..=to` as stored, for gap repair and audit.
pub const RANGE: &str = "stockpile.v1.ledger.range";

/// `ledger.checkpoint`: sign a checkpoint at the committed head now, publish it, return it.
pub const CHECKPOINT: &str = "stockpile.v1.ledger.checkpoint";

/// `ledger.proof`: an inclusion or consistency proof over the committed log.
pub const PROOF: &str = "stockpile.v1.ledger.proof";

/// Where every signed checkpoint is published (core NATS; exports carry them all).
pub const CHECKPOINTS: &str = "stockpile.v1.checkpoints";

/// The JetStream stream that keeps every checkpoint published on [`CHECKPOINTS`], so a
/// reader gets the latest with a direct get of its last message
/// (`$JS.API.DIRECT.GET.STOCKPILE_CHECKPOINTS.stockpile.v1.checkpoints`) without being able
/// to make the ledger sign one.
pub const CHECKPOINTS_STREAM: &str = "STOCKPILE_CHECKPOINTS";

/// The JetStream stream every record is published to.
pub const EVENTS_STREAM: &str = "STOCKPILE_EVENTS";

/// The JetStream key-value bucket of the failover lease ([`super::standby`]): key
/// [`LEASE_KEY`] names the active ledger; its revision moves at every renewal.
pub const LEASE_BUCKET: &str = "STOCKPILE_LEDGER_LEASE";

/// The lease's key in [`LEASE_BUCKET`].
pub const LEASE_KEY: &str = "active";

/// The subjects a lease write publishes on: `$KV.<bucket>.<key>`.
pub const LEASE_SUBJECTS: &str = "$KV.STOCKPILE_LEDGER_LEASE.>";

/// The subjects of [`EVENTS_STREAM`]: `stockpile.v1.events.<partner>.<material>.<kind>`.
pub const EVENTS_SUBJECTS: &str = "stockpile.v1.events.>";

/// The JetStream stream of partner feeds: each record once per partner it concerns.
pub const FEEDS_STREAM: &str = "STOCKPILE_FEEDS";

/// The subjects of [`FEEDS_STREAM`]: `stockpile.v1.feed.<partner>.<material>.<kind>`.
pub const FEEDS_SUBJECTS: &str = "stockpile.v1.feed.>";

/// The projector's holdings query (request/reply).
pub const HOLDINGS_QUERY: &str = "stockpile.v1.holdings.query";

/// The JetStream stream of submitted stock reports (the projector publishes to it).
pub const REPORTS_STREAM: &str = "STOCKPILE_REPORTS";

/// The subjects of [`REPORTS_STREAM`]: `stockpile.v1.reports.<framework>.<partner>`.
pub const REPORTS_SUBJECTS: &str = "stockpile.v1.reports.>";

/// Header: the partner whose feed a [`FEEDS_STREAM`] message is on.
pub const HEADER_PARTNER: &str = "Stockpile-Partner";

/// Header: the record's event id. JetStream drops a second message with the same id
/// within the stream's duplicate window.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Header: the record's ledger sequence number, decimal.
pub const HEADER_SEQ: &str = "Stockpile-Seq";
/// Header: the record's hash (SHA-256 of its canonical body), lower-case hex.
pub const HEADER_HASH: &str = "Stockpile-Hash";

/// The token used for a part of the subject the record does not have (an admin key
/// registration concerns no partner; a party registration concerns no material).
pub const ABSENT_TOKEN: &str = "_";

/// The subject of one record: `stockpile.v1.events.<partner>.<material>.<kind>`.
///
/// - `partner`: the first of the record's `scope.partners` (sorted, so a transfer between
///   DE and NL goes to `DE`; partner feeds, not this subject, give each side its copy);
/// - `material`: `scope.material`;
/// - `kind`: the command kind (`acquire`, `register_party`, …).
///
/// A part that is absent, or that is not a safe subject token (ids are checked when a
/// command is decided, so this is defence in depth), becomes [`ABSENT_TOKEN`].
pub fn event_subject(partner: Option<&str>, material: Option<&str>, kind: &str) -> String {
    format!("stockpile.v1.events.{}.{}.{}", token(partner), token(material), token(Some(kind)))
}

/// The subject of one record on one partner's feed:
/// `stockpile.v1.feed.<partner>.<material>.<kind>`, tokens as in [`event_subject`].
pub fn feed_subject(partner: &str, material: Option<&str>, kind: &str) -> String {
    format!("stockpile.v1.feed.{}.{}.{}", token(Some(partner)), token(material), token(Some(kind)))
}

fn token(part: Option<&str>) -> &str {
    match part {
        Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => t,
        _ => ABSENT_TOKEN,
    }
}

// ---- The projector's request subjects (helper E's block; docs/PARTNERS.md §report subjects).
// None is under a stream's subjects (`stockpile.v1.reports.>`, `.events.>`, `.feed.>`):
// JetStream would store the requests.

/// The projector's micro-service name (`$SRV.PING.stockpile-projector` and friends).
pub const PROJECTOR_SERVICE_NAME: &str = "stockpile-projector";

/// Holdings of partner `<P>` only: `stockpile.v1.holdings.query.<P>` (the scope is the
/// subject's last token; a query naming another partner is refused).
pub const HOLDINGS_QUERY_AS_PARTNER: &str = "stockpile.v1.holdings.query.*";

/// The postings history of every partner's positions.
pub const HISTORY_QUERY: &str = "stockpile.v1.history.query";

/// The postings history of partner `<P>`'s positions only: `stockpile.v1.history.query.<P>`.
pub const HISTORY_QUERY_AS_PARTNER: &str = "stockpile.v1.history.query.*";

/// Build any partner's stock report (the request names the partner).
pub const PROJECTOR_REPORT: &str = "stockpile.v1.projector.report";

/// Build partner `<P>`'s stock report: `stockpile.v1.projector.report.<P>`.
pub const PROJECTOR_REPORT_AS_PARTNER: &str = "stockpile.v1.projector.report.*";

/// Build partner `<P>`'s report and publish it to [`REPORTS_STREAM`]:
/// `stockpile.v1.projector.submit.<P>`.
pub const PROJECTOR_SUBMIT_AS_PARTNER: &str = "stockpile.v1.projector.submit.*";

/// `base.<P>`: the partner-scoped form of a projector subject (`base` without the `.*`).
pub fn partner_subject(base: &str, partner: &str) -> String {
    format!("{}.{partner}", base.trim_end_matches(".*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_use_the_placeholder_for_absent_or_unsafe_parts() {
        let check = |p, m, k, expect: &str| assert_eq!(event_subject(p, m, k), expect);
        check(Some("NL"), Some("cobalt"), "acquire", "stockpile.v1.events.NL.cobalt.acquire");
        check(None, None, "genesis", "stockpile.v1.events._._.genesis");
        check(Some("DE"), None, "register_party", "stockpile.v1.events.DE._.register_party");
        check(Some("N.L"), Some("a>b"), "store", "stockpile.v1.events._._.store");
        check(Some(""), Some("x y"), "*", "stockpile.v1.events._._._");
    }
}
