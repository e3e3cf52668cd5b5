//! Retry policies: which failures are tried again, how often, and after how
//! long. Pure: jitter comes from a seed (the step's key), so the same step
//! always gets the same delays and a history replays exactly.

use serde::{Deserialize, Serialize};

use crate::time::Span;

/// Failure kinds a retry policy applies to (unless listed `non_retryable`).
/// `fatal`, typed domain errors, `limit`, `adapter` and `mapping` are never
/// retried: trying again cannot change their answer.
pub const RETRYABLE_KINDS: &[&str] = &["retryable", "timeout", "trap", "heartbeat"];

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Exactly the computed delay.
    #[default]
    None,
    /// Uniform between zero and the computed delay ("full jitter").
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retries.
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial: Span,
    /// Each delay is the previous one times this.
    pub factor: f64,
    /// No delay is longer than this.
    pub max_delay: Span,
    pub jitter: Jitter,
    /// Kinds from `RETRYABLE_KINDS` not to retry after all.
    pub non_retryable: Vec<String>,
}

impl Default for RetryPolicy {
    /// No retries: a failure takes the error transition at once.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial: Span::from_secs(1),
            factor: 2.0,
            max_delay: Span::from_secs(60),
            jitter: Jitter::None,
            non_retryable: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// Whether a failure of this kind is worth another attempt.
    pub fn retries(&self, kind: &str) -> bool {
        RETRYABLE_KINDS.contains(&kind) && !self.non_retryable.iter().any(|k| k == kind)
    }

    /// The delay before attempt `failed + 1`, after attempt `failed` (1-based)
    /// failed. `seed` picks the jitter.
    pub fn delay(&self, failed: u32, seed: u64) -> Span {
        let exp = f64::from(failed.saturating_sub(1)).min(1_000.0);
        let raw = self.initial.as_millis() as f64 * self.factor.powf(exp);
        let capped = raw.min(self.max_delay.as_millis() as f64).max(0.0) as u64;
        match self.jitter {
            Jitter::None => Span(capped),
            Jitter::Full => {
                let r = splitmix64(seed ^ u64::from(failed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                // Uniform in [0, capped].
                Span(((u128::from(r) * (u128::from(capped) + 1)) >> 64) as u64)
            }
        }
    }

    /// Every delay this policy would wait, in order (one fewer than attempts).
    pub fn delays(&self, seed: u64) -> impl Iterator<Item = Span> + '_ {
        (1..self.max_attempts).map(move |failed| self.delay(failed, seed))
    }
}

/// A seed from a step key: the same key, the same jitter (FNV-1a).
pub fn seed(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            initial: Span(200),
            factor: 2.0,
            max_delay: Span(1_000),
            jitter,
            non_retryable: vec!["timeout".into()],
        }
    }

    #[test]
    fn delays_grow_by_the_factor_and_stop_at_the_cap() {
        let d: Vec<u64> = policy(Jitter::None)
            .delays(7)
            .map(Span::as_millis)
            .collect();
        assert_eq!(d, [200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn full_jitter_stays_within_the_computed_delay_and_is_repeatable() {
        let p = policy(Jitter::Full);
        for key in ["a/b/1", "a/b/2", "x/y/1", "another"] {
            let s = seed(key);
            let d: Vec<u64> = p.delays(s).map(Span::as_millis).collect();
            let caps = [200, 400, 800, 1_000, 1_000];
            for (got, cap) in d.iter().zip(caps) {
                assert!(*got <= cap, "{key}: {got} > {cap}");
            }
            assert_eq!(d, p.delays(s).map(Span::as_millis).collect::<Vec<_>>());
        }
        // Different steps get different jitter.
        let a: Vec<Span> = p.delays(seed("a/b/1")).collect();
        let b: Vec<Span> = p.delays(seed("a/b/2")).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn only_retryable_kinds_not_excluded_are_retried() {
        let p = policy(Jitter::None);
        assert!(p.retries("retryable"));
        assert!(p.retries("trap"));
        assert!(p.retries("heartbeat"));
        assert!(!p.retries("timeout"), "listed as non_retryable");
        assert!(!p.retries("fatal"));
        assert!(!p.retries("card_declined"));
    }

    #[test]
    fn the_default_policy_never_retries() {
        assert_eq!(RetryPolicy::default().delays(1).count(), 0);
    }
}
