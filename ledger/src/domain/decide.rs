//! `decide`: does this command apply to this state, and what event does it make?
//!
//! Pure: the clock is passed in as `now`, earlier events come through [`History`], and the
//! signature has been checked by the caller (that is what a [`Signer`] stands for).

use super::command::{Action, Command, ConvertInto, Direction, Holding, Price};
use super::event::{Effects, Event};
use super::ids::{Country, EventId, FacilityId, KeyId, LotId, MaterialId, PartyId};
use super::model::{Facility, KeyEntry, KeyRole, Location, LotSpec, Party, PositionKey, IN_TRANSIT, PURITY_PPM_MAX};
use super::quantity::{Amount, Quantity, Unit};
use super::reference::Reference;
use super::rejection::{Rejection, ShortAt};
use super::rules;
use super::state::State;
use chrono::{DateTime, TimeZone, Utc};

/// How far `occurred_at` may lie after ledger time, in seconds: operators' clocks drift, but a
/// movement dated tomorrow is a typo, not skew.
pub const OCCURRED_AT_FUTURE_SKEW_MAX_S: i64 = 300;

/// Longest free text (names, reasons, notes, references), in characters.
pub const TEXT_CHARS_MAX: usize = 256;

/// Longest release rules text, in characters: rules are a paragraph or two, not a name.
pub const RULES_TEXT_CHARS_MAX: usize = 4096;

/// Years a reference figure may be registered for.
pub const FIGURE_YEARS: std::ops::RangeInclusive<i32> = 1950..=2200;

/// The earliest business time accepted: before it, a date is a typo.
pub fn occurred_at_min() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1950, 1, 1, 0, 0, 0).single().expect("valid constant date")
}

/// The key that signed a command, whose signature the caller has verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub key: KeyId,
    pub public_key: String,
    /// The partner whose channel the command came through (`stockpile.v1.ledger.append.<P>`,
    /// which only that partner's NATS user may use); `None` for the operator's own ledger
    /// and replays. A command with an origin must be signed by a key of that partner.
    pub origin: Option<Country>,
}

/// Earlier records, for idempotency and reversals: the state keeps only a hash of each event
/// id and its seq ([`super::index::EventIndex`]), and reads the rest back through this. The
/// store provides it (and, for a group being decided, its records not yet written).
pub trait History {
    /// The event recorded at `seq`, if any.
    fn event_at(&self, seq: u64) -> Option<Event>;
    /// The event id and command digest (SHA-256 of the canonical command) recorded at `seq`.
    fn recorded_id(&self, seq: u64) -> Option<(EventId, [u8; 32])>;
}

/// The last record a [`History`] read, kept for the next ask: deciding a reversal asks for
/// its target's id and event more than once, and reading one record can cost a whole frame.
#[derive(Debug)]
pub(crate) struct LastRead<T>(std::cell::RefCell<Option<(u64, T)>>);

impl<T: Clone> LastRead<T> {
    pub(crate) fn new() -> LastRead<T> {
        LastRead(std::cell::RefCell::new(None))
    }

    /// The record at `seq`: the one kept if it is that one, else `read()`'s (then kept).
    pub(crate) fn get_or_read(&self, seq: u64, read: impl FnOnce() -> Option<T>) -> Option<T> {
        if let Some((_, kept)) = self.0.borrow().as_ref().filter(|(s, _)| *s == seq) {
            return Some(kept.clone());
        }
        let body = read()?;
        *self.0.borrow_mut() = Some((seq, body.clone()));
        Some(body)
    }
}

/// What a command comes to. `New` is much larger than `Duplicate`, but a decision is made
/// and consumed at once, never stored in bulk, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new event, to be appended at the next sequence number.
    New(Event),
    /// This id was already recorded with the same content: answer with its sequence number.
    Duplicate { seq: u64 },
}

/// Decides `command` against `state` at ledger time `now`.
///
/// `digest` is the SHA-256 of the canonical command; it tells a resend from a conflict.
///
/// On a partner's channel (`signer.origin`), a refusal says nothing of other partners'
/// records: no seq of a conflicting id, no party of another partner, no id of a reversal.
pub fn decide(
    state: &State,
    command: &Command,
    signer: &Signer,
    digest: &[u8; 32],
    now: DateTime<Utc>,
    history: &dyn History,
) -> Result<Decision, Rejection> {
    let decided = decide_unredacted(state, command, signer, digest, now, history);
    match &signer.origin {
        Some(origin) => decided.map_err(|r| for_partner(state, origin, r)),
        None => decided,
    }
}

