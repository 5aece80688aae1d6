//! Commands: what an operator asks the ledger to do. Imperative; decided against state.

use super::ids::{Country, EventId, FacilityId, KeyId, LotId, MaterialId, PartyId};
use super::model::{Form, HolderType, KeyRole, Location, LotSpec, PositionKey, Programme};
use super::quantity::Amount;
use super::tagged::tagged_enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A command: a client-chosen id (the idempotency key), the business time, and the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub id: EventId,
    /// When it happened in the world (business time), given by the operator.
    #[serde(deserialize_with = "crate::canonical::utc::deserialize")]
    pub occurred_at: DateTime<Utc>,
    /// Decoded by kind (`domain::tagged`), not through serde's buffer of the whole object.
    #[serde(deserialize_with = "super::tagged::by_kind")]
    pub action: Action,
}

/// Where stock sits: a party's position without the lot (the lot is named once per command).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holding {
    pub party: PartyId,
    pub location: Location,
    pub programme: Programme,
}

impl Holding {
    pub fn position(&self, lot: &LotId) -> PositionKey {
        PositionKey {
            party: self.party.clone(),
            lot: lot.clone(),
            location: self.location.clone(),
            programme: self.programme,
        }
    }
}

/// Why stock leaves the stockpile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    EmergencyDrawdown,
    Sale,
    Rotation,
    Loan,
    Loss,
    Donation,
}

/// Why a position is corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustReason {
    StockTake,
    Regrade,
    MeasurementCorrection,
    Shrinkage,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Increase,
    Decrease,
}

/// A price, as decimal text and an ISO 4217 currency (never a float).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub amount: String,
    pub currency: String,
}

/// Which figure a `register_figure` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureKind {
    /// Annual national consumption (denominator of "% of consumption", CRMA Art. 22(2)(a)).
    Consumption,
    /// Annual net imports (denominator of days of cover, CRMA Art. 23(2)).
    NetImports,
}

tagged_enum! {
    /// The action of a command. `kind` names it on the wire.
    enum Action, variants in action_by_kind, layout |_, _| None;
    /// The first record of every ledger: names the ledger, its first admin key and the
    /// decision rules it starts under (absent: rules 1, as every ledger before rules existed).
    Genesis = "genesis" {
        ledger: String,
        admin_key: KeyId,
        public_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules: Option<u32>,
    },
    /// Raises the decision rules in force from the next record on (see `domain::rules`).
    RaiseRules = "raise_rules" {
        rules: u32,
    },
    RegisterParty = "register_party" {
        party: PartyId,
        partner: Country,
        name: String,
        holder_type: HolderType,
    },
    RegisterFacility = "register_facility" {
        facility: FacilityId,
        name: String,
        country: Country,
    },
    RegisterKey = "register_key" {
        key: KeyId,
        public_key: String,
        role: KeyRole,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        party: Option<PartyId>,
    },
    RevokeKey = "revoke_key" {
        key: KeyId,
        reason: String,
    },
    RegisterFigure = "register_figure" {
        figure: FigureKind,
        partner: Country,
        material: MaterialId,
        year: i32,
        quantity: Amount,
    },
    /// The release, allocation and distribution rules of a partner's stock of a material
    /// (CRMA Art. 22(2)(c)). `confidential` rules are kept in the log but reports show only a
    /// confidentiality note. A later registration replaces an earlier one.
    RegisterReleaseRules = "register_release_rules" {
        partner: Country,
        material: MaterialId,
        text: String,
        confidential: bool,
    },
    /// From `occurred_at` on, a party's stock of a lot is withheld from reports on national-
    /// security grounds (CRMA Art. 22(1)); reports carry a reasoned notification instead.
    Withhold = "withhold" {
        party: PartyId,
        lot: LotId,
        reason: String,
    },
    /// From `occurred_at` on, a withheld position is reported again.
    Unwithhold = "unwithhold" {
        party: PartyId,
        lot: LotId,
        reason: String,
    },
    /// A party buys a new lot from outside the stockpile.
    Acquire = "acquire" {
        lot: LotSpec,
        to: Holding,
        quantity: Amount,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supplier: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contract: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<Price>,
    },
    /// Stock of one party moves from in-transit or one facility into a facility.
    Store = "store" {
        lot: LotId,
        party: PartyId,
        programme: Programme,
        from: Location,
        to: FacilityId,
        quantity: Amount,
    },
    /// Stock moves from one party to another, optionally to another facility or programme.
    Transfer = "transfer" {
        lot: LotId,
        from: Holding,
        to: Holding,
        quantity: Amount,
    },
    /// Stock leaves the stockpile.
    Release = "release" {
        lot: LotId,
        from: Holding,
        quantity: Amount,
        reason: ReleaseReason,
        recipient: String,
    },
    /// A lot is upgraded or refined into a new lot, consuming the old one.
    Convert = "convert" {
        lot: LotId,
        from: Holding,
        consumed: Amount,
        into: ConvertInto,
        produced: Amount,
    },
    /// A stock-take or re-grade corrects a position.
    Adjust = "adjust" {
        lot: LotId,
        at: Holding,
        direction: Direction,
        quantity: Amount,
        reason: AdjustReason,
        note: String,
    },
    /// Compensates a named earlier event; nothing is ever deleted.
    Reverse = "reverse" {
        target: EventId,
        reason: String,
    },
}

/// The lot a conversion creates (held by the same party, at `to`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertInto {
    pub id: LotId,
    pub form: Form,
    pub purity_ppm: u32,
    pub to: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

impl Action {
    /// Registrations need an admin key; movements need the key of the party they debit.
    pub fn is_registration(&self) -> bool {
        matches!(
            self,
            Action::Genesis { .. }
                | Action::RaiseRules { .. }
                | Action::RegisterParty { .. }
                | Action::RegisterFacility { .. }
                | Action::RegisterKey { .. }
                | Action::RevokeKey { .. }
                | Action::RegisterFigure { .. }
                | Action::RegisterReleaseRules { .. }
                | Action::Withhold { .. }
                | Action::Unwithhold { .. }
        )
    }
}
