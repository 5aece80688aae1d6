//! Holdings queries: what was held, now or at the end of a date, filtered and grouped.
//!
//! A [`HoldingsQuery`] goes over NATS (`stockpile.v1.holdings.query`) and into the CLI as
//! JSON, and [`Holdings`] comes back; both are a compatibility boundary and serialize
//! deterministically: rows are sorted by their key values, and the same log and query give
//! byte-identical JSON (reports depend on it).
//!
//! Semantics:
//! - **as of** is business time (`occurred_at`): a date means the end of that day, UTC
//!   (every posting with `occurred_at` before the next midnight), an instant includes postings
//!   at exactly that instant. Back-dated records — recorded later, dated earlier — count on
//!   the date they are dated. Without `as_of`, the holdings after every folded record.
//! - **filters** are lists; a position matches when, for every non-empty list, its value is
//!   one of the list's. A value the log never mentioned matches nothing.
//! - **totals**: `gross_g` is the sum of positions; `contained_g` is the contained mass of
//!   the named material, Σ gross × purity, summed exactly (in gram·ppm) and rounded toward
//!   zero (down, for any real holding) to the gram once per row — so for a row of one lot it
//!   is exactly
//!   [`stockpile_ledger::domain::model::contained_g`], and splitting a lot over many positions
//!   loses no grams to rounding. Tonnes are the same figures as exact decimal text
//!   (6 decimals: a tonne is 10⁶ g).
//! - Figures are signed. Under the ledger's rules 2 no position is negative on any date;
//!   a log decided under rules 1 (`schemas/CANONICAL.md` §5) may hold a move dated before
//!   the stock it moves arrived, which makes an as-of figure negative, and the answer says
//!   so rather than hiding it.
//! - Cost: a query that neither filters nor groups by lot reads one balance per class
//!   (thousands, whatever the number of lots); one by lot reads every posting of the
//!   matching classes dated before `as_of` (or, without `as_of`, every position).

use crate::views::fxhash::FxHashMap;
use crate::views::positions::{location, Attrs, NO_COUNTRY};
use crate::views::{Registry, Views};
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde::de::{self, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use stockpile_ledger::canonical::{hex_hash, Hash};
use stockpile_ledger::domain::model::PURITY_PPM_MAX;
use stockpile_ledger::domain::quantity::format_tonnes;
use stockpile_ledger::domain::{Country, Form, HolderType, Location, LotId, MaterialId, PartyId, Programme};

/// Most values one filter may list. A query names a few partners or materials; a thousand
/// covers every lot list an operator would paste, and bounds the work of one request.
pub const FILTER_VALUES_MAX: usize = 1024;

/// Decimals of tonnes text: 6 is exact to the gram, the ledger's unit. Renderers round for
/// display; the query never does.
pub const TONNES_DECIMALS: u32 = 6;

/// A point in business time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsOf {
    /// The end of this day, UTC. Wire form `2026-03-31`.
    Date(NaiveDate),
    /// This instant, inclusive. Wire form RFC 3339, `2026-03-31T12:00:00Z`.
    Instant(DateTime<Utc>),
}

impl AsOf {
    /// The exclusive bound in nanoseconds since the epoch: postings with `at < cutoff` count.
    /// Times beyond what the index can hold (before 1677 or after 2262) clamp: nothing or
    /// everything.
    pub(crate) fn cutoff_ns(&self) -> i64 {
        let (t, after) = match self {
            AsOf::Date(d) => match d.succ_opt() {
                Some(next) => (next.and_time(NaiveTime::MIN).and_utc(), 0),
                None => return i64::MAX,
            },
            AsOf::Instant(t) => (*t, 1),
        };
        match t.timestamp_nanos_opt() {
            Some(ns) => ns.saturating_add(after),
            None if t.timestamp() > 0 => i64::MAX,
            None => i64::MIN,
        }
    }
}

/// Why a text is not an [`AsOf`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is neither a date (2026-03-31) nor an RFC 3339 time (2026-03-31T12:00:00Z)")]
pub struct AsOfError {
    pub text: String,
}

impl FromStr for AsOf {
    type Err = AsOfError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AsOfError { text: s.to_string() };
        if s.len() == 10 {
            return NaiveDate::parse_from_str(s, "%Y-%m-%d").map(AsOf::Date).map_err(|_| err());
        }
        DateTime::parse_from_rfc3339(s).map(|t| AsOf::Instant(t.with_timezone(&Utc))).map_err(|_| err())
    }
}

