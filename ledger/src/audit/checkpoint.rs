//! Signed checkpoints: `{tree_size, root, recorded_at, key, signature}`.
//!
//! A checkpoint is the ledger's signed statement "my log has `tree_size` records and this is
//! the RFC 6962 Merkle root over their hashes". An auditor who keeps one can later prove that
//! any record was in the log at that size (inclusion) and that the log only grew since
//! (consistency), without trusting the operator.
//!
//! The ledger signs with its own Ed25519 key, kept in the ledger directory
//! ([`KEY_FILE`], mode 0600) and created with the first checkpoint. What is signed:
//! [`CHECKPOINT_DOMAIN`] followed by the canonical JSON of every field but `signature`.
//! The stored entry also keeps the Merkle [`Frontier`] at that size, so the next checkpoint
//! hashes only the records added since.
//!
//! Beside the JSON fields, checkpoints the ledger makes now carry `note`: the same tree head
//! as a C2SP checkpoint signed note (see [`super::note`]), origin [`origin`] (`stockpile.v1/`
//! and the genesis record's hash), signed by the same key as an Ed25519 note signature
//! under the origin as key name. Witnesses' cosignatures are appended to the note as further
//! signature lines; the JSON signature does not cover `note`, the note's own signature does.
//! A checkpoint without `note` (every export made before) verifies as before.

use super::note::{CheckpointText, Note, NoteError, NoteSigner, VerifierKey, SIG_ED25519};
use crate::canonical::{self, hex_hash, Hash};
use crate::error::LedgerError;
use crate::merkle::{leaf_hash, Frontier};
use crate::record::RawRecord;
use crate::store::Store;
use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Prefix of every signed checkpoint: never valid as a command signature, nor the reverse.
pub const CHECKPOINT_DOMAIN: &[u8] = b"stockpile.v1.checkpoint\n";

/// The ledger's checkpoint signing key, in the ledger directory.
pub const KEY_FILE: &str = "checkpoint.key";

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Records covered: seqs `1..=tree_size`.
    pub tree_size: u64,
    /// RFC 6962 root over the leaves `leaf_hash(record hash)` of those records.
    #[serde(with = "hex_hash")]
    pub root: Hash,
    pub recorded_at: DateTime<Utc>,
    /// The ledger's Ed25519 public key, lower-case hex.
    pub key: String,
    /// Ed25519 signature, lower-case hex.
    pub signature: String,
    /// The same tree head as a C2SP signed note, signed by `key`, with any cosignatures
    /// gathered since. Absent from checkpoints made before notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the signature covers.
#[derive(Serialize)]
struct SignedPart<'a> {
    tree_size: u64,
    #[serde(with = "hex_hash")]
    root: Hash,
    recorded_at: &'a DateTime<Utc>,
    key: &'a str,
}

/// Why a checkpoint is not good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint is not in canonical form")]
    NotCanonical,
    #[error("the checkpoint's key is not an Ed25519 public key in lower-case hex")]
    BadKey,
    #[error("the checkpoint's signature does not verify under its key")]
    BadSignature,
}

impl Checkpoint {
    fn message(&self) -> Vec<u8> {
        let part =
            SignedPart { tree_size: self.tree_size, root: self.root, recorded_at: &self.recorded_at, key: &self.key };
        let mut message = CHECKPOINT_DOMAIN.to_vec();
        message.extend_from_slice(&canonical::to_vec(&part).expect("checkpoints hold no floats"));
        message
    }

