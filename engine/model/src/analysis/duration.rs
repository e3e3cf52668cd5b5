//! Worst-case durations: the longest one visit of a state can take (from
//! its retry policy, per-attempt timeouts, backoffs and deadline, a wait's
//! timer, a fan's branches), and the longest path from a state to an end.
//! Compared with the process's and states' `sla`. A wait for a signal with
//! no timeout, a time the data gives, a loop, or a map over data have no
//! bound, and the reason says which.

use std::collections::HashMap;

use serde_json::Value;

use crate::bindings::{ActionDefaults, DEFAULT_TIMEOUT};
use crate::process::{Process, StateKind, Task, WaitTimer};
use crate::retry::RetryPolicy;
use crate::source::{Diagnostic, Document, pointer};
use crate::time::Span;

/// A longest time, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Worst {
    Bounded(Span),
    Unbounded(String),
}

impl Worst {
    fn plus(self, other: Worst) -> Worst {
        match (self, other) {
            (Worst::Bounded(a), Worst::Bounded(b)) => Worst::Bounded(Span(a.0.saturating_add(b.0))),
            (Worst::Unbounded(w), _) | (_, Worst::Unbounded(w)) => Worst::Unbounded(w),
        }
    }

    fn max(self, other: Worst) -> Worst {
        match (self, other) {
            (Worst::Bounded(a), Worst::Bounded(b)) => Worst::Bounded(a.max(b)),
            (Worst::Unbounded(w), _) | (_, Worst::Unbounded(w)) => Worst::Unbounded(w),
        }
    }

    fn times(self, n: u64) -> Worst {
        match self {
            Worst::Bounded(a) => Worst::Bounded(Span(a.0.saturating_mul(n))),
            u => u,
        }
    }
}

impl std::fmt::Display for Worst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Worst::Bounded(s) => write!(f, "{s}"),
            Worst::Unbounded(why) => write!(f, "unbounded ({why})"),
        }
    }
}

/// The longest a step with this policy can take: every attempt running to
/// its timeout, every backoff at its longest (full jitter included), cut
/// by the deadline.
pub fn step(policy: &RetryPolicy, timeout: Span, deadline: Option<Span>) -> Span {
    let attempts = u64::from(policy.max_attempts.max(1));
    let mut total = timeout.0.saturating_mul(attempts);
    for failed in 1..policy.max_attempts {
        let exp = f64::from(failed.saturating_sub(1)).min(1_000.0);
        let raw = policy.initial.as_millis() as f64 * policy.factor.powf(exp);
        total = total.saturating_add(raw.min(policy.max_delay.as_millis() as f64).max(0.0) as u64);
    }
    match deadline {
        Some(d) => Span(total.min(d.0)),
        None => Span(total),
    }
}

fn task(t: &Task, defaults: &dyn ActionDefaults) -> Span {
    let policy = t
        .retry
        .as_ref()
        .or_else(|| defaults.retry(&t.action))
        .cloned()
        .unwrap_or_default();
    let timeout = t
        .timeout
        .or_else(|| defaults.timeout(&t.action))
        .unwrap_or(DEFAULT_TIMEOUT);
    step(&policy, timeout, t.deadline)
}

/// The longest undoing every compensable step of `machine` can take.
fn undo_all(machine: &Process, defaults: &dyn ActionDefaults) -> Span {
    let mut total = 0u64;
    for (_, s) in machine.walk() {
        if let StateKind::Task(t) = &s.kind
            && let Some(c) = &t.compensate
        {
            let policy = c
                .retry
                .as_ref()
                .or_else(|| defaults.retry(&c.action))
                .cloned()
                .unwrap_or_default();
            let timeout = defaults.timeout(&c.action).unwrap_or(DEFAULT_TIMEOUT);
            total = total.saturating_add(step(&policy, timeout, None).0);
        }
    }
    Span(total)
}