impl fmt::Display for AsOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsOf::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            AsOf::Instant(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

impl Serialize for AsOf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AsOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// What a query filters and groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The country the holding party belongs to.
    Partner,
    Party,
    HolderType,
    Material,
    Form,
    /// A lot's purity in parts per million.
    Purity,
    /// A lot's country of origin.
    Origin,
    Lot,
    /// The facility, or `in_transit`.
    Facility,
    /// The country the facility is in; `null` in a row key for stock in transit, which is in
    /// no country (`schemas/v1/holdings.schema.json`).
    FacilityCountry,
    Programme,
}

/// Every dimension, in declaration order.
pub const DIMENSIONS: [Dimension; 11] = [
    Dimension::Partner,
    Dimension::Party,
    Dimension::HolderType,
    Dimension::Material,
    Dimension::Form,
    Dimension::Purity,
    Dimension::Origin,
    Dimension::Lot,
    Dimension::Facility,
    Dimension::FacilityCountry,
    Dimension::Programme,
];

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Partner => "partner",
            Dimension::Party => "party",
            Dimension::HolderType => "holder_type",
            Dimension::Material => "material",
            Dimension::Form => "form",
            Dimension::Purity => "purity",
            Dimension::Origin => "origin",
            Dimension::Lot => "lot",
            Dimension::Facility => "facility",
            Dimension::FacilityCountry => "facility_country",
            Dimension::Programme => "programme",
        }
    }

    /// The interned value in this dimension of a class's position of `lot` (for grouping).
    fn of(self, a: &Attrs, lot: u32) -> u32 {
        let k = &a.key;
        match self {
            Dimension::Partner => a.partner,
            Dimension::Party => k.party,
            Dimension::HolderType => a.holder_type as u32,
            Dimension::Material => k.material,
            Dimension::Form => k.form as u32,
            Dimension::Purity => k.purity_ppm,
            Dimension::Origin => k.origin,
            Dimension::Lot => lot,
            Dimension::Facility => k.location,
            Dimension::FacilityCountry => a.facility_country,
            Dimension::Programme => k.programme as u32,
        }
    }

    /// The value in this dimension, as it appears in answers.
    fn value(self, a: &Attrs, lot: u32, r: &Registry) -> KeyValue {
        let text = |s: &str| KeyValue::Text(s.to_string());
        let k = &a.key;
        match self {
            Dimension::Partner => text(r.countries.key(a.partner).as_str()),
            Dimension::Party => text(r.parties.key(k.party).as_str()),
            Dimension::HolderType => KeyValue::Text(wire_name(&a.holder_type)),
            Dimension::Material => text(r.materials.key(k.material).as_str()),
            Dimension::Form => text(k.form.as_str()),
            Dimension::Purity => KeyValue::Ppm(k.purity_ppm),
            Dimension::Origin => text(r.countries.key(k.origin).as_str()),
            Dimension::Lot => text(r.lots.key(lot).as_str()),
            Dimension::Facility => text(location(r, k.location).as_str()),
            Dimension::FacilityCountry if a.facility_country == NO_COUNTRY => KeyValue::Null,
            Dimension::FacilityCountry => text(r.countries.key(a.facility_country).as_str()),
            Dimension::Programme => text(k.programme.as_str()),
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dimension {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DIMENSIONS.into_iter().find(|d| d.as_str() == s).ok_or_else(|| QueryError::UnknownDimension { text: s.into() })
    }
}

/// The serde name of a unit enum variant (`public_authority`).
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A holdings question. Every filter is optional (empty: no filter) and takes one value or a
/// list; `group_by` names the row key (empty: one row with the total).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldingsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<AsOf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub partner: Vec<Country>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub party: Vec<PartyId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub holder_type: Vec<HolderType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub material: Vec<MaterialId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub form: Vec<Form>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub origin: Vec<Country>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub lot: Vec<LotId>,
    /// Facility ids, or `in_transit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub facility: Vec<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub facility_country: Vec<Country>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub programme: Vec<Programme>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<Dimension>,
    /// Paging: rows to skip (of the sorted rows). A page's `next` is the offset to ask next.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Paging: at most this many rows. Omitted: every row from `offset` on — over NATS, as
    /// many as fit one message, with `next` saying where the rest begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `"NL"` or `["NL", "DE"]`.
fn one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct OneOrMany<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a value or a list of values")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            T::deserialize(v.into_deserializer()).map(|x| vec![x])
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
            Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(OneOrMany(PhantomData))
}

