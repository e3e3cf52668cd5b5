//! Compensation: undoing completed compensable steps, newest first, then
//! moving on (a compensate state) or ending cancelled (a cancel).

use serde_json::Value;

use super::Machine;
use crate::instance::{ActiveStep, Failure, ParkedOn, Phase, RecordKind};
use crate::process::StateKind;
use crate::step_key::StepKey;
use crate::time::Span;

impl Machine<'_> {
    /// Starts undoing the newest completed compensable step, or moves on when
    /// there is none left.
    pub(super) fn next_undo(&mut self) {
        let Some(c) = self.inst.undo.last().cloned() else {
            match self.inst.compensating.take() {
                Some(Some(then)) => {
                    self.record(RecordKind::Transition {
                        from: self.inst.state.clone(),
                        event: "compensated".into(),
                        to: then.clone(),
                        took: Span::ZERO,
                        key: None,
                        result: None,
                        failure: None,
                        input: None,
                    });
                    self.next = Some(then);
                }
                _ => self.cancelled(),
            }
            return;
        };
        let comp = match (&c.undo, self.process.state(&c.state).map(|s| &s.kind)) {
            (Some(u), _) => Some((u.action.clone(), Ok(u.input.clone()), u.retry.clone())),
            (None, Some(StateKind::Task(t))) => t.compensate.as_ref().map(|comp| {
                let input = match &comp.input {
                    None => Ok(c.result.clone()),
                    Some(e) => e.eval(&self.inst.data),
                };
                (comp.action.clone(), input, comp.retry.clone())
            }),
            _ => None,
        };
        let Some((action, input, retry)) = comp else {
            // The step was compensable when it completed; only a changed
            // process can make this so. Drop it rather than stall.
            self.inst.undo.pop();
            return self.next_undo();
        };
        let input = match input {
            Ok(v) => v,
            Err(e) => {
                let f = Failure::new("mapping", format!("input for undoing '{}': {e}", c.state));
                return self.park(f, ParkedOn::Undo);
            }
        };
        let step = ActiveStep {
            state: self.inst.state.clone(),
            action: action.clone(),
            key: StepKey::undo(&c.key).into(),
            attempt: 1,
            tries: 1,
            input,
            started_at: self.now,
            attempt_started_at: self.now,
            deadline_at: None,
            retry: self.policy(retry.as_ref(), &action),
            timeout: self.defaults.timeout(&action),
            heartbeat: None,
            last_heartbeat: None,
            phase: Phase::Invoking,
            undoes: Some(c.state.clone()),
        };
        self.invoke(&step);
        self.inst.step = Some(step);
    }

    pub(super) fn undone(&mut self, step: &ActiveStep, undone: &str, result: &Value) {
        if let Some(i) = self.inst.undo.iter().rposition(|c| c.state == undone) {
            self.inst.undo.remove(i);
        }
        self.record(RecordKind::Compensated {
            state: self.inst.state.clone(),
            undone: undone.to_owned(),
            action: step.action.clone(),
            key: step.key.clone(),
            result: result.clone(),
        });
        self.next_undo();
    }
}