/// The longest one visit of `name` can take, not counting what follows.
pub fn state(
    machine: &Process,
    root: &Process,
    name: &str,
    defaults: &dyn ActionDefaults,
) -> Worst {
    let Some(s) = machine.state(name) else {
        return Worst::Bounded(Span(0));
    };
    match &s.kind {
        StateKind::Task(t) => Worst::Bounded(task(t, defaults)),
        StateKind::Succeed { .. } | StateKind::Fail { .. } => Worst::Bounded(Span(0)),
        StateKind::Compensate { .. } => Worst::Bounded(undo_all(root, defaults)),
        StateKind::Wait(w) => match (&w.timer, w.timeout) {
            (Some(WaitTimer::For(d)), _) => Worst::Bounded(*d),
            (Some(WaitTimer::Until(_)), _) => {
                Worst::Unbounded(format!("'{name}' waits until a time its data gives"))
            }
            (None, Some(t)) => Worst::Bounded(t),
            (None, None) => Worst::Unbounded(format!(
                "'{name}' waits for {} with no timeout",
                w.events.join(" or ")
            )),
        },
        StateKind::Parallel(p) => p
            .branches
            .iter()
            .map(|(_, b)| path(b, root, &b.start, defaults).0)
            .fold(Worst::Bounded(Span(0)), Worst::max),
        StateKind::Map(m) => {
            let each = path(&m.branch, root, &m.branch.start, defaults).0;
            match m.items.eval(&Value::Null) {
                Ok(Value::Array(items)) => {
                    let waves = items.len().div_ceil(m.max_concurrency.max(1)) as u64;
                    each.times(waves)
                }
                _ => Worst::Unbounded(format!(
                    "'{name}' runs a branch per item of its data (each up to {each}, {} at a time)",
                    m.max_concurrency
                )),
            }
        }
    }
}

/// The longest path from `from` to an end of `machine`, and its states.
pub fn path(
    machine: &Process,
    root: &Process,
    from: &str,
    defaults: &dyn ActionDefaults,
) -> (Worst, Vec<String>) {
    let mut memo = HashMap::new();
    let mut stack = Vec::new();
    longest(machine, root, from, defaults, &mut memo, &mut stack)
}

fn longest(
    machine: &Process,
    root: &Process,
    at: &str,
    defaults: &dyn ActionDefaults,
    memo: &mut HashMap<String, (Worst, Vec<String>)>,
    stack: &mut Vec<String>,
) -> (Worst, Vec<String>) {
    if let Some(done) = memo.get(at) {
        return done.clone();
    }
    if let Some(i) = stack.iter().position(|s| s == at) {
        let mut cycle = stack[i..].to_vec();
        cycle.push(at.to_owned());
        return (
            Worst::Unbounded(format!("it can loop: {}", cycle.join(" → "))),
            vec![at.to_owned()],
        );
    }
    let own = state(machine, root, at, defaults);
    let Some(s) = machine.state(at) else {
        return (own, vec![at.to_owned()]);
    };
    let mut targets: Vec<&str> = s.targets().collect();
    targets.dedup();
    stack.push(at.to_owned());
    let mut best: Option<(Worst, Vec<String>)> = None;
    for t in targets {
        let (w, p) = longest(machine, root, t, defaults, memo, stack);
        let better = match (&best, &w) {
            (None, _) => true,
            (Some((Worst::Bounded(a), _)), Worst::Bounded(b)) => b > a,
            (Some((Worst::Bounded(_), _)), Worst::Unbounded(_)) => true,
            (Some((Worst::Unbounded(_), _)), _) => false,
        };
        if better {
            best = Some((w, p));
        }
    }
    stack.pop();
    let result = match best {
        None => (own, vec![at.to_owned()]),
        Some((w, p)) => {
            let mut full = vec![at.to_owned()];
            full.extend(p);
            (own.plus(w), full)
        }
    };
    memo.insert(at.to_owned(), result.clone());
    result
}

pub fn check(doc: &Document, process: &Process, defaults: &dyn ActionDefaults) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(sla) = process.sla {
        match path(process, process, &process.start, defaults) {
            (Worst::Bounded(d), p) if d > sla => out.push(
                doc.diag(
                    "/sla",
                    format!(
                        "warning: the path {} can take {d}, over the process sla of {sla}",
                        p.join(" → ")
                    ),
                )
                .hint("shorten timeouts or retries on that path, or raise the sla"),
            ),
            // An sla over something unbounded is what it is for: to be told
            // when it runs long. `weft validate --explain` shows why.
            _ => {}
        }
    }
    for (name, s) in &process.states {
        let Some(sla) = s.sla else { continue };
        let at = pointer(["states", name, "sla"]);
        match state(process, process, name, defaults) {
            Worst::Bounded(d) if d > sla => out.push(
                doc.diag(
                    &at,
                    format!("warning: '{name}' can take {d}, over its sla of {sla}"),
                )
                .hint("its retries and timeouts allow more than the sla"),
            ),
            _ => {}
        }
    }
    out
}
