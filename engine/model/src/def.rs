//! The raw forms of processes and bindings, exactly as users write them.
//! Nothing downstream uses these: `validate` turns them into `Process` and
//! `Bindings`. Unknown fields are errors, never silently ignored.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessDef {
    pub process: String,
    pub version: u32,
    #[serde(default)]
    pub description: Option<String>,
    pub start: String,
    pub states: IndexMap<String, StateDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateType {
    Task,
    Succeed,
    Fail,
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateType::Task => "task",
            StateType::Succeed => "succeed",
            StateType::Fail => "fail",
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    #[serde(rename = "type", default)]
    pub kind: Option<StateType>,
    #[serde(default)]
    pub description: Option<String>,
    /// task: the domain action to run.
    #[serde(default)]
    pub action: Option<String>,
    /// task: jq over the instance data giving the action's input.
    #[serde(default)]
    pub input: Option<String>,
    /// task: the path the result is stored at; succeed: jq giving the
    /// instance's output.
    #[serde(default)]
    pub output: Option<String>,
    /// Transitions by event name.
    #[serde(default)]
    pub on: Option<IndexMap<String, TargetDef>>,
    /// fail: an error code for the instance.
    #[serde(default)]
    pub error: Option<String>,
    /// fail: jq giving a human explanation.
    #[serde(default)]
    pub cause: Option<String>,
}

/// Where an event leads: one state, or guarded options tried in order.
#[derive(Debug, Clone)]
pub enum TargetDef {
    To(String),
    Arms(Vec<ArmDef>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmDef {
    #[serde(rename = "if", default)]
    pub guard: Option<String>,
    pub to: String,
}

impl<'de> Deserialize<'de> for TargetDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TargetDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a state name, or a list of `{ if: <jq>, to: <state> }`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TargetDef, E> {
                Ok(TargetDef::To(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TargetDef, A::Error> {
                let mut arms = Vec::new();
                while let Some(arm) = seq.next_element::<ArmDef>()? {
                    arms.push(arm);
                }
                Ok(TargetDef::Arms(arms))
            }
        }
        d.deserialize_any(V)
    }
}

/// A bindings file: which plugin carries out each domain action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingsDef {
    /// Plugin name to component file (relative to the bindings file).
    #[serde(default)]
    pub plugins: IndexMap<String, String>,
    pub actions: IndexMap<String, BindingDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingDef {
    pub plugin: String,
    /// The plugin's action, when its name differs from the domain action's.
    #[serde(default)]
    pub action: Option<String>,
    /// JSON handed to every invocation.
    #[serde(default)]
    pub config: Option<Value>,
    /// Longest one attempt may run.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Largest linear memory the plugin may grow to, e.g. `64MiB`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Directories the plugin may read and write: guest path to host path.
    #[serde(default)]
    pub dirs: IndexMap<String, String>,
    /// Environment variables the plugin may see.
    #[serde(default)]
    pub env: IndexMap<String, String>,
}
