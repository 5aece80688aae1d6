//! [`Projector`]: views + their store + a source. Catch-up fetches a page of records,
//! decodes and hash-checks it on every core, folds it under a short write lock, and persists
//! the page's changes with the checkpoint in one batch.
//!
//! Queries go through a [`Reader`] (cheap to clone, usable from any thread or task). A page
//! holds the write lock only while folding (~1 ms: decoding happens before), and each
//! record applies all or nothing, so a reader always sees the views of some prefix of the
//! log and never waits long.

use crate::fold::{decode, Decoded, FoldError, Step};
use crate::query::{Holdings, HoldingsQuery, QueryError};
use crate::source::{AsyncSource, LedgerSource, Source, SourceError, StoredRecord};
use crate::store::{StoreError, ViewStore};
use crate::views::{Head, Views};
use rayon::prelude::*;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use tokio::sync::watch;

/// Records fetched, folded and persisted together. A page is ~1 MiB of record bytes and one
/// sled batch of ~150 KiB; at the measured fold rate it takes ~5–10 ms, so the write lock a
/// reader may wait on and the work lost to a crash both stay small.
pub const PAGE_RECORDS: usize = 1024;

/// Records per page when catching up from a local source (the ledger's store, an export):
/// larger than a live page, since nothing waits on a bulk fold but the fold itself, and
/// each page costs one sled batch and one hand-over between the threads.
pub const CATCH_UP_PAGE_RECORDS: usize = 4096;

/// Pages waiting between the fetching thread and the fold: with one being folded and one
/// being fetched, the two threads never wait on each other in steady state; more would only
/// hold more memory (a catch-up page is ~5 MiB of records, decoded).
pub const PAGES_AHEAD: usize = 1;

/// Why catch-up stopped. A [`FoldError`] means the source handed out a bad record (a gap, a
/// broken chain, an altered record): the records before it were folded and persisted, the
/// bad one and everything after were not.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the projector stopped after an earlier storage failure; reopen it")]
    Stopped,
}

/// What a catch-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    /// Records folded by this call.
    pub applied: u64,
    pub head: Head,
}

/// Shared, read-only access to the views.
#[derive(Debug, Clone)]
pub struct Reader {
    views: Arc<RwLock<Views>>,
}

impl Reader {
    /// The views as they stand. Hold the guard briefly: catch-up waits for it.
    pub fn views(&self) -> RwLockReadGuard<'_, Views> {
        // A panic while folding cannot leave half a record behind (each applies all or
        // nothing before the head moves), so a poisoned lock still guards consistent views.
        self.views.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn head(&self) -> Head {
        self.views().head().clone()
    }

    pub fn holdings(&self, query: &HoldingsQuery) -> Result<Holdings, QueryError> {
        self.views().holdings(query)
    }
}

/// Views kept up to date from a source and persisted in their own sled directory.
#[derive(Debug)]
pub struct Projector {
    views: Arc<RwLock<Views>>,
    store: ViewStore,
    /// Set when persisting failed: the views are ahead of the store, so stop folding.
    stopped: bool,
}

