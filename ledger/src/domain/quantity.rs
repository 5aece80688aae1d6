//! Exact quantities: grams as `u64`, parsed from the operator's decimal text.
//!
//! Floats never appear: an amount is a decimal string (`"120.5"`) with a unit, turned into
//! whole grams with integer arithmetic. `g`, `kg` and `t` must land on a whole gram; `ozt`
//! (troy ounce, exactly 31.1034768 g) is rounded half to even, and the operator's original
//! amount and unit are kept beside the grams so an auditor sees both.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest quantity one command may carry: 2^53 − 1 grams (about 9 million tonnes). Chosen so
/// every gram figure on the wire is exactly representable in a JSON number for any client
/// language (JavaScript's `Number`), and sums of many such figures stay far from `u64::MAX`.
pub const QUANTITY_GRAMS_MAX: u64 = (1 << 53) - 1;

/// Longest amount text accepted, in characters. Longer input is not a quantity anyone meant.
pub const AMOUNT_CHARS_MAX: usize = 32;

/// Most decimal places accepted for troy ounces (a microounce is ~31 µg, far below a gram).
pub const OZT_DECIMALS_MAX: usize = 6;

/// One troy ounce in units of 10^-7 g: 1 ozt = 31.1034768 g = 311_034_768 × 10^-7 g.
const OZT_GRAMS_E7: u128 = 311_034_768;

/// The unit an operator states an amount in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// gram
    G,
    /// kilogram
    Kg,
    /// metric tonne
    T,
    /// troy ounce (platinum-group metals), 31.1034768 g
    Ozt,
}

