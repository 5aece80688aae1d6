//! The history of positions: every posting of the journal, in record order, filtered by lot,
//! party, facility and partner. Pure: views in, rows out.
//!
//! A row is one posting: the record's seq, its business time, the position (party, lot,
//! location, programme), the partner owning the party, the material, the movement (and a
//! release's reason) and the signed change in gross grams. A transfer is two rows, one per
//! position it touches.

use crate::views::{Movement, Views};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use stockpile_ledger::canonical::{hex_hash, Hash};
use stockpile_ledger::domain::{Country, Location, LotId, PartyId, Programme};

/// Most rows one history answer holds when the query names no smaller `limit`; the service
/// cuts further to fit the server's `max_payload` and says where to go on (`next`).
pub const HISTORY_ROWS_MAX: u32 = 10_000;

/// Which postings to list. Every filter given must match; none given: every posting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only postings of parties of these partners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partner: Vec<Country>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<LotId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<PartyId>,
    /// A facility id, or `in_transit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Location>,
    /// Matching rows to skip.
    #[serde(default)]
    pub offset: u64,
    /// At most this many rows (and never more than [`HISTORY_ROWS_MAX`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRow {
    pub seq: u64,
    /// Business time, RFC 3339 UTC.
    pub occurred_at: String,
    pub partner: Country,
    pub party: PartyId,
    pub lot: LotId,
    pub material: String,
    pub location: Location,
    pub programme: Programme,
    pub movement: Movement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Signed change of the position's gross mass, grams.
    pub delta_g: i64,
}

/// The answer to a [`HistoryQuery`], cut at record `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub query: HistoryQuery,
    pub seq: u64,
    #[serde(with = "hex_hash")]
    pub head_hash: Hash,
    pub rows: Vec<HistoryRow>,
    /// Where the next page begins (its `offset`), when matching rows were left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

impl Views {
    /// The postings `query` selects, in record order, from its `offset`, at most its `limit`.
    pub fn history(&self, query: &HistoryQuery) -> History {
        let limit = query.limit.unwrap_or(HISTORY_ROWS_MAX).min(HISTORY_ROWS_MAX) as usize;
        let mut rows = Vec::new();
        let mut matched: u64 = 0;
        let mut next = None;
        for entry in &self.journal {
            let key = self.positions.position_key(&self.registry, entry.position);
            let Some(party) = self.registry.party(&key.party) else { continue };
            let keep = (query.partner.is_empty() || query.partner.contains(&party.partner))
                && query.lot.as_ref().is_none_or(|l| *l == key.lot)
                && query.party.as_ref().is_none_or(|p| *p == key.party)
                && query.facility.as_ref().is_none_or(|f| *f == key.location);
            if !keep {
                continue;
            }
            matched += 1;
            if matched <= query.offset {
                continue;
            }
            if rows.len() == limit {
                next = Some(matched - 1);
                break;
            }
            let material = self.registry.lot(&key.lot).map(|l| l.material.to_string()).unwrap_or_default();
            let reason =
                entry.reason.and_then(|r| serde_json::to_value(r).ok()).and_then(|v| v.as_str().map(str::to_string));
            rows.push(HistoryRow {
                seq: entry.seq,
                occurred_at: DateTime::from_timestamp_nanos(entry.at)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                partner: party.partner.clone(),
                party: key.party,
                lot: key.lot,
                material,
                location: key.location,
                programme: key.programme,
                movement: entry.movement,
                reason,
                delta_g: entry.delta,
            });
        }
        History { query: query.clone(), seq: self.head.seq, head_hash: self.head.hash, rows, next }
    }
}
