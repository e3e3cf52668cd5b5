//! Entering states: following transitions until the instance waits or ends,
//! and what entering each kind of state does.

use serde_json::Value;

use super::Machine;
use crate::instance::{
    ActiveStep, Failure, InstanceError, ParkedOn, Phase, RecordKind, Slot, Status, TimerKind,
    Waiting,
};
use crate::process::{StateKind, WaitTimer};
use crate::retry::RetryPolicy;
use crate::step_key::StepKey;
use crate::time::Millis;

/// More transitions than this in one step means a cycle that never waits
/// (say, a mapping error routed back to the same state).
const MAX_CHAIN: usize = 1_000;

impl Machine<'_> {
    /// Enters states until one waits for something or ends.
    pub(super) fn drive(&mut self) {
        while let Some(name) = self.next.take() {
            self.chain += 1;
            if self.chain > MAX_CHAIN {
                self.inst.state = name;
                let f = Failure::new(
                    "mapping",
                    format!(
                        "stopped after {MAX_CHAIN} transitions that never waited for an action"
                    ),
                );
                return self.park(f, ParkedOn::Enter);
            }
            self.enter(&name);
        }
    }

    pub(super) fn visit(&mut self, name: &str) -> u32 {
        let v = self.inst.visits.entry(name.to_owned()).or_insert(0);
        *v += 1;
        *v
    }

    pub(super) fn policy(&self, own: Option<&RetryPolicy>, action: &str) -> RetryPolicy {
        own.or_else(|| self.defaults.retry(action))
            .cloned()
            .unwrap_or_default()
    }

    /// Enters a state and does what entering it means.
    fn enter(&mut self, name: &str) {
        self.inst.state = name.to_owned();
        self.inst.step = None;
        self.inst.waiting = None;
        self.close_fan();
        let Some(state) = self.process.state(name) else {
            // Validation makes this impossible for a process's own states;
            // it can only come from a stored instance and a changed process.
            let f = Failure::new("mapping", format!("the process has no state '{name}'"));
            return self.park(f, ParkedOn::Enter);
        };
        match &state.kind {
            StateKind::Task(task) => {
                let visit = self.visit(name);
                let key = String::from(StepKey::visit(&self.inst.id, name, visit));
                let input = match &task.input {
                    None => Ok(Value::clone(&self.inst.data)),
                    Some(e) => e.eval(&self.inst.data),
                };
                let mut step = ActiveStep {
                    state: name.to_owned(),
                    action: task.action.clone(),
                    key,
                    attempt: 1,
                    tries: 1,
                    input: Value::Null,
                    started_at: self.now,
                    attempt_started_at: self.now,
                    deadline_at: task.deadline.map(|d| self.now.plus(d)),
                    retry: self.policy(task.retry.as_ref(), &task.action),
                    timeout: task.timeout.or_else(|| self.defaults.timeout(&task.action)),
                    heartbeat: task.heartbeat,
                    last_heartbeat: None,
                    phase: Phase::Invoking,
                    undoes: None,
                };
                match input {
                    Ok(input) => {
                        step.input = input;
                        self.inst.status = Status::Running;
                        if let Some(at) = step.deadline_at {
                            self.arm(TimerKind::Deadline, &step.key.clone(), at);
                        }
                        self.invoke(&step);
                        self.inst.step = Some(step);
                    }
                    Err(e) => {
                        let f = Failure::new("mapping", format!("input of '{name}': {e}"));
                        self.route_failure(&step, f, ParkedOn::Enter);
                    }
                }
            }
            StateKind::Succeed { output } => {
                let out = match output {
                    None => Ok(Value::clone(&self.inst.data)),
                    Some(e) => e.eval(&self.inst.data),
                };
                match out {
                    Ok(out) => {
                        self.inst.status = Status::Succeeded;
                        self.inst.output = Some(out.clone());
                        self.record(RecordKind::Succeeded {
                            state: name.to_owned(),
                            output: out,
                        });
                    }
                    Err(e) => self.park(
                        Failure::new("mapping", format!("output of '{name}': {e}")),
                        ParkedOn::Enter,
                    ),
                }
            }
            StateKind::Fail { error, cause } => {
                let err = self.fail_error(name, error.as_deref(), cause.as_ref());
                self.inst.status = Status::Failed;
                self.inst.error = Some(err.clone());
                self.record(RecordKind::Failed {
                    state: name.to_owned(),
                    error: err,
                });
            }
            StateKind::Compensate { then } => {
                self.visit(name);
                self.inst.status = Status::Running;
                self.inst.compensating = Some(Some(then.clone()));
                self.next_undo();
            }
            StateKind::Wait(wait) => {
                let visit = self.visit(name);
                let key = String::from(StepKey::visit(&self.inst.id, name, visit));
                let until = match &wait.timer {
                    None => Ok(wait.timeout.map(|t| self.now.plus(t))),
                    Some(WaitTimer::For(d)) => Ok(Some(self.now.plus(*d))),
                    Some(WaitTimer::Until(e)) => match e.eval(&self.inst.data) {
                        Ok(Value::String(s)) => Millis::parse_rfc3339(&s)
                            .map(Some)
                            .map_err(|e| e.to_string()),
                        Ok(other) => Err(format!(
                            "`until` gave {other}, not an RFC 3339 time as a string"
                        )),
                        Err(e) => Err(e.to_string()),
                    },
                };
                let until = match until {
                    Ok(u) => u,
                    Err(e) => {
                        let f = Failure::new("mapping", format!("the wait of '{name}': {e}"));
                        return self.route_state_failure(name, &key, self.now, f, ParkedOn::Enter);
                    }
                };
                self.inst.status = Status::Waiting;
                self.record(RecordKind::Waiting {
                    state: name.to_owned(),
                    events: wait.events.clone(),
                    until,
                });
                self.inst.waiting = Some(Waiting {
                    key: key.clone(),
                    events: wait.events.clone(),
                    since: self.now,
                    until,
                });
                match until {
                    // A time already past fires at once, without a timer.
                    Some(at) if at <= self.now => self.wait_over(),
                    Some(at) => self.arm(TimerKind::Wait, &key, at),
                    None => {}
                }
            }
            StateKind::Parallel(p) => {
                let slots = p
                    .branches
                    .iter()
                    .map(|(b, _)| Slot {
                        name: b.clone(),
                        input: Value::clone(&self.inst.data),
                        inst: None,
                        outcome: None,
                    })
                    .collect();
                self.enter_fan(name, slots);
            }
            StateKind::Map(m) => match m.items.eval(&self.inst.data) {
                Ok(Value::Array(items)) => {
                    let slots = items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| Slot {
                            name: i.to_string(),
                            input: serde_json::json!({ "item": item, "index": i }),
                            inst: None,
                            outcome: None,
                        })
                        .collect();
                    self.enter_fan(name, slots);
                }
                other => {
                    let why = match other {
                        Ok(v) => format!("`items` gave {v}, not an array"),
                        Err(e) => e.to_string(),
                    };
                    let visit = self.visit(name);
                    let key = String::from(StepKey::visit(&self.inst.id, name, visit));
                    let f = Failure::new("mapping", format!("the items of '{name}': {why}"));
                    self.route_state_failure(name, &key, self.now, f, ParkedOn::Enter);
                }
            },
        }
    }

    fn fail_error(
        &self,
        state: &str,
        error: Option<&str>,
        cause: Option<&crate::Expr>,
    ) -> InstanceError {
        let last = self.inst.data.get("error");
        let message = match cause {
            Some(e) => match e.eval(&self.inst.data) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => format!("(cause could not be computed: {e})"),
            },
            None => last
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("the process reached a fail state")
                .to_owned(),
        };
        let kind = error.map(str::to_owned).unwrap_or_else(|| {
            last.and_then(|e| e.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_owned()
        });
        InstanceError {
            state: state.to_owned(),
            kind,
            message,
        }
    }
}
