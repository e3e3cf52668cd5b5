//! Parallel and map states: starting branches as sub-instances, passing
//! them their events, joining their results, or failing and stopping them.

use serde_json::Value;
use std::sync::Arc;

use super::{Applied, Machine, Rejected, apply, start};
use crate::instance::{
    Command, Compensable, Event, Failure, Fan, Instance, InstanceError, ParkedOn, Record, Slot,
    Status, UndoBy,
};
use crate::process::{Process, StateKind, Tolerance};
use crate::step_key::StepKey;

impl Machine<'_> {
    pub(super) fn enter_fan(&mut self, name: &str, slots: Vec<Slot>) {
        let visit = self.visit(name);
        let key = StepKey::visit(&self.inst.id, name, visit).into();
        self.inst.status = Status::Running;
        self.inst.fan = Some(Box::new(Fan::new(key, self.now, slots)));
        self.fan_progress();
    }

    /// The machine slot `i` of the current fan runs.
    fn branch_process(&self, i: usize) -> Option<Arc<Process>> {
        match self.process.state(&self.inst.state).map(|s| &s.kind) {
            Some(StateKind::Parallel(p)) => p.branches.get(i).map(|(_, b)| b.clone()),
            Some(StateKind::Map(m)) => Some(m.branch.clone()),
            _ => None,
        }
    }

    /// Takes what a branch's interpreter produced into this instance: its
    /// records join this history (marked with the branch), its commands are
    /// this instance's. Returns the branch as it now is.
    fn lift(&mut self, slot: &str, applied: Applied) -> Instance {
        let parent = self.inst.id.clone();
        for r in applied.records {
            let branch = Some(match r.branch {
                Some(inner) => format!("{slot}/{inner}"),
                None => slot.to_owned(),
            });
            self.records.push(Record {
                seq: self.inst.seq,
                at: r.at,
                branch,
                bindings: r.bindings,
                plugin: r.plugin,
                kind: r.kind,
            });
            self.inst.seq += 1;
        }
        for c in applied.commands {
            self.commands.push(match c {
                Command::Invoke(mut i) => {
                    i.instance = parent.clone();
                    i.process = self.inst.process.clone();
                    i.version = self.inst.version;
                    Command::Invoke(i)
                }
                Command::ArmTimer(mut t) => {
                    t.instance = parent.clone();
                    Command::ArmTimer(t)
                }
                Command::CancelTimer(mut t) => {
                    t.instance = parent.clone();
                    Command::CancelTimer(t)
                }
                other => other,
            });
        }
        self.settled.extend(applied.settled);
        applied.instance
    }

    fn start_slot(&mut self, i: usize) {
        let Some(branch) = self.branch_process(i) else {
            return;
        };
        let Some((id, name, input)) = self.inst.fan.as_ref().and_then(|f| {
            let s = f.slot(i)?;
            let id = StepKey::branch(&f.key, &s.name);
            Some((id, s.name.clone(), s.input.clone()))
        }) else {
            return;
        };
        let applied = start(&branch, self.defaults, id, input, self.now);
        let sub = self.lift(&name, applied);
        if let Some(fan) = self.inst.fan.as_mut() {
            fan.mark_started();
            if let Some(slot) = fan.slot_mut(i) {
                slot.inst = Some(sub);
            }
        }
    }

    /// An event for a step inside a branch.
    pub(super) fn fan_event(&mut self, event: &Event) -> Result<(), Rejected> {
        let key = event.key().unwrap_or_default();
        let stale = || Rejected::Stale {
            key: key.to_owned(),
        };
        let fan = self.inst.fan.as_ref().ok_or_else(stale)?;
        let (i, slot) = fan
            .running()
            .find(|(_, s)| StepKey::is_inside(key, StepKey::branch(&fan.key, &s.name).as_str()))
            .ok_or_else(stale)?;
        let (name, sub) = (slot.name.clone(), slot.inst.clone());
        let (branch, sub) = self.branch_process(i).zip(sub).ok_or_else(stale)?;
        let applied = apply(&branch, self.defaults, &sub, event, self.now)?;
        let sub = self.lift(&name, applied);
        if let Some(slot) = self.inst.fan.as_mut().and_then(|f| f.slot_mut(i)) {
            slot.inst = Some(sub);
        }
        self.fan_progress();
        Ok(())
    }

    /// Notes branches that ended; fails the fan when too many failed,
    /// starts waiting items while there is room, joins when all ended.
    fn fan_progress(&mut self) {
        let (limit, tolerated) = match self.process.state(&self.inst.state).map(|s| &s.kind) {
            Some(StateKind::Parallel(_)) => (0, Tolerance::Count(0)),
            Some(StateKind::Map(m)) => (m.max_concurrency, m.tolerated),
            _ => return,
        };
        loop {
            let Some(fan) = self.inst.fan.as_mut() else {
                return;
            };
            // Only running branches can have ended since the last look.
            let ended: Vec<(usize, Result<Value, InstanceError>)> = fan
                .running()
                .filter_map(|(i, slot)| {
                    let sub = slot.inst.as_ref()?;
                    match sub.status {
                        Status::Succeeded => {
                            Some((i, Ok(sub.output.clone().unwrap_or(Value::Null))))
                        }
                        Status::Failed | Status::Cancelled | Status::Parked => Some((
                            i,
                            Err(sub.error.clone().unwrap_or_else(|| InstanceError {
                                state: sub.state.clone(),
                                kind: "failed".into(),
                                message: "the branch ended without succeeding".into(),
                            })),
                        )),
                        Status::Running | Status::Waiting => None,
                    }
                })
                .collect();
            let mut first_failure = None;
            for (i, outcome) in ended {
                fan.mark_ended(i);
                let Some(slot) = fan.slot_mut(i) else {
                    continue;
                };
                if let Err(e) = &outcome {
                    first_failure.get_or_insert_with(|| (slot.name.clone(), e.clone()));
                }
                let failed = outcome.is_err();
                slot.outcome = Some(outcome);
                if failed {
                    fan.failed += 1;
                }
            }
            if let Some((name, err)) = first_failure
                && tolerated.exceeded(fan.failed, fan.len())
            {
                return self.fail_fan(&name, err);
            }
            let room = if limit == 0 {
                usize::MAX
            } else {
                limit.saturating_sub(fan.running().count())
            };
            let next = fan.started()..fan.len().min(fan.started().saturating_add(room));
            if next.is_empty() {
                if fan.all_ended() {
                    self.join_fan();
                }
                return;
            }
            for i in next {
                self.start_slot(i);
            }
        }
    }

    fn join_fan(&mut self) {
        let Some(fan) = self.close_fan() else {
            return;
        };
        let state = self.inst.state.clone();
        let (is_map, output) = match self.process.state(&state).map(|s| &s.kind) {
            Some(StateKind::Map(m)) => (true, m.output.clone()),
            Some(StateKind::Parallel(p)) => (false, p.output.clone()),
            _ => (false, None),
        };
        let value = |s: &Slot| match &s.outcome {
            Some(Ok(v)) => v.clone(),
            _ => Value::Null,
        };
        let result = if is_map {
            Value::Array(fan.slots().map(value).collect())
        } else {
            Value::Object(fan.slots().map(|s| (s.name.clone(), value(s))).collect())
        };
        self.merge_undo(&fan);
        if let Some(path) = output {
            match path.set(&self.inst.data, &result) {
                Ok(data) => self.inst.data = Arc::new(data),
                Err(e) => {
                    let f = Failure::new("mapping", format!("output of '{state}': {e}"));
                    return self.route_state_failure(
                        &state,
                        &fan.key,
                        self.now,
                        f,
                        ParkedOn::Enter,
                    );
                }
            }
        }
        self.take(
            "done",
            Some(&fan.key),
            &state,
            fan.since,
            Some(result),
            None,
        );
    }

    /// A branch failed beyond what is tolerated: stop the others, keep what
    /// they completed for compensation, and route the failure.
    fn fail_fan(&mut self, name: &str, err: InstanceError) {
        let key = self
            .inst
            .fan
            .as_ref()
            .map(|f| f.key.clone())
            .unwrap_or_default();
        self.stop_fan();
        let state = self.inst.state.clone();
        let f = Failure::new(
            err.kind,
            format!("branch '{name}' failed in '{}': {}", err.state, err.message),
        );
        self.route_state_failure(&state, &key, self.now, f, ParkedOn::Enter);
    }

    /// Cancels every branch still running; their completed compensable
    /// steps join this instance's.
    pub(super) fn stop_fan(&mut self) {
        let Some(mut fan) = self.close_fan() else {
            return;
        };
        let running: Vec<(usize, String, Instance)> = fan
            .running()
            .filter_map(|(i, s)| Some((i, s.name.clone(), s.inst.clone()?)))
            .collect();
        for (i, name, sub) in running {
            let Some(branch) = self.branch_process(i) else {
                continue;
            };
            let cancel = Event::Cancel { compensate: false };
            if let Ok(a) = apply(&branch, self.defaults, &sub, &cancel, self.now) {
                let sub = self.lift(&name, a);
                if let Some(slot) = fan.slot_mut(i) {
                    slot.inst = Some(sub);
                }
            }
        }
        self.merge_undo(&fan);
    }

    /// Ends the current fan: a store may drop the slots it kept for it.
    pub(super) fn close_fan(&mut self) -> Option<Box<Fan>> {
        let fan = self.inst.fan.take()?;
        self.closed_fans.push(fan.key.clone());
        Some(fan)
    }

    /// Completed compensable steps of every branch, with how to undo each.
    fn merge_undo(&mut self, fan: &Fan) {
        for (i, slot) in fan.slots().enumerate() {
            let (Some(sub), Some(branch)) = (&slot.inst, self.branch_process(i)) else {
                continue;
            };
            for c in &sub.undo {
                let undo = c.undo.clone().or_else(|| {
                    let Some(StateKind::Task(t)) = branch.state(&c.state).map(|s| &s.kind) else {
                        return None;
                    };
                    let comp = t.compensate.as_ref()?;
                    let input = match &comp.input {
                        None => c.result.clone(),
                        Some(e) => e.eval(&sub.data).unwrap_or_else(|_| c.result.clone()),
                    };
                    Some(UndoBy {
                        action: comp.action.clone(),
                        input,
                        retry: comp.retry.clone(),
                    })
                });
                if let Some(undo) = undo {
                    self.inst.undo.push(Compensable {
                        state: format!("{}/{}", slot.name, c.state),
                        key: c.key.clone(),
                        result: c.result.clone(),
                        undo: Some(undo),
                    });
                }
            }
        }
    }
}
