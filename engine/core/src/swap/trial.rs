//! A canary's running tally and the policy's decision: promote once the
//! component on trial has enough successes, roll it back once its failure
//! rate is worse than the live component's by more than the threshold.

use std::collections::VecDeque;

use weft_store::CanaryPolicy;

use super::Tally;

/// A canary's tally in this engine: the most recent outcomes of each side
/// (`true` is a failure that counts against a component), and the trial's
/// successes in all.
#[derive(Debug)]
pub(crate) struct Trial {
    pub(super) policy: CanaryPolicy,
    pub(super) live: VecDeque<bool>,
    pub(super) trial: VecDeque<bool>,
    pub(super) trial_ok: u64,
    pub(super) tally: Tally,
    /// A decision is being written: no second one.
    pub(super) deciding: bool,
}

/// Failures that count against a component: the engine's kinds (traps,
/// timeouts, lost heartbeats, limits, retryable and fatal answers,
/// nonsense) — not the typed errors its manifest declares, which are
/// answers about the work. A `pending` answer counts when its step is
/// completed, not here: the canary is judged on attempts it finished.
pub fn counts_against(kind: &str) -> bool {
    (weft_model::process::is_engine_error_kind(kind) && kind != "mapping") || kind == "heartbeat"
}

fn rate(window: &VecDeque<bool>) -> f64 {
    if window.is_empty() {
        return 0.0;
    }
    window.iter().filter(|f| **f).count() as f64 * 100.0 / window.len() as f64
}

impl Trial {
    pub(super) fn new(policy: CanaryPolicy) -> Trial {
        Trial {
            policy,
            live: VecDeque::new(),
            trial: VecDeque::new(),
            trial_ok: 0,
            tally: Tally {
                trial_attempts: 0,
                trial_failures: 0,
                live_attempts: 0,
                live_failures: 0,
            },
            deciding: false,
        }
    }

    pub(super) fn record(&mut self, trial: bool, failed: bool) {
        let window = self.policy.window as usize;
        let (side, attempts, failures) = if trial {
            (
                &mut self.trial,
                &mut self.tally.trial_attempts,
                &mut self.tally.trial_failures,
            )
        } else {
            (
                &mut self.live,
                &mut self.tally.live_attempts,
                &mut self.tally.live_failures,
            )
        };
        side.push_back(failed);
        while side.len() > window {
            side.pop_front();
        }
        *attempts += 1;
        *failures += u64::from(failed);
        if trial && !failed {
            self.trial_ok += 1;
        }
    }

    /// Promote (`true`) or roll back (`false`), and why — once. Never
    /// promoted before it has made `min_calls` attempts: the least it is
    /// judged on.
    pub(super) fn decide(&mut self) -> Option<(bool, String)> {
        if self.deciding {
            return None;
        }
        let p = self.policy;
        let (tr, lr) = (rate(&self.trial), rate(&self.live));
        let figures = format!(
            "failure rate {tr:.1}% over its last {} attempts against {lr:.1}% over the live component's last {}",
            self.trial.len(),
            self.live.len()
        );
        let decision =
            if self.trial.len() >= p.min_calls as usize && tr - lr > f64::from(p.threshold) {
                Some((
                    false,
                    format!("{figures}: more than {} points worse", p.threshold),
                ))
            } else if self.trial_ok >= u64::from(p.promote_after)
                && self.tally.trial_attempts >= u64::from(p.min_calls)
            {
                Some((
                    true,
                    format!("{} successful attempts; {figures}", self.trial_ok),
                ))
            } else {
                None
            };
        self.deciding = decision.is_some();
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CanaryPolicy {
        CanaryPolicy {
            percent: 10,
            promote_after: 30,
            threshold: 10,
            window: 50,
            min_calls: 20,
        }
    }

    #[test]
    fn a_canary_failing_more_than_the_threshold_is_rolled_back_once() {
        let mut t = Trial::new(policy());
        for _ in 0..200 {
            t.record(false, false);
        }
        // 3 in 10 fail: no decision before min_calls attempts.
        for i in 0..19 {
            t.record(true, i % 10 < 3);
            assert_eq!(t.decide(), None, "after {} attempts", i + 1);
        }
        t.record(true, false);
        let (promote, why) = t.decide().expect("a decision at 20 attempts");
        assert!(!promote);
        assert!(why.contains("30.0% over its last 20 attempts"), "{why}");
        assert!(why.contains("more than 10 points worse"), "{why}");
        t.record(true, true);
        assert_eq!(t.decide(), None, "decided once");
    }

    #[test]
    fn a_healthy_canary_is_promoted_after_its_successes() {
        let mut t = Trial::new(policy());
        for i in 0..100 {
            // The live component fails now and then; the trial as often.
            t.record(false, i % 20 == 0);
        }
        for i in 0..29 {
            t.record(true, false);
            assert_eq!(t.decide(), None, "after {} successes", i + 1);
        }
        t.record(true, false);
        let (promote, why) = t.decide().expect("promoted");
        assert!(promote);
        assert!(why.starts_with("30 successful attempts"), "{why}");
        assert_eq!(t.tally.trial_attempts, 30);
        assert_eq!(t.tally.live_failures, 5);
    }

    #[test]
    fn typed_errors_do_not_count_against_a_component() {
        for k in [
            "retryable",
            "trap",
            "timeout",
            "heartbeat",
            "limit",
            "out_of_fuel",
            "fatal",
            "adapter",
        ] {
            assert!(counts_against(k), "{k}");
        }
        for k in ["card_declined", "http_404", "mapping"] {
            assert!(!counts_against(k), "{k}");
        }
    }
}