impl Unit {
    /// Grams per unit for the metric units; `None` for troy ounces, which are not whole grams.
    fn metric_grams(self) -> Option<u64> {
        match self {
            Unit::G => Some(1),
            Unit::Kg => Some(1_000),
            Unit::T => Some(1_000_000),
            Unit::Ozt => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::G => "g",
            Unit::Kg => "kg",
            Unit::T => "t",
            Unit::Ozt => "ozt",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quantity as the operator wrote it: `{"amount": "120.5", "unit": "t"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub amount: String,
    pub unit: Unit,
}

impl Amount {
    pub fn new(amount: impl Into<String>, unit: Unit) -> Self {
        Amount { amount: amount.into(), unit }
    }

    /// Grams as a metric amount, exact (`"1500" g`, `"1.5" kg`, `"0.0015" t` all give 1500).
    pub fn grams(grams: u64) -> Self {
        Amount::new(grams.to_string(), Unit::G)
    }

    /// Parses into grams; see [`parse_grams`].
    pub fn to_grams(&self) -> Result<u64, QuantityError> {
        parse_grams(&self.amount, self.unit)
    }
}

/// A quantity as recorded: exact grams plus what the operator wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    pub grams: u64,
    pub stated: Amount,
}

impl Quantity {
    pub fn from_amount(stated: &Amount) -> Result<Self, QuantityError> {
        Ok(Quantity { grams: stated.to_grams()?, stated: stated.clone() })
    }
}

/// Why an amount is not a quantity. Each says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("amount is empty: write a positive decimal such as \"120.5\"")]
    Empty,
    #[error("amount {amount:?} is longer than {AMOUNT_CHARS_MAX} characters")]
    TooLong { amount: String },
    #[error("amount {amount:?} is negative: quantities are positive; to take stock out use release or adjust")]
    Negative { amount: String },
    #[error("amount {amount:?} is not a plain decimal: use digits with at most one '.', no sign, exponent, spaces or separators")]
    NotDecimal { amount: String },
    #[error("amount {amount:?} is zero: a movement must move a positive quantity")]
    Zero { amount: String },
    #[error("amount {amount:?} {unit} is finer than a gram: round it to whole grams")]
    FinerThanGram { amount: String, unit: Unit },
    #[error("amount {amount:?} ozt has more than {OZT_DECIMALS_MAX} decimal places")]
    TooPrecise { amount: String },
    #[error("amount {amount:?} {unit} rounds to zero grams")]
    RoundsToZero { amount: String, unit: Unit },
    #[error("amount {amount:?} {unit} exceeds the largest quantity a command may carry ({QUANTITY_GRAMS_MAX} g)")]
    TooLarge { amount: String, unit: Unit },
}

/// Parses a decimal amount in `unit` into whole grams.
///
/// Accepted: `digits` or `digits.digits` — no sign, exponent, whitespace, or leading/trailing
/// dot. Trailing zeros after the dot are fine (`"1.500" kg` is 1500 g).
pub fn parse_grams(amount: &str, unit: Unit) -> Result<u64, QuantityError> {
    let owned = || amount.to_string();
    if amount.is_empty() {
        return Err(QuantityError::Empty);
    }
    if amount.chars().count() > AMOUNT_CHARS_MAX {
        return Err(QuantityError::TooLong { amount: owned() });
    }
    if amount.starts_with('-') {
        return Err(QuantityError::Negative { amount: owned() });
    }
    let (int_part, frac_part) = match amount.split_once('.') {
        Some((i, f)) => (i, f),
        None => (amount, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !int_part.is_empty()
        && digits(int_part)
        && digits(frac_part)
        && !(amount.contains('.') && frac_part.is_empty());
    if !well_formed {
        return Err(QuantityError::NotDecimal { amount: owned() });
    }
    // Exact rational value = mantissa / 10^scale. Both fit u128: at most 32 digits.
    let frac_trimmed = frac_part.trim_end_matches('0');
    let scale = frac_trimmed.len() as u32;
    let mut mantissa: u128 = 0;
    for b in int_part.bytes().chain(frac_trimmed.bytes()) {
        mantissa = mantissa * 10 + u128::from(b - b'0');
    }
    if mantissa == 0 {
        return Err(QuantityError::Zero { amount: owned() });
    }
    let too_large = || QuantityError::TooLarge { amount: owned(), unit };
    let grams: u128 = match unit.metric_grams() {
        Some(per_unit) => {
            let numerator = mantissa.checked_mul(u128::from(per_unit)).ok_or_else(too_large)?;
            let divisor = 10u128.pow(scale);
            if numerator % divisor != 0 {
                return Err(QuantityError::FinerThanGram { amount: owned(), unit });
            }
            numerator / divisor
        }
        None => {
            if scale as usize > OZT_DECIMALS_MAX {
                return Err(QuantityError::TooPrecise { amount: owned() });
            }
            let numerator = mantissa.checked_mul(OZT_GRAMS_E7).ok_or_else(too_large)?;
            let divisor = 10u128.pow(scale + 7);
            round_half_even(numerator, divisor)
        }
    };
    if grams == 0 {
        return Err(QuantityError::RoundsToZero { amount: owned(), unit });
    }
    if grams > u128::from(QUANTITY_GRAMS_MAX) {
        return Err(too_large());
    }
    Ok(grams as u64)
}

/// Decimal places a gram figure is shown with in troy ounces (a milli-ounce is ~31 mg).
pub const OZT_DISPLAY_DECIMALS: u32 = 3;

/// `grams` written in `unit` for a message, with the unit: exact for g, kg and t (trailing
/// zeros dropped: `6 t`, `1.5 kg`), and for ozt rounded half to even to
/// [`OZT_DISPLAY_DECIMALS`] places. Negative figures (an older log's) keep their sign.
pub fn in_unit(grams: i64, unit: Unit) -> String {
    let sign = if grams < 0 { "-" } else { "" };
    let g = u128::from(grams.unsigned_abs());
    let (mantissa, scale) = match unit.metric_grams() {
        // Grams per unit is a power of ten: its logarithm is the decimal places.
        Some(per_unit) => (g, per_unit.ilog10()),
        None => {
            let scale = OZT_DISPLAY_DECIMALS;
            (round_half_even(g * 10u128.pow(7 + scale), OZT_GRAMS_E7), scale)
        }
    };
    let divisor = 10u128.pow(scale);
    let (int, frac) = (mantissa / divisor, mantissa % divisor);
    let frac = format!("{frac:0width$}", width = scale as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{int} {unit}")
    } else {
        format!("{sign}{int}.{frac} {unit}")
    }
}

fn round_half_even(numerator: u128, divisor: u128) -> u128 {
    let quotient = numerator / divisor;
    let remainder = numerator % divisor;
    let twice = remainder * 2;
    if twice > divisor || (twice == divisor && quotient % 2 == 1) {
        quotient + 1
    } else {
        quotient
    }
}

/// Grams as tonnes text with exactly `decimals` places (at most 6: a gram), rounded half to
/// even (for display and reports; the exact figure is always the grams).
pub fn format_tonnes(grams: u64, decimals: u32) -> String {
    let decimals = decimals.min(6);
    let divisor = 10u128.pow(6 - decimals);
    let scaled = round_half_even(u128::from(grams), divisor);
    let unit = 10u128.pow(decimals);
    if decimals == 0 {
        scaled.to_string()
    } else {
        format!("{}.{:0width$}", scaled / unit, scaled % unit, width = decimals as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(amount: &str, unit: Unit, expect: Result<u64, &str>) {
        let got = parse_grams(amount, unit);
        match (got, expect) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{amount} {unit}"),
            (Err(err), Err(variant)) => {
                let name = format!("{err:?}");
                assert!(name.starts_with(variant), "{amount} {unit}: got {name}, want {variant}");
            }
            (got, expect) => panic!("{amount} {unit}: got {got:?}, want {expect:?}"),
        }
    }

    #[test]
    fn parses_metric_units_exactly() {
        check("120.5", Unit::T, Ok(120_500_000));
        check("1", Unit::G, Ok(1));
        check("1.500", Unit::Kg, Ok(1_500));
        check("0.000001", Unit::T, Ok(1));
        check("007", Unit::Kg, Ok(7_000));
        check("9007199254740991", Unit::G, Ok(QUANTITY_GRAMS_MAX));
    }

    #[test]
    fn grams_are_written_back_in_the_operators_unit() {
        assert_eq!(in_unit(6_000_000, Unit::T), "6 t");
        assert_eq!(in_unit(5_250_001, Unit::T), "5.250001 t");
        assert_eq!(in_unit(1_500, Unit::Kg), "1.5 kg");
        assert_eq!(in_unit(0, Unit::Kg), "0 kg");
        assert_eq!(in_unit(-1_000_000, Unit::T), "-1 t");
        assert_eq!(in_unit(42, Unit::G), "42 g");
        // 3110 g = 99.98889… ozt; 31 g (1 ozt as recorded) = 0.99667… ozt.
        assert_eq!(in_unit(3_110, Unit::Ozt), "99.989 ozt");
        assert_eq!(in_unit(31, Unit::Ozt), "0.997 ozt");
        for amount in ["1", "120.5", "0.000001", "9007199254"] {
            let grams = parse_grams(amount, Unit::T).unwrap();
            assert_eq!(in_unit(grams as i64, Unit::T), format!("{amount} t"));
        }
    }

    #[test]
    fn troy_ounces_round_half_to_even() {
        check("1", Unit::Ozt, Ok(31)); // 31.1034768
        check("100", Unit::Ozt, Ok(3_110)); // 3110.34768
        check("0.5", Unit::Ozt, Ok(16)); // 15.5517384 -> 16
                                         // 0.125 ozt = 3.8879346 g -> 4
        check("0.125", Unit::Ozt, Ok(4));
        // Exact halves exist only at multiples of 5^7 / 2 ozt: 312500 ozt = 9719836.5 g.
        check("312500", Unit::Ozt, Ok(9_719_836)); // down to even
        check("937500", Unit::Ozt, Ok(29_159_510)); // 29159509.5 -> up to even
        check("0.01", Unit::Ozt, Err("RoundsToZero"));
        check("0.0000001", Unit::Ozt, Err("TooPrecise"));
        assert_eq!(round_half_even(5, 2), 2);
        assert_eq!(round_half_even(7, 2), 4);
        assert_eq!(round_half_even(3, 2), 2);
    }

    #[test]
    fn rejects_what_is_not_an_exact_positive_amount() {
        check("", Unit::G, Err("Empty"));
        check("-1", Unit::G, Err("Negative"));
        check("0", Unit::T, Err("Zero"));
        check("0.000", Unit::T, Err("Zero"));
        check("1e3", Unit::G, Err("NotDecimal"));
        check("+1", Unit::G, Err("NotDecimal"));
        check(".5", Unit::T, Err("NotDecimal"));
        check("5.", Unit::T, Err("NotDecimal"));
        check("1.2.3", Unit::T, Err("NotDecimal"));
        check(" 1", Unit::T, Err("NotDecimal"));
        check("1,5", Unit::T, Err("NotDecimal"));
        check("١٢", Unit::T, Err("NotDecimal"));
        check("NaN", Unit::T, Err("NotDecimal"));
        check("0.5", Unit::G, Err("FinerThanGram"));
        check("1.0005", Unit::Kg, Err("FinerThanGram"));
        check("0.0000001", Unit::T, Err("FinerThanGram"));
        check("9007199254740992", Unit::G, Err("TooLarge"));
        check("99999999999999999999999999999999", Unit::T, Err("TooLarge"));
        check("999999999999999999999999999999999", Unit::T, Err("TooLong"));
    }

    #[test]
    fn formats_tonnes() {
        assert_eq!(format_tonnes(120_500_000, 3), "120.500");
        assert_eq!(format_tonnes(1, 6), "0.000001");
        assert_eq!(format_tonnes(1_500, 3), "0.002");
        assert_eq!(format_tonnes(2_500_000, 0), "2");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,40}", u in 0u8..4) {
            let unit = [Unit::G, Unit::Kg, Unit::T, Unit::Ozt][u as usize];
            let _ = parse_grams(&s, unit);
        }

        #[test]
        fn metric_round_trips(grams in 1u64..=QUANTITY_GRAMS_MAX) {
            proptest::prop_assert_eq!(parse_grams(&grams.to_string(), Unit::G), Ok(grams));
            let kg = format!("{}.{:03}", grams / 1000, grams % 1000);
            proptest::prop_assert_eq!(parse_grams(&kg, Unit::Kg), Ok(grams));
        }
    }
}
