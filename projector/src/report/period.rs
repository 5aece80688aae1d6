//! Reporting periods: a calendar year `2026`, a half `2026-H1`, a quarter `2026-Q3` or a month
//! `2026-05`. A report states the stock as of the end of the period's last day (UTC).

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Earliest and latest years a period may name: the views index business time from 1677 to
/// 2262, and a report looks five year-ends back.
pub const PERIOD_YEARS: std::ops::RangeInclusive<i32> = 1950..=2200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Year(i32),
    Half(i32, u8),
    Quarter(i32, u8),
    Month(i32, u8),
}

/// Why a text is not a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {text:?} is malformed: use a year (2026), a half (2026-H1), a quarter (2026-Q3) or a month (2026-05), years {min}..={max}", min = PERIOD_YEARS.start(), max = PERIOD_YEARS.end())]
pub struct PeriodError {
    pub text: String,
}

impl Period {
    pub fn year(self) -> i32 {
        match self {
            Period::Year(y) | Period::Half(y, _) | Period::Quarter(y, _) | Period::Month(y, _) => y,
        }
    }

    /// First and last month of the period, 1-based.
    fn months(self) -> (u32, u32) {
        match self {
            Period::Year(_) => (1, 12),
            Period::Half(_, h) => (u32::from(h) * 6 - 5, u32::from(h) * 6),
            Period::Quarter(_, q) => (u32::from(q) * 3 - 2, u32::from(q) * 3),
            Period::Month(_, m) => (u32::from(m), u32::from(m)),
        }
    }

    /// The period's first day.
    pub fn start(self) -> NaiveDate {
        let (first, _) = self.months();
        NaiveDate::from_ymd_opt(self.year(), first, 1).expect("validated period")
    }

    /// The period's last day: the report states the stock at its end.
    pub fn end(self) -> NaiveDate {
        let (_, last) = self.months();
        let next = if last == 12 {
            NaiveDate::from_ymd_opt(self.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(self.year(), last + 1, 1)
        };
        next.and_then(|d| d.pred_opt()).expect("validated period")
    }

    /// The five year-ends before the period's year, oldest first.
    pub fn previous_year_ends(self) -> Vec<NaiveDate> {
        (1..=5).rev().map(|k| NaiveDate::from_ymd_opt(self.year() - k, 12, 31).expect("validated period")).collect()
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PeriodError { text: s.to_string() };
        let (year, rest) = match s.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (s, None),
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        if !PERIOD_YEARS.contains(&year) {
            return Err(bad());
        }
        let number = |digits: &str, max: u8| -> Result<u8, PeriodError> {
            if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u8 = digits.parse().map_err(|_| bad())?;
            if n == 0 || n > max {
                return Err(bad());
            }
            Ok(n)
        };
        match rest {
            None => Ok(Period::Year(year)),
            Some(r) if r.starts_with('H') && r.len() == 2 => Ok(Period::Half(year, number(&r[1..], 2)?)),
            Some(r) if r.starts_with('Q') && r.len() == 2 => Ok(Period::Quarter(year, number(&r[1..], 4)?)),
            Some(r) if r.len() == 2 => Ok(Period::Month(year, number(r, 12)?)),
            Some(_) => Err(bad()),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Year(y) => write!(f, "{y}"),
            Period::Half(y, h) => write!(f, "{y}-H{h}"),
            Period::Quarter(y, q) => write!(f, "{y}-Q{q}"),
            Period::Month(y, m) => write!(f, "{y}-{m:02}"),
        }
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Days in a calendar year: the divisor of "average daily net imports".
pub fn days_in_year(year: i32) -> u32 {
    NaiveDate::from_ymd_opt(year, 12, 31).map_or(365, |d| d.ordinal())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_parse_to_their_first_and_last_day() {
        let cases = [
            ("2026", "2026-01-01", "2026-12-31"),
            ("2026-H1", "2026-01-01", "2026-06-30"),
            ("2026-H2", "2026-07-01", "2026-12-31"),
            ("2026-Q3", "2026-07-01", "2026-09-30"),
            ("2024-02", "2024-02-01", "2024-02-29"),
            ("2026-12", "2026-12-01", "2026-12-31"),
        ];
        for (text, start, end) in cases {
            let p: Period = text.parse().unwrap();
            assert_eq!((p.start(), p.end()), (d(start), d(end)), "{text}");
            assert_eq!(p.to_string(), text);
        }
        let ends = "2026-Q1".parse::<Period>().unwrap().previous_year_ends();
        assert_eq!(ends, ["2021-12-31", "2022-12-31", "2023-12-31", "2024-12-31", "2025-12-31"].map(d));
        assert_eq!((days_in_year(2024), days_in_year(2025)), (366, 365));
    }

    #[test]
    fn malformed_periods_are_refused() {
        for text in [
            "",
            "26",
            "2026-H3",
            "2026-H0",
            "2026-Q5",
            "2026-13",
            "2026-00",
            "2026-5",
            "2026-h1",
            "1900",
            "2026-05-01",
            "２０２６",
        ] {
            assert!(text.parse::<Period>().is_err(), "{text:?}");
        }
    }
}