/// A refusal as a partner's channel may see it: names only what is the partner's own.
fn for_partner(state: &State, origin: &Country, rejection: Rejection) -> Rejection {
    match rejection {
        Rejection::IdConflict { event_id, .. } => Rejection::IdConflict { event_id, seq: None },
        Rejection::AlreadyReversed { target, .. } => Rejection::AlreadyReversed { target, by: None },
        Rejection::NotOwner { key, key_party, party } => {
            let own = |p: &String| state.parties.get(&PartyId::new(p.as_str())).is_some_and(|p| &p.partner == origin);
            Rejection::NotOwner { key, key_party, party: party.filter(own) }
        }
        other => other,
    }
}

fn decide_unredacted(
    state: &State,
    command: &Command,
    signer: &Signer,
    digest: &[u8; 32],
    now: DateTime<Utc>,
    history: &dyn History,
) -> Result<Decision, Rejection> {
    command.id.check()?;
    if let Some(origin) = &signer.origin {
        // Before anything else, the duplicate check included: a partner learns nothing
        // about commands that are not its own.
        check_origin(state, signer, origin)?;
    }
    if let Some(entry) = state.events.find(&command.id, history) {
        return if entry.digest == *digest {
            Ok(Decision::Duplicate { seq: entry.seq })
        } else {
            Err(Rejection::IdConflict { event_id: command.id.clone(), seq: Some(entry.seq) })
        };
    }
    check_time(command.occurred_at, now)?;
    if let Action::Genesis { ledger, admin_key, public_key, rules } = &command.action {
        return genesis(state, signer, ledger, admin_key, public_key, *rules).map(Decision::New);
    }
    if state.ledger.is_none() {
        return Err(Rejection::NotInitialised);
    }
    let key = authenticate(state, signer)?;
    let event = if command.action.is_registration() {
        if key.role != KeyRole::Admin {
            return registration_by_operator(state, key, &command.action);
        }
        register(state, &command.action)?
    } else {
        let (event, unit) = movement(state, &command.action, history)?;
        // Authority first: a key that may not touch a position learns nothing of its balance.
        let effects = event.effects();
        authorise(key, &effects)?;
        if state.rules >= rules::BUSINESS_TIME {
            check_effects_over_time(state, &effects, command.occurred_at, unit)?;
        } else {
            check_effects(state, &effects, unit)?;
        }
        event
    };
    Ok(Decision::New(event))
}

fn check_time(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Rejection> {
    if occurred_at < occurred_at_min() {
        return Err(Rejection::OccurredTooEarly { occurred_at, min: occurred_at_min() });
    }
    if (occurred_at - now).num_seconds() > OCCURRED_AT_FUTURE_SKEW_MAX_S {
        return Err(Rejection::OccurredInFuture { occurred_at, now, skew_max_s: OCCURRED_AT_FUTURE_SKEW_MAX_S });
    }
    Ok(())
}

fn genesis(
    state: &State,
    signer: &Signer,
    ledger: &str,
    admin_key: &KeyId,
    public_key: &str,
    starts_under: Option<u32>,
) -> Result<Event, Rejection> {
    if state.ledger.is_some() || state.head.seq != 0 {
        return Err(Rejection::AlreadyInitialised);
    }
    if let Some(r) = starts_under {
        check_rules(r, rules::SEQUENCE_ORDER - 1)?;
    }
    text("ledger", ledger)?;
    admin_key.check()?;
    check_public_key(public_key)?;
    if signer.key != *admin_key || signer.public_key != public_key {
        return Err(Rejection::KeyMismatch { key: signer.key.clone() });
    }
    let reference = Reference::get();
    Ok(Event::Genesis {
        ledger: ledger.to_string(),
        admin_key: KeyEntry {
            id: admin_key.clone(),
            public_key: public_key.to_string(),
            role: KeyRole::Admin,
            party: None,
            revoked_at: None,
        },
        materials_version: reference.materials_version.clone(),
        partners_version: reference.partners_version.clone(),
        rules: starts_under,
    })
}

/// A command from a partner's channel must be signed by a registered key of one of that
/// partner's parties.
fn check_origin(state: &State, signer: &Signer, origin: &Country) -> Result<(), Rejection> {
    let key = state.keys.get(&signer.key);
    let partner = key.and_then(|k| k.party.as_ref()).and_then(|p| state.parties.get(p)).map(|p| &p.partner);
    if partner == Some(origin) {
        return Ok(());
    }
    let key_partner = match (key, partner) {
        (None, _) => "no partner (the key is not registered)".to_string(),
        (Some(_), None) => "no partner (an admin key)".to_string(),
        (Some(_), Some(p)) => format!("partner {p}"),
    };
    Err(Rejection::WrongOrigin { key: signer.key.clone(), origin: origin.clone(), key_partner })
}

/// The registered, unrevoked key that signed, with the public key that verified.
fn authenticate<'s>(state: &'s State, signer: &Signer) -> Result<&'s KeyEntry, Rejection> {
    let key =
        state.keys.get(&signer.key).ok_or_else(|| Rejection::Unknown { what: "key", id: signer.key.to_string() })?;
    if key.public_key != signer.public_key {
        return Err(Rejection::KeyMismatch { key: signer.key.clone() });
    }
    if let Some(revoked_at) = key.revoked_at {
        return Err(Rejection::KeyRevoked { key: signer.key.clone(), revoked_at });
    }
    Ok(key)
}

