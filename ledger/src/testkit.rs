//! Helpers to build signed commands for tests, benchmarks and the demo: deterministic keys,
//! a fixed clock and a small world of parties, facilities and keys.
//!
//! Not a mock of anything: every command built here goes through the real `decide`, the real
//! store and the real signature checks.

use crate::domain::{
    Action, Amount, Command, Country, EventId, FacilityId, Form, HolderType, Holding, KeyId, KeyRole, Location, LotId,
    LotSpec, MaterialId, PartyId, Programme, Unit,
};
use crate::ledger::Clock;
use crate::signing::{OperatorKey, SignedCommand};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// `key`'s signature of `command` made with the nonce commitment `[r]B + T`, `r` from `nonce`
/// and `T` the small-order point `EIGHT_TORSION[1 + torsion % 7]`. It meets the ledger's
/// cofactored rule (`schemas/CANONICAL.md` §3) and fails `verify_strict`; no honest signer
/// makes one. Tests use it to show that the writer and an auditor, who cut batches
/// differently, agree on it.
pub fn sign_with_small_order_r(key: &OperatorKey, command: Command, nonce: [u8; 32], torsion: usize) -> SignedCommand {
    use curve25519_dalek::{constants::EIGHT_TORSION, EdwardsPoint, Scalar};
    use sha2::{Digest, Sha512};
    let a = ed25519_dalek::SigningKey::from_bytes(&key.secret_bytes()).to_scalar();
    let r = Scalar::from_bytes_mod_order(nonce);
    let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[1 + torsion % 7]).compress();
    let public = key.public_key_hex();
    let hram: [u8; 64] = Sha512::new()
        .chain_update(big_r.as_bytes())
        .chain_update(hex::decode(&public).expect("hex"))
        .chain_update(crate::signing::signing_message(&command))
        .finalize()
        .into();
    let s = r + Scalar::from_bytes_mod_order_wide(&hram) * a;
    let signature = hex::encode([*big_r.as_bytes(), *s.as_bytes()].concat());
    SignedCommand { command, key: key.id.clone(), public_key: public, signature }
}

/// A key whose secret is derived from its id: the same id always gives the same key.
pub fn deterministic_key(id: &str) -> OperatorKey {
    let secret = crate::canonical::sha256(format!("stockpile-testkit-key:{id}").as_bytes());
    OperatorKey::from_secret(KeyId::new(id), secret)
}

/// `2026-03-01` or `2026-03-01T09:30:00Z` as a UTC time. Panics on a malformed literal
/// (test and demo input only).
pub fn at(text: &str) -> DateTime<Utc> {
    if text.len() == 10 {
        let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date literal");
        return Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"));
    }
    DateTime::parse_from_rfc3339(text).expect("RFC 3339 literal").with_timezone(&Utc)
}

/// A clock tests move by hand; clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.timestamp_micros())))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        self.0.store(t.timestamp_micros(), Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0.load(Ordering::SeqCst)).single().expect("valid micros")
    }
}

pub fn command(id: &str, occurred_at: DateTime<Utc>, action: Action) -> Command {
    Command { id: EventId::new(id), occurred_at, action }
}

pub fn holding(party: &str, location: &str, programme: Programme) -> Holding {
    let location =
        if location == crate::domain::model::IN_TRANSIT { Location::InTransit } else { Location::facility(location) };
    Holding { party: PartyId::new(party), location, programme }
}

pub fn lot(id: &str, material: &str, form: Form, purity_ppm: u32, origin: &str) -> LotSpec {
    LotSpec {
        id: LotId::new(id),
        material: MaterialId::new(material),
        form,
        purity_ppm,
        origin: Country::new(origin),
        certificate: None,
    }
}

pub fn amount(text: &str, unit: Unit) -> Amount {
    Amount::new(text, unit)
}

