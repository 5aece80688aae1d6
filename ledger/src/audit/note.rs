//! C2SP signed notes, checkpoints and cosignatures (`c2sp.org/signed-note`,
//! `c2sp.org/tlog-checkpoint`, `c2sp.org/tlog-cosignature`), the common format of
//! transparency logs, so any witness or monitor of that ecosystem can read the ledger's tree
//! heads.
//!
//! - A **signed note** is a text ending in a newline, a blank line, and one or more signature
//!   lines `— <key name> base64(key ID ‖ signature)\n` (em dash U+2014, space).
//! - A **key ID** is `SHA-256(key name ‖ 0x0A ‖ signature type ‖ public key)[:4]`, read
//!   big-endian: type [`SIG_ED25519`] for the ledger's note signature, [`SIG_COSIGNATURE_V1`]
//!   for a witness's cosignature.
//! - A **verifier key** is the text `<name>+<key ID, 8 lower-case hex>+base64(type ‖ public
//!   key)`: how a partner names a key it trusts (`--ledger NAME=VKEY`, `--witness NAME=VKEY`).
//! - A **checkpoint** note's text is the origin line, the tree size in decimal, the base64
//!   root, then optional extension lines.
//! - A **cosignature** (v1, Ed25519) signs `cosignature/v1\ntime <t>\n` followed by the
//!   checkpoint text; its signature is the big-endian u64 `t` followed by the 64-byte
//!   Ed25519 signature.
//!
//! Pure: no I/O, no clock (the caller passes the cosignature's time). Signatures are checked
//! with `verify_strict`, as the ledger's JSON checkpoints are.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// Signature type of an Ed25519 note signature (the ledger's signature on its checkpoints).
pub const SIG_ED25519: u8 = 0x01;

/// Signature type of a timestamped Ed25519 witness cosignature (`cosignature/v1`).
pub const SIG_COSIGNATURE_V1: u8 = 0x04;

/// Signature lines read from one note. The spec asks verifiers to accept at least 16; the
/// ledger's notes carry one signature and one per configured witness.
pub const NOTE_SIGNATURES_MAX: usize = 100;

/// Bytes of one note, signatures included: a checkpoint text is under 200 bytes and each
/// Ed25519 signature line under 150, so 100 signatures fit with room to spare.
pub const NOTE_BYTES_MAX: usize = 64 << 10;

/// Extension lines read from one checkpoint (the ledger writes none).
pub const CHECKPOINT_EXTENSIONS_MAX: usize = 16;

/// The prefix of every signature line: em dash (U+2014) and a space.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The first line of every v1 cosigned message.
pub const COSIGNATURE_HEADER: &str = "cosignature/v1\n";

/// Why a note, a key or a signature is not good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Malformed(String),
    #[error("the note has {bytes} bytes, more than the {max} allowed")]
    TooLarge { bytes: usize, max: usize },
    #[error("the note has more than {max} signatures")]
    TooManySignatures { max: usize },
    #[error("not a checkpoint: {0}")]
    NotACheckpoint(String),
    #[error("not a verifier key (<name>+<8 hex key ID>+<base64 type and key>): {0}")]
    BadVerifierKey(String),
    #[error("the signature by {name} does not verify")]
    BadSignature { name: String },
    #[error("the note carries no signature by {name}")]
    Unsigned { name: String },
}

/// Whether `name` may name a key: non-empty, no Unicode white space, no `+`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// `SHA-256(name ‖ 0x0A ‖ signature type ‖ public key)[:4]`, big-endian.
pub fn key_id(name: &str, signature_type: u8, public_key: &[u8]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([signature_type])
        .chain_update(public_key)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// One signature line of a note, verified or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The bytes after the key ID.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// `— <name> base64(key ID ‖ signature)\n`.
    pub fn line(&self) -> String {
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(bytes))
    }

    /// Parses one signature line without its newline.
    pub fn parse_line(line: &str) -> Result<NoteSignature, NoteError> {
        let malformed = |what: &str| NoteError::Malformed(format!("signature line {line:?}: {what}"));
        let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| malformed("does not start with \"— \""))?;
        let (name, encoded) = rest.split_once(' ').ok_or_else(|| malformed("no space after the key name"))?;
        if !valid_key_name(name) {
            return Err(malformed("the key name is empty or holds a space or a plus"));
        }
        let bytes = BASE64.decode(encoded).map_err(|_| malformed("the signature is not base64"))?;
        if bytes.len() < 5 {
            return Err(malformed("the signature is shorter than a key ID and one byte"));
        }
        let key_id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(NoteSignature { name: name.to_string(), key_id, signature: bytes[4..].to_vec() })
    }
}

