//! Time as data: instants in milliseconds since the Unix epoch and human
//! durations (`200ms`, `30s`, `1h30m`, `7d`). The model never reads a clock;
//! callers pass `now` in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    pub fn plus(self, d: Span) -> Millis {
        Millis(self.0.saturating_add(d.0))
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }
}

/// A length of time in milliseconds, written like `30s` or `1h30m`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Span(pub u64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub fn from_millis(ms: u64) -> Self {
        Span(ms)
    }
    pub fn from_secs(s: u64) -> Self {
        Span(s.saturating_mul(1000))
    }
    pub fn as_millis(self) -> u64 {
        self.0
    }
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }

    /// Parses `250ms`, `30s`, `5m`, `2h`, `7d` and sums like `1h30m`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a duration cannot be empty".into());
        }
        let mut total: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("'{text}' is not a duration"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("'{text}' is too long a duration"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let factor = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => return Err(format!("'{text}' needs a unit (ms, s, m, h or d)")),
                other => {
                    return Err(format!(
                        "'{other}' in '{text}' is not a unit (ms, s, m, h or d)"
                    ));
                }
            };
            total = n
                .checked_mul(factor)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("'{text}' is too long a duration"))?;
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        let mut left = ms;
        for (size, name) in units {
            if left >= size {
                write!(f, "{}{name}", left / size)?;
                left %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_parses_units_and_sums() {
        let cases = [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("7d", 604_800_000),
            ("1h30m", 5_400_000),
            ("1m500ms", 60_500),
        ];
        for (text, ms) in cases {
            assert_eq!(Span::parse(text), Ok(Span(ms)), "{text}");
        }
    }

    #[test]
    fn span_rejects_missing_or_unknown_units() {
        for text in ["", "30", "s", "3x", "1.5s", "-1s", "99999999999999999999d"] {
            assert!(Span::parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn span_displays_in_the_largest_units() {
        assert_eq!(Span(5_400_000).to_string(), "1h30m");
        assert_eq!(Span(1_250).to_string(), "1s250ms");
        assert_eq!(Span(0).to_string(), "0s");
    }
}
