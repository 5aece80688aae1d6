//! The ledger's NATS adapter: the only module besides the binary that touches NATS.
//!
//! ```text
//! stockpile.v1.ledger.append ─┐                        ┌─▶ group-commit writer ─▶ sled (fsync)
//! stockpile.v1.ledger.range  ─┴─▶ endpoints (≤ N tasks) ┤                              │ head
//! $SRV.PING|INFO|STATS        ─▶ micro service          └─▶ store (reads)              ▼
//!                                   events outbox ─▶ JetStream STOCKPILE_EVENTS (in seq order)
//!                                    feeds outbox ─▶ JetStream STOCKPILE_FEEDS (a copy per partner)
//! ```
//!
//! - [`run`]: opens the ledger in the data directory and serves until shutdown — what the
//!   `stockpile-ledger serve` binary calls.
//! - [`serve`]: serves a ledger that is already running (the embedded handle stays usable
//!   beside it — tests append through it while NATS is down).
//! - [`endpoints`]: request/reply as a NATS micro service, requests handled concurrently.
//! - `checkpoints`: signs a checkpoint at an interval when the log grew and on request,
//!   has it cosigned by the configured witnesses ([`cosign`]), publishes each on
//!   `stockpile.v1.checkpoints`, answers proof requests.
//! - [`outbox`]: publishes every committed record to `STOCKPILE_EVENTS`, in order, exactly
//!   once in the stream; and to `STOCKPILE_FEEDS`, once per partner it concerns.
//! - [`restore`]: copies `STOCKPILE_EVENTS` into an export file for `stockpile-ledger
//!   restore --from-stream` ([`crate::restore`]).
//! - [`subjects`] and [`stream`]: every subject, header and stream setting, in one place.
//!
//! **Boundary:** the writer never waits on NATS. An append is acknowledged when it is durable;
//! publication follows, and catches up after an outage.

pub mod access;
pub mod config;
pub mod consumers;
mod endpoints;
pub mod error;
pub mod outbox;
mod range;
pub mod restore;
mod shutdown;
pub mod standby;
pub mod stream;
pub mod subjects;

mod append;
mod checkpoints;
pub mod cosign;

pub use config::{ClassLimits, Limits, ServiceConfig};
pub use error::{RequestError, ServiceError};

use crate::audit::LedgerKey;
use crate::ledger::{Ledger, LedgerOptions, SystemClock};
use crate::LedgerHandle;
use std::future::Future;

/// Requests waiting in the client beyond those in flight. Past this the NATS client drops
/// requests for this subscriber (their callers time out and resend; event ids make a resend
/// safe) instead of letting a flood grow the service's memory without bound.
pub const SUBSCRIPTION_PENDING_MESSAGES_MAX: usize = 4096;

/// Longest wait for the answer to a request the service itself sends: the JetStream API
/// calls of the outbox (stream create, info, message get). JetStream answers them in
/// milliseconds; one sent to a server that dies is never answered, and the outbox should
/// then retry soon (against the new leader) rather than wait out the client's default 10 s.
pub const NATS_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the ledger in `config.data_dir`, serves it over NATS until `shutdown` completes,
/// then stops the ledger cleanly (queued work finished, a snapshot written).
pub async fn run(config: ServiceConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServiceError> {
    if config.standby {
        return standby::run(config, shutdown).await;
    }
    if let Some(key) = &config.checkpoint_key {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| crate::LedgerError::io("create", &config.data_dir, e))?;
        LedgerKey::install(key, &config.data_dir).map_err(|e| ServiceError::CheckpointKey(e.to_string()))?;
    }
    let dir = config.data_dir.clone();
    let ledger =
        tokio::task::spawn_blocking(move || Ledger::open(&dir, Box::new(SystemClock), LedgerOptions::default()))
            .await
            .map_err(|e| ServiceError::Task(e.to_string()))??;
    tracing::info!(data = %config.data_dir.display(), head = ledger.state().head.seq, "ledger opened");
    let handle = LedgerHandle::start(ledger);
    let served = serve(&config, handle.clone(), shutdown).await;
    let stopped =
        tokio::task::spawn_blocking(move || handle.shutdown()).await.map_err(|e| ServiceError::Task(e.to_string()))?;
    // A ledger that failed is why serving stopped: its error comes first.
    stopped?;
    served?;
    tracing::info!("ledger stopped");
    Ok(())
}

