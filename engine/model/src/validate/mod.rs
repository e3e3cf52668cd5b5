//! Raw → validated: turns a loaded process document into a `Process`, or into
//! every problem found, each with `file:line:col`, what is wrong and a hint.
//!
//! This file holds the entry point and the walk over a machine's states;
//! each file beside it checks one part of a state or of the document.

mod fan;
mod fields;
mod names;
mod raw;
mod schedule;
mod state;
mod task;
mod wait;

pub use names::{error_kind_possible, suggest, valid_kind, valid_name};
pub(crate) use raw::deserialize;
pub(crate) use task::retry_policy;

use std::collections::{BTreeSet, VecDeque};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::def::{MachineDef, ProcessDef, StateDef};
use crate::process::{Process, State};
use crate::source::{Diagnostics, Document, pointer};
use names::{check_header, check_key_name, unknown_state};
use schedule::schedules;
use state::state;

/// Validates a process document. Checks that need the bindings and plugin
/// manifests live in `bindings::check`.
pub fn process(doc: &Document) -> Result<Process, Diagnostics> {
    crate::source::check_depth(doc)?;
    let mut diags = Diagnostics::default();
    let shell: Shell = deserialize(doc, "", &doc.value)?;
    let def = ProcessDef {
        process: shell.process,
        version: shell.version,
        description: shell.description,
        start: shell.start,
        states: IndexMap::new(),
        schedule: None,
        sla: None,
    };
    check_header(doc, &def, &mut diags);
    let states = machine(doc, "", &def.start, &shell.states, &mut diags);
    let schedules = schedules(doc, shell.schedule.as_ref(), &mut diags);
    let sla = fields::duration(doc, "/sla", shell.sla.as_deref(), &mut diags);
    if !diags.is_empty() {
        return Err(diags.sorted());
    }
    Ok(Process {
        name: def.process,
        version: def.version,
        description: def.description,
        start: def.start,
        states,
        schedules,
        sla,
        definition: doc.value.clone(),
        base: String::new(),
    })
}

/// The states of a process, or of a branch whose states are at
/// `base/states` in the document.
fn machine(
    doc: &Document,
    base: &str,
    start: &str,
    raw: &IndexMap<String, Value>,
    diags: &mut Diagnostics,
) -> IndexMap<String, State> {
    let before = diags.len();
    // Every declared name, even of states whose fields do not parse, so one
    // bad field does not also make them "unknown".
    let names = Names::new(raw.keys().map(String::as_str).collect());
    if names.is_empty() {
        diags.push(doc.key_diag(
            &format!("{base}/states"),
            "a process needs at least one state",
        ));
    }
    if !names.contains(start) {
        let known: Vec<String> = raw.keys().cloned().collect();
        diags.push(unknown_state(
            doc,
            &format!("{base}/start"),
            start,
            known.iter(),
        ));
    }
    let mut states = IndexMap::new();
    for (name, value) in raw {
        let at = format!("{base}{}", pointer(["states", name]));
        check_key_name(doc, &at, "state", name, diags);
        match deserialize::<StateDef>(doc, &at, value) {
            Ok(def) => {
                if let Some(state) = state(doc, &at, name, &def, &names, diags) {
                    states.insert(name.clone(), state);
                }
            }
            Err(d) => diags.push(d),
        }
    }
    if diags.len() == before {
        check_reachable(doc, base, start, &states, diags);
    }
    states
}

/// A machine's state names: in file order (for messages), and as a set
/// (a process may have hundreds of thousands of states, each target
/// checked against them).
pub(super) struct Names<'a> {
    list: Vec<&'a str>,
    set: std::collections::HashSet<&'a str>,
}

impl<'a> Names<'a> {
    fn new(list: Vec<&'a str>) -> Self {
        let set = list.iter().copied().collect();
        Names { list, set }
    }
    pub(super) fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.list.iter().copied()
    }
    pub(super) fn join(&self, sep: &str) -> String {
        self.list.join(sep)
    }
}

/// A branch machine at `at` (a parallel branch, or a map's `branch`).
fn branch(
    doc: &Document,
    at: &str,
    label: &str,
    raw: &Value,
    diags: &mut Diagnostics,
) -> Option<Process> {
    let def: MachineDef = match deserialize(doc, at, raw) {
        Ok(d) => d,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let before = diags.len();
    let states = machine(doc, at, &def.start, &def.states, diags);
    (diags.len() == before).then(|| Process {
        name: label.to_owned(),
        version: 0,
        description: None,
        start: def.start,
        states,
        schedules: Vec::new(),
        sla: None,
        definition: Value::Null,
        base: at.to_owned(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shell {
    process: String,
    version: u32,
    #[serde(default)]
    description: Option<String>,
    start: String,
    states: IndexMap<String, Value>,
    #[serde(default)]
    schedule: Option<Value>,
    /// How long an instance may run before it is flagged as stuck.
    #[serde(default)]
    sla: Option<String>,
}

fn check_reachable(
    doc: &Document,
    base: &str,
    start: &str,
    states: &IndexMap<String, State>,
    diags: &mut Diagnostics,
) {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(s) = states.get(&name) {
            queue.extend(s.targets().map(str::to_owned));
        }
    }
    for name in states.keys() {
        if !seen.contains(name) {
            diags.push(
                doc.key_diag(
                    &format!("{base}{}", pointer(["states", name])),
                    format!("state '{name}' can never be reached from '{start}'"),
                )
                .hint("add a transition to it, or remove it"),
            );
        }
    }
}
