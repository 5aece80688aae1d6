//! acquire, store, transfer, release, convert, adjust, reverse.

use super::{post_one, Ctx};
use crate::args::{AcquireArgs, AdjustArgs, ConvertArgs, ReleaseArgs, ReverseArgs, StoreArgs, TransferArgs};
use crate::error::{usage, Result};
use crate::parse::{self, enum_value};
use stockpile_ledger::domain::{
    Action, ConvertInto, Country, Direction, EventId, FacilityId, Holding, LotId, LotSpec, MaterialId, PartyId, Price,
    Programme,
};

fn holding(party: &str, at: &str, programme: &str) -> Result<Holding> {
    Ok(Holding {
        party: PartyId::new(party),
        location: parse::location(at),
        programme: enum_value::<Programme>("programme", programme)?,
    })
}

fn price(text: &str) -> Result<Price> {
    let (amount, currency) = text
        .trim()
        .rsplit_once(' ')
        .ok_or_else(|| usage(format!("price {text:?}: write an amount and a currency, e.g. \"1250000 EUR\"")))?;
    Ok(Price { amount: amount.trim().to_string(), currency: currency.to_string() })
}

pub fn acquire(ctx: &mut Ctx<'_>, a: &AcquireArgs) -> Result<()> {
    let action = Action::Acquire {
        lot: LotSpec {
            id: LotId::new(a.lot.as_str()),
            material: MaterialId::new(a.material.as_str()),
            form: enum_value("form", &a.form)?,
            purity_ppm: parse::purity(&a.purity)?,
            origin: Country::new(a.origin.as_str()),
            certificate: a.certificate.clone(),
        },
        to: holding(&a.party, &a.at, &a.programme)?,
        quantity: parse::amount(&a.quantity)?,
        supplier: a.supplier.clone(),
        contract: a.contract.clone(),
        price: a.price.as_deref().map(price).transpose()?,
    };
    post_one(ctx, &a.common, Some(&a.party), action)
}

pub fn store(ctx: &mut Ctx<'_>, a: &StoreArgs) -> Result<()> {
    let action = Action::Store {
        lot: LotId::new(a.lot.as_str()),
        party: PartyId::new(a.party.as_str()),
        programme: enum_value("programme", &a.programme)?,
        from: parse::location(&a.from),
        to: FacilityId::new(a.to.as_str()),
        quantity: parse::amount(&a.quantity)?,
    };
    post_one(ctx, &a.common, Some(&a.party), action)
}

pub fn transfer(ctx: &mut Ctx<'_>, a: &TransferArgs) -> Result<()> {
    let action = Action::Transfer {
        lot: LotId::new(a.lot.as_str()),
        from: holding(&a.from_party, &a.at, &a.programme)?,
        to: holding(&a.to_party, a.to.as_deref().unwrap_or(&a.at), a.to_programme.as_deref().unwrap_or(&a.programme))?,
        quantity: parse::amount(&a.quantity)?,
    };
    post_one(ctx, &a.common, Some(&a.from_party), action)
}

pub fn release(ctx: &mut Ctx<'_>, a: &ReleaseArgs) -> Result<()> {
    let action = Action::Release {
        lot: LotId::new(a.lot.as_str()),
        from: holding(&a.party, &a.at, &a.programme)?,
        quantity: parse::amount(&a.quantity)?,
        reason: enum_value("release reason", &a.reason)?,
        recipient: a.recipient.clone(),
    };
    post_one(ctx, &a.common, Some(&a.party), action)
}

pub fn convert(ctx: &mut Ctx<'_>, a: &ConvertArgs) -> Result<()> {
    let action = Action::Convert {
        lot: LotId::new(a.lot.as_str()),
        from: holding(&a.party, &a.at, &a.programme)?,
        consumed: parse::amount(&a.consumed)?,
        into: ConvertInto {
            id: LotId::new(a.new_lot.as_str()),
            form: enum_value("form", &a.form)?,
            purity_ppm: parse::purity(&a.purity)?,
            to: parse::location(a.to.as_deref().unwrap_or(&a.at)),
            certificate: None,
        },
        produced: parse::amount(&a.produced)?,
    };
    post_one(ctx, &a.common, Some(&a.party), action)
}

pub fn adjust(ctx: &mut Ctx<'_>, a: &AdjustArgs) -> Result<()> {
    let (direction, qty) = match (&a.increase, &a.decrease) {
        (Some(q), None) => (Direction::Increase, q),
        (None, Some(q)) => (Direction::Decrease, q),
        _ => return Err(usage("give exactly one of --increase or --decrease")),
    };
    let action = Action::Adjust {
        lot: LotId::new(a.lot.as_str()),
        at: holding(&a.party, &a.at, &a.programme)?,
        direction,
        quantity: parse::amount(qty)?,
        reason: enum_value("adjust reason", &a.reason)?,
        note: a.note.clone(),
    };
    post_one(ctx, &a.common, Some(&a.party), action)
}

pub fn reverse(ctx: &mut Ctx<'_>, a: &ReverseArgs) -> Result<()> {
    if a.party.is_none() && a.common.key.is_none() {
        return Err(usage("name the party whose key signs the reversal with --party (or --key)"));
    }
    let action = Action::Reverse { target: EventId::new(a.target.as_str()), reason: a.reason.clone() };
    post_one(ctx, &a.common, a.party.as_deref(), action)
}
