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

impl fmt::Display for Millis {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T14:05:09.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            self.0 % 1000
        )
    }
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    fn millis_display_as_rfc3339_utc() {
        assert_eq!(Millis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Millis(1_795_271_109_123).to_string(),
            "2026-11-21T14:25:09.123Z"
        );
    }

    #[test]
    fn span_displays_in_the_largest_units() {
        assert_eq!(Span(5_400_000).to_string(), "1h30m");
        assert_eq!(Span(1_250).to_string(), "1s250ms");
        assert_eq!(Span(0).to_string(), "0s");
    }
}
