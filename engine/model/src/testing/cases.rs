//! Process tests: a case file lists cases, each an input, what every
//! action answers (in order), what comes from outside and when, and what
//! must hold at the end. [`load`] checks the file (problems at
//! `file:line:col`); [`run`] drives each case through the interpreter on a
//! simulated clock and compares.
//!
//! ```yaml
//! cases:
//!   - name: a declined card undoes the reservation
//!     input: { order: { id: o-1, qty: 1, card: "4000" } }
//!     adapters:
//!       reserve_inventory: [ { done: { reservation: r-1 } } ]
//!       charge_payment: [ retryable, { error: card_declined, after: 2s } ]
//!       release_inventory: [ done ]
//!     events:
//!       - { at: 1h, signal: approve, data: { by: ana } }
//!     expect:
//!       status: failed
//!       state: payment_failed
//!       path: [reserve, charge, undo, payment_failed]
//!       compensated: [reserve]
//!       output: '.order == "o-1"'      # jq, must give true
//!       elapsed: 2s                     # or `within: 1m`
//! ```
//!
//! An action's answers are used in order and the last one repeats, so
//! `[retryable]` fails every attempt. Words: `done` (output `{}`),
//! `retryable`, `fatal`, `timeout`, `trap`, `heartbeat`, `limit`.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::{Adapters, Answer, Drive, Outside};
use crate::bindings::ActionDefaults;
use crate::expr::Expr;
use crate::instance::{Failure, Invoke, Status, StepOutcome};
use crate::process::Process;
use crate::source::{Diagnostics, Document, Format, pointer};
use crate::time::{Millis, Span};
use crate::validate::deserialize;

/// When every case starts: 2026-01-01T00:00:00Z, so `until` times in a
/// process read the same on every run.
pub const T0: Millis = Millis(1_767_225_600_000);

/// One checked case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    input: Value,
    adapters: HashMap<String, Vec<Answer>>,
    /// When an action's answers run out: repeat the last (`false`), or
    /// never answer (`true`: the attempt's timeout applies).
    hang: bool,
    events: Vec<(Span, Outside)>,
    expect: Expect,
}

#[derive(Debug, Clone, Default)]
struct Expect {
    status: Option<Status>,
    state: Option<String>,
    output: Option<(String, Expr)>,
    path: Option<Vec<String>>,
    compensated: Option<Vec<String>>,
    elapsed: Option<Span>,
    within: Option<Span>,
}

