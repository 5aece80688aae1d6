//! The report schedule: which partners' reports the projector submits by itself, for which
//! frameworks and periods, and when (`stockpile-projector serve --schedule FILE`,
//! `schemas/v1/report-schedule.schema.json`, example `docs/examples/report-schedule.json`).
//!
//! **Pure.** No I/O and no clock: time is *ledger time*, the `recorded_at` of the last
//! record the views hold — the rule that marks a report provisional. The edge
//! (`service::scheduler`) builds the reports, publishes and keeps the state.
//!
//! **When.** A period's report is *due* once ledger time reaches its deadline: the end of the
//! period's last day (UTC) plus `deadline_days`. Not at the period's end: the days between let
//! operators record the period's late paperwork (back-dated movements) so that revision 1
//! already holds it; a change recorded after the deadline is a revision. Set `deadline_days`
//! at or before the addressee's own deadline (`stockpile reports missing --deadline`): ledger
//! time moves only when a record is written, so a ledger with no record after the deadline
//! submits with its next record.
//!
//! **What.** [`plan`]: for every due series (framework, partner, period), revision 1 when
//! nothing was submitted, the next revision when the current figures (the body's SHA-256) or
//! the provisional mark differ from the last submitted revision's, nothing otherwise — the
//! rule [`crate::submit::next_revision`] applies to the stream itself.

use crate::report::{Framework, MaterialScope, Period};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use stockpile_ledger::domain::{Country, Reference};

/// Most entries in a schedule: one per framework and cadence is a handful.
pub const SCHEDULE_ENTRIES_MAX: usize = 64;
/// Longest deadline after a period's end, in days: a year and a day.
pub const DEADLINE_DAYS_MAX: u32 = 366;
/// Most periods of one entry considered at once: the latest due ones (a hundred years of
/// quarters). Older periods are left to `report --submit`.
pub const DUE_PERIODS_MAX: usize = 400;
/// Largest schedule file, in bytes.
pub const SCHEDULE_BYTES_MAX: usize = 256 * 1024;

/// How often a framework's reports fall due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Monthly,
    Quarterly,
    HalfYearly,
    Yearly,
}

impl Cadence {
    /// Whether `period` is a period of this cadence.
    pub fn fits(self, period: Period) -> bool {
        matches!(
            (self, period),
            (Cadence::Monthly, Period::Month(..))
                | (Cadence::Quarterly, Period::Quarter(..))
                | (Cadence::HalfYearly, Period::Half(..))
                | (Cadence::Yearly, Period::Year(_))
        )
    }
}

/// The period after `period`, of the same length; `None` past [`crate::report::PERIOD_YEARS`].
pub fn next_period(period: Period) -> Option<Period> {
    let next = match period {
        Period::Year(y) => Period::Year(y + 1),
        Period::Half(y, 2) => Period::Half(y + 1, 1),
        Period::Half(y, h) => Period::Half(y, h + 1),
        Period::Quarter(y, 4) => Period::Quarter(y + 1, 1),
        Period::Quarter(y, q) => Period::Quarter(y, q + 1),
        Period::Month(y, 12) => Period::Month(y + 1, 1),
        Period::Month(y, m) => Period::Month(y, m + 1),
    };
    crate::report::PERIOD_YEARS.contains(&next.year()).then_some(next)
}

/// The instant a period ends: midnight (UTC) after its last day.
pub fn period_end(period: Period) -> DateTime<Utc> {
    let day_after = period.end().succ_opt().unwrap_or(NaiveDate::MAX);
    Utc.from_utc_datetime(&day_after.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// Which partners an entry covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Partners {
    /// `"all"`: every member of the framework in the reference list.
    All(AllPartners),
    /// Partner codes as the ledger spells them (`GR` for Greece).
    List(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllPartners {
    #[serde(rename = "all")]
    All,
}

/// One line of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub partners: Partners,
    pub framework: Framework,
    pub periods: Cadence,
    /// The first period to submit (of the cadence): earlier periods are not the schedule's.
    pub from: Period,
    /// Days after the period's end at which its report is due.
    pub deadline_days: u32,
    /// `None`: the framework's default scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materials: Option<MaterialScope>,
}

/// The schedule document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub reports: Vec<Entry>,
}

/// Why a schedule is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("the schedule is not valid JSON of the schedule's shape: {0}")]
    Decode(String),
    #[error("the schedule is {0} bytes, more than {SCHEDULE_BYTES_MAX}")]
    TooLarge(usize),
    #[error("the schedule has {0} entries, more than {SCHEDULE_ENTRIES_MAX}")]
    TooMany(usize),
    #[error("entry {entry}: {reason}")]
    Entry { entry: usize, reason: String },
}

