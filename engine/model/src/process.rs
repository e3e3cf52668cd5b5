//! A validated process: every state name resolved, every expression compiled,
//! every duration parsed. Built only by `validate`; the interpreter trusts it.

use indexmap::IndexMap;
use serde_json::Value;

use crate::expr::{Expr, PathExpr};
use crate::retry::RetryPolicy;
use crate::time::Span;

/// Failure kinds the engine itself produces, beside the kinds an action's
/// manifest declares. A process routes on them as `error.<kind>`.
pub const ENGINE_ERROR_KINDS: &[(&str, &str)] = &[
    (
        "retryable",
        "the adapter said to try again, and no retries are left",
    ),
    ("fatal", "the adapter said it can never succeed"),
    ("timeout", "an attempt or the whole step ran out of time"),
    ("trap", "the adapter crashed (a panic or invalid operation)"),
    (
        "out_of_memory",
        "the adapter grew past its binding's `memory`",
    ),
    (
        "output_too_large",
        "the adapter's result is larger than its binding's `max_output`",
    ),
    (
        "out_of_fuel",
        "the adapter executed more instructions than its binding's `fuel`",
    ),
    (
        "capability_denied",
        "the adapter asked for something its binding does not grant (a host not in `allow_hosts`)",
    ),
    (
        "limit",
        "the adapter hit another runtime limit (the engine's instance pool, its request cap)",
    ),
    (
        "adapter",
        "the adapter is missing, broken or answered nonsense",
    ),
    (
        "mapping",
        "the step's input or output mapping failed on this data",
    ),
];

pub fn is_engine_error_kind(kind: &str) -> bool {
    ENGINE_ERROR_KINDS.iter().any(|(k, _)| *k == kind)
}

#[derive(Debug, Clone)]
pub struct Process {
    pub name: String,
    pub version: u32,
    pub description: Option<String>,
    pub start: String,
    pub states: IndexMap<String, State>,
    /// Cron schedules that start instances.
    pub schedules: Vec<crate::schedule::Schedule>,
    /// The definition as written, as JSON: what is stored and compared.
    pub definition: Value,
    /// How long an instance may run before it is flagged as stuck.
    pub sla: Option<Span>,
    /// Where its states are in the document: `""` for a process,
    /// `/states/<s>/branches/<b>` for a branch of a parallel state.
    pub base: String,
}

impl Process {
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }

    /// This machine's states and those of every branch inside it, each with
    /// the machine it belongs to.
    pub fn walk(&self) -> Vec<(&Process, &State)> {
        let mut out = Vec::new();
        for s in self.states.values() {
            out.push((self, s));
            match &s.kind {
                StateKind::Parallel(p) => {
                    for (_, b) in &p.branches {
                        out.extend(b.walk());
                    }
                }
                StateKind::Map(m) => out.extend(m.branch.walk()),
                _ => {}
            }
        }
        out
    }

    /// Every action the process may run (tasks and their compensations),
    /// deduplicated, in file order.
    pub fn actions(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, s) in self.walk() {
            if let StateKind::Task(t) = &s.kind {
                for a in std::iter::once(&t.action).chain(t.compensate.as_ref().map(|c| &c.action))
                {
                    if !out.contains(&a.as_str()) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub kind: StateKind,
    pub on: Vec<Transition>,
    /// How long a visit may last before the instance is flagged as stuck.
    pub sla: Option<Span>,
}

impl State {
    /// The transition an event takes: the exact event name first, then for
    /// `error.<kind>` the catch-all `error`.
    pub fn route(&self, event: &str) -> Option<&Transition> {
        self.on.iter().find(|t| t.event == event).or_else(|| {
            event
                .strip_prefix("error.")
                .and_then(|_| self.on.iter().find(|t| t.event == "error"))
        })
    }

    /// States this one can lead to.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        let then = match &self.kind {
            StateKind::Compensate { then } => Some(then.as_str()),
            _ => None,
        };
        self.on
            .iter()
            .flat_map(|t| t.arms.iter().map(|a| a.to.as_str()))
            .chain(then)
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self.kind,
            StateKind::Succeed { .. } | StateKind::Fail { .. }
        )
    }
}