    /// Checks the signature under the key the checkpoint names. Whether that key is the
    /// ledger's is the auditor's decision (pin it with the ledger's published key).
    pub fn verify_signature(&self) -> Result<(), CheckpointError> {
        let key: [u8; 32] = lower_hex(&self.key).ok_or(CheckpointError::BadKey)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| CheckpointError::BadKey)?;
        let signature: [u8; 64] = lower_hex(&self.signature).ok_or(CheckpointError::BadSignature)?;
        key.verify_strict(&self.message(), &Signature::from_bytes(&signature))
            .map_err(|_| CheckpointError::BadSignature)?;
        if self.note.is_some() {
            self.signed_note().map_err(|e| match e {
                NoteError::BadSignature { .. } | NoteError::Unsigned { .. } => CheckpointError::BadSignature,
                other => CheckpointError::Malformed(format!("its note: {other}")),
            })?;
        }
        Ok(())
    }

    /// The note, checked: a C2SP checkpoint with this tree size and root, signed by this
    /// checkpoint's key under the note's origin. Cosignatures on it are not checked here
    /// (see [`super::note::Quorum`]).
    pub fn signed_note(&self) -> Result<Note, NoteError> {
        let text = self.note.as_deref().ok_or_else(|| NoteError::Malformed("the checkpoint carries no note".into()))?;
        let note = Note::parse(text.as_bytes())?;
        let body = CheckpointText::parse(&note.text)?;
        if body.tree_size != self.tree_size || body.root != self.root || !body.extensions.is_empty() {
            return Err(NoteError::NotACheckpoint(
                "its tree size, root or extension lines differ from the JSON checkpoint's".into(),
            ));
        }
        note.verify(&self.note_verifier(&body.origin)?)?;
        Ok(note)
    }

    /// The verifier key of this checkpoint's key as a note signer under `origin`
    /// (`<origin>+<key ID>+<base64(0x01 ‖ key)>`): what a witness is configured with.
    pub fn note_verifier(&self, origin: &str) -> Result<VerifierKey, NoteError> {
        let bad_key =
            || NoteError::BadVerifierKey(format!("the checkpoint's key {:?} is not an Ed25519 key", self.key));
        let key: [u8; 32] = lower_hex(&self.key).ok_or_else(bad_key)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| bad_key())?;
        VerifierKey::new(origin, SIG_ED25519, key)
    }

    /// The export line: `{"checkpoint":{…}}`, canonical.
    pub fn to_line(&self) -> Vec<u8> {
        canonical::to_vec(&Line { checkpoint: self.clone() }).expect("checkpoints hold no floats")
    }

    /// Parses an export line strictly: the bytes must be exactly the canonical encoding of
    /// what they decode to, so no byte of a checkpoint line can change unnoticed.
    pub fn from_line(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let line: Line = serde_json::from_slice(bytes).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        if line.checkpoint.to_line() != bytes {
            return Err(CheckpointError::NotCanonical);
        }
        Ok(line.checkpoint)
    }

    /// Parses a checkpoint file: the export line, or the bare checkpoint object (pretty or
    /// not), as `stockpile audit checkpoint` prints it.
    pub fn from_file_text(text: &str) -> Result<Checkpoint, CheckpointError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let inner = value.get("checkpoint").cloned().unwrap_or(value);
        serde_json::from_value(inner).map_err(|e| CheckpointError::Malformed(e.to_string()))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    checkpoint: Checkpoint,
}

/// What the store keeps per checkpoint: the checkpoint and the frontier at its size.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    checkpoint: Checkpoint,
    frontier: Vec<String>,
}

fn lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

/// The ledger's checkpoint signing key. Never printed: `Debug` shows only the public key.
pub struct LedgerKey {
    signing: SigningKey,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerKey").field("public_key", &self.public_key_hex()).finish_non_exhaustive()
    }
}

impl LedgerKey {
    pub fn from_secret(secret: [u8; 32]) -> LedgerKey {
        LedgerKey { signing: SigningKey::from_bytes(&secret) }
    }

    /// The key in `dir/checkpoint.key`, created (mode 0600, never overwritten) if missing.
    pub fn load_or_create(dir: &Path) -> Result<LedgerKey, LedgerError> {
        LedgerKey::load_or_create_from(dir, None)
    }

