//! Protection of the tool behind a binding, enforced by the engine: a rate
//! limit (token bucket), a cap on invocations at once, and a circuit breaker.
//! A step waiting here has not started an attempt, so waiting never burns
//! attempts; each binding has its own guard, so waiting never blocks other
//! bindings.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use weft_model::{Limits, Millis, Span};

use crate::Clock;

/// Failure kinds that count against a tool's health. A domain error
/// (`card_declined`) or `fatal` is the tool working as meant.
const TOOL_FAILURES: &[&str] = &[
    "retryable",
    "timeout",
    "trap",
    "heartbeat",
    "out_of_memory",
    "output_too_large",
    "limit",
    "adapter",
];

pub fn counts_against_tool(kind: &str) -> bool {
    TOOL_FAILURES.contains(&kind)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Millis,
    },
    /// One trial call is out; everyone else waits for its verdict.
    HalfOpen,
}

pub struct Guard {
    limits: Limits,
    slots: Option<Arc<Semaphore>>,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    /// GCRA: the theoretical arrival time of the next call.
    tat: Millis,
    breaker: BreakerState,
}

/// Held while an invocation runs; tells the guard how it went.
pub struct Pass {
    guard: Arc<Guard>,
    _slot: Option<OwnedSemaphorePermit>,
    trial: bool,
    settled: bool,
}

impl Guard {
    pub fn new(limits: Limits) -> Arc<Guard> {
        Arc::new(Guard {
            slots: limits
                .concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            limits,
            state: Mutex::new(State {
                tat: Millis(0),
                breaker: BreakerState::Closed { failures: 0 },
            }),
            changed: Notify::new(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn breaker(&self) -> BreakerState {
        self.lock().breaker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the tool may be called: breaker closed (or this is the
    /// half-open trial), a rate slot reached, a concurrency slot free.
    pub async fn enter(self: &Arc<Self>, clock: &dyn Clock) -> Pass {
        let trial = self.wait_breaker(clock).await;
        if let Some(rate) = self.limits.rate {
            let at = {
                let mut s = self.lock();
                let now = clock.now();
                let interval = rate.interval();
                let slack = Span(interval.as_millis() * u64::from(rate.burst.saturating_sub(1)));
                let earliest = Millis(s.tat.0.saturating_sub(slack.as_millis()));
                let at = now.max(earliest);
                s.tat = s.tat.max(at).plus(interval);
                at
            };
            if at > clock.now() {
                clock.sleep_until(at).await;
            }
        }
        let slot = match &self.slots {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        Pass {
            guard: self.clone(),
            _slot: slot,
            trial,
            settled: false,
        }
    }

    /// Returns whether this caller is the half-open trial.
    async fn wait_breaker(&self, clock: &dyn Clock) -> bool {
        if self.limits.breaker.is_none() {
            return false;
        }
        loop {
            let notified = self.changed.notified();
            let wait = {
                let mut s = self.lock();
                match s.breaker {
                    BreakerState::Closed { .. } => return false,
                    BreakerState::Open { until } if clock.now() >= until => {
                        s.breaker = BreakerState::HalfOpen;
                        return true;
                    }
                    BreakerState::Open { until } => Some(until),
                    BreakerState::HalfOpen => None,
                }
            };
            match wait {
                Some(until) => {
                    tokio::select! {
                        () = clock.sleep_until(until) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn settle(&self, tool_failed: bool, trial: bool, now: Millis) {
        let Some(policy) = self.limits.breaker else {
            return;
        };
        let mut s = self.lock();
        s.breaker = match (s.breaker, tool_failed) {
            (_, false) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, true) if failures + 1 < policy.failures => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            (BreakerState::HalfOpen, true) if !trial => BreakerState::HalfOpen,
            (_, true) => BreakerState::Open {
                until: now.plus(policy.cool_down),
            },
        };
        drop(s);
        self.changed.notify_waiters();
    }
}

impl Pass {
    /// Records how the call went (`None`: it did not happen, e.g. it was
    /// cancelled), for the circuit breaker.
    pub fn finish(mut self, failure_kind: Option<Option<&str>>, now: Millis) {
        self.settled = true;
        match failure_kind {
            Some(kind) => {
                let failed = kind.is_some_and(counts_against_tool);
                self.guard.settle(failed, self.trial, now);
            }
            None => self.release_trial(),
        }
    }

    fn release_trial(&self) {
        if self.trial {
            let mut s = self.guard.lock();
            if s.breaker == BreakerState::HalfOpen {
                // The trial never reported: let the next caller try.
                s.breaker = BreakerState::Open { until: Millis(0) };
            }
            drop(s);
            self.guard.changed.notify_waiters();
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if !self.settled {
            self.release_trial();
        }
    }
}
