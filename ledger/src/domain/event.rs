//! Events: past-tense facts the ledger decided. Each carries everything its application
//! needs, so folding the log needs no lookups and no clock.

use super::command::{AdjustReason, Direction, FigureKind, Price, ReleaseReason};
use super::ids::{Country, EventId, KeyId, LotId, MaterialId, PartyId};
use super::model::{Facility, KeyEntry, LotSpec, Party, PositionKey};
use super::quantity::Quantity;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    Genesis {
        ledger: String,
        admin_key: KeyEntry,
        materials_version: String,
        partners_version: String,
    },
    PartyRegistered {
        party: Party,
    },
    FacilityRegistered {
        facility: Facility,
    },
    KeyRegistered {
        key: KeyEntry,
    },
    KeyRevoked {
        key: KeyId,
        reason: String,
    },
    FigureRegistered {
        figure: FigureKind,
        partner: Country,
        material: MaterialId,
        year: i32,
        quantity: Quantity,
    },
    ReleaseRulesRegistered {
        partner: Country,
        material: MaterialId,
        text: String,
        confidential: bool,
    },
    /// From the record's `occurred_at`, `party`'s stock of `lot` is withheld from reports.
    Withheld {
        party: PartyId,
        lot: LotId,
        reason: String,
    },
    /// From the record's `occurred_at`, `party`'s stock of `lot` is reported again.
    Unwithheld {
        party: PartyId,
        lot: LotId,
        reason: String,
    },
    Acquired {
        lot: LotSpec,
        to: PositionKey,
        quantity: Quantity,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supplier: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contract: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<Price>,
    },
    Stored {
        from: PositionKey,
        to: PositionKey,
        quantity: Quantity,
    },
    Transferred {
        from: PositionKey,
        to: PositionKey,
        quantity: Quantity,
    },
    Released {
        from: PositionKey,
        quantity: Quantity,
        reason: ReleaseReason,
        recipient: String,
    },
    Converted {
        from: PositionKey,
        consumed: Quantity,
        lot: LotSpec,
        to: PositionKey,
        produced: Quantity,
    },
    Adjusted {
        at: PositionKey,
        direction: Direction,
        quantity: Quantity,
        reason: AdjustReason,
        note: String,
    },
    /// Compensates `target`: `effects` are the target's effects, inverted.
    Reversed {
        target: EventId,
        target_seq: u64,
        reason: String,
        effects: Effects,
    },
}

/// A change to one position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Posting {
    pub position: PositionKey,
    pub direction: Direction,
    pub grams: u64,
}

/// How stock enters or leaves a lot's total. Together with postings this is double entry:
/// for each lot, the signed sum of its flows equals the signed sum of its postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    Acquired,
    Released,
    ConvertedIn,
    ConvertedOut,
    AdjustedUp,
    AdjustedDown,
}

impl FlowKind {
    /// Whether this flow adds stock to the lot (otherwise it removes stock).
    pub fn is_inflow(self) -> bool {
        matches!(self, FlowKind::Acquired | FlowKind::ConvertedIn | FlowKind::AdjustedUp)
    }
}

/// A change to one of a lot's flow counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub lot: LotId,
    pub kind: FlowKind,
    pub direction: Direction,
    pub grams: u64,
}

/// Everything an event does to positions and lot counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Effects {
    pub postings: Vec<Posting>,
    pub flows: Vec<Flow>,
}

impl Effects {
    fn post(&mut self, position: &PositionKey, direction: Direction, grams: u64) {
        self.postings.push(Posting { position: position.clone(), direction, grams });
    }

    fn flow(&mut self, lot: &LotId, kind: FlowKind, grams: u64) {
        self.flows.push(Flow { lot: lot.clone(), kind, direction: Direction::Increase, grams });
    }

    /// The compensating effects: every posting and flow with its direction flipped.
    pub fn inverted(&self) -> Effects {
        let flip = |d: Direction| match d {
            Direction::Increase => Direction::Decrease,
            Direction::Decrease => Direction::Increase,
        };
        Effects {
            postings: self.postings.iter().map(|p| Posting { direction: flip(p.direction), ..p.clone() }).collect(),
            flows: self.flows.iter().map(|f| Flow { direction: flip(f.direction), ..f.clone() }).collect(),
        }
    }

    /// Positions this effect takes stock from.
    pub fn debits(&self) -> impl Iterator<Item = &Posting> {
        self.postings.iter().filter(|p| p.direction == Direction::Decrease)
    }
}

impl Event {
    /// The movements of stock this event makes. Registrations make none.
    pub fn effects(&self) -> Effects {
        use Direction::{Decrease, Increase};
        let mut e = Effects::default();
        match self {
            Event::Acquired { lot, to, quantity, .. } => {
                e.post(to, Increase, quantity.grams);
                e.flow(&lot.id, FlowKind::Acquired, quantity.grams);
            }
            Event::Stored { from, to, quantity } | Event::Transferred { from, to, quantity } => {
                e.post(from, Decrease, quantity.grams);
                e.post(to, Increase, quantity.grams);
            }
            Event::Released { from, quantity, .. } => {
                e.post(from, Decrease, quantity.grams);
                e.flow(&from.lot, FlowKind::Released, quantity.grams);
            }
            Event::Converted { from, consumed, lot, to, produced } => {
                e.post(from, Decrease, consumed.grams);
                e.flow(&from.lot, FlowKind::ConvertedOut, consumed.grams);
                e.post(to, Increase, produced.grams);
                e.flow(&lot.id, FlowKind::ConvertedIn, produced.grams);
            }
            Event::Adjusted { at, direction, quantity, .. } => {
                e.post(at, *direction, quantity.grams);
                let kind = match direction {
                    Increase => FlowKind::AdjustedUp,
                    Decrease => FlowKind::AdjustedDown,
                };
                e.flow(&at.lot, kind, quantity.grams);
            }
            Event::Reversed { effects, .. } => return effects.clone(),
            Event::Genesis { .. }
            | Event::PartyRegistered { .. }
            | Event::FacilityRegistered { .. }
            | Event::KeyRegistered { .. }
            | Event::KeyRevoked { .. }
            | Event::FigureRegistered { .. }
            | Event::ReleaseRulesRegistered { .. }
            | Event::Withheld { .. }
            | Event::Unwithheld { .. } => {}
        }
        e
    }
}
