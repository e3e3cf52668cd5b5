//! A task's step: finding the step an event is about, invoking it, and what
//! its outcomes, heartbeats and timers do — retry, fail, or move on.

use serde_json::Value;

use super::{Machine, Rejected};
use crate::instance::{
    ActiveStep, Command, Compensable, Failure, Invoke, ParkedOn, Phase, RecordKind, TimerKind,
};
use crate::process::StateKind;
use crate::retry::seed;

impl Machine<'_> {
    // ---- finding the step an event is about -------------------------------

    pub(super) fn step_for(&self, key: &str) -> Result<ActiveStep, Rejected> {
        self.inst
            .step
            .clone()
            .filter(|s| s.key == key)
            .ok_or_else(|| Rejected::Stale {
                key: key.to_owned(),
            })
    }

    /// The step, if it is waiting for an outcome (invoking or pending).
    pub(super) fn waiting_step(&self, key: &str) -> Result<ActiveStep, Rejected> {
        let step = self.step_for(key)?;
        match step.phase {
            Phase::Invoking | Phase::Pending { .. } => Ok(step),
            Phase::Backoff { .. } => Err(Rejected::Stale {
                key: key.to_owned(),
            }),
        }
    }

    /// Ends whatever the current attempt is waiting on: the invocation is
    /// settled, a token closed, attempt timers cancelled.
    fn end_attempt(&mut self, step: &ActiveStep) {
        match &step.phase {
            Phase::Invoking => self.settled.push(step.key.clone()),
            Phase::Pending { token } => {
                self.commands.push(Command::CloseToken {
                    token: token.clone(),
                    key: step.key.clone(),
                });
            }
            Phase::Backoff { .. } => {}
        }
        self.unarm_step(
            &step.key,
            &[TimerKind::Timeout, TimerKind::Heartbeat, TimerKind::Retry],
        );
    }

    /// Ends the step for good.
    pub(super) fn end_step(&mut self, step: &ActiveStep) {
        self.end_attempt(step);
        self.unarm_step(&step.key, &[]);
        self.inst.step = None;
    }

    pub(super) fn invoke(&mut self, step: &ActiveStep) {
        self.commands.push(Command::Invoke(Invoke {
            instance: self.inst.id.clone(),
            process: self.inst.process.clone(),
            version: self.inst.version,
            state: step.state.clone(),
            action: step.action.clone(),
            key: step.key.clone(),
            attempt: step.attempt,
            input: step.input.clone(),
            last_heartbeat: step.last_heartbeat.clone(),
            timeout: step.timeout,
            heartbeat: step.heartbeat,
        }));
    }

    // ---- outcomes ---------------------------------------------------------------

    pub(super) fn step_done(&mut self, step: ActiveStep, result: &Value) {
        self.end_step(&step);
        if let Some(undone) = &step.undoes {
            return self.undone(&step, undone, result);
        }
        let Some(StateKind::Task(task)) = self.process.state(&step.state).map(|s| &s.kind) else {
            return self.park(
                Failure::new("mapping", format!("'{}' is not a task state", step.state)),
                ParkedOn::Enter,
            );
        };
        if let Some(path) = &task.output {
            match path.set(&self.inst.data, result) {
                Ok(data) => self.inst.data = std::sync::Arc::new(data),
                Err(e) => {
                    let f = Failure::new("mapping", format!("output of '{}': {e}", step.state));
                    return self.route_failure(&step, f, ParkedOn::Step);
                }
            }
        }
        if task.compensate.is_some() {
            self.inst.undo.push(Compensable {
                state: step.state.clone(),
                key: step.key.clone(),
                result: result.clone(),
                undo: None,
            });
        }
        self.take(
            "done",
            Some(&step.key),
            &step.state,
            step.started_at,
            Some(result.clone()),
            None,
        );
        self.note_input(&step.key, &step.input);
    }

    /// An attempt failed: retry it if the policy allows and time is left,
    /// else the step fails.
    pub(super) fn attempt_failed(
        &mut self,
        mut step: ActiveStep,
        failure: Failure,
        heartbeat: Option<String>,
    ) {
        self.end_attempt(&step);
        if heartbeat.is_some() {
            step.last_heartbeat = heartbeat.clone();
        }
        let backoff = match failure.retry_after {
            // Clamped here too: a failure can also come from outside (a
            // completed token), not only from `Failure::retry_after`.
            Some(asked) => asked.min(crate::instance::MAX_RETRY_AFTER),
            None => step.retry.delay(step.tries, seed(&step.key)),
        };
        let retry_at = self.now.plus(backoff);
        let in_time = step.deadline_at.is_none_or(|d| retry_at < d);
        if step.retry.retries(&failure.kind) && step.tries < step.retry.max_attempts && in_time {
            self.record(RecordKind::AttemptFailed {
                state: step.state.clone(),
                action: step.action.clone(),
                attempt: step.attempt,
                failure,
                retry_at,
                heartbeat,
            });
            step.phase = Phase::Backoff { until: retry_at };
            self.arm(TimerKind::Retry, &step.key.clone(), retry_at);
            self.inst.step = Some(step);
            return;
        }
        self.unarm_step(&step.key, &[]);
        self.inst.step = None;
        if let Some(undone) = &step.undoes {
            // A compensation that still fails waits for an operator.
            self.inst.step = Some(ActiveStep {
                phase: Phase::Backoff { until: self.now },
                ..step.clone()
            });
            let f = Failure::new(
                failure.kind,
                format!(
                    "undoing '{undone}' with {} failed: {}",
                    step.action, failure.message
                ),
            );
            return self.park(f, ParkedOn::Step);
        }
        self.route_failure(&step, failure, ParkedOn::Step);
    }

    pub(super) fn pending(&mut self, mut step: ActiveStep, token: &str) {
        // The invocation is over; the token now stands for the attempt.
        self.settled.push(step.key.clone());
        step.phase = Phase::Pending {
            token: token.to_owned(),
        };
        self.commands.push(Command::OpenToken {
            token: token.to_owned(),
            key: step.key.clone(),
        });
        if let Some(t) = step.timeout {
            self.arm(
                TimerKind::Timeout,
                &step.key.clone(),
                step.attempt_started_at.plus(t),
            );
        }
        if let Some(h) = step.heartbeat {
            self.arm(TimerKind::Heartbeat, &step.key.clone(), self.now.plus(h));
        }
        self.record(RecordKind::Pending {
            state: step.state.clone(),
            token: token.to_owned(),
        });
        self.inst.step = Some(step);
    }

    pub(super) fn heartbeat(&mut self, mut step: ActiveStep, details: &str) {
        step.last_heartbeat = Some(details.to_owned());
        if let Some(h) = step.heartbeat {
            self.unarm_step(&step.key, &[TimerKind::Heartbeat]);
            self.arm(TimerKind::Heartbeat, &step.key.clone(), self.now.plus(h));
        }
        self.inst.step = Some(step);
    }

    pub(super) fn timer_fired(&mut self, mut step: ActiveStep, kind: TimerKind) {
        match kind {
            TimerKind::Retry => {
                step.attempt += 1;
                step.tries += 1;
                step.attempt_started_at = self.now;
                step.phase = Phase::Invoking;
                self.invoke(&step);
                self.inst.step = Some(step);
            }
            TimerKind::Timeout => {
                let within = step.timeout.unwrap_or_default();
                let f = Failure::new("timeout", format!("no outcome within {within}"));
                self.attempt_failed(step, f, None);
            }
            TimerKind::Heartbeat => {
                let every = step.heartbeat.unwrap_or_default();
                let f = Failure::new("heartbeat", format!("no heartbeat for {every}"));
                let last = step.last_heartbeat.clone();
                self.attempt_failed(step, f, last);
            }
            // Handled before a step is looked for.
            TimerKind::Wait | TimerKind::Sla => self.inst.step = Some(step),
            TimerKind::Deadline => {
                // Out of time for good: no retry, whatever is in flight is dropped.
                self.end_step(&step);
                let at = step
                    .deadline_at
                    .map(|d| d.since(step.started_at))
                    .unwrap_or_default();
                let f = Failure::new(
                    "timeout",
                    format!("the step did not finish within its deadline of {at}"),
                );
                if step.undoes.is_some() {
                    self.inst.step = Some(ActiveStep {
                        phase: Phase::Backoff { until: self.now },
                        ..step
                    });
                    return self.park(f, ParkedOn::Step);
                }
                self.route_failure(&step, f, ParkedOn::Step);
            }
        }
    }
}