/// An operator may revoke its own party's keys (a lost laptop cannot wait for an admin);
/// every other registration needs an admin key.
fn registration_by_operator(state: &State, key: &KeyEntry, action: &Action) -> Result<Decision, Rejection> {
    if let Action::RevokeKey { key: target, .. } = action {
        if let Some(entry) = state.keys.get(target) {
            if entry.party.is_some() && entry.party == key.party {
                return register(state, action).map(Decision::New);
            }
        }
    }
    Err(Rejection::NotAdmin { key: key.id.clone() })
}

fn register(state: &State, action: &Action) -> Result<Event, Rejection> {
    let reference = Reference::get();
    match action {
        Action::RaiseRules { rules } => {
            check_rules(*rules, state.rules)?;
            Ok(Event::RulesRaised { rules: *rules })
        }
        Action::RegisterParty { party, partner, name, holder_type } => {
            party.check()?;
            known_partner(partner)?;
            text("name", name)?;
            not_registered(state.parties.contains_key(party), "party", party.as_str())?;
            Ok(Event::PartyRegistered {
                party: Party {
                    id: party.clone(),
                    partner: partner.clone(),
                    name: name.clone(),
                    holder_type: *holder_type,
                },
            })
        }
        Action::RegisterFacility { facility, name, country } => {
            facility.check()?;
            if facility.as_str() == IN_TRANSIT {
                return Err(Rejection::InvalidField {
                    field: "facility",
                    reason: format!("{IN_TRANSIT:?} is reserved"),
                });
            }
            country.check("country")?;
            text("name", name)?;
            not_registered(state.facilities.contains_key(facility), "facility", facility.as_str())?;
            Ok(Event::FacilityRegistered {
                facility: Facility { id: facility.clone(), name: name.clone(), country: country.clone() },
            })
        }
        Action::RegisterKey { key, public_key, role, party } => {
            key.check()?;
            check_public_key(public_key)?;
            not_registered(state.keys.contains_key(key), "key", key.as_str())?;
            match (role, party) {
                (KeyRole::Operator, Some(p)) => known_party(state, p).map(|_| ())?,
                (KeyRole::Operator, None) => {
                    return Err(Rejection::InvalidField {
                        field: "party",
                        reason: "an operator key needs a party".into(),
                    })
                }
                (KeyRole::Admin, Some(_)) => {
                    return Err(Rejection::InvalidField {
                        field: "party",
                        reason: "an admin key acts for no party".into(),
                    })
                }
                (KeyRole::Admin, None) => {}
            }
            let entry = KeyEntry {
                id: key.clone(),
                public_key: public_key.clone(),
                role: *role,
                party: party.clone(),
                revoked_at: None,
            };
            Ok(Event::KeyRegistered { key: entry })
        }
        Action::RevokeKey { key, reason } => {
            text("reason", reason)?;
            let entry = state.keys.get(key).ok_or_else(|| Rejection::Unknown { what: "key", id: key.to_string() })?;
            if let Some(revoked_at) = entry.revoked_at {
                return Err(Rejection::KeyRevoked { key: key.clone(), revoked_at });
            }
            Ok(Event::KeyRevoked { key: key.clone(), reason: reason.clone() })
        }
        Action::RegisterFigure { figure, partner, material, year, quantity } => {
            known_partner(partner)?;
            known_material(material)?;
            if !FIGURE_YEARS.contains(year) {
                return Err(Rejection::InvalidField {
                    field: "year",
                    reason: format!("{year} is outside {}..={}", FIGURE_YEARS.start(), FIGURE_YEARS.end()),
                });
            }
            let _ = reference;
            Ok(Event::FigureRegistered {
                figure: *figure,
                partner: partner.clone(),
                material: material.clone(),
                year: *year,
                quantity: qty("quantity", quantity)?,
            })
        }
        Action::RegisterReleaseRules { partner, material, text: rules, confidential } => {
            known_partner(partner)?;
            known_material(material)?;
            text_max("text", rules, RULES_TEXT_CHARS_MAX)?;
            Ok(Event::ReleaseRulesRegistered {
                partner: partner.clone(),
                material: material.clone(),
                text: rules.clone(),
                confidential: *confidential,
            })
        }
        Action::Withhold { party, lot, reason } | Action::Unwithhold { party, lot, reason } => {
            known_party(state, party)?;
            known_lot(state, lot)?;
            text("reason", reason)?;
            let (party, lot, reason) = (party.clone(), lot.clone(), reason.clone());
            Ok(match action {
                Action::Withhold { .. } => Event::Withheld { party, lot, reason },
                _ => Event::Unwithheld { party, lot, reason },
            })
        }
        _ => unreachable!("register is called for registrations only"),
    }
}

