//! Raw → validated: turns a loaded process document into a `Process`, or into
//! every problem found, each with `file:line:col`, what is wrong and a hint.

use std::collections::{BTreeSet, VecDeque};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::def::{
    CompensateDef, MachineDef, ProcessDef, RetryDef, ScheduleDef, StateDef, StateType, TargetDef,
};
use crate::expr::{CompileError, Expr, PathExpr};
use crate::limits;
use crate::process::{
    Arm, Compensation, MapState, Parallel, Process, State, StateKind, Task, Tolerance, Transition,
    Wait, WaitTimer, is_engine_error_kind,
};
use crate::retry::{RETRYABLE_KINDS, RetryPolicy};
use crate::schedule::{Cron, Schedule};
use crate::source::{Diagnostic, Diagnostics, Document, pointer, pointer_segment};
use crate::time::Span;

/// Validates a process document. Checks that need the bindings and plugin
/// manifests live in `bindings::check`.
pub fn process(doc: &Document) -> Result<Process, Diagnostics> {
    crate::source::check_depth(doc)?;
    let mut diags = Diagnostics::default();
    let shell: Shell = deserialize(doc, "", &doc.value)?;
    let def = ProcessDef {
        process: shell.process,
        version: shell.version,
        description: shell.description,
        start: shell.start,
        states: IndexMap::new(),
    };
    check_header(doc, &def, &mut diags);
    let states = machine(doc, "", &def.start, &shell.states, &mut diags);
    let schedules = schedules(doc, shell.schedule.as_ref(), &mut diags);
    if !diags.is_empty() {
        return Err(diags.sorted());
    }
    Ok(Process {
        name: def.process,
        version: def.version,
        description: def.description,
        start: def.start,
        states,
        schedules,
        definition: doc.value.clone(),
        base: String::new(),
    })
}

/// The states of a process, or of a branch whose states are at
/// `base/states` in the document.
fn machine(
    doc: &Document,
    base: &str,
    start: &str,
    raw: &IndexMap<String, Value>,
    diags: &mut Diagnostics,
) -> IndexMap<String, State> {
    let before = diags.len();
    // Every declared name, even of states whose fields do not parse, so one
    // bad field does not also make them "unknown".
    let names: Vec<&str> = raw.keys().map(String::as_str).collect();
    if names.is_empty() {
        diags.push(doc.key_diag(
            &format!("{base}/states"),
            "a process needs at least one state",
        ));
    }
    if !names.contains(&start) {
        let known: Vec<String> = raw.keys().cloned().collect();
        diags.push(unknown_state(
            doc,
            &format!("{base}/start"),
            start,
            known.iter(),
        ));
    }
    let mut states = IndexMap::new();
    for (name, value) in raw {
        let at = format!("{base}{}", pointer(["states", name]));
        check_key_name(doc, &at, "state", name, diags);
        match deserialize::<StateDef>(doc, &at, value) {
            Ok(def) => {
                if let Some(state) = state(doc, &at, name, &def, &names, diags) {
                    states.insert(name.clone(), state);
                }
            }
            Err(d) => diags.push(d),
        }
    }
    if diags.len() == before {
        check_reachable(doc, base, start, &states, diags);
    }
    states
}

