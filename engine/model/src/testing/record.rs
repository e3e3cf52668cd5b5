//! A case from a real instance's history: what each action answered (in
//! order), what came from outside and when (signals, completions, cancels,
//! redrives), and how it ended as the expectation. An incident becomes a
//! regression test; replayed against a changed process, it shows where the
//! new version goes another way.
//!
//! Answers are replayed without their latencies, so the case expects the
//! end (status, state, path, compensations), not the elapsed time.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::instance::{Instance, Record, RecordKind};
use crate::process::{Process, StateKind};
use crate::time::Millis;

/// The action a state runs, looked up in the process and its branches.
fn action_of(process: &Process, state: &str) -> Option<String> {
    process.walk().into_iter().find_map(|(_, s)| match &s.kind {
        StateKind::Task(t) if s.name == state => Some(t.action.clone()),
        _ => None,
    })
}

fn failure(kind: &str, message: &str) -> Value {
    json!({ "error": kind, "message": message })
}

/// The case, as JSON (a case file holds `{"cases": [<this>]}`).
pub fn case(process: &Process, inst: &Instance, records: &[Record]) -> Value {
    let start = records.first().map_or(inst.created_at, |r| r.at);
    let since = |at: Millis| format!("{}ms", at.since(start).as_millis());
    let mut input = Value::Object(Map::new());
    let mut answers: IndexMap<String, Vec<Value>> = IndexMap::new();
    let mut events: Vec<Value> = Vec::new();
    // Step keys whose adapter answered `pending`: their outcome came from
    // outside, by token.
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut cancelling = false;
    let mut path = vec![process.start.clone()];
    let mut undone = Vec::new();
    let mut answer = |action: Option<String>, v: Value| {
        if let Some(a) = action {
            answers.entry(a).or_default().push(v);
        }
    };
    for r in records {
        match &r.kind {
            RecordKind::Started { input: i, .. } if r.branch.is_none() => input = i.clone(),
            RecordKind::AttemptFailed {
                action, failure: f, ..
            } => answer(Some(action.clone()), failure(&f.kind, &f.message)),
            RecordKind::Pending { state, token } => {
                answer(action_of(process, state), json!({ "pending": token }));
                pending.insert(state.clone(), token.clone());
            }
            RecordKind::Compensated { action, result, .. } => {
                answer(Some(action.clone()), json!({ "done": result }));
                undone.push(undone_name(r));
            }
            RecordKind::Transition {
                from,
                event,
                to,
                result,
                failure: f,
                ..
            } => {
                if r.branch.is_none() {
                    path.push(to.clone());
                }
                let is_wait = matches!(
                    process.state(from).map(|s| &s.kind),
                    Some(StateKind::Wait(_))
                );
                if is_wait && r.branch.is_none() {
                    if event != "timeout" && event != "elapsed" {
                        events.push(json!({
                            "at": since(r.at),
                            "signal": event,
                            "data": result.clone().unwrap_or(Value::Null),
                        }));
                    }
                    continue;
                }
                let Some(action) = action_of(process, from) else {
                    continue;
                };
                let outcome = match (event.as_str(), f) {
                    (_, Some(f)) => failure(&f.kind, &f.message),
                    ("done", None) => json!({ "done": result.clone().unwrap_or(Value::Null) }),
                    _ => continue,
                };
                match pending.remove(from) {
                    Some(token) => {
                        let mut e = json!({ "at": since(r.at), "complete": token });
                        match outcome.get("done") {
                            Some(out) => e["output"] = out.clone(),
                            None => {
                                e["error"] = outcome["error"].clone();
                                e["message"] = outcome["message"].clone();
                            }
                        }
                        events.push(e);
                    }
                    None => answer(Some(action), outcome),
                }
            }
            // A failure nothing routed parks (a branch, or the instance):
            // the adapter's answer is in the error, unless the engine made
            // it (a mapping failure).
            RecordKind::Parked { state, error } if error.kind != "mapping" => {
                if let Some(action) = action_of(process, state) {
                    match pending.remove(state) {
                        Some(token) => events.push(json!({
                            "at": since(r.at),
                            "complete": token,
                            "error": error.kind,
                            "message": error.message,
                        })),
                        None => answer(Some(action), failure(&error.kind, &error.message)),
                    }
                }
            }
            // Operators act on the instance; a branch is cancelled by its fan.
            RecordKind::Cancelling { .. } if r.branch.is_none() => {
                cancelling = true;
                events.push(json!({ "at": since(r.at), "cancel": true, "compensate": true }));
            }
            RecordKind::Cancelled { .. } if r.branch.is_none() && !cancelling => {
                events.push(json!({ "at": since(r.at), "cancel": true }));
            }
            RecordKind::Redriven { .. } if r.branch.is_none() => {
                events.push(json!({ "at": since(r.at), "redrive": true }));
            }
            _ => {}
        }
    }
    let mut expect = json!({
        "status": inst.status,
        "state": inst.state,
        "path": path,
        "compensated": undone,
    });
    if inst.status == crate::instance::Status::Running {
        // Still running when recorded: only what happened so far is known.
        expect = json!({ "path": expect["path"].clone() });
    }
    json!({
        "name": format!("recorded from instance {} ({} v{})", inst.id, inst.process, inst.version),
        "input": input,
        "adapters": answers,
        "exhausted": "hang",
        "events": events,
        "expect": expect,
    })
}

fn undone_name(r: &Record) -> String {
    match &r.kind {
        RecordKind::Compensated { undone, .. } => undone.clone(),
        _ => String::new(),
    }
}
