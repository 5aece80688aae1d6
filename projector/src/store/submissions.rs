//! What the scheduler submitted: per report series (framework, partner, period) the last
//! revision published, in the sled tree `submissions` beside the views — not cleared with
//! them: a rebuilt projector must not forget what it sent.
//!
//! Written only after JetStream acknowledged the publication, and flushed. The stream is the
//! record: on start the scheduler reconciles this tree with `STOCKPILE_REPORTS` (a crash
//! between the ack and this write leaves the tree one revision behind, never ahead).

use super::{corrupt, StoreError};
use crate::schedule::{Sent, SeriesKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const TREE: &str = "submissions";

/// A handle to the `submissions` tree; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Submissions {
    db: sled::Db,
    tree: sled::Tree,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    key: SeriesKey,
    sent: Sent,
}

fn key_bytes(key: &SeriesKey) -> Vec<u8> {
    format!("{}/{}/{}", key.framework.as_str(), key.partner, key.period).into_bytes()
}

impl Submissions {
    pub(super) fn open(db: &sled::Db) -> Result<Submissions, StoreError> {
        Ok(Submissions { db: db.clone(), tree: db.open_tree(TREE)? })
    }

    /// Every series' last submitted revision.
    pub fn all(&self) -> Result<BTreeMap<SeriesKey, Sent>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.tree.iter() {
            let (_, value) = item?;
            let stored: Stored =
                serde_json::from_slice(&value).map_err(|e| corrupt(format!("a submission does not decode: {e}")))?;
            out.insert(stored.key, stored.sent);
        }
        Ok(out)
    }

    /// Records `sent` as `key`'s last revision (only ever upwards) and flushes.
    pub fn record(&self, key: &SeriesKey, sent: &Sent) -> Result<(), StoreError> {
        let bytes = key_bytes(key);
        if let Some(old) = self.tree.get(&bytes)? {
            let old: Stored =
                serde_json::from_slice(&old).map_err(|e| corrupt(format!("a submission does not decode: {e}")))?;
            if old.sent.revision > sent.revision {
                return Ok(());
            }
        }
        let value = serde_json::to_vec(&Stored { key: key.clone(), sent: sent.clone() })
            .map_err(|e| corrupt(format!("a submission does not encode: {e}")))?;
        self.tree.insert(bytes, value)?;
        self.db.flush()?;
        Ok(())
    }
}
