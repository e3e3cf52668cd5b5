//! A process drawn as a state diagram, in Mermaid or Graphviz DOT: states
//! with what they do (the action, the signals waited for, what an undo
//! runs), transitions labelled by event (and guard), branches of parallel
//! and map states as clusters. Given an instance's trail, its current state
//! and the transitions it took are highlighted.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::process::{Process, State, StateKind, WaitTimer};

/// Where an instance has been: its current state and the transitions it
/// took, at the top level of its process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    pub current: Option<String>,
    pub visited: HashSet<String>,
    pub taken: HashSet<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

/// One node to draw.
struct Node {
    id: String,
    label: String,
    shape: Shape,
    /// At the top level: its state name (for the trail).
    top: Option<String>,
}

#[derive(Clone, Copy)]
enum Shape {
    Task,
    Wait,
    Succeed,
    Fail,
    Compensate,
    Fan,
}

struct Edge {
    from: String,
    to: String,
    label: String,
    taken: bool,
}

struct Cluster {
    id: String,
    label: String,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    clusters: Vec<Cluster>,
}

/// Draws `process` (with `trail` highlighted, if given).
pub fn draw(process: &Process, format: Format, trail: Option<&Trail>) -> String {
    let mut ids = 0usize;
    let root = cluster(process, true, &process.name, trail, &mut ids);
    let first = root
        .nodes
        .iter()
        .find(|n| n.top.as_deref() == Some(process.start.as_str()))
        .map_or_else(|| "n1".to_owned(), |n| n.id.clone());
    match format {
        Format::Mermaid => mermaid(&root, &first, trail),
        Format::Dot => dot(&root, &first, trail),
    }
}

/// The nodes and edges of one machine; `top` for the process itself (the
/// trail applies there), not for a branch.
fn cluster(p: &Process, top: bool, label: &str, trail: Option<&Trail>, ids: &mut usize) -> Cluster {
    let mut c = Cluster {
        id: format!("c{ids}"),
        label: label.to_owned(),
        nodes: Vec::new(),
        edges: Vec::new(),
        clusters: Vec::new(),
    };
    let mut id_of = std::collections::HashMap::new();
    for name in p.states.keys() {
        *ids += 1;
        id_of.insert(name.clone(), format!("n{ids}"));
    }
    for (name, s) in &p.states {
        let id = id_of[name].clone();
        let (shape, text) = describe(s);
        c.nodes.push(Node {
            id: id.clone(),
            label: text,
            shape,
            top: top.then(|| name.clone()),
        });
        let taken = |to: &str| {
            top && trail.is_some_and(|t| t.taken.contains(&(name.clone(), to.to_owned())))
        };
        for exit in exits(s) {
            if let Some(to) = id_of.get(exit.to) {
                c.edges.push(Edge {
                    from: id.clone(),
                    to: to.clone(),
                    label: exit.label,
                    taken: taken(exit.to),
                });
            }
        }
        let branches: Vec<(String, &Process)> = match &s.kind {
            StateKind::Parallel(par) => par
                .branches
                .iter()
                .map(|(b, bp)| (format!("{name} / {b}"), &**bp))
                .collect(),
            StateKind::Map(m) => vec![(format!("{name} / each item"), &*m.branch)],
            _ => Vec::new(),
        };
        for (blabel, bp) in branches {
            *ids += 1;
            let mut inner = cluster(bp, false, &blabel, None, ids);
            inner.id = format!("c{ids}");
            c.clusters.push(inner);
        }
    }
    c
}

/// One way out of a state: a transition arm, or a compensate state's `then`
/// (drawn as the event `undone`).
struct Exit<'a> {
    event: &'a str,
    /// The event, and its guard if it has one.
    label: String,
    to: &'a str,
}

/// Where `s` can go next, in the order written.
fn exits(s: &State) -> Vec<Exit<'_>> {
    let mut out = Vec::new();
    for t in &s.on {
        for arm in &t.arms {
            let label = match &arm.guard {
                Some(g) => format!("{} if {}", t.event, g.source()),
                None => t.event.clone(),
            };
            out.push(Exit {
                event: &t.event,
                label,
                to: &arm.to,
            });
        }
    }
    if let StateKind::Compensate { then } = &s.kind {
        out.push(Exit {
            event: "undone",
            label: "undone".into(),
            to: then,
        });
    }
    out
}

