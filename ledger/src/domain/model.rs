//! The nouns of the domain: parties, facilities, lots, positions.

use super::ids::{Country, FacilityId, KeyId, LotId, MaterialId, PartyId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who holds stock, as CRMA Art. 22 scopes it: the first three count towards a Member
/// State's strategic stock; `private` stocks are reported as information only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderType {
    PublicAuthority,
    PublicUndertaking,
    MandatedOperator,
    Private,
}

/// The framework a position is earmarked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Programme {
    #[serde(rename = "EU")]
    Eu,
    #[serde(rename = "IEA")]
    Iea,
    #[serde(rename = "NATO")]
    Nato,
    #[serde(rename = "national")]
    National,
}

impl Programme {
    pub fn as_str(self) -> &'static str {
        match self {
            Programme::Eu => "EU",
            Programme::Iea => "IEA",
            Programme::Nato => "NATO",
            Programme::National => "national",
        }
    }
}

impl fmt::Display for Programme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    pub id: PartyId,
    /// The partner (country) the party belongs to.
    pub partner: Country,
    pub name: String,
    pub holder_type: HolderType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facility {
    pub id: FacilityId,
    pub name: String,
    /// Where the site is: stock held abroad matters for reporting.
    pub country: Country,
}

/// What a lot is. Set once, by the acquire (or convert) that creates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotSpec {
    pub id: LotId,
    pub material: MaterialId,
    /// ore, concentrate, oxide, carbonate, hydroxide, metal, alloy, …
    pub form: Form,
    /// Parts per million of the named material, 1..=1_000_000 (999_500 = 99.95 %).
    pub purity_ppm: u32,
    /// Country of origin (ISO 3166-1 alpha-2).
    pub origin: Country,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// Purity scale: parts per million.
pub const PURITY_PPM_MAX: u32 = 1_000_000;

impl LotSpec {
    /// Contained mass of the material in `gross_g` of this lot, rounded down to the gram.
    pub fn contained_g(&self, gross_g: u64) -> u64 {
        contained_g(gross_g, self.purity_ppm)
    }
}

/// Contained mass = gross × purity, in whole grams (rounded down: never claim more than is there).
pub fn contained_g(gross_g: u64, purity_ppm: u32) -> u64 {
    (u128::from(gross_g) * u128::from(purity_ppm) / u128::from(PURITY_PPM_MAX)) as u64
}

/// The chemical or physical form of a lot's material (CRMA Art. 22(2)(a) "chemical form").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Ore,
    Concentrate,
    Oxide,
    Carbonate,
    Hydroxide,
    Sulphate,
    Chloride,
    Metal,
    Alloy,
    Powder,
    Gas,
    Intermediate,
    Other,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Ore => "ore",
            Form::Concentrate => "concentrate",
            Form::Oxide => "oxide",
            Form::Carbonate => "carbonate",
            Form::Hydroxide => "hydroxide",
            Form::Sulphate => "sulphate",
            Form::Chloride => "chloride",
            Form::Metal => "metal",
            Form::Alloy => "alloy",
            Form::Powder => "powder",
            Form::Gas => "gas",
            Form::Intermediate => "intermediate",
            Form::Other => "other",
        }
    }
}

/// Where a position's stock is: at a facility or on its way to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    InTransit,
    Facility(FacilityId),
}

/// The wire spelling of [`Location::InTransit`]; no facility may take this id.
pub const IN_TRANSIT: &str = "in_transit";

impl Location {
    pub fn facility(id: &str) -> Self {
        Location::Facility(FacilityId::new(id))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Location::InTransit => IN_TRANSIT,
            Location::Facility(f) => f.as_str(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = compact_str::CompactString::deserialize(d)?;
        Ok(if s == IN_TRANSIT { Location::InTransit } else { Location::Facility(FacilityId::new(s)) })
    }
}

/// One bucket of stock: (party, lot, location, programme) → grams.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionKey {
    pub party: PartyId,
    pub lot: LotId,
    pub location: Location,
    pub programme: Programme,
}

impl fmt::Display for PositionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}/{}", self.party, self.lot, self.location, self.programme)
    }
}

/// What a key may do. Admin keys register parties, facilities, keys and figures; operator
/// keys move their own party's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    Admin,
    Operator,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: KeyId,
    /// Ed25519 public key, 64 hex characters.
    pub public_key: String,
    pub role: KeyRole,
    /// The party an operator key acts for; admin keys act for the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<PartyId>,
    /// Sequence number of the revocation; commands at or after it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}
