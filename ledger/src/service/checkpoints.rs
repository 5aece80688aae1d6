//! Checkpoints over NATS: signed at an interval (when the log grew) and on demand
//! (`stockpile.v1.ledger.checkpoint`), each cosigned by the configured witnesses
//! ([`super::cosign`]) and stored with their cosignatures before it is published on
//! `stockpile.v1.checkpoints` or answered; proofs on request (`stockpile.v1.ledger.proof`).

use super::cosign::Cosigner;
use super::error::RequestError;
use super::shutdown::Stop;
use super::subjects::CHECKPOINTS;
use crate::audit::proof::{self, ProveError};
use crate::audit::{checkpoint, Checkpoint, LedgerKey};
use crate::wire::{ProofReply, ProofRequest};
use crate::LedgerHandle;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of one `ledger.proof` request: a kind and two integers.
pub const PROOF_REQUEST_BYTES_MAX: usize = 4 << 10;

/// Signs checkpoints for one running ledger; one at a time.
pub(crate) struct Checkpointer {
    ledger: LedgerHandle,
    key: LedgerKey,
    /// Held while a checkpoint is made and cosigned, so two never extend the same frontier
    /// at once and a witness is asked about one checkpoint at a time.
    busy: tokio::sync::Mutex<()>,
    /// The witnesses to ask for cosignatures; none configured: no cosigning.
    cosigner: Option<Cosigner>,
    /// How far checkpoints may cover: the committed head, or with replicated commit what the
    /// stream has stored (a checkpoint never signs a record that a failover could replace).
    visible: tokio::sync::watch::Receiver<u64>,
}

impl Checkpointer {
    pub(crate) fn new(
        ledger: LedgerHandle,
        key: LedgerKey,
        cosigner: Option<Cosigner>,
        visible: tokio::sync::watch::Receiver<u64>,
    ) -> Arc<Checkpointer> {
        Arc::new(Checkpointer { ledger, key, busy: tokio::sync::Mutex::new(()), cosigner, visible })
    }

    /// A checkpoint at the committed head (the stored one when nothing was added since). A
    /// new one is cosigned by the witnesses, and stored with their cosignatures, first.
    pub(crate) async fn at_head(self: &Arc<Self>) -> Result<Option<Checkpoint>, RequestError> {
        let internal = |reason: String| RequestError::Internal { reason };
        let _busy = self.busy.lock().await;
        let head = *self.visible.borrow();
        if head == 0 {
            return Ok(None);
        }
        let this = self.clone();
        let (c, fresh) = tokio::task::spawn_blocking(move || {
            let store = this.ledger.store();
            let before = store.last_checkpoint()?.map(|(size, _)| size);
            let c = checkpoint::create(store, &this.key, head, chrono::Utc::now())?;
            let fresh = before != Some(c.tree_size);
            Ok::<_, crate::error::LedgerError>((c, fresh))
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?;
        let Some(cosigner) = self.cosigner.as_ref().filter(|_| fresh) else { return Ok(Some(c)) };
        let c = cosigner.cosign(self.ledger.store(), c).await;
        let (store, stored) = (self.ledger.store().clone(), c.clone());
        tokio::task::spawn_blocking(move || checkpoint::store_cosigned(&store, &stored))
            .await
            .map_err(|e| internal(e.to_string()))?
            .map_err(|e| internal(e.to_string()))?;
        Ok(Some(c))
    }

    /// Every `interval` in which the log grew, signs a checkpoint and publishes it.
    pub(crate) async fn run(self: Arc<Self>, client: async_nats::Client, interval: Duration, mut stop: Stop) {
        let mut last = 0;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.wait() => return,
            }
            if *self.visible.borrow() == last {
                continue;
            }
            match self.at_head().await {
                Ok(Some(c)) => {
                    last = c.tree_size;
                    publish(&client, &c).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not sign a checkpoint; retrying at the next interval"),
            }
        }
    }
}

/// Publishes a checkpoint on [`CHECKPOINTS`]. Best effort: a subscriber that missed one
/// asks `ledger.checkpoint`, and every export carries them all.
pub(crate) async fn publish(client: &async_nats::Client, c: &Checkpoint) {
    let body = serde_json::to_vec(c).expect("checkpoints encode");
    if let Err(e) = client.publish(CHECKPOINTS, body.into()).await {
        tracing::warn!(error = %e, tree_size = c.tree_size, "could not publish a checkpoint");
    }
}

/// `ledger.checkpoint`: signs one at the head now, publishes it and returns it.
pub(crate) async fn handle_checkpoint(
    checkpointer: &Arc<Checkpointer>,
    client: &async_nats::Client,
) -> Result<Vec<u8>, RequestError> {
    let c = checkpointer
        .at_head()
        .await?
        .ok_or_else(|| RequestError::Unavailable { reason: "the ledger is empty: nothing to checkpoint".into() })?;
    publish(client, &c).await;
    Ok(serde_json::to_vec(&c).expect("checkpoints encode"))
}

/// `ledger.proof`: an inclusion or consistency proof over the committed log.
pub(crate) async fn handle_proof(payload: &[u8], ledger: &LedgerHandle, head: u64) -> Result<Vec<u8>, RequestError> {
    if payload.len() > PROOF_REQUEST_BYTES_MAX {
        return Err(RequestError::TooLarge { bytes: payload.len(), max: PROOF_REQUEST_BYTES_MAX });
    }
    let malformed = |reason: String| {
        RequestError::Malformed {
        what: "proof request ({\"inclusion\": {\"seq\", \"tree_size\"}} or {\"consistency\": {\"old_size\", \"new_size\"}})",
        reason,
    }
    };
    RequestError::check_depth(payload)?;
    let request: ProofRequest = serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
    let size = match &request {
        ProofRequest::Inclusion { tree_size, .. } => *tree_size,
        ProofRequest::Consistency { new_size, .. } => *new_size,
    };
    if size > head {
        return Err(malformed(format!("tree size {size} is beyond the committed head {head}")));
    }
    let store = ledger.store().clone();
    let reply = tokio::task::spawn_blocking(move || match request {
        ProofRequest::Inclusion { seq, tree_size } => {
            proof::prove_inclusion(&store, seq, tree_size).map(ProofReply::Inclusion)
        }
        ProofRequest::Consistency { old_size, new_size } => {
            proof::prove_consistency(&store, old_size, new_size).map(ProofReply::Consistency)
        }
    })
    .await
    .map_err(|e| RequestError::Internal { reason: e.to_string() })?
    .map_err(|e| match e {
        e @ (ProveError::Request(_) | ProveError::SeqOutOfRange { .. }) => malformed(e.to_string()),
        ProveError::Ledger(e) => RequestError::Internal { reason: e.to_string() },
    })?;
    Ok(serde_json::to_vec(&reply).expect("proofs encode"))
}