fn describe(s: &State) -> (Shape, String) {
    let name = &s.name;
    match &s.kind {
        StateKind::Task(t) => {
            let mut text = format!("{name}\naction: {}", t.action);
            if let Some(c) = &t.compensate {
                let _ = write!(text, "\nundo: {}", c.action);
            }
            (Shape::Task, text)
        }
        StateKind::Wait(w) => {
            let mut parts = Vec::new();
            if !w.events.is_empty() {
                parts.push(format!("signals: {}", w.events.join(", ")));
            }
            if let Some(t) = w.timeout {
                parts.push(format!("timeout {t}"));
            }
            match &w.timer {
                Some(WaitTimer::For(d)) => parts.push(format!("for {d}")),
                Some(WaitTimer::Until(e)) => parts.push(format!("until {}", e.source())),
                None => {}
            }
            (Shape::Wait, format!("{name}\nwait: {}", parts.join("; ")))
        }
        StateKind::Succeed { .. } => (Shape::Succeed, format!("{name}\nsucceed")),
        StateKind::Fail { .. } => (Shape::Fail, format!("{name}\nfail")),
        StateKind::Compensate { .. } => (Shape::Compensate, format!("{name}\ncompensate")),
        StateKind::Parallel(p) => (
            Shape::Fan,
            format!("{name}\nparallel: {} branches", p.branches.len()),
        ),
        StateKind::Map(m) => (
            Shape::Fan,
            format!("{name}\nmap: {} at a time", m.max_concurrency),
        ),
    }
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', "<br/>")
}

fn mermaid(root: &Cluster, first: &str, trail: Option<&Trail>) -> String {
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "  start(( )) --> {first}");
    let mut edges = 1usize; // the start arrow is link 0
    let mut taken = Vec::new();
    mermaid_cluster(root, &mut out, 1, &mut edges, &mut taken, true);
    let _ = writeln!(
        out,
        "  classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px"
    );
    let _ = writeln!(out, "  classDef visited fill:#e3f2fd,stroke:#1565c0");
    if let Some(t) = trail {
        for n in &root.nodes {
            let Some(name) = &n.top else { continue };
            if t.current.as_deref() == Some(name.as_str()) {
                let _ = writeln!(out, "  class {} current", n.id);
            } else if t.visited.contains(name) {
                let _ = writeln!(out, "  class {} visited", n.id);
            }
        }
        for i in taken {
            let _ = writeln!(out, "  linkStyle {i} stroke:#e65100,stroke-width:3px");
        }
    }
    out
}

fn mermaid_cluster(
    c: &Cluster,
    out: &mut String,
    depth: usize,
    edges: &mut usize,
    taken: &mut Vec<usize>,
    top: bool,
) {
    let pad = "  ".repeat(depth);
    if !top {
        let _ = writeln!(
            out,
            "{pad}subgraph {}[\"{}\"]",
            c.id,
            mermaid_text(&c.label)
        );
    }
    for n in &c.nodes {
        let text = mermaid_text(&n.label);
        let shaped = match n.shape {
            Shape::Task => format!("(\"{text}\")"),
            Shape::Wait => format!("{{{{\"{text}\"}}}}"),
            Shape::Succeed | Shape::Fail => format!("([\"{text}\"])"),
            Shape::Compensate => format!("[/\"{text}\"/]"),
            Shape::Fan => format!("[[\"{text}\"]]"),
        };
        let _ = writeln!(out, "{pad}  {}{shaped}", n.id);
    }
    for e in &c.edges {
        let _ = writeln!(
            out,
            "{pad}  {} -->|\"{}\"| {}",
            e.from,
            mermaid_text(&e.label),
            e.to
        );
        if e.taken {
            taken.push(*edges);
        }
        *edges += 1;
    }
    for inner in &c.clusters {
        mermaid_cluster(inner, out, depth + 1, edges, taken, false);
    }
    if !top {
        let _ = writeln!(out, "{pad}end");
    }
}

fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn dot(root: &Cluster, first: &str, trail: Option<&Trail>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_text(&root.label));
    let _ = writeln!(out, "  rankdir=TB;");
    let _ = writeln!(out, "  node [fontname=\"Helvetica\", fontsize=11];");
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(out, "  start [shape=point, width=0.2];");
    let _ = writeln!(out, "  start -> {first};");
    dot_cluster(root, &mut out, 1, trail, true);
    out.push_str("}\n");
    out
}