/// One report series: a partner's reports of one framework and period. `partner` is spelled
/// as on the report and its subject (`EL` for Greece on EU reports).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub framework: Framework,
    pub partner: String,
    pub period: Period,
}

impl PartialOrd for Framework {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Framework {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Period {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Period {
    /// By end, then by start (a year after its last quarter).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.end(), std::cmp::Reverse(self.start())).cmp(&(other.end(), std::cmp::Reverse(other.start())))
    }
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.framework.as_str(), self.partner, self.period)
    }
}

/// How the addressee spells `partner` (a reference code) on `framework`'s reports.
pub fn addressee_code(framework: Framework, partner: &str) -> String {
    match (framework, Reference::get().partner(&Country::new(partner))) {
        (Framework::Eu, Some(p)) => p.eu_code.clone(),
        _ => partner.to_string(),
    }
}

/// A report the schedule wants to exist: what to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub key: SeriesKey,
    /// The partner as the ledger spells it (`GR`), for the report request.
    pub ledger_partner: String,
    pub materials: Option<MaterialScope>,
}

/// What was last submitted for a series: kept in the projector's store after the publish
/// ack, and reconciled with `STOCKPILE_REPORTS` on start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub revision: u64,
    pub report_id: String,
    pub body_sha256: String,
    pub provisional: bool,
}

/// A built report's figures: what decides whether a new revision is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub body_sha256: String,
    pub provisional: bool,
}

/// One submission the schedule owes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub due: Due,
    /// The revision it should get, from what this projector knows; the stream has the last
    /// word (`submit::submit`).
    pub revision: u64,
}

impl Schedule {
    /// Reads and checks a schedule document.
    pub fn from_json(bytes: &[u8]) -> Result<Schedule, ScheduleError> {
        if bytes.len() > SCHEDULE_BYTES_MAX {
            return Err(ScheduleError::TooLarge(bytes.len()));
        }
        let schedule: Schedule = serde_json::from_slice(bytes).map_err(|e| ScheduleError::Decode(e.to_string()))?;
        schedule.check()?;
        Ok(schedule)
    }