/// Serves a running ledger over NATS until `shutdown` completes: registers the micro
/// service, creates or updates the `STOCKPILE_EVENTS` stream and runs the outbox. Fails
/// at once when NATS cannot be reached or the stream cannot be set up (the active ledger of
/// a failover group retries that for a while: `set_up_holding`); after that, NATS
/// outages are ridden out (the client reconnects, the outbox retries).
///
/// On shutdown: stops taking requests, finishes those in flight, lets the outbox settle
/// its acks and write its cursor. The ledger itself is left running for the caller.
pub async fn serve(
    config: &ServiceConfig,
    ledger: LedgerHandle,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    serve_holding(config, ledger, shutdown, None).await
}

/// [`serve`], as the active ledger of a failover group while `lease` is held: the lease is
/// renewed beside serving, and once it is lost everything stops at once — no request is
/// answered and nothing published after that — and the error says so.
pub(crate) async fn serve_holding(
    config: &ServiceConfig,
    ledger: LedgerHandle,
    shutdown: impl Future<Output = ()> + Send,
    mut lease: Option<standby::Holding>,
) -> Result<(), ServiceError> {
    let SetUp { client, publisher, endpoints } = match lease.as_mut() {
        None => set_up(config).await?,
        Some(holding) => set_up_holding(config, holding).await?,
    };
    let (stop_sender, stop) = shutdown::channel();

    // `--replicate`: the events outbox announces how far the stream has stored the log, and
    // every append waits for its records there.
    let (mut stored, replicated) = match config.replicate {
        true => {
            let (stored, replicated) = tokio::sync::watch::channel(0);
            (Some(stored), Some(replicated))
        }
        false => (None, None),
    };
    // What readers may see: with replicated commit, only what the stream has stored. The feeds
    // carry no record before STOCKPILE_EVENTS holds it, and checkpoints sign no such record.
    let visible = replicated.clone().unwrap_or_else(|| ledger.head());
    let mut outboxes = Vec::new();
    for target in [outbox::Target::Events, outbox::Target::Feeds] {
        let mut outbox = outbox::Outbox::new(
            target,
            publisher.clone(),
            ledger.store().clone(),
            if target == outbox::Target::Events { ledger.head() } else { visible.clone() },
            stop.clone(),
            config.stream_replicas,
            if target == outbox::Target::Events { stored.take() } else { None },
        )?;
        if lease.is_some() {
            outbox = outbox.stop_on_divergence();
        }
        outboxes.push(tokio::spawn(outbox.run()));
    }
    let key = LedgerKey::load_or_create(ledger.store().dir())?;
    let cosigner = (!config.witnesses.is_empty())
        .then(|| cosign::Cosigner::new(publisher.clone(), config.witnesses.clone(), config.witness_quorum));
    let checkpointer = checkpoints::Checkpointer::new(ledger.clone(), key, cosigner, visible);
    let periodic = tokio::spawn(checkpointer.clone().run(publisher.clone(), config.checkpoint_interval, stop.clone()));
    let mut writer = ledger.head();
    let context = endpoints::Context {
        client: client.clone(),
        publisher: publisher.clone(),
        ledger,
        limits: std::sync::Arc::new(config.limits.clone()),
        checkpointer,
        replicated,
    };
    let mut requests = tokio::spawn(endpoints.serve(context, stop.clone()));
    tracing::info!(nats = %config.nats_url, "serving {}, {}, {} and {}", subjects::APPEND, subjects::RANGE, subjects::CHECKPOINT, subjects::PROOF);

    let early = tokio::select! {
        () = shutdown => None,
        ended = &mut requests => Some(ended),
        reason = lost(&mut lease) => {
            abort_all(&requests, &periodic, &outboxes);
            tracing::error!(reason, "the lease is lost: stopping at once");
            return Err(ServiceError::LeaseLost { reason });
        }
        () = writer_stops(&mut writer) => {
            // The ledger cannot write (a failed commit): nothing more can be appended. Stop
            // serving, so that the process exits for its supervisor to restart it: a reopen
            // cuts the failed frame off and recovers from the log (ARCHITECTURE, Durability).
            tracing::error!("the ledger's writer has stopped after a failed commit: stopping the service");
            None
        }
        _ = &mut outboxes[0], if lease.is_some() => {
            abort_all(&requests, &periodic, &outboxes);
            let what = "the stream is not a copy of this log (another ledger wrote to it): stopped so that a standby repairs its directory from the stream and takes over".to_string();
            tracing::error!(what);
            return Err(ServiceError::Follow { stream: subjects::EVENTS_STREAM, what });
        }
    };

    tracing::info!("shutting down");
    stop_sender.stop();
    let requests = match early {
        Some(ended) => ended,
        None => requests.await,
    };
    let outboxes = futures::future::join_all(outboxes).await;
    if let Err(e) = periodic.await {
        tracing::warn!(error = %e, "the checkpoint task failed");
    }
    for connection in [&client, &publisher] {
        if let Err(e) = connection.flush().await {
            tracing::warn!(error = %e, "flushing NATS at shutdown");
        }
    }
    // Nothing more is published: the lease (renewed until now) is given up for the standby.
    if let Some(lease) = lease {
        lease.release().await;
    }
    requests.map_err(|e| ServiceError::Task(e.to_string()))??;
    for outbox in outboxes {
        outbox.map_err(|e| ServiceError::Task(e.to_string()))?;
    }
    Ok(())
}

