//! A task's retry policy and compensation (also used for bindings' retry
//! defaults).

use super::fields::{duration, expr};
use super::valid_name;
use crate::def::{CompensateDef, RetryDef};
use crate::expr::Expr;
use crate::process::Compensation;
use crate::retry::{RETRYABLE_KINDS, RetryPolicy};
use crate::source::{Diagnostics, Document};

/// A retry policy from its raw form. Unset fields default to: 3 attempts,
/// 1s initial delay, factor 2, at most 60s between attempts, no jitter.
pub(crate) fn retry_policy(
    doc: &Document,
    at: &str,
    raw: &RetryDef,
    diags: &mut Diagnostics,
) -> Option<RetryPolicy> {
    let before = diags.len();
    let mut p = RetryPolicy {
        max_attempts: raw.max_attempts.unwrap_or(3),
        ..RetryPolicy::default()
    };
    if p.max_attempts == 0 {
        diags.push(doc.diag(
            &format!("{at}/max_attempts"),
            "max_attempts counts the first attempt too, so it must be 1 or more",
        ));
    }
    if let Some(d) = duration(doc, &format!("{at}/initial"), raw.initial.as_deref(), diags) {
        p.initial = d;
    }
    if let Some(d) = duration(
        doc,
        &format!("{at}/max_delay"),
        raw.max_delay.as_deref(),
        diags,
    ) {
        p.max_delay = d;
    }
    if raw.max_delay.is_none() {
        p.max_delay = p.max_delay.max(p.initial);
    }
    if p.initial > p.max_delay {
        diags.push(doc.diag(
            &format!("{at}/max_delay"),
            format!(
                "max_delay ({}) is shorter than initial ({})",
                p.max_delay, p.initial
            ),
        ));
    }
    if let Some(f) = raw.factor {
        if !(1.0..=100.0).contains(&f) {
            diags.push(doc.diag(&format!("{at}/factor"), "factor must be between 1 and 100"));
        }
        p.factor = f;
    }
    p.jitter = raw.jitter.unwrap_or_default();
    for (i, kind) in raw.non_retryable.iter().flatten().enumerate() {
        if !RETRYABLE_KINDS.contains(&kind.as_str()) {
            diags.push(
                doc.diag(
                    &format!("{at}/non_retryable/{i}"),
                    format!("'{kind}' failures are never retried anyway"),
                )
                .hint(format!(
                    "only these kinds are retried: {}",
                    RETRYABLE_KINDS.join(", ")
                )),
            );
        }
        p.non_retryable.push(kind.clone());
    }
    (diags.len() == before).then_some(p)
}

pub(super) fn compensation(
    doc: &Document,
    at: &str,
    raw: &CompensateDef,
    diags: &mut Diagnostics,
) -> Option<Compensation> {
    let (action, input, retry, action_at) = match raw {
        CompensateDef::Action(a) => (a.clone(), None, None, at.to_owned()),
        CompensateDef::Full(f) => (
            f.action.clone(),
            f.input.clone(),
            f.retry.clone(),
            format!("{at}/action"),
        ),
    };
    if !valid_name(&action) {
        diags.push(doc.diag(&action_at, format!("'{action}' is not a valid action name")));
        return None;
    }
    Some(Compensation {
        action,
        input: input.and_then(|src| expr(doc, &format!("{at}/input"), &src, Expr::compile, diags)),
        retry: retry.and_then(|r| retry_policy(doc, &format!("{at}/retry"), &r, diags)),
    })
}