#[derive(Debug, Clone)]
pub enum StateKind {
    Task(Box<Task>),
    Succeed {
        output: Option<Expr>,
    },
    Fail {
        error: Option<String>,
        cause: Option<Expr>,
    },
    /// Undoes every completed compensable step, newest first, then goes on.
    Compensate {
        then: String,
    },
    /// Waits, stored and costing no memory, for a signal or a timer.
    Wait(Box<Wait>),
    /// Runs named branches at once; joins when all have finished.
    Parallel(Box<Parallel>),
    /// Runs a branch for each item of an array, a bounded number at once.
    Map(Box<MapState>),
}

#[derive(Debug, Clone)]
pub struct Parallel {
    pub branches: Vec<(String, std::sync::Arc<Process>)>,
    /// Where the branches' outputs go, as an object keyed by branch name.
    pub output: Option<PathExpr>,
}

#[derive(Debug, Clone)]
pub struct MapState {
    /// jq giving the array.
    pub items: Expr,
    pub branch: std::sync::Arc<Process>,
    /// Most items in flight at once (`DEFAULT_CONCURRENCY` unless given).
    pub max_concurrency: usize,
    pub tolerated: Tolerance,
    /// Where the outputs go, as an array in item order (`null` for a
    /// failed item).
    pub output: Option<PathExpr>,
}

impl MapState {
    /// Items in flight at once when the map does not say: a map over ten
    /// thousand files must not start ten thousand invocations at once.
    pub const DEFAULT_CONCURRENCY: usize = 16;
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    Count(u32),
    Percent(f64),
}

impl Tolerance {
    /// Whether `failed` of `total` items is more than tolerated.
    pub fn exceeded(self, failed: usize, total: usize) -> bool {
        match self {
            Tolerance::Count(n) => failed > n as usize,
            Tolerance::Percent(p) => failed as f64 > total as f64 * p / 100.0,
        }
    }
}

/// A wait state: for one of `events` (sent with `weft signal`), for a
/// timer, or for whichever comes first.
#[derive(Debug, Clone)]
pub struct Wait {
    /// The signals it accepts, in file order.
    pub events: Vec<String>,
    /// Leads on with `timeout` when no signal came in time.
    pub timeout: Option<Span>,
    /// Leads on with `elapsed`.
    pub timer: Option<WaitTimer>,
    /// Where a signal's payload is stored (default: an object payload is
    /// merged into the instance data).
    pub output: Option<PathExpr>,
}

#[derive(Debug, Clone)]
pub enum WaitTimer {
    For(Span),
    /// jq giving an RFC 3339 time.
    Until(Expr),
}

/// Events of a wait state that are not signals.
pub const WAIT_TIMER_EVENTS: [&str; 2] = ["timeout", "elapsed"];

#[derive(Debug, Clone)]
pub struct Task {
    pub action: String,
    pub input: Option<Expr>,
    pub output: Option<PathExpr>,
    /// Overrides the binding's default policy.
    pub retry: Option<RetryPolicy>,
    /// Per attempt; overrides the binding's.
    pub timeout: Option<Span>,
    /// For the whole step, retries included.
    pub deadline: Option<Span>,
    pub heartbeat: Option<Span>,
    pub compensate: Option<Compensation>,
}

/// How a completed step is undone.
#[derive(Debug, Clone)]
pub struct Compensation {
    pub action: String,
    /// jq over the instance data when compensating; default: the step's result.
    pub input: Option<Expr>,
    /// Overrides the binding's default policy.
    pub retry: Option<RetryPolicy>,
}

#[derive(Debug, Clone)]
pub struct Transition {
    pub event: String,
    pub arms: Vec<Arm>,
}

#[derive(Debug, Clone)]
pub struct Arm {
    pub guard: Option<Expr>,
    pub to: String,
}
