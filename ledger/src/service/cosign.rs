//! Gathering witnesses' cosignatures on the checkpoints the ledger signs (C2SP
//! `tlog-witness` add-checkpoint over NATS).
//!
//! For each new checkpoint, every configured witness is asked at once, each with the
//! consistency proof from the size that witness last cosigned (remembered in memory, 0 after
//! a start). A witness that answers 409 names its size: the request is made again once, with
//! the proof from that size. Each witness has [`WITNESS_REQUEST_TIMEOUT`] per request; one
//! that is down, slow or refuses is left out. The cosignature lines that verify under the
//! witness's key are appended to the checkpoint's note; with fewer than the quorum the
//! checkpoint is published all the same and a warning names the witnesses missing.
//!
//! This runs in the checkpoint task, never on the append path: appends do not wait on
//! witnesses.

use crate::audit::checkpoint::Checkpoint;
use crate::audit::note::{CheckpointText, Note, NoteSignature};
use crate::audit::proof;
use crate::audit::witness::{self, AddCheckpoint, WitnessKey};
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest wait for one witness's answer to one add-checkpoint request. A witness answers in
/// milliseconds (one fsync); past this it is counted missing for this checkpoint, so a hung
/// witness delays a checkpoint by at most twice this (the request and its one retry).
pub const WITNESS_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The witnesses a ledger asks, and how many cosignatures it aims for.
#[derive(Debug)]
pub(crate) struct Cosigner {
    client: async_nats::Client,
    witnesses: Vec<(WitnessKey, AtomicU64)>,
    quorum: usize,
}

/// Why one witness gave no cosignature.
#[derive(Debug, thiserror::Error)]
enum Missed {
    #[error("no answer: {0}")]
    NoAnswer(String),
    #[error("refused with status {status}: {reason}")]
    Refused { status: u16, reason: String },
    #[error(
        "it has cosigned a tree of {0} records, larger than this checkpoint's: the ledger was rolled back or forked"
    )]
    Ahead(u64),
    #[error("its answer holds no cosignature that verifies under its key")]
    BadAnswer,
    #[error("cannot build the request: {0}")]
    Request(String),
}

impl Cosigner {
    pub(crate) fn new(client: async_nats::Client, witnesses: Vec<WitnessKey>, quorum: usize) -> Cosigner {
        Cosigner { client, witnesses: witnesses.into_iter().map(|w| (w, AtomicU64::new(0))).collect(), quorum }
    }

    /// `c` with the cosignatures the witnesses gave appended to its note.
    pub(crate) async fn cosign(&self, store: &Store, c: Checkpoint) -> Checkpoint {
        let Some(mut note) = c.note.as_deref().and_then(|n| Note::parse(n.as_bytes()).ok()) else {
            tracing::warn!(tree_size = c.tree_size, "the checkpoint has no note to cosign");
            return c;
        };
        let Ok(text) = CheckpointText::parse(&note.text) else { return c };
        let asks = self.witnesses.iter().map(|(w, last)| self.ask(store, w, last, &note, &text));
        let answers = futures::future::join_all(asks).await;
        let mut missing = Vec::new();
        for ((w, _), answer) in self.witnesses.iter().zip(answers) {
            match answer {
                Ok(lines) => note.signatures.extend(lines),
                Err(e) => {
                    tracing::warn!(witness = %w.key.name, tree_size = c.tree_size, error = %e, "no cosignature");
                    missing.push(w.key.name.clone());
                }
            }
        }
        let got = self.witnesses.len() - missing.len();
        if got < self.quorum {
            tracing::warn!(
                tree_size = c.tree_size,
                cosignatures = got,
                quorum = self.quorum,
                missing = %missing.join(", "),
                "checkpoint below the witness quorum: published anyway; clients that require the quorum will refuse it"
            );
        } else {
            tracing::info!(tree_size = c.tree_size, cosignatures = got, "checkpoint cosigned");
        }
        let note = String::from_utf8(note.to_bytes()).expect("notes are UTF-8");
        Checkpoint { note: Some(note), ..c }
    }

    /// One witness: the request from the size it last cosigned, and once more from the size
    /// its 409 names.
    async fn ask(
        &self,
        store: &Store,
        w: &WitnessKey,
        last: &AtomicU64,
        note: &Note,
        text: &CheckpointText,
    ) -> Result<Vec<NoteSignature>, Missed> {
        let mut old = last.load(Ordering::Relaxed);
        for attempt in 0..2 {
            let body = request_body(store, old, note, text).await?;
            match self.send(&w.subject, body).await? {
                Ok(answer) => {
                    let lines = witness::cosignatures(&answer, &w.key, &note.text);
                    if lines.is_empty() {
                        return Err(Missed::BadAnswer);
                    }
                    last.store(text.tree_size, Ordering::Relaxed);
                    return Ok(lines);
                }
                Err((409, body)) if attempt == 0 => match witness::conflict_size(&body) {
                    Some(size) if size > text.tree_size => {
                        last.store(size, Ordering::Relaxed);
                        return Err(Missed::Ahead(size));
                    }
                    Some(size) if size != old => {
                        last.store(size, Ordering::Relaxed);
                        old = size;
                    }
                    _ => return Err(refused(409, &body)),
                },
                Err((status, body)) => return Err(refused(status, &body)),
            }
        }
        Err(Missed::NoAnswer("the witness named another size again".into()))
    }

    /// Sends one request: the answer's body, or a refusal's status and body.
    async fn send(&self, subject: &str, body: Vec<u8>) -> Result<Result<Vec<u8>, (u16, Vec<u8>)>, Missed> {
        let request = self.client.request(subject.to_string(), body.into());
        let message = tokio::time::timeout(WITNESS_REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| Missed::NoAnswer(format!("none within {WITNESS_REQUEST_TIMEOUT:?}")))?
            .map_err(|e| Missed::NoAnswer(e.to_string()))?;
        let status = message.headers.as_ref().and_then(|h| h.get("Nats-Service-Error-Code"));
        Ok(match status {
            Some(code) => Err((code.as_str().parse().unwrap_or(500), message.payload.to_vec())),
            None => Ok(message.payload.to_vec()),
        })
    }
}

fn refused(status: u16, body: &[u8]) -> Missed {
    Missed::Refused { status, reason: String::from_utf8_lossy(body).trim().to_string() }
}

/// The add-checkpoint body for `note` with the consistency proof from `old`.
async fn request_body(store: &Store, old: u64, note: &Note, text: &CheckpointText) -> Result<Vec<u8>, Missed> {
    let new = text.tree_size;
    if old > new {
        return Err(Missed::Ahead(old));
    }
    let proof = if old == 0 || old == new {
        Vec::new()
    } else {
        let store = store.clone();
        tokio::task::spawn_blocking(move || proof::prove_consistency(&store, old, new))
            .await
            .map_err(|e| Missed::Request(e.to_string()))?
            .map_err(|e| Missed::Request(e.to_string()))?
            .path
    };
    Ok(AddCheckpoint { old_size: old, proof, note: note.clone(), checkpoint: text.clone() }.to_bytes())
}
