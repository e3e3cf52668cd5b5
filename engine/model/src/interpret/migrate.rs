//! Migration: moving a running instance to another version of its process.

use super::{Applied, Machine};
use crate::instance::{Instance, RecordKind};
use crate::process::{Process, State, StateKind, WaitTimer};
use crate::time::Millis;

/// Why an instance cannot move to another version. Not an error: an operator
/// asked, and the answer is no, with the reason as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Moves an instance to another version of its process, or says why its
/// current state or data does not fit that version. The instance keeps its
/// state, data, history, completed steps and timers; from now on it follows
/// `to`.
pub fn migrate(to: &Process, instance: &Instance, now: Millis) -> Result<Applied, Refused> {
    let state = fits(to, instance).map_err(Refused)?;
    let mut inst = instance.clone();
    inst.version = to.version;
    if let (Some(w), StateKind::Wait(wait)) = (&mut inst.waiting, &state.kind) {
        w.events = wait.events.clone();
    }
    let mut m = Machine::new(to, &crate::NoDefaults, inst, now);
    m.record(RecordKind::Migrated {
        state: instance.state.clone(),
        from_version: instance.version,
        to_version: to.version,
    });
    Ok(m.finish())
}

/// The state of `to` the instance would be in, or why it does not fit there.
fn fits<'p>(to: &'p Process, instance: &Instance) -> Result<&'p State, String> {
    if instance.status.is_finished() {
        return Err(format!("the instance has already {}", instance.status));
    }
    if to.name != instance.process {
        return Err(format!(
            "the instance runs process '{}', not '{}'",
            instance.process, to.name
        ));
    }
    if to.version == instance.version {
        return Err(format!("the instance already runs version {}", to.version));
    }
    if instance.fan.is_some() {
        return Err(format!(
            "the instance is inside the branches of '{}'; migrate it before or after them",
            instance.state
        ));
    }
    let here = &instance.state;
    let v = to.version;
    let state = to
        .state(here)
        .ok_or_else(|| format!("version {v} has no state '{here}', where the instance is"))?;
    let kind_name = |k: &StateKind| match k {
        StateKind::Task(_) => "task",
        StateKind::Succeed { .. } => "succeed",
        StateKind::Fail { .. } => "fail",
        StateKind::Compensate { .. } => "compensate",
        StateKind::Wait(_) => "wait",
        StateKind::Parallel(_) => "parallel",
        StateKind::Map(_) => "map",
    };
    let data = &instance.data;
    let evaluates = |what: &str, e: &crate::Expr| {
        e.eval(data).map(|_| ()).map_err(|err| {
            format!("the instance data does not fit version {v}: {what} fails: {err}")
        })
    };
    match (&state.kind, &instance.step, &instance.waiting) {
        (StateKind::Task(t), Some(step), _) if step.undoes.is_none() => {
            if t.action != step.action {
                return Err(format!(
                    "in version {v}, '{here}' runs '{}', but the instance is running '{}' there",
                    t.action, step.action
                ));
            }
            if let Some(e) = &t.input {
                evaluates(&format!("the input of '{here}'"), e)?;
            }
        }
        (StateKind::Compensate { .. }, _, _) => {}
        (StateKind::Wait(w), _, Some(waiting)) => {
            let _ = waiting;
            if let Some(WaitTimer::Until(e)) = &w.timer {
                evaluates(&format!("the `until` of '{here}'"), e)?;
            }
        }
        (k, _, _) => {
            let was = if instance.waiting.is_some() {
                "wait"
            } else if instance.step.as_ref().is_some_and(|s| s.undoes.is_some()) {
                "compensate"
            } else if instance.step.is_some() {
                "task"
            } else {
                "other"
            };
            if was != "other" && kind_name(k) != was {
                return Err(format!(
                    "in version {v}, '{here}' is a {} state, but the instance is in a {was} state there",
                    kind_name(k)
                ));
            }
        }
    }
    for t in &state.on {
        for arm in &t.arms {
            if let Some(g) = &arm.guard {
                g.test(data).map_err(|err| {
                    format!(
                        "the instance data does not fit version {v}: a guard of '{here}' on '{}' fails: {err}",
                        t.event
                    )
                })?;
            }
        }
    }
    // A step completed inside a branch carries how to undo it (settled when
    // its branch ended), so it does not depend on the version's states.
    for done in instance.undo.iter().filter(|d| d.undo.is_none()) {
        let undoable = matches!(
            to.state(&done.state).map(|s| &s.kind),
            Some(StateKind::Task(t)) if t.compensate.is_some()
        );
        if !undoable {
            return Err(format!(
                "the instance completed '{}', which version {v} could not undo (no such task with `compensate`)",
                done.state
            ));
        }
    }
    Ok(state)
}