/// A note: its text (ending in a newline) and its signatures, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note strictly: UTF-8, no control character but newline, the text
    /// separated from the signature lines by the last blank line, at least one signature,
    /// every line ending in a newline. [`Note::to_bytes`] gives back exactly `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > NOTE_BYTES_MAX {
            return Err(NoteError::TooLarge { bytes: bytes.len(), max: NOTE_BYTES_MAX });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed("not UTF-8".into()))?;
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("holds a control character other than newline".into()));
        }
        let split =
            text.rfind("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        let (body, signatures) = (&text[..split + 1], &text[split + 2..]);
        let lines = signatures
            .strip_suffix('\n')
            .ok_or_else(|| NoteError::Malformed("the last signature line does not end in a newline".into()))?;
        let mut parsed = Vec::new();
        for line in lines.split('\n') {
            if parsed.len() == NOTE_SIGNATURES_MAX {
                return Err(NoteError::TooManySignatures { max: NOTE_SIGNATURES_MAX });
            }
            parsed.push(NoteSignature::parse_line(line)?);
        }
        Ok(Note { text: body.to_string(), signatures: parsed })
    }

    /// The text, a blank line, and the signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone().into_bytes();
        out.push(b'\n');
        for s in &self.signatures {
            out.extend_from_slice(s.line().as_bytes());
        }
        out
    }

    /// The signatures whose name and key ID are `key`'s.
    pub fn signatures_by<'a>(&'a self, key: &'a VerifierKey) -> impl Iterator<Item = &'a NoteSignature> + 'a {
        self.signatures.iter().filter(move |s| s.name == key.name && s.key_id == key.key_id)
    }

    /// Checks the note against one trusted key, as the spec asks of a client: signatures by
    /// other keys are ignored; every signature by this key must verify, and there must be
    /// one. For a cosigner key, returns the time of its (first) cosignature.
    pub fn verify(&self, key: &VerifierKey) -> Result<Option<u64>, NoteError> {
        let mut time = None;
        let mut seen = false;
        for s in self.signatures_by(key) {
            let t = key
                .verify(&self.text, &s.signature)
                .ok_or_else(|| NoteError::BadSignature { name: key.name.clone() })?;
            time = time.or(t);
            seen = true;
        }
        if seen {
            Ok(time)
        } else {
            Err(NoteError::Unsigned { name: key.name.clone() })
        }
    }
}

/// A verifier key: a name, a signature type and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub key_id: u32,
    /// [`SIG_ED25519`] or [`SIG_COSIGNATURE_V1`].
    pub signature_type: u8,
    pub public_key: VerifyingKey,
}

impl VerifierKey {
    pub fn new(name: &str, signature_type: u8, public_key: VerifyingKey) -> Result<VerifierKey, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadVerifierKey(format!("the name {name:?} is empty or holds a space or a plus")));
        }
        if ![SIG_ED25519, SIG_COSIGNATURE_V1].contains(&signature_type) {
            return Err(NoteError::BadVerifierKey(format!(
                "signature type 0x{signature_type:02x} is not 0x01 or 0x04"
            )));
        }
        let key_id = key_id(name, signature_type, public_key.as_bytes());
        Ok(VerifierKey { name: name.to_string(), key_id, signature_type, public_key })
    }

    /// Verifies `signature` (the bytes after the key ID) over `text`: an Ed25519 note
    /// signature, or a cosignature over [`cosigned_message`]. `Some(time)` for a good
    /// cosignature, `Some(None)` for a good note signature, `None` for a bad one.
    pub fn verify(&self, text: &str, signature: &[u8]) -> Option<Option<u64>> {
        match self.signature_type {
            SIG_ED25519 => {
                let signature = Signature::from_bytes(signature.try_into().ok()?);
                self.public_key.verify_strict(text.as_bytes(), &signature).ok().map(|()| None)
            }
            _ => {
                let (time, signature) = split_cosignature(signature)?;
                let message = cosigned_message(time, text);
                self.public_key.verify_strict(&message, &signature).ok().map(|()| Some(time))
            }
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = vec![self.signature_type];
        material.extend_from_slice(self.public_key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(material))
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;

    /// `<name>+<key ID>+<base64>`; the key ID must be the one the name and key give.
    fn from_str(text: &str) -> Result<VerifierKey, NoteError> {
        let bad = |what: &str| NoteError::BadVerifierKey(format!("{text:?}: {what}"));
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected three parts separated by '+'"));
        };
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("the key ID is not 8 lower-case hex digits"));
        }
        let material = BASE64.decode(material).map_err(|_| bad("the key is not base64"))?;
        let (&signature_type, key) = material.split_first().ok_or_else(|| bad("the key is empty"))?;
        let key: [u8; 32] = key.try_into().map_err(|_| bad("the key is not 32 bytes after its type"))?;
        let public_key = VerifyingKey::from_bytes(&key).map_err(|_| bad("not an Ed25519 public key"))?;
        let vkey = VerifierKey::new(name, signature_type, public_key)?;
        if format!("{:08x}", vkey.key_id) != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(vkey)
    }
}