/// A branch machine at `at` (a parallel branch, or a map's `branch`).
fn branch(
    doc: &Document,
    at: &str,
    label: &str,
    raw: &Value,
    diags: &mut Diagnostics,
) -> Option<Process> {
    let def: MachineDef = match deserialize(doc, at, raw) {
        Ok(d) => d,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let before = diags.len();
    let states = machine(doc, at, &def.start, &def.states, diags);
    (diags.len() == before).then(|| Process {
        name: label.to_owned(),
        version: 0,
        description: None,
        start: def.start,
        states,
        schedules: Vec::new(),
        definition: Value::Null,
        base: at.to_owned(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shell {
    process: String,
    version: u32,
    #[serde(default)]
    description: Option<String>,
    start: String,
    states: IndexMap<String, Value>,
    #[serde(default)]
    schedule: Option<Value>,
}

/// `schedule:` — one `{ cron, input, missed }` or a list of them.
fn schedules(doc: &Document, raw: Option<&Value>, diags: &mut Diagnostics) -> Vec<Schedule> {
    let items: Vec<(String, &Value)> = match raw {
        None => return Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("/schedule/{i}"), v))
            .collect(),
        Some(v) => vec![("/schedule".to_owned(), v)],
    };
    let mut out = Vec::new();
    for (at, value) in items {
        let def: ScheduleDef = match deserialize(doc, &at, value) {
            Ok(d) => d,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let cron = match Cron::parse(&def.cron) {
            Ok(c) => c,
            Err(e) => {
                diags.push(
                    doc.diag(&format!("{at}/cron"), format!("bad cron expression: {e}"))
                        .hint("write `sec min hour day month weekday`, e.g. \"0 */5 * * * *\""),
                );
                continue;
            }
        };
        let input = def
            .input
            .unwrap_or_else(|| Value::Object(Default::default()));
        if !input.is_object() {
            diags.push(doc.diag(
                &format!("{at}/input"),
                "a schedule's input must be an object",
            ));
            continue;
        }
        if let Err(e) = limits::check(&input) {
            diags.push(
                doc.diag(&format!("{at}/input"), format!("the schedule's input {e}"))
                    .hint("start with a small input and let the first step fetch the rest"),
            );
            continue;
        }
        out.push(Schedule {
            cron,
            input,
            missed: def.missed.unwrap_or_default(),
        });
    }
    out
}

/// Deserializes `value` (found at `at` in `doc`) and turns a serde error into a
/// diagnostic at the offending key or value.
pub(crate) fn deserialize<'de, T: Deserialize<'de>>(
    doc: &Document,
    at: &str,
    value: &'de Value,
) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut ptr = at.to_owned();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Map { key } => ptr.push_str(&format!("/{}", pointer_segment(key))),
                Segment::Seq { index } => ptr.push_str(&format!("/{index}")),
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        serde_diag(doc, &ptr, &e.into_inner().to_string())
    })
}

fn serde_diag(doc: &Document, ptr: &str, msg: &str) -> Diagnostic {
    let field = ptr.rsplit('/').next().unwrap_or("");
    let place = describe_place(ptr);
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let key_ptr = if field == name {
            ptr.to_owned()
        } else {
            format!("{ptr}/{}", pointer_segment(name))
        };
        let mut hint = format!("expected one of: {}", expected.join(", "));
        if let Some(s) = suggest(name, expected.iter().copied()) {
            hint = format!("did you mean '{s}'? {hint}");
        }
        return doc
            .key_diag(&key_ptr, format!("unknown field '{name}'{place}"))
            .hint(hint);
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        return doc
            .key_diag(ptr, format!("missing field '{name}'{place}"))
            .hint(format!("add `{name}:`"));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        return doc
            .diag(ptr, format!("'{name}' is not a valid '{field}'{place}"))
            .hint(format!("expected one of: {}", expected.join(", ")));
    }
    let mut d = doc.diag(ptr, format!("'{field}'{place}: {msg}"));
    if matches!(field, "input" | "output" | "if" | "cause") && msg.contains("invalid type") {
        d = d.hint("write jq expressions as quoted strings, e.g. '{sku: .order.sku}'");
    }
    d
}

/// " in state 'charge'" for pointers under /states/charge, else "".
fn describe_place(ptr: &str) -> String {
    let mut parts = ptr.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some("states"), Some(name)) => format!(" in state '{}'", unescape(name)),
        (Some("actions"), Some(name)) => format!(" in the binding of '{}'", unescape(name)),
        _ => String::new(),
    }
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

fn check_header(doc: &Document, def: &ProcessDef, diags: &mut Diagnostics) {
    if !valid_name(&def.process) {
        diags.push(
            doc.diag(
                "/process",
                format!("'{}' is not a valid process name", def.process),
            )
            .hint("use letters, digits, '-', '_' and '.'"),
        );
    }
    if def.version == 0 {
        diags.push(doc.diag("/version", "version must be 1 or more"));
    }
}

