//! The Commission stock report (CRMA Art. 22) and its IEA and NATO variants, cut from the
//! views so it always agrees with the log.
//!
//! - [`build`]: pure — views + [`ReportRequest`] → [`Report`] (no I/O, no clock); the same
//!   log gives the same report, byte for byte.
//! - [`render`]: the report as canonical JSON (the submission, `schemas/v1/report.schema.json`),
//!   CSV, or Markdown with an inline SVG chart of each material's five-year history.
//! - [`files`]: the files of `stockpile report --out DIR` — Markdown linking one SVG file per
//!   chart, the SVGs, and an HTML page with the charts inline.
//! - [`Period`]: `2026`, `2026-H1`, `2026-Q3`, `2026-05`.

mod build;
pub mod files;
mod model;
mod period;
pub mod render;

pub(crate) use build::decimal;
pub use build::{build, ReportError};
pub use model::*;
pub use period::{days_in_year, Period, PeriodError, PERIOD_YEARS};
