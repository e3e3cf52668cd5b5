//! How instances and their history look on a terminal.

use std::fmt::Write as _;

use weft_model::{Instance, Record, RecordKind, Status};

/// Prints a line on stdout. A closed stdout (`weft run ... | head -1`) must
/// not stop the engine, so write errors are ignored.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// One history record as a line, or `None` for records `run` does not show.
pub fn transition(r: &Record) -> Option<String> {
    match &r.kind {
        RecordKind::Transition {
            from,
            event,
            to,
            took,
            ..
        } => Some(format!(
            "{}{from} --{event}--> {to}  ({took})",
            branch_prefix(r)
        )),
        _ => None,
    }
}

/// `[build] ` for a record of a branch.
fn branch_prefix(r: &Record) -> String {
    r.branch
        .as_ref()
        .map(|b| format!("[{b}] "))
        .unwrap_or_default()
}

/// Everything a history record says, on one line; for an attempt's
/// outcome, the bindings revision it ran with and the component that ran
/// it (the first 12 hex digits of its sha256).
pub fn record(r: &Record) -> String {
    let ran = match (r.bindings, &r.plugin) {
        (Some(rev), Some(sha)) => format!("  (bindings r{rev}, component {})", short(sha)),
        (Some(rev), None) => format!("  (bindings r{rev})"),
        (None, Some(sha)) => format!("  (component {})", short(sha)),
        (None, None) => String::new(),
    };
    match &r.kind {
        RecordKind::Transition { .. } => format!("{}{ran}", record_body(r)),
        _ => format!("{}{}{ran}", branch_prefix(r), record_body(r)),
    }
}

fn record_body(r: &Record) -> String {
    match &r.kind {
        // A branch is part of its instance: it starts with it and fails
        // into it (the instance routes the failure).
        RecordKind::Started { input, .. } if r.branch.is_some() => {
            format!("branch started with {input}")
        }
        RecordKind::Parked { state, error } if r.branch.is_some() => {
            format!(
                "branch failed in '{state}': {}: {}",
                error.kind, error.message
            )
        }
        RecordKind::Started {
            process,
            version,
            input,
        } => {
            format!("started {process} v{version} with {input}")
        }
        RecordKind::Transition {
            failure: Some(f), ..
        } => {
            format!(
                "{}  [{}: {}]",
                transition(r).unwrap_or_default(),
                f.kind,
                f.message
            )
        }
        RecordKind::Transition { .. } => transition(r).unwrap_or_default(),
        RecordKind::Succeeded { state, output } => format!("succeeded in '{state}' with {output}"),
        RecordKind::Failed { state, error } => {
            format!("failed in '{state}': {}: {}", error.kind, error.message)
        }
        RecordKind::Parked { state, error } => {
            format!("parked in '{state}': {}: {}", error.kind, error.message)
        }
        RecordKind::AttemptFailed {
            state,
            attempt,
            failure,
            retry_at,
            ..
        } => format!(
            "{state}: attempt {attempt} failed ({}: {}); retry at {retry_at}",
            failure.kind, failure.message
        ),
        RecordKind::Pending { state, token } => format!("{state}: waiting on token '{token}'"),
        RecordKind::Compensated { undone, action, .. } => format!("undid '{undone}' with {action}"),
        RecordKind::Redriven { state } => format!("redriven from '{state}'"),
        RecordKind::Cancelling { state } => {
            format!("cancelling in '{state}': undoing completed steps")
        }
        RecordKind::Cancelled { state } => format!("cancelled in '{state}'"),
        RecordKind::Waiting {
            state,
            events,
            until,
        } => format!("{state}: waiting{}", waits_for(events, *until)),
        RecordKind::Migrated {
            state,
            from_version,
            to_version,
        } => format!("migrated in '{state}' from v{from_version} to v{to_version}"),
        RecordKind::SlaExceeded {
            state: Some(state),
            sla,
            since,
            ..
        } => format!("stuck: in '{state}' since {since}, over its sla of {sla}"),
        RecordKind::SlaExceeded {
            state: None,
            at_state,
            sla,
            since,
        } => format!(
            "stuck: running since {since}, over the process sla of {sla} (now in '{at_state}')"
        ),
    }
}

/// A line `run` and `resume` print as the record commits, if any.
pub fn progress(r: &Record) -> Option<String> {
    match &r.kind {
        RecordKind::Transition { .. } => transition(r),
        // A branch's end is the instance's progress.
        RecordKind::Succeeded { .. }
        | RecordKind::Failed { .. }
        | RecordKind::Parked { .. }
        | RecordKind::Cancelled { .. }
            if r.branch.is_some() =>
        {
            Some(record(r))
        }
        // How an instance ends is printed once, by the command.
        RecordKind::Started { .. }
        | RecordKind::Succeeded { .. }
        | RecordKind::Failed { .. }
        | RecordKind::Parked { .. }
        | RecordKind::Cancelled { .. } => None,
        _ => Some(record(r)),
    }
}

