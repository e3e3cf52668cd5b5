//! The SVG layout's tests: well-formed output, classes, escaping, loops,
//! long chains and tangles.

#![allow(clippy::unwrap_used)]

use super::*;

fn load(yaml: &str) -> Process {
    crate::parse_process("p.yaml", yaml).unwrap_or_else(|d| panic!("{d}"))
}

fn saga() -> Process {
    load(crate::diagram::tests::SAGA)
}

/// Checks the document is well formed enough: one root element, groups
/// balanced, no raw markup characters left in text.
fn well_formed(svg: &str) {
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.ends_with("</svg>"), "{svg}");
    assert_eq!(svg.matches("<svg").count(), 1, "{svg}");
    assert_eq!(
        svg.matches("<g ").count(),
        svg.matches("</g>").count(),
        "{svg}"
    );
    assert_eq!(
        svg.matches("<text").count(),
        svg.matches("</text>").count(),
        "{svg}"
    );
    assert_eq!(
        svg.matches("<title>").count(),
        svg.matches("</title>").count(),
        "{svg}"
    );
    assert!(
        svg.contains("viewBox=\"") && svg.contains("width=\"100%\""),
        "{svg}"
    );
    assert!(
        svg.contains("role=\"img\"") && svg.contains("aria-label=\""),
        "{svg}"
    );
}

/// The `<g>` opening tag of state `name`'s box.
fn state_tag<'a>(svg: &'a str, name: &str) -> &'a str {
    let at = svg
        .find(&format!("data-state=\"{name}\""))
        .unwrap_or_else(|| panic!("no state {name}: {svg}"));
    let open = svg[..at].rfind("<g ").unwrap();
    let end = open + svg[open..].find('>').unwrap();
    &svg[open..=end]
}

/// The top edge (y) of state `name`'s box.
fn box_y(svg: &str, name: &str) -> f64 {
    let at = svg.find(&format!("data-state=\"{name}\"")).unwrap();
    let rect = at + svg[at..].find("<rect class=\"box\"").unwrap();
    let y = rect + svg[rect..].find(" y=\"").unwrap() + 4;
    let end = y + svg[y..].find('"').unwrap();
    svg[y..end].parse().unwrap()
}

#[test]
fn every_state_is_drawn_once_and_the_document_is_well_formed() {
    let p = saga();
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    assert!(text.contains("aria-label=\"Process saga v1\""), "{text}");
    for name in p.states.keys() {
        assert_eq!(
            text.matches(&format!("data-state=\"{name}\"")).count(),
            1,
            "{name}: {text}"
        );
    }
    assert_eq!(text.matches("class=\"state ").count(), p.states.len());
    // The kinds, the fan state naming its branch (not laid out), the
    // guard and the compensation as edges.
    assert!(state_tag(&text, "reserve").contains("class=\"state task\""));
    assert!(state_tag(&text, "review").contains("class=\"state wait\""));
    assert!(state_tag(&text, "checks").contains("class=\"state fan\""));
    assert!(state_tag(&text, "done").contains("class=\"state succeed\""));
    assert!(state_tag(&text, "failed").contains("class=\"state fail\""));
    assert!(text.contains("parallel: build"), "{text}");
    assert!(
        !text.contains("data-state=\"b\""),
        "branches are not drawn: {text}"
    );
    assert!(
        text.contains("data-from=\"undo\" data-to=\"failed\" data-event=\"undone\""),
        "{text}"
    );
    assert!(
        !text.contains(" current") && !text.contains(" taken"),
        "{text}"
    );
    // Same input, same bytes.
    assert_eq!(text, svg(&p, None, &BTreeMap::new()));
}

