//! Money as an exact count of cents. It is a decimal string in JSON (`"19.99"`); a JSON
//! number is accepted too and read from its literal text, never through a float.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Largest amount accepted: 9,999,999,999,999.99 keeps every sum of 1000 lines in an i64.
const MAX_CENTS: i64 = 999_999_999_999_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal amount such as \"19.99\"")]
    Format,
    #[error("may have at most two decimal places")]
    Precision,
    #[error("must not be negative")]
    Negative,
    #[error("is too large")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_cents(cents: i64) -> Result<Self, MoneyError> {
        match cents {
            c if c < 0 => Err(MoneyError::Negative),
            c if c > MAX_CENTS => Err(MoneyError::TooLarge),
            c => Ok(Self(c)),
        }
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    pub fn checked_mul(self, quantity: i64) -> Option<Money> {
        self.0.checked_mul(quantity).map(Money)
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix('-') {
            return match rest.parse::<Money>() {
                Ok(m) if m.0 == 0 => Ok(m),
                Ok(_) => Err(MoneyError::Negative),
                Err(e) => Err(e),
            };
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(MoneyError::Format);
        }
        if text.ends_with('.') {
            return Err(MoneyError::Format);
        }
        let significant = fraction.trim_end_matches('0');
        if significant.len() > 2 {
            return Err(MoneyError::Precision);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 13 {
            return Err(MoneyError::TooLarge);
        }
        let units: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::TooLarge)?
        };
        let cents: i64 = format!("{significant:0<2}")
            .parse()
            .map_err(|_| MoneyError::Format)?;
        Money::from_cents(units * 100 + cents)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The raw JSON text keeps a number's literal digits, so 19.99 stays 19.99.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let literal = if text.starts_with('"') {
            serde_json::from_str::<String>(text).map_err(D::Error::custom)?
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            // A number, as JSON's grammar (checked by the parser) writes it: `1e2` is 100.
            without_exponent(text).map_err(D::Error::custom)?
        } else {
            return Err(D::Error::custom(MoneyError::Format));
        };
        literal.parse().map_err(D::Error::custom)
    }
}

/// A JSON number's literal with its exponent applied to the digits: `1.5e3` → `1500`,
/// `25E-2` → `0.25`. Exact, as no float is involved.
fn without_exponent(number: &str) -> Result<String, MoneyError> {
    let Some((mantissa, exponent)) = number.split_once(['e', 'E']) else {
        return Ok(number.to_owned());
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, and where the decimal point falls among them.
    let digits = format!("{whole}{fraction}");
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let digits = digits.trim_matches('0');
    if digits.is_empty() {
        return Ok("0".to_owned());
    }
    let exponent: i64 = match exponent.parse() {
        Ok(exponent) => exponent,
        // Past any i64, the amount is far too large or far too precise.
        Err(_) if exponent.starts_with('-') => return Err(MoneyError::Precision),
        Err(_) => return Err(MoneyError::TooLarge),
    };
    let position = |n: usize| i64::try_from(n).map_err(|_| MoneyError::TooLarge);
    let point = (position(whole.len())? - position(leading)?).saturating_add(exponent);
    let count = position(digits.len())?;
    // More whole digits than any amount has, or more decimals than cents: refused here, before
    // a string of that many zeros is made.
    if point > 15 {
        return Err(MoneyError::TooLarge);
    }
    if count - point > 2 {
        return Err(MoneyError::Precision);
    }
    let plain = match usize::try_from(point) {
        Err(_) => format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
        Ok(point) if point >= digits.len() => {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        }
        Ok(0) => format!("0.{digits}"),
        Ok(point) => format!("{}.{}", &digits[..point], &digits[point..]),
    };
    Ok(format!("{sign}{plain}"))
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^\d{1,13}(\.\d{1,2})?$"))
            .description(Some(
                "A decimal amount; a JSON number is also accepted and read exactly.",
            ))
            .examples(["19.99"])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_strings_exactly() {
        assert_eq!("19.99".parse::<Money>().map(Money::cents), Ok(1999));
        assert_eq!("19.9".parse::<Money>().map(Money::cents), Ok(1990));
        assert_eq!("19".parse::<Money>().map(Money::cents), Ok(1900));
        assert_eq!("0.10".parse::<Money>().map(Money::cents), Ok(10));
        assert_eq!("19.990".parse::<Money>().map(Money::cents), Ok(1999));
        assert_eq!("19.999".parse::<Money>(), Err(MoneyError::Precision));
        assert_eq!("-1".parse::<Money>(), Err(MoneyError::Negative));
        for bad in ["", "abc", "1.", ".5", "1,50", "1e3", "NaN", "1.2.3"] {
            assert_eq!(bad.parse::<Money>(), Err(MoneyError::Format), "{bad:?}");
        }
        assert_eq!("99999999999999".parse::<Money>(), Err(MoneyError::TooLarge));
    }

    #[test]
    fn json_numbers_are_read_from_their_literal_text() {
        let m: Money = serde_json::from_str("19.99").expect("number");
        assert_eq!(m.cents(), 1999);
        let m: Money = serde_json::from_str("\"0.30\"").expect("string");
        assert_eq!(m.cents(), 30);
        assert!(serde_json::from_str::<Money>("19.999999999999999999").is_err());
        for (exponent, cents) in [("1e2", 10000), ("1E0", 100), ("0.10e1", 100), ("25e-2", 25)] {
            let m: Money = serde_json::from_str(exponent).expect(exponent);
            assert_eq!(m.cents(), cents, "{exponent}");
        }
        for (number, cents) in [
            ("1.5e+3", 150_000),
            ("-0e5", 0),
            ("0.0000e-99", 0),
            ("19990e-3", 1999),
        ] {
            let m: Money = serde_json::from_str(number).expect(number);
            assert_eq!(m.cents(), cents, "{number}");
        }
        for (exotic, cents) in [
            ("0.000000000000000000000000000000000000000000001e45", 100),
            ("1000000000000000000000000000000000000000000000e-45", 100),
        ] {
            let m: Money = serde_json::from_str(exotic).expect(exotic);
            assert_eq!(m.cents(), cents, "{exotic}");
        }
        assert!(serde_json::from_str::<Money>("1e-3").is_err());
        assert!(serde_json::from_str::<Money>("1e-99999999999999999999").is_err());
        assert!(serde_json::from_str::<Money>("1e99999999999999999999").is_err());
        assert!(serde_json::from_str::<Money>("1e99").is_err());
        assert!(serde_json::from_str::<Money>("-1e2").is_err());
        // A string stays a plain decimal.
        assert!(serde_json::from_str::<Money>("\"1e2\"").is_err());
        assert!(serde_json::from_str::<Money>("true").is_err());
    }

    #[test]
    fn serializes_as_a_two_decimal_string() {
        assert_eq!(
            serde_json::to_string(&Money(1999)).expect("json"),
            "\"19.99\""
        );
        assert_eq!(Money(5).to_string(), "0.05");
    }
}
