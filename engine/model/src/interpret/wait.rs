//! Wait states: a signal they accept, or their timer running out.

use serde_json::Value;

use super::{Machine, Rejected};
use crate::instance::Status;
use crate::process::StateKind;

impl Machine<'_> {
    /// The wait state's timer fired: `timeout` for a wait for signals,
    /// `elapsed` for a `wait:` timer.
    pub(super) fn wait_over(&mut self) {
        let Some(w) = self.inst.waiting.take() else {
            return;
        };
        let event = match self.process.state(&self.inst.state).map(|s| &s.kind) {
            Some(StateKind::Wait(wait)) if wait.timer.is_some() => "elapsed",
            _ => "timeout",
        };
        self.unarm_step(&w.key, &[]);
        self.inst.status = Status::Running;
        let state = self.inst.state.clone();
        self.take(event, Some(&w.key), &state, w.since, None, None);
    }

    /// A signal the wait state accepts: store its payload, move on.
    pub(super) fn signalled(&mut self, name: &str, payload: &Value) -> Result<(), Rejected> {
        let Some(w) = self.inst.waiting.take() else {
            return Ok(());
        };
        self.unarm_step(&w.key, &[]);
        self.inst.status = Status::Running;
        let state = self.inst.state.clone();
        let output = match self.process.state(&state).map(|s| &s.kind) {
            Some(StateKind::Wait(wait)) => wait.output.clone(),
            _ => None,
        };
        let merged = match (&output, payload) {
            (Some(path), _) => path
                .set(&self.inst.data, payload)
                .map_err(|e| e.to_string()),
            (None, Value::Object(fields)) => {
                let mut data = Value::clone(&self.inst.data);
                if let Value::Object(map) = &mut data {
                    map.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Ok(data)
            }
            (None, Value::Null) => Ok(Value::clone(&self.inst.data)),
            (None, other) => Err(format!(
                "the payload {other} is not an object, and the state has no `output` path to store it at"
            )),
        };
        self.inst.data = std::sync::Arc::new(merged.map_err(|why| Rejected::BadPayload {
            event: name.to_owned(),
            why,
        })?);
        self.take(
            name,
            Some(&w.key),
            &state,
            w.since,
            Some(payload.clone()),
            None,
        );
        Ok(())
    }
}