fn dot_cluster(c: &Cluster, out: &mut String, depth: usize, trail: Option<&Trail>, top: bool) {
    let pad = "  ".repeat(depth);
    if !top {
        let _ = writeln!(out, "{pad}subgraph cluster_{} {{", c.id);
        let _ = writeln!(
            out,
            "{pad}  label=\"{}\"; style=dashed;",
            dot_text(&c.label)
        );
    }
    for n in &c.nodes {
        let shape = match n.shape {
            Shape::Task => "shape=box, style=rounded",
            Shape::Wait => "shape=hexagon",
            Shape::Succeed => "shape=doublecircle",
            Shape::Fail => "shape=doubleoctagon",
            Shape::Compensate => "shape=parallelogram",
            Shape::Fan => "shape=box3d",
        };
        let mark = match (trail, &n.top) {
            (Some(t), Some(name)) if t.current.as_deref() == Some(name.as_str()) => {
                ", style=\"rounded,filled,bold\", fillcolor=\"#ffd54f\", color=\"#e65100\""
            }
            (Some(t), Some(name)) if t.visited.contains(name) => {
                ", style=\"rounded,filled\", fillcolor=\"#e3f2fd\""
            }
            _ => "",
        };
        let _ = writeln!(
            out,
            "{pad}  {} [label=\"{}\", {shape}{mark}];",
            n.id,
            dot_text(&n.label)
        );
    }
    for e in &c.edges {
        let style = if e.taken {
            ", color=\"#e65100\", penwidth=2.5"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{pad}  {} -> {} [label=\"{}\"{style}];",
            e.from,
            e.to,
            dot_text(&e.label)
        );
    }
    for inner in &c.clusters {
        dot_cluster(inner, out, depth + 1, None, false);
    }
    if !top {
        let _ = writeln!(out, "{pad}}}");
    }
}

mod svg;
pub use svg::svg;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(super) const SAGA: &str = r#"
process: saga
version: 1
start: reserve
states:
  reserve:
    action: reserve_inventory
    compensate: release_inventory
    on: { done: review, error: undo }
  review:
    type: wait
    timeout: 1h
    on:
      approve:
        - { if: '.amount > 10', to: checks }
        - { to: done }
      timeout: undo
  checks:
    type: parallel
    branches:
      build: { start: b, states: { b: { action: build, on: { done: ok } }, ok: { type: succeed } } }
    on: { done: done, error: undo }
  undo: { type: compensate, then: failed }
  done: { type: succeed }
  failed: { type: fail }
"#;

    fn saga() -> Process {
        crate::parse_process("saga.yaml", SAGA).unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn mermaid_draws_states_events_guards_and_branches() {
        let text = draw(&saga(), Format::Mermaid, None);
        assert!(text.starts_with("flowchart TD\n"), "{text}");
        assert!(
            text.contains("action: reserve_inventory<br/>undo: release_inventory"),
            "{text}"
        );
        assert!(
            text.contains("wait: signals: approve; timeout 1h"),
            "{text}"
        );
        assert!(text.contains("|\"approve if .amount > 10\"|"), "{text}");
        assert!(text.contains("|\"undone\"|"), "{text}");
        assert!(
            text.contains("subgraph") && text.contains("checks / build"),
            "{text}"
        );
        assert!(
            !text.contains("class "),
            "no trail, nothing highlighted: {text}"
        );
    }

    #[test]
    fn a_trail_highlights_the_current_state_and_the_path_taken() {
        let trail = Trail {
            current: Some("review".into()),
            visited: ["reserve".to_owned()].into_iter().collect(),
            taken: [("reserve".to_owned(), "review".to_owned())]
                .into_iter()
                .collect(),
        };
        let text = draw(&saga(), Format::Mermaid, Some(&trail));
        assert_eq!(text.matches(" current\n").count(), 1, "{text}");
        assert_eq!(text.matches(" visited\n").count(), 1, "{text}");
        // `reserve -->|done| review` is the first edge after the start arrow.
        assert!(text.contains("linkStyle 1 stroke"), "{text}");
        let dot = draw(&saga(), Format::Dot, Some(&trail));
        assert!(dot.starts_with("digraph \"saga\" {"), "{dot}");
        assert_eq!(dot.matches("penwidth=2.5").count(), 1, "{dot}");
        assert_eq!(dot.matches("fillcolor=\"#ffd54f\"").count(), 1, "{dot}");
        assert!(dot.contains("subgraph cluster_"), "{dot}");
    }
}