/// Signs note texts with an Ed25519 key under a name, as a log ([`SIG_ED25519`]) or as a
/// witness ([`SIG_COSIGNATURE_V1`]).
pub struct NoteSigner {
    verifier: VerifierKey,
    signing: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner").field("verifier", &self.verifier.to_string()).finish_non_exhaustive()
    }
}

impl NoteSigner {
    pub fn new(name: &str, signature_type: u8, secret: [u8; 32]) -> Result<NoteSigner, NoteError> {
        let signing = SigningKey::from_bytes(&secret);
        let verifier = VerifierKey::new(name, signature_type, signing.verifying_key())?;
        Ok(NoteSigner { verifier, signing })
    }

    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// An Ed25519 note signature over `text` (for a [`SIG_ED25519`] signer).
    pub fn sign(&self, text: &str) -> NoteSignature {
        let signature = self.signing.sign(text.as_bytes()).to_bytes().to_vec();
        NoteSignature { name: self.verifier.name.clone(), key_id: self.verifier.key_id, signature }
    }

    /// A v1 cosignature over checkpoint `text` at `time` (POSIX seconds).
    pub fn cosign(&self, text: &str, time: u64) -> NoteSignature {
        let mut signature = time.to_be_bytes().to_vec();
        signature.extend_from_slice(&self.signing.sign(&cosigned_message(time, text)).to_bytes());
        NoteSignature { name: self.verifier.name.clone(), key_id: self.verifier.key_id, signature }
    }
}

/// `cosignature/v1\ntime <time>\n` followed by the checkpoint text.
pub fn cosigned_message(time: u64, text: &str) -> Vec<u8> {
    format!("{COSIGNATURE_HEADER}time {time}\n{text}").into_bytes()
}

/// A cosignature's bytes: the big-endian time (at most 2⁶³ − 1) and the Ed25519 signature.
fn split_cosignature(bytes: &[u8]) -> Option<(u64, Signature)> {
    let bytes: &[u8; 72] = bytes.try_into().ok()?;
    let time = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    if time > i64::MAX as u64 {
        return None;
    }
    Some((time, Signature::from_bytes(bytes[8..].try_into().ok()?)))
}

/// The text of a checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointText {
    pub origin: String,
    pub tree_size: u64,
    pub root: [u8; 32],
    pub extensions: Vec<String>,
}

