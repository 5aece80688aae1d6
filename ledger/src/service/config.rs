//! What the service is told at start: where NATS is, where the data lives, and the limits
//! every request is held to.

use std::path::PathBuf;

/// Bytes of one `ledger.append` request. A signed command is 0.5–1 KiB, so this holds a
/// full batch of [`APPEND_COMMANDS_MAX`] commands; it stays below nats-server's default
/// `max_payload` (1 MiB) so an oversized request reaches the service and gets a typed
/// error instead of being dropped by the server.
pub const APPEND_REQUEST_BYTES_MAX: usize = 768 << 10;

/// Commands in one `ledger.append` request. A quarter of the writer's group
/// ([`crate::writer::GROUP_COMMANDS_MAX`]), so one caller's batch never fills a group commit
/// alone and other callers' commands share its fsync; bigger imports are sent as several
/// requests (the CLI pipelines them).
pub const APPEND_COMMANDS_MAX: usize = 1024;

/// Bytes of one `ledger.range` request: it has three small integer fields.
pub const RANGE_REQUEST_BYTES_MAX: usize = 4 << 10;

/// Records in one `ledger.range` page. Gap repair asks for a few records; an audit export
/// pages through the whole log, and 1,024 records (~1 MiB of work) per round trip keeps
/// that fast without holding much in memory.
pub const RANGE_PAGE_RECORDS_MAX: u32 = 1024;

/// Bytes of records in one `ledger.range` page. Half of nats-server's default `max_payload`
/// (1 MiB), leaving room for the reply's envelope; a page always holds at least one record.
pub const RANGE_PAGE_BYTES_MAX: usize = 512 << 10;

/// `ledger.append` (and, separately, `ledger.append.<partner>`) requests handled at once.
/// Enough that the group-commit writer sees hundreds of callers' commands per fsync (its
/// submit queue holds 1,024 jobs); few enough that the requests' memory stays bounded
/// (typical requests are a few KiB; the worst case is this plus
/// [`APPEND_QUEUED_MAX`], times [`APPEND_REQUEST_BYTES_MAX`]).
pub const APPEND_IN_FLIGHT_MAX: usize = 256;

/// Append requests admitted beyond [`APPEND_IN_FLIGHT_MAX`] to wait for a slot; one more is
/// answered `overloaded` at once. A full group commit's worth of waiting callers.
pub const APPEND_QUEUED_MAX: usize = 256;

/// Requests one partner may have admitted (running or waiting) on its channel
/// `ledger.append.<partner>`: a quarter of that class's [`APPEND_IN_FLIGHT_MAX`] +
/// [`APPEND_QUEUED_MAX`], so one partner's flood leaves three quarters of the class to the
/// others.
pub const PARTNER_ADMITTED_MAX: usize = 128;

/// `ledger.range` pages read at once. Each reads up to [`RANGE_PAGE_BYTES_MAX`] on the
/// blocking pool; a few keep an export fast without taking the cores from the writer.
pub const RANGE_IN_FLIGHT_MAX: usize = 4;

/// `ledger.range` requests waiting for one of [`RANGE_IN_FLIGHT_MAX`].
pub const RANGE_QUEUED_MAX: usize = 64;

/// `ledger.checkpoint` requests at once: checkpoints are signed one at a time anyway.
pub const CHECKPOINT_IN_FLIGHT_MAX: usize = 1;

/// `ledger.checkpoint` requests waiting; each is answered with the checkpoint at the head
/// when its turn comes, so a long queue only repeats work.
pub const CHECKPOINT_QUEUED_MAX: usize = 16;

/// `ledger.proof` requests computed at once, on the blocking pool: a proof is O(log n) node
/// reads (tens of microseconds), so a few keep up with thousands a second while leaving the
/// cores to the writer.
pub const PROOF_IN_FLIGHT_MAX: usize = 4;

/// `ledger.proof` requests waiting for one of [`PROOF_IN_FLIGHT_MAX`].
pub const PROOF_QUEUED_MAX: usize = 64;

/// Replicas of the `STOCKPILE_EVENTS` stream: one on a single nats-server; three on the
/// production cluster (design §9).
pub const STREAM_REPLICAS_DEFAULT: usize = 1;

/// How often the service signs a checkpoint when the log grew. Auditors also ask for one on
/// demand (`stockpile.v1.ledger.checkpoint`), and every export ends with one.
pub const CHECKPOINT_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_secs(60);

