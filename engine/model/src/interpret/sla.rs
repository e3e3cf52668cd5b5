//! SLAs: how long an instance may run, and how long it may stay in a state,
//! before it is flagged as stuck. Each is a durable timer armed when the
//! clock starts. When one fires, the instance is marked overdue and its
//! history says so; nothing else changes: an SLA flags, it does not act.

use super::Machine;
use crate::instance::{Overdue, RecordKind, Timer, TimerKind};
use crate::interpret::Rejected;
use crate::step_key::StepKey;
use crate::time::{Millis, Span};

impl Machine<'_> {
    /// Starts the clock of the process's SLA for a new instance.
    pub(super) fn arm_process_sla(&mut self) {
        if let Some(sla) = self.process.sla {
            let key = StepKey::process_sla(&self.inst.id);
            self.arm(TimerKind::Sla, key.as_str(), self.now.plus(sla));
        }
    }

    /// After every event: the SLA timer of the state the instance is in is
    /// armed (unless it has already fired for this visit), a left state's
    /// is not, and a finished instance keeps none. A state's overdue mark
    /// goes when the instance leaves the state.
    pub(super) fn settle_slas(&mut self) {
        let finished = self.inst.status.is_finished();
        let process_key = String::from(StepKey::process_sla(&self.inst.id));
        let wanted: Option<(String, Span)> = if finished {
            None
        } else {
            let state = self.process.state(&self.inst.state);
            state.and_then(|s| s.sla).map(|sla| {
                let visit = self.inst.visits.get(&self.inst.state).copied().unwrap_or(0);
                let key = StepKey::state_sla(&self.inst.id, &self.inst.state, visit);
                (String::from(key), sla)
            })
        };
        let wanted_key = wanted.as_ref().map(|(k, _)| k.as_str());
        let gone: Vec<Timer> = self
            .inst
            .timers
            .iter()
            .filter(|t| t.kind == TimerKind::Sla)
            .filter(|t| finished || (t.key != process_key && Some(t.key.as_str()) != wanted_key))
            .cloned()
            .collect();
        for t in gone {
            self.unarm(&t);
        }
        self.inst
            .overdue
            .retain(|o| o.state.is_none() || Some(o.key.as_str()) == wanted_key);
        if let Some((key, sla)) = wanted {
            let armed = self
                .inst
                .timers
                .iter()
                .any(|t| t.kind == TimerKind::Sla && t.key == key);
            let fired = self.inst.overdue.iter().any(|o| o.key == key);
            if !armed && !fired {
                self.arm(TimerKind::Sla, &key, self.now.plus(sla));
            }
        }
    }

    /// An SLA timer fired: flags the instance as overdue. Applies to a
    /// parked instance too: parked past its SLA is stuck as much as running.
    pub(super) fn sla_passed(&mut self, key: &str, at: Millis) -> Result<(), Rejected> {
        let timer = Timer {
            instance: self.inst.id.clone(),
            kind: TimerKind::Sla,
            key: key.to_owned(),
            at,
        };
        let stale = || Rejected::Stale {
            key: key.to_owned(),
        };
        if !self.inst.timers.contains(&timer) {
            return Err(stale());
        }
        let for_process = key == StepKey::process_sla(&self.inst.id).as_str();
        let (state, sla) = if for_process {
            (None, self.process.sla)
        } else {
            let state = self.process.state(&self.inst.state);
            (Some(self.inst.state.clone()), state.and_then(|s| s.sla))
        };
        // A migration to a version without this SLA leaves nothing to flag.
        let sla = sla.ok_or_else(stale)?;
        self.unarm(&timer);
        let since = Millis(at.0.saturating_sub(sla.as_millis()));
        self.inst.overdue.push(Overdue {
            state: state.clone(),
            sla,
            since,
            key: key.to_owned(),
        });
        self.record(RecordKind::SlaExceeded {
            state,
            at_state: self.inst.state.clone(),
            sla,
            since,
        });
        Ok(())
    }
}
