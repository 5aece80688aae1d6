//! The stockpile ledger: an event-sourced, double-entry, hash-chained record of every
//! movement of every lot of strategic raw materials.
//!
//! Principal types:
//! - [`domain`]: the pure core — [`domain::Command`], [`domain::Event`], [`domain::State`],
//!   [`domain::decide()`], [`domain::Rejection`]. No I/O, no clock.
//! - [`signing::SignedCommand`]: a command signed with an operator's Ed25519 key.
//! - [`record::Record`]: one entry of the log, chained by SHA-256 over canonical JSON.
//! - [`store::Store`]: sled trees, fsync'd commits, snapshots.
//! - [`Ledger`]: decides groups of commands and commits them; [`LedgerHandle`]: the
//!   group-commit pipeline in front of it.
//!
//! The write path in five lines:
//! 1. a caller signs a command and calls [`LedgerHandle::append`];
//! 2. the verifier thread checks its signature in a batch on every core;
//! 3. the writer thread decides it against the live state (`decide`, then `apply`);
//! 4. the writer seals it into a record chained to the head and commits the whole group to
//!    sled with one `fdatasync`;
//! 5. only then is the caller answered with its sequence number.

pub mod audit;
pub mod bench;
pub mod canonical;
pub mod domain;
pub mod error;
pub mod ledger;
pub mod malloc;
pub mod merkle;
pub mod record;
pub mod restore;
pub mod service;
pub mod signing;
pub mod store;
pub mod testkit;
pub mod wire;
pub mod writer;

pub use error::LedgerError;
pub use ledger::{Clock, Decided, FollowError, Ledger, LedgerOptions, Outcome, Submission, SystemClock};
pub use writer::{AppendError, LedgerHandle};