    /// [`Self::load_or_create`], creating the file with `key` when given, else a new key.
    fn load_or_create_from(dir: &Path, key: Option<&LedgerKey>) -> Result<LedgerKey, LedgerError> {
        let path = dir.join(KEY_FILE);
        match LedgerKey::load_file(&path) {
            Ok(key) => Ok(key),
            Err(LedgerError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let key = match key {
                    Some(key) => LedgerKey::from_secret(key.signing.to_bytes()),
                    None => LedgerKey { signing: SigningKey::generate(&mut rand::rngs::OsRng) },
                };
                key.write_new(&path)?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// A new key written to `path` (mode 0600, synced; an existing file is refused):
    /// `stockpile-ledger new-key`, the one key of a failover group.
    pub fn create_file(path: &Path) -> Result<LedgerKey, LedgerError> {
        let key = LedgerKey { signing: SigningKey::generate(&mut rand::rngs::OsRng) };
        key.write_new(path)?;
        Ok(key)
    }

    fn write_new(&self, path: &Path) -> Result<(), LedgerError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| LedgerError::io("create", path, e))?;
        writeln!(file, "{}", hex::encode(self.signing.to_bytes()))
            .and_then(|_| file.sync_all())
            .map_err(|e| LedgerError::io("write", path, e))
    }

    /// Installs the key kept in `from` (apart from the data directory) as `dir/checkpoint.key`
    /// (mode 0600, synced) and returns it; when `dir` already holds a key it must be the
    /// same one, and is left as it is.
    pub fn install(from: &Path, dir: &Path) -> Result<LedgerKey, LedgerError> {
        let wanted = LedgerKey::load_file(from)?;
        let path = dir.join(KEY_FILE);
        if path.exists() {
            let present = LedgerKey::load_or_create(dir)?;
            if present.public_key_hex() != wanted.public_key_hex() {
                return Err(LedgerError::Unusable {
                    path,
                    what: format!(
                        "holds another checkpoint key than {}: one ledger signs with one key",
                        from.display()
                    ),
                });
            }
            return Ok(present);
        }
        LedgerKey::load_or_create_from(dir, Some(&wanted))
    }

    /// The key in the file `path` (64 lower-case hex characters).
    fn load_file(path: &Path) -> Result<LedgerKey, LedgerError> {
        let text = std::fs::read_to_string(path).map_err(|e| LedgerError::io("read", path, e))?;
        let secret = lower_hex::<32>(text.trim()).ok_or_else(|| LedgerError::Unusable {
            path: path.to_path_buf(),
            what: "not a checkpoint key (64 lower-case hex characters)".into(),
        })?;
        Ok(LedgerKey::from_secret(secret))
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().as_bytes())
    }

    /// The verifier key of this key's checkpoint notes from `origin`: what a witness of the
    /// ledger is configured with.
    pub fn note_verifier(&self, origin: &str) -> Result<VerifierKey, NoteError> {
        VerifierKey::new(origin, SIG_ED25519, self.signing.verifying_key())
    }

    pub fn sign(&self, tree_size: u64, root: Hash, recorded_at: DateTime<Utc>) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            tree_size,
            root,
            recorded_at: recorded_at.trunc_subsecs(6),
            key: self.public_key_hex(),
            signature: String::new(),
            note: None,
        };
        checkpoint.signature = hex::encode(self.signing.sign(&checkpoint.message()).to_bytes());
        checkpoint
    }

    /// [`LedgerKey::sign`], with the tree head also as a C2SP checkpoint note from `origin`.
    pub fn sign_with_note(&self, origin: &str, tree_size: u64, root: Hash, recorded_at: DateTime<Utc>) -> Checkpoint {
        let mut checkpoint = self.sign(tree_size, root, recorded_at);
        let text = CheckpointText { origin: origin.to_string(), tree_size, root, extensions: Vec::new() }.to_text();
        let signer =
            NoteSigner::new(origin, SIG_ED25519, self.signing.to_bytes()).expect("origins are valid key names");
        let note = Note { signatures: vec![signer.sign(&text)], text };
        checkpoint.note = Some(String::from_utf8(note.to_bytes()).expect("notes are UTF-8"));
        checkpoint
    }
}

