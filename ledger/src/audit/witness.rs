//! The witness's rule (C2SP `tlog-witness` add-checkpoint), pure: parse a request, check it
//! against the latest checkpoint cosigned for its origin, and say what to answer.
//!
//! The request body is an `old <size>` line, up to [`PROOF_LINES_MAX`] base64 consistency
//! proof lines, a blank line, and a signed checkpoint note. The checks, in the order the
//! specification gives them, each with the HTTP status it names (the NATS service carries
//! the status as `Nats-Service-Error-Code`):
//!
//! | check                                                          | refusal           | status |
//! |----------------------------------------------------------------|-------------------|--------|
//! | the body parses                                                | `BadRequest`      | 400    |
//! | the origin is one the witness is configured for                | `UnknownOrigin`   | 404    |
//! | a signature by that ledger's key verifies                      | `Forbidden`       | 403    |
//! | old size ≤ checkpoint size                                     | `BadRequest`      | 400    |
//! | old size = size of the latest cosigned checkpoint (0 if none)  | `Conflict`        | 409    |
//! | the proof is empty when old size is 0, else proves consistency | `BadProof`        | 422    |
//! | at the same size, the same root                                | `Conflict`        | 409    |
//!
//! A 409 answers with the latest cosigned size in decimal and a newline. What is accepted
//! becomes the new latest checkpoint; the caller must persist it before answering with the
//! cosignature, and run check-and-persist for one origin one at a time.

use super::note::{CheckpointText, Note, NoteError, NoteSignature, VerifierKey};
use crate::merkle;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Consistency proof lines in one request (the specification's limit: a proof between two
/// trees of up to 2⁶⁴ leaves has at most 2·64 − 1 hashes, but clients send at most 63).
pub const PROOF_LINES_MAX: usize = 63;

/// Bytes of one add-checkpoint request: the proof (63 lines of 45 bytes) and a note.
pub const ADD_CHECKPOINT_BYTES_MAX: usize = super::note::NOTE_BYTES_MAX + (4 << 10);

/// Prefix of a witness's add-checkpoint subject.
pub const SUBJECT_PREFIX: &str = "stockpile.v1.witness.";

/// The NATS subject a witness named `name` serves add-checkpoint on:
/// `stockpile.v1.witness.<token>.add-checkpoint`, where `<token>` is `name` with every
/// character other than ASCII letters, digits, `-` and `_` replaced by `_` (a NATS subject
/// token holds no `.`, `*`, `>` or space). `witness.example/w1` → `witness_example_w1`.
pub fn subject(name: &str) -> String {
    let token: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{SUBJECT_PREFIX}{token}.add-checkpoint")
}

/// A parsed add-checkpoint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<[u8; 32]>,
    pub note: Note,
    pub checkpoint: CheckpointText,
}

impl AddCheckpoint {
    /// The request body: `old <n>\n`, the proof lines, `\n`, the note.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for hash in &self.proof {
            out.extend_from_slice(BASE64.encode(hash).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.note.to_bytes());
        out
    }

    /// Parses a request body strictly (see the module documentation).
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, Refusal> {
        let bad = |what: String| Refusal::BadRequest(what);
        if body.len() > ADD_CHECKPOINT_BYTES_MAX {
            return Err(bad(format!("the request has {} bytes, more than {ADD_CHECKPOINT_BYTES_MAX}", body.len())));
        }
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| bad("no blank line between the proof and the checkpoint".into()))?;
        let head = std::str::from_utf8(&body[..split]).map_err(|_| bad("the proof lines are not UTF-8".into()))?;
        let mut lines = head.split('\n');
        let old = lines.next().unwrap_or_default();
        let size =
            old.strip_prefix("old ").ok_or_else(|| bad(format!("the first line {old:?} is not \"old <size>\"")))?;
        let old_size: u64 = size.parse().map_err(|_| bad(format!("the old size {size:?} is not a decimal number")))?;
        if old_size.to_string() != size {
            return Err(bad(format!("the old size {size:?} is not in canonical decimal")));
        }
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == PROOF_LINES_MAX {
                return Err(bad(format!("more than {PROOF_LINES_MAX} consistency proof lines")));
            }
            let hash: [u8; 32] = BASE64
                .decode(line)
                .ok()
                .and_then(|h| h.try_into().ok())
                .filter(|h: &[u8; 32]| BASE64.encode(h) == line)
                .ok_or_else(|| bad(format!("the proof line {line:?} is not the base64 of a 32-byte hash")))?;
            proof.push(hash);
        }
        let note = Note::parse(&body[split + 2..]).map_err(|e| bad(e.to_string()))?;
        let checkpoint = CheckpointText::parse(&note.text).map_err(|e| bad(e.to_string()))?;
        Ok(AddCheckpoint { old_size, proof, note, checkpoint })
    }
}