/// Completes when the ledger's writer has stopped (its head channel closed) — while serving,
/// only after a failed commit.
async fn writer_stops(head: &mut tokio::sync::watch::Receiver<u64>) {
    while head.changed().await.is_ok() {}
}

/// What serving needs from NATS before it takes the first request.
struct SetUp {
    /// Answers requests: it may publish nothing but responses.
    client: async_nats::Client,
    /// Writes the streams and checkpoints (the same connection when no publisher user is given).
    publisher: async_nats::Client,
    endpoints: endpoints::Endpoints,
}

/// Connects, creates or updates the streams (and the partners' consumers), and registers
/// the micro service.
async fn set_up(config: &ServiceConfig) -> Result<SetUp, ServiceError> {
    let client = connect(&config.nats_url, config.identity.as_ref()).await?;
    let version = client.server_info().version;
    if config.stream_replicas > 1 && older_than(&version, NATS_SERVER_REPLICAS_MIN) {
        let (major, minor) = NATS_SERVER_REPLICAS_MIN;
        tracing::warn!(
            server = %version,
            "replicated streams on a nats-server older than {major}.{minor}: a node restarted while a pipelined run was published may stop storing its replica (ARCHITECTURE.md, Failover, \"Fencing\"); run every node on {major}.{minor} or newer"
        );
    }
    let publisher = match &config.publisher_identity {
        Some(identity) => connect(&config.nats_url, Some(identity)).await?,
        None => client.clone(),
    };
    let js = async_nats::jetstream::new(publisher.clone());
    stream::ensure_stream(&js, stream::events_stream_config(config.stream_replicas)).await?;
    stream::ensure_stream(&js, stream::feeds_stream_config(config.stream_replicas)).await?;
    stream::ensure_stream(&js, stream::checkpoints_stream_config(config.stream_replicas)).await?;
    if !config.partners.is_empty() {
        consumers::ensure_consumers(&js, &access::consumers(&config.partners), config.stream_replicas).await?;
    }
    let endpoints = endpoints::register(&client).await?;
    Ok(SetUp { client, publisher, endpoints })
}