/// Signs and stores a checkpoint over records `1..=up_to` (at most the committed head), or
/// returns the stored one when nothing was added since. Only records after the last stored
/// checkpoint are read.
pub fn create(store: &Store, key: &LedgerKey, up_to: u64, now: DateTime<Utc>) -> Result<Checkpoint, LedgerError> {
    let (mut frontier, last) = match store.last_checkpoint()? {
        Some((size, bytes)) => {
            let entry = decode_entry(size, &bytes)?;
            if size == up_to {
                return Ok(entry.0);
            }
            if size > up_to {
                return Err(LedgerError::Corrupt {
                    seq: up_to,
                    what: format!("a checkpoint covers {size} records but the log holds {up_to}"),
                });
            }
            (entry.1, Some(entry.0))
        }
        None => (Frontier::new(), None),
    };
    for_each_leaf(store, frontier.len() + 1, up_to, |leaf| frontier.push(leaf))?;
    if frontier.len() != up_to {
        return Err(LedgerError::Corrupt {
            seq: frontier.len() + 1,
            what: format!("the log ends at {} but a checkpoint was asked for {up_to}", frontier.len()),
        });
    }
    // Checkpoint time never goes back, whatever the clock says.
    let now = match &last {
        Some(c) if c.recorded_at > now => c.recorded_at,
        _ => now,
    };
    let genesis = genesis_hash(store)?;
    let checkpoint = key.sign_with_note(&origin(&genesis), up_to, frontier.root(), now);
    let entry =
        Entry { checkpoint: checkpoint.clone(), frontier: frontier.nodes().iter().map(canonical::hex).collect() };
    store.put_checkpoint(up_to, &serde_json::to_vec(&entry).expect("entries encode"))?;
    Ok(checkpoint)
}

/// Replaces the note of the stored checkpoint at `c.tree_size` with `c`'s (the same note
/// with witnesses' cosignatures appended). Everything else of the stored entry must be
/// `c`'s already: only the note changes.
pub fn store_cosigned(store: &Store, c: &Checkpoint) -> Result<(), LedgerError> {
    let size = c.tree_size;
    let corrupt = |what: &str| LedgerError::Corrupt { seq: size, what: format!("stored checkpoint: {what}") };
    let bytes = store
        .checkpoints(size)?
        .pop()
        .filter(|(s, _)| *s == size)
        .ok_or_else(|| corrupt("no checkpoint stored at this size to add cosignatures to"))?
        .1;
    let mut entry: Entry = serde_json::from_slice(&bytes).map_err(|e| corrupt(&e.to_string()))?;
    let without_note = |c: &Checkpoint| Checkpoint { note: None, ..c.clone() };
    if without_note(&entry.checkpoint) != without_note(c) {
        return Err(corrupt("the cosigned checkpoint is not the stored one"));
    }
    entry.checkpoint.note.clone_from(&c.note);
    store.put_checkpoint(size, &serde_json::to_vec(&entry).expect("entries encode"))
}

/// Stores a checkpoint taken from a verified source (an export, the checkpoints stream) as
/// [`create`] would have stored it: the checkpoint and the Merkle frontier at its size.
/// `frontier` must be the frontier over the store's first `c.tree_size` records.
pub fn store_restored(store: &Store, c: &Checkpoint, frontier: &Frontier) -> Result<(), LedgerError> {
    if frontier.len() != c.tree_size || frontier.root() != c.root {
        return Err(LedgerError::Corrupt {
            seq: c.tree_size,
            what: "a restored checkpoint's root is not the root of the records before it".into(),
        });
    }
    let entry = Entry { checkpoint: c.clone(), frontier: frontier.nodes().iter().map(canonical::hex).collect() };
    store.put_checkpoint(c.tree_size, &serde_json::to_vec(&entry).expect("entries encode"))
}

/// Prefix of every ledger's checkpoint origin.
pub const ORIGIN_PREFIX: &str = "stockpile.v1/";

/// The origin line of a ledger's checkpoint notes: [`ORIGIN_PREFIX`] and the genesis
/// record's hash in lower-case hex. It names one log from its first record on: a copy of the
/// log (restored, or forked) has the same origin, which is what lets witnesses compare them.
pub fn origin(genesis_hash: &Hash) -> String {
    format!("{ORIGIN_PREFIX}{}", canonical::hex(genesis_hash))
}

