//! What the engine counts, through the `metrics` facade: the binary that
//! runs a server installs a recorder (Prometheus text at `/metrics`);
//! without one these calls cost next to nothing. Names and labels are the
//! API's: keep them stable.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `weft_transitions_total` | counter | `process` |
//! | `weft_instances_started_total` | counter | `process` |
//! | `weft_instances_ended_total` | counter | `process`, `status` |
//! | `weft_step_duration_seconds` | histogram | `action`, `plugin` (its name in the bindings), `outcome` (`done`, `pending`, `failed`) |
//! | `weft_step_failures_total` | counter | `action`, `kind` |
//! | `weft_compensations_total` | counter | `process` |
//! | `weft_sla_exceeded_total` | counter | `process`, `scope` (`process`, `state`), `state` |
//! | `weft_timers_fired_total` | counter | `kind` |
//! | `weft_commit_batch_size` | histogram | |
//! | `weft_commit_seconds` | histogram | (one group commit: write and flush) |
//! | `weft_swaps_total` | counter | `target` (`plugin:x`, `action:x`), `kind` (`swap`, `rollback`, `canary`, `promote`, `abort`) |
//! | `weft_canary_attempts_total` | counter | `target`, `component` (`trial`, `live`), `outcome` (`ok`, `failed`) |

use weft_model::{Record, RecordKind, Status, StepOutcome};

/// Describes every metric once (units and help text for the exporter).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "weft_transitions_total",
        "Committed state changes of instances."
    );
    describe_counter!("weft_instances_started_total", "Instances started.");
    describe_counter!(
        "weft_instances_ended_total",
        "Instances that ended, by final status."
    );
    describe_histogram!(
        "weft_step_duration_seconds",
        Unit::Seconds,
        "How long one attempt of a step's action took, by action, plugin and outcome."
    );
    describe_counter!(
        "weft_step_failures_total",
        "Failed attempts, by action and failure kind."
    );
    describe_counter!("weft_compensations_total", "Completed steps undone.");
    describe_counter!(
        "weft_sla_exceeded_total",
        "Instances flagged as stuck: past the process's sla, or past a state's sla (by the state)."
    );
    describe_counter!(
        "weft_timers_fired_total",
        "Durable timers delivered, by kind."
    );
    describe_counter!(
        "weft_swaps_total",
        "Changes of the component behind a target: swaps, rollbacks, canaries started, promoted and aborted."
    );
    describe_counter!(
        "weft_canary_attempts_total",
        "Attempts a canary routed, by side (the component on trial or the live one) and outcome (failed: a failure that counts against a component)."
    );
    describe_histogram!(
        "weft_commit_batch_size",
        "Commits written by one group commit."
    );
    describe_histogram!(
        "weft_commit_seconds",
        Unit::Seconds,
        "How long one group commit (write and flush) took."
    );
}

/// Measures wall time for the duration metrics (what they report is how
/// long things took, not anything the engine decides on).
pub(crate) struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn start() -> Self {
        Stopwatch(std::time::Instant::now())
    }
    pub(crate) fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// What a change's records count for: the compensations among them, and
/// the SLAs run past (`scope`, state).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    undone: u64,
    overdue: Vec<(&'static str, String)>,
}

pub(crate) fn tally(records: &[Record]) -> Tally {
    let mut t = Tally::default();
    for r in records {
        match &r.kind {
            RecordKind::Compensated { .. } => t.undone += 1,
            RecordKind::SlaExceeded {
                state, at_state, ..
            } => t.overdue.push(match state {
                Some(s) => ("state", s.clone()),
                None => ("process", at_state.clone()),
            }),
            _ => {}
        }
    }
    t
}

/// One committed change of an instance of `process`.
pub(crate) fn committed(process: &str, previous: Option<Status>, status: Status, tally: Tally) {
    let Tally { undone, overdue } = tally;
    let p = process.to_owned();
    metrics::counter!("weft_transitions_total", "process" => p.clone()).increment(1);
    if previous.is_none() {
        metrics::counter!("weft_instances_started_total", "process" => p.clone()).increment(1);
    }
    if status.is_finished() && previous.is_none_or(|s| !s.is_finished()) {
        metrics::counter!("weft_instances_ended_total", "process" => p.clone(), "status" => status.as_str())
            .increment(1);
    }
    if undone > 0 {
        metrics::counter!("weft_compensations_total", "process" => p.clone()).increment(undone);
    }
    for (scope, state) in overdue {
        metrics::counter!("weft_sla_exceeded_total", "process" => p.clone(), "scope" => scope, "state" => state)
            .increment(1);
    }
}

/// One attempt of `action`, carried out by `plugin`, ended with `outcome`
/// after `seconds`.
pub(crate) fn attempt(action: &str, plugin: &str, outcome: &StepOutcome, seconds: f64) {
    let (label, kind) = match outcome {
        StepOutcome::Done { .. } => ("done", None),
        StepOutcome::Pending { .. } => ("pending", None),
        StepOutcome::Failed { failure } => ("failed", Some(failure.kind.clone())),
    };
    metrics::histogram!(
        "weft_step_duration_seconds",
        "action" => action.to_owned(),
        "plugin" => plugin.to_owned(),
        "outcome" => label
    )
    .record(seconds);
    if let Some(kind) = kind {
        metrics::counter!("weft_step_failures_total", "action" => action.to_owned(), "kind" => kind)
            .increment(1);
    }
}

pub(crate) fn timer_fired(kind: weft_model::TimerKind) {
    metrics::counter!("weft_timers_fired_total", "kind" => kind.as_str()).increment(1);
}

pub(crate) fn group_commit(commits: usize, seconds: f64) {
    metrics::histogram!("weft_commit_batch_size").record(commits as f64);
    metrics::histogram!("weft_commit_seconds").record(seconds);
}

/// A swap-log record written.
pub(crate) fn swapped(r: &weft_store::SwapRecord) {
    metrics::counter!(
        "weft_swaps_total",
        "target" => r.target.to_string(),
        "kind" => r.kind.as_str(),
    )
    .increment(1);
}

/// An attempt a canary routed.
pub(crate) fn canary_attempt(target: &weft_store::Target, trial: bool, failed: bool) {
    metrics::counter!(
        "weft_canary_attempts_total",
        "target" => target.to_string(),
        "component" => if trial { "trial" } else { "live" },
        "outcome" => if failed { "failed" } else { "ok" },
    )
    .increment(1);
}
