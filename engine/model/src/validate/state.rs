//! One state: which fields its type takes, its kind-specific checks, and its
//! transitions and their targets.

use super::fan::{map_state, parallel_state};
use super::fields::{duration, expr};
use super::raw::last;
use super::task::{compensation, retry_policy};
use super::wait::wait_state;
use super::{Names, suggest, valid_name};
use crate::def::{StateDef, StateType, TargetDef};
use crate::expr::{Expr, PathExpr};
use crate::process::{Arm, State, StateKind, Task, Transition};
use crate::source::{Diagnostics, Document, pointer_segment};
use crate::time::Span;

pub(super) fn state(
    doc: &Document,
    at: &str,
    name: &str,
    raw: &StateDef,
    names: &Names<'_>,
    diags: &mut Diagnostics,
) -> Option<State> {
    let at = at.to_owned();
    let before = diags.len();
    let kind = match (raw.kind, &raw.action) {
        (Some(k), _) => k,
        (None, Some(_)) => StateType::Task,
        (None, None) => {
            diags.push(
                doc.key_diag(&at, format!("state '{name}' has no `type` and no `action`"))
                    .hint("add `action: <name>` for a task, or `type: succeed` / `type: fail`"),
            );
            return None;
        }
    };

    // Fields that make no sense for this type of state.
    let present: [(&str, bool); 19] = [
        ("action", raw.action.is_some()),
        ("input", raw.input.is_some()),
        ("output", raw.output.is_some()),
        ("on", raw.on.is_some()),
        ("error", raw.error.is_some()),
        ("cause", raw.cause.is_some()),
        ("retry", raw.retry.is_some()),
        ("timeout", raw.timeout.is_some()),
        ("deadline", raw.deadline.is_some()),
        ("heartbeat", raw.heartbeat.is_some()),
        ("compensate", raw.compensate.is_some()),
        ("then", raw.then.is_some()),
        ("wait", raw.wait.is_some()),
        ("branches", raw.branches.is_some()),
        ("items", raw.items.is_some()),
        ("branch", raw.branch.is_some()),
        ("max_concurrency", raw.max_concurrency.is_some()),
        ("tolerated_failures", raw.tolerated_failures.is_some()),
        ("sla", raw.sla.is_some()),
    ];
    let allowed: &[&str] = match kind {
        StateType::Task => &[
            "action",
            "input",
            "output",
            "on",
            "retry",
            "timeout",
            "deadline",
            "heartbeat",
            "compensate",
            "sla",
        ],
        StateType::Succeed => &["output"],
        StateType::Fail => &["error", "cause"],
        StateType::Compensate => &["then", "sla"],
        StateType::Wait => &["on", "timeout", "wait", "output", "sla"],
        StateType::Parallel => &["on", "branches", "output", "sla"],
        StateType::Map => &[
            "on",
            "items",
            "branch",
            "max_concurrency",
            "tolerated_failures",
            "output",
            "sla",
        ],
    };
    for (field, is_set) in present {
        if is_set && !allowed.contains(&field) {
            let why = match (field, kind) {
                ("sla", _) => {
                    format!("a {kind} state ends the instance at once: an sla has no meaning here")
                }
                ("on", StateType::Compensate) => {
                    "a compensate state moves on with `then`, not `on`".to_owned()
                }
                ("on", _) => format!("a {kind} state ends the instance, so it has no transitions"),
                _ => format!("'{field}' is not used by a {kind} state"),
            };
            diags.push(
                doc.key_diag(&format!("{at}/{field}"), why)
                    .hint(format!("a {kind} state takes: {}", allowed.join(", "))),
            );
        }
    }

    let on = transitions(doc, &at, raw, names, diags);
    let sla = state_sla(doc, &at, raw, diags);
    let kind =
        match kind {
            StateType::Task => {
                let action = raw.action.clone().unwrap_or_default();
                if raw.action.is_none() {
                    diags.push(
                        doc.key_diag(&at, format!("task state '{name}' has no `action`"))
                            .hint("add `action: <domain action>`"),
                    );
                } else if !valid_name(&action) {
                    diags.push(doc.diag(
                        &format!("{at}/action"),
                        format!("'{action}' is not a valid action name"),
                    ));
                }
                let input = raw
                    .input
                    .as_deref()
                    .and_then(|src| expr(doc, &format!("{at}/input"), src, Expr::compile, diags));
                let output = raw.output.as_deref().and_then(|src| {
                    expr(doc, &format!("{at}/output"), src, PathExpr::compile, diags)
                });
                if !on.iter().any(|t| t.event == "done") {
                    diags.push(
                        doc.key_diag(
                            &at,
                            format!("state '{name}' has no way out when its action succeeds"),
                        )
                        .hint("add `on: { done: <next state> }`"),
                    );
                }
                let span = |field: &str, value: &Option<String>, diags: &mut Diagnostics| {
                    duration(doc, &format!("{at}/{field}"), value.as_deref(), diags)
                };
                StateKind::Task(Box::new(Task {
                    action,
                    input,
                    output,
                    retry: raw
                        .retry
                        .as_ref()
                        .and_then(|r| retry_policy(doc, &format!("{at}/retry"), r, diags)),
                    timeout: span("timeout", &raw.timeout, diags),
                    deadline: span("deadline", &raw.deadline, diags),
                    heartbeat: span("heartbeat", &raw.heartbeat, diags),
                    compensate: raw
                        .compensate
                        .as_ref()
                        .and_then(|c| compensation(doc, &format!("{at}/compensate"), c, diags)),
                }))
            }
            StateType::Succeed => StateKind::Succeed {
                output: raw
                    .output
                    .as_deref()
                    .and_then(|src| expr(doc, &format!("{at}/output"), src, Expr::compile, diags)),
            },
            StateType::Fail => StateKind::Fail {
                error: raw.error.clone(),
                cause: raw
                    .cause
                    .as_deref()
                    .and_then(|src| expr(doc, &format!("{at}/cause"), src, Expr::compile, diags)),
            },
            StateType::Compensate => {
                let then = raw.then.clone().unwrap_or_default();
                match &raw.then {
                None => diags.push(
                    doc.key_diag(&at, format!("compensate state '{name}' has no `then`"))
                        .hint(
                            "add `then: <state>`: where to go once every completed step is undone",
                        ),
                ),
                Some(t) if !names.contains(t) => {
                    let d = doc.diag(
                        &format!("{at}/then"),
                        format!(
                            "state '{name}' goes to '{t}' when done, but no state has that name"
                        ),
                    );
                    diags.push(match suggest(t, names.iter()) {
                        Some(s) => d.hint(format!("did you mean '{s}'?")),
                        None => d.hint(format!("states are: {}", names.join(", "))),
                    });
                }
                Some(_) => {}
            }
                StateKind::Compensate { then }
            }
            StateType::Wait => wait_state(doc, &at, name, raw, &on, diags),
            StateType::Parallel | StateType::Map => {
                if !on.iter().any(|t| t.event == "done") {
                    diags.push(
                        doc.key_diag(
                            &at,
                            format!("state '{name}' has no way out when its branches finish"),
                        )
                        .hint("add `on: { done: <next state> }`"),
                    );
                }
                let output = raw.output.as_deref().and_then(|src| {
                    expr(doc, &format!("{at}/output"), src, PathExpr::compile, diags)
                });
                if kind == StateType::Parallel {
                    parallel_state(doc, &at, name, raw, output, diags)
                } else {
                    map_state(doc, &at, name, raw, output, diags)
                }
            }
        };
    (diags.len() == before).then(|| State {
        name: name.to_owned(),
        kind,
        on,
        sla,
    })
}

