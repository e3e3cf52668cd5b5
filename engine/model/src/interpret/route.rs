//! Routing: following the transition an event leads to, routing failures
//! as `error.<kind>`, and parking when nothing routes them.

use serde_json::Value;

use super::Machine;
use crate::instance::{
    ActiveStep, Failure, InstanceError, ParkedOn, Phase, RecordKind, Status, Timer,
};
use crate::process::Arm;
use crate::time::Millis;

impl Machine<'_> {
    /// Routes a step's final failure as `error.<kind>`, after storing it at
    /// `.error`; parks when nothing routes it.
    pub(super) fn route_failure(&mut self, step: &ActiveStep, failure: Failure, parked: ParkedOn) {
        let event = format!("error.{}", failure.kind);
        if parked == ParkedOn::Step && !self.has_route(&step.state, &event) {
            // Keep the step so a redrive can invoke it again.
            self.inst.step = Some(ActiveStep {
                phase: Phase::Backoff { until: self.now },
                ..step.clone()
            });
        }
        self.route_state_failure(&step.state, &step.key, step.started_at, failure, parked);
        self.note_input(&step.key, &step.input);
    }

    /// Writes the input a step got into the transition that ended it; an
    /// input over `KEPT_INPUT` bytes of JSON is named, not kept (the
    /// instance data holds what it was made from).
    pub(super) fn note_input(&mut self, key: &str, value: &Value) {
        const KEPT_INPUT: usize = 64 << 10;
        let size = serde_json::to_vec(value).map_or(0, |v| v.len());
        let value = if size > KEPT_INPUT {
            &Value::String(format!(
                "(an input of {size} bytes: not kept in the history)"
            ))
        } else {
            value
        };
        for r in self.records.iter_mut().rev() {
            if let RecordKind::Transition {
                key: Some(k),
                input,
                ..
            } = &mut r.kind
                && k == key
            {
                if input.is_none() {
                    *input = Some(value.clone());
                }
                return;
            }
        }
    }

    /// Routes the failure of what `state` was doing (its step, its wait,
    /// its branches) as `error.<kind>`, after storing it at `.error`; parks
    /// when nothing routes it.
    pub(super) fn route_state_failure(
        &mut self,
        state: &str,
        key: &str,
        since: Millis,
        failure: Failure,
        parked: ParkedOn,
    ) {
        if let Value::Object(map) = std::sync::Arc::make_mut(&mut self.inst.data) {
            map.insert(
                "error".to_owned(),
                serde_json::json!({
                    "state": state,
                    "kind": failure.kind,
                    "message": failure.message,
                }),
            );
        }
        let event = format!("error.{}", failure.kind);
        if !self.has_route(state, &event) {
            return self.park(failure, parked);
        }
        self.take(&event, Some(key), state, since, None, Some(failure));
    }

    fn has_route(&self, state: &str, event: &str) -> bool {
        self.process
            .state(state)
            .and_then(|s| s.route(event))
            .is_some()
    }

    /// Follows the transition `event` leads to from the step's state, or
    /// parks when there is none.
    pub(super) fn take(
        &mut self,
        event: &str,
        key: Option<&str>,
        from: &str,
        started_at: Millis,
        result: Option<Value>,
        failure: Option<Failure>,
    ) {
        let from = from.to_owned();
        let arms: &[Arm] = self
            .process
            .state(&from)
            .and_then(|s| s.route(event))
            .map(|t| t.arms.as_slice())
            .unwrap_or(&[]);
        let to = match choose(arms, &self.inst.data) {
            Ok(Some(to)) => to,
            Ok(None) => {
                let f = failure.clone().unwrap_or_else(|| {
                    Failure::new(
                        "mapping",
                        format!("no transition of '{from}' on '{event}' matched the data"),
                    )
                });
                let on = ParkedOn::Route {
                    event: event.to_owned(),
                    result,
                    failure,
                };
                return self.park(f, on);
            }
            Err(e) => {
                let f = Failure::new("mapping", format!("a guard of '{from}' on '{event}': {e}"));
                // A guard that fails (a runaway expression, data of the wrong
                // shape) is the mapping's failure: routable as
                // `error.mapping`, unless routing an error already failed
                // that way (then nothing could route it: park).
                if !event.starts_with("error") && self.has_route(&from, "error.mapping") {
                    let on = ParkedOn::Route {
                        event: event.to_owned(),
                        result,
                        failure,
                    };
                    return self.route_state_failure(
                        &from,
                        key.unwrap_or_default(),
                        started_at,
                        f,
                        on,
                    );
                }
                let on = ParkedOn::Route {
                    event: event.to_owned(),
                    result,
                    failure,
                };
                return self.park(f, on);
            }
        };
        self.record(RecordKind::Transition {
            from,
            event: event.to_owned(),
            to: to.clone(),
            took: self.now.since(started_at),
            key: key.map(str::to_owned),
            result,
            failure,
            input: None,
        });
        self.next = Some(to);
    }

    pub(super) fn park(&mut self, failure: Failure, on: ParkedOn) {
        let err = InstanceError {
            state: self.inst.state.clone(),
            kind: failure.kind,
            message: failure.message,
        };
        // A parked instance keeps no timers: nothing moves it but an operator.
        let all: Vec<Timer> = self.inst.timers.clone();
        for t in &all {
            self.unarm(t);
        }
        self.inst.status = Status::Parked;
        self.inst.error = Some(err.clone());
        self.inst.parked = Some(on);
        self.record(RecordKind::Parked {
            state: self.inst.state.clone(),
            error: err,
        });
    }
}

/// The first arm whose guard holds (an arm without a guard always holds).
fn choose(arms: &[Arm], data: &Value) -> crate::Result<Option<String>> {
    for arm in arms {
        let holds = match &arm.guard {
            None => true,
            Some(g) => g.test(data)?,
        };
        if holds {
            return Ok(Some(arm.to.clone()));
        }
    }
    Ok(None)
}