/// Why a query cannot be answered. Each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("group_by names {dimension} twice: name each dimension once")]
    DuplicateDimension { dimension: Dimension },
    #[error("filter {filter} lists {count} values, more than {FILTER_VALUES_MAX}: split the query")]
    TooManyValues { filter: &'static str, count: usize },
    #[error("{text:?} is not a dimension: use one of partner, party, holder_type, material, form, purity, origin, lot, facility, facility_country, programme")]
    UnknownDimension { text: String },
    #[error("the {what} total does not fit a signed 64-bit number of grams: narrow the query")]
    Overflow { what: &'static str },
}

impl HoldingsQuery {
    /// Checks the query's shape (not its values: unknown values simply match nothing).
    pub fn validate(&self) -> Result<(), QueryError> {
        let lists = [
            ("partner", self.partner.len()),
            ("party", self.party.len()),
            ("holder_type", self.holder_type.len()),
            ("material", self.material.len()),
            ("form", self.form.len()),
            ("origin", self.origin.len()),
            ("lot", self.lot.len()),
            ("facility", self.facility.len()),
            ("facility_country", self.facility_country.len()),
            ("programme", self.programme.len()),
        ];
        if let Some((filter, count)) = lists.into_iter().find(|(_, n)| *n > FILTER_VALUES_MAX) {
            return Err(QueryError::TooManyValues { filter, count });
        }
        for (i, d) in self.group_by.iter().enumerate() {
            if self.group_by[..i].contains(d) {
                return Err(QueryError::DuplicateDimension { dimension: *d });
            }
        }
        Ok(())
    }
}

/// A row's key: its value in each `group_by` dimension, in that order. On the wire a JSON
/// object in the same order: `{"partner":"NL","material":"gallium"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupKey(pub Vec<(Dimension, KeyValue)>);

impl GroupKey {
    pub fn get(&self, dimension: Dimension) -> Option<&KeyValue> {
        self.0.iter().find(|(d, _)| *d == dimension).map(|(_, v)| v)
    }
}

impl Serialize for GroupKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (d, v) in &self.0 {
            map.serialize_entry(d, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for GroupKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> de::Visitor<'de> for Entries {
            type Value = GroupKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of dimension: value")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<GroupKey, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Dimension, KeyValue>()? {
                    out.push(entry);
                }
                Ok(GroupKey(out))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// One dimension's value in a row key. Ordered null < number < text, which is how rows sort.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// No value, JSON `null`: the facility country of stock in transit. The key keeps the
    /// member, so every row has one per `group_by` dimension.
    Null,
    /// Purity, parts per million.
    Ppm(u32),
    Text(String),
}

impl KeyValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            KeyValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Sums over a set of positions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub gross_g: i64,
    /// Σ gross × purity, rounded toward zero to the gram.
    pub contained_g: i64,
    /// `gross_g` in tonnes, exact ([`TONNES_DECIMALS`] places).
    pub gross_t: String,
    pub contained_t: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldingsRow {
    pub key: GroupKey,
    pub totals: Totals,
}

/// The answer to a [`HoldingsQuery`], cut at ledger record `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdings {
    pub query: HoldingsQuery,
    /// The last record folded into this answer.
    pub seq: u64,
    /// That record's hash: with `seq`, names exactly which log the answer is about.
    #[serde(with = "hex_hash")]
    pub head_hash: Hash,
    /// Non-empty groups, sorted by key: those from the query's `offset`, at most its `limit`.
    pub rows: Vec<HoldingsRow>,
    /// The sum over every row, on every page.
    pub total: Totals,
    /// Where the next page begins (its `offset`), when rows were left out after these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// Running sums of one group. Contained mass is kept in gram·ppm (micrograms), exact.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    /// A class and lot of the group, whose attributes name the group's key.
    class: u32,
    lot: u32,
    gross_g: i128,
    contained_ug: i128,
}

impl Acc {
    fn add(&mut self, other: &Acc) {
        self.gross_g += other.gross_g;
        self.contained_ug += other.contained_ug;
    }

    fn add_grams(&mut self, grams: i64, purity_ppm: u32) {
        self.gross_g += i128::from(grams);
        self.contained_ug += i128::from(grams) * i128::from(purity_ppm);
    }