/// The latest checkpoint a witness cosigned for one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    pub size: u64,
    pub root: [u8; 32],
}

/// Why a witness does not cosign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("the witness does not know the origin {0:?}")]
    UnknownOrigin(String),
    #[error("no signature by the ledger's key verifies: {0}")]
    Forbidden(String),
    #[error("conflict: the latest checkpoint cosigned for this origin has size {latest}{}", if *.same_size { " and another root" } else { "" })]
    Conflict { latest: u64, same_size: bool },
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
}

impl Refusal {
    /// The HTTP status the specification gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::BadProof(_) => 422,
        }
    }

    /// The answer's body: for a conflict, the latest cosigned size and a newline (the
    /// specification's `text/x.tlog.size`); otherwise the reason, one line.
    pub fn body(&self) -> Vec<u8> {
        match self {
            Refusal::Conflict { latest, .. } => format!("{latest}\n").into_bytes(),
            other => format!("{other}\n").into_bytes(),
        }
    }

    /// Whether the refused checkpoint, signed by the ledger, is evidence against it: a
    /// different root at the cosigned size, a smaller tree than cosigned, or a proof that
    /// does not hold. (A stale old size alone is a client out of date, not evidence.)
    pub fn is_evidence(&self, request: &AddCheckpoint, latest: Option<&Latest>) -> bool {
        match self {
            Refusal::Conflict { same_size, .. } => {
                *same_size || latest.is_some_and(|l| request.checkpoint.tree_size < l.size)
            }
            Refusal::BadProof(_) => true,
            Refusal::BadRequest(_) => latest.is_some_and(|l| request.checkpoint.tree_size < l.size),
            _ => false,
        }
    }
}

/// One witness as a ledger or a client is configured with it: its verifier key (type
/// [`super::note::SIG_COSIGNATURE_V1`]) and the NATS subject it serves add-checkpoint on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    pub key: VerifierKey,
    pub subject: String,
}

impl WitnessKey {
    /// Parses `[NAME=]VKEY[@SUBJECT]`: the witness's verifier key (`witness key` prints it),
    /// optionally preceded by its name (which must then be the key's name) and followed by
    /// the subject it serves (default: [`subject`] of its name). Base64 holds no `@`, so
    /// the first `@` ends the key.
    pub fn parse(entry: &str) -> Result<WitnessKey, NoteError> {
        let (named, subject) = match entry.split_once('@') {
            Some((k, s)) if !s.is_empty() && !s.contains([' ', '*', '>']) => (k, Some(s.to_string())),
            Some(_) => {
                return Err(NoteError::BadVerifierKey(format!(
                    "{entry:?}: the subject after '@' is not a NATS subject"
                )))
            }
            None => (entry, None),
        };
        let (name, vkey) = match named.split_once('=') {
            Some((name, vkey)) => (Some(name), vkey),
            None => (None, named),
        };
        let key: VerifierKey = vkey.parse()?;
        if key.signature_type != super::note::SIG_COSIGNATURE_V1 {
            return Err(NoteError::BadVerifierKey(format!(
                "{vkey:?}: a witness's key cosigns (type 0x04); this one is type 0x{:02x}",
                key.signature_type
            )));
        }
        if let Some(name) = name.filter(|n| *n != key.name) {
            return Err(NoteError::BadVerifierKey(format!("the name {name:?} is not the key's name {:?}", key.name)));
        }
        let subject = subject.unwrap_or_else(|| self::subject(&key.name));
        Ok(WitnessKey { key, subject })
    }
}