/// The hash of record 1.
pub fn genesis_hash(store: &Store) -> Result<Hash, LedgerError> {
    store
        .record(1)?
        .and_then(|bytes| record_hash(&bytes))
        .ok_or_else(|| LedgerError::Corrupt { seq: 1, what: "no genesis record with a valid hash".into() })
}

/// Every stored checkpoint with a tree size of at most `up_to`, in order.
pub fn stored(store: &Store, up_to: u64) -> Result<Vec<Checkpoint>, LedgerError> {
    store.checkpoints(up_to)?.into_iter().map(|(size, bytes)| Ok(decode_entry(size, &bytes)?.0)).collect()
}

fn decode_entry(size: u64, bytes: &[u8]) -> Result<(Checkpoint, Frontier), LedgerError> {
    let corrupt = |what: String| LedgerError::Corrupt { seq: size, what: format!("stored checkpoint: {what}") };
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let nodes: Option<Vec<Hash>> = entry.frontier.iter().map(|h| canonical::parse_hex(h)).collect();
    let frontier = nodes
        .and_then(|n| Frontier::from_parts(size, n))
        .ok_or_else(|| corrupt("frontier does not match the tree size".into()))?;
    if entry.checkpoint.tree_size != size || frontier.root() != entry.checkpoint.root {
        return Err(corrupt("frontier and checkpoint disagree".into()));
    }
    Ok((entry.checkpoint, frontier))
}

/// Calls `visit` with the Merkle leaf of every stored record `from..=up_to`, in order.
pub fn for_each_leaf(
    store: &Store,
    from: u64,
    up_to: u64,
    mut visit: impl FnMut(crate::merkle::Digest),
) -> Result<(), LedgerError> {
    let mut failure = None;
    store.scan(from, |seq, bytes| {
        if seq > up_to {
            return false;
        }
        match record_hash(bytes) {
            Some(hash) => visit(leaf_hash(&hash)),
            None => failure = Some(seq),
        }
        failure.is_none()
    })?;
    match failure {
        Some(seq) => Err(LedgerError::Corrupt { seq, what: "stored record has no valid hash".into() }),
        None => Ok(()),
    }
}

/// The hash a stored record carries.
pub fn record_hash(bytes: &[u8]) -> Option<Hash> {
    let raw: RawRecord<'_> = serde_json::from_slice(bytes).ok()?;
    canonical::parse_hex(raw.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_with_a_note_verifies_and_a_changed_note_does_not() {
        let key = LedgerKey::from_secret([5; 32]);
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let origin = origin(&[7; 32]);
        let c = key.sign_with_note(&origin, 9, [1; 32], at);
        c.verify_signature().unwrap();
        assert_eq!(Checkpoint::from_line(&c.to_line()).unwrap(), c);
        let note = c.signed_note().unwrap();
        assert_eq!(note.text, format!("{origin}\n9\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"));
        // Made before notes: no note member at all, and still good.
        let old = key.sign(9, [1; 32], at);
        old.verify_signature().unwrap();
        assert!(!String::from_utf8(old.to_line()).unwrap().contains("note"));
        // Another size, another root, another signer, or no signature: refused.
        let other = key.sign_with_note(&origin, 10, [1; 32], at).note;
        let stranger = LedgerKey::from_secret([6; 32]).sign_with_note(&origin, 9, [1; 32], at).note;
        let unsigned = Some(format!("{}\n", note.text));
        for (note, want) in [
            (other, CheckpointError::Malformed(String::new())),
            (stranger, CheckpointError::BadSignature),
            (unsigned, CheckpointError::Malformed(String::new())),
        ] {
            let bad = Checkpoint { note, ..c.clone() };
            let got = bad.verify_signature().unwrap_err();
            assert_eq!(std::mem::discriminant(&got), std::mem::discriminant(&want), "{got}");
        }
    }
}
