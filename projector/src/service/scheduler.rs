//! The scheduled push (`stockpile-projector serve --schedule FILE`): the edge around the pure
//! [`crate::schedule`]. It reads the views' head (its `recorded_at` is ledger time), builds
//! each due series' report from the views, asks [`schedule::plan`] what is owed, and
//! publishes through [`submit::submit`] — the one place revisions are numbered, shared with
//! `submit.<P>` (and behind the same in-process lock).
//!
//! **Idempotent across restarts.** What was submitted (per series: last revision, body hash,
//! provisional mark) is kept in the store's `submissions` tree, written only after JetStream
//! acknowledged the publication. On start the tree is reconciled with `STOCKPILE_REPORTS`
//! (the highest revision per series there wins), so a crash between the ack and the write
//! never publishes again; the publication itself is refused by JetStream when the subject
//! moved on since the revision was decided (`Nats-Expected-Last-Subject-Sequence`), and a
//! resend of the same revision is dropped by `Nats-Msg-Id` = report id + revision.

use crate::intake;
use crate::projector::Reader;
use crate::report::{self, Report, ReportRequest};
use crate::schedule::{self, Figures, Schedule, Sent, SeriesKey};
use crate::store::Submissions;
use crate::submit::{self, Submitted};
use async_nats::jetstream;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How often the scheduler looks at the views' head; a round runs when it moved.
pub const SCHEDULE_POLL: Duration = Duration::from_millis(500);
/// Pause after a round or a reconciliation that failed (NATS down, a build refused) before
/// the next attempt.
pub const SCHEDULE_RETRY: Duration = Duration::from_secs(5);

/// Debug builds only: abort the process after this many scheduled publications were
/// acknowledged, before the store records the last one — the crash the restart test needs.
#[cfg(debug_assertions)]
const CRASH_AFTER_PUBLISH_ENV: &str = "STOCKPILE_TEST_CRASH_AFTER_PUBLISH";

pub(super) struct Scheduler {
    pub schedule: Schedule,
    pub reader: Reader,
    pub submissions: Submissions,
    pub publisher: async_nats::Client,
    /// Shared with `submit.<P>`: one submission at a time in this process.
    pub submitting: Arc<Mutex<()>>,
}

impl Scheduler {
    /// Reconciles with the stream, then runs a round whenever the views' head moved (and
    /// again after [`SCHEDULE_RETRY`] when a round failed), until the task is aborted.
    pub(super) async fn run(self) {
        let js = jetstream::new(self.publisher.clone());
        loop {
            match self.reconcile(&js).await {
                Ok(series) => {
                    tracing::info!(series, "schedule: reconciled the submissions record with STOCKPILE_REPORTS");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "schedule: cannot read STOCKPILE_REPORTS yet; retrying");
                    tokio::time::sleep(SCHEDULE_RETRY).await;
                }
            }
        }
        let mut published = 0u64;
        let mut done_at: Option<u64> = None;
        loop {
            let head = self.reader.head();
            if done_at != Some(head.seq) {
                match self.round(&js, head.recorded_at, &mut published).await {
                    Ok(()) => done_at = Some(head.seq),
                    Err(e) => {
                        tracing::warn!(error = %e, "schedule: a round failed; trying again");
                        tokio::time::sleep(SCHEDULE_RETRY).await;
                        continue;
                    }
                }
            }
            tokio::time::sleep(SCHEDULE_POLL).await;
        }
    }

    /// Raises the store's record to what the stream holds: per series, its highest revision.
    async fn reconcile(&self, js: &jetstream::Context) -> Result<usize, String> {
        js.get_or_create_stream(submit::reports_stream_config()).await.map_err(|e| e.to_string())?;
        let arrivals = intake::read_stream(js).await.map_err(|e| e.to_string())?;
        let mut last: BTreeMap<SeriesKey, Sent> = BTreeMap::new();
        for a in arrivals {
            let Some(report) = a.report.filter(|_| a.revision > 0) else { continue };
            let key = SeriesKey { framework: a.framework, partner: a.partner, period: a.period };
            if last.get(&key).is_some_and(|s| s.revision >= a.revision) {
                continue;
            }
            let sent = Sent {
                revision: a.revision,
                report_id: a.report_id,
                body_sha256: report.header.body_sha256,
                provisional: report.header.provisional,
            };
            last.insert(key, sent);
        }
        let submissions = self.submissions.clone();
        let count = last.len();
        tokio::task::spawn_blocking(move || {
            last.iter().try_for_each(|(key, sent)| submissions.record(key, sent)).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(count)
    }

    /// Builds what is due at `ledger_time` and publishes what [`schedule::plan`] owes.
    async fn round(
        &self,
        js: &jetstream::Context,
        ledger_time: Option<chrono::DateTime<chrono::Utc>>,
        published: &mut u64,
    ) -> Result<(), String> {
        let due = schedule::due(&self.schedule, ledger_time);
        if due.is_empty() {
            return Ok(());
        }
        let (reader, submissions) = (self.reader.clone(), self.submissions.clone());
        let (sent, reports) = tokio::task::spawn_blocking(move || {
            let sent = submissions.all().map_err(|e| e.to_string())?;
            let mut reports: BTreeMap<SeriesKey, Report> = BTreeMap::new();
            for d in due {
                let request = ReportRequest {
                    partner: d.ledger_partner.clone(),
                    period: d.key.period,
                    framework: d.key.framework,
                    materials: d.materials,
                };
                match report::build(&reader.views(), &request) {
                    Ok(r) => {
                        reports.insert(d.key, r);
                    }
                    Err(e) => tracing::warn!(series = %d.key, error = %e, "schedule: report not built"),
                }
            }
            Ok::<_, String>((sent, reports))
        })
        .await
        .map_err(|e| e.to_string())??;
        let planned = schedule::plan(&self.schedule, ledger_time, &sent, |d| {
            reports
                .get(&d.key)
                .map(|r| Figures { body_sha256: r.header.body_sha256.clone(), provisional: r.header.provisional })
        });
        for p in planned {
            let Some(report) = reports.get(&p.due.key) else { continue };
            let outcome = {
                let _one_at_a_time = self.submitting.lock().await;
                submit::submit(js, report).await.map_err(|e| format!("{}: {e}", p.due.key))?
            };
            let h = &report.header;
            let revision = match outcome {
                Submitted::Published { revision, stream_seq, subject, changes } => {
                    tracing::info!(series = %p.due.key, revision, stream_seq, %subject, changes = changes.len(), report_id = %h.report_id, "schedule: report published");
                    *published += 1;
                    crash_point(*published);
                    revision
                }
                // The stream already holds these figures (another submitter, or a run that
                // crashed before recording): record that, send nothing.
                Submitted::Unchanged { revision } => revision,
            };
            let sent = Sent {
                revision,
                report_id: h.report_id.clone(),
                body_sha256: h.body_sha256.clone(),
                provisional: h.provisional,
            };
            let (submissions, key) = (self.submissions.clone(), p.due.key.clone());
            tokio::task::spawn_blocking(move || submissions.record(&key, &sent))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Debug builds: abort after the `n`-th acknowledged publication when the environment asks.
#[cfg(debug_assertions)]
fn crash_point(n: u64) {
    if std::env::var(CRASH_AFTER_PUBLISH_ENV).ok().and_then(|v| v.parse::<u64>().ok()) == Some(n) {
        eprintln!("{CRASH_AFTER_PUBLISH_ENV}={n}: aborting after the publish ack, before the store write");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
fn crash_point(_: u64) {}