/// With `--replicate`, longest wait after a group is committed locally for every record it
/// answers to be acknowledged by the `STOCKPILE_EVENTS` stream. Under the clients' request
/// timeout (the CLI's 30 s), so a client hears `not_replicated` instead of nothing; long
/// enough for an R3 stream to elect a new leader after losing one (seconds).
pub const REPLICATE_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the active ledger of a failover pair renews its lease (a compare-and-set on the
/// lease's KV entry; [`super::standby`]).
pub const LEASE_RENEW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// An active ledger that could not renew its lease for this long stops serving at once
/// (nothing more published or answered): it may have been deposed. Shorter than
/// [`LEASE_TAKEOVER_AFTER`] by a margin for timers and scheduling.
pub const LEASE_FENCE_AFTER: std::time::Duration = std::time::Duration::from_millis(1500);

/// A standby takes the lease once the lease's entry has not changed for this long, as its
/// own monotonic clock measures (no clocks are compared between machines). With the catch-up
/// and start of serving, an active ledger's death is followed by a new one within the
/// takeover target of 5 s.
pub const LEASE_TAKEOVER_AFTER: std::time::Duration = std::time::Duration::from_millis(2500);

/// How often a standby looks at the stream and the lease when it has caught up.
pub const STANDBY_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// How long the active ledger of a failover group, having taken the lease, keeps trying to
/// set up serving (connect, create or update the streams, register the service) when
/// JetStream does not answer: longer than a stream leader election after a node is lost
/// (seconds), so a takeover that coincides with one serves once it is over. After it the
/// ledger exits (status 1) and its supervisor starts it again as a standby.
pub const ACTIVE_SET_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Pause between two attempts of that set-up.
pub const ACTIVE_SET_UP_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Records a standby reads from the stream, verifies and commits at once.
pub const STANDBY_BATCH_RECORDS: u64 = 512;

/// Everything [`super::run`] needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// One NATS URL, or several separated by commas (the client fails over between them and
    /// the servers a cluster announces).
    pub nats_url: String,
    /// The ledger's data directory (a sled store). Used by [`super::run`]; [`super::serve`]
    /// is given an already running ledger.
    pub data_dir: PathBuf,
    /// Replicas of the `STOCKPILE_EVENTS` stream.
    pub stream_replicas: usize,
    pub limits: Limits,
    /// How often to sign a checkpoint when the log grew.
    pub checkpoint_interval: std::time::Duration,
    /// The NATS user to connect as (the `ledger` role of `stockpile nats-config`); none on a
    /// server without authentication.
    pub identity: Option<super::access::Identity>,
    /// The NATS user the outbox and the checkpoints publish as (the `ledger-publisher` role);
    /// none: [`Self::identity`]'s one connection does both (development, a server without
    /// authentication).
    pub publisher_identity: Option<super::access::Identity>,
    /// Partners whose durable consumers (and the Commission's) the ledger creates at start
    /// for the accounts that read them ([`super::access::consumers`]); none on a server
    /// without accounts.
    pub partners: Vec<String>,
    /// Witnesses asked to cosign every new checkpoint ([`super::cosign`]); none: checkpoints
    /// carry the ledger's signature alone.
    pub witnesses: Vec<crate::audit::witness::WitnessKey>,
    /// Cosignatures a checkpoint should carry; with fewer it is published all the same and
    /// a warning names the witnesses missing.
    pub witness_quorum: usize,
    /// Replicated commit (`--replicate`): an append is answered only once every record it
    /// answers with is stored in `STOCKPILE_EVENTS` (as well as fsynced locally), or, after
    /// [`REPLICATE_ACK_TIMEOUT`], with `not_replicated` ([`super::RequestError::NotReplicated`]).
    pub replicate: bool,
    /// A failover member (`--standby`, [`super::standby`]): follows `STOCKPILE_EVENTS` into
    /// its own directory, verifying every record, and serves (with replicated commit) only
    /// while it holds the lease.
    pub standby: bool,
    /// The ledger's checkpoint key, kept apart from the data directory (`--checkpoint-key`):
    /// copied into it when the directory has none; refused when it has another. Every
    /// member of a failover pair signs checkpoints with this one key.
    pub checkpoint_key: Option<PathBuf>,
}

impl ServiceConfig {
    /// A config with the default limits and one stream replica.
    pub fn new(nats_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> ServiceConfig {
        ServiceConfig {
            nats_url: nats_url.into(),
            data_dir: data_dir.into(),
            stream_replicas: STREAM_REPLICAS_DEFAULT,
            limits: Limits::default(),
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            identity: None,
            publisher_identity: None,
            partners: Vec::new(),
            witnesses: Vec::new(),
            witness_quorum: 0,
            replicate: false,
            standby: false,
            checkpoint_key: None,
        }
    }
}

/// Bounds on requests. The defaults are the named constants of this module; tests lower
/// them to reach a limit cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub append_request_bytes_max: usize,
    pub append_commands_max: usize,
    pub range_request_bytes_max: usize,
    pub range_page_records_max: u32,
    pub range_page_bytes_max: usize,
    pub append: ClassLimits,
    pub append_as_partner: ClassLimits,
    /// Requests admitted per partner on `ledger.append.<partner>` (within `append_as_partner`).
    pub partner_admitted_max: usize,
    pub range: ClassLimits,
    pub checkpoint: ClassLimits,
    pub proof: ClassLimits,
}

/// Bounds of one request class: requests running at once, and requests admitted to wait for
/// them. Beyond both, a request is answered `overloaded` at once and nothing is done, so a
/// flood of one class costs the others nothing but the reading of its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimits {
    pub in_flight_max: usize,
    pub queued_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            append_request_bytes_max: APPEND_REQUEST_BYTES_MAX,
            append_commands_max: APPEND_COMMANDS_MAX,
            range_request_bytes_max: RANGE_REQUEST_BYTES_MAX,
            range_page_records_max: RANGE_PAGE_RECORDS_MAX,
            range_page_bytes_max: RANGE_PAGE_BYTES_MAX,
            append: ClassLimits { in_flight_max: APPEND_IN_FLIGHT_MAX, queued_max: APPEND_QUEUED_MAX },
            append_as_partner: ClassLimits { in_flight_max: APPEND_IN_FLIGHT_MAX, queued_max: APPEND_QUEUED_MAX },
            partner_admitted_max: PARTNER_ADMITTED_MAX,
            range: ClassLimits { in_flight_max: RANGE_IN_FLIGHT_MAX, queued_max: RANGE_QUEUED_MAX },
            checkpoint: ClassLimits { in_flight_max: CHECKPOINT_IN_FLIGHT_MAX, queued_max: CHECKPOINT_QUEUED_MAX },
            proof: ClassLimits { in_flight_max: PROOF_IN_FLIGHT_MAX, queued_max: PROOF_QUEUED_MAX },
        }
    }
}