/// State and branch names are segments of step keys
/// (`<instance>/<state>/<visit>/<branch>/<state>/<visit>`): a '/' in one
/// would let a top-level state share its key with a step inside a branch, and
/// a finished step's result would be taken for the other's.
fn check_key_name(doc: &Document, at: &str, what: &str, name: &str, diags: &mut Diagnostics) {
    if valid_name(name) {
        return;
    }
    let fixed: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut hint = "it is part of step keys like <instance>/<state>/<visit>; rename it".to_owned();
    if !fixed.is_empty() {
        hint.push_str(&format!(", e.g. to '{fixed}'"));
    }
    diags.push(
        doc.key_diag(
            at,
            format!("{what} name '{name}' may use only letters, digits, '-', '_' and '.'"),
        )
        .hint(hint),
    );
}

/// Names of processes, actions, plugins, error kinds, states and branches:
/// letters, digits, `-`, `_` and `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn unknown_state<'a>(
    doc: &Document,
    at: &str,
    name: &str,
    known: impl Iterator<Item = &'a String> + Clone,
) -> Diagnostic {
    let d = doc.diag(at, format!("no state is named '{name}'"));
    match suggest(name, known.clone().map(String::as_str)) {
        Some(s) => d.hint(format!("did you mean '{s}'?")),
        None => d.hint(format!(
            "states are: {}",
            known.map(String::as_str).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn state(
    doc: &Document,
    at: &str,
    name: &str,
    raw: &StateDef,
    names: &[&str],
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
    let present: [(&str, bool); 18] = [
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
        ],
        StateType::Succeed => &["output"],
        StateType::Fail => &["error", "cause"],
        StateType::Compensate => &["then"],
        StateType::Wait => &["on", "timeout", "wait", "output"],
        StateType::Parallel => &["on", "branches", "output"],
        StateType::Map => &[
            "on",
            "items",
            "branch",
            "max_concurrency",
            "tolerated_failures",
            "output",
        ],
    };
    for (field, is_set) in present {
        if is_set && !allowed.contains(&field) {
            let why = match (field, kind) {
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
                Some(t) if !names.contains(&t.as_str()) => {
                    let d = doc.diag(
                        &format!("{at}/then"),
                        format!(
                            "state '{name}' goes to '{t}' when done, but no state has that name"
                        ),
                    );
                    diags.push(match suggest(t, names.iter().copied()) {
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
    })
}

/// A wait state: its signals are the events of `on` that are not timer or
/// error events; each timer event needs its timer, and the reverse.
fn wait_state(
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

fn parallel_state(
    doc: &Document,
    at: &str,
    name: &str,
    raw: &StateDef,
    output: Option<PathExpr>,
    diags: &mut Diagnostics,
) -> StateKind {
    let mut branches = Vec::new();
    match &raw.branches {
        Some(list) if !list.is_empty() => {
            for (b, value) in list {
                let bat = format!("{at}/branches/{}", pointer_segment(b));
                check_key_name(doc, &bat, "branch", b, diags);
                if let Some(p) = branch(doc, &bat, b, value, diags) {
                    branches.push((b.clone(), std::sync::Arc::new(p)));
                }
            }
        }
        _ => diags.push(
            doc.key_diag(at, format!("parallel state '{name}' has no branches"))
                .hint("add `branches: { <name>: { start: <state>, states: {...} } }`"),
        ),
    }
    StateKind::Parallel(Box::new(Parallel { branches, output }))
}

fn map_state(
    doc: &Document,
    at: &str,
    name: &str,
    raw: &StateDef,
    output: Option<PathExpr>,
    diags: &mut Diagnostics,
) -> StateKind {
    let items = match &raw.items {
        Some(src) => expr(doc, &format!("{at}/items"), src, Expr::compile, diags),
        None => {
            diags.push(
                doc.key_diag(at, format!("map state '{name}' has no `items`"))
                    .hint("add `items: <jq giving an array>`"),
            );
            None
        }
    };
    let machine = match &raw.branch {
        Some(v) => branch(doc, &format!("{at}/branch"), name, v, diags),
        None => {
            diags.push(
                doc.key_diag(at, format!("map state '{name}' has no `branch`"))
                    .hint("add `branch: { start: <state>, states: {...} }`, run for each item"),
            );
            None
        }
    };
    let tolerated = match &raw.tolerated_failures {
        None => Tolerance::Count(0),
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            Tolerance::Count(n.as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32)
        }
        Some(Value::String(s))
            if s.strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .is_some_and(|p| (0.0..=100.0).contains(&p)) =>
        {
            Tolerance::Percent(s.trim_end_matches('%').trim().parse::<f64>().unwrap_or(0.0))
        }
        Some(other) => {
            diags.push(
                doc.diag(
                    &format!("{at}/tolerated_failures"),
                    format!("tolerated_failures must be a count or a percentage, not {other}"),
                )
                .hint("write `tolerated_failures: 2` or `tolerated_failures: \"10%\"`"),
            );
            Tolerance::Count(0)
        }
    };
    if raw.max_concurrency == Some(0) {
        diags.push(
            doc.diag(
                &format!("{at}/max_concurrency"),
                "max_concurrency must be 1 or more",
            )
            .hint("leave it out to run every item at once"),
        );
    }
    match (items, machine) {
        (Some(items), Some(machine)) => StateKind::Map(Box::new(MapState {
            items,
            branch: std::sync::Arc::new(machine),
            max_concurrency: raw.max_concurrency.unwrap_or(0) as usize,
            tolerated,
            output,
        })),
        // Reported above; the state is dropped.
        _ => StateKind::Succeed { output: None },
    }
}

fn transitions(
    doc: &Document,
    at: &str,
    raw: &StateDef,
    names: &[&str],
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
            if !names.contains(&to.as_str()) {
                let d = doc.diag(
                    &to_at,
                    format!(
                        "state '{}' goes to '{to}' on '{event}', but no state has that name",
                        last(at)
                    ),
                );
                let d = match suggest(&to, names.iter().copied()) {
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

fn duration(doc: &Document, at: &str, text: Option<&str>, diags: &mut Diagnostics) -> Option<Span> {
    match Span::parse(text?) {
        Ok(d) if d.as_millis() > 0 => Some(d),
        Ok(_) => {
            diags.push(doc.diag(at, "a duration here must be longer than 0s"));
            None
        }
        Err(e) => {
            diags.push(
                doc.diag(at, e)
                    .hint("write it like 500ms, 30s, 5m or 1h30m"),
            );
            None
        }
    }
}

/// A retry policy from its raw form. Unset fields default to: 3 attempts,
/// 1s initial delay, factor 2, at most 60s between attempts, no jitter.
pub(crate) fn retry_policy(
    doc: &Document,
    at: &str,
    raw: &RetryDef,
    diags: &mut Diagnostics,
) -> Option<RetryPolicy> {
    let before = diags.len();
    let mut p = RetryPolicy {
        max_attempts: raw.max_attempts.unwrap_or(3),
        ..RetryPolicy::default()
    };
    if p.max_attempts == 0 {
        diags.push(doc.diag(
            &format!("{at}/max_attempts"),
            "max_attempts counts the first attempt too, so it must be 1 or more",
        ));
    }
    if let Some(d) = duration(doc, &format!("{at}/initial"), raw.initial.as_deref(), diags) {
        p.initial = d;
    }
    if let Some(d) = duration(
        doc,
        &format!("{at}/max_delay"),
        raw.max_delay.as_deref(),
        diags,
    ) {
        p.max_delay = d;
    }
    if raw.max_delay.is_none() {
        p.max_delay = p.max_delay.max(p.initial);
    }
    if p.initial > p.max_delay {
        diags.push(doc.diag(
            &format!("{at}/max_delay"),
            format!(
                "max_delay ({}) is shorter than initial ({})",
                p.max_delay, p.initial
            ),
        ));
    }
    if let Some(f) = raw.factor {
        if !(1.0..=100.0).contains(&f) {
            diags.push(doc.diag(&format!("{at}/factor"), "factor must be between 1 and 100"));
        }
        p.factor = f;
    }
    p.jitter = raw.jitter.unwrap_or_default();
    for (i, kind) in raw.non_retryable.iter().flatten().enumerate() {
        if !RETRYABLE_KINDS.contains(&kind.as_str()) {
            diags.push(
                doc.diag(
                    &format!("{at}/non_retryable/{i}"),
                    format!("'{kind}' failures are never retried anyway"),
                )
                .hint(format!(
                    "only these kinds are retried: {}",
                    RETRYABLE_KINDS.join(", ")
                )),
            );
        }
        p.non_retryable.push(kind.clone());
    }
    (diags.len() == before).then_some(p)
}

fn compensation(
    doc: &Document,
    at: &str,
    raw: &CompensateDef,
    diags: &mut Diagnostics,
) -> Option<Compensation> {
    let (action, input, retry, action_at) = match raw {
        CompensateDef::Action(a) => (a.clone(), None, None, at.to_owned()),
        CompensateDef::Full(f) => (
            f.action.clone(),
            f.input.clone(),
            f.retry.clone(),
            format!("{at}/action"),
        ),
    };
    if !valid_name(&action) {
        diags.push(doc.diag(&action_at, format!("'{action}' is not a valid action name")));
        return None;
    }
    Some(Compensation {
        action,
        input: input.and_then(|src| expr(doc, &format!("{at}/input"), &src, Expr::compile, diags)),
        retry: retry.and_then(|r| retry_policy(doc, &format!("{at}/retry"), &r, diags)),
    })
}

fn last(ptr: &str) -> String {
    unescape(ptr.rsplit('/').next().unwrap_or(""))
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

/// Whether an adapter's error kind can be routed on.
pub fn valid_kind(kind: &str) -> bool {
    valid_name(kind)
}

/// Whether `kind` is an error an action can raise: an engine kind or one its
/// manifest declares.
pub fn error_kind_possible(kind: &str, declared: &[String]) -> bool {
    is_engine_error_kind(kind) || declared.iter().any(|d| d == kind)
}

fn expr<T>(
    doc: &Document,
    at: &str,
    src: &str,
    compile: impl Fn(&str) -> Result<T, CompileError>,
    diags: &mut Diagnostics,
) -> Option<T> {
    match compile(src) {
        Ok(e) => Some(e),
        Err(e) => {
            let mut d = doc.diag(at, format!("bad jq expression: {}", e.message));
            if let Some(p) = d.pos.as_mut() {
                p.col += expr_column_offset(doc, *p, src, e.offset);
            }
            diags.push(d);
            None
        }
    }
}

/// How far into the written value an error at `offset` of the expression is:
/// past an opening quote, when the offset is on the first line.
fn expr_column_offset(doc: &Document, pos: crate::source::Pos, src: &str, offset: usize) -> u32 {
    let head = &src[..offset.min(src.len())];
    if head.contains('\n') {
        return 0;
    }
    let quoted = doc.text_at(pos).is_some_and(|c| c == '\'' || c == '"');
    head.chars().count() as u32 + u32::from(quoted)
}

fn check_reachable(
    doc: &Document,
    base: &str,
    start: &str,
    states: &IndexMap<String, State>,
    diags: &mut Diagnostics,
) {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(s) = states.get(&name) {
            queue.extend(s.targets().map(str::to_owned));
        }
    }
    for name in states.keys() {
        if !seen.contains(name) {
            diags.push(
                doc.key_diag(
                    &format!("{base}{}", pointer(["states", name])),
                    format!("state '{name}' can never be reached from '{start}'"),
                )
                .hint("add a transition to it, or remove it"),
            );
        }
    }
}

/// The closest candidate within a small edit distance.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance where swapping two neighbours counts as one edit
/// (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}