/// Rules must be known to this build and above `current`: they are raised, never lowered.
fn check_rules(requested: u32, current: u32) -> Result<(), Rejection> {
    let reason = if !rules::known(requested) {
        format!("{requested} is not a rules version this ledger knows (1..={})", rules::LATEST)
    } else if requested <= current {
        format!("{requested} is not above the rules in force ({current}): rules are only ever raised")
    } else {
        return Ok(());
    };
    Err(Rejection::InvalidField { field: "rules", reason })
}

/// The event a movement makes, and the unit its operator stated the quantity taken in (for
/// messages: a refusal names quantities as the operator wrote them).
fn movement(state: &State, action: &Action, history: &dyn History) -> Result<(Event, Unit), Rejection> {
    let event = movement_event(state, action, history)?;
    let unit = match (&event, action) {
        (Event::Reversed { .. }, Action::Reverse { target, .. }) => state
            .events
            .find(target, history)
            .and_then(|e| history.event_at(e.seq))
            .map_or(Unit::G, |original| stated_unit(&original)),
        _ => stated_unit(&event),
    };
    Ok((event, unit))
}

/// The unit of the quantity an event takes from (or, for an acquisition, adds to) a position.
fn stated_unit(event: &Event) -> Unit {
    match event {
        Event::Acquired { quantity, .. }
        | Event::Stored { quantity, .. }
        | Event::Transferred { quantity, .. }
        | Event::Released { quantity, .. }
        | Event::Adjusted { quantity, .. } => quantity.stated.unit,
        Event::Converted { consumed, .. } => consumed.stated.unit,
        _ => Unit::G,
    }
}