#[test]
fn a_trail_and_counts_mark_states_and_edges() {
    let trail = Trail {
        current: Some("review".into()),
        visited: ["reserve".to_owned(), "review".to_owned()]
            .into_iter()
            .collect(),
        taken: [("reserve".to_owned(), "review".to_owned())]
            .into_iter()
            .collect(),
    };
    let counts: BTreeMap<String, usize> = [
        ("review".to_owned(), 3),
        ("done".to_owned(), 0),
        ("reserve".to_owned(), 12),
        ("no-such-state".to_owned(), 5),
    ]
    .into_iter()
    .collect();
    let text = svg(&saga(), Some(&trail), &counts);
    well_formed(&text);
    assert_eq!(
        state_tag(&text, "review"),
        "<g class=\"state wait current\" data-state=\"review\" data-count=\"3\">"
    );
    assert_eq!(
        state_tag(&text, "reserve"),
        "<g class=\"state task visited\" data-state=\"reserve\" data-count=\"12\">"
    );
    assert_eq!(
        state_tag(&text, "done"),
        "<g class=\"state succeed\" data-state=\"done\">"
    );
    assert!(
        text.contains(
            "<g class=\"edge taken\" data-from=\"reserve\" data-to=\"review\" data-event=\"done\">"
        ),
        "{text}"
    );
    assert_eq!(text.matches("class=\"edge taken").count(), 1, "{text}");
    assert!(text.contains("url(#weft-arrow-taken)"), "{text}");
    // Badges: one per state with instances, showing the number.
    assert_eq!(text.matches("<rect class=\"count\"").count(), 2, "{text}");
    assert!(
        text.contains(">3</text>") && text.contains(">12</text>"),
        "{text}"
    );
    assert!(!text.contains(">5</text>"), "{text}");
}

#[test]
fn text_from_the_file_is_escaped() {
    assert_eq!(
        escape_xml("a&b<c>\"d'e\u{1}"),
        "a&amp;b&lt;c&gt;&quot;d&#39;e\u{fffd}"
    );
    let p = load(
        r#"
process: quoting
version: 1
start: pick
states:
  pick:
    action: pick
    on:
      done:
        - { if: '.kind == "a&b" and .n < 3', to: yes }
        - { to: no }
  yes: { type: succeed }
  no: { type: fail }
"#,
    );
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    assert!(
        text.contains("done if .kind == &quot;a&amp;b&quot; and .n &lt; 3"),
        "{text}"
    );
    assert!(!text.contains("a&b") && !text.contains(".n < 3"), "{text}");
    // The saga's guard `.amount > 10`.
    let saga = svg(&saga(), None, &BTreeMap::new());
    assert!(saga.contains("approve if .amount &gt; 10"), "{saga}");
}

const RETRY: &str = r#"
process: retry
version: 1
start: fetch
states:
  fetch: { action: fetch, on: { done: check, error: failed } }
  check:
    action: check
    on: { done: finish, error.busy: check, error: pause }
  pause:
    type: wait
    wait: { for: 5s }
    on: { elapsed: fetch }
  finish: { type: succeed }
  failed: { type: fail }
"#;

#[test]
fn loops_back_and_to_itself_are_drawn_and_the_start_is_on_top() {
    let p = load(RETRY);
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    let start = box_y(&text, "fetch");
    for name in ["check", "pause", "finish", "failed"] {
        assert!(box_y(&text, name) > start, "{name}: {text}");
    }
    // check below fetch, pause below check: longest path, loop ignored.
    assert!(box_y(&text, "pause") > box_y(&text, "check"), "{text}");
    assert!(
        text.contains("<g class=\"edge back\" data-from=\"pause\" data-to=\"fetch\""),
        "{text}"
    );
    assert!(
        text.contains("<g class=\"edge self\" data-from=\"check\" data-to=\"check\""),
        "{text}"
    );
    assert!(text.contains("class=\"entry\""), "{text}");
}

#[test]
fn a_single_state_and_unreachable_states_are_drawn() {
    let one = load("process: one\nversion: 1\nstart: end\nstates:\n  end: { type: succeed }\n");
    let text = svg(&one, None, &BTreeMap::new());
    well_formed(&text);
    assert_eq!(text.matches("class=\"state ").count(), 1, "{text}");

    // Validation refuses unreachable states; a process built otherwise
    // may still have them: here `fetch` and `check`, and a start that is
    // not a state at all.
    let mut p = load(RETRY);
    p.start = "finish".into();
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    assert!(box_y(&text, "fetch") > box_y(&text, "finish"), "{text}");
    assert_eq!(box_y(&text, "fetch"), box_y(&text, "pause"), "{text}");
    p.start = "nowhere".into();
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    assert_eq!(text.matches("class=\"state ").count(), 5, "{text}");
    assert!(!text.contains("class=\"entry\""), "{text}");
}

