//! The stockpile projector: folds the ordered record stream of the ledger into views and
//! answers holdings queries — now, or as of any date in business time.
//!
//! Principal types:
//! - [`FoldRecord`], [`decode`]: a stored record, hash-checked, as the fold reads it.
//! - [`Views`]: what the fold builds — the [`Registry`] (parties, facilities, lots, figures,
//!   learned from the log itself), every position, and the as-of index: postings in
//!   business-time order with running balances, per *class* of positions alike in all but
//!   their lot (see `views::positions`), and the chain [`Head`]. [`Views::apply`] folds the
//!   next record and refuses a gap ([`FoldError::Gap`]) or a broken chain
//!   ([`FoldError::ChainBreak`]). Pure: no I/O, no clock.
//! - [`HoldingsQuery`] → [`Holdings`]: filters, `group_by` [`Dimension`]s, totals in grams and
//!   exact tonnes, gross and contained; serializable and deterministic (sorted rows).
//! - [`report`]: the Commission stock report (CRMA Art. 22) and its IEA / NATO variants —
//!   [`report::build`] (pure: views → [`report::Report`]) and [`report::render`] (canonical
//!   JSON, CSV, Markdown with SVG).
//! - [`ViewStore`]: the views' changes and the checkpoint in the projector's own sled
//!   directory, one atomic batch per page, so a restart resumes exactly once.
//! - [`Source`] / [`AsyncSource`]: ordered sources of stored records — [`LedgerSource`] (a
//!   ledger's store in this process), [`ExportSource`] (an export file, for auditors).
//! - [`Projector`]: views + store + a source; [`Projector::catch_up`] folds everything new,
//!   [`Reader`] answers queries beside it, [`Projector::follow`] tracks a running ledger.
//! - [`bench`]: a seeded realistic history, catch-up rate and as-of query latency, for
//!   `stockpile bench` and `examples/bench.rs`.
//!
//! The read path in four lines:
//! 1. a source hands out a page of stored records after the projector's head;
//! 2. the page is decoded and hash-checked on every core ([`decode`]);
//! 3. each record is folded in order under the write lock, all or nothing ([`Views::apply_step`]);
//! 4. the page's changes and the new head are persisted in one sled batch ([`ViewStore::persist`]).

pub mod bench;
pub mod fold;
pub mod history;
pub mod intake;
pub mod projector;
pub mod query;
pub mod report;
pub mod schedule;
pub mod service;
pub mod source;
pub mod store;
pub mod submit;
pub mod views;

pub use fold::{decode, Decoded, FoldError, FoldRecord, Step};
pub use history::{History, HistoryQuery, HistoryRow};
pub use projector::{CatchUp, Projector, ProjectorError, Reader, PAGE_RECORDS};
pub use query::{AsOf, Dimension, GroupKey, Holdings, HoldingsQuery, HoldingsRow, KeyValue, QueryError, Totals};
pub use source::{AsyncSource, ExportSource, LedgerSource, Source, SourceError, StoredRecord};
pub use store::{StoreError, Submissions, ViewStore};
pub use views::{Change, Figure, Head, Movement, Registry, ReleaseRules, Views, Withholding};
