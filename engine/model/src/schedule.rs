//! Cron schedules: `sec min hour day-of-month month day-of-week` (a 5-field
//! expression means second 0), evaluated in UTC. Pure: the engine asks for
//! the next firing after an instant and sleeps on its own clock.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::time::{Millis, civil_from_days, days_from_civil, days_in_month};

/// What the engine does about firings that fell due while no engine ran.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Forget them; fire next at the next time the expression gives.
    Skip,
    /// Start one instance for the newest missed firing, however many were
    /// missed, then carry on.
    #[default]
    RunOnce,
}

impl fmt::Display for Missed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        })
    }
}

/// A validated schedule of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub cron: Cron,
    pub input: Value,
    pub missed: Missed,
}

/// A parsed cron expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether day-of-month / day-of-week were `*`: when both are
    /// restricted, a day matching either fires (as in classic cron).
    any_day: bool,
    any_weekday: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    pub fn parse(text: &str) -> Result<Cron> {
        Self::parse_fields(text).map_err(|message| Error::syntax("cron expression", message))
    }

    fn parse_fields(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let fields: Vec<&str> = match fields.len() {
            6 => fields,
            5 => std::iter::once("0").chain(fields).collect(),
            n => {
                return Err(format!(
                    "a cron expression has 6 fields (sec min hour day month weekday), this one has {n}"
                ));
            }
        };
        let field = |i: usize, name: &str, lo: u32, hi: u32, names: &[&str]| {
            parse_field(fields[i], lo, hi, names)
                .map_err(|e| format!("{name} field '{}': {e}", fields[i]))
        };
        let mut weekdays = field(5, "weekday", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let cron = Cron {
            text: fields.join(" "),
            seconds: field(0, "second", 0, 59, &[])?,
            minutes: field(1, "minute", 0, 59, &[])?,
            hours: field(2, "hour", 0, 23, &[])?,
            days: field(3, "day", 1, 31, &[])?,
            months: field(4, "month", 1, 12, &MONTHS)?,
            weekdays,
            any_day: matches!(fields[3], "*" | "?"),
            any_weekday: matches!(fields[5], "*" | "?"),
        };
        if cron.next_after(Millis(0)).is_none() {
            return Err("it never fires (no such day in any month)".into());
        }
        Ok(cron)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, y: i64, m: u32, d: u32) -> bool {
        let weekday = (days_from_civil(y, m, d) + 4).rem_euclid(7);
        let by_day = self.days & (1 << d) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }

    /// The first firing strictly after `t` (whole seconds), or `None` when
    /// there is none within 8 years.
    pub fn next_after(&self, t: Millis) -> Option<Millis> {
        let limit = t.0 / 1000 + 8 * 366 * 86_400;
        let mut s = t.0 / 1000 + 1;
        while s <= limit {
            let (day, rem) = ((s / 86_400) as i64, s % 86_400);
            let (y, m, d) = civil_from_days(day);
            if self.months & (1 << m) == 0 {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                s = days_from_civil(ny, nm, 1) as u64 * 86_400;
                continue;
            }
            if d > days_in_month(y, m) || !self.day_matches(y, m, d) {
                s = (day as u64 + 1) * 86_400;
                continue;
            }
            let (h, mi, sec) = (rem / 3600, rem % 3600 / 60, rem % 60);
            if self.hours & (1 << h) == 0 {
                s = day as u64 * 86_400 + (h + 1) * 3600;
                continue;
            }
            if self.minutes & (1 << mi) == 0 {
                s = day as u64 * 86_400 + h * 3600 + (mi + 1) * 60;
                continue;
            }
            if self.seconds & (1 << sec) == 0 {
                s += 1;
                continue;
            }
            // None past the end of representable time rather than overflow.
            return s.checked_mul(1000).map(Millis);
        }
        None
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One field: `*`, `?`, `5`, `1-5`, `*/15`, `10-50/10`, `MON-FRI`, or a
/// comma-separated list of those.
fn parse_field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let upper = v.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            // Month names count from 1, weekday names from 0.
            let base = if names.len() == 12 { 1 } else { 0 };
            return Ok(i as u32 + base);
        }
        // Digits only: `parse` would also take a sign.
        let n = v
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u32>().ok())
            .flatten()
            .filter(|n| (lo..=hi).contains(n));
        n.ok_or_else(|| format!("'{v}' is not a number from {lo} to {hi}"))
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                // A step beyond the field's largest value would select the
                // first value only, which is never what was meant.
                let step = s
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| s.parse::<u32>().ok())
                    .flatten()
                    .filter(|s| (1..=hi).contains(s))
                    .ok_or_else(|| format!("'{s}' is not a step (a number from 1 to {hi})"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) if a.is_empty() || b.is_empty() => {
                    return Err(format!("'{r}' is not a range (write it like 1-5)"));
                }
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/10` means from 5 to the end, every 10.
                None if step > 1 => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("the range {from}-{to} runs backwards"));
        }
        // `value` keeps both ends within lo..=hi (at most 59), so every bit fits.
        for v in (from..=to).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Millis {
        Millis::parse_rfc3339(text).expect("a valid time")
    }

    fn next(cron: &str, after: &str) -> String {
        Cron::parse(cron)
            .expect("parses")
            .next_after(at(after))
            .expect("fires")
            .to_string()
    }

    #[test]
    fn next_firing_of_common_expressions() {
        let cases = [
            (
                "0 */5 * * * *",
                "2026-11-21T10:02:03Z",
                "2026-11-21T10:05:00.000Z",
            ),
            (
                "0 */5 * * * *",
                "2026-11-21T10:05:00Z",
                "2026-11-21T10:10:00.000Z",
            ),
            (
                "30 0 9 * * MON-FRI",
                "2026-11-21T10:00:00Z",
                "2026-11-23T09:00:30.000Z",
            ),
            (
                "0 0 0 1 * *",
                "2026-12-15T00:00:00Z",
                "2027-01-01T00:00:00.000Z",
            ),
            (
                "0 0 12 29 FEB *",
                "2026-03-01T00:00:00Z",
                "2028-02-29T12:00:00.000Z",
            ),
            (
                "*/20 * * * * *",
                "2026-11-21T23:59:59Z",
                "2026-11-22T00:00:00.000Z",
            ),
            (
                "0 15 10 * * 7",
                "2026-11-21T10:00:00Z",
                "2026-11-22T10:15:00.000Z",
            ),
            (
                "0 0 * * *",
                "2026-11-21T10:30:00Z",
                "2026-11-22T00:00:00.000Z",
            ),
            // Day 13 or a Friday, as classic cron reads both restricted.
            (
                "0 0 0 13 * FRI",
                "2026-11-21T00:00:00Z",
                "2026-11-27T00:00:00.000Z",
            ),
        ];
        for (cron, after, want) in cases {
            assert_eq!(next(cron, after), want, "{cron} after {after}");
        }
    }

    #[test]
    fn bad_expressions_say_which_field() {
        for (text, want) in [
            ("* * *", "6 fields"),
            ("61 * * * * *", "second field '61'"),
            ("0 0 25 * * *", "hour field '25'"),
            ("0 0 0 * FOO *", "month field 'FOO'"),
            ("0 */0 * * * *", "minute field '*/0'"),
            ("0 0 0 5-1 * *", "runs backwards"),
            ("0 0 0 30 FEB *", "never fires"),
        ] {
            let Err(err) = Cron::parse(text).map_err(|e| e.to_string()) else {
                panic!("{text} should be refused")
            };
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn parse_extreme_or_garbage_fields_each_refused_naming_the_field() {
        let names = ["second", "minute", "hour", "day", "month", "weekday"];
        let garbage = [
            "1/4294967295",
            "*/4294967295",
            "0-7/4294967295",
            "*/4294967296",
            "5-4294967295",
            "4294967295-5",
            "4294967295",
            "99999999999999999999",
            "*/0",
            "*/-1",
            "*/",
            "/5",
            "1//2",
            "1/2/3",
            "-1",
            "1-",
            "-",
            "1-2-3",
            ",",
            "1,,2",
            "0x10",
            "\u{ff15}",
            "MON-",
            "**",
        ];
        for (i, name) in names.iter().enumerate() {
            for g in garbage {
                let mut fields = ["*"; 6];
                fields[i] = g;
                let text = fields.join(" ");
                let err = match Cron::parse(&text) {
                    Ok(c) => panic!("{text} should be refused, parsed as {c}"),
                    Err(e) => e.to_string(),
                };
                assert!(
                    err.starts_with(&format!("{name} field '{g}': ")),
                    "{text}: {err}"
                );
            }
        }
    }

    #[test]
    fn next_after_the_end_of_time_is_none() {
        let cron = Cron::parse("* * * * * *").expect("parses");
        assert_eq!(cron.next_after(Millis(u64::MAX)), None);
    }
}