impl Projector {
    /// Opens (or creates) the projector's store in `dir` and loads its views. A damaged store
    /// or one of another format is discarded (the views are derived; the next catch-up
    /// re-folds the log), as the ledger discards a damaged snapshot.
    pub fn open(dir: &Path) -> Result<Projector, ProjectorError> {
        let (store, views) = match ViewStore::open(dir).and_then(|s| s.load().map(|v| (s, v))) {
            Ok(opened) => opened,
            Err(e @ (StoreError::Corrupt { .. } | StoreError::Format { .. })) => {
                tracing::warn!(error = %e, dir = %dir.display(), "discarding the projector's store; re-folding from the source");
                let mut store = ViewStore::open(dir)?;
                store.clear()?;
                (store, Views::new())
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Projector { views: Arc::new(RwLock::new(views)), store, stopped: false })
    }

    pub fn reader(&self) -> Reader {
        Reader { views: self.views.clone() }
    }

    pub fn head(&self) -> Head {
        self.reader().head()
    }

    pub fn holdings(&self, query: &HoldingsQuery) -> Result<Holdings, QueryError> {
        self.reader().holdings(query)
    }

    /// A copy of the views (for comparisons and tests; reports use a [`Reader`]).
    pub fn snapshot(&self) -> Views {
        self.reader().views().clone()
    }

    pub fn store(&self) -> &ViewStore {
        &self.store
    }

    /// Folds everything the source has after the head. A second thread fetches and decodes
    /// the next pages (on every core) while this one folds and persists; it asks for the
    /// page after the records it has handed out, which sources give in order — if they do
    /// not, the fold stops at the gap anyway.
    pub fn catch_up<S: Source + Send>(&mut self, source: &mut S) -> Result<CatchUp, ProjectorError> {
        let start = self.head().seq;
        let mut applied = 0;
        std::thread::scope(|scope| {
            let (pages, fetched) = std::sync::mpsc::sync_channel(PAGES_AHEAD);
            scope.spawn(move || {
                let mut after = start;
                loop {
                    let page = source.fetch(after, CATCH_UP_PAGE_RECORDS).map(|p| decode_page(&p));
                    let last = !matches!(&page, Ok(p) if !p.is_empty());
                    after += page.as_ref().map_or(0, |p| p.len() as u64);
                    // The folding side hung up (an error, or done): stop.
                    if pages.send(page).is_err() || last {
                        return;
                    }
                }
            });
            for page in fetched {
                let page = page?;
                if page.is_empty() {
                    break;
                }
                let n = self.ingest_decoded(page)?;
                if n == 0 {
                    break; // only records already folded: the source has nothing newer
                }
                applied += n as u64;
            }
            Ok::<(), ProjectorError>(())
        })?;
        Ok(CatchUp { applied, head: self.head() })
    }

    /// [`Projector::catch_up`] from an [`AsyncSource`]. Folding a page is CPU work of a few
    /// milliseconds, done on the calling task.
    pub async fn catch_up_async(&mut self, source: &mut impl AsyncSource) -> Result<CatchUp, ProjectorError> {
        let mut applied = 0;
        loop {
            let page = source.fetch(self.head().seq, PAGE_RECORDS).await?;
            if page.is_empty() {
                break;
            }
            let n = self.ingest(&page)?;
            if n == 0 {
                break;
            }
            applied += n as u64;
        }
        Ok(CatchUp { applied, head: self.head() })
    }

    /// Folds and persists one page of stored records, in order. Records at or before the
    /// head are skipped (sources may redeliver), after checking that one at the head is the
    /// record folded there. Returns how many records were folded; on error, those before
    /// the bad record are folded and persisted.
    pub fn ingest(&mut self, records: &[StoredRecord]) -> Result<usize, ProjectorError> {
        if self.stopped {
            return Err(ProjectorError::Stopped); // before decoding a page that would be dropped
        }
        self.ingest_decoded(decode_page(records))
    }

    /// [`Projector::ingest`] of a page [`decode_page`] decoded already.
    fn ingest_decoded(&mut self, decoded: Vec<Result<Decoded, FoldError>>) -> Result<usize, ProjectorError> {
        if self.stopped {
            return Err(ProjectorError::Stopped);
        }
        let (steps, failure) = self.apply_page(decoded);
        let persisted = {
            let views = self.views.read().unwrap_or_else(PoisonError::into_inner);
            self.store.persist(views.registry(), &steps)
        };
        if let Err(e) = persisted {
            self.stopped = true;
            return Err(e.into());
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(steps.len()),
        }
    }

    fn apply_page(&self, decoded: Vec<Result<Decoded, FoldError>>) -> (Vec<Step>, Option<FoldError>) {
        let mut views = self.views.write().unwrap_or_else(PoisonError::into_inner);
        let mut steps = Vec::with_capacity(decoded.len());
        for d in decoded {
            let result = d.and_then(|d| {
                let head = views.head();
                if d.record.seq < head.seq {
                    return Ok(None);
                }
                if d.record.seq == head.seq {
                    // A redelivery, unless it is another record than the one folded here.
                    return if d.hash == head.hash { Ok(None) } else { Err(FoldError::ChainBreak { seq: head.seq }) };
                }
                views.apply_step(&d.record, &d.hash).map(Some)
            });
            match result {
                Ok(Some(step)) => steps.push(step),
                Ok(None) => {}
                Err(e) => return (steps, Some(e)),
            }
        }
        (steps, None)
    }

    /// Empties the views and the store: the next catch-up folds the log from record 1.
    pub fn reset(&mut self) -> Result<(), ProjectorError> {
        self.store.clear()?;
        *self.views.write().unwrap_or_else(PoisonError::into_inner) = Views::new();
        self.stopped = false;
        Ok(())
    }

    /// Folds the whole log again from record 1. The source must be able to start over (a
    /// [`LedgerSource`] can; open an [`crate::ExportSource`] afresh).
    pub fn rebuild(&mut self, source: &mut (impl Source + Send)) -> Result<CatchUp, ProjectorError> {
        self.reset()?;
        self.catch_up(source)
    }

    /// Hands sled's buffers to the OS now rather than within half a second.
    pub fn flush(&self) -> Result<(), ProjectorError> {
        Ok(self.store.flush()?)
    }

    /// Follows a ledger running in this process: catches up now and whenever its committed
    /// head moves, until `shutdown` completes or the ledger stops. Catch-up runs on tokio's
    /// blocking pool (it reads sled and burns CPU). Returns the projector for a last query or
    /// a clean close.
    pub async fn follow(
        self,
        source: LedgerSource,
        mut head: watch::Receiver<u64>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Projector, ProjectorError> {
        tokio::pin!(shutdown);
        let mut parts = (self, source);
        loop {
            head.borrow_and_update();
            parts = catch_up_blocking(parts).await?;
            tokio::select! {
                () = &mut shutdown => return Ok(parts.0),
                changed = head.changed() => {
                    if changed.is_err() {
                        // The ledger stopped: fold what it committed last, then stop too.
                        return Ok(catch_up_blocking(parts).await?.0);
                    }
                }
            }
        }
    }
}

async fn catch_up_blocking(
    (mut projector, mut source): (Projector, LedgerSource),
) -> Result<(Projector, LedgerSource), ProjectorError> {
    let (projector, source, result) = tokio::task::spawn_blocking(move || {
        let result = projector.catch_up(&mut source);
        (projector, source, result)
    })
    .await
    .map_err(|_| ProjectorError::Stopped)?;
    result.map(|_| (projector, source))
}

/// Decoding (JSON, SHA-256) is most of a fold's work and needs no views: it runs on every
/// core, before the views are locked.
fn decode_page(records: &[StoredRecord]) -> Vec<Result<Decoded, FoldError>> {
    records.par_iter().map(|b| decode(b)).collect()
}