/// What one case did, and where it differed from what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub name: String,
    pub status: Status,
    pub state: String,
    pub path: Vec<String>,
    pub elapsed: Span,
    /// Each expectation that did not hold, or why the case could not run.
    pub failures: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    /// The process the cases are for (checked when given).
    #[serde(default)]
    process: Option<String>,
    cases: Vec<CaseDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDef {
    name: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    adapters: IndexMap<String, Vec<Value>>,
    /// When an action's answers run out: `repeat` the last one (default),
    /// or `hang` (never answer; what a recorded case says, since every
    /// answer the instance got is in it).
    #[serde(default)]
    exhausted: Option<Exhausted>,
    #[serde(default)]
    events: Vec<EventDef>,
    expect: ExpectDef,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Exhausted {
    Repeat,
    Hang,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventDef {
    at: String,
    #[serde(default)]
    signal: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    complete: Option<String>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    cancel: Option<bool>,
    #[serde(default)]
    compensate: Option<bool>,
    #[serde(default)]
    redrive: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectDef {
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    path: Option<Vec<String>>,
    #[serde(default)]
    compensated: Option<Vec<String>>,
    #[serde(default)]
    elapsed: Option<String>,
    #[serde(default)]
    within: Option<String>,
}

/// Reads and checks a case file for `process`.
pub fn load(file: &str, text: &str, process: &Process) -> Result<Vec<Case>, Diagnostics> {
    let doc = crate::source::load(file, text, Format::from_path(file))?;
    let def: FileDef = deserialize(&doc, "", &doc.value).map_err(Diagnostics::from)?;
    let mut diags = Diagnostics::default();
    if let Some(p) = &def.process
        && *p != process.name
    {
        diags.push(doc.diag(
            "/process",
            format!("these cases are for process '{p}', not '{}'", process.name),
        ));
    }
    let mut cases = Vec::new();
    for (i, c) in def.cases.into_iter().enumerate() {
        let at = format!("/cases/{i}");
        if let Some(case) = case(&doc, &at, c, &mut diags) {
            cases.push(case);
        }
    }
    if diags.is_empty() {
        Ok(cases)
    } else {
        Err(diags.sorted())
    }
}

fn span(doc: &Document, at: &str, text: &str, diags: &mut Diagnostics) -> Option<Span> {
    match Span::parse(text) {
        Ok(s) => Some(s),
        Err(e) => {
            diags.push(
                doc.diag(at, e.to_string())
                    .hint("write it like 500ms, 30s, 5m or 1h30m"),
            );
            None
        }
    }
}

fn case(doc: &Document, at: &str, c: CaseDef, diags: &mut Diagnostics) -> Option<Case> {
    let before = diags.len();
    let mut adapters = HashMap::new();
    for (action, answers) in &c.adapters {
        let base = format!("{at}{}", pointer(["adapters", action]));
        if answers.is_empty() {
            diags.push(doc.diag(&base, format!("no answers for '{action}'")));
            continue;
        }
        let mut list = Vec::new();
        for (j, a) in answers.iter().enumerate() {
            match answer(a) {
                Ok(a) => list.push(a),
                Err(why) => diags.push(doc.diag(&format!("{base}/{j}"), why)),
            }
        }
        adapters.insert(action.clone(), list);
    }
    let mut events = Vec::new();
    for (j, e) in c.events.iter().enumerate() {
        let here = format!("{at}/events/{j}");
        let after = span(doc, &format!("{here}/at"), &e.at, diags);
        match outside(e) {
            Ok(o) => events.extend(after.map(|a| (a, o))),
            Err(why) => diags.push(doc.diag(&here, why)),
        }
    }
    let x = c.expect;
    let output = x.output.and_then(|src| match Expr::compile(&src) {
        Ok(e) => Some((src, e)),
        Err(e) => {
            diags.push(doc.diag(
                &format!("{at}/expect/output"),
                format!("bad jq expression: {}", e.message),
            ));
            None
        }
    });
    let elapsed = x
        .elapsed
        .and_then(|t| span(doc, &format!("{at}/expect/elapsed"), &t, diags));
    let within = x
        .within
        .and_then(|t| span(doc, &format!("{at}/expect/within"), &t, diags));
    (diags.len() == before).then(|| Case {
        name: c.name,
        input: c.input.unwrap_or_else(|| Value::Object(Default::default())),
        adapters,
        hang: c.exhausted == Some(Exhausted::Hang),
        events,
        expect: Expect {
            status: x.status,
            state: x.state,
            output,
            path: x.path,
            compensated: x.compensated,
            elapsed,
            within,
        },
    })
}

const WORDS: [&str; 8] = [
    "retryable",
    "fatal",
    "timeout",
    "trap",
    "heartbeat",
    "out_of_memory",
    "output_too_large",
    "limit",
];

/// One scripted answer: a word, or `{done | error | pending, after?,
/// message?}`.
fn answer(v: &Value) -> Result<Answer, String> {
    let failed = |kind: &str, message: Option<&str>| StepOutcome::Failed {
        failure: Failure::new(
            kind,
            message.map_or_else(|| format!("scripted {kind}"), str::to_owned),
        ),
    };
    let now = |outcome| Answer {
        after: Span(0),
        outcome,
    };
    match v {
        Value::String(w) if w == "done" => Ok(now(StepOutcome::Done {
            output: Value::Object(Default::default()),
        })),
        Value::String(w) if WORDS.contains(&w.as_str()) => Ok(now(failed(w, None))),
        Value::String(w) => Err(format!(
            "'{w}' is not an answer: write done, {}, or {{done: <output>}}, {{error: <kind>}}, {{pending: <token>}}",
            WORDS.join(", ")
        )),
        Value::Object(m) => {
            let known = ["done", "error", "pending", "after", "message"];
            if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!(
                    "unknown field '{k}' (an answer takes: {})",
                    known.join(", ")
                ));
            }
            let after = match m.get("after") {
                None => Span(0),
                Some(Value::String(t)) => Span::parse(t).map_err(|e| e.to_string())?,
                Some(other) => return Err(format!("`after` is {other}, not a duration")),
            };
            let message = m.get("message").and_then(Value::as_str);
            let outcome = match (m.get("done"), m.get("error"), m.get("pending")) {
                (Some(out), None, None) => StepOutcome::Done {
                    output: out.clone(),
                },
                (None, Some(Value::String(kind)), None) => failed(kind, message),
                (None, None, Some(Value::String(token))) => StepOutcome::Pending {
                    token: token.clone(),
                },
                _ => {
                    return Err(
                        "an answer has one of `done: <output>`, `error: <kind>`, `pending: <token>`"
                            .to_owned(),
                    );
                }
            };
            Ok(Answer { after, outcome })
        }
        other => Err(format!("{other} is not an answer")),
    }
}

fn outside(e: &EventDef) -> Result<Outside, String> {
    let given = [
        e.signal.is_some(),
        e.complete.is_some(),
        e.cancel.is_some(),
        e.redrive.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(
            "an event has one of `signal: <name>`, `complete: <token>`, `cancel: true`, `redrive: true`"
                .to_owned(),
        );
    }
    Ok(if let Some(name) = &e.signal {
        Outside::Signal {
            name: name.clone(),
            data: e.data.clone().unwrap_or(Value::Object(Default::default())),
        }
    } else if let Some(token) = &e.complete {
        let outcome = match (&e.output, &e.error) {
            (Some(_), Some(_)) => return Err("give `output` or `error`, not both".to_owned()),
            (_, Some(kind)) => StepOutcome::Failed {
                failure: Failure::new(
                    kind.as_str(),
                    e.message
                        .clone()
                        .unwrap_or_else(|| format!("scripted {kind}")),
                ),
            },
            (out, None) => StepOutcome::Done {
                output: out.clone().unwrap_or(Value::Object(Default::default())),
            },
        };
        Outside::Complete {
            token: token.clone(),
            outcome,
        }
    } else if e.cancel == Some(true) {
        Outside::Cancel {
            compensate: e.compensate.unwrap_or(false),
        }
    } else if e.redrive == Some(true) {
        Outside::Redrive
    } else {
        return Err("`cancel` and `redrive` take `true`".to_owned());
    })
}

/// Answers from a case's script: each action's answers in order, the last
/// one repeating.
struct Script<'c> {
    answers: &'c HashMap<String, Vec<Answer>>,
    used: HashMap<String, usize>,
    hang: bool,
}

