//! Keys, signatures and (batched) verification.
//!
//! A signed command carries the signer's key id and public key, so verification needs no
//! state and runs before the writer, on every core; the writer then checks that the key is
//! registered with that public key and not revoked.
//!
//! What is signed: `SIGNING_DOMAIN` followed by the canonical JSON of the command. The domain
//! prefix keeps a command signature from ever being valid for another kind of message.
//!
//! The rule a command signature `(R, s)` by public key `A` over message `M` must meet (the
//! cofactored rule of ZIP 215, with keys restricted to order ℓ): `s` is canonical
//! (`s < ℓ`), `A` and `R` decode as curve points and `A` has order ℓ, and
//! `[8]([s]B − [h]A − R)` is the identity, with `h = SHA-512(R ‖ A ‖ M) mod ℓ`. One rule for
//! one signature and for a batch: a batch holds exactly when each of its signatures does
//! (but with probability ≤ 2⁻¹²⁵), so whether a signature is accepted never depends on the
//! signatures it happened to be checked with — by the writer or by an auditor's export.
//! (The cofactorless equation of `verify_strict` has no such batch: a signature whose `R`
//! carries a small-order component fails it alone and passes a cofactorless batch for some
//! coefficients.) Every honest Ed25519 signature meets both rules.
//!
//! Verification is ed25519-zebra's (the Zcash Foundation's implementation of exactly this
//! rule, ZIP 215), single and batched; this module adds only the check that a key has order
//! ℓ. Signing stays with ed25519-dalek, which also signs and checks checkpoints
//! (`verify_strict`): Ed25519 signing is deterministic (RFC 8032), so both libraries make the
//! same bytes, as a test here shows.

use crate::canonical::{self, Hash};
use crate::domain::{Command, KeyId, Rejection, Signer};
use ed25519_dalek::{Signer as _, SigningKey};
use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Prefix of every signed message: names the contract version and the message type.
pub const SIGNING_DOMAIN: &[u8] = b"stockpile.v1.command\n";

/// Commands verified together in one Ed25519 batch. Measured on these machines (one core,
/// per signature): one by one 55–62 µs, batches of 16–64 28–33 µs, of 256 18–27 µs, of
/// 1,024 20–24 µs (above about 95 signatures the batch's multiscalar multiplication switches
/// to Pippenger's method, which gains with size). A batch with a bad signature is bisected
/// (see [`batch_verified`]), so a bigger batch does not make one bad signature much dearer.
pub const VERIFY_BATCH_COMMANDS_MAX: usize = 256;

/// Smallest batch a group is split into to keep every core busy: below this, batching
/// gains little over verifying one by one.
pub const VERIFY_BATCH_COMMANDS_MIN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub command: Command,
    pub key: KeyId,
    /// Ed25519 public key of `key`, lower-case hex.
    pub public_key: String,
    /// Ed25519 signature over `SIGNING_DOMAIN || canonical(command)`, lower-case hex.
    pub signature: String,
}

/// A command whose signature verified. Only [`verify`] and [`verify_all`] make one.
#[derive(Debug, Clone)]
pub struct Verified {
    pub signed: SignedCommand,
    /// Canonical JSON of `signed.command`, as signed (reused when the record is sealed).
    pub canonical: Vec<u8>,
    /// SHA-256 of the canonical command: the idempotency fingerprint.
    pub digest: Hash,
    pub signer: Signer,
}