impl CheckpointText {
    /// `<origin>\n<tree size>\n<base64 root>\n` and each extension line.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.tree_size, BASE64.encode(self.root));
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a note text strictly: [`CheckpointText::to_text`] gives back exactly `text`
    /// (decimal without leading zeroes, canonical base64 of 32 bytes, no empty line).
    pub fn parse(text: &str) -> Result<CheckpointText, NoteError> {
        let bad = |what: &str| NoteError::NotACheckpoint(what.to_string());
        let body = text.strip_suffix('\n').ok_or_else(|| bad("the text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("the origin line is empty"))?;
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        let tree_size: u64 = size.parse().map_err(|_| bad("the tree size is not a decimal number"))?;
        if tree_size.to_string() != size {
            return Err(bad("the tree size is not in canonical decimal"));
        }
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: [u8; 32] = BASE64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root hash is not the base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.len() > CHECKPOINT_EXTENSIONS_MAX {
            return Err(bad("too many extension lines"));
        }
        if extensions.iter().any(String::is_empty) {
            return Err(bad("an extension line is empty"));
        }
        let checkpoint = CheckpointText { origin: origin.to_string(), tree_size, root, extensions };
        if checkpoint.to_text() != text {
            return Err(bad("the root hash is not in canonical base64"));
        }
        Ok(checkpoint)
    }
}

/// How a note's cosignatures stand against a set of trusted witnesses and a quorum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quorum {
    /// Witnesses whose cosignature verified, with its time.
    pub valid: Vec<(String, u64)>,
    /// Witnesses that cosigned with a signature that does not verify.
    pub bad: Vec<String>,
    /// Witnesses with no cosignature on the note.
    pub missing: Vec<String>,
}

impl Quorum {
    /// Checks every trusted witness's cosignature on `note` (witnesses are counted by
    /// distinct name; give each witness once).
    pub fn of(note: &Note, witnesses: &[VerifierKey]) -> Quorum {
        let mut quorum = Quorum::default();
        for w in witnesses {
            match note.verify(w) {
                Ok(time) => quorum.valid.push((w.name.clone(), time.unwrap_or(0))),
                Err(NoteError::Unsigned { .. }) => quorum.missing.push(w.name.clone()),
                Err(_) => quorum.bad.push(w.name.clone()),
            }
        }
        quorum
    }
}

#[cfg(test)]
mod tests {
    //! The published examples of the C2SP specifications and of Go's `sumdb/note` (the
    //! reference implementation the specification came from), vendored with their sources in
    //! `schemas/c2sp/`, reproduced byte for byte.
    use super::*;