/// The cosignature lines of a witness's answer that verify under its key over `text`; the
/// others (lines by other keys, garbage) are dropped, so nothing unverified is appended.
pub fn cosignatures(answer: &[u8], witness: &VerifierKey, text: &str) -> Vec<NoteSignature> {
    let Ok(answer) = std::str::from_utf8(answer) else { return Vec::new() };
    answer
        .lines()
        .filter_map(|line| NoteSignature::parse_line(line).ok())
        .filter(|s| s.name == witness.name && s.key_id == witness.key_id)
        .filter(|s| witness.verify(text, &s.signature).is_some())
        .collect()
}

/// The latest cosigned size a 409 answer names (`<size>\n`).
pub fn conflict_size(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?.strip_suffix('\n')?;
    text.parse().ok().filter(|n: &u64| n.to_string() == text)
}

/// Checks `request` against the witness's trusted keys for its origin and the latest
/// checkpoint it cosigned for that origin; the new latest checkpoint if it may cosign.
pub fn check(request: &AddCheckpoint, trusted: &[VerifierKey], latest: Option<&Latest>) -> Result<Latest, Refusal> {
    let c = &request.checkpoint;
    if trusted.is_empty() {
        return Err(Refusal::UnknownOrigin(c.origin.clone()));
    }
    let mut reasons = Vec::new();
    if !trusted.iter().any(|key| match request.note.verify(key) {
        Ok(_) => true,
        Err(e) => {
            reasons.push(e);
            false
        }
    }) {
        return Err(Refusal::Forbidden(reasons.iter().map(NoteError::to_string).collect::<Vec<_>>().join("; ")));
    }
    if request.old_size > c.tree_size {
        return Err(Refusal::BadRequest(format!(
            "the old size {} is larger than the checkpoint's {}",
            request.old_size, c.tree_size
        )));
    }
    let latest_size = latest.map_or(0, |l| l.size);
    if request.old_size != latest_size {
        return Err(Refusal::Conflict { latest: latest_size, same_size: false });
    }
    match latest {
        None => {
            if !request.proof.is_empty() {
                return Err(Refusal::BadProof("the proof must be empty when the old size is 0".into()));
            }
        }
        Some(l) if l.size == c.tree_size => {
            if !request.proof.is_empty() {
                return Err(Refusal::BadProof("the proof must be empty between equal sizes".into()));
            }
            if l.root != c.root {
                return Err(Refusal::Conflict { latest: l.size, same_size: true });
            }
        }
        Some(l) => merkle::verify_consistency(l.size, c.tree_size, &l.root, &c.root, &request.proof)
            .map_err(|e| Refusal::BadProof(e.to_string()))?,
    }
    Ok(Latest { size: c.tree_size, root: c.root })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::note::{NoteSigner, SIG_ED25519};
    use crate::merkle::{leaf_hash, MerkleLog};

    const EXAMPLE: &str = include_str!("../../../schemas/c2sp/tlog-witness.add-checkpoint.example.txt");

    #[test]
    fn the_specification_example_request_round_trips_byte_for_byte() {
        let request = AddCheckpoint::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(request.old_size, 20_852_014);
        assert_eq!(request.proof.len(), 4);
        assert_eq!(request.checkpoint.tree_size, 20_852_163);
        assert_eq!(request.note.signatures.len(), 2);
        assert_eq!(request.to_bytes(), EXAMPLE.as_bytes());
    }

    #[test]
    fn the_specification_example_response_lines_round_trip() {
        let response = include_str!("../../../schemas/c2sp/tlog-witness.response.example.txt");
        let lines: Vec<_> =
            response.lines().map(|l| crate::audit::note::NoteSignature::parse_line(l).unwrap()).collect();
        assert_eq!(lines.iter().map(|s| s.line()).collect::<String>(), response);
        assert_eq!(lines.iter().filter(|s| s.signature.len() == 72).count(), 3, "three timestamped cosignatures");
    }

    fn log(leaves: &[&str]) -> MerkleLog {
        let mut log = MerkleLog::new();
        for l in leaves {
            log.push(leaf_hash(l.as_bytes()));
        }
        log
    }

    fn request(signer: &NoteSigner, log: &MerkleLog, old_size: u64, size: u64) -> AddCheckpoint {
        let checkpoint = CheckpointText {
            origin: "stockpile.example/ledger".into(),
            tree_size: size,
            root: log.root_at(size).unwrap(),
            extensions: vec![],
        };
        let text = checkpoint.to_text();
        let note = Note { signatures: vec![signer.sign(&text)], text };
        let proof =
            if old_size == 0 || old_size == size { vec![] } else { log.consistency_proof(old_size, size).unwrap() };
        AddCheckpoint { old_size, proof, note, checkpoint }
    }

    #[test]
    fn the_witness_cosigns_growth_and_refuses_forks_rollbacks_and_strangers() {
        let ledger = NoteSigner::new("stockpile.example/ledger", SIG_ED25519, [1; 32]).unwrap();
        let stranger = NoteSigner::new("stockpile.example/ledger", SIG_ED25519, [2; 32]).unwrap();
        let trusted = vec![ledger.verifier().clone()];
        let a = log(&["1", "2", "3", "4", "5", "6", "7"]);
        let b = log(&["1", "2", "3", "4", "x", "y", "z", "w"]);
        let first = check(&request(&ledger, &a, 0, 3), &trusted, None).unwrap();
        assert_eq!(first.size, 3);
        let latest = check(&request(&ledger, &a, 3, 6), &trusted, Some(&first)).unwrap();
        assert_eq!(latest, Latest { size: 6, root: a.root_at(6).unwrap() });
        // The same checkpoint again is fine (idempotent).
        assert_eq!(check(&request(&ledger, &a, 6, 6), &trusted, Some(&latest)), Ok(latest));
        // A fork from size 4: stale old size first (409, not evidence), then a proof that fails.
        let stale = request(&ledger, &b, 4, 8);
        let refusal = check(&stale, &trusted, Some(&latest)).unwrap_err();
        assert_eq!((refusal.status(), refusal.body()), (409, b"6\n".to_vec()));
        assert!(!refusal.is_evidence(&stale, Some(&latest)));
        let mut forked = request(&ledger, &b, 4, 8);
        forked.old_size = 6;
        forked.proof = b.consistency_proof(6, 8).unwrap();
        let refusal = check(&forked, &trusted, Some(&latest)).unwrap_err();
        assert_eq!(refusal.status(), 422);
        assert!(refusal.is_evidence(&forked, Some(&latest)));
        // The fork at the cosigned size: another root.
        let same = request(&ledger, &b, 6, 6);
        let refusal = check(&same, &trusted, Some(&latest)).unwrap_err();
        assert_eq!(refusal, Refusal::Conflict { latest: 6, same_size: true });
        assert!(refusal.is_evidence(&same, Some(&latest)));
        // Rollback to a smaller tree: whatever old size it names.
        for old in [6, 3, 0] {
            let mut back = request(&ledger, &a, 0, 5);
            back.old_size = old;
            let refusal = check(&back, &trusted, Some(&latest)).unwrap_err();
            assert!(matches!(refusal.status(), 400 | 409), "{refusal}");
            assert!(refusal.is_evidence(&back, Some(&latest)), "{refusal}");
        }
        // Signed by another key: 403; an origin the witness does not know: 404.
        assert_eq!(check(&request(&stranger, &a, 6, 7), &trusted, Some(&latest)).unwrap_err().status(), 403);
        assert_eq!(check(&request(&ledger, &a, 6, 7), &[], Some(&latest)).unwrap_err().status(), 404);
        // A proof with a byte changed: 422.
        let mut bent = request(&ledger, &a, 6, 7);
        bent.proof[0][0] ^= 1;
        assert_eq!(check(&bent, &trusted, Some(&latest)).unwrap_err().status(), 422);
        // A proof on a first checkpoint: 422.
        let mut first_with_proof = request(&ledger, &a, 0, 3);
        first_with_proof.proof = vec![[0; 32]];
        assert_eq!(check(&first_with_proof, &trusted, None).unwrap_err().status(), 422);
    }

    #[test]
    fn malformed_requests_are_bad_requests() {
        let good = EXAMPLE.as_bytes();
        let mut too_many = b"old 1\n".to_vec();
        for _ in 0..=PROOF_LINES_MAX {
            too_many.extend_from_slice(b"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n");
        }
        too_many.extend_from_slice(&good[good.windows(2).position(|w| w == b"\n\n").unwrap() + 1..]);
        for bad in [
            EXAMPLE.replace("old 20852014", "old 020852014").into_bytes(),
            EXAMPLE.replace("old 20852014", "new 20852014").into_bytes(),
            EXAMPLE.replace("PlRNCrwH", "PlRNC_wH").into_bytes(),
            EXAMPLE.replace("\n\nexample.com", "\nexample.com").into_bytes(),
            too_many,
            vec![0xff; 10],
        ] {
            assert_eq!(AddCheckpoint::parse(&bad).unwrap_err().status(), 400, "{}", String::from_utf8_lossy(&bad));
        }
    }

    #[test]
    fn witness_keys_cosignature_answers_and_conflict_sizes_parse_strictly() {
        let w = NoteSigner::new("witness.example/w1", crate::audit::note::SIG_COSIGNATURE_V1, [3; 32]).unwrap();
        let vkey = w.verifier().to_string();
        let parsed = WitnessKey::parse(&vkey).unwrap();
        assert_eq!(
            (&parsed.key, parsed.subject.as_str()),
            (w.verifier(), "stockpile.v1.witness.witness_example_w1.add-checkpoint")
        );
        assert_eq!(WitnessKey::parse(&format!("witness.example/w1={vkey}")).unwrap(), parsed);
        assert_eq!(WitnessKey::parse(&format!("{vkey}@other.subject")).unwrap().subject, "other.subject");
        // Another name before '=', a ledger's key (type 0x01), a wildcard subject: refused.
        let ledger = NoteSigner::new("stockpile.example/ledger", SIG_ED25519, [1; 32]).unwrap();
        for bad in [format!("w2={vkey}"), ledger.verifier().to_string(), format!("{vkey}@a.>"), format!("{vkey}@")] {
            assert!(WitnessKey::parse(&bad).is_err(), "{bad}");
        }
        // Only lines by this witness's key that verify over this text are kept.
        let text = "stockpile.example/ledger\n5\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n";
        let good = w.cosign(text, 1_700_000_000);
        let other = NoteSigner::new("witness.example/w2", crate::audit::note::SIG_COSIGNATURE_V1, [4; 32]).unwrap();
        let mut bent = good.clone();
        bent.signature[10] ^= 1;
        let answer = format!("{}{}{}garbage\n", other.cosign(text, 1).line(), bent.line(), good.line());
        assert_eq!(cosignatures(answer.as_bytes(), w.verifier(), text), vec![good.clone()]);
        assert!(cosignatures(good.line().as_bytes(), w.verifier(), "another text\n").is_empty());
        assert_eq!(conflict_size(b"40\n"), Some(40));
        for bad in [&b"40"[..], b"040\n", b"x\n", b"\n"] {
            assert_eq!(conflict_size(bad), None, "{bad:?}");
        }
    }
}