#[test]
fn a_chain_of_two_hundred_states_is_drawn_in_order() {
    let mut yaml = String::from("process: chain\nversion: 1\nstart: s0\nstates:\n");
    for i in 0..199 {
        yaml.push_str(&format!(
            "  s{i}: {{ action: step, on: {{ done: s{}, error: s0 }} }}\n",
            i + 1
        ));
    }
    yaml.push_str("  s199: { type: succeed }\n");
    let p = load(&yaml);
    assert_eq!(p.states.len(), 200);
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    assert_eq!(text.matches("class=\"state ").count(), 200);
    assert_eq!(
        text.matches("class=\"edge back\"").count(),
        198,
        "s1..s198 back to s0"
    );
    let ys: Vec<f64> = (0..200).map(|i| box_y(&text, &format!("s{i}"))).collect();
    assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
}

#[test]
fn a_tangled_process_of_two_hundred_states_is_drawn() {
    // A chain (so all are reachable) with errors jumping anywhere:
    // back, forward over many layers, or to the state itself.
    let mut seed: u64 = 7;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut yaml = String::from("process: tangle\nversion: 1\nstart: s0\nstates:\n");
    for i in 0..199 {
        yaml.push_str(&format!(
            "  s{i}: {{ action: step, on: {{ done: s{}, error: s{}, error.x: s{} }} }}\n",
            i + 1,
            next(200),
            next(200)
        ));
    }
    yaml.push_str("  s199: { type: succeed }\n");
    let p = load(&yaml);
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    assert_eq!(text.matches("class=\"state ").count(), 200);
    assert_eq!(text.matches("class=\"edge").count(), 199 * 3);
    assert!(
        !text.contains("NaN") && !text.contains("inf"),
        "coordinates are finite"
    );
    assert_eq!(text, svg(&p, None, &BTreeMap::new()));
}

#[test]
fn long_edges_bend_through_the_layers_they_skip() {
    let p = load(
        r#"
process: skip
version: 1
start: a
states:
  a: { action: x, on: { done: b, error: d } }
  b: { action: x, on: { done: c } }
  c: { action: x, on: { done: d } }
  d: { type: succeed }
"#,
    );
    let text = svg(&p, None, &BTreeMap::new());
    well_formed(&text);
    let edge = text
        .find("data-from=\"a\" data-to=\"d\"")
        .map(|at| &text[at..at + text[at..].find("</g>").unwrap()])
        .unwrap();
    // Two dummy nodes, each a pair of points: a polyline of 6 points.
    assert_eq!(edge.matches('L').count(), 5, "{edge}");
    assert!(edge.contains("text-anchor=\"middle\""), "{edge}");
    assert!(box_y(&text, "d") > box_y(&text, "c"), "{text}");
}

#[test]
fn very_long_edges_go_around_the_side() {
    // Every step can fail straight to the end, 30 layers down.
    let mut yaml = String::from("process: steps\nversion: 1\nstart: s0\nstates:\n");
    for i in 0..30 {
        yaml.push_str(&format!(
            "  s{i}: {{ action: step, on: {{ done: s{}, error: failed }} }}\n",
            i + 1
        ));
    }
    yaml.push_str("  s30: { type: succeed }\n  failed: { type: fail }\n");
    let text = svg(&load(&yaml), None, &BTreeMap::new());
    well_formed(&text);
    let edge = |from: &str| {
        let at = text
            .find(&format!("data-from=\"{from}\" data-to=\"failed\""))
            .unwrap();
        &text[at..at + text[at..].find("</g>").unwrap()]
    };
    // From s29 one layer down, straight; from s0 30 layers down, around
    // the side with its label beside it; neither counts as going back.
    assert_eq!(edge("s29").matches('L').count(), 1, "{}", edge("s29"));
    assert!(
        edge("s0").contains("text-anchor=\"start\""),
        "{}",
        edge("s0")
    );
    assert_eq!(edge("s0").matches('L').count(), 5, "{}", edge("s0"));
    assert!(!text.contains(" back\""), "{text}");
}
