//! SVG: a drawing laid out here, with no external tool, for a dashboard to
//! embed inline in HTML.
//!
//! The layout is a small layered (Sugiyama-style) one over the top-level
//! states only: layers by longest path from the start state (loops back to an
//! earlier state ignored), dummy nodes where an edge skips up to `MAX_SPAN`
//! layers, barycenter sweeps to order each layer, then x positions under the
//! mean of each node's neighbours above. Edges back up, within a layer or
//! longer than that are routed around the boxes. The dummy nodes are at most
//! edges × `MAX_SPAN`; the only cost beyond linear (plus sorting) is finding
//! the rightmost point of the layers a routed edge passes: edges × layers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::*;

mod draw;
use draw::*;

/// Estimated width of a character at the 12px font of a box, and at the
/// 11px font of an edge label: no font is measured.
const CHAR_W: f64 = 7.0;
const LABEL_CHAR_W: f64 = 6.5;
/// Height of a line of text in a box, and the padding around the text.
const LINE_H: f64 = 16.0;
const PAD_X: f64 = 12.0;
const PAD_Y: f64 = 8.0;
const MIN_BOX_W: f64 = 90.0;
/// Most characters shown on a line of a box, and of an edge label; the
/// whole text is in the tooltip.
const BOX_CHARS: usize = 40;
const EDGE_CHARS: usize = 32;
/// Space between neighbouring boxes in a layer, between a box and a long
/// edge passing by, between two such edges, and between layers.
const NODE_GAP: f64 = 36.0;
const EDGE_GAP: f64 = 20.0;
const LANE_GAP: f64 = 10.0;
const LAYER_GAP: f64 = 64.0;
/// Width kept for a long edge where it passes through a layer.
const DUMMY_W: f64 = 12.0;
/// How far a loop from a state back to itself reaches out, and how much
/// further each further one does.
const LOOP_REACH: f64 = 28.0;
const LOOP_STEP: f64 = 14.0;
/// How far apart arrows between the same two states are bent.
const BEND: f64 = 28.0;
/// Most layers a forward edge may skip through dummy nodes; a longer one is
/// routed around the side like a back edge, so that a big process does not
/// make edges × layers dummy nodes.
const MAX_SPAN: usize = 16;
/// Barycenter sweeps ordering the layers, alternately down and up.
const SWEEPS: usize = 4;
/// Room left around the drawing.
const MARGIN: f64 = 16.0;

