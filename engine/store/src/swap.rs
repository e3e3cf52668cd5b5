//! Hot swaps: the component that carries out an action, changed on a running
//! engine without a deploy. A swap writes a new bindings revision for every
//! process version it touches, and a record in the swap log, in one atomic
//! write; a canary is a share of attempts routed to a component on trial.

use serde::{Deserialize, Serialize};
use weft_model::Millis;

use crate::{Deployment, PluginEntry};

/// What a swap replaces: one action wherever it is bound, or every action
/// bound to a plugin. Written `action:<name>` and `plugin:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Action(String),
    Plugin(String),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Action(n) | Target::Plugin(n) => n,
        }
    }

    /// Whether an action bound to `plugin` is covered.
    pub fn covers(&self, action: &str, plugin: &str) -> bool {
        match self {
            Target::Action(a) => a == action,
            Target::Plugin(p) => p == plugin,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Action(n) => write!(f, "action:{n}"),
            Target::Plugin(n) => write!(f, "plugin:{n}"),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `action:<name>` or `plugin:<name>`.
    fn from_str(s: &str) -> Result<Target, String> {
        match s.split_once(':') {
            Some(("action", n)) if !n.is_empty() => Ok(Target::Action(n.to_owned())),
            Some(("plugin", n)) if !n.is_empty() => Ok(Target::Plugin(n.to_owned())),
            _ => Err(format!(
                "'{s}' is not a swap target: write action:<name> or plugin:<name>"
            )),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a canary is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryPolicy {
    /// Per cent of attempts routed to the component on trial (1 to 99).
    pub percent: u8,
    /// Successful attempts on it after which it is promoted (once it has
    /// made `min_calls` attempts at least).
    pub promote_after: u32,
    /// It is rolled back when its failure rate exceeds the current
    /// component's by more than this many percentage points.
    pub threshold: u8,
    /// The most recent attempts of each component the rates are taken over.
    pub window: u32,
    /// Attempts it must have made before its rate can roll it back.
    pub min_calls: u32,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy {
            percent: 10,
            promote_after: 100,
            threshold: 10,
            window: 100,
            min_calls: 20,
        }
    }
}

impl CanaryPolicy {
    /// Why the policy cannot work, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=99).contains(&self.percent) {
            return Err(format!(
                "a canary share of {}% is out of range: give 1% to 99% (swap without --canary for all)",
                self.percent
            ));
        }
        if self.promote_after == 0 {
            return Err("--promote-after must be 1 or more".into());
        }
        if self.threshold > 100 {
            return Err("--threshold is in percentage points: 0 to 100".into());
        }
        if self.window == 0 || self.window > 100_000 {
            return Err("--window must be 1 to 100000 attempts".into());
        }
        if self.min_calls == 0 || self.min_calls > self.window {
            return Err(format!(
                "--min-calls must be 1 to the window ({})",
                self.window
            ));
        }
        Ok(())
    }
}

/// A component on trial for a target: the share of attempts the policy
/// says go to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub target: Target,
    pub sha256: String,
    pub policy: CanaryPolicy,
}

/// The component one attempt runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub sha256: &'a str,
    /// The canary the decision was made for, and whether the attempt went to
    /// the component on trial.
    pub canary: Option<(&'a Canary, bool)>,
}

