//! Static guarantees: what `weft validate` can tell about a valid process
//! before it runs, as warnings at `file:line:col` (`--strict` makes them
//! errors). Each check lives in its own file:
//!
//! - [`compensation`]: every path that ends in failure after a compensable
//!   step completed passes through a compensate state first;
//! - [`duration`]: the longest a state and the whole process can take, from
//!   retry policies, timeouts and waits, against their `sla`;
//! - [`storms`]: attempts that multiply — retries whose failure loops back,
//!   a map's concurrency against its action's rate limit;
//! - here: waits that can last for ever, and typed errors an adapter
//!   declares that no transition routes.
//!
//! The analysis reads the validated [`Process`]; it never runs it.

pub mod compensation;
pub mod duration;
pub mod storms;

use crate::bindings::ActionDefaults;
use crate::process::{Process, StateKind};
use crate::source::{Diagnostic, Document, pointer};

/// What the analysis needs beyond the process: the bindings' defaults, and
/// the error kinds each action's adapter declares (when plugins are known).
pub struct Context<'a> {
    pub defaults: &'a dyn ActionDefaults,
    /// The bindings, when known: their rate limits.
    pub bindings: Option<&'a crate::bindings::Bindings>,
    pub declared_errors: &'a dyn Fn(&str) -> Option<Vec<String>>,
}

/// Every warning about a valid process, in file order.
pub fn check(doc: &Document, process: &Process, cx: &Context<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    out.extend(compensation::check(doc, process));
    out.extend(duration::check(doc, process, cx.defaults));
    out.extend(storms::check(doc, process, cx.bindings));
    out.extend(waits_for_ever(doc, process));
    out.extend(unrouted_errors(doc, process, cx));
    out.sort_by_key(|d| d.pos.map(|p| (p.line, p.col)));
    out
}

/// A wait for signals with no timer and no sla: an instance can wait there
/// for ever, and nobody would be told.
fn waits_for_ever(doc: &Document, process: &Process) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, state) in &process.states {
        if let StateKind::Wait(w) = &state.kind
            && w.timeout.is_none()
            && w.timer.is_none()
            && state.sla.is_none()
            && process.sla.is_none()
        {
            let at = format!("{}{}", process.base, pointer(["states", name]));
            out.push(
                doc.key_diag(
                    &at,
                    format!(
                        "warning: '{name}' waits for {} with no timeout and no sla: an instance can wait here for ever unnoticed",
                        w.events.join(" or ")
                    ),
                )
                .hint("add `timeout:` (and route `timeout`), or an `sla:` to have it flagged"),
            );
        }
    }
    out
}

/// A typed error the adapter declares for an action that no transition of
/// the state routes (and no catch-all `error`): the instance would park.
fn unrouted_errors(doc: &Document, process: &Process, cx: &Context<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (machine, state) in process.walk() {
        let StateKind::Task(task) = &state.kind else {
            continue;
        };
        let Some(kinds) = (cx.declared_errors)(&task.action) else {
            continue;
        };
        for kind in kinds {
            if state.route(&format!("error.{kind}")).is_none() {
                let at = format!("{}{}", machine.base, pointer(["states", &state.name]));
                out.push(
                    doc.key_diag(
                        &at,
                        format!(
                            "warning: '{}' can fail with '{kind}' (its adapter declares it for '{}'), and no transition routes it: the instance would park",
                            state.name, task.action
                        ),
                    )
                    .hint(format!("add `error.{kind}: <state>` or a catch-all `error: <state>`")),
                );
            }
        }
    }
    out
}

/// What can happen at a state, for `weft validate --explain`: its events
/// and where they lead, how long one visit can take, and the longest path
/// from it to an end.
pub fn explain(process: &Process, name: &str, defaults: &dyn ActionDefaults) -> Option<String> {
    use std::fmt::Write as _;
    let s = process.state(name)?;
    let mut out = String::new();
    let kind = match &s.kind {
        StateKind::Task(t) => format!("task: runs '{}'", t.action),
        StateKind::Succeed { .. } => "succeed: ends the instance".to_owned(),
        StateKind::Fail { .. } => "fail: ends the instance failed".to_owned(),
        StateKind::Compensate { then } => {
            format!("compensate: undoes every completed step, then goes to '{then}'")
        }
        StateKind::Wait(w) => format!(
            "wait: for {}",
            if w.events.is_empty() {
                "its timer".to_owned()
            } else {
                w.events.join(", ")
            }
        ),
        StateKind::Parallel(p) => format!(
            "parallel: branches {}",
            p.branches
                .iter()
                .map(|(b, _)| b.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StateKind::Map(m) => format!("map: a branch per item, {} at a time", m.max_concurrency),
    };
    let _ = writeln!(out, "{name} ({kind})");
    for t in &s.on {
        for a in &t.arms {
            let guard = if a.guard.is_some() { " (guarded)" } else { "" };
            let _ = writeln!(out, "  on {} -> {}{guard}", t.event, a.to);
        }
    }
    if let StateKind::Compensate { then } = &s.kind {
        let _ = writeln!(out, "  then -> {then}");
    }
    if let StateKind::Task(t) = &s.kind {
        let policy = t.retry.as_ref().or_else(|| defaults.retry(&t.action));
        let attempts = policy.map_or(1, |p| p.max_attempts);
        let timeout = t
            .timeout
            .or_else(|| defaults.timeout(&t.action))
            .unwrap_or(crate::bindings::DEFAULT_TIMEOUT);
        let _ = writeln!(
            out,
            "  attempts: up to {attempts}, each up to {timeout}{}",
            t.deadline
                .map(|d| format!(", {d} in all"))
                .unwrap_or_default()
        );
        if let Some(c) = &t.compensate {
            let _ = writeln!(out, "  undone by: {}", c.action);
        }
    }
    let _ = writeln!(
        out,
        "  one visit takes at most: {}",
        duration::state(process, process, name, defaults)
    );
    let (worst, path) = duration::path(process, process, name, defaults);
    let _ = writeln!(
        out,
        "  from here to the end: at most {worst}, by {}",
        path.join(" → ")
    );
    if let Some(sla) = s.sla {
        let _ = writeln!(out, "  sla: {sla}");
    }
    Some(out)
}