/// An operator's signing key. Never printed: `Debug` shows only the id.
pub struct OperatorKey {
    pub id: KeyId,
    signing: SigningKey,
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl OperatorKey {
    pub fn generate(id: KeyId) -> Self {
        OperatorKey { id, signing: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// A key from 32 secret bytes (for deterministic tests and key files).
    pub fn from_secret(id: KeyId, secret: [u8; 32]) -> Self {
        OperatorKey { id, signing: SigningKey::from_bytes(&secret) }
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().as_bytes())
    }

    pub fn sign(&self, command: Command) -> SignedCommand {
        let message = signing_message(&command);
        let signature = self.signing.sign(&message);
        SignedCommand {
            command,
            key: self.id.clone(),
            public_key: self.public_key_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

pub(crate) fn signing_message(command: &Command) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_DOMAIN.len() + 512);
    message.extend_from_slice(SIGNING_DOMAIN);
    canonical::append(&mut message, command).expect("commands hold no floats");
    message
}

/// Decoded parts of a signed command, ready for verification.
struct Prepared {
    message: Vec<u8>,
    digest: Hash,
    /// The signer's key, of order ℓ ([`decompressed`]).
    key: VerificationKey,
    signature: Signature,
}

fn prepare(signed: &SignedCommand) -> Result<Prepared, Rejection> {
    let bad = || Rejection::BadSignature { key: signed.key.clone() };
    signed.key.check()?;
    let mut key_bytes = [0u8; 32];
    hex::decode_to_slice(&signed.public_key, &mut key_bytes).map_err(|_| bad())?;
    let key = decompressed(&key_bytes).ok_or_else(bad)?;
    let mut sig_bytes = [0u8; 64];
    hex::decode_to_slice(&signed.signature, &mut sig_bytes).map_err(|_| bad())?;
    let message = signing_message(&signed.command);
    let digest = canonical::sha256(&message[SIGNING_DOMAIN.len()..]);
    Ok(Prepared { message, digest, key, signature: Signature::from_bytes(&sig_bytes) })
}

/// Distinct public keys remembered per verifying thread. A ledger has a few keys per party;
/// decompressing a key costs about as much as a quarter of a verification, so each thread
/// keeps the ones it saw, up to this many (then starts over).
pub const KEY_CACHE_ENTRIES_MAX: usize = 4_096;

fn decompressed(bytes: &[u8; 32]) -> Option<VerificationKey> {
    thread_local! {
        static KEYS: std::cell::RefCell<std::collections::HashMap<[u8; 32], VerificationKey>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    KEYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(k) = cache.get(bytes) {
            return Some(*k);
        }
        // Only a key of order ℓ signs (ZIP 215 itself takes any point). A small-order key
        // vanishes from the cofactored equation (anything would verify); a key with a
        // small-order component would verify under it where `verify_strict` does not.
        // Checked once per key and thread.
        let point = curve25519_dalek::edwards::CompressedEdwardsY(*bytes).decompress()?;
        if point.is_small_order() || !point.is_torsion_free() {
            return None;
        }
        let key = VerificationKey::try_from(*bytes).ok()?;
        if cache.len() >= KEY_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(*bytes, key);
        Some(key)
    })
}

fn checked(signed: &SignedCommand, p: Prepared) -> Checked {
    let signer = Signer { key: signed.key.clone(), public_key: signed.public_key.clone(), origin: None };
    let mut canonical = p.message;
    canonical.drain(..SIGNING_DOMAIN.len());
    Checked { canonical, digest: p.digest, signer }
}

/// Verifies one signed command.
pub fn verify(signed: SignedCommand) -> Result<Verified, Rejection> {
    let p = prepare(&signed)?;
    if !holds(&p) {
        return Err(Rejection::BadSignature { key: signed.key.clone() });
    }
    Ok(checked(&signed, p).of(signed))
}

/// Verifies many signed commands: in batches of [`VERIFY_BATCH_COMMANDS_MAX`], spread over
/// rayon's pool (every core). A batch that fails is bisected, so one bad signature rejects
/// only itself and costs its batch about two more passes.
pub fn verify_all(commands: Vec<SignedCommand>) -> Vec<Result<Verified, Rejection>> {
    let mut out: Vec<Result<Verified, Rejection>> = Vec::with_capacity(commands.len());
    // Every core gets a share even of a small group; batches shrink (down to
    // VERIFY_BATCH_COMMANDS_MIN) before a core is left idle.
    let per_core = commands.len().div_ceil(rayon::current_num_threads().max(1));
    let size = per_core.clamp(VERIFY_BATCH_COMMANDS_MIN, VERIFY_BATCH_COMMANDS_MAX);
    let chunks: Vec<Vec<SignedCommand>> = {
        let mut chunks = Vec::new();
        let mut it = commands.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(size).collect());
        }
        chunks
    };
    let results: Vec<Vec<Result<Verified, Rejection>>> = chunks.into_par_iter().map(verify_chunk).collect();
    for r in results {
        out.extend(r);
    }
    out
}