/// The oldest nats-server release trusted with replicated streams the outbox publishes
/// pipelined to (ARCHITECTURE.md, Failover, "Fencing"): older ones may silently freeze a
/// restarted node's replica. Only the node the ledger is connected to is visible to it.
pub const NATS_SERVER_REPLICAS_MIN: (u64, u64) = (2, 15);

/// Whether a server's `major.minor.patch[-pre]` version is older than `min` (major, minor);
/// a version that does not parse is not called old.
fn older_than(version: &str, min: (u64, u64)) -> bool {
    let mut parts = version.split(['.', '-']).map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) < min,
        _ => false,
    }
}

/// [`set_up`] for the active ledger of a failover group, which has often just taken over
/// because NATS itself was failing over (a node lost, its streams electing new leaders for
/// seconds): a failed attempt is tried again every [`config::ACTIVE_SET_UP_RETRY`] for up to
/// [`config::ACTIVE_SET_UP_WAIT`], the lease renewed meanwhile, instead of exiting at the
/// first JetStream timeout and leaving the group without a ledger until a supervisor
/// restarts one.
async fn set_up_holding(config: &ServiceConfig, holding: &mut standby::Holding) -> Result<SetUp, ServiceError> {
    let deadline = tokio::time::Instant::now() + config::ACTIVE_SET_UP_WAIT;
    loop {
        let attempt = tokio::select! {
            attempt = set_up(config) => attempt,
            reason = holding.lost() => return Err(ServiceError::LeaseLost { reason }),
        };
        match attempt {
            Ok(set_up) => return Ok(set_up),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(e) => tracing::warn!(error = %e, "cannot start serving yet; holding the lease and retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(config::ACTIVE_SET_UP_RETRY) => {}
            reason = holding.lost() => return Err(ServiceError::LeaseLost { reason }),
        }
    }
}

/// Completes when a lease held is lost, with why; never without one.
async fn lost(lease: &mut Option<standby::Holding>) -> String {
    match lease {
        Some(holding) => holding.lost().await,
        None => std::future::pending().await,
    }
}

/// Stops serving at once: nothing more is answered, published or checkpointed.
fn abort_all(
    requests: &tokio::task::JoinHandle<Result<(), ServiceError>>,
    periodic: &tokio::task::JoinHandle<()>,
    outboxes: &[tokio::task::JoinHandle<()>],
) {
    requests.abort();
    periodic.abort();
    for outbox in outboxes {
        outbox.abort();
    }
}

/// Connects to NATS: `url` is one URL or several separated by commas.
async fn connect(url: &str, identity: Option<&access::Identity>) -> Result<async_nats::Client, ServiceError> {
    let servers: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let options = || {
        access::authenticate(async_nats::ConnectOptions::new(), identity)
            .name(subjects::SERVICE_NAME)
            .subscription_capacity(SUBSCRIPTION_PENDING_MESSAGES_MAX)
            .request_timeout(Some(NATS_REQUEST_TIMEOUT))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("disconnected from NATS: appends go on, publication waits")
                    }
                    other => tracing::warn!(event = %other, "NATS"),
                }
            })
    };
    access::connect_patiently(&servers, options)
        .await
        .map_err(|e| ServiceError::Connect { url: url.to_string(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::{older_than, NATS_SERVER_REPLICAS_MIN};

    #[test]
    fn servers_before_the_replica_fix_are_told_apart_from_later_ones() {
        for old in ["2.9.10", "2.10.25", "2.11.0", "2.14.9", "1.99.0", "2.14.0-beta.1"] {
            assert!(older_than(old, NATS_SERVER_REPLICAS_MIN), "{old}");
        }
        for new in ["2.15.0", "2.15.1", "2.16.0-RC.2", "3.0.0", "", "dev", "2"] {
            assert!(!older_than(new, NATS_SERVER_REPLICAS_MIN), "{new}");
        }
    }
}
