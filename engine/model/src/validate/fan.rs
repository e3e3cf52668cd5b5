//! Parallel and map states: their branches, items, concurrency and
//! tolerated failures.

use serde_json::Value;

use super::branch;
use super::fields::expr;
use super::names::check_key_name;
use crate::def::StateDef;
use crate::expr::{Expr, PathExpr};
use crate::process::{MapState, Parallel, StateKind, Tolerance};
use crate::source::{Diagnostics, Document, pointer_segment};

pub(super) fn parallel_state(
    doc: &Document,
    at: &str,
    name: &str,
    raw: &StateDef,
    output: Option<PathExpr>,
    diags: &mut Diagnostics,
) -> StateKind {
    let mut branches = Vec::new();
    match &raw.branches {
        Some(list) if !list.is_empty() => {
            for (b, value) in list {
                let bat = format!("{at}/branches/{}", pointer_segment(b));
                check_key_name(doc, &bat, "branch", b, diags);
                if let Some(p) = branch(doc, &bat, b, value, diags) {
                    branches.push((b.clone(), std::sync::Arc::new(p)));
                }
            }
        }
        _ => diags.push(
            doc.key_diag(at, format!("parallel state '{name}' has no branches"))
                .hint("add `branches: { <name>: { start: <state>, states: {...} } }`"),
        ),
    }
    StateKind::Parallel(Box::new(Parallel { branches, output }))
}

pub(super) fn map_state(
    doc: &Document,
    at: &str,
    name: &str,
    raw: &StateDef,
    output: Option<PathExpr>,
    diags: &mut Diagnostics,
) -> StateKind {
    let items = match &raw.items {
        Some(src) => expr(doc, &format!("{at}/items"), src, Expr::compile, diags),
        None => {
            diags.push(
                doc.key_diag(at, format!("map state '{name}' has no `items`"))
                    .hint("add `items: <jq giving an array>`"),
            );
            None
        }
    };
    let machine = match &raw.branch {
        Some(v) => branch(doc, &format!("{at}/branch"), name, v, diags),
        None => {
            diags.push(
                doc.key_diag(at, format!("map state '{name}' has no `branch`"))
                    .hint("add `branch: { start: <state>, states: {...} }`, run for each item"),
            );
            None
        }
    };
    let tolerated = match &raw.tolerated_failures {
        None => Tolerance::Count(0),
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            Tolerance::Count(n.as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32)
        }
        Some(Value::String(s))
            if s.strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .is_some_and(|p| (0.0..=100.0).contains(&p)) =>
        {
            Tolerance::Percent(s.trim_end_matches('%').trim().parse::<f64>().unwrap_or(0.0))
        }
        Some(other) => {
            diags.push(
                doc.diag(
                    &format!("{at}/tolerated_failures"),
                    format!("tolerated_failures must be a count or a percentage, not {other}"),
                )
                .hint("write `tolerated_failures: 2` or `tolerated_failures: \"10%\"`"),
            );
            Tolerance::Count(0)
        }
    };
    if raw.max_concurrency == Some(0) {
        diags.push(
            doc.diag(
                &format!("{at}/max_concurrency"),
                "max_concurrency must be 1 or more",
            )
            .hint("leave it out to run every item at once"),
        );
    }
    match (items, machine) {
        (Some(items), Some(machine)) => StateKind::Map(Box::new(MapState {
            items,
            branch: std::sync::Arc::new(machine),
            max_concurrency: raw
                .max_concurrency
                .map_or(MapState::DEFAULT_CONCURRENCY, |n| n as usize),
            tolerated,
            output,
        })),
        // Reported above; the state is dropped.
        _ => StateKind::Succeed { output: None },
    }
}
