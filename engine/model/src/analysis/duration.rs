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
/// Iterative (a process may chain hundreds of thousands of states), with
/// each state's answer kept once computed.
pub fn path(
    machine: &Process,
    root: &Process,
    from: &str,
    defaults: &dyn ActionDefaults,
) -> (Worst, Vec<String>) {
    /// The best way on from a state found so far: its worst, and the next
    /// state on it.
    type Way = (Worst, String);
    fn better(current: &Option<Way>, candidate: &Worst) -> bool {
        match (current, candidate) {
            (None, _) => true,
            (Some((Worst::Bounded(a), _)), Worst::Bounded(b)) => b > a,
            (Some((Worst::Bounded(_), _)), Worst::Unbounded(_)) => true,
            (Some((Worst::Unbounded(_), _)), _) => false,
        }
    }
    let targets = |at: &str| -> Vec<String> {
        let mut t: Vec<String> = machine
            .state(at)
            .map(|s| s.targets().map(str::to_owned).collect())
            .unwrap_or_default();
        t.dedup();
        t
    };
    // Per state: its worst to an end and the next state on that path.
    let mut done: HashMap<String, (Worst, Option<String>)> = HashMap::new();
    let mut ways: HashMap<String, Option<Way>> = HashMap::new();
    // The states being explored, in order, each with its targets and how
    // many of them have been looked at.
    let mut stack: Vec<(String, Vec<String>, usize)> = vec![(from.to_owned(), targets(from), 0)];
    // Where each state on the stack is, to find a loop without a scan.
    let mut on_stack: HashMap<String, usize> = HashMap::from([(from.to_owned(), 0)]);
    ways.insert(from.to_owned(), None);
    while let Some(top) = stack.last_mut() {
        let step = (top.2 < top.1.len()).then(|| {
            let t = top.1[top.2].clone();
            top.2 += 1;
            (top.0.clone(), t)
        });
        if let Some((at, t)) = step {
            let candidate = if let Some((w, _)) = done.get(&t) {
                Some(w.clone())
            } else if let Some(&pos) = on_stack.get(&t) {
                let mut cycle: Vec<String> =
                    stack[pos..].iter().map(|(s, _, _)| s.clone()).collect();
                cycle.push(t.clone());
                Some(Worst::Unbounded(format!(
                    "it can loop: {}",
                    cycle.join(" → ")
                )))
            } else {
                let next = targets(&t);
                ways.insert(t.clone(), None);
                on_stack.insert(t.clone(), stack.len());
                stack.push((t.clone(), next, 0));
                None
            };
            if let Some(w) = candidate {
                let way = ways.entry(at).or_insert(None);
                if better(way, &w) {
                    *way = Some((w, t));
                }
            }
            continue;
        }
        let Some((at, _, _)) = stack.pop() else { break };
        on_stack.remove(&at);
        let own = state(machine, root, &at, defaults);
        let result = match ways.remove(&at).flatten() {
            None => (own, None),
            Some((w, next)) => (own.plus(w), Some(next)),
        };
        let worst = result.0.clone();
        done.insert(at.clone(), result);
        if let Some((parent, _, _)) = stack.last() {
            let way = ways.entry(parent.clone()).or_insert(None);
            if better(way, &worst) {
                *way = Some((worst, at));
            }
        }
    }
    let worst = done
        .get(from)
        .map_or(Worst::Bounded(Span(0)), |(w, _)| w.clone());
    let mut trail = vec![from.to_owned()];
    let mut seen: std::collections::HashSet<String> =
        std::collections::HashSet::from([from.to_owned()]);
    let mut at = from.to_owned();
    while let Some((_, Some(next))) = done.get(&at) {
        trail.push(next.clone());
        if !seen.insert(next.clone()) {
            break;
        }
        at = next.clone();
    }
    (worst, trail)
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
