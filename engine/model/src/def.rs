//! The raw forms of processes and bindings, exactly as users write them.
//! Nothing downstream uses these: `validate` turns them into `Process` and
//! `Bindings`. Unknown fields are errors, never silently ignored.

use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessDef {
    /// The process's name: letters, digits, `-`, `_`, `.`.
    pub process: String,
    /// Its version: each deploy of a changed definition needs a new one.
    pub version: u32,
    #[serde(default)]
    pub description: Option<String>,
    /// The state an instance starts in.
    pub start: String,
    /// The states, by name.
    pub states: IndexMap<String, StateDef>,
    /// Cron schedules that start instances: one, or a list.
    #[serde(default)]
    #[schemars(with = "Option<OneOrList<ScheduleDef>>")]
    pub schedule: Option<Value>,
    /// How long an instance may run before it is flagged as stuck.
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub sla: Option<String>,
}

/// One of something, or a list of them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrList<T> {
    One(T),
    List(Vec<T>),
}

/// A duration: `500ms`, `30s`, `5m`, `1h30m`, `2d`.
#[derive(Debug, Clone, Deserialize)]
pub struct Duration(pub String);

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^\\s*([0-9]+(ms|s|m|h|d))+\\s*$",
            "description": "A duration: 500ms, 30s, 5m, 1h30m, 2d.",
        })
    }
}

/// A jq expression over the instance data.
#[derive(Debug, Clone, Deserialize)]
pub struct Jq(pub String);

impl JsonSchema for Jq {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Jq".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A jq expression over the instance data (evaluated by jaq; `now`, `env`, `input` and `debug` are refused).",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateType {
    Task,
    Succeed,
    Fail,
    Compensate,
    Wait,
    Parallel,
    Map,
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateType::Task => "task",
            StateType::Succeed => "succeed",
            StateType::Fail => "fail",
            StateType::Compensate => "compensate",
            StateType::Wait => "wait",
            StateType::Parallel => "parallel",
            StateType::Map => "map",
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
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
    #[schemars(with = "Option<Jq>")]
    pub input: Option<String>,
    /// task: the path the result is stored at; succeed: jq giving the
    /// instance's output.
    #[serde(default)]
    #[schemars(with = "Option<Jq>")]
    pub output: Option<String>,
    /// Transitions by event name.
    #[serde(default)]
    pub on: Option<IndexMap<String, TargetDef>>,
    /// fail: an error code for the instance.
    #[serde(default)]
    pub error: Option<String>,
    /// fail: jq giving a human explanation.
    #[serde(default)]
    #[schemars(with = "Option<Jq>")]
    pub cause: Option<String>,
    /// task: how failed attempts are retried (overrides the binding's).
    #[serde(default)]
    pub retry: Option<RetryDef>,
    /// task: longest one attempt may run (overrides the binding's).
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<String>,
    /// task: longest the whole step may take, retries included.
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub deadline: Option<String>,
    /// task: longest the adapter may go without a heartbeat.
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub heartbeat: Option<String>,
    /// task: the action that undoes this step in a `compensate` state.
    #[serde(default)]
    pub compensate: Option<CompensateDef>,
    /// compensate: where to go once every completed step is undone.
    #[serde(default)]
    pub then: Option<String>,
    /// wait: a durable timer, `{ for: 10m }` or `{ until: <jq> }`, that
    /// leads on with the `elapsed` event.
    #[serde(default)]
    pub wait: Option<WaitDef>,
    /// parallel: named branches, each `{ start, states }`, run at once.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, MachineDef>>")]
    pub branches: Option<IndexMap<String, Value>>,
    /// map: jq over the instance data giving the array to fan out over.
    #[serde(default)]
    #[schemars(with = "Option<Jq>")]
    pub items: Option<String>,
    /// map: the machine, `{ start, states }`, run for each item.
    #[serde(default)]
    #[schemars(with = "Option<MachineDef>")]
    pub branch: Option<Value>,
    /// map: most items in flight at once (default: all).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// map: failed items allowed before the map fails: a count or `"10%"`.
    #[serde(default)]
    #[schemars(with = "Option<Tolerance>")]
    pub tolerated_failures: Option<Value>,
    /// How long an instance may stay in this state before it is flagged
    /// as stuck (each visit counts afresh).
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub sla: Option<String>,
}

/// A branch: a small state machine of its own.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineDef {
    pub start: String,
    #[schemars(with = "IndexMap<String, StateDef>")]
    pub states: IndexMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitDef {
    #[serde(rename = "for", default)]
    #[schemars(with = "Option<Duration>")]
    pub for_: Option<String>,
    /// jq over the instance data giving an RFC 3339 time.
    #[serde(default)]
    #[schemars(with = "Option<Jq>")]
    pub until: Option<String>,
}

/// `schedule: { cron: "0 */5 * * * *" }`, or a list of them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    pub cron: String,
    /// The input of each instance it starts (default `{}`).
    #[serde(default)]
    pub input: Option<Value>,
    /// What to do about firings missed while no engine ran.
    #[serde(default)]
    pub missed: Option<crate::schedule::Missed>,
}

