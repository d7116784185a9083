//! Durations as people write them on the command line and in config: `0`, `90s`, `15m`,
//! `1h`, `24h`, `7d`.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::str::FromStr;
use time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration; write 0, 90s, 15m, 1h, 24h or 7d")]
    Format(String),
    #[error("`{0}` is too long; at most 100 years (36500d)")]
    TooLong(String),
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || DurationError::Format(text.to_owned());
        let text = text.trim();
        if text == "0" {
            return Ok(Self(Duration::ZERO));
        }
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(bad());
        }
        let too_long = || DurationError::TooLong(text.to_owned());
        let n: i64 = number.parse().map_err(|_| too_long())?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        let total = n
            .checked_mul(seconds)
            .filter(|s| *s <= 100 * 365 * 86_400)
            .ok_or_else(too_long)?;
        Ok(Self(Duration::seconds(total)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.whole_seconds();
        match s {
            0 => f.write_str("0"),
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("0", 0),
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("24h", 86_400),
            ("7d", 604_800),
        ];
        for (text, seconds) in cases {
            let d: HumanDuration = text.parse().expect(text);
            assert_eq!(d.0.whole_seconds(), seconds, "{text}");
        }
    }

    #[test]
    fn refuses_other_forms() {
        for bad in ["", "h", "1", "1w", "-1h", "1.5h", "1 h", "99999999999999d"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(HumanDuration(Duration::hours(48)).to_string(), "2d");
        assert_eq!(HumanDuration(Duration::seconds(90)).to_string(), "90s");
    }
}
