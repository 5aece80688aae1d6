//! `stockpile-ledger restore --from-stream`: copies `STOCKPILE_EVENTS` (and the checkpoints
//! of `STOCKPILE_CHECKPOINTS`) into a file in the export format, for [`crate::restore`] to
//! verify and rebuild from.
//!
//! Every message of `STOCKPILE_EVENTS` must be what the outbox publishes: stream sequence
//! `n` holds record `n` (its `Stockpile-Seq` header is `n`, its `Stockpile-Hash` header is
//! the record's hash, its payload a sealed record). A message that is not (a foreign
//! publish, a gap) refuses the stream before anything is verified. Each checkpoint is
//! written after the record its tree size names (the last one published for that size);
//! checkpoints over more records than the stream holds are left out.

use super::access::Identity;
use super::subjects::{CHECKPOINTS_STREAM, EVENTS_STREAM, HEADER_HASH, HEADER_SEQ};
use crate::audit::checkpoint::{self, Checkpoint};
use crate::audit::export::RECORD_PREFIX;
use crate::canonical;
use crate::restore::RestoreError;
use futures::StreamExt as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

/// Message reads in flight while copying a stream: each is a round trip to the stream's
/// leader, so a few dozen keep the link busy without queueing much in the server.
pub const RESTORE_READS_IN_FLIGHT: usize = 64;

/// What [`copy_stream`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub records: u64,
    pub checkpoints: u64,
}

fn stream_error(stream: &'static str) -> impl Fn(String) -> RestoreError {
    move |what| RestoreError::Stream { stream, what }
}

/// Connects to `url` (as `identity`, e.g. the `auditor` or `ledger-publisher` user) and
/// writes every record of `STOCKPILE_EVENTS`, with the checkpoints between them, to `out`.
pub async fn copy_stream(url: &str, identity: Option<&Identity>, out: &Path) -> Result<Copied, RestoreError> {
    let events = stream_error(EVENTS_STREAM);
    let client = super::connect(url, identity).await.map_err(|e| events(e.to_string()))?;
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(EVENTS_STREAM).await.map_err(|e| events(e.to_string()))?;
    let state = stream.info().await.map_err(|e| events(e.to_string()))?.state.clone();
    if state.messages == 0 {
        return Err(events("it holds no records".into()));
    }
    if state.first_sequence != 1 {
        return Err(events(format!("its first message is {}, so records before it are lost", state.first_sequence)));
    }
    let last = state.last_sequence;
    let checkpoints = read_checkpoints(&js, last).await?;

    let file =
        std::fs::File::create(out).map_err(|source| RestoreError::Io { op: "create", path: out.into(), source })?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let write_err = |source| RestoreError::Io { op: "write", path: out.into(), source };
    let mut messages = futures::stream::iter(1..=last)
        .map(|seq| {
            let stream = &stream;
            async move { (seq, stream.get_raw_message(seq).await) }
        })
        .buffered(RESTORE_READS_IN_FLIGHT);
    let mut copied = Copied { records: 0, checkpoints: 0 };
    while let Some((seq, message)) = messages.next().await {
        let message = message.map_err(|e| events(format!("message {seq} cannot be read: {e}")))?;
        check_record_message(seq, &message).map_err(&events)?;
        writer.write_all(&message.payload).and_then(|()| writer.write_all(b"\n")).map_err(write_err)?;
        copied.records += 1;
        if let Some(c) = checkpoints.get(&seq) {
            writer.write_all(&c.to_line()).and_then(|()| writer.write_all(b"\n")).map_err(write_err)?;
            copied.checkpoints += 1;
        }
    }
    drop(messages);
    let file = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    // Stream info is re-read so records published during the copy are not silently missed.
    let now = stream.info().await.map_err(|e| events(e.to_string()))?.state.last_sequence;
    if now != last {
        return Err(events(format!(
            "it grew from {last} to {now} messages during the copy: a ledger is still publishing to it; stop it first"
        )));
    }
    Ok(copied)
}

/// Message `seq` of `STOCKPILE_EVENTS` must be what the outbox publishes: record `seq` (its
/// `Stockpile-Seq` header), sealed (one line of a record), with its hash in `Stockpile-Hash`.
/// Whether the record verifies is the reader's next step.
pub(crate) fn check_record_message(
    seq: u64,
    message: &async_nats::jetstream::message::StreamMessage,
) -> Result<(), String> {
    let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
    let foreign = |what: String| format!("message {seq} is not the ledger's record {seq}: {what}");
    if header(HEADER_SEQ).as_deref() != Some(seq.to_string().as_str()) {
        return Err(foreign(format!("its {HEADER_SEQ} header is {:?}", header(HEADER_SEQ))));
    }
    if !message.payload.starts_with(RECORD_PREFIX) || message.payload.contains(&b'\n') {
        return Err(foreign("its payload is not a sealed record".into()));
    }
    let hash = checkpoint::record_hash(&message.payload).map(|h| canonical::hex(&h));
    if hash.is_none() || header(HEADER_HASH) != hash {
        return Err(foreign(format!("its {HEADER_HASH} header is not the hash of its payload")));
    }
    Ok(())
}

/// The last checkpoint published for each tree size of at most `up_to`.
async fn read_checkpoints(
    js: &async_nats::jetstream::Context,
    up_to: u64,
) -> Result<BTreeMap<u64, Checkpoint>, RestoreError> {
    let checkpoints = stream_error(CHECKPOINTS_STREAM);
    let mut found = BTreeMap::new();
    let mut stream = match js.get_stream(CHECKPOINTS_STREAM).await {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), async_nats::jetstream::context::GetStreamErrorKind::JetStream(_)) => {
            tracing::warn!(error = %e, "no checkpoints stream: restoring records only");
            return Ok(found);
        }
        Err(e) => return Err(checkpoints(e.to_string())),
    };
    let state = stream.info().await.map_err(|e| checkpoints(e.to_string()))?.state.clone();
    if state.messages == 0 {
        return Ok(found);
    }
    let mut messages = futures::stream::iter(state.first_sequence..=state.last_sequence)
        .map(|seq| {
            let stream = &stream;
            async move { (seq, stream.get_raw_message(seq).await) }
        })
        .buffered(RESTORE_READS_IN_FLIGHT);
    while let Some((seq, message)) = messages.next().await {
        let message = message.map_err(|e| checkpoints(format!("message {seq} cannot be read: {e}")))?;
        let c: Checkpoint = serde_json::from_slice(&message.payload)
            .map_err(|e| checkpoints(format!("message {seq} is not a checkpoint: {e}")))?;
        if c.tree_size <= up_to {
            found.insert(c.tree_size, c);
        }
    }
    Ok(found)
}
