//! One interface, two modes: [`Embedded`] runs the ledger in this process on a local data
//! directory; the remote mode (`--nats URL`) talks to running services. Commands are written
//! against [`Backend`] so both modes behave the same.

use crate::error::{operational, usage, Result};
use std::path::{Path, PathBuf};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::wire::AppendResult;
use stockpile_ledger::{Ledger, LedgerHandle, LedgerOptions, SystemClock};
use stockpile_projector::report::{self, Report, ReportError, ReportRequest};
use stockpile_projector::service::wire::SubmitReply;
use stockpile_projector::{
    HistoryQuery, HistoryRow, Holdings, HoldingsQuery, LedgerSource, Projector, Registry, Views,
};

/// Records held at once when a backend folds the log for its registry: bounds the memory of
/// one page of stored records, whatever the log's length.
const REGISTRY_PAGE_RECORDS: u64 = 1_000;

pub trait Backend {
    /// Appends signed commands; one result per command.
    fn append(&mut self, commands: Vec<SignedCommand>, atomic: bool) -> Result<Vec<AppendResult>>;
    /// Stored record bytes `from..=to` (fewer if the log is shorter).
    fn records(&mut self, from: u64, to: u64) -> Result<Vec<Vec<u8>>>;
    /// The committed head seq.
    fn head(&mut self) -> Result<u64>;
    /// Holdings now or as of a date, including every committed record.
    fn holdings(&mut self, query: &HoldingsQuery) -> Result<Holdings>;
    /// What the log has registered (parties, facilities, lots), including every committed
    /// record. By default the records are folded here; a backend with views at hand answers
    /// from them.
    fn registry(&mut self) -> Result<Registry> {
        let head = self.head()?;
        let mut views = Views::new();
        let mut from = 1;
        while from <= head {
            let to = (from + REGISTRY_PAGE_RECORDS - 1).min(head);
            for bytes in self.records(from, to)? {
                views.apply_stored(&bytes).map_err(|e| operational(format!("folding the log: {e}")))?;
            }
            from = to + 1;
        }
        Ok(views.registry().clone())
    }
    /// A partner's own postings from the projector's history service, for a caller who may
    /// not read the log (over NATS as `--nats-partner P`); `None` where the log itself is
    /// read (the embedded mode, and users who may read `ledger.range`).
    fn partner_history(&mut self, query: &HistoryQuery) -> Result<Option<Vec<HistoryRow>>> {
        let _ = query;
        Ok(None)
    }
    /// The stock report of `request`, cut at the committed head.
    fn report(&mut self, request: &ReportRequest) -> Result<Report>;
    /// Asks the projector service to build `request` from its own views and publish it to
    /// `STOCKPILE_REPORTS`. Only the remote backend can: a local `--data` directory's figures
    /// are never submitted (they need not be the log the Commission checks against).
    fn submit_report(&mut self, request: &ReportRequest, provisional: bool) -> Result<SubmitReply> {
        let _ = (request, provisional);
        Err(usage(
            "report --submit asks the projector service to build and publish the report from the ledger's log: pass --nats URL (figures of a local --data directory are never submitted)",
        ))
    }
    /// Finishes outstanding work (embedded: stops the writer cleanly).
    fn close(self: Box<Self>) -> Result<()>;
}

/// The ledger in this process.
pub struct Embedded {
    handle: LedgerHandle,
    dir: PathBuf,
    /// Opened on the first query: most verbs only append.
    projector: Option<Projector>,
}

/// Where the ledger lives inside a data directory (the projector has its own subdirectory).
pub fn ledger_dir(data: &Path) -> PathBuf {
    data.join("ledger")
}

impl Embedded {
    /// Opens an existing ledger; `create` allows a new one (for `init` and `demo`).
    pub fn open(data: &Path, create: bool) -> Result<Embedded> {
        let dir = ledger_dir(data);
        if !create && !dir.join("db").exists() {
            return Err(usage(format!(
                "no ledger in {}: run `stockpile init` first, or pass --data DIR or --nats URL",
                data.display()
            )));
        }
        let ledger = Ledger::open(&dir, Box::new(SystemClock), LedgerOptions::default()).map_err(operational)?;
        Ok(Embedded { handle: LedgerHandle::start(ledger), dir: data.to_path_buf(), projector: None })
    }
}

impl Embedded {
    /// The local projector, opened on first use and caught up with every committed record.
    fn caught_up(&mut self) -> Result<&mut Projector> {
        if self.projector.is_none() {
            self.projector = Some(Projector::open(&projector_dir(&self.dir)).map_err(operational)?);
        }
        let projector = self.projector.as_mut().expect("opened above");
        let mut source = LedgerSource::following(self.handle.store().clone(), self.handle.head());
        projector.catch_up(&mut source).map_err(operational)?;
        Ok(projector)
    }
}

impl Backend for Embedded {
    fn append(&mut self, commands: Vec<SignedCommand>, atomic: bool) -> Result<Vec<AppendResult>> {
        let outcomes = self.handle.append_blocking(commands, atomic).map_err(operational)?;
        Ok(outcomes.into_iter().map(AppendResult::from).collect())
    }

    fn records(&mut self, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        self.handle.store().records(from, to).map_err(operational)
    }

    fn head(&mut self) -> Result<u64> {
        Ok(*self.handle.head().borrow())
    }

    fn holdings(&mut self, query: &HoldingsQuery) -> Result<Holdings> {
        self.caught_up()?.holdings(query).map_err(|e| usage(e.to_string()))
    }

    fn registry(&mut self) -> Result<Registry> {
        Ok(self.caught_up()?.reader().views().registry().clone())
    }

    fn report(&mut self, request: &ReportRequest) -> Result<Report> {
        let views = self.caught_up()?.snapshot();
        report::build(&views, request).map_err(|e| match e {
            ReportError::UnknownPartner { .. } | ReportError::NotMember { .. } | ReportError::EmptyLedger => {
                usage(e.to_string())
            }
            _ => operational(e),
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self.projector);
        self.handle.shutdown().map_err(operational)
    }
}

/// Where the projector keeps its views inside a data directory.
pub fn projector_dir(data: &Path) -> PathBuf {
    data.join("projector")
}
