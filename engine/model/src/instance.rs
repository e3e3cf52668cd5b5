//! Instances and everything that moves them: the events that come in, the
//! commands that go out and the history records that say what happened.

use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{Millis, Span};

/// An instance's id: 26 characters, sortable by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl InstanceId {
    pub const LEN: usize = 26;

    /// Builds an id from a creation time and 80 random bits, in Crockford
    /// base32 so ids sort by time.
    pub fn new(at: Millis, random: u128) -> Self {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let value: u128 = (u128::from(at.0 & 0xFFFF_FFFF_FFFF) << 80) | (random & ((1 << 80) - 1));
        let mut out = [0u8; Self::LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (Self::LEN - 1 - i);
            *slot = ALPHABET[((value >> shift) & 31) as usize];
        }
        InstanceId(out.iter().map(|&b| b as char).collect())
    }

    /// Accepts what `new` produces (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_uppercase();
        (t.len() == Self::LEN
            && t.bytes()
                .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b))))
        .then_some(InstanceId(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A step is in flight or about to be.
    Running,
    /// Ended in a `succeed` state.
    Succeeded,
    /// Ended in a `fail` state.
    Failed,
    /// Stopped on a failure nothing handles; waits for an operator.
    Parked,
}

impl Status {
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Parked => "parked",
        }
    }
    pub const ALL: [Status; 4] = [
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Parked,
    ];
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a step failed. `kind` is what a process routes on (`error.<kind>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

impl Failure {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The error an instance ended or parked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceError {
    pub state: String,
    pub kind: String,
    pub message: String,
}

/// The task step an instance is carrying out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveStep {
    pub state: String,
    pub action: String,
    /// `<instance>/<state>/<visit>`: the same for every attempt of this visit.
    pub key: String,
    pub attempt: u32,
    /// The action's input, evaluated once when the state was entered.
    pub input: Value,
    pub started_at: Millis,
    #[serde(default)]
    pub last_heartbeat: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub process: String,
    pub version: u32,
    pub status: Status,
    pub state: String,
    pub data: Value,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<InstanceError>,
    /// Times each state has been entered, for idempotency keys.
    #[serde(default)]
    pub visits: IndexMap<String, u32>,
    #[serde(default)]
    pub step: Option<ActiveStep>,
    /// Number of history records so far; the next one gets this number.
    pub seq: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Something that moves an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The action of the step with this key finished.
    StepDone { key: String, output: Value },
    /// The action of the step with this key failed.
    StepFailed { key: String, failure: Failure },
}

impl Event {
    pub fn key(&self) -> &str {
        match self {
            Event::StepDone { key, .. } | Event::StepFailed { key, .. } => key,
        }
    }
}

/// What carrying out a step's action came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepOutcome {
    Done {
        output: Value,
    },
    /// The action finishes later; this token completes it.
    Pending {
        token: String,
    },
    Failed {
        failure: Failure,
    },
}

/// Work the driver must carry out after committing a transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Invoke(Invoke),
}

impl Command {
    /// The idempotency key the command is filed under in the outbox.
    pub fn key(&self) -> &str {
        match self {
            Command::Invoke(i) => &i.key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoke {
    pub instance: InstanceId,
    pub process: String,
    pub version: u32,
    pub state: String,
    pub action: String,
    pub key: String,
    pub attempt: u32,
    pub input: Value,
    #[serde(default)]
    pub last_heartbeat: Option<String>,
}

/// One entry of an instance's append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: Millis,
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
    /// Left `from` on `event` for `to`; `took` is how long the step ran.
    Transition {
        from: String,
        event: String,
        to: String,
        took: Span,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_sorts_by_time_and_round_trips() {
        let a = InstanceId::new(Millis(1_700_000_000_000), 42);
        let b = InstanceId::new(Millis(1_700_000_000_001), 1);
        assert_eq!(a.as_str().len(), InstanceId::LEN);
        assert!(a < b);
        assert_eq!(InstanceId::parse(&a.as_str().to_lowercase()), Some(a));
        assert_eq!(InstanceId::parse("not-an-id"), None);
    }
}