    fn totals(&self) -> Result<Totals, QueryError> {
        let gross_g = i64::try_from(self.gross_g).map_err(|_| QueryError::Overflow { what: "gross" })?;
        let contained = self.contained_ug / i128::from(PURITY_PPM_MAX);
        let contained_g = i64::try_from(contained).map_err(|_| QueryError::Overflow { what: "contained" })?;
        Ok(Totals { gross_g, contained_g, gross_t: tonnes(gross_g), contained_t: tonnes(contained_g) })
    }
}

/// Signed grams as exact tonnes text.
pub fn tonnes(grams: i64) -> String {
    let text = format_tonnes(grams.unsigned_abs(), TONNES_DECIMALS);
    if grams < 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// A filter over one dimension: which interned values pass. `None`: no filter.
type Members = Option<Vec<bool>>;

/// A query's filters, resolved to interned values once per query.
struct Filter {
    partner: Members,
    party: Members,
    holder_type: Members,
    material: Members,
    form: Members,
    origin: Members,
    lot: Members,
    location: Members,
    facility_country: Members,
    programme: Members,
}

fn members<T>(values: &[T], size: usize, index: impl Fn(&T) -> Option<u32>) -> Members {
    if values.is_empty() {
        return None;
    }
    let mut set = vec![false; size];
    for i in values.iter().filter_map(index) {
        if let Some(slot) = set.get_mut(i as usize) {
            *slot = true;
        }
    }
    Some(set)
}

fn pass(members: &Members, value: u32) -> bool {
    match members {
        None => true,
        Some(set) => set.get(value as usize).copied().unwrap_or(false),
    }
}

/// Size of a membership set over a fieldless enum's discriminants: more than any of ours has.
const ENUM_VARIANTS_MAX: usize = 64;

impl Filter {
    fn new(q: &HoldingsQuery, r: &Registry) -> Filter {
        let countries = r.countries.len();
        Filter {
            partner: members(&q.partner, countries, |c| r.countries.get(c)),
            party: members(&q.party, r.parties.len(), |p| r.parties.get(p)),
            holder_type: members(&q.holder_type, ENUM_VARIANTS_MAX, |h| Some(*h as u32)),
            material: members(&q.material, r.materials.len(), |m| r.materials.get(m)),
            form: members(&q.form, ENUM_VARIANTS_MAX, |f| Some(*f as u32)),
            origin: members(&q.origin, countries, |c| r.countries.get(c)),
            lot: members(&q.lot, r.lots.len(), |l| r.lots.get(l)),
            location: members(&q.facility, r.facilities.len() + 1, |l| match l {
                Location::InTransit => Some(crate::views::positions::IN_TRANSIT_LOCATION),
                Location::Facility(f) => r.facilities.get(f).map(|i| i + 1),
            }),
            facility_country: members(&q.facility_country, countries, |c| r.countries.get(c)),
            programme: members(&q.programme, ENUM_VARIANTS_MAX, |p| Some(*p as u32)),
        }
    }

    /// Whether a class passes every filter but the lot filter.
    fn matches(&self, a: &Attrs) -> bool {
        let k = &a.key;
        pass(&self.material, k.material)
            && pass(&self.partner, a.partner)
            && pass(&self.party, k.party)
            && pass(&self.holder_type, a.holder_type as u32)
            && pass(&self.form, k.form as u32)
            && pass(&self.origin, k.origin)
            && pass(&self.location, k.location)
            && pass(&self.facility_country, a.facility_country)
            && pass(&self.programme, k.programme as u32)
    }
}

/// A group's key while summing: its interned values, unused slots 0.
type Slots = [u32; DIMENSIONS.len()];

impl Views {
    /// Answers a holdings query from the views as they stand.
    pub fn holdings(&self, query: &HoldingsQuery) -> Result<Holdings, QueryError> {
        query.validate()?;
        let filter = Filter::new(query, &self.registry);
        let cutoff = query.as_of.map(|a| a.cutoff_ns());
        let by_lot = filter.lot.is_some() || query.group_by.contains(&Dimension::Lot);
        let groups = match (by_lot, cutoff) {
            (false, _) => self.sum_classes(query, &filter, cutoff),
            (true, None) => self.sum_positions_now(query, &filter),
            (true, Some(cutoff)) => self.sum_positions_before(query, &filter, cutoff),
        };
        let dims = &query.group_by;
        let mut total = Acc::default();
        let mut rows = Vec::with_capacity(groups.len());
        for acc in groups.values() {
            total.add(acc);
            let attrs = &self.positions.classes[acc.class as usize].attrs;
            let key = GroupKey(dims.iter().map(|d| (*d, d.value(attrs, acc.lot, &self.registry))).collect());
            rows.push(HoldingsRow { key, totals: acc.totals()? });
        }
        // Groups whose positions cancel out (possible only as of a date) hold nothing.
        rows.retain(|r| r.totals.gross_g != 0 || r.totals.contained_g != 0);
        rows.sort_by(|a, b| a.key.0.iter().map(|(_, v)| v).cmp(b.key.0.iter().map(|(_, v)| v)));
        let total = total.totals()?;
        let count = rows.len() as u64;
        let from = query.offset.min(count);
        let to = query.limit.map_or(count, |l| from.saturating_add(u64::from(l)).min(count));
        rows.truncate(to as usize);
        rows.drain(..from as usize);
        let next = (to < count).then_some(to);
        Ok(Holdings { query: query.clone(), seq: self.head.seq, head_hash: self.head.hash, rows, total, next })
    }

    /// Without lots: one balance per class.
    fn sum_classes(&self, query: &HoldingsQuery, filter: &Filter, cutoff: Option<i64>) -> FxHashMap<Slots, Acc> {
        let mut groups = FxHashMap::default();
        for (c, class) in self.positions.classes.iter().enumerate() {
            if !filter.matches(&class.attrs) {
                continue;
            }
            let gross = match cutoff {
                None => class.current,
                Some(cutoff) => class.balance_before(cutoff),
            };
            if gross != 0 {
                group(&mut groups, query, &class.attrs, c as u32, 0).add_grams(gross, class.attrs.key.purity_ppm);
            }
        }
        groups
    }

    /// By lot, now: every position's current balance.
    fn sum_positions_now(&self, query: &HoldingsQuery, filter: &Filter) -> FxHashMap<Slots, Acc> {
        let mut groups = FxHashMap::default();
        let classes = &self.positions.classes;
        for row in &self.positions.rows {
            let attrs = &classes[row.class as usize].attrs;
            if row.current != 0 && pass(&filter.lot, row.lot) && filter.matches(attrs) {
                group(&mut groups, query, attrs, row.class, row.lot).add_grams(row.current, attrs.key.purity_ppm);
            }
        }
        groups
    }

    /// By lot, as of `cutoff`: each matching class's points before it, summed per position.
    fn sum_positions_before(&self, query: &HoldingsQuery, filter: &Filter, cutoff: i64) -> FxHashMap<Slots, Acc> {
        let rows = &self.positions.rows;
        // Dense: a query by lot over everything touches most positions.
        let mut balances: Vec<i64> = vec![0; rows.len()];
        let mut touched: Vec<u32> = Vec::new();
        for class in &self.positions.classes {
            if !filter.matches(&class.attrs) {
                continue;
            }
            for block in class.blocks.iter().take_while(|b| b.points[0].at < cutoff) {
                for (i, p) in block.points.iter().enumerate().take_while(|(_, p)| p.at < cutoff) {
                    if pass(&filter.lot, rows[p.position as usize].lot) {
                        let balance = &mut balances[p.position as usize];
                        if *balance == 0 {
                            touched.push(p.position);
                        }
                        *balance += block.delta(i);
                    }
                }
            }
        }
        // A position may be listed twice if its balance passed through zero: sum it once.
        touched.sort_unstable();
        touched.dedup();
        let mut groups = FxHashMap::default();
        for position in touched {
            let gross = balances[position as usize];
            let row = &rows[position as usize];
            let attrs = &self.positions.classes[row.class as usize].attrs;
            if gross != 0 {
                group(&mut groups, query, attrs, row.class, row.lot).add_grams(gross, attrs.key.purity_ppm);
            }
        }
        groups
    }
}

/// The group of a class's position of `lot` (`lot` is read only when grouping by lot).
fn group<'g>(
    groups: &'g mut FxHashMap<Slots, Acc>,
    query: &HoldingsQuery,
    attrs: &Attrs,
    class: u32,
    lot: u32,
) -> &'g mut Acc {
    let mut slots: Slots = [0; DIMENSIONS.len()];
    for (slot, d) in slots.iter_mut().zip(&query.group_by) {
        *slot = d.of(attrs, lot);
    }
    groups.entry(slots).or_insert(Acc { class, lot, ..Acc::default() })
}
