//! Random processes for property tests: a proptest strategy for a small,
//! mostly valid process (tasks, waits, compensate, parallel, map, guards,
//! retries, compensations), rendered as JSON text for `parse_process`.
//!
//! Specs hold small numbers ("pick the n-th target"), so proptest shrinks a
//! failing process towards fewer states, fewer routes and the first choices.

#![allow(dead_code)] // properties.rs uses part of it

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A process: body states `s0..`, then the terminal states `ok` and `bad`
/// when something leads to them.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    pub states: Vec<StateSpec>,
    /// Leave out a transition validation requires (a wait's `timeout` or
    /// `elapsed`), so some generated processes are invalid on purpose.
    pub sloppy: bool,
}

/// Where a state's main way out goes: `None` chains to the next state (so
/// every state is reachable), `Some(n)` picks the n-th of all states.
pub type Primary = Option<u8>;

#[derive(Debug, Clone)]
pub enum StateSpec {
    Task(TaskSpec),
    Wait(WaitSpec),
    Compensate { then: Primary },
    Parallel(FanSpec),
    Map(FanSpec),
}

#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub input: u8,
    pub output: u8,
    pub retry: Option<RetrySpec>,
    pub timeout: bool,
    pub deadline: bool,
    pub heartbeat: bool,
    /// `Some(full)`: compensated, in the long form when `full`.
    pub compensate: Option<bool>,
    pub routes: Routes,
}

/// `done` (guarded arms, then the primary target) and error routes.
#[derive(Debug, Clone)]
pub struct Routes {
    pub guards: Vec<(u8, u8)>,
    /// Whether `done` ends with an unguarded arm; without one a guard list
    /// that matches nothing parks the instance.
    pub fallback: bool,
    pub primary: Primary,
    pub errors: Vec<(u8, u8)>,
}

#[derive(Debug, Clone)]
pub struct RetrySpec {
    pub max_attempts: u8,
    pub slow: bool,
    pub jitter: bool,
    pub non_retryable: u8,
}

#[derive(Debug, Clone)]
pub struct WaitSpec {
    pub signals: Vec<(u8, u8)>,
    /// 0: none, 1: `timeout`, 2: `wait: { for }`, 3: `wait: { until: .due }`.
    pub timer: u8,
    pub timer_to: u8,
    pub mapping_to: Option<u8>,
    pub output: bool,
    pub primary: Primary,
}

/// A parallel state (branches `left` and `right`) or a map (one branch).
#[derive(Debug, Clone)]
pub struct FanSpec {
    pub left: BranchSpec,
    pub right: BranchSpec,
    pub items_array: bool,
    pub max_concurrency: Option<u8>,
    pub tolerated: u8,
    pub output: bool,
    pub routes: Routes,
}

/// A branch machine: an optional timer wait, a task, `fin` and `oops`.
#[derive(Debug, Clone)]
pub struct BranchSpec {
    pub wait_first: bool,
    pub retry: Option<RetrySpec>,
    pub timeout: bool,
    pub heartbeat: bool,
    pub compensate: bool,
    /// 0: no error route, 1: `error: fin`, 2: `error: oops`, 3: `error:
    /// rollback`, a compensate state of the branch that then fails.
    pub error_to: u8,
    pub guard_done: bool,
    /// The task is a map of its own over two items (a fan in a fan).
    pub nested: bool,
}

pub const SIGNALS: [&str; 3] = ["approve", "reject", "go"];
const GUARDS: [&str; 8] = [
    ".n > 3",
    ".n == 0",
    ".error.kind == \"fatal\"",
    ".r.ok",
    "(.items | length) > 1",
    ".n < 2",
    ".r == null",
    // Fails on a number `.n`: a guard error parks the instance.
    ".n.x > 1",
];
const ERROR_EVENTS: [&str; 7] = [
    "error",
    "error.retryable",
    "error.fatal",
    "error.timeout",
    "error.mapping",
    "error.card_declined",
    "error.heartbeat",
];
const INPUTS: [Option<&str>; 8] = [
    None,
    Some("{n: .n}"),
    Some(".items[0]"),
    None,
    Some("{n: .n, items: .items}"),
    None,
    None,
    // Fails when `.n` is a number: a mapping error at entry.
    Some(".n | ascii_downcase"),
];
const OUTPUTS: [Option<&str>; 5] = [None, Some(".r"), Some(".n"), Some(".items"), None];