impl Adapters for Script<'_> {
    fn answer(&mut self, invoke: &Invoke) -> Result<Answer, String> {
        let n = self.used.entry(invoke.action.clone()).or_insert(0);
        let left = self
            .answers
            .get(&invoke.action)
            .map_or(0, |l| l.len().saturating_sub(*n));
        if self.hang && left == 0 {
            // Never answers: the driver turns it into the attempt's timeout.
            return Ok(Answer {
                after: Span(u64::MAX / 4),
                outcome: StepOutcome::Failed {
                    failure: Failure::new("timeout", "no scripted answer"),
                },
            });
        }
        let list = self.answers.get(&invoke.action).ok_or_else(|| {
            format!(
                "'{}' was invoked (state '{}') but the case scripts no answers for it: add it under `adapters:`",
                invoke.action, invoke.state
            )
        })?;
        let n = self.used.entry(invoke.action.clone()).or_insert(0);
        let a = list[(*n).min(list.len() - 1)].clone();
        *n += 1;
        Ok(a)
    }
}

/// Runs one case to where it rests: the run, and why it stopped early if
/// it did.
pub fn drive<'p>(
    process: &'p Process,
    defaults: &'p dyn ActionDefaults,
    case: &Case,
) -> Result<(Drive<'p>, Option<String>), String> {
    let mut script = Script {
        answers: &case.adapters,
        used: HashMap::new(),
        hang: case.hang,
    };
    let mut drive = Drive::start(process, defaults, case.input.clone(), T0, 1, &mut script)?;
    for (after, o) in &case.events {
        drive.at(*after, o.clone());
    }
    let stopped = drive.run(&mut script).err();
    Ok((drive, stopped))
}

