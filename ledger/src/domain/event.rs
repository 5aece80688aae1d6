//! Events: past-tense facts the ledger decided. Each carries everything its application
//! needs, so folding the log needs no lookups and no clock.

use super::command::{AdjustReason, Direction, FigureKind, Price, ReleaseReason};
use super::ids::{Country, EventId, KeyId, LotId, MaterialId, PartyId};
use super::model::{Facility, KeyEntry, LotSpec, Party, PositionKey};
use super::quantity::Quantity;
use super::tagged::tagged_enum;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

tagged_enum! {
    /// A fact the ledger decided, tagged on the wire by `kind`.
    enum Event, variants in by_kind, layout super::event_layout::decode;
    Genesis = "genesis" {
        ledger: String,
        admin_key: KeyEntry,
        materials_version: String,
        partners_version: String,
        /// The decision rules the ledger starts under; absent in ledgers made before rules
        /// were recorded, which run under rules 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules: Option<u32>,
    },
    /// The decision rules in force from the next record on.
    RulesRaised = "rules_raised" {
        rules: u32,
    },
    PartyRegistered = "party_registered" {
        party: Party,
    },
    FacilityRegistered = "facility_registered" {
        facility: Facility,
    },
    KeyRegistered = "key_registered" {
        key: KeyEntry,
    },
    KeyRevoked = "key_revoked" {
        key: KeyId,
        reason: String,
    },
    FigureRegistered = "figure_registered" {
        figure: FigureKind,
        partner: Country,
        material: MaterialId,
        year: i32,
        quantity: Quantity,
    },
    ReleaseRulesRegistered = "release_rules_registered" {
        partner: Country,
        material: MaterialId,
        text: String,
        confidential: bool,
    },
    /// From the record's `occurred_at`, `party`'s stock of `lot` is withheld from reports.
    Withheld = "withheld" {
        party: PartyId,
        lot: LotId,
        reason: String,
    },
    /// From the record's `occurred_at`, `party`'s stock of `lot` is reported again.
    Unwithheld = "unwithheld" {
        party: PartyId,
        lot: LotId,
        reason: String,
    },
    Acquired = "acquired" {
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
    Stored = "stored" {
        from: PositionKey,
        to: PositionKey,
        quantity: Quantity,
    },
    Transferred = "transferred" {
        from: PositionKey,
        to: PositionKey,
        quantity: Quantity,
    },
    Released = "released" {
        from: PositionKey,
        quantity: Quantity,
        reason: ReleaseReason,
        recipient: String,
    },
    Converted = "converted" {
        from: PositionKey,
        consumed: Quantity,
        lot: LotSpec,
        to: PositionKey,
        produced: Quantity,
    },
    Adjusted = "adjusted" {
        at: PositionKey,
        direction: Direction,
        quantity: Quantity,
        reason: AdjustReason,
        note: String,
    },
    /// Compensates `target`: `effects` are the target's effects, inverted.
    Reversed = "reversed" {
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
    /// Every kind, in order.
    pub const ALL: [FlowKind; 6] = [
        FlowKind::Acquired,
        FlowKind::Released,
        FlowKind::ConvertedIn,
        FlowKind::ConvertedOut,
        FlowKind::AdjustedUp,
        FlowKind::AdjustedDown,
    ];

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

/// A posting borrowed from its event: what `State::apply` folds, without copying a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostingRef<'a> {
    pub position: &'a PositionKey,
    pub direction: Direction,
    pub grams: u64,
}

/// A flow borrowed from its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRef<'a> {
    pub lot: &'a LotId,
    pub kind: FlowKind,
    pub direction: Direction,
    pub grams: u64,
}

/// An event's effects, borrowed from it. Every event but a reversal makes at most two
/// postings and two flows, so replay folds them without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectRefs<'a> {
    pub postings: SmallVec<[PostingRef<'a>; 2]>,
    pub flows: SmallVec<[FlowRef<'a>; 2]>,
}

impl<'a> EffectRefs<'a> {
    fn post(&mut self, position: &'a PositionKey, direction: Direction, grams: u64) {
        self.postings.push(PostingRef { position, direction, grams });
    }

    fn flow(&mut self, lot: &'a LotId, kind: FlowKind, grams: u64) {
        self.flows.push(FlowRef { lot, kind, direction: Direction::Increase, grams });
    }

    /// The same effects, owned.
    pub fn owned(&self) -> Effects {
        Effects {
            postings: self
                .postings
                .iter()
                .map(|p| Posting { position: p.position.clone(), direction: p.direction, grams: p.grams })
                .collect(),
            flows: self
                .flows
                .iter()
                .map(|f| Flow { lot: f.lot.clone(), kind: f.kind, direction: f.direction, grams: f.grams })
                .collect(),
        }
    }
}

impl Event {
    /// The movements of stock this event makes. Registrations make none.
    pub fn effects(&self) -> Effects {
        self.effect_refs().owned()
    }

    /// The movements of stock this event makes, borrowed from it.
    pub fn effect_refs(&self) -> EffectRefs<'_> {
        use Direction::{Decrease, Increase};
        let mut e = EffectRefs::default();
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
            Event::Reversed { effects, .. } => {
                for p in &effects.postings {
                    e.postings.push(PostingRef { position: &p.position, direction: p.direction, grams: p.grams });
                }
                for f in &effects.flows {
                    e.flows.push(FlowRef { lot: &f.lot, kind: f.kind, direction: f.direction, grams: f.grams });
                }
            }
            Event::Genesis { .. }
            | Event::RulesRaised { .. }
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
