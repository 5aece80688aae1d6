//! The events nearly all of a history holds — `stored`, `transferred`, `released`,
//! `adjusted`, `acquired` (without a price) and `converted`, 97 % of the bench's history —
//! read straight off the canonical layout the ledger writes (schemas/CANONICAL.md: members
//! sorted, no whitespace), without serde's walk of the text.
//!
//! [`decode`] is a shortcut, never a second definition of the format: it answers `Some` only
//! for text in exactly that layout, with strings that hold no escape and no control
//! character and integers without sign, fraction, exponent or leading zero, and then exactly
//! the event serde decodes from the same text (the test below holds it to that). Anything else
//! — another spelling, another kind, invalid JSON — is `None`, and the caller asks serde,
//! which accepts or refuses it as before. Ids, locations and enums are built by their own
//! `Deserialize` from the string, so no rule of theirs is written twice.

use super::command::{AdjustReason, Direction, ReleaseReason};
use super::event::Event;
use super::model::{LotSpec, PositionKey};
use super::quantity::{Amount, Quantity};
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::Deserialize;

/// The event of `kind` in `json`, when `json` is that event in the canonical layout.
pub(super) fn decode(kind: &str, json: &str) -> Option<Event> {
    let mut c = Cursor { text: json, at: 0 };
    let event = match kind {
        "stored" | "transferred" => {
            let from = c.value(b"{\"from\":", Cursor::position)?;
            c.kind(kind)?;
            let quantity = c.value(b",\"quantity\":", Cursor::quantity)?;
            let to = c.value(b",\"to\":", Cursor::position)?;
            if kind == "stored" {
                Event::Stored { from, to, quantity }
            } else {
                Event::Transferred { from, to, quantity }
            }
        }
        "released" => {
            let from = c.value(b"{\"from\":", Cursor::position)?;
            c.kind(kind)?;
            let quantity = c.value(b",\"quantity\":", Cursor::quantity)?;
            let reason: ReleaseReason = c.member(b",\"reason\":")?;
            let recipient = c.member(b",\"recipient\":")?;
            Event::Released { from, quantity, reason, recipient }
        }
        "adjusted" => {
            let at = c.value(b"{\"at\":", Cursor::position)?;
            let direction: Direction = c.member(b",\"direction\":")?;
            c.kind(kind)?;
            let note = c.member(b",\"note\":")?;
            let quantity = c.value(b",\"quantity\":", Cursor::quantity)?;
            let reason: AdjustReason = c.member(b",\"reason\":")?;
            Event::Adjusted { at, direction, quantity, reason, note }
        }
        "acquired" => {
            c.key(b"{")?;
            let contract = c.optional(b"\"contract\":")?;
            c.key(if contract.is_some() { b",\"kind\":\"" } else { b"\"kind\":\"" })?;
            let lot = c.value(b"acquired\",\"lot\":", Cursor::lot)?;
            // A price (rare, and a nested object of its own) is left to serde.
            let quantity = c.value(b",\"quantity\":", Cursor::quantity)?;
            let supplier = c.optional(b",\"supplier\":")?;
            let to = c.value(b",\"to\":", Cursor::position)?;
            Event::Acquired { lot, to, quantity, supplier, contract, price: None }
        }
        "converted" => {
            let consumed = c.value(b"{\"consumed\":", Cursor::quantity)?;
            let from = c.value(b",\"from\":", Cursor::position)?;
            c.kind(kind)?;
            let lot = c.value(b",\"lot\":", Cursor::lot)?;
            let produced = c.value(b",\"produced\":", Cursor::quantity)?;
            let to = c.value(b",\"to\":", Cursor::position)?;
            Event::Converted { from, consumed, lot, to, produced }
        }
        _ => return None,
    };
    c.key(b"}")?;
    (c.at == json.len()).then_some(event)
}

