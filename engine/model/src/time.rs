//! Time as data: instants in milliseconds since the Unix epoch and human
//! durations (`200ms`, `30s`, `1h30m`, `7d`). The model never reads a clock;
//! callers pass `now` in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
        let ms = i64::try_from(self.0).unwrap_or(i64::MAX);
        match jiff::Timestamp::from_millisecond(ms) {
            Ok(t) => write!(f, "{}", t.strftime("%Y-%m-%dT%H:%M:%S.%3fZ")),
            // Past jiff's range (year 9999): say the number, not a date.
            Err(_) => write!(f, "{}ms after the epoch", self.0),
        }
    }
}

impl Millis {
    /// Parses an RFC 3339 time: `2026-11-21T14:05:09Z`, with optional
    /// fractional seconds and a `Z` or `±hh:mm` offset (hours 0-23, minutes
    /// 0-59). Parsing is jiff's; the extra checks keep to RFC 3339 where
    /// jiff is more lenient.
    pub fn parse_rfc3339(text: &str) -> Result<Millis> {
        let bad = || {
            Error::syntax(
                "time",
                format!("'{text}' is not an RFC 3339 time (write it like 2026-11-21T14:05:09Z)"),
            )
        };
        let t = text.trim();
        let b = t.as_bytes();
        // A full date and time with seconds, and an offset of ±hh:mm or Z.
        if b.len() < 20 || b.get(10).is_none_or(|c| !matches!(c, b'T' | b't' | b' ')) {
            return Err(bad());
        }
        let offset_ok = match b.last() {
            Some(b'Z' | b'z') => true,
            _ => {
                let off = &b[b.len().saturating_sub(6)..];
                off.len() == 6
                    && matches!(off[0], b'+' | b'-')
                    && off[3] == b':'
                    && [1, 2, 4, 5].iter().all(|&i| off[i].is_ascii_digit())
                    && (off[1] - b'0') * 10 + (off[2] - b'0') <= 23
                    && (off[4] - b'0') * 10 + (off[5] - b'0') <= 59
            }
        };
        if !offset_ok {
            return Err(bad());
        }
        let stamp: jiff::Timestamp = t.replacen(' ', "T", 1).parse().map_err(|_| bad())?;
        u64::try_from(stamp.as_millisecond())
            .map(Millis)
            .map_err(|_| Error::syntax("time", format!("'{text}' is before 1970")))
    }
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
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
    pub fn parse(text: &str) -> Result<Span> {
        let bad = |message: String| Error::syntax("duration", message);
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("a duration cannot be empty".into()));
        }
        let mut total: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad(format!("'{text}' is not a duration")));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| bad(format!("'{text}' is too long a duration")))?;
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
                "" => return Err(bad(format!("'{text}' needs a unit (ms, s, m, h or d)"))),
                other => {
                    return Err(bad(format!(
                        "'{other}' in '{text}' is not a unit (ms, s, m, h or d)"
                    )));
                }
            };
            total = n
                .checked_mul(factor)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| bad(format!("'{text}' is too long a duration")))?;
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
    fn rfc3339_offsets_beyond_a_day_or_an_hour_are_refused() {
        for text in [
            "2026-11-21T14:05:09+99:99",
            "2026-11-21T14:05:09+24:00",
            "2026-11-21T14:05:09+01:60",
            "2026-11-21T14:05:09",
            "2026-02-30T14:05:09Z",
            "2026-11-21T25:05:09Z",
        ] {
            assert!(Millis::parse_rfc3339(text).is_err(), "{text}");
        }
        let utc = Millis::parse_rfc3339("2026-11-21T14:05:09.123Z").expect("valid");
        assert_eq!(utc.to_string(), "2026-11-21T14:05:09.123Z");
        let east = Millis::parse_rfc3339("2026-11-21T15:35:09.123+01:30").expect("valid");
        assert_eq!(east, utc);
        assert_eq!(
            Millis::parse_rfc3339("2026-11-21 14:05:09.123z").expect("valid"),
            utc
        );
    }

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
    fn rfc3339_parses_what_display_writes_and_offsets() {
        for ms in [0, 951_782_400_000, 1_795_271_109_123] {
            let text = Millis(ms).to_string();
            assert_eq!(Millis::parse_rfc3339(&text), Ok(Millis(ms)), "{text}");
        }
        assert_eq!(
            Millis::parse_rfc3339("2026-11-21T15:25:09+01:00"),
            Ok(Millis(1_795_271_109_000))
        );
        assert_eq!(
            Millis::parse_rfc3339("2026-11-21T14:25:09.5Z"),
            Ok(Millis(1_795_271_109_500))
        );
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00:00+0100",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(
                Millis::parse_rfc3339(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn span_displays_in_the_largest_units() {
        assert_eq!(Span(5_400_000).to_string(), "1h30m");
        assert_eq!(Span(1_250).to_string(), "1s250ms");
        assert_eq!(Span(0).to_string(), "0s");
    }
}