/// Verifies one batch on this thread (one Ed25519 batch; culprits re-checked one by one).
/// For callers that spread batches over cores themselves.
pub fn verify_chunk(chunk: Vec<SignedCommand>) -> Vec<Result<Verified, Rejection>> {
    let refs: Vec<&SignedCommand> = chunk.iter().collect();
    let checked = check_chunk(&refs);
    chunk.into_iter().zip(checked).map(|(signed, c)| c.map(|c| c.of(signed))).collect()
}

/// What a command's verified signature establishes: [`Verified`] without the command, for a
/// caller that keeps the command where it is (an auditor's decoded record) instead of a copy.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Canonical JSON of the command, as signed.
    pub canonical: Vec<u8>,
    /// SHA-256 of the canonical command: the idempotency fingerprint.
    pub digest: Hash,
    pub signer: Signer,
}

impl Checked {
    /// The [`Verified`] command this check was made on.
    fn of(self, signed: SignedCommand) -> Verified {
        Verified { signed, canonical: self.canonical, digest: self.digest, signer: self.signer }
    }
}

/// [`verify_chunk`] over borrowed commands.
pub fn check_chunk(chunk: &[&SignedCommand]) -> Vec<Result<Checked, Rejection>> {
    let prepared: Vec<Result<Prepared, Rejection>> = chunk.iter().map(|s| prepare(s)).collect();
    let ok: Vec<&Prepared> = prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut good = batch_verified(&ok).into_iter();
    chunk
        .iter()
        .zip(prepared)
        .map(|(signed, p)| {
            let p = p?;
            let good = good.next().expect("one answer per prepared command");
            if !good {
                return Err(Rejection::BadSignature { key: signed.key.clone() });
            }
            Ok(checked(signed, p))
        })
        .collect()
}

/// Below this many signatures a failed batch is re-checked one by one instead of halved.
const BISECT_BELOW: usize = 8;

/// Whether each signature verifies. One Ed25519 batch for all; a batch that fails (it is
/// all-or-nothing) is halved and each half batched again, and one below [`BISECT_BELOW`] is
/// checked one by one, so `b` bad signatures among `n` cost about `b·log2(n)` small batches,
/// not `n` single checks. A batch and the single check apply the same rule (module docs), so
/// the answer for a signature does not depend on how its batch was cut.
fn batch_verified(prepared: &[&Prepared]) -> Vec<bool> {
    // Each message is hashed once (`h`), however often bisection batches it again.
    let items: Vec<batch::Item> = prepared.iter().map(|p| item(p)).collect();
    bisected(prepared, &items)
}

fn bisected(prepared: &[&Prepared], items: &[batch::Item]) -> Vec<bool> {
    if prepared.is_empty() {
        return Vec::new();
    }
    if batch_holds(items) {
        return vec![true; prepared.len()];
    }
    if prepared.len() < BISECT_BELOW {
        return prepared.iter().map(|p| holds(p)).collect();
    }
    let half = prepared.len() / 2;
    let mut out = bisected(&prepared[..half], &items[..half]);
    out.extend(bisected(&prepared[half..], &items[half..]));
    out
}

/// A signature as a batch term: the key's bytes, the signature and `h`, hashed now.
fn item(p: &Prepared) -> batch::Item {
    batch::Item::from((VerificationKeyBytes::from(p.key), p.signature, &p.message))
}

/// Whether one signature meets the rule of the module docs: ed25519-zebra's single check,
/// `[8]([s]B − [h]A − R) = 0` with canonical `s` (the key's order was checked when it was
/// decoded).
fn holds(p: &Prepared) -> bool {
    p.key.verify(&p.signature, &p.message).is_ok()
}

