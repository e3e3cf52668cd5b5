//! Operator events: redriving a parked instance and cancelling one, with or
//! without compensation.

use super::Machine;
use crate::instance::{ActiveStep, ParkedOn, Phase, RecordKind, Status, Timer, TimerKind};
use crate::process::StateKind;
use crate::time::Span;

impl Machine<'_> {
    pub(super) fn redrive(&mut self) {
        let on = self.inst.parked.take().unwrap_or(ParkedOn::Enter);
        self.inst.status = Status::Running;
        self.inst.error = None;
        self.record(RecordKind::Redriven {
            state: self.inst.state.clone(),
        });
        match on {
            ParkedOn::Step => match self.inst.step.take() {
                Some(mut step) => {
                    step.attempt += 1;
                    step.tries = 1;
                    step.attempt_started_at = self.now;
                    step.phase = Phase::Invoking;
                    if let Some(d) = self.deadline_of(&step) {
                        step.started_at = self.now;
                        step.deadline_at = Some(self.now.plus(d));
                        self.arm(TimerKind::Deadline, &step.key.clone(), self.now.plus(d));
                    }
                    self.invoke(&step);
                    self.inst.step = Some(step);
                }
                None => self.next = Some(self.inst.state.clone()),
            },
            ParkedOn::Route {
                event,
                result,
                failure,
            } => {
                let state = self.inst.state.clone();
                self.take(&event, None, &state, self.now, result, failure);
            }
            ParkedOn::Enter => self.next = Some(self.inst.state.clone()),
            ParkedOn::Undo => self.next_undo(),
        }
    }

    fn deadline_of(&self, step: &ActiveStep) -> Option<Span> {
        if step.undoes.is_some() {
            return None;
        }
        match self.process.state(&step.state).map(|s| &s.kind) {
            Some(StateKind::Task(t)) => t.deadline,
            _ => None,
        }
    }

    pub(super) fn cancel(&mut self, compensate: bool) {
        let parked = self.inst.status == Status::Parked;
        if let Some(w) = self.inst.waiting.take() {
            self.unarm_step(&w.key, &[]);
        }
        self.stop_fan();
        self.inst.parked = None;
        self.inst.error = None;
        self.inst.status = Status::Running;
        let undoing = self.inst.compensating.is_some();
        if compensate && (undoing || !self.inst.undo.is_empty()) {
            self.record(RecordKind::Cancelling {
                state: self.inst.state.clone(),
            });
            self.inst.compensating = Some(None);
            // An undo already under way carries on; otherwise start one.
            let running_undo = self
                .inst
                .step
                .as_ref()
                .is_some_and(|s| s.undoes.is_some() && !parked);
            if !running_undo {
                if let Some(step) = self.inst.step.take() {
                    self.end_step(&step);
                }
                self.next_undo();
            }
            return;
        }
        if let Some(step) = self.inst.step.take() {
            self.end_step(&step);
        }
        self.cancelled();
    }

    pub(super) fn cancelled(&mut self) {
        self.inst.waiting = None;
        let all: Vec<Timer> = self.inst.timers.clone();
        for t in &all {
            self.unarm(t);
        }
        self.inst.compensating = None;
        self.inst.step = None;
        self.inst.status = Status::Cancelled;
        self.record(RecordKind::Cancelled {
            state: self.inst.state.clone(),
        });
    }
}
