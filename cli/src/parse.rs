//! Turning argument text into domain values, with messages that say what to write instead.

use crate::error::{usage, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use stockpile_ledger::domain::model::IN_TRANSIT;
use stockpile_ledger::domain::{Amount, FacilityId, Location, Unit};

/// `"120.5 t"`, `"500kg"`, `"1000 ozt"`.
pub fn amount(text: &str) -> Result<Amount> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(|| {
        usage(format!("quantity {text:?} has no unit: write it like \"120.5 t\", \"500 kg\", \"75 g\" or \"1000 ozt\""))
    })?;
    let (number, unit) = (t[..split].trim(), t[split..].trim());
    let unit: Unit = enum_value("unit", unit)?;
    let a = Amount::new(number, unit);
    a.to_grams().map_err(|e| usage(format!("quantity {text:?}: {e}")))?;
    Ok(a)
}

/// `999500` (ppm) or `99.95%`.
pub fn purity(text: &str) -> Result<u32> {
    let bad = || usage(format!("purity {text:?}: write parts per million (999500) or a percentage (99.95%)"));
    if let Some(pct) = text.strip_suffix('%') {
        let a = Amount::new(pct.trim(), Unit::Kg); // kg: 3 decimals of a unit = exact
        let milli = a.to_grams().map_err(|_| bad())?; // percent × 1000
        let ppm = milli.checked_mul(10).ok_or_else(bad)?;
        return u32::try_from(ppm).map_err(|_| bad());
    }
    text.trim().parse::<u32>().map_err(|_| bad())
}

pub fn location(text: &str) -> Location {
    if text == IN_TRANSIT {
        Location::InTransit
    } else {
        Location::Facility(FacilityId::new(text))
    }
}

/// A value of a serde enum by its wire name; the error lists the accepted names.
pub fn enum_value<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|e| {
        let msg = e.to_string();
        let expected = msg.split("expected ").nth(1).unwrap_or("").to_string();
        usage(format!("unknown {what} {text:?}: expected {expected}"))
    })
}

/// RFC 3339, or a bare date meaning midnight UTC.
pub fn time(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| usage(format!("time {text:?}: write YYYY-MM-DD or RFC 3339 (2026-03-01T09:30:00Z)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_text() {
        assert_eq!(amount("120.5 t").unwrap(), Amount::new("120.5", Unit::T));
        assert_eq!(amount("500kg").unwrap(), Amount::new("500", Unit::Kg));
        assert!(amount("500").is_err());
        assert!(amount("0.5 g").is_err());
        assert!(amount("5 lb").is_err());
        assert_eq!(purity("99.95%").unwrap(), 999_500);
        assert_eq!(purity("999500").unwrap(), 999_500);
        assert!(purity("99.95").is_err());
        assert!(purity("abc").is_err());
        assert!(time("2026-13-01").is_err());
        assert_eq!(time("2026-03-01").unwrap().to_rfc3339(), "2026-03-01T00:00:00+00:00");
    }
}