/// The drawing's style, scoped to its root class: a `<style>` inside an
/// inline `<svg>` applies to the whole HTML page.
const SVG_STYLE: &str = "\
.weft-diagram{font-family:system-ui,sans-serif;font-size:12px}
.weft-diagram .box{fill:#fff;stroke:#546e7a;stroke-width:1.5}
.weft-diagram .stack{fill:#f3e5f5;stroke:#6a1b9a;stroke-width:1}
.weft-diagram .wait .box{stroke-dasharray:6 3}
.weft-diagram .succeed .box{stroke:#2e7d32;stroke-width:2.5}
.weft-diagram .fail .box{stroke:#c62828;stroke-width:2.5}
.weft-diagram .compensate .box{stroke:#ef6c00}
.weft-diagram .fan .box{stroke:#6a1b9a}
.weft-diagram .visited .box{fill:#e3f2fd}
.weft-diagram .current .box{fill:#ffd54f;stroke-width:3}
.weft-diagram .state text{fill:#212121}
.weft-diagram .state .name{font-weight:600}
.weft-diagram .state text.count{fill:#fff;font-size:11px;font-weight:700}
.weft-diagram rect.count{fill:#d84315;stroke:#fff;stroke-width:1.5}
.weft-diagram .edge path{fill:none;stroke:#78909c;stroke-width:1.5}
.weft-diagram .edge text{font-size:11px;fill:#455a64;stroke:#fff;stroke-width:3px;stroke-linejoin:round;paint-order:stroke}
.weft-diagram .edge.taken path{stroke:#1565c0;stroke-width:3}
.weft-diagram .edge.taken text{fill:#1565c0;font-weight:600}
.weft-diagram .entry circle{fill:#37474f}
.weft-diagram .entry path{fill:none;stroke:#37474f;stroke-width:1.5}
";

/// Arrowheads, grey and (for taken edges) blue. Their ids are fixed: two
/// drawings on one page define the same markers, so either serves.
const SVG_MARKERS: &str = "\
<defs>
<marker id=\"weft-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0 0L10 5L0 10z\" fill=\"#78909c\"/></marker>
<marker id=\"weft-arrow-taken\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"11\" markerHeight=\"11\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0 0L10 5L0 10z\" fill=\"#1565c0\"/></marker>
</defs>
";

/// Draws `process` as an SVG document laid out here (no external tool): its
/// top-level states as boxes in layers from the start state down (a parallel
/// or map state is one box naming its branches, which are not drawn),
/// transitions as arrows labelled by event, and loops back to an earlier
/// state (or very long edges down) routed around the right-hand side. A
/// state unreachable from the start goes in a last layer of its own. With
/// `trail`, its current state,
/// the states it visited and the transitions it took are highlighted;
/// `counts` (instances now in each top-level state) puts a badge on a box.
///
/// The document is self-contained, for embedding inline in HTML: its style
/// is scoped to the class `weft-diagram`. Each state is a
/// `<g class="state KIND [current|visited]" data-state="NAME">` (KIND is
/// `task`, `wait`, `succeed`, `fail`, `compensate` or `fan`; with a badge it
/// also has `data-count`), each transition a
/// `<g class="edge [taken] [back|self]" data-from=".." data-to=".." data-event="..">`.
/// The same input gives the same bytes.
pub fn svg(process: &Process, trail: Option<&Trail>, counts: &BTreeMap<String, usize>) -> String {
    let mut boxes: Vec<SvgBox<'_>> = process.states.values().map(SvgBox::of).collect();
    let mut arrows = Vec::new();
    for (from, s) in process.states.values().enumerate() {
        for exit in exits(s) {
            if let Some(to) = process.states.get_index_of(exit.to) {
                arrows.push(Arrow {
                    from,
                    to,
                    event: exit.event,
                    label: exit.label,
                });
            }
        }
    }
    // Arrows between the same two states are spread apart: each one's rank
    // among them, and how many there are.
    let mut between: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let ranks: Vec<usize> = arrows
        .iter()
        .map(|a| {
            let seen = between.entry((a.from, a.to)).or_insert(0);
            *seen += 1;
            *seen - 1
        })
        .collect();
    // Loops to the same state need room on its right, with their labels.
    for (a, &k) in arrows.iter().zip(&ranks) {
        if a.from == a.to
            && let Some(b) = boxes.get_mut(a.from)
        {
            let reach = LOOP_REACH + LOOP_STEP * k as f64;
            let text = shorten(&a.label, EDGE_CHARS).chars().count() as f64 * LABEL_CHAR_W;
            b.loop_room = b.loop_room.max(0.75 * reach + 8.0 + text);
        }
    }
    let start = process.states.get_index_of(&process.start);
    let layout = Layout::of(&boxes, &arrows, start);

    // The labels of forward arrows leaving the same box alternate, left to
    // right, between two heights in the gap below it, so that neighbours do
    // not run into each other.
    let mut leaving: BTreeMap<usize, Vec<(f64, usize)>> = BTreeMap::new();
    for (n, a) in arrows.iter().enumerate() {
        if laid_out(layout.layer[a.from], layout.layer[a.to]) {
            let first = layout
                .via
                .get(&(a.from, a.to))
                .and_then(|chain| chain.first())
                .map_or(layout.x[a.to], |&d| layout.x[d]);
            leaving.entry(a.from).or_default().push((first, n));
        }
    }
    let mut along = vec![0.5; arrows.len()];
    for list in leaving.values_mut().filter(|l| l.len() > 1) {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (i, &(_, n)) in list.iter().enumerate() {
            along[n] = if i % 2 == 0 { 0.3 } else { 0.7 };
        }
    }

    let mut canvas = Canvas::default();
    let mut lanes = 0usize;
    for (n, (a, &k)) in arrows.iter().zip(&ranks).enumerate() {
        let taken = trail.is_some_and(|t| {
            let from = boxes[a.from].name.to_owned();
            let to = boxes[a.to].name.to_owned();
            t.taken.contains(&(from, to))
        });
        let look = Look {
            rank: (k, between.get(&(a.from, a.to)).copied().unwrap_or(1)),
            along: along[n],
            taken,
        };
        draw_arrow(&mut canvas, &layout, &boxes, a, &look, &mut lanes);
    }
    for (i, b) in boxes.iter().enumerate() {
        let mark = trail.and_then(|t| {
            if t.current.as_deref() == Some(b.name) {
                Some("current")
            } else if t.visited.contains(b.name) {
                Some("visited")
            } else {
                None
            }
        });
        let count = counts.get(b.name).copied().unwrap_or(0);
        draw_box(&mut canvas, &layout, i, b, mark, count);
    }
    if let Some(s) = start.and_then(|s| boxes.get(s).map(|b| (s, b))) {
        let (x, y) = layout.centre(s.0);
        let top = y - s.1.h / 2.0;
        let _ = writeln!(
            canvas.out,
            "<g class=\"entry\"><circle cx=\"{}\" cy=\"{}\" r=\"5\"/><path d=\"M{} {}V{}\" marker-end=\"url(#weft-arrow)\"/></g>",
            Px(x),
            Px(top - 30.0),
            Px(x),
            Px(top - 25.0),
            Px(top)
        );
        canvas.see(x - 5.0, top - 35.0);
    }

    let (x0, y0, x1, y1) = canvas.extent();
    let (w, h) = (x1 - x0 + 2.0 * MARGIN, y1 - y0 + 2.0 * MARGIN);
    let name = format!("Process {} v{}", escape_xml(&process.name), process.version);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"weft-diagram\" viewBox=\"{} {} {} {}\" width=\"100%\" style=\"max-width:{}px\" role=\"img\" aria-label=\"{name}\">",
        Px(x0 - MARGIN),
        Px(y0 - MARGIN),
        Px(w),
        Px(h),
        Px(w)
    );
    let _ = writeln!(out, "<title>{name}</title>");
    let _ = writeln!(out, "<style>\n{SVG_STYLE}</style>");
    out.push_str(SVG_MARKERS);
    out.push_str(&canvas.out);
    out.push_str("</svg>");
    out
}

/// A state as a box.
struct SvgBox<'a> {
    name: &'a str,
    /// Its class: `task`, `wait`, `succeed`, `fail`, `compensate` or `fan`.
    kind: &'static str,
    /// What it does, in full (its tooltip), and the lines shown.
    label: String,
    lines: Vec<String>,
    w: f64,
    h: f64,
    /// Room kept on its right for loops back to itself.
    loop_room: f64,
}

impl<'a> SvgBox<'a> {
    fn of(s: &'a State) -> Self {
        let (shape, text) = describe(s);
        // A fan state names its branches (which are not drawn).
        let label = match &s.kind {
            StateKind::Parallel(p) => {
                let names: Vec<&str> = p.branches.iter().map(|(b, _)| b.as_str()).collect();
                format!("{}\nparallel: {}", s.name, names.join(", "))
            }
            StateKind::Map(m) => format!(
                "{}\nmap: each item, {} at a time",
                s.name, m.max_concurrency
            ),
            _ => text,
        };
        let kind = match shape {
            Shape::Task => "task",
            Shape::Wait => "wait",
            Shape::Succeed => "succeed",
            Shape::Fail => "fail",
            Shape::Compensate => "compensate",
            Shape::Fan => "fan",
        };
        let lines: Vec<String> = label.lines().map(|l| shorten(l, BOX_CHARS)).collect();
        let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        SvgBox {
            name: &s.name,
            kind,
            w: (widest as f64 * CHAR_W + 2.0 * PAD_X).max(MIN_BOX_W),
            h: lines.len().max(1) as f64 * LINE_H + 2.0 * PAD_Y,
            label,
            lines,
            loop_room: 0.0,
        }
    }
}

/// A transition (or a compensate state's `then`) between states, by index.
struct Arrow<'a> {
    from: usize,
    to: usize,
    event: &'a str,
    label: String,
}

/// Where everything goes. Nodes are the states, by index, then the dummy
/// nodes through which an edge spanning several layers passes.
struct Layout {
    /// Each node's layer, and the x of its centre.
    layer: Vec<usize>,
    x: Vec<f64>,
    /// Each layer's band: its top and height (that of its tallest box).
    band_top: Vec<f64>,
    band_h: Vec<f64>,
    /// The rightmost point of each layer, loops included.
    right: Vec<f64>,
    /// The dummy nodes of each long forward edge, top down.
    via: BTreeMap<(usize, usize), Vec<usize>>,
}

impl Layout {
    fn of(boxes: &[SvgBox<'_>], arrows: &[Arrow<'_>], start: Option<usize>) -> Layout {
        let n = boxes.len();
        // Each state's successors, once each, in the order written.
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut pairs = BTreeSet::new();
        for a in arrows {
            if pairs.insert((a.from, a.to)) {
                succ[a.from].push(a.to);
            }
        }
        let (state_layer, found) = longest_path_layers(&succ, start);

        // Nodes: the states, then a dummy node in each layer a forward edge
        // skips, so that it bends around boxes and takes part in ordering.
        // `up` and `down` link nodes in neighbouring layers.
        let mut layer = state_layer.clone();
        let mut width: Vec<f64> = boxes.iter().map(|b| b.w).collect();
        let mut room: Vec<f64> = boxes.iter().map(|b| b.loop_room).collect();
        let mut up: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut down: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut via = BTreeMap::new();
        for (u, targets) in succ.iter().enumerate() {
            for &v in targets {
                let (lu, lv) = (state_layer[u], state_layer[v]);
                if !laid_out(lu, lv) {
                    // Back, within a layer, to itself or very long: routed
                    // around the boxes instead.
                    continue;
                }
                let mut prev = u;
                let mut chain = Vec::new();
                for l in lu + 1..lv {
                    let d = layer.len();
                    layer.push(l);
                    width.push(DUMMY_W);
                    room.push(0.0);
                    up.push(vec![prev]);
                    down.push(Vec::new());
                    down[prev].push(d);
                    chain.push(d);
                    prev = d;
                }
                down[prev].push(v);
                up[v].push(prev);
                if !chain.is_empty() {
                    via.insert((u, v), chain);
                }
            }
        }

        let layers = layer.iter().max().map_or(0, |&m| m + 1);
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
        for &u in &found {
            rows[state_layer[u]].push(u);
        }
        for (d, &l) in layer.iter().enumerate().skip(n) {
            rows[l].push(d);
        }
        order_rows(&mut rows, &up, &down, layer.len());
        let x = place_rows(&rows, &up, &width, &room, n);

        let mut band_h = vec![LINE_H; layers];
        for (b, &l) in boxes.iter().zip(&state_layer) {
            band_h[l] = band_h[l].max(b.h);
        }
        let mut band_top = Vec::with_capacity(layers);
        let mut y = 0.0;
        for h in &band_h {
            band_top.push(y);
            y += h + LAYER_GAP;
        }
        let right = rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|&i| x[i] + width[i] / 2.0 + room[i])
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        Layout {
            layer,
            x,
            band_top,
            band_h,
            right,
            via,
        }
    }

    /// The centre of node `i`: boxes are centred in their layer's band.
    fn centre(&self, i: usize) -> (f64, f64) {
        let l = self.layer[i];
        (self.x[i], self.band_top[l] + self.band_h[l] / 2.0)
    }

    /// The bottom of layer `l`'s band.
    fn band_bottom(&self, l: usize) -> f64 {
        self.band_top[l] + self.band_h[l]
    }
}

/// Whether an edge from layer `lu` to layer `lv` is laid out (through dummy
/// nodes if it skips layers) rather than routed around the boxes.
fn laid_out(lu: usize, lv: usize) -> bool {
    lv > lu && lv - lu <= MAX_SPAN
}

/// Each state's layer: the longest path to it from `start`, not counting
/// back edges (found by a depth-first search from `start`), so a loop back to
/// an earlier state does not push states down without end. States that
/// cannot be reached from `start` share a layer after all the others.
/// Also returns the states in the order the search found them, the
/// unreachable ones last in the order written.
fn longest_path_layers(succ: &[Vec<usize>], start: Option<usize>) -> (Vec<usize>, Vec<usize>) {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        New,
        /// On the search's path: an edge to it goes back.
        Open,
        Done,
    }
    let n = succ.len();
    let mut mark = vec![Mark::New; n];
    let mut back = BTreeSet::new();
    let mut found = Vec::with_capacity(n);
    let mut finished = Vec::with_capacity(n);
    if let Some(s) = start.filter(|&s| s < n) {
        // Iterative, so a long chain of states cannot overflow the stack:
        // each entry is a state and how many of its successors are done.
        mark[s] = Mark::Open;
        found.push(s);
        let mut stack = vec![(s, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (u, next) = *top;
            match succ[u].get(next) {
                Some(&v) => {
                    top.1 += 1;
                    match mark[v] {
                        Mark::New => {
                            mark[v] = Mark::Open;
                            found.push(v);
                            stack.push((v, 0));
                        }
                        Mark::Open => {
                            back.insert((u, v));
                        }
                        Mark::Done => {}
                    }
                }
                None => {
                    mark[u] = Mark::Done;
                    finished.push(u);
                    stack.pop();
                }
            }
        }
    }
    // Without its back edges the reachable graph is acyclic, and reverse
    // finishing order is a topological order of it.
    let mut layer = vec![0usize; n];
    for &u in finished.iter().rev() {
        for &v in &succ[u] {
            if !back.contains(&(u, v)) {
                layer[v] = layer[v].max(layer[u] + 1);
            }
        }
    }
    let last = finished.iter().map(|&u| layer[u] + 1).max().unwrap_or(0);
    for (u, m) in mark.iter().enumerate() {
        if *m == Mark::New {
            layer[u] = last;
            found.push(u);
        }
    }
    (layer, found)
}

/// Orders each layer to reduce crossings: sweeping alternately down and up,
/// sorts a layer by the mean position of each node's neighbours in the layer
/// just ordered (a node with none there keeps its place).
fn order_rows(rows: &mut [Vec<usize>], up: &[Vec<usize>], down: &[Vec<usize>], nodes: usize) {
    let mut pos = vec![0usize; nodes];
    for row in rows.iter() {
        for (p, &i) in row.iter().enumerate() {
            pos[i] = p;
        }
    }
    let layers = rows.len();
    for sweep in 0..SWEEPS {
        let (order, near): (Vec<usize>, &[Vec<usize>]) = if sweep % 2 == 0 {
            ((1..layers).collect(), up)
        } else {
            ((0..layers.saturating_sub(1)).rev().collect(), down)
        };
        for l in order {
            let mut keyed: Vec<(f64, usize, usize)> = rows[l]
                .iter()
                .map(|&i| {
                    let ns = &near[i];
                    let at = if ns.is_empty() {
                        pos[i] as f64
                    } else {
                        ns.iter().map(|&j| pos[j] as f64).sum::<f64>() / ns.len() as f64
                    };
                    (at, pos[i], i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            rows[l] = keyed.into_iter().map(|(_, _, i)| i).collect();
            for (p, &i) in rows[l].iter().enumerate() {
                pos[i] = p;
            }
        }
    }
}

/// The x of each node's centre. Layer by layer, top down: each node goes
/// under the mean of its neighbours above, or further right to keep clear of
/// the one before it; then the layer shifts as a whole by the median of how
/// far its states (the first `states` nodes; its dummy nodes if it has no
/// state with a wish) were pushed from where they wanted to be. States come
/// first and the median is used so that edges pushed aside do not drag the
/// boxes: a chain with long edges beside it stays straight. A layer where no
/// node had a wish is centred on 0.
fn place_rows(
    rows: &[Vec<usize>],
    up: &[Vec<usize>],
    width: &[f64],
    room: &[f64],
    states: usize,
) -> Vec<f64> {
    let mut x = vec![0.0; width.len()];
    for row in rows {
        let want: Vec<Option<f64>> = row
            .iter()
            .map(|&i| {
                let ns = &up[i];
                (!ns.is_empty()).then(|| ns.iter().map(|&j| x[j]).sum::<f64>() / ns.len() as f64)
            })
            .collect();
        let mut prev: Option<usize> = None;
        for (&i, &w) in row.iter().zip(&want) {
            let clear = prev.map(|p| {
                let gap = match (p < states, i < states) {
                    (true, true) => NODE_GAP,
                    (false, false) => LANE_GAP,
                    _ => EDGE_GAP,
                };
                x[p] + width[p] / 2.0 + room[p] + gap + width[i] / 2.0
            });
            x[i] = match (w, clear) {
                (Some(w), Some(c)) => w.max(c),
                (Some(w), None) => w,
                (None, Some(c)) => c,
                (None, None) => 0.0,
            };
            prev = Some(i);
        }
        let pushed = |real: bool| -> Vec<f64> {
            let mut off: Vec<f64> = row
                .iter()
                .zip(&want)
                .filter(|(i, _)| (**i < states) == real)
                .filter_map(|(&i, w)| w.map(|w| x[i] - w))
                .collect();
            off.sort_by(f64::total_cmp);
            off
        };
        let mut off = pushed(true);
        if off.is_empty() {
            off = pushed(false);
        }
        let shift = if off.is_empty() {
            match (row.first(), row.last()) {
                (Some(&a), Some(&b)) => {
                    (x[a] - width[a] / 2.0 + x[b] + width[b] / 2.0 + room[b]) / 2.0
                }
                _ => 0.0,
            }
        } else {
            let mid = off.len() / 2;
            if off.len() % 2 == 1 {
                off[mid]
            } else {
                (off[mid - 1] + off[mid]) / 2.0
            }
        };
        for &i in row {
            x[i] -= shift;
        }
    }
    x
}

/// How a label is anchored at its point.
#[derive(Clone, Copy)]
enum Anchor {
    Start,
    Middle,
    End,
}

/// How one arrow is drawn besides its route.
struct Look {
    /// Its place among the arrows between the same two states, and how
    /// many there are.
    rank: (usize, usize),
    /// How far along its first stretch its label goes, if it goes forward.
    along: f64,
    taken: bool,
}

/// The body of the drawing, and how far it reaches.
struct Canvas {
    out: String,
    min: (f64, f64),
    max: (f64, f64),
}

impl Default for Canvas {
    fn default() -> Self {
        Canvas {
            out: String::new(),
            min: (f64::INFINITY, f64::INFINITY),
            max: (f64::NEG_INFINITY, f64::NEG_INFINITY),
        }
    }
}

impl Canvas {
    /// Notes that something is drawn at `(x, y)`.
    fn see(&mut self, x: f64, y: f64) {
        self.min = (self.min.0.min(x), self.min.1.min(y));
        self.max = (self.max.0.max(x), self.max.1.max(y));
    }

    /// Notes an edge label of `chars` characters with its baseline at `y`.
    fn see_label(&mut self, x: f64, y: f64, chars: usize, anchor: Anchor) {
        let w = chars as f64 * LABEL_CHAR_W;
        let left = match anchor {
            Anchor::Start => x,
            Anchor::Middle => x - w / 2.0,
            Anchor::End => x - w,
        };
        self.see(left, y - 12.0);
        self.see(left + w, y + 4.0);
    }

    /// `(min x, min y, max x, max y)` of all that is drawn.
    fn extent(&self) -> (f64, f64, f64, f64) {
        if self.min.0 <= self.max.0 && self.min.1 <= self.max.1 {
            (self.min.0, self.min.1, self.max.0, self.max.1)
        } else {
            (0.0, 0.0, 0.0, 0.0)
        }
    }
}

#[cfg(test)]
mod tests;
