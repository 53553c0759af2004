//! Durations as people write them on the command line: `30s`, `10m`, `8h`,
//! `7d`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration parsed from `<number><unit>` with unit `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// The parsed duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unit_at = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("'{text}' has no unit; write it like 30s, 10m, 8h or 7d"))?;
        let (number, unit) = text.split_at(unit_at);
        let number: u64 = number.parse().map_err(|_| {
            format!("'{text}' does not start with a number; write it like 30s, 10m, 8h or 7d")
        })?;
        let seconds_per_unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "'{text}' has unknown unit '{unit}'; use s, m, h or d"
                ));
            }
        };
        let seconds = number
            .checked_mul(seconds_per_unit)
            .ok_or_else(|| format!("'{text}' is too long"))?;
        Ok(Self(Duration::from_secs(seconds)))
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if seconds != 0 && seconds.is_multiple_of(size) {
                return write!(f, "{}{unit}", seconds / size);
            }
        }
        write!(f, "{seconds}s")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u64, String> {
        text.parse::<HumanDuration>().map(|d| d.get().as_secs())
    }

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse("30s"), Ok(30));
        assert_eq!(parse("10m"), Ok(600));
        assert_eq!(parse("8h"), Ok(28_800));
        assert_eq!(parse("7d"), Ok(604_800));
    }

    #[test]
    fn missing_or_unknown_units_and_numbers_are_refused() {
        for bad in [
            "",
            "30",
            "m",
            "1w",
            "1.5h",
            "-1s",
            "10 m",
            "1hh",
            "99999999999999999999d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        for text in ["1s", "90s", "10m", "8h", "7d"] {
            assert_eq!(text.parse::<HumanDuration>().unwrap().to_string(), text);
        }
    }
}