fn movement_event(state: &State, action: &Action, history: &dyn History) -> Result<Event, Rejection> {
    match action {
        Action::Acquire { lot, to, quantity, supplier, contract, price } => {
            check_new_lot(state, lot)?;
            holding(state, to)?;
            opt_text("supplier", supplier)?;
            opt_text("contract", contract)?;
            if let Some(p) = price {
                check_price(p)?;
            }
            Ok(Event::Acquired {
                lot: lot.clone(),
                to: to.position(&lot.id),
                quantity: qty("quantity", quantity)?,
                supplier: supplier.clone(),
                contract: contract.clone(),
                price: price.clone(),
            })
        }
        Action::Store { lot, party, programme, from, to, quantity } => {
            known_lot(state, lot)?;
            let src = Holding { party: party.clone(), location: from.clone(), programme: *programme };
            let dst = Holding { party: party.clone(), location: Location::Facility(to.clone()), programme: *programme };
            holding(state, &src)?;
            holding(state, &dst)?;
            let (from, to) = distinct(src.position(lot), dst.position(lot))?;
            Ok(Event::Stored { from, to, quantity: qty("quantity", quantity)? })
        }
        Action::Transfer { lot, from, to, quantity } => {
            known_lot(state, lot)?;
            holding(state, from)?;
            holding(state, to)?;
            let (from, to) = distinct(from.position(lot), to.position(lot))?;
            Ok(Event::Transferred { from, to, quantity: qty("quantity", quantity)? })
        }
        Action::Release { lot, from, quantity, reason, recipient } => {
            known_lot(state, lot)?;
            holding(state, from)?;
            text("recipient", recipient)?;
            Ok(Event::Released {
                from: from.position(lot),
                quantity: qty("quantity", quantity)?,
                reason: *reason,
                recipient: recipient.clone(),
            })
        }
        Action::Convert { lot, from, consumed, into, produced } => convert(state, lot, from, consumed, into, produced),
        Action::Adjust { lot, at, direction, quantity, reason, note } => {
            known_lot(state, lot)?;
            holding(state, at)?;
            text("note", note)?;
            Ok(Event::Adjusted {
                at: at.position(lot),
                direction: *direction,
                quantity: qty("quantity", quantity)?,
                reason: *reason,
                note: note.clone(),
            })
        }
        Action::Reverse { target, reason } => reverse(state, target, reason, history),
        _ => unreachable!("movement is called for movements only"),
    }
}

fn convert(
    state: &State,
    lot: &LotId,
    from: &Holding,
    consumed: &Amount,
    into: &ConvertInto,
    produced: &Amount,
) -> Result<Event, Rejection> {
    let source = known_lot(state, lot)?;
    holding(state, from)?;
    let new_lot = LotSpec {
        id: into.id.clone(),
        material: source.material.clone(),
        form: into.form,
        purity_ppm: into.purity_ppm,
        origin: source.origin.clone(),
        certificate: into.certificate.clone(),
    };
    check_new_lot(state, &new_lot)?;
    let to = Holding { party: from.party.clone(), location: into.to.clone(), programme: from.programme };
    holding(state, &to)?;
    Ok(Event::Converted {
        from: from.position(lot),
        consumed: qty("consumed", consumed)?,
        to: to.position(&new_lot.id),
        lot: new_lot,
        produced: qty("produced", produced)?,
    })
}

fn reverse(state: &State, target: &EventId, reason: &str, history: &dyn History) -> Result<Event, Rejection> {
    target.check()?;
    text("reason", reason)?;
    let entry = state
        .events
        .find(target, history)
        .ok_or_else(|| Rejection::Unknown { what: "event", id: target.to_string() })?;
    if let Some(by) = state.events.reversed_by(entry.seq) {
        return Err(Rejection::AlreadyReversed { target: target.clone(), by: Some(by.clone()) });
    }
    let original = history.event_at(entry.seq).filter(super::index::reversible).ok_or_else(|| {
        let kind = history.event_at(entry.seq).map(|e| event_kind(&e)).unwrap_or("unknown");
        Rejection::NotReversible { target: target.clone(), kind: kind.to_string() }
    })?;
    Ok(Event::Reversed {
        target: target.clone(),
        target_seq: entry.seq,
        reason: reason.to_string(),
        effects: original.effects().inverted(),
    })
}

fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::Reversed { .. } => "reverse",
        Event::Genesis { .. } => "genesis",
        _ => "registration",
    }
}

/// Rules 1: every debit must find the stock it takes in the position as it stands after every
/// earlier record; no credit may overflow.
fn check_effects(state: &State, effects: &Effects, unit: Unit) -> Result<(), Rejection> {
    let mut pending: Vec<(&PositionKey, u64)> = Vec::new();
    for p in &effects.postings {
        let current = pending
            .iter()
            .rev()
            .find(|(k, _)| **k == p.position)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| state.position(&p.position));
        let next = match p.direction {
            Direction::Increase => {
                current.checked_add(p.grams).ok_or(Rejection::QuantityOverflow { position: p.position.clone() })?
            }
            Direction::Decrease => current.checked_sub(p.grams).ok_or_else(|| Rejection::InsufficientStock {
                position: p.position.clone(),
                requested_g: p.grams,
                available_g: current,
                unit,
            })?,
        };
        pending.push((&p.position, next));
    }
    Ok(())
}

