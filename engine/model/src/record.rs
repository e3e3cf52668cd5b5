//! History records: what happened to an instance, append-only, one per
//! change, numbered gap-free from 0.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::instance::{Failure, InstanceError};
use crate::time::{Millis, Span};

/// One entry of an instance's append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: Millis,
    /// The branch it happened in (`build`, `3`, `build/lint`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// For the outcome of an attempt: the bindings revision of the
    /// instance's process version it ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<u32>,
    /// For the outcome of an attempt: the sha256 of the component that
    /// ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(flatten)]
    pub kind: RecordKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordKind {
    Started {
        process: String,
        version: u32,
        input: Value,
    },
    /// Left `from` on `event` for `to`; `took` is how long the step ran;
    /// `key` is the step visit whose outcome this is.
    Transition {
        from: String,
        event: String,
        to: String,
        took: Span,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
        /// The input the step got (a task state's: every attempt of the
        /// visit got the same).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Value>,
    },
    Succeeded {
        state: String,
        output: Value,
    },
    Failed {
        state: String,
        error: InstanceError,
    },
    Parked {
        state: String,
        error: InstanceError,
    },
    /// An attempt failed and will be retried at `retry_at`.
    AttemptFailed {
        state: String,
        action: String,
        attempt: u32,
        failure: Failure,
        retry_at: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heartbeat: Option<String>,
    },
    /// The adapter answered `pending`; the step waits on `token`.
    Pending {
        state: String,
        token: String,
    },
    /// The step of `undone` was undone by `action` (step key `key`).
    Compensated {
        state: String,
        undone: String,
        action: String,
        #[serde(default)]
        key: String,
        result: Value,
    },
    /// An operator redrove the parked instance.
    Redriven {
        state: String,
    },
    /// An operator asked to cancel, undoing completed steps first.
    Cancelling {
        state: String,
    },
    Cancelled {
        state: String,
    },
    /// Entered a wait state: waits for one of `events`, or until `until`.
    Waiting {
        state: String,
        events: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Millis>,
    },
    /// The instance ran past an `sla`: the process's (`state: None`), or the
    /// state's it is in; `since` is when that clock started.
    SlaExceeded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        /// Where the instance is now.
        at_state: String,
        sla: Span,
        since: Millis,
    },
    /// An operator moved the instance to another version of its process.
    Migrated {
        state: String,
        from_version: u32,
        to_version: u32,
    },
}