/// A position in the text; every step either reads what it expects or gives `None`.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.at..]
    }

    /// Exactly these bytes (punctuation and member names, which hold no escapes).
    fn key(&mut self, expected: &[u8]) -> Option<()> {
        self.rest().starts_with(expected).then(|| self.at += expected.len())
    }

    /// The `"kind":"…"` member, between the ones before and after it.
    fn kind(&mut self, kind: &str) -> Option<()> {
        self.key(b",\"kind\":\"")?;
        self.key(kind.as_bytes())?;
        self.key(b"\"")
    }

    /// Exactly the bytes `key` (a member's name and what comes before it), then its value.
    fn value<T>(&mut self, key: &[u8], read: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        self.key(key)?;
        read(self)
    }

    /// A member whose value is a string.
    fn member<T: Deserialize<'a>>(&mut self, key: &[u8]) -> Option<T> {
        self.value(key, Cursor::string)
    }

    /// A string without escapes or control characters, as its own type's `Deserialize` reads
    /// it from a string.
    fn string<T: Deserialize<'a>>(&mut self) -> Option<T> {
        self.key(b"\"")?;
        let rest = self.rest();
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' || rest[..end].iter().any(|&b| b < 0x20) {
            return None;
        }
        // Both ends sit next to an ASCII quote, so on character boundaries.
        let value = self.text.get(self.at..self.at + end)?;
        self.at += end + 1;
        T::deserialize(StrDeserializer::<ValueError>::new(value)).ok()
    }

    /// A non-negative integer as JSON writes it: `0` or digits without a leading zero.
    fn u64(&mut self) -> Option<u64> {
        let rest = self.rest();
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        let value = rest[..digits].iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
        self.at += digits;
        Some(value)
    }

    /// `{"location":…,"lot":…,"party":…,"programme":…}`
    fn position(&mut self) -> Option<PositionKey> {
        let location = self.member(b"{\"location\":")?;
        let lot = self.member(b",\"lot\":")?;
        let party = self.member(b",\"party\":")?;
        let programme = self.member(b",\"programme\":")?;
        self.key(b"}")?;
        Some(PositionKey { party, lot, location, programme })
    }

    /// An optional string member: `Some(None)` when the text does not go on with `member`.
    fn optional(&mut self, member: &[u8]) -> Option<Option<String>> {
        if self.rest().starts_with(member) {
            self.at += member.len();
            self.string().map(Some)
        } else {
            Some(None)
        }
    }

    /// `{"certificate":…,"form":…,"id":…,"material":…,"origin":…,"purity_ppm":N}`, the
    /// certificate optional.
    fn lot(&mut self) -> Option<LotSpec> {
        self.key(b"{")?;
        let certificate = self.optional(b"\"certificate\":")?;
        self.key(if certificate.is_some() { b",\"form\":" } else { b"\"form\":" })?;
        let form = self.string()?;
        let id = self.member(b",\"id\":")?;
        let material = self.member(b",\"material\":")?;
        let origin = self.member(b",\"origin\":")?;
        self.key(b",\"purity_ppm\":")?;
        let purity_ppm = u32::try_from(self.u64()?).ok()?;
        self.key(b"}")?;
        Some(LotSpec { id, material, form, purity_ppm, origin, certificate })
    }

    /// `{"grams":N,"stated":{"amount":…,"unit":…}}`
    fn quantity(&mut self) -> Option<Quantity> {
        self.key(b"{\"grams\":")?;
        let grams = self.u64()?;
        let amount = self.member(b",\"stated\":{\"amount\":")?;
        let unit = self.member(b",\"unit\":")?;
        self.key(b"}}")?;
        Some(Quantity { grams, stated: Amount { amount, unit } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Country, FacilityId, Form, Location, LotId, MaterialId, PartyId, Price, Programme, Unit};
    use rand::{Rng, SeedableRng};

    fn position(i: usize) -> PositionKey {
        let location = if i % 3 == 0 {
            Location::InTransit
        } else {
            Location::Facility(FacilityId::new(format!("nl-vlissingen-{i}")))
        };
        let programme = [Programme::Eu, Programme::Iea, Programme::Nato, Programme::National][i % 4];
        // Long ids too: past 24 bytes an id leaves the inline form for the heap.
        let party = if i % 5 == 0 { format!("party-with-a-rather-long-name-{i}") } else { format!("nl-covra-{i}") };
        PositionKey { party: PartyId::new(party), lot: LotId::new(format!("lot.{i}_x")), location, programme }
    }

    fn quantity(i: usize) -> Quantity {
        let unit = [Unit::G, Unit::Kg, Unit::T, Unit::Ozt][i % 4];
        let grams = [0, 1, 10, 39_806, u64::MAX][i % 5];
        Quantity { grams, stated: Amount { amount: format!("{}.{i}", i * 7), unit } }
    }

    /// Events of the kinds read here, with every release and adjust reason, both kinds of
    /// location, optional members present and absent, and one event of a kind never read
    /// here.
    fn events() -> Vec<Event> {
        use crate::domain::{AdjustReason as A, Direction as D, ReleaseReason as R};
        let releases = [R::EmergencyDrawdown, R::Sale, R::Rotation, R::Loan, R::Loss, R::Donation];
        let adjusts = [A::StockTake, A::Regrade, A::MeasurementCorrection, A::Shrinkage, A::Other];
        let mut events = Vec::new();
        for i in 0..40 {
            let (from, to, quantity) = (position(i), position(i + 1), quantity(i));
            events.push(Event::Stored { from: from.clone(), to: to.clone(), quantity: quantity.clone() });
            events.push(Event::Transferred { from: from.clone(), to, quantity: quantity.clone() });
            let recipient = ["", "Umicore Hoboken", "Zürich — “quoted”", "a/b", "\u{7f}\u{2028}"][i % 5].to_string();
            events.push(Event::Released {
                from: from.clone(),
                quantity: quantity.clone(),
                reason: releases[i % releases.len()],
                recipient,
            });
            let direction = [D::Increase, D::Decrease][i % 2];
            let note = format!("stock-take {i}: ±{i} kg");
            events.push(Event::Adjusted { at: from, direction, quantity, reason: adjusts[i % adjusts.len()], note });
        }
        let forms = [Form::Ore, Form::Oxide, Form::Metal, Form::Alloy, Form::Intermediate, Form::Other];
        let optional = |i: usize, text: &str| (i % 3 != 0).then(|| format!("{text} {i}"));
        for i in 0..24 {
            let lot = LotSpec {
                id: LotId::new(format!("lot-{i}")),
                material: MaterialId::new(["cobalt", "germanium", "platinum"][i % 3]),
                form: forms[i % forms.len()],
                purity_ppm: [1, 999_500, 1_000_000, u32::MAX][i % 4],
                origin: Country::new(["CD", "NL", "ZA"][i % 3]),
                certificate: optional(i / 2, "cert"),
            };
            let price = (i % 4 == 0).then(|| Price { amount: "1200.50".into(), currency: "EUR".into() });
            let (supplier, contract) = (optional(i, "Glencore"), optional(i + 1, "C-2026"));
            let (to, q) = (position(i), quantity(i));
            events.push(Event::Acquired {
                lot: lot.clone(),
                to: to.clone(),
                quantity: q.clone(),
                supplier,
                contract,
                price,
            });
            let (from, produced) = (position(i + 2), quantity(i + 1));
            events.push(Event::Converted { from, consumed: q, lot, to, produced });
        }
        let bare = LotSpec { certificate: None, ..lot_of(&events) };
        let (supplier, contract, price) = (None, None, None);
        events.push(Event::Acquired { lot: bare, to: position(7), quantity: quantity(7), supplier, contract, price });
        events.push(Event::KeyRevoked { key: crate::domain::KeyId::new("op-1"), reason: "lost".into() });
        events
    }

    /// The lot of the last acquisition in `events`.
    fn lot_of(events: &[Event]) -> LotSpec {
        events
            .iter()
            .rev()
            .find_map(|e| if let Event::Acquired { lot, .. } = e { Some(lot.clone()) } else { None })
            .unwrap()
    }

    fn kind_of(event: &Event) -> String {
        serde_json::to_value(event).unwrap()["kind"].as_str().unwrap().to_string()
    }

    /// Whatever `decode` reads is what serde reads from the same text.
    fn agrees(kind: &str, text: &str) -> bool {
        match decode(kind, text) {
            None => true,
            Some(event) => serde_json::from_str::<Event>(text).ok() == Some(event),
        }
    }

    #[test]
    fn canonical_events_are_read_here_as_serde_reads_them() {
        for event in events() {
            let text = String::from_utf8(crate::canonical::to_vec(&event).unwrap()).unwrap();
            let kind = kind_of(&event);
            let priced = matches!(&event, Event::Acquired { price: Some(_), .. });
            match kind.as_str() {
                "acquired" if priced => assert_eq!(decode(&kind, &text), None, "{text}"),
                "stored" | "transferred" | "released" | "adjusted" | "acquired" | "converted" => {
                    assert_eq!(decode(&kind, &text).as_ref(), Some(&event), "{text}")
                }
                _ => assert_eq!(decode(&kind, &text), None, "{text}"),
            }
            assert_eq!(Event::from_json(&text).unwrap(), event, "{text}");
        }
    }

    #[test]
    fn other_spellings_go_to_serde() {
        let event = Event::Transferred { from: position(1), to: position(2), quantity: quantity(3) };
        let text = String::from_utf8(crate::canonical::to_vec(&event).unwrap()).unwrap();
        let spellings = [
            text.replacen(':', ": ", 1),
            text.replacen("nl-covra-1", "nl-covra-\\u0031", 1),
            text.replacen("\"grams\":39806", "\"grams\":39806.0", 1),
            text.replacen("\"grams\":39806", "\"grams\":039806", 1),
            text.replacen("\"grams\":39806", "\"grams\":39806e0", 1),
            text.replacen("\"grams\":39806", "\"grams\":-39806", 1),
            text.replacen("\"grams\":39806", "\"grams\":18446744073709551616", 1),
            format!("{text} "),
            text.replacen('}', ",\"extra\":1}", 1),
            text.replacen("nl-covra-1", "nl-covra-\u{1}", 1),
            text.replacen("nl-covra-1", "nl-covra-\u{1f}", 1),
            text.replacen("nl-covra-1", "nl-covra-\u{0}", 1),
            text.replacen("\"IEA\"", "\"iea\"", 1),
            text.replacen("\"kind\":\"transferred\"", "\"kind\":\"stored\"", 1),
        ];
        for s in &spellings {
            assert_ne!(s, &text, "each spelling changes the text");
            assert_eq!(decode("transferred", s), None, "{s}");
            assert!(agrees("transferred", s), "{s}");
        }
        // Escaped but valid: serde still reads it, to the same event.
        assert_eq!(Event::from_json(&spellings[1]).unwrap(), event);
    }

    #[test]
    fn random_edits_are_read_as_serde_reads_them_or_left_to_it() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let texts: Vec<(String, Vec<u8>)> =
            events().iter().map(|e| (kind_of(e), crate::canonical::to_vec(e).unwrap())).collect();
        let alphabet = b"{}[]\",:0123456789-.eE \\aglnrstu\x00\x1f";
        let (mut read_here, mut tried) = (0, 0);
        for _ in 0..40_000 {
            let (kind, text) = &texts[rng.gen_range(0..texts.len())];
            let mut edited = text.clone();
            for _ in 0..rng.gen_range(1..=2) {
                let at = rng.gen_range(0..edited.len());
                let byte = alphabet[rng.gen_range(0..alphabet.len())];
                match rng.gen_range(0..3) {
                    0 => edited[at] = byte,
                    1 => edited.insert(at, byte),
                    _ => {
                        edited.remove(at);
                    }
                }
            }
            let Ok(edited) = String::from_utf8(edited) else { continue };
            tried += 1;
            assert!(agrees(kind, &edited), "{edited}");
            read_here += usize::from(decode(kind, &edited).is_some());
        }
        // Edits inside a string value or a number keep the layout: some must be read here,
        // or this test would pass with a `decode` that reads nothing.
        assert!(read_here > tried / 20, "{read_here} of {tried} edits read here");
    }
}