fn primary() -> impl Strategy<Value = Primary> {
    prop_oneof![8 => Just(None), 2 => any::<u8>().prop_map(Some)]
}

fn retry() -> impl Strategy<Value = Option<RetrySpec>> {
    option::weighted(
        0.4,
        (1u8..=4, any::<bool>(), any::<bool>(), 0u8..4).prop_map(
            |(max_attempts, slow, jitter, non_retryable)| RetrySpec {
                max_attempts,
                slow,
                jitter,
                non_retryable,
            },
        ),
    )
}

fn routes() -> impl Strategy<Value = Routes> {
    (
        vec((0u8..GUARDS.len() as u8, any::<u8>()), 0..=2),
        prop::bool::weighted(0.9),
        primary(),
        vec((0u8..ERROR_EVENTS.len() as u8, any::<u8>()), 0..=2),
    )
        .prop_map(|(guards, fallback, primary, errors)| Routes {
            guards,
            fallback,
            primary,
            errors,
        })
}

fn task() -> impl Strategy<Value = TaskSpec> {
    (
        0u8..INPUTS.len() as u8,
        0u8..OUTPUTS.len() as u8,
        retry(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        option::weighted(0.5, any::<bool>()),
        routes(),
    )
        .prop_map(
            |(input, output, retry, timeout, deadline, heartbeat, compensate, routes)| TaskSpec {
                input,
                output,
                retry,
                timeout,
                deadline,
                heartbeat,
                compensate,
                routes,
            },
        )
}

fn wait() -> impl Strategy<Value = WaitSpec> {
    (
        vec((0u8..SIGNALS.len() as u8, any::<u8>()), 0..=2),
        0u8..4,
        any::<u8>(),
        option::weighted(0.5, any::<u8>()),
        any::<bool>(),
        primary(),
    )
        .prop_map(
            |(signals, timer, timer_to, mapping_to, output, primary)| WaitSpec {
                signals,
                timer,
                timer_to,
                mapping_to,
                output,
                primary,
            },
        )
}

fn branch() -> impl Strategy<Value = BranchSpec> {
    (
        prop::bool::weighted(0.3),
        retry(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.4),
        0u8..4,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(wait_first, retry, timeout, heartbeat, compensate, error_to, guard_done, nested)| {
                BranchSpec {
                    wait_first,
                    retry,
                    timeout,
                    heartbeat,
                    compensate,
                    error_to,
                    guard_done,
                    nested,
                }
            },
        )
}

fn fan() -> impl Strategy<Value = FanSpec> {
    (
        branch(),
        branch(),
        prop::bool::weighted(0.9),
        option::weighted(0.5, 1u8..=2),
        0u8..3,
        any::<bool>(),
        routes(),
    )
        .prop_map(
            |(left, right, items_array, max_concurrency, tolerated, output, routes)| FanSpec {
                left,
                right,
                items_array,
                max_concurrency,
                tolerated,
                output,
                routes,
            },
        )
}

fn state() -> impl Strategy<Value = StateSpec> {
    prop_oneof![
        6 => task().prop_map(StateSpec::Task),
        2 => wait().prop_map(StateSpec::Wait),
        2 => primary().prop_map(|then| StateSpec::Compensate { then }),
        1 => fan().prop_map(StateSpec::Parallel),
        1 => fan().prop_map(StateSpec::Map),
    ]
}

pub fn process() -> impl Strategy<Value = ProcSpec> {
    (vec(state(), 1..=5), prop::bool::weighted(0.05))
        .prop_map(|(states, sloppy)| ProcSpec { states, sloppy })
}

/// The instance input: `.n` for guards, `.items` for maps, `.due` for
/// `wait: { until }` (past, far future, not a time, or missing).
pub fn input() -> impl Strategy<Value = Value> {
    (0u8..7, vec(0u8..4, 0..=3), 0u8..4).prop_map(|(n, items, due)| {
        let mut data = json!({ "n": n, "items": items });
        let due = [
            Some("2000-01-01T00:00:00Z"),
            Some("2100-01-01T00:00:00Z"),
            Some("soon"),
            None,
        ][due as usize];
        if let Some(d) = due {
            data["due"] = json!(d);
        }
        data
    })
}

impl ProcSpec {
    /// The process as JSON text (JSON is also YAML, for a reproduction).
    pub fn render(&self) -> String {
        let names: Vec<String> = (0..self.states.len())
            .map(|i| format!("s{i}"))
            .chain(["ok".to_owned(), "bad".to_owned()])
            .collect();
        let mut r = Render {
            names: &names,
            body: self.states.len(),
        };
        let mut states = Map::new();
        for (i, s) in self.states.iter().enumerate() {
            states.insert(names[i].clone(), r.state(i, s, self.sloppy));
        }
        // Terminal states only when something leads to them: an unreachable
        // state is a validation error.
        let text = Value::Object(states.clone()).to_string();
        if text.contains("\"ok\"") {
            states.insert(
                "ok".into(),
                json!({ "type": "succeed", "output": "{n: .n}" }),
            );
        }
        if text.contains("\"bad\"") {
            states.insert(
                "bad".into(),
                json!({ "type": "fail", "cause": ".error.message" }),
            );
        }
        let doc = json!({ "process": "prop", "version": 1, "start": "s0", "states": states });
        serde_json::to_string_pretty(&doc).expect("invariant: JSON values serialize")
    }
}

struct Render<'a> {
    names: &'a [String],
    body: usize,
}