    const SIGNED_NOTE: &str = include_str!("../../../schemas/c2sp/signed-note.example.txt");
    const CHECKPOINT: &str = include_str!("../../../schemas/c2sp/tlog-checkpoint.example.txt");
    const COSIGNED: &str = include_str!("../../../schemas/c2sp/tlog-cosignature.example.txt");
    const GO_NOTE: &str = include_str!("../../../schemas/c2sp/go-sumdb-note.example.txt");
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    /// The private key the Go documentation publishes for the example (`PRIVATE+KEY+…`).
    const GO_SKEY_MATERIAL: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    #[test]
    fn the_signed_note_example_round_trips_byte_for_byte() {
        let note = Note::parse(SIGNED_NOTE.as_bytes()).unwrap();
        assert_eq!(note.to_bytes(), SIGNED_NOTE.as_bytes());
        // The text keeps its own blank line: the signatures start after the last one.
        assert!(note.text.ends_with("sole:\n\ned è subito sera.\n"), "{:?}", note.text);
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].name, "quasimodo.example/salvatore");
        assert_eq!(note.signatures[0].signature.len(), 64);
    }

    #[test]
    fn the_checkpoint_example_parses_and_re_encodes_byte_for_byte() {
        let note = Note::parse(CHECKPOINT.as_bytes()).unwrap();
        assert_eq!(note.to_bytes(), CHECKPOINT.as_bytes());
        let checkpoint = CheckpointText::parse(&note.text).unwrap();
        assert_eq!(checkpoint.origin, "example.com/behind-the-sofa");
        assert_eq!(checkpoint.tree_size, 20_852_163);
        assert_eq!(checkpoint.to_text(), note.text);
        assert_eq!(note.signatures[0].name, checkpoint.origin);
    }

    /// The cosignature example: the witness line's time is the one the spec's signed
    /// message shows, and the line is a 72-byte timestamped signature.
    #[test]
    fn the_cosignature_example_carries_its_timestamp() {
        let note = Note::parse(COSIGNED.as_bytes()).unwrap();
        assert_eq!(note.to_bytes(), COSIGNED.as_bytes());
        let witness = &note.signatures[1];
        assert_eq!(witness.name, "witness.example.com/w1");
        assert_eq!(witness.signature.len(), 72);
        let (time, _) = split_cosignature(&witness.signature).unwrap();
        assert_eq!(time, 1_679_315_147);
        let message = cosigned_message(time, &note.text);
        assert_eq!(
            message,
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        // The log's signature is the checkpoint example's, unchanged.
        assert_eq!(note.signatures[0], Note::parse(CHECKPOINT.as_bytes()).unwrap().signatures[0]);
    }

    /// Go's example: with its published private key, signing reproduces the published note
    /// byte for byte (Ed25519 is deterministic), and its verifier key verifies it.
    #[test]
    fn the_go_example_signs_and_verifies_byte_for_byte() {
        let vkey: VerifierKey = GO_VKEY.parse().unwrap();
        assert_eq!(vkey.to_string(), GO_VKEY);
        assert_eq!(vkey.key_id, 0xc74f20a3);
        let secret = BASE64.decode(GO_SKEY_MATERIAL).unwrap();
        assert_eq!(secret[0], SIG_ED25519);
        let signer = NoteSigner::new("PeterNeumann", SIG_ED25519, secret[1..].try_into().unwrap()).unwrap();
        assert_eq!(signer.verifier(), &vkey, "the key ID rule gives the published key ID");
        let note = Note::parse(GO_NOTE.as_bytes()).unwrap();
        let signed = Note { text: note.text.clone(), signatures: vec![signer.sign(&note.text)] };
        assert_eq!(signed.to_bytes(), GO_NOTE.as_bytes());
        assert_eq!(note.verify(&vkey), Ok(None));
        let mut altered = note.clone();
        altered.text = altered.text.replace("problem is", "problem was");
        assert_eq!(altered.verify(&vkey), Err(NoteError::BadSignature { name: "PeterNeumann".into() }));
    }

    #[test]
    fn a_cosignature_verifies_only_for_its_text_time_and_key() {
        let witness = NoteSigner::new("witness.example/w1", SIG_COSIGNATURE_V1, [3; 32]).unwrap();
        let other = NoteSigner::new("witness.example/w1", SIG_COSIGNATURE_V1, [4; 32]).unwrap();
        let text = Note::parse(CHECKPOINT.as_bytes()).unwrap().text;
        let mut note = Note { text: text.clone(), signatures: vec![witness.cosign(&text, 1_700_000_000)] };
        assert_eq!(note.verify(witness.verifier()), Ok(Some(1_700_000_000)));
        assert_eq!(note.verify(other.verifier()), Err(NoteError::Unsigned { name: "witness.example/w1".into() }));
        // The same key as a plain note signer has another key ID: a cosignature is not a note signature.
        let plain = VerifierKey::new("witness.example/w1", SIG_ED25519, witness.verifier().public_key).unwrap();
        assert_ne!(plain.key_id, witness.verifier().key_id);
        note.signatures[0].signature[7] ^= 1; // another time
        assert!(matches!(note.verify(witness.verifier()), Err(NoteError::BadSignature { .. })));
        let vkey: VerifierKey = witness.verifier().to_string().parse().unwrap();
        assert_eq!(&vkey, witness.verifier());
    }

    #[test]
    fn malformed_notes_keys_and_checkpoints_are_refused() {
        for bad in [
            "text\n— a AAAAAAA=\n",        // no blank line
            "text\n\n— a AAAAAAA=",        // no final newline
            "text\n\n- a AAAAAAA=\n",      // hyphen, not em dash
            "text\n\n— a+b AAAAAAA=\n",    // plus in the name
            "text\n\n— a AAAA\n",          // too short
            "te\u{7}xt\n\n— a AAAAAAA=\n", // control character
            "text\n\n— a !!!!\n",          // not base64
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        for bad in [
            "o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n1\nAAAA\n",
            "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
            "o\n1\n",
        ] {
            assert!(CheckpointText::parse(bad).is_err(), "{bad:?}");
        }
        let good: VerifierKey = GO_VKEY.parse().unwrap();
        for bad in [
            GO_VKEY.replace("c74f20a3", "c74f20a4"),
            GO_VKEY.replace("c74f20a3", "C74F20A3"),
            GO_VKEY.replace("PeterNeumann", "Peter Neumann"),
            GO_VKEY.replace("+ARpc", "+AhSpc"),
            "PeterNeumann+c74f20a3".to_string(),
        ] {
            assert!(bad.parse::<VerifierKey>().is_err(), "{bad}");
        }
        assert_eq!(good.signature_type, SIG_ED25519);
    }
}