/// The end of `run`: how the instance finished and with what.
pub fn outcome(inst: &Instance, data: &std::path::Path) -> String {
    let mut out = String::new();
    match inst.status {
        Status::Succeeded => {
            let _ = writeln!(out, "succeeded in '{}'", inst.state);
            let output = inst
                .output
                .as_ref()
                .map(pretty)
                .unwrap_or_else(|| "null".into());
            let _ = write!(out, "output: {output}");
        }
        Status::Failed | Status::Parked | Status::Cancelled => {
            let _ = write!(out, "{} in '{}'", inst.status, inst.state);
            if let Some(e) = &inst.error {
                let _ = write!(out, ": {}: {}", e.kind, e.message);
            }
        }
        Status::Running => {
            let _ = write!(out, "still running in '{}'", inst.state);
        }
        Status::Waiting => {
            let _ = write!(out, "{}", waiting(inst));
            let target = inst.key.clone().unwrap_or_else(|| inst.id.to_string());
            if let Some(event) = inst.waiting.as_ref().and_then(|w| w.events.first()) {
                let _ = write!(
                    out,
                    "\nsend it with: weft signal {target} {event} --data '{{}}' --data-dir {}",
                    data.display()
                );
            }
            let _ = write!(
                out,
                "\ntimers fire and signals are taken while `weft serve --data {}` runs",
                data.display()
            );
        }
    }
    out
}

/// `waiting in 'review' for approve | reject until <time>`.
pub fn waiting(inst: &Instance) -> String {
    let what = inst
        .waiting
        .as_ref()
        .map(|w| waits_for(&w.events, w.until))
        .unwrap_or_default();
    format!("waiting in '{}'{what}", inst.state)
}

/// ` for approve | reject until <time>`, either part left out when unset.
fn waits_for(events: &[String], until: Option<weft_model::Millis>) -> String {
    let mut s = String::new();
    if !events.is_empty() {
        let _ = write!(s, " for {}", events.join(" | "));
    }
    if let Some(at) = until {
        let _ = write!(s, " until {at}");
    }
    s
}

/// How an instance ended, on one line.
pub fn summary(inst: &Instance) -> String {
    match (&inst.status, &inst.output, &inst.error) {
        (Status::Succeeded, Some(o), _) => format!("succeeded in '{}' with {o}", inst.state),
        (s, _, Some(e)) => format!("{s} in '{}': {}: {}", inst.state, e.kind, e.message),
        (s, _, _) => format!("{s} in '{}'", inst.state),
    }
}

pub fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

pub fn status_table(inst: &Instance) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("instance", inst.id.to_string()),
        ("process", format!("{} v{}", inst.process, inst.version)),
        ("status", inst.status.to_string()),
        ("state", inst.state.clone()),
        ("key", inst.key.clone().unwrap_or_else(|| "-".into())),
        ("started", inst.created_at.to_string()),
        ("updated", inst.updated_at.to_string()),
    ];
    if let Some(step) = &inst.step {
        rows.push((
            "step",
            format!(
                "{} (attempt {}, key {})",
                step.action, step.attempt, step.key
            ),
        ));
    }
    if inst.waiting.is_some() {
        rows.push(("waiting", waiting(inst)));
    }
    if let Some(e) = &inst.error {
        rows.push((
            "error",
            format!("{}: {} (in '{}')", e.kind, e.message, e.state),
        ));
    }
    if !inst.overdue.is_empty() {
        let late = if inst.status.is_finished() {
            "late"
        } else {
            "stuck"
        };
        rows.push((late, overdue(&inst.overdue)));
    }
    if let Some(o) = &inst.output {
        rows.push(("output", o.to_string()));
    }
    rows.push(("data", inst.data.to_string()));
    rows.push(("history", format!("{} records", inst.seq)));
    rows.iter().fold(String::new(), |mut s, (k, v)| {
        let _ = writeln!(s, "{k:<9} {v}");
        s
    })
}

/// The SLAs an instance ran past, in a few words each.
pub fn overdue(list: &[weft_model::Overdue]) -> String {
    list.iter()
        .map(|o| match &o.state {
            Some(state) => format!("in '{state}' since {} (sla {})", o.since, o.sla),
            None => format!("running since {} (process sla {})", o.since, o.sla),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn history_table(records: &[Record]) -> String {
    let mut s = format!("{:>4}  {:<24}  {}\n", "seq", "at", "what");
    for r in records {
        let _ = writeln!(s, "{:>4}  {:<24}  {}", r.seq, r.at.to_string(), record(r));
    }
    s
}

/// The first 12 hex digits of a sha256: how a component is named on a line.
pub fn short(sha256: &str) -> &str {
    &sha256[..12.min(sha256.len())]
}