/// A small world: an admin key and one operator key per party, all deterministic.
pub struct World {
    pub admin: OperatorKey,
    pub operators: BTreeMap<String, OperatorKey>,
    pub parties: Vec<(&'static str, &'static str, HolderType)>,
    pub facilities: Vec<(&'static str, &'static str)>,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    /// Dutch, German and Belgian parties of every holder type, with facilities at home and abroad.
    pub fn new() -> World {
        let parties = vec![
            ("nl-mod", "NL", HolderType::PublicAuthority),
            ("nl-covra", "NL", HolderType::MandatedOperator),
            ("nl-copper", "NL", HolderType::PublicUndertaking),
            ("nl-private", "NL", HolderType::Private),
            ("de-rohstoff", "DE", HolderType::PublicUndertaking),
            ("be-defence", "BE", HolderType::PublicAuthority),
        ];
        let facilities =
            vec![("nl-vlissingen", "NL"), ("nl-rotterdam", "NL"), ("be-antwerp", "BE"), ("de-hamburg", "DE")];
        let operators =
            parties.iter().map(|(p, _, _)| (p.to_string(), deterministic_key(&format!("{p}-ops")))).collect();
        World { admin: deterministic_key("admin"), operators, parties, facilities }
    }

    pub fn key(&self, party: &str) -> &OperatorKey {
        &self.operators[party]
    }

    /// Genesis under the latest rules, then every party, facility and operator key, signed
    /// by the admin key.
    pub fn setup(&self, occurred_at: DateTime<Utc>) -> Vec<SignedCommand> {
        self.setup_under(occurred_at, Some(crate::domain::rules::LATEST))
    }

    /// As [`World::setup`], with a genesis naming `rules` (`None`: a genesis as written
    /// before rules were recorded, which runs under rules 1).
    pub fn setup_under(&self, occurred_at: DateTime<Utc>, rules: Option<u32>) -> Vec<SignedCommand> {
        let mut out = vec![self.admin.sign(command(
            "genesis",
            occurred_at,
            Action::Genesis {
                ledger: "stockpile-test".into(),
                admin_key: self.admin.id.clone(),
                public_key: self.admin.public_key_hex(),
                rules,
            },
        ))];
        for (party, partner, holder_type) in &self.parties {
            out.push(self.admin.sign(command(
                &format!("reg-party-{party}"),
                occurred_at,
                Action::RegisterParty {
                    party: PartyId::new(*party),
                    partner: Country::new(*partner),
                    name: format!("{party} (test)"),
                    holder_type: *holder_type,
                },
            )));
        }
        for (facility, country) in &self.facilities {
            out.push(self.admin.sign(command(
                &format!("reg-facility-{facility}"),
                occurred_at,
                Action::RegisterFacility {
                    facility: FacilityId::new(*facility),
                    name: format!("{facility} warehouse"),
                    country: Country::new(*country),
                },
            )));
        }
        for (party, key) in &self.operators {
            out.push(self.admin.sign(command(
                &format!("reg-key-{party}"),
                occurred_at,
                Action::RegisterKey {
                    key: key.id.clone(),
                    public_key: key.public_key_hex(),
                    role: KeyRole::Operator,
                    party: Some(PartyId::new(party.as_str())),
                },
            )));
        }
        out
    }
}

/// A log in memory for tests of the pure core: what [`crate::domain::History`] reads back.
/// `push` each event as it is applied, at the next seq.
#[derive(Debug, Default, Clone)]
pub struct MemoryHistory {
    /// Record `seq` at index `seq − 1`: its event id, command digest and event.
    pub records: Vec<(EventId, [u8; 32], crate::domain::Event)>,
}

impl MemoryHistory {
    pub fn push(&mut self, id: &EventId, digest: [u8; 32], event: &crate::domain::Event) {
        self.records.push((id.clone(), digest, event.clone()));
    }

    fn at(&self, seq: u64) -> Option<&(EventId, [u8; 32], crate::domain::Event)> {
        self.records.get(usize::try_from(seq).ok()?.checked_sub(1)?)
    }
}

impl crate::domain::History for MemoryHistory {
    fn event_at(&self, seq: u64) -> Option<crate::domain::Event> {
        self.at(seq).map(|r| r.2.clone())
    }

    fn recorded_id(&self, seq: u64) -> Option<(EventId, [u8; 32])> {
        self.at(seq).map(|r| (r.0.clone(), r.1))
    }
}
