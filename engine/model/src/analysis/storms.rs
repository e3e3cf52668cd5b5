//! Retry storms: attempts that multiply. A step that retries and whose
//! final failure leads back to itself multiplies its retry policy by every
//! round of the loop, without bound. A map that starts many branches at
//! once multiplies a step's attempts by its concurrency: against the
//! action's rate limit, they wait in line.

use std::collections::{HashSet, VecDeque};

use crate::bindings::{ActionDefaults, Bindings};
use crate::process::{Process, StateKind};
use crate::source::{Diagnostic, Document, pointer};

fn attempts(process_task: &crate::process::Task, defaults: &dyn ActionDefaults) -> u32 {
    process_task
        .retry
        .as_ref()
        .or_else(|| defaults.retry(&process_task.action))
        .map_or(1, |p| p.max_attempts.max(1))
}

/// A path from `from`, leaving on `event`, back to `to`, if any (states
/// only, in order).
fn back_to(machine: &Process, from: &str, first: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([(first.to_owned(), vec![from.to_owned(), first.to_owned()])]);
    while let Some((at, path)) = queue.pop_front() {
        if at == to {
            return Some(path);
        }
        if !seen.insert(at.clone()) {
            continue;
        }
        let Some(s) = machine.state(&at) else {
            continue;
        };
        for t in s.targets() {
            let mut p = path.clone();
            p.push(t.to_owned());
            queue.push_back((t.to_owned(), p));
        }
    }
    None
}

pub fn check(doc: &Document, process: &Process, bindings: Option<&Bindings>) -> Vec<Diagnostic> {
    let defaults: &dyn ActionDefaults = match bindings {
        Some(b) => b,
        None => &crate::bindings::NoDefaults,
    };
    let mut out = Vec::new();
    for (machine, state) in process.walk() {
        match &state.kind {
            StateKind::Task(t) => {
                let n = attempts(t, defaults);
                if n < 2 {
                    continue;
                }
                for tr in state.on.iter().filter(|tr| tr.event.starts_with("error")) {
                    for arm in &tr.arms {
                        let Some(path) = back_to(machine, &state.name, &arm.to, &state.name) else {
                            continue;
                        };
                        let at = format!(
                            "{}{}",
                            machine.base,
                            pointer(["states", &state.name, "on", &tr.event])
                        );
                        out.push(
                            doc.diag(
                                &at,
                                format!(
                                    "warning: '{}' retries up to {n} times, and its failure leads back to it ({}): attempts of '{}' multiply with every round, without bound",
                                    state.name,
                                    path.join(" → "),
                                    t.action
                                ),
                            )
                            .hint("route the final failure elsewhere, or count the rounds in the data and stop"),
                        );
                    }
                }
            }
            StateKind::Map(m) => {
                let Some(b) = bindings else { continue };
                for (_, inner) in m.branch.walk() {
                    let StateKind::Task(t) = &inner.kind else {
                        continue;
                    };
                    let Some(rate) = b
                        .actions
                        .get(&t.action)
                        .and_then(|x| x.limits.rate.as_ref())
                    else {
                        continue;
                    };
                    let at_once = m.max_concurrency as u64;
                    if at_once <= u64::from(rate.burst) {
                        continue;
                    }
                    let at = format!("{}{}", machine.base, pointer(["states", &state.name]));
                    out.push(
                        doc.key_diag(
                            &at,
                            format!(
                                "warning: '{}' starts up to {at_once} branches at once, each invoking '{}' (up to {} attempts), over its rate limit of {} per {} (burst {}): they wait in line for the limiter",
                                state.name,
                                t.action,
                                attempts(t, defaults),
                                rate.count,
                                rate.per,
                                rate.burst
                            ),
                        )
                        .hint("lower max_concurrency to the burst, or raise the binding's rate limit"),
                    );
                }
            }
            _ => {}
        }
    }
    out
}