/// FNV-1a: stable across builds and runs, so routing is reproducible.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Deployment {
    /// The sha256 of the component live for `action` (a swapped action's
    /// own, else its plugin's), not counting canaries.
    pub fn digest_of(&self, action: &str) -> Option<&str> {
        if let Some(sha) = self.pinned.get(action) {
            return Some(sha);
        }
        let binding = self.bindings.actions.get(action)?;
        self.plugins.get(&binding.plugin).map(String::as_str)
    }

    /// The canary in force for `action`, if any: one for the action itself
    /// wins over one for its plugin.
    pub fn canary_for(&self, action: &str) -> Option<&Canary> {
        let plugin = self.bindings.actions.get(action)?.plugin.as_str();
        self.canaries
            .iter()
            .find(|c| c.target == Target::Action(action.to_owned()))
            .or_else(|| {
                self.canaries
                    .iter()
                    .find(|c| c.target == Target::Plugin(plugin.to_owned()))
            })
    }

    /// The component attempt `attempt` of step `key` runs on. With a
    /// canary, the attempt goes to the component on trial when a hash of
    /// its key and attempt falls in the canary's share: each attempt is
    /// routed on its own, and the same attempt always the same way.
    pub fn route(&self, action: &str, key: &str, attempt: u32) -> Option<Route<'_>> {
        let live = self.digest_of(action)?;
        let Some(canary) = self.canary_for(action) else {
            return Some(Route {
                sha256: live,
                canary: None,
            });
        };
        let roll = fnv(&[key.as_bytes(), &attempt.to_be_bytes()]) % 100;
        let trial = roll < u64::from(canary.policy.percent);
        Some(Route {
            sha256: if trial { &canary.sha256 } else { live },
            canary: Some((canary, trial)),
        })
    }

    /// Every component this revision may run, with the plugin name it is
    /// bound as (whose binding grants its memory): plugins, swapped
    /// actions and canaries.
    pub fn components(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .plugins
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect();
        for (action, sha) in &self.pinned {
            if let Some(b) = self.bindings.actions.get(action) {
                out.push((b.plugin.as_str(), sha.as_str()));
            }
        }
        for c in &self.canaries {
            let plugin = match &c.target {
                Target::Plugin(p) => Some(p.as_str()),
                Target::Action(a) => self.bindings.actions.get(a).map(|b| b.plugin.as_str()),
            };
            if let Some(p) = plugin {
                out.push((p, c.sha256.as_str()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The actions of this revision a target covers.
    pub fn actions_of(&self, target: &Target) -> Vec<&str> {
        self.bindings
            .actions
            .iter()
            .filter(|(a, b)| target.covers(a, &b.plugin))
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

/// What a record of the swap log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapKind {
    /// A component made live for every attempt.
    Swap,
    /// Back to what was live before the swap it undoes.
    Rollback,
    /// A component put on trial for a share of attempts.
    Canary,
    /// The component on trial made live for every attempt.
    Promote,
    /// The trial ended and its component taken out (by the policy or an
    /// operator).
    Abort,
}

impl SwapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SwapKind::Swap => "swap",
            SwapKind::Rollback => "rollback",
            SwapKind::Canary => "canary",
            SwapKind::Promote => "promote",
            SwapKind::Abort => "abort",
        }
    }
}

/// One process version a swap changed: the bindings revision it wrote, and
/// the component that was live for the target's actions before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapChange {
    pub process: String,
    pub version: u32,
    pub revision: u32,
    pub from: String,
}

/// One entry of the swap log: what changed which component runs a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapRecord {
    /// 1, 2, ...: the log's order.
    pub seq: u64,
    pub at: Millis,
    pub target: Target,
    pub kind: SwapKind,
    /// The component made live (for a canary: the one put on trial; for an
    /// abort: the one taken out).
    pub sha256: String,
    /// Its registry entry (`name@version`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    pub changes: Vec<SwapChange>,
    /// Why (for decisions the engine took, the figures it took them on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The record a rollback, promote or abort settles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settles: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryPolicy>,
}

/// Everything one swap writes, as one atomic change: new bindings
/// revisions, the log record, and the component (registered under a name
/// when it is new to the registry).
#[derive(Debug, Clone, PartialEq)]
pub struct SwapWrite {
    /// `seq` is given by the store.
    pub record: SwapRecord,
    /// Each the next revision of its process version: the write is refused
    /// (`Conflict::Stale`) when that revision exists already.
    pub deployments: Vec<Deployment>,
    /// A component to add to the registry (`entry.version` is given by the
    /// store; the record's `plugin` names the entry it got).
    pub register: Option<(PluginEntry, std::sync::Arc<[u8]>)>,
}

/// The swap log in order, as a target's history reads it.
pub fn of_target<'a>(log: &'a [SwapRecord], target: &Target) -> Vec<&'a SwapRecord> {
    log.iter().filter(|r| r.target == *target).collect()
}