/// Whether one batch equation holds for all of `items`: ed25519-zebra's batch verifier, which
/// checks `[8]([−Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢhᵢ]Aᵢ) = 0` with random 128-bit `zᵢ`, so it holds
/// exactly when every signature meets the single rule (but with probability ≤ 2⁻¹²⁵). It
/// gathers the terms of each distinct public key into one: a ledger's commands come from a
/// few operator keys, so the multiscalar multiplication, most of a batch's cost, takes
/// `n + keys + 1` points instead of `2n + 1`.
fn batch_holds(items: &[batch::Item]) -> bool {
    let mut verifier = batch::Verifier::new();
    for item in items {
        verifier.queue(item.clone());
    }
    // The coefficients come from this thread's CSPRNG (ChaCha, seeded from the OS): a forger
    // who cannot predict them cannot make a bad signature cancel out in a batch.
    verifier.verify(rand::thread_rng()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, EventId, KeyId};
    use chrono::TimeZone;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::Scalar;

    /// ed25519-dalek's view of a prepared key, for comparing against its checks.
    fn dalek_key(p: &Prepared) -> ed25519_dalek::VerifyingKey {
        ed25519_dalek::VerifyingKey::from_bytes(&p.key.into()).unwrap()
    }

    fn command(id: &str) -> Command {
        Command {
            id: EventId::new(id),
            occurred_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            action: Action::RevokeKey { key: KeyId::new("k"), reason: "lost".into() },
        }
    }

    #[test]
    fn signatures_verify_and_tampering_is_caught() {
        let key = OperatorKey::from_secret(KeyId::new("nl-ops"), [7; 32]);
        let good: Vec<SignedCommand> = (0..150).map(|i| key.sign(command(&format!("e{i}")))).collect();
        let mut batch = good.clone();
        batch[70].command.id = EventId::new("changed-after-signing");
        batch[3].signature = "00".repeat(64);
        batch[4].public_key = "zz".into();
        let results = verify_all(batch);
        assert_eq!(results.len(), 150);
        for (i, r) in results.iter().enumerate() {
            let bad = matches!(i, 3 | 4 | 70);
            assert_eq!(r.is_err(), bad, "command {i}: {r:?}");
            if bad {
                assert!(matches!(r, Err(Rejection::BadSignature { .. })));
            }
        }
        let one = verify(good[0].clone()).unwrap();
        assert_eq!(one.digest, canonical::sha256(&canonical::to_vec(&good[0].command).unwrap()));
    }

    /// A batch holds exactly when each of its signatures does, whatever else is in it: batches
    /// of one to many keys, with commands altered after signing, signatures of another key,
    /// `s` out of range (`s + ℓ`) or off by one, `R` that is no point, and signatures whose `R`
    /// carries a small-order point (valid under the rule; the last 200 rounds hold one such
    /// signature among honest ones, which a cofactorless batch would accept or refuse
    /// depending on its coefficients). The single check agrees with `verify_strict` on all but
    /// those, and a batch without them answers as `ed25519_dalek::verify_batch` does.
    #[test]
    fn a_batch_holds_exactly_when_each_of_its_signatures_does() {
        use rand::{Rng, SeedableRng};
        // ℓ, the order of the base point, little-endian.
        const ELL: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_ba7c);
        let keys: Vec<OperatorKey> =
            (0..6u8).map(|i| OperatorKey::from_secret(KeyId::new(format!("k{i}")), [i + 1; 32])).collect();
        let resigned = |signed: &mut SignedCommand, f: &mut dyn FnMut(&mut [u8; 64])| {
            let mut sig: [u8; 64] = hex::decode(&signed.signature).unwrap().try_into().unwrap();
            f(&mut sig);
            signed.signature = hex::encode(sig);
        };
        let mut answers = [0usize; 2];
        for round in 0..600 {
            let n = rng.gen_range(1..=48);
            let signers = rng.gen_range(1..=keys.len());
            let tamper_rate = if round % 3 == 0 { 0.0 } else { 0.08 };
            let mut batch = Vec::with_capacity(n);
            let mut torsion = vec![false; n];
            for (i, torsion) in torsion.iter_mut().enumerate() {
                let signer = rng.gen_range(0..signers);
                let key = &keys[signer];
                let mut signed = key.sign(command(&format!("r{round}-{i}")));
                let tamper = match round >= 400 {
                    true if i == 0 => Some(5),
                    true => None,
                    false if rng.gen_bool(tamper_rate) => Some(rng.gen_range(0..6)),
                    false => None,
                };
                match tamper {
                    None => {}
                    Some(0) => signed.command.id = EventId::new("changed-after-signing"),
                    Some(1) => {
                        signed.signature = keys[(signer + 1) % keys.len()].sign(signed.command.clone()).signature
                    }
                    Some(2) => resigned(&mut signed, &mut |sig| {
                        // s + ℓ, the same residue in a non-canonical encoding.
                        let mut carry = 0u16;
                        for (b, l) in sig[32..].iter_mut().zip(ELL) {
                            let v = *b as u16 + l as u16 + carry;
                            *b = v as u8;
                            carry = v >> 8;
                        }
                    }),
                    Some(3) => resigned(&mut signed, &mut |sig| {
                        let s = Scalar::from_bytes_mod_order(sig[32..].try_into().unwrap()) + Scalar::ONE;
                        sig[32..].copy_from_slice(s.as_bytes());
                    }),
                    Some(4) => resigned(&mut signed, &mut |sig| loop {
                        let r: [u8; 32] = rng.gen();
                        if CompressedEdwardsY(r).decompress().is_none() {
                            sig[..32].copy_from_slice(&r);
                            break;
                        }
                    }),
                    Some(_) => {
                        signed = crate::testkit::sign_with_small_order_r(key, signed.command, rng.gen(), rng.gen());
                        *torsion = true;
                    }
                }
                batch.push(signed);
            }
            let prepared: Vec<Prepared> = batch.iter().map(|s| prepare(s).unwrap()).collect();
            let singles: Vec<bool> = prepared.iter().map(holds).collect();
            for ((p, &single), &torsion) in prepared.iter().zip(&singles).zip(&torsion) {
                let strict = dalek_key(p).verify_strict(&p.message, &p.signature).is_ok();
                assert_eq!(single, strict || torsion, "round {round}: the single check against verify_strict");
            }
            let refs: Vec<&Prepared> = prepared.iter().collect();
            let items: Vec<batch::Item> = prepared.iter().map(item).collect();
            let ours = batch_holds(&items);
            assert_eq!(ours, singles.iter().all(|&ok| ok), "round {round}: {n} commands by {signers} keys");
            assert_eq!(batch_verified(&refs), singles, "round {round}: bisection finds exactly the failing ones");
            if !torsion.contains(&true) {
                let messages: Vec<&[u8]> = prepared.iter().map(|p| p.message.as_slice()).collect();
                let signatures: Vec<Signature> = prepared.iter().map(|p| p.signature).collect();
                let verifying: Vec<ed25519_dalek::VerifyingKey> = prepared.iter().map(dalek_key).collect();
                let theirs = ed25519_dalek::verify_batch(&messages, &signatures, &verifying).is_ok();
                assert_eq!(ours, theirs, "round {round}: ed25519-dalek's batch answers the same");
            }
            if round >= 400 {
                assert!(ours, "round {round}: a signature with a small-order R is valid in any batch");
            }
            answers[usize::from(ours)] += 1;
        }
        assert!(answers[0] >= 100 && answers[1] >= 250, "both answers are exercised: {answers:?}");
    }

    /// Signing stays with ed25519-dalek; ed25519-zebra's signer makes the same bytes (RFC 8032
    /// signing is deterministic): on RFC 8032's first test vector, and on commands signed by
    /// many keys, whose public keys agree too.
    #[test]
    fn ed25519_dalek_and_ed25519_zebra_sign_the_same_bytes() {
        // RFC 8032 §7.1, TEST 1: the empty message.
        let secret: [u8; 32] = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
        let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        let dalek = OperatorKey::from_secret(KeyId::new("rfc"), secret);
        assert_eq!(hex::encode(dalek.signing.sign(b"").to_bytes()), expected);
        assert_eq!(hex::encode(ed25519_zebra::SigningKey::from(secret).sign(b"").to_bytes()), expected);
        for i in 0..64u8 {
            let secret = canonical::sha256(&[i]);
            let key = OperatorKey::from_secret(KeyId::new(format!("k{i}")), secret);
            let zebra = ed25519_zebra::SigningKey::from(secret);
            assert_eq!(hex::encode(<[u8; 32]>::from(VerificationKey::from(&zebra))), key.public_key_hex());
            let signed = key.sign(command(&format!("same-bytes-{i}")));
            assert_eq!(
                hex::encode(zebra.sign(&signing_message(&signed.command)).to_bytes()),
                signed.signature,
                "key {i}"
            );
        }
    }

    /// Only keys of order ℓ sign. A small-order key drops out of the cofactored equation, so
    /// a "signature" by it would verify for any message; a key with a small-order component,
    /// `aB + T`, signs under the cofactored equation where `verify_strict` refuses. Both are
    /// refused, alone and in a batch of good ones.
    #[test]
    fn keys_of_small_order_or_with_a_small_order_component_sign_nothing() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use sha2::{Digest, Sha512};
        let key = OperatorKey::from_secret(KeyId::new("nl-ops"), [7; 32]);
        let mut small = key.sign(command("small-order key"));
        small.public_key = hex::encode(EIGHT_TORSION[2].compress().as_bytes());
        // R = [s]B: with a small-order A, [8]([s]B − [h]A − R) = −[8h]A = 0 for every message.
        let s = Scalar::from(12_345u64);
        small.signature = hex::encode([*EdwardsPoint::mul_base(&s).compress().as_bytes(), *s.as_bytes()].concat());
        // A = [a]B + T, signed honestly with a: [8]([s]B − [h]A − R) = −[8h]T = 0.
        let a = SigningKey::from_bytes(&key.secret_bytes()).to_scalar();
        let mixed_public = (EdwardsPoint::mul_base(&a) + EIGHT_TORSION[1]).compress();
        let mut mixed = key.sign(command("mixed-order key"));
        mixed.public_key = hex::encode(mixed_public.as_bytes());
        let r = Scalar::from(777u64);
        let big_r = EdwardsPoint::mul_base(&r).compress();
        let hram: [u8; 64] = Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(mixed_public.as_bytes())
            .chain_update(signing_message(&mixed.command))
            .finalize()
            .into();
        let s = r + Scalar::from_bytes_mod_order_wide(&hram) * a;
        mixed.signature = hex::encode([*big_r.as_bytes(), *s.as_bytes()].concat());
        let p = Prepared {
            message: signing_message(&mixed.command),
            digest: [0; 32],
            key: VerificationKey::try_from(mixed_public.to_bytes()).unwrap(),
            signature: Signature::from_bytes(&hex::decode(&mixed.signature).unwrap().try_into().unwrap()),
        };
        assert!(holds(&p), "the mixed-order key's signature meets the equation: only the key check refuses it");
        for forged in [&small, &mixed] {
            assert!(
                matches!(verify(forged.clone()), Err(Rejection::BadSignature { .. })),
                "{}",
                forged.command.id.as_str()
            );
        }
        let mut batch: Vec<SignedCommand> = (0..40).map(|i| key.sign(command(&format!("e{i}")))).collect();
        batch.insert(17, small);
        batch.insert(30, mixed);
        let results = verify_all(batch);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_err(), i == 17 || i == 30, "command {i}: {r:?}");
        }
    }

    /// Bisection finds exactly the bad signatures wherever they sit in a batch: at its ends,
    /// across batch boundaries, next to each other, in a cluster, and signed by another key.
    #[test]
    fn every_bad_signature_in_big_batches_is_found_and_only_those() {
        let key = OperatorKey::from_secret(KeyId::new("nl-ops"), [7; 32]);
        let other = OperatorKey::from_secret(KeyId::new("de-ops"), [9; 32]);
        let n = 3 * VERIFY_BATCH_COMMANDS_MAX + 77;
        let mut commands: Vec<SignedCommand> = (0..n).map(|i| key.sign(command(&format!("e{i}")))).collect();
        let m = VERIFY_BATCH_COMMANDS_MAX;
        let mut bad: Vec<usize> = vec![0, 1, m - 1, m, 2 * m + 5, 2 * m + 6, n - 1];
        bad.extend(m + 40..m + 60);
        bad.extend((0..n).filter(|i| i * 7919 % 131 == 3));
        bad.sort_unstable();
        bad.dedup();
        for (j, &i) in bad.iter().enumerate() {
            match j % 3 {
                0 => commands[i].command.id = EventId::new(format!("altered-{i}")),
                1 => commands[i].signature = other.sign(commands[i].command.clone()).signature,
                _ => commands[i].public_key = other.public_key_hex(),
            }
        }
        let results = verify_all(commands);
        let rejected: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
        assert_eq!(rejected, bad);
        assert!(results.iter().flatten().all(|v| v.signer.key == KeyId::new("nl-ops")));
    }
}