    fn check(&self) -> Result<(), ScheduleError> {
        if self.reports.len() > SCHEDULE_ENTRIES_MAX {
            return Err(ScheduleError::TooMany(self.reports.len()));
        }
        let mut seen = BTreeSet::new();
        for (i, entry) in self.reports.iter().enumerate() {
            let bad = |reason: String| ScheduleError::Entry { entry: i + 1, reason };
            if !entry.periods.fits(entry.from) {
                return Err(bad(format!("from {} is not a {:?} period", entry.from, entry.periods)));
            }
            if entry.deadline_days > DEADLINE_DAYS_MAX {
                return Err(bad(format!("deadline_days {} is more than {DEADLINE_DAYS_MAX}", entry.deadline_days)));
            }
            if let Partners::List(list) = &entry.partners {
                if list.is_empty() {
                    return Err(bad("partners is empty: name partners or \"all\"".into()));
                }
                for p in list {
                    if Reference::get().partner(&Country::new(p)).is_none() {
                        return Err(bad(format!(
                            "{p:?} is not a partner code (schemas/reference/partners.v1.json; Greece is GR)"
                        )));
                    }
                }
            }
            for partner in entry.partner_codes() {
                if !seen.insert((entry.framework, partner.clone(), entry.periods)) {
                    return Err(bad(format!(
                        "{partner} is scheduled twice for {} {:?} reports",
                        entry.framework.as_str(),
                        entry.periods
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Entry {
    /// The partners of this entry, as the ledger spells them.
    pub fn partner_codes(&self) -> Vec<String> {
        match &self.partners {
            Partners::List(list) => list.clone(),
            Partners::All(_) => Reference::get()
                .partners()
                .filter(|p| match self.framework {
                    Framework::Eu => p.eu,
                    Framework::Iea => p.iea,
                    Framework::Nato => p.nato,
                })
                .map(|p| p.code.to_string())
                .collect(),
        }
    }

    /// When `period`'s report is due.
    pub fn deadline(&self, period: Period) -> DateTime<Utc> {
        period_end(period) + Duration::days(i64::from(self.deadline_days))
    }

    /// The periods due by `ledger_time`, from `from` on: at most [`DUE_PERIODS_MAX`], the latest.
    fn due_periods(&self, ledger_time: DateTime<Utc>) -> Vec<Period> {
        let mut out = std::collections::VecDeque::new();
        let mut period = Some(self.from);
        while let Some(p) = period {
            if self.deadline(p) > ledger_time {
                break;
            }
            out.push_back(p);
            if out.len() > DUE_PERIODS_MAX {
                out.pop_front();
            }
            period = next_period(p);
        }
        out.into()
    }
}

/// Every series the schedule wants submitted by `ledger_time` (none without a ledger time),
/// sorted by series.
pub fn due(schedule: &Schedule, ledger_time: Option<DateTime<Utc>>) -> Vec<Due> {
    let Some(now) = ledger_time else { return Vec::new() };
    let mut out = BTreeMap::new();
    for entry in &schedule.reports {
        let periods = entry.due_periods(now);
        for partner in entry.partner_codes() {
            for &period in &periods {
                let key = SeriesKey {
                    framework: entry.framework,
                    partner: addressee_code(entry.framework, &partner),
                    period,
                };
                out.entry(key.clone()).or_insert(Due {
                    key,
                    ledger_partner: partner.clone(),
                    materials: entry.materials,
                });
            }
        }
    }
    out.into_values().collect()
}

/// The submissions owed now: for each series [`due`] by `ledger_time`, the revision
/// [`crate::submit::next_revision`] gives against what was `sent`, given its current
/// `figures` (`None`: the report could not be built; it is left for the next round).
pub fn plan(
    schedule: &Schedule,
    ledger_time: Option<DateTime<Utc>>,
    sent: &BTreeMap<SeriesKey, Sent>,
    mut figures: impl FnMut(&Due) -> Option<Figures>,
) -> Vec<Planned> {
    let mut out = Vec::new();
    for due in due(schedule, ledger_time) {
        let Some(current) = figures(&due) else { continue };
        let last = sent.get(&due.key);
        if let Some(revision) = crate::submit::next_revision(
            last.map(|s| (s.revision, s.body_sha256.as_str(), s.provisional)),
            &current.body_sha256,
            current.provisional,
        ) {
            out.push(Planned { due, revision });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    fn schedule(text: &str) -> Schedule {
        Schedule::from_json(text.as_bytes()).unwrap()
    }

    const QUARTERLY: &str = r#"{"reports": [{"partners": ["NL", "GR"], "framework": "EU", "periods": "quarterly",
        "from": "2026-Q1", "deadline_days": 30}]}"#;

    fn figures(hash: &str) -> impl FnMut(&Due) -> Option<Figures> + '_ {
        move |_| Some(Figures { body_sha256: hash.into(), provisional: false })
    }

    #[test]
    fn a_period_is_due_at_its_deadline_by_ledger_time_not_at_its_end() {
        let s = schedule(QUARTERLY);
        // Q1 ends 2026-04-01T00:00Z; due 30 days later, 2026-05-01T00:00Z.
        assert!(due(&s, at("2026-04-15T00:00:00Z")).is_empty(), "ended but not yet due");
        assert!(due(&s, at("2026-04-30T23:59:59.999Z")).is_empty());
        let keys: Vec<String> = due(&s, at("2026-05-01T00:00:00Z")).iter().map(|d| d.key.to_string()).collect();
        assert_eq!(keys, ["EU EL 2026-Q1", "EU NL 2026-Q1"], "Greece is EL on EU reports");
        assert!(due(&s, None).is_empty(), "no ledger time, nothing due");
        // Two quarters later: Q1 and Q2 (due 2026-07-31), not Q3 (due 2026-10-31).
        let later = due(&s, at("2026-10-01T00:00:00Z"));
        assert_eq!(later.iter().filter(|d| d.key.partner == "NL").count(), 2);
        assert_eq!(later[0].ledger_partner, "GR", "the report is asked in the ledger's spelling");
    }

    #[test]
    fn plan_submits_once_then_only_changed_figures_as_the_next_revision() {
        let s = schedule(QUARTERLY);
        let now = at("2026-05-02T00:00:00Z");
        let mut sent = BTreeMap::new();
        let first = plan(&s, now, &sent, figures("aa"));
        assert_eq!(first.iter().map(|p| p.revision).collect::<Vec<_>>(), [1, 1]);
        for p in &first {
            let record = Sent { revision: 1, report_id: "r".into(), body_sha256: "aa".into(), provisional: false };
            sent.insert(p.due.key.clone(), record);
        }
        assert!(plan(&s, now, &sent, figures("aa")).is_empty(), "same figures: nothing, however often asked");
        let changed = plan(&s, now, &sent, |d| {
            Some(Figures { body_sha256: if d.key.partner == "NL" { "bb" } else { "aa" }.into(), provisional: false })
        });
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].due.key.partner.as_str(), changed[0].revision), ("NL", 2));
        // A provisional revision on record is followed by the final one even with the same body.
        let key = first[0].due.key.clone();
        sent.insert(key, Sent { revision: 3, report_id: "r".into(), body_sha256: "aa".into(), provisional: true });
        assert_eq!(plan(&s, now, &sent, figures("aa")).iter().map(|p| p.revision).collect::<Vec<_>>(), [4]);
        // A report that cannot be built is left for the next round.
        assert!(plan(&s, now, &BTreeMap::new(), |_| None).is_empty());
    }

    #[test]
    fn all_partners_are_the_frameworks_members_and_cadences_chain() {
        let s = schedule(
            r#"{"reports": [{"partners": "all", "framework": "NATO", "periods": "yearly", "from": "2025",
            "deadline_days": 0}]}"#,
        );
        let d = due(&s, at("2026-01-01T00:00:00Z"));
        assert!(d.iter().any(|d| d.key.partner == "US") && d.iter().all(|d| d.key.partner != "AT"), "{d:?}");
        assert!(d.iter().all(|d| d.key.period == Period::Year(2025)));
        let chain = |p: &str| next_period(p.parse().unwrap()).map(|p| p.to_string());
        assert_eq!(chain("2026-Q4").as_deref(), Some("2027-Q1"));
        assert_eq!(chain("2026-H1").as_deref(), Some("2026-H2"));
        assert_eq!(chain("2026-12").as_deref(), Some("2027-01"));
        assert_eq!(chain("2200"), None);
    }

