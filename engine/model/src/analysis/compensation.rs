//! Compensation coverage: a saga that can end in failure after a
//! compensable step completed, without passing through a compensate state,
//! leaves that step's effect in the world (a charge never refunded). The
//! check follows every path of the process's own states, carrying the set
//! of compensable steps completed on the way (a compensate state empties
//! it), and warns for each failure end reached with steps in the set,
//! naming the shortest such path.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::process::{Process, StateKind};
use crate::source::{Diagnostic, Document, pointer};

/// Paths explored before the check gives up (a process with very many
/// compensable steps in loops); it then says nothing rather than guess.
const LIMIT: usize = 50_000;

type Node = (String, BTreeSet<String>);

/// The compensable steps a state completes when left on `event`: a task's
/// own on `done`; those inside a parallel or map state's branches on any
/// event (a failed fan keeps what its other branches completed).
fn completes(process: &Process, state: &str, event: &str) -> Vec<String> {
    let Some(s) = process.state(state) else {
        return Vec::new();
    };
    match &s.kind {
        StateKind::Task(t) if t.compensate.is_some() && event == "done" => vec![state.to_owned()],
        StateKind::Parallel(p) => p
            .branches
            .iter()
            .flat_map(|(b, m)| compensable(m).into_iter().map(move |s| format!("{b}/{s}")))
            .collect(),
        StateKind::Map(m) => compensable(&m.branch)
            .into_iter()
            .map(|s| format!("{state}[*]/{s}"))
            .collect(),
        _ => Vec::new(),
    }
}

fn compensable(machine: &Process) -> Vec<String> {
    machine
        .walk()
        .into_iter()
        .filter(|(_, s)| matches!(&s.kind, StateKind::Task(t) if t.compensate.is_some()))
        .map(|(_, s)| s.name.clone())
        .collect()
}

/// Where a state can go: (event, target).
fn edges(process: &Process, state: &str) -> Vec<(String, String)> {
    let Some(s) = process.state(state) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> =
        s.on.iter()
            .flat_map(|t| t.arms.iter().map(move |a| (t.event.clone(), a.to.clone())))
            .collect();
    if let StateKind::Compensate { then } = &s.kind {
        out.push(("then".to_owned(), then.clone()));
    }
    out
}

pub fn check(doc: &Document, process: &Process) -> Vec<Diagnostic> {
    let start: Node = (process.start.clone(), BTreeSet::new());
    let mut parent: HashMap<Node, Option<(Node, String)>> = HashMap::new();
    parent.insert(start.clone(), None);
    let mut queue = VecDeque::from([start]);
    let mut warned: BTreeSet<(String, String)> = BTreeSet::new();
    let mut out = Vec::new();
    while let Some(node) = queue.pop_front() {
        if parent.len() > LIMIT {
            return Vec::new();
        }
        let (state, done) = &node;
        let Some(s) = process.state(state) else {
            continue;
        };
        if matches!(s.kind, StateKind::Fail { .. }) {
            for step in done {
                if !warned.insert((state.clone(), step.clone())) {
                    continue;
                }
                let path = path_to(&parent, &node);
                let (last_from, last_event) = parent
                    .get(&node)
                    .cloned()
                    .flatten()
                    .map(|(p, e)| (p.0, e))
                    .unwrap_or_default();
                let at = if last_event == "then" {
                    pointer(["states", &last_from, "then"])
                } else {
                    pointer(["states", &last_from, "on", &last_event])
                };
                out.push(
                    doc.diag(
                        &at,
                        format!(
                            "warning: the path {path} ends the instance failed after '{step}' completed, and does not undo it"
                        ),
                    )
                    .hint("route the failure through a `type: compensate` state, which undoes every completed step"),
                );
            }
            continue;
        }
        let emptied = matches!(s.kind, StateKind::Compensate { .. });
        for (event, to) in edges(process, state) {
            let mut next_done = if emptied {
                BTreeSet::new()
            } else {
                done.clone()
            };
            next_done.extend(completes(process, state, &event));
            let next: Node = (to, next_done);
            if !parent.contains_key(&next) {
                parent.insert(next.clone(), Some((node.clone(), event)));
                queue.push_back(next);
            }
        }
    }
    out
}

/// `a -done-> b -error-> c`, from the start to `node`.
fn path_to(parent: &HashMap<Node, Option<(Node, String)>>, node: &Node) -> String {
    let mut steps = Vec::new();
    let mut at = node.clone();
    while let Some(Some((p, event))) = parent.get(&at) {
        steps.push((event.clone(), at.0.clone()));
        at = p.clone();
    }
    let mut text = at.0;
    for (event, to) in steps.into_iter().rev() {
        text.push_str(&format!(" -{event}-> {to}"));
    }
    text
}
