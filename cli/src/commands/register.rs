//! register party|facility|key|rules|consumption|net-imports|release-rules|withhold|unwithhold, and
//! key revocation: admin commands.

use super::{post_one, Ctx};
use crate::args::{Common, FigureArgs, RegisterVerb, RoleArg, WithholdArgs};
use crate::error::{usage, Result};
use crate::keystore::PublicKeyFile;
use crate::parse::{self, enum_value};
use stockpile_ledger::domain::{Action, Country, FacilityId, FigureKind, KeyId, KeyRole, LotId, MaterialId, PartyId};

pub fn run(ctx: &mut Ctx<'_>, verb: &RegisterVerb) -> Result<()> {
    match verb {
        RegisterVerb::Party { party: id, partner, name, holder_type, common } => {
            let action = Action::RegisterParty {
                party: PartyId::new(id.as_str()),
                partner: Country::new(partner.as_str()),
                name: name.clone(),
                holder_type: enum_value("holder type", holder_type)?,
            };
            post_one(ctx, common, None, action)
        }
        RegisterVerb::Facility { facility: id, name, country, common } => {
            let action = Action::RegisterFacility {
                facility: FacilityId::new(id.as_str()),
                name: name.clone(),
                country: Country::new(country.as_str()),
            };
            post_one(ctx, common, None, action)
        }
        RegisterVerb::Key { key_id: id, party, role, common } => {
            let (file, handed_over) = ctx.keys.load_public(id)?;
            confirm(&file, handed_over, party.as_deref(), *role)?;
            eprintln!(
                "registering key {} ({:?}{}), public key {}",
                file.key,
                file.role,
                file.party.as_deref().map(|p| format!(" of {p}")).unwrap_or_default(),
                file.public_key
            );
            let action = Action::RegisterKey {
                key: KeyId::new(file.key.as_str()),
                public_key: file.public_key.clone(),
                role: file.role,
                party: file.party.as_deref().map(PartyId::new),
            };
            post_one(ctx, common, None, action)
        }
        RegisterVerb::ReleaseRules { partner, material, text, confidential, common } => {
            let action = Action::RegisterReleaseRules {
                partner: Country::new(partner.as_str()),
                material: MaterialId::new(material.as_str()),
                text: text.clone(),
                confidential: *confidential,
            };
            post_one(ctx, common, None, action)
        }
        RegisterVerb::Rules { rules, common } => post_one(ctx, common, None, Action::RaiseRules { rules: *rules }),
        RegisterVerb::Withhold(w) => {
            let action = Action::Withhold { party: w.party.as_str().into(), lot: lot(w), reason: w.reason.clone() };
            post_one(ctx, &w.common, None, action)
        }
        RegisterVerb::Unwithhold(w) => {
            let action = Action::Unwithhold { party: w.party.as_str().into(), lot: lot(w), reason: w.reason.clone() };
            post_one(ctx, &w.common, None, action)
        }
        RegisterVerb::Consumption(f) => figure(ctx, FigureKind::Consumption, f),
        RegisterVerb::NetImports(f) => figure(ctx, FigureKind::NetImports, f),
    }
}

fn lot(w: &WithholdArgs) -> LotId {
    LotId::new(w.lot.as_str())
}

fn figure(ctx: &mut Ctx<'_>, kind: FigureKind, f: &FigureArgs) -> Result<()> {
    let action = Action::RegisterFigure {
        figure: kind,
        partner: Country::new(f.partner.as_str()),
        material: MaterialId::new(f.material.as_str()),
        year: f.year,
        quantity: parse::amount(&f.quantity)?,
    };
    post_one(ctx, &f.common, None, action)
}

pub fn revoke(ctx: &mut Ctx<'_>, id: &str, reason: &str, common: &Common) -> Result<()> {
    let target = ctx.keys.load(id)?;
    // An operator may revoke its own party's key with another key of that party.
    let party = target.party.clone();
    let action = Action::RevokeKey { key: KeyId::new(id), reason: reason.to_string() };
    let signer_party = if common.key.is_some() { None } else { party.as_deref() };
    let result = match signer_party {
        Some(p) if ctx.keys.list()?.iter().any(|k| k.party.as_deref() == Some(p) && k.key != id && !k.revoked) => {
            let mut c = common.clone();
            c.key = ctx
                .keys
                .list()?
                .into_iter()
                .find(|k| k.party.as_deref() == Some(p) && k.key != id && !k.revoked)
                .map(|k| k.key);
            post_one(ctx, &c, None, action)
        }
        _ => post_one(ctx, common, None, action),
    };
    if result.is_ok() {
        ctx.keys.mark_revoked(id)?;
    }
    result
}

/// The role and party a key file claims, against what the admin states. A `.pub` file was
/// written by the key's holder, so its claims count only when the admin states them too: an
/// operator key needs `--party` (the same), an admin key `--role admin`. Whatever is stated
/// must match the file.
fn confirm(file: &PublicKeyFile, handed_over: bool, party: Option<&str>, role: Option<RoleArg>) -> Result<()> {
    let claimed = match file.role {
        KeyRole::Admin => RoleArg::Admin,
        KeyRole::Operator => RoleArg::Operator,
    };
    let spell = |r: RoleArg| if r == RoleArg::Admin { "admin" } else { "operator" };
    if let Some(stated) = role.filter(|r| *r != claimed) {
        return Err(usage(format!(
            "key {} is an {} key, not {}: nothing registered",
            file.key,
            spell(claimed),
            spell(stated)
        )));
    }
    if let Some(stated) = party.filter(|p| file.party.as_deref() != Some(*p)) {
        return Err(usage(format!(
            "key {} acts for {}, not {stated}: nothing registered",
            file.key,
            file.party.as_deref().unwrap_or("no party")
        )));
    }
    if handed_over && claimed == RoleArg::Admin && role.is_none() {
        return Err(usage(format!(
            "{} asks for an admin key: pass --role admin if you mean to give its holder every registration right; nothing registered",
            file.key
        )));
    }
    if handed_over && claimed == RoleArg::Operator && party.is_none() {
        return Err(usage(format!(
            "name the party key {} is to act for: --party {} (what its file claims), after checking with its holder; nothing registered",
            file.key,
            file.party.as_deref().unwrap_or("P")
        )));
    }
    Ok(())
}