/// Rules 2: with the event's postings at its business time `occurred_at`, every position it
/// debits must be ≥ 0 at every business time from `occurred_at` on (so also now); no credit
/// may overflow. Checked per position on its net change (an event touches a position once).
///
/// A position short now gets `InsufficientStock` (the stock is not there, whatever the date);
/// one that holds enough now but not at some date from `occurred_at` on gets
/// `InsufficientStockAt`, naming the first such date.
fn check_effects_over_time(
    state: &State,
    effects: &Effects,
    occurred_at: DateTime<Utc>,
    unit: Unit,
) -> Result<(), Rejection> {
    let mut net: Vec<(&PositionKey, i128)> = Vec::with_capacity(effects.postings.len());
    for p in &effects.postings {
        let signed = match p.direction {
            Direction::Increase => i128::from(p.grams),
            Direction::Decrease => -i128::from(p.grams),
        };
        match net.iter_mut().find(|(k, _)| **k == p.position) {
            Some((_, sum)) => *sum += signed,
            None => net.push((&p.position, signed)),
        }
    }
    let at_ns = occurred_at
        .timestamp_nanos_opt()
        .ok_or_else(|| Rejection::OccurredTooEarly { occurred_at, min: occurred_at_min() })?;
    for (position, delta) in net {
        let now = state.position(position);
        if delta >= 0 {
            let fits = u64::try_from(delta).ok().and_then(|d| now.checked_add(d)).is_some();
            if !fits {
                return Err(Rejection::QuantityOverflow { position: position.clone() });
            }
            continue;
        }
        let requested_g =
            u64::try_from(-delta).map_err(|_| Rejection::QuantityOverflow { position: position.clone() })?;
        if now < requested_g {
            return Err(Rejection::InsufficientStock {
                position: position.clone(),
                requested_g,
                available_g: now,
                unit,
            });
        }
        let need =
            i64::try_from(requested_g).map_err(|_| Rejection::QuantityOverflow { position: position.clone() })?;
        let Some(timeline) = state.timelines.get(position) else { continue };
        if let Some(short) = timeline.first_below(at_ns, need) {
            return Err(Rejection::InsufficientStockAt(Box::new(ShortAt {
                position: position.clone(),
                at: DateTime::from_timestamp_nanos(short.at_ns),
                balance_g: short.balance_g,
                requested_g,
                requested_at: occurred_at,
                holds_from: timeline.holds_from(need).map(DateTime::from_timestamp_nanos),
                unit,
            })));
        }
    }
    Ok(())
}

/// Only a party's own keys move its stock: every debited position (or, for effects that only
/// add stock, every credited one) must belong to the signer's party.
fn authorise(key: &KeyEntry, effects: &Effects) -> Result<(), Rejection> {
    let Some(own) = &key.party else {
        return Err(Rejection::NoParty { key: key.id.clone() });
    };
    let debits: Vec<&PartyId> = effects.debits().map(|p| &p.position.party).collect();
    let parties = if debits.is_empty() { effects.postings.iter().map(|p| &p.position.party).collect() } else { debits };
    match parties.into_iter().find(|p| *p != own) {
        Some(other) => {
            Err(Rejection::NotOwner { key: key.id.clone(), key_party: own.to_string(), party: Some(other.to_string()) })
        }
        None => Ok(()),
    }
}

fn distinct(from: PositionKey, to: PositionKey) -> Result<(PositionKey, PositionKey), Rejection> {
    if from == to {
        Err(Rejection::SamePosition { position: from })
    } else {
        Ok((from, to))
    }
}

fn qty(field: &'static str, amount: &Amount) -> Result<Quantity, Rejection> {
    Quantity::from_amount(amount).map_err(|error| Rejection::BadQuantity { field, error })
}

fn holding(state: &State, h: &Holding) -> Result<(), Rejection> {
    known_party(state, &h.party)?;
    if let Location::Facility(f) = &h.location {
        known_facility(state, f)?;
    }
    Ok(())
}

fn known_party<'s>(state: &'s State, id: &PartyId) -> Result<&'s Party, Rejection> {
    id.check()?;
    state.parties.get(id).ok_or_else(|| Rejection::Unknown { what: "party", id: id.to_string() })
}

