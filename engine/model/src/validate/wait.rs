//! Wait states: signals, timers and timeouts, and the events each makes
//! possible.

use super::fields::{duration, expr};
use super::valid_name;
use crate::def::StateDef;
use crate::expr::{Expr, PathExpr};
use crate::process::{StateKind, Transition, Wait, WaitTimer};
use crate::source::{Diagnostics, Document, pointer_segment};

/// A wait state: its signals are the events of `on` that are not timer or
/// error events; each timer event needs its timer, and the reverse.
pub(super) fn wait_state(
    doc: &Document,
    at: &str,
    name: &str,
    raw: &StateDef,
    on: &[Transition],
    diags: &mut Diagnostics,
) -> StateKind {
    let timeout = duration(doc, &format!("{at}/timeout"), raw.timeout.as_deref(), diags);
    let timer = raw.wait.as_ref().and_then(|w| {
        let wat = format!("{at}/wait");
        match (&w.for_, &w.until) {
            (Some(d), None) => {
                duration(doc, &format!("{wat}/for"), Some(d), diags).map(WaitTimer::For)
            }
            (None, Some(src)) => {
                expr(doc, &format!("{wat}/until"), src, Expr::compile, diags).map(WaitTimer::Until)
            }
            _ => {
                diags.push(
                    doc.key_diag(&wat, "a wait timer needs exactly one of `for` and `until`")
                        .hint("write `wait: { for: 10m }` or `wait: { until: .due_at }`"),
                );
                None
            }
        }
    });
    if raw.timeout.is_some() && raw.wait.is_some() {
        diags.push(
            doc.key_diag(&format!("{at}/timeout"), "a wait state has either `timeout` or `wait`, not both")
                .hint("`timeout` bounds a wait for signals (→ `timeout`); `wait` is a timer (→ `elapsed`)"),
        );
    }
    let until = matches!(raw.wait.as_ref(), Some(w) if w.until.is_some());
    let mut events = Vec::new();
    for t in on {
        let ev_at = format!("{at}/on/{}", pointer_segment(&t.event));
        let never = match t.event.as_str() {
            "timeout" => raw.timeout.is_none().then_some("it has no `timeout`"),
            "elapsed" => raw.wait.is_none().then_some("it has no `wait` timer"),
            e if e == "error" || e.starts_with("error.") => (!until
                || !matches!(e, "error" | "error.mapping"))
            .then_some("only a `wait: { until: <jq> }` can fail, with `error.mapping`"),
            e if !valid_name(e) => Some("signal names use letters, digits, '-', '_' and '.'"),
            e => {
                events.push(e.to_owned());
                None
            }
        };
        if let Some(why) = never {
            diags.push(
                doc.key_diag(
                    &ev_at,
                    format!("wait state '{name}' never receives the event '{}'", t.event),
                )
                .hint(why),
            );
        }
    }
    for (event, set, field) in [
        ("timeout", raw.timeout.is_some(), "timeout"),
        ("elapsed", raw.wait.is_some(), "wait"),
    ] {
        if set && !on.iter().any(|t| t.event == event) {
            diags.push(
                doc.key_diag(
                    &format!("{at}/{field}"),
                    format!("wait state '{name}' has a `{field}` but nowhere to go on '{event}'"),
                )
                .hint(format!("add `on: {{ {event}: <state> }}`")),
            );
        }
    }
    // Signals address an instance, and reach its top-level wait state only.
    let in_branch = at.contains("/branches/") || at.contains("/branch/");
    if in_branch && !events.is_empty() {
        diags.push(
            doc.key_diag(
                &format!("{at}/on"),
                format!(
                    "wait state '{name}' is inside a branch, where signals never arrive (it waits for: {})",
                    events.join(", ")
                ),
            )
            .hint("inside a branch, wait on a timer (`wait: { for | until }`); wait for signals before or after the parallel or map state"),
        );
    }
    if events.is_empty() && raw.timeout.is_none() && raw.wait.is_none() {
        diags.push(
            doc.key_diag(at, format!("wait state '{name}' waits for nothing"))
                .hint("name the signals it accepts under `on:`, or give it a `wait: { for: <duration> }`"),
        );
    }
    StateKind::Wait(Box::new(Wait {
        events,
        timeout,
        timer,
        output: raw
            .output
            .as_deref()
            .and_then(|src| expr(doc, &format!("{at}/output"), src, PathExpr::compile, diags)),
    }))
}
