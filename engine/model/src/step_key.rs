//! Step keys: how the idempotency key of a step, a wait, a fan or a
//! compensation is laid out, defined in one place.
//!
//! The layout, segments joined by `/`:
//!
//! - a visit of a state: `<instance>/<state>/<visit>`, the visit counting
//!   from 1 for each state. Tasks, waits and parallel and map states (the
//!   "fan key") are keyed alike; the key is the same for every attempt,
//!   restart and redrive of that visit, which is what makes it an
//!   idempotency key.
//! - a branch of a fan runs as an instance of its own, whose id is
//!   `<fan key>/<slot>` (the branch name, or the item's index for a map), so
//!   a step inside it is `<instance>/<state>/<visit>/<slot>/<state>/<visit>`,
//!   and so on for nested fans.
//! - undoing a completed step: `<its key>/undo`.
//! - an SLA timer: `<instance>#sla` for the process's, and
//!   `<instance>#sla/<state>/<visit>` for a visit of a state. `#` is in no
//!   instance id or name, so these are never taken for a step's key or one
//!   inside a fan.
//!
//! Nothing is escaped, and nothing needs to be: an instance id is a ULID
//! (letters and digits), state and branch names are validated to letters,
//! digits, `-`, `_` and `.` (see `validate::names`), and visits and indices
//! are numbers, so `/` only ever separates segments. A visit's key has
//! `3 + 3 * depth` segments and ends in a number; an undo key ends in
//! `undo`, which no visit does; so no two steps share a key, and a key
//! starting with `<fan key>/` belongs to a step inside that fan.
//!
//! Keys are stored (in instances, the outbox, timers and history) as plain
//! strings: this type only builds them.

use std::fmt;

use crate::instance::InstanceId;

/// The key of one step; see the module documentation for the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepKey(String);

impl StepKey {
    /// The `visit`-th visit (from 1) of `state` in `instance`:
    /// `<instance>/<state>/<visit>`.
    pub fn visit(instance: &InstanceId, state: &str, visit: u32) -> StepKey {
        StepKey(format!("{}/{state}/{visit}", instance.as_str()))
    }

    /// The timer of an instance's process SLA: `<instance>#sla`.
    pub fn process_sla(instance: &InstanceId) -> StepKey {
        StepKey(format!("{}#sla", instance.as_str()))
    }

    /// The timer of a state visit's SLA: `<instance>#sla/<state>/<visit>`.
    pub fn state_sla(instance: &InstanceId, state: &str, visit: u32) -> StepKey {
        StepKey(format!("{}#sla/{state}/{visit}", instance.as_str()))
    }

    /// The compensation of the step keyed `of`: `<of>/undo`.
    pub fn undo(of: &str) -> StepKey {
        StepKey(format!("{of}/undo"))
    }

    /// The id of the instance a fan keyed `fan` runs its branch `slot` as:
    /// `<fan>/<slot>`. The keys of that branch's steps start with it.
    pub fn branch(fan: &str, slot: &str) -> InstanceId {
        InstanceId(format!("{fan}/{slot}"))
    }

    /// Whether `key` is the key of a step inside the fan or branch keyed
    /// `within`: it starts with `within` and then a `/`, so slot `1` does not
    /// take the steps of slot `10`.
    /// Whether `key` is a compensation's key (made by [`StepKey::undo`]).
    pub fn is_undo(key: &str) -> bool {
        key.ends_with("/undo")
    }

    pub fn is_inside(key: &str, within: &str) -> bool {
        key.strip_prefix(within)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StepKey> for String {
    fn from(key: StepKey) -> String {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01JD3M3Y0000000000000000AB";

    fn id() -> InstanceId {
        InstanceId(ID.to_owned())
    }

    #[test]
    fn visit_key_is_instance_state_and_visit() {
        let key = StepKey::visit(&id(), "charge", 2);
        assert_eq!(key.as_str(), format!("{ID}/charge/2"));
        assert_eq!(key.to_string(), key.as_str());
        assert_eq!(String::from(key), format!("{ID}/charge/2"));
    }

    #[test]
    fn undo_key_appends_undo_to_the_step_it_undoes() {
        let step = StepKey::visit(&id(), "reserve", 1);
        assert_eq!(
            StepKey::undo(step.as_str()).as_str(),
            format!("{ID}/reserve/1/undo")
        );
    }

    #[test]
    fn branch_steps_are_keyed_under_their_fan() {
        let fan = StepKey::visit(&id(), "ship_all", 1);
        let branch = StepKey::branch(fan.as_str(), "parcel");
        assert_eq!(branch.as_str(), format!("{ID}/ship_all/1/parcel"));
        let step = StepKey::visit(&branch, "label", 3);
        assert_eq!(step.as_str(), format!("{ID}/ship_all/1/parcel/label/3"));
        assert!(StepKey::is_inside(step.as_str(), fan.as_str()));
        assert!(StepKey::is_inside(step.as_str(), branch.as_str()));
        let undo = StepKey::undo(step.as_str());
        assert!(StepKey::is_inside(undo.as_str(), branch.as_str()));
    }

    #[test]
    fn is_inside_needs_a_whole_segment_prefix() {
        let fan = StepKey::visit(&id(), "fan", 1);
        let other_visit = StepKey::visit(&id(), "fan", 12);
        let slot_10 = StepKey::branch(fan.as_str(), "10");
        let slot_1 = StepKey::branch(fan.as_str(), "1");
        let in_slot_10 = StepKey::visit(&slot_10, "a", 1);
        assert!(!StepKey::is_inside(other_visit.as_str(), fan.as_str()));
        assert!(!StepKey::is_inside(in_slot_10.as_str(), slot_1.as_str()));
        assert!(!StepKey::is_inside(fan.as_str(), fan.as_str()));
    }
}