fn known_facility<'s>(state: &'s State, id: &FacilityId) -> Result<&'s Facility, Rejection> {
    id.check()?;
    state.facilities.get(id).ok_or_else(|| Rejection::Unknown { what: "facility", id: id.to_string() })
}

fn known_lot<'s>(state: &'s State, id: &LotId) -> Result<&'s LotSpec, Rejection> {
    id.check()?;
    state.lots.get(id).map(|l| &l.spec).ok_or_else(|| Rejection::Unknown { what: "lot", id: id.to_string() })
}

fn known_partner(code: &Country) -> Result<(), Rejection> {
    match Reference::get().partner(code) {
        Some(_) => Ok(()),
        None => Err(Rejection::UnknownPartner { partner: code.to_string() }),
    }
}

fn known_material(id: &MaterialId) -> Result<(), Rejection> {
    match Reference::get().material(id) {
        Some(_) => Ok(()),
        None => Err(Rejection::UnknownMaterial { material: id.to_string() }),
    }
}

fn check_new_lot(state: &State, lot: &LotSpec) -> Result<(), Rejection> {
    lot.id.check()?;
    known_material(&lot.material)?;
    lot.origin.check("origin")?;
    if lot.purity_ppm == 0 || lot.purity_ppm > PURITY_PPM_MAX {
        return Err(Rejection::InvalidField {
            field: "purity_ppm",
            reason: format!("{} is outside 1..={PURITY_PPM_MAX} (parts per million)", lot.purity_ppm),
        });
    }
    opt_text("certificate", &lot.certificate)?;
    not_registered(state.lots.contains_key(&lot.id), "lot", lot.id.as_str())
}

fn check_price(price: &Price) -> Result<(), Rejection> {
    let decimal = price.amount.split_once('.').map_or(price.amount.as_str(), |(i, _)| i);
    let ok_amount = !decimal.is_empty()
        && price.amount.len() <= 32
        && price.amount.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && price.amount.matches('.').count() <= 1
        && !price.amount.ends_with('.');
    if !ok_amount {
        return Err(Rejection::InvalidField {
            field: "price.amount",
            reason: format!("{:?} is not a plain decimal", price.amount),
        });
    }
    if !(price.currency.len() == 3 && price.currency.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(Rejection::InvalidField {
            field: "price.currency",
            reason: format!("{:?} is not an ISO 4217 code such as EUR", price.currency),
        });
    }
    Ok(())
}

fn not_registered(exists: bool, what: &'static str, id: &str) -> Result<(), Rejection> {
    if exists {
        Err(Rejection::AlreadyRegistered { what, id: id.to_string() })
    } else {
        Ok(())
    }
}

/// Free text: non-empty, at most [`TEXT_CHARS_MAX`] characters, no control characters.
fn text(field: &'static str, value: &str) -> Result<(), Rejection> {
    text_max(field, value, TEXT_CHARS_MAX)
}

/// Free text: non-empty, at most `max` characters, no control characters.
fn text_max(field: &'static str, value: &str, max: usize) -> Result<(), Rejection> {
    let reason = if value.trim().is_empty() {
        Some("is empty".to_string())
    } else if value.chars().count() > max {
        Some(format!("is longer than {max} characters"))
    } else if value.chars().any(char::is_control) {
        Some("contains a control character".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Rejection::InvalidField { field, reason }),
        None => Ok(()),
    }
}

fn opt_text(field: &'static str, value: &Option<String>) -> Result<(), Rejection> {
    value.as_deref().map_or(Ok(()), |v| text(field, v))
}

fn check_public_key(hex_key: &str) -> Result<(), Rejection> {
    let bad = |reason: &str| Rejection::InvalidField { field: "public_key", reason: reason.to_string() };
    let bytes = hex::decode(hex_key).map_err(|_| bad("is not hex"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| bad("is not 32 bytes (64 hex characters)"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| bad("is not a valid Ed25519 public key"))?;
    // The signature rule (schemas/CANONICAL.md §3) takes keys of order ℓ only; registering
    // another would leave a key every one of whose commands is refused.
    if key.is_weak() || !key.to_edwards().is_torsion_free() {
        return Err(bad("is not a key of prime order (it has a small-order component): generate a new Ed25519 key"));
    }
    if hex_key.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("must be lower-case hex"));
    }
    Ok(())
}