/// Runs one case and compares the end with its expectations.
pub fn run(process: &Process, defaults: &dyn ActionDefaults, case: &Case) -> Report {
    let mut report = Report {
        name: case.name.clone(),
        status: Status::Running,
        state: process.start.clone(),
        path: Vec::new(),
        elapsed: Span(0),
        failures: Vec::new(),
    };
    let (drive, stopped) = match drive(process, defaults, case) {
        Ok(d) => d,
        Err(why) => {
            report.failures.push(why);
            return report;
        }
    };
    report.failures.extend(stopped);
    report.failures.extend(drive.refused.iter().cloned());
    report.status = drive.inst.status;
    report.state = drive.inst.state.clone();
    report.path = drive.path();
    report.elapsed = drive.elapsed();
    compare(&case.expect, &drive, &mut report);
    report
}

fn compare(x: &Expect, d: &Drive<'_>, r: &mut Report) {
    let why = || match (&d.inst.error, d.inst.status) {
        (Some(e), _) => format!(" ({}: {}: {})", e.state, e.kind, e.message),
        (None, Status::Waiting) => format!(
            " (waiting in '{}' for {})",
            d.inst.state,
            d.inst
                .waiting
                .as_ref()
                .map(|w| w.events.join(", "))
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    if let Some(s) = x.status
        && s != d.inst.status
    {
        r.failures.push(format!(
            "status: expected {s}, got {}{}",
            d.inst.status,
            why()
        ));
    }
    if let Some(s) = &x.state
        && *s != d.inst.state
    {
        r.failures
            .push(format!("state: expected '{s}', got '{}'", d.inst.state));
    }
    if let Some(p) = &x.path {
        let got = d.path();
        if *p != got {
            r.failures.push(format!(
                "path: expected {}\n          got      {}",
                p.join(" → "),
                got.join(" → ")
            ));
        }
    }
    if let Some(c) = &x.compensated {
        let got = d.compensated();
        if *c != got {
            r.failures
                .push(format!("compensated: expected {c:?}, got {got:?}"));
        }
    }
    if let Some((src, e)) = &x.output {
        match &d.inst.output {
            None => r.failures.push(format!(
                "output: expected `{src}` to hold, but there is no output{}",
                why()
            )),
            Some(out) => match e.eval(out) {
                Ok(Value::Bool(true)) => {}
                Ok(v) => r.failures.push(format!(
                    "output: `{src}` gave {v}, not true; the output is {out}"
                )),
                Err(err) => r.failures.push(format!(
                    "output: `{src}` failed: {err}; the output is {out}"
                )),
            },
        }
    }
    if let Some(t) = x.elapsed
        && t != d.elapsed()
    {
        r.failures
            .push(format!("elapsed: expected {t}, got {}", d.elapsed()));
    }
    if let Some(t) = x.within
        && d.elapsed() > t
    {
        r.failures.push(format!(
            "elapsed: expected within {t}, took {}",
            d.elapsed()
        ));
    }
}
