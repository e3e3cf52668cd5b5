//! Names: the process header, what a state, branch, action or error kind
//! may be called, and "did you mean" suggestions for names that do not resolve.

use crate::def::ProcessDef;
use crate::process::is_engine_error_kind;
use crate::source::{Diagnostic, Diagnostics, Document};

pub(super) fn check_header(doc: &Document, def: &ProcessDef, diags: &mut Diagnostics) {
    if !valid_name(&def.process) {
        diags.push(
            doc.diag(
                "/process",
                format!("'{}' is not a valid process name", def.process),
            )
            .hint("use letters, digits, '-', '_' and '.'"),
        );
    }
    if def.version == 0 {
        diags.push(doc.diag("/version", "version must be 1 or more"));
    }
}

/// State and branch names are segments of step keys
/// (`<instance>/<state>/<visit>/<branch>/<state>/<visit>`, see
/// [`crate::StepKey`]): a '/' in one would let a top-level state share its
/// key with a step inside a branch, and a finished step's result would be
/// taken for the other's.
pub(super) fn check_key_name(
    doc: &Document,
    at: &str,
    what: &str,
    name: &str,
    diags: &mut Diagnostics,
) {
    if valid_name(name) {
        return;
    }
    let fixed: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut hint = "it is part of step keys like <instance>/<state>/<visit>; rename it".to_owned();
    if !fixed.is_empty() {
        hint.push_str(&format!(", e.g. to '{fixed}'"));
    }
    diags.push(
        doc.key_diag(
            at,
            format!("{what} name '{name}' may use only letters, digits, '-', '_' and '.'"),
        )
        .hint(hint),
    );
}

/// Names of processes, actions, plugins, error kinds, states and branches:
/// letters, digits, `-`, `_` and `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn unknown_state<'a>(
    doc: &Document,
    at: &str,
    name: &str,
    known: impl Iterator<Item = &'a String> + Clone,
) -> Diagnostic {
    let d = doc.diag(at, format!("no state is named '{name}'"));
    match suggest(name, known.clone().map(String::as_str)) {
        Some(s) => d.hint(format!("did you mean '{s}'?")),
        None => d.hint(format!(
            "states are: {}",
            known.map(String::as_str).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Whether an adapter's error kind can be routed on.
pub fn valid_kind(kind: &str) -> bool {
    valid_name(kind)
}

/// Whether `kind` is an error an action can raise: an engine kind or one its
/// manifest declares.
pub fn error_kind_possible(kind: &str, declared: &[String]) -> bool {
    is_engine_error_kind(kind) || declared.iter().any(|d| d == kind)
}

/// The closest candidate within a small edit distance, where swapping two
/// neighbours counts as one edit (optimal string alignment), so `shpi` finds
/// `ship`. The allowance grows with the name, so short names do not match
/// everything.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