/// A retry policy as written; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub initial: Option<String>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub max_delay: Option<String>,
    #[serde(default)]
    pub jitter: Option<crate::retry::Jitter>,
    #[serde(default)]
    pub non_retryable: Option<Vec<String>>,
}

/// `compensate: refund_payment`, or the long form with its own input and
/// retry policy.
#[derive(Debug, Clone)]
pub enum CompensateDef {
    Action(String),
    Full(CompensateFull),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompensateFull {
    pub action: String,
    /// jq over the instance data at compensation time (default: the result
    /// of the step being undone).
    #[serde(default)]
    #[schemars(with = "Option<Jq>")]
    pub input: Option<String>,
    #[serde(default)]
    pub retry: Option<RetryDef>,
}

impl<'de> Deserialize<'de> for CompensateDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CompensateDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an action name, or `{ action: <name>, input: <jq>, retry: {...} }`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CompensateDef, E> {
                Ok(CompensateDef::Action(s.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<CompensateDef, A::Error> {
                CompensateFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(CompensateDef::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// `200/min` (a burst of 1) or `{ rate: 200/min, burst: 20 }`.
#[derive(Debug, Clone)]
pub enum RateLimitDef {
    Rate(String),
    Full { rate: String, burst: Option<u32> },
}

impl<'de> Deserialize<'de> for RateLimitDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            rate: String,
            #[serde(default)]
            burst: Option<u32>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RateLimitDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate like `200/min`, or `{ rate: 200/min, burst: 20 }`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RateLimitDef, E> {
                Ok(RateLimitDef::Rate(s.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RateLimitDef, A::Error> {
                let f = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RateLimitDef::Full {
                    rate: f.rate,
                    burst: f.burst,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerDef {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before letting one trial call through.
    #[schemars(with = "Duration")]
    pub cool_down: String,
}

/// Where an event leads: one state, or guarded options tried in order.
#[derive(Debug, Clone)]
pub enum TargetDef {
    To(String),
    Arms(Vec<ArmDef>),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmDef {
    #[serde(rename = "if", default)]
    #[schemars(with = "Option<Jq>")]
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingsDef {
    /// Plugin name to component file (relative to the bindings file).
    #[serde(default)]
    pub plugins: IndexMap<String, String>,
    pub actions: IndexMap<String, BindingDef>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<String>,
    /// Largest linear memory the plugin may grow to, e.g. `64MiB`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Largest result the plugin may answer, e.g. `4MiB` (default 1MiB).
    #[serde(default)]
    pub max_output: Option<String>,
    /// Directories the plugin may read and write: guest path to host path.
    #[serde(default)]
    pub dirs: IndexMap<String, String>,
    /// Environment variables the plugin may see.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Hosts the plugin may send HTTP requests to, as `host:port`
    /// (`*.example.com:443` for every subdomain). Without it the plugin has
    /// no network at all.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// WebAssembly instructions (roughly) one attempt may execute; an
    /// attempt that runs out fails with `error.out_of_fuel`. No limit by
    /// default (the timeout still applies).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub fuel: Option<u64>,
    /// Secrets the plugin receives, by name, in its config's `secrets`
    /// object: their values come from the engine's environment
    /// (`WEFT_SECRET_<NAME>`) at each invocation, never from a file weft
    /// stores.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Default retry policy for steps running this action.
    #[serde(default)]
    pub retry: Option<RetryDef>,
    /// Most invocations started per period.
    #[serde(default)]
    pub rate_limit: Option<RateLimitDef>,
    /// Most invocations running at once.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Stop calling a failing tool for a while.
    #[serde(default)]
    pub circuit_breaker: Option<BreakerDef>,
}

/// A map's `tolerated_failures`: a count, or a share like `"10%"`.
pub struct Tolerance;

impl JsonSchema for Tolerance {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tolerance".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$" }
            ],
            "description": "Failed items allowed before the map fails: a count, or a share like \"10%\"."
        })
    }
}

impl JsonSchema for CompensateDef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Compensate".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<CompensateFull>();
        json_schema!({
            "oneOf": [ { "type": "string", "description": "The action that undoes the step." }, full ],
        })
    }
}

impl JsonSchema for RateLimitDef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RateLimit".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let rate = json_schema!({
            "type": "string",
            "pattern": "^\\s*[0-9]+\\s*/\\s*(s|sec|second|m|min|minute|h|hour)\\s*$",
            "description": "Invocations per period: 200/min, 10/s, 1000/h."
        });
        json_schema!({
            "oneOf": [
                rate,
                {
                    "type": "object",
                    "properties": { "rate": rate, "burst": { "type": "integer", "minimum": 1 } },
                    "required": ["rate"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for TargetDef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Target".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let arm = generator.subschema_for::<ArmDef>();
        json_schema!({
            "oneOf": [
                { "type": "string", "description": "The state to go to." },
                { "type": "array", "items": arm, "description": "Guarded options, tried in order: the first whose `if` holds (or that has none) is taken." }
            ]
        })
    }
}