impl Render<'_> {
    fn target(&self, pick: u8) -> String {
        self.names[pick as usize % self.names.len()].clone()
    }

    fn primary(&self, i: usize, p: Primary) -> String {
        match p {
            None if i + 1 < self.body => self.names[i + 1].clone(),
            None => "ok".into(),
            Some(pick) => self.target(pick),
        }
    }

    fn on(&self, i: usize, r: &Routes) -> Map<String, Value> {
        let main = self.primary(i, r.primary);
        let mut arms: Vec<Value> = r
            .guards
            .iter()
            .map(|&(g, to)| json!({ "if": GUARDS[g as usize], "to": self.target(to) }))
            .collect();
        match arms.last_mut() {
            Some(last) if !r.fallback => last["to"] = json!(main),
            _ => arms.push(json!({ "to": main })),
        }
        let mut on = Map::new();
        on.insert("done".into(), Value::Array(arms));
        for &(e, to) in &r.errors {
            on.insert(ERROR_EVENTS[e as usize].into(), json!(self.target(to)));
        }
        on
    }

    fn state(&mut self, i: usize, s: &StateSpec, sloppy: bool) -> Value {
        match s {
            StateSpec::Task(t) => {
                let mut v = json!({ "action": format!("act{i}"), "on": self.on(i, &t.routes) });
                if let Some(e) = INPUTS[t.input as usize] {
                    v["input"] = json!(e);
                }
                if let Some(p) = OUTPUTS[t.output as usize] {
                    v["output"] = json!(p);
                }
                if let Some(r) = &t.retry {
                    v["retry"] = retry_json(r);
                }
                if t.timeout {
                    v["timeout"] = json!("1s");
                }
                if t.deadline {
                    v["deadline"] = json!("3s");
                }
                if t.heartbeat {
                    v["heartbeat"] = json!("400ms");
                }
                match t.compensate {
                    Some(false) => v["compensate"] = json!(format!("undo{i}")),
                    Some(true) => {
                        v["compensate"] = json!({
                            "action": format!("undo{i}"),
                            "input": "{n: .n}",
                            "retry": { "max_attempts": 2, "initial": "100ms" },
                        })
                    }
                    None => {}
                }
                v
            }
            StateSpec::Wait(w) => {
                let main = self.primary(i, w.primary);
                let mut on = Map::new();
                for (k, &(sig, to)) in w.signals.iter().enumerate() {
                    let to = if k == 0 {
                        main.clone()
                    } else {
                        self.target(to)
                    };
                    on.entry(SIGNALS[sig as usize]).or_insert(json!(to));
                }
                let first = if on.is_empty() {
                    main
                } else {
                    self.target(w.timer_to)
                };
                let mut v = json!({ "type": "wait" });
                let timer_event = match w.timer {
                    1 => {
                        v["timeout"] = json!("2s");
                        Some("timeout")
                    }
                    2 => {
                        v["wait"] = json!({ "for": "500ms" });
                        Some("elapsed")
                    }
                    3 => {
                        v["wait"] = json!({ "until": ".due" });
                        if let Some(to) = w.mapping_to {
                            on.insert("error.mapping".into(), json!(self.target(to)));
                        }
                        Some("elapsed")
                    }
                    _ => None,
                };
                if let Some(e) = timer_event
                    && !sloppy
                {
                    on.insert(e.into(), json!(first));
                }
                if w.output {
                    v["output"] = json!(".sig");
                }
                v["on"] = Value::Object(on);
                v
            }
            StateSpec::Compensate { then } => {
                json!({ "type": "compensate", "then": self.primary(i, *then) })
            }
            StateSpec::Parallel(f) => {
                let mut v = json!({
                    "type": "parallel",
                    "branches": { "left": branch_json(&f.left), "right": branch_json(&f.right) },
                    "on": self.on(i, &f.routes),
                });
                if f.output {
                    v["output"] = json!(".out");
                }
                v
            }
            StateSpec::Map(f) => {
                let items = if f.items_array { ".items" } else { ".n" };
                let mut v = json!({
                    "type": "map",
                    "items": items,
                    "branch": branch_json(&f.left),
                    "on": self.on(i, &f.routes),
                });
                if let Some(c) = f.max_concurrency {
                    v["max_concurrency"] = json!(c);
                }
                match f.tolerated {
                    1 => v["tolerated_failures"] = json!(1),
                    2 => v["tolerated_failures"] = json!("50%"),
                    _ => {}
                }
                if f.output {
                    v["output"] = json!(".out");
                }
                v
            }
        }
    }
}