    #[test]
    fn malformed_schedules_are_refused_with_the_entry() {
        for (text, needle) in [
            (
                r#"{"reports": [{"partners": ["NL"], "framework": "EU", "periods": "quarterly", "from": "2026", "deadline_days": 1}]}"#,
                "not a Quarterly period",
            ),
            (
                r#"{"reports": [{"partners": ["XX"], "framework": "EU", "periods": "yearly", "from": "2026", "deadline_days": 1}]}"#,
                "not a partner code",
            ),
            (
                r#"{"reports": [{"partners": [], "framework": "EU", "periods": "yearly", "from": "2026", "deadline_days": 1}]}"#,
                "empty",
            ),
            (
                r#"{"reports": [{"partners": ["NL"], "framework": "EU", "periods": "yearly", "from": "2026", "deadline_days": 400}]}"#,
                "more than 366",
            ),
            (
                r#"{"reports": [{"partners": ["NL"], "framework": "EU", "periods": "yearly", "from": "2026", "deadline_days": 1},
                 {"partners": "all", "framework": "EU", "periods": "yearly", "from": "2027", "deadline_days": 1}]}"#,
                "scheduled twice",
            ),
            (r#"{"reports": [], "extra": 1}"#, "unknown field"),
            (
                r#"{"reports": [{"partners": "some", "framework": "EU", "periods": "yearly", "from": "2026", "deadline_days": 1}]}"#,
                "shape",
            ),
        ] {
            let err = Schedule::from_json(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