/// A state's `sla`. Only the process's own states take one: a branch's
/// states run inside their parallel or map state, whose `sla` covers them.
fn state_sla(doc: &Document, at: &str, raw: &StateDef, diags: &mut Diagnostics) -> Option<Span> {
    let text = raw.sla.as_deref()?;
    let field = format!("{at}/sla");
    if at.rfind("/states/") != Some(0) {
        diags.push(
            doc.key_diag(&field, "a state inside a branch cannot have an sla")
                .hint("put the sla on the parallel or map state that holds the branch"),
        );
        return None;
    }
    duration(doc, &field, Some(text), diags)
}

fn transitions(
    doc: &Document,
    at: &str,
    raw: &StateDef,
    names: &Names<'_>,
    diags: &mut Diagnostics,
) -> Vec<Transition> {
    let Some(on) = &raw.on else { return Vec::new() };
    let is_task = raw
        .kind
        .is_none_or(|k| matches!(k, StateType::Task | StateType::Parallel | StateType::Map));
    let mut out = Vec::new();
    for (event, target) in on {
        let ev_at = format!("{at}/on/{}", pointer_segment(event));
        if is_task && !task_can_receive(event) {
            diags.push(
                doc.key_diag(
                    &ev_at,
                    format!("a task state never receives the event '{event}'"),
                )
                .hint("a task receives `done`, `error` and `error.<kind>`"),
            );
        }
        let arms = match target {
            TargetDef::To(to) => vec![(None, to.clone(), ev_at.clone())],
            TargetDef::Arms(arms) => arms
                .iter()
                .enumerate()
                .map(|(i, a)| (a.guard.clone(), a.to.clone(), format!("{ev_at}/{i}")))
                .collect(),
        };
        if arms.is_empty() {
            diags.push(doc.diag(
                &ev_at,
                format!("the event '{event}' leads nowhere: the list is empty"),
            ));
        }
        let mut compiled = Vec::new();
        for (guard, to, arm_at) in arms {
            let to_at = if arm_at == ev_at {
                arm_at.clone()
            } else {
                format!("{arm_at}/to")
            };
            if !names.contains(&to) {
                let d = doc.diag(
                    &to_at,
                    format!(
                        "state '{}' goes to '{to}' on '{event}', but no state has that name",
                        last(at)
                    ),
                );
                let d = match suggest(&to, names.iter()) {
                    Some(s) => d.hint(format!("did you mean '{s}'?")),
                    None => d.hint(format!("states are: {}", names.join(", "))),
                };
                diags.push(d);
            }
            let guard = guard
                .and_then(|src| expr(doc, &format!("{arm_at}/if"), &src, Expr::compile, diags));
            compiled.push(Arm { guard, to });
        }
        out.push(Transition {
            event: event.clone(),
            arms: compiled,
        });
    }
    out
}

/// Events a task can ever see. Whether a given `error.<kind>` can happen is
/// decided later against the action's manifest.
fn task_can_receive(event: &str) -> bool {
    event == "done"
        || event == "error"
        || event
            .strip_prefix("error.")
            .is_some_and(|k| !k.is_empty() && valid_name(k))
}