fn retry_json(r: &RetrySpec) -> Value {
    let mut v = json!({
        "max_attempts": r.max_attempts,
        "initial": if r.slow { "1s" } else { "100ms" },
    });
    if r.jitter {
        v["jitter"] = json!("full");
    }
    match r.non_retryable {
        1 => v["non_retryable"] = json!(["timeout"]),
        2 => v["non_retryable"] = json!(["trap", "heartbeat"]),
        _ => {}
    }
    v
}

fn branch_json(b: &BranchSpec) -> Value {
    let mut task = json!({ "action": "b_work" });
    if let Some(r) = &b.retry {
        task["retry"] = retry_json(r);
    }
    if b.timeout {
        task["timeout"] = json!("1s");
    }
    if b.heartbeat {
        task["heartbeat"] = json!("400ms");
    }
    if b.compensate {
        task["compensate"] = json!("b_undo");
    }
    if b.nested {
        let mut leaf = task;
        leaf["action"] = json!("leaf");
        leaf["on"] = json!({ "done": "f" });
        task = json!({
            "type": "map",
            "items": "[1, 2]",
            "max_concurrency": 1,
            "branch": { "start": "w", "states": { "w": leaf, "f": { "type": "succeed" } } },
        });
    }
    let mut on = Map::new();
    on.insert(
        "done".into(),
        if b.guard_done {
            json!([{ "if": "(.n // .index // 0) > 1", "to": "oops" }, { "to": "fin" }])
        } else {
            json!("fin")
        },
    );
    match b.error_to {
        1 => {
            on.insert("error".into(), json!("fin"));
        }
        2 => {
            on.insert("error".into(), json!("oops"));
        }
        3 => {
            on.insert("error".into(), json!("rollback"));
        }
        _ => {}
    }
    task["on"] = Value::Object(on);
    let mut states = Map::new();
    let start = if b.wait_first {
        states.insert(
            "pause".into(),
            json!({ "type": "wait", "wait": { "for": "300ms" }, "on": { "elapsed": "work" } }),
        );
        "pause"
    } else {
        "work"
    };
    states.insert("work".into(), task);
    states.insert("fin".into(), json!({ "type": "succeed" }));
    if b.error_to == 3 {
        states.insert(
            "rollback".into(),
            json!({ "type": "compensate", "then": "oops" }),
        );
    }
    let text = Value::Object(states.clone()).to_string();
    if text.contains("\"oops\"") {
        states.insert(
            "oops".into(),
            json!({ "type": "fail", "error": "branch_broke" }),
        );
    }
    json!({ "start": start, "states": states })
}
