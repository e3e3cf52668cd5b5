//! How deep a YAML or JSON text nests, measured on the text before it is
//! parsed. The YAML reader recurses once per level, and so do converting and
//! dropping what it builds, so a text nested thousands deep has to be refused
//! before any of them runs; this scan keeps its own stack.
//!
//! It follows the YAML scanner's rules for what opens a collection: a block
//! collection starts where a key (`k:`), `- ` or `? ` sits further right than
//! the enclosing one (or a `- ` at its mapping's own column), and every `[`
//! or `{` opens one. Text inside scalars (quoted, block `|`/`>`, plain lines
//! that continue a scalar, comments) opens nothing. Where it cannot tell
//! cheaply it errs towards counting, never towards skipping text, except for
//! `[a: [b: ...]]`, a single-pair mapping inside a flow sequence, counted as
//! one level instead of two; the conversion's exact check catches that.

use crate::source::Pos;

/// Where the first collection deeper than `max` levels starts, if any. The
/// top-level collection is level 1.
pub(crate) fn too_deep(text: &str, max: usize) -> Option<Pos> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut scan = Scan {
        max,
        stack: Vec::new(),
        mode: Mode::Block,
        node_start: true,
        key_start: None,
        json_like: false,
    };
    // YAML breaks lines at "\r\n", "\n" and a lone "\r".
    let lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .flat_map(|l| l.split('\r'));
    for (i, line) in lines.enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if let Err(pos) = scan.line(&chars, n) {
            return Some(pos);
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
    /// A sequence written at its mapping's own column (`k:\n- a`).
    Indentless,
}

#[derive(Debug, Clone, Copy)]
struct Indent {
    col: usize,
    kind: Kind,
    depth: usize,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Block,
    /// Inside `open` flow collections that started at block depth `base`.
    Flow {
        base: usize,
        open: usize,
    },
    /// Inside a quoted scalar, to go back to `flow` (or block) after it.
    Quoted {
        quote: char,
        flow: Option<(usize, usize)>,
    },
    /// The lines of a `|` or `>` scalar: those indented at least `indent`
    /// (found from the first line with text when not given) and blank ones.
    Literal {
        parent: isize,
        indent: Option<usize>,
        widest: usize,
    },
    /// A plain scalar that more-indented lines continue.
    Plain {
        parent: isize,
    },
}

type Result<T> = std::result::Result<T, Pos>;

struct Scan {
    max: usize,
    /// Open block collections, columns strictly increasing.
    stack: Vec<Indent>,
    mode: Mode,
    /// Whether a node may start here (after an indicator, not mid-scalar).
    /// Only then does a quote open a quoted scalar, so that text is skipped
    /// only when the YAML scanner would skip it too.
    node_start: bool,
    /// Column where the node that a `:` on this line would make a key began.
    key_start: Option<usize>,
    /// Just after a quoted scalar, where `:` is a value indicator even
    /// without a space after it (`{"a":1}`).
    json_like: bool,
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn blank_after(l: &[char], p: usize) -> bool {
    l.get(p + 1).is_none_or(|c| is_ws(*c))
}

fn is_flow_indicator(c: char) -> bool {
    matches!(c, ',' | '[' | ']' | '{' | '}')
}

/// Past an anchor, tag or alias. Stops at flow indicators too, so as never to
/// skip a bracket the YAML scanner would see.
fn skip_token(l: &[char], mut p: usize) -> usize {
    while p < l.len() && !is_ws(l[p]) && !is_flow_indicator(l[p]) {
        p += 1;
    }
    p
}

fn is_marker(l: &[char], marker: &str) -> bool {
    l.len() >= 3 && l[..3].iter().copied().eq(marker.chars()) && (l.len() == 3 || is_ws(l[3]))
}

impl Scan {
    fn depth(&self) -> usize {
        self.stack.last().map_or(0, |t| t.depth)
    }

    /// The column a nested block scalar must go beyond (-1 at the top).
    fn indent(&self) -> isize {
        self.stack.last().map_or(-1, |t| t.col as isize)
    }

    fn line(&mut self, l: &[char], n: u32) -> Result<()> {
        self.key_start = None;
        let first = l.iter().position(|c| !is_ws(*c));
        match self.mode {
            Mode::Literal {
                parent,
                indent,
                widest,
            } => {
                let spaces = l.iter().take_while(|c| **c == ' ').count();
                let empty = spaces == l.len();
                match indent {
                    Some(want) if spaces >= want || empty => return Ok(()),
                    None if empty => {
                        self.mode = Mode::Literal {
                            parent,
                            indent,
                            widest: widest.max(spaces),
                        };
                        return Ok(());
                    }
                    None => {
                        let want = widest.max(spaces).max((parent + 1).max(0) as usize);
                        if spaces >= want {
                            self.mode = Mode::Literal {
                                parent,
                                indent: Some(want),
                                widest,
                            };
                            return Ok(());
                        }
                    }
                    Some(_) => {}
                }
                self.mode = Mode::Block;
            }
            Mode::Plain { parent } => match first {
                None => return Ok(()),
                Some(f) if f as isize > parent && !is_marker(l, "---") && !is_marker(l, "...") => {
                    // A comment or a `: ` ends the scalar (the latter is a
                    // syntax error), and no node starts on this line.
                    let ends = (f..l.len()).any(|p| {
                        (l[p] == '#' && (p == f || is_ws(l[p - 1])))
                            || (l[p] == ':' && blank_after(l, p))
                    });
                    if ends {
                        self.mode = Mode::Block;
                    }
                    return Ok(());
                }
                Some(_) => self.mode = Mode::Block,
            },
            _ => {}
        }
        let mut p = 0;
        if let Mode::Block = self.mode {
            let Some(f) = first else { return Ok(()) };
            if l[f] == '#' {
                return Ok(());
            }
            if f == 0 && is_marker(l, "...") {
                self.stack.clear();
                return Ok(());
            }
            if f == 0 && l[0] == '%' && self.stack.is_empty() {
                return Ok(());
            }
            if f == 0 && is_marker(l, "---") {
                self.stack.clear();
                p = 3;
            } else {
                self.unroll(f);
                if self
                    .stack
                    .last()
                    .is_some_and(|t| t.kind == Kind::Indentless && t.col == f)
                    && !(l[f] == '-' && blank_after(l, f))
                {
                    self.stack.pop();
                }
                p = f;
            }
            self.node_start = true;
            self.json_like = false;
        }
        loop {
            p = match self.mode {
                Mode::Block => self.block(l, p, n)?,
                Mode::Flow { .. } => self.flow(l, p, n)?,
                Mode::Quoted { .. } => self.quoted(l, p),
                Mode::Literal { .. } | Mode::Plain { .. } => return Ok(()),
            };
            if p >= l.len() {
                return Ok(());
            }
        }
    }

    /// Closes the block collections that a token at `col` is left of.
    fn unroll(&mut self, col: usize) {
        while self.stack.last().is_some_and(|t| t.col > col) {
            self.stack.pop();
        }
    }

    /// A block collection of `kind` whose first entry is at `col`.
    fn open(&mut self, n: u32, col: usize, kind: Kind) -> Result<()> {
        self.unroll(col);
        let (kind, depth) = match self.stack.last() {
            Some(top) if top.col == col => match (top.kind, kind) {
                (Kind::Map, Kind::Seq) => (Kind::Indentless, top.depth + 1),
                _ => return Ok(()),
            },
            top => (kind, top.map_or(0, |t| t.depth) + 1),
        };
        if depth > self.max {
            return Err(pos(n, col));
        }
        self.stack.push(Indent { col, kind, depth });
        Ok(())
    }

    /// Block context from `p`: returns where another mode takes over, or the
    /// end of the line.
    fn block(&mut self, l: &[char], mut p: usize, n: u32) -> Result<usize> {
        while p < l.len() {
            let c = l[p];
            if is_ws(c) {
                p += 1;
                continue;
            }
            if c == '#' && (p == 0 || is_ws(l[p - 1])) {
                return Ok(l.len());
            }
            let spaced = blank_after(l, p);
            if c == ':' && (spaced || self.json_like) {
                // With nothing before it, the key is empty: `: v` still
                // opens a mapping.
                let col = self.key_start.take().unwrap_or(p);
                self.open(n, col, Kind::Map)?;
                self.node_start = true;
                self.json_like = false;
                p += 1;
                continue;
            }
            self.json_like = false;
            if self.node_start {
                match c {
                    '-' | '?' if spaced => {
                        let kind = if c == '-' { Kind::Seq } else { Kind::Map };
                        self.open(n, p, kind)?;
                        self.key_start = None;
                        p += 1;
                        continue;
                    }
                    '[' | '{' => {
                        self.key_start.get_or_insert(p);
                        self.mode = Mode::Flow {
                            base: self.depth(),
                            open: 0,
                        };
                        return Ok(p);
                    }
                    '|' | '>' => {
                        let parent = self.indent();
                        let given = l[p + 1..]
                            .iter()
                            .take_while(|c| !is_ws(**c))
                            .find_map(|c| c.to_digit(10))
                            .map(|m| parent.max(0) as usize + m as usize);
                        self.mode = Mode::Literal {
                            parent,
                            indent: given,
                            widest: 0,
                        };
                        return Ok(l.len());
                    }
                    '&' | '!' => {
                        self.key_start.get_or_insert(p);
                        p = skip_token(l, p + 1);
                        continue;
                    }
                    '*' => {
                        self.key_start.get_or_insert(p);
                        self.node_start = false;
                        p = skip_token(l, p + 1);
                        continue;
                    }
                    '"' | '\'' => {
                        self.key_start.get_or_insert(p);
                        self.node_start = false;
                        self.mode = Mode::Quoted {
                            quote: c,
                            flow: None,
                        };
                        return Ok(p + 1);
                    }
                    _ => {}
                }
                self.key_start.get_or_insert(p);
            }
            // Plain text, up to a value indicator or a comment.
            let was_node = std::mem::replace(&mut self.node_start, false);
            p += 1;
            while p < l.len()
                && !(l[p] == ':' && blank_after(l, p))
                && !(l[p] == '#' && is_ws(l[p - 1]))
            {
                p += 1;
            }
            if p >= l.len() && was_node {
                self.mode = Mode::Plain {
                    parent: self.indent(),
                };
            }
        }
        Ok(l.len())
    }

    /// Flow context from `p`: returns after the collection that opened it
    /// closes, at a quoted scalar, or at the end of the line.
    fn flow(&mut self, l: &[char], mut p: usize, n: u32) -> Result<usize> {
        let Mode::Flow { base, mut open } = self.mode else {
            return Ok(p);
        };
        while p < l.len() {
            let c = l[p];
            if is_ws(c) {
                p += 1;
                continue;
            }
            if c == '#' && (p == 0 || is_ws(l[p - 1])) {
                p = l.len();
                break;
            }
            let json_like = std::mem::replace(&mut self.json_like, false);
            match c {
                '[' | '{' => {
                    open += 1;
                    if base + open > self.max {
                        return Err(pos(n, p));
                    }
                    self.node_start = true;
                }
                ']' | '}' => {
                    open = open.saturating_sub(1);
                    self.node_start = false;
                    if open == 0 {
                        self.mode = Mode::Block;
                        return Ok(p + 1);
                    }
                }
                ',' => self.node_start = true,
                ':' if json_like
                    || l.get(p + 1)
                        .is_none_or(|c| is_ws(*c) || is_flow_indicator(*c)) =>
                {
                    self.node_start = true
                }
                '"' | '\'' if self.node_start => {
                    self.node_start = false;
                    self.mode = Mode::Quoted {
                        quote: c,
                        flow: Some((base, open)),
                    };
                    return Ok(p + 1);
                }
                '?' if self.node_start && blank_after(l, p) => {}
                '&' | '!' if self.node_start => {
                    p = skip_token(l, p + 1);
                    continue;
                }
                _ => self.node_start = false,
            }
            p += 1;
        }
        self.mode = Mode::Flow { base, open };
        Ok(p)
    }

    /// Inside a quoted scalar from `p`: returns just past its closing quote,
    /// or the end of the line.
    fn quoted(&mut self, l: &[char], mut p: usize) -> usize {
        let Mode::Quoted { quote, flow } = self.mode else {
            return p;
        };
        while p < l.len() {
            let c = l[p];
            if quote == '"' && c == '\\' {
                p += 2;
                continue;
            }
            if c == quote {
                if quote == '\'' && l.get(p + 1) == Some(&'\'') {
                    p += 2;
                    continue;
                }
                self.mode = match flow {
                    Some((base, open)) => Mode::Flow { base, open },
                    None => Mode::Block,
                };
                self.json_like = true;
                self.node_start = false;
                return p + 1;
            }
            p += 1;
        }
        l.len()
    }
}

fn pos(line: u32, col: usize) -> Pos {
    Pos::new(line, u32::try_from(col + 1).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The depth the scan measures: the smallest limit it lets through.
    fn depth(text: &str) -> usize {
        (0..)
            .find(|max| too_deep(text, *max).is_none())
            .unwrap_or(0)
    }

    #[test]
    fn too_deep_counts_what_the_yaml_reader_nests() {
        // Each depth here is what yaml-rust2's events nest to.
        let cases = [
            ("a: 1\n", 1),
            ("a:\n- b\n- c: 1\n", 3),
            // An empty key opens a mapping too; the block scalar after it is
            // indented against that mapping, and ends at `x:`.
            (": |\nx:\n  - - - 1\n", 4),
            ("a: \"x\n  [[[\"\n", 1),
            ("a: |\n  - - -\n  [[[\nb: [[1]]\n", 3),
            ("a: >2\n   - - x\n  [[y\nb: [1]\n", 2),
            ("a: x\n  - - [[ y\nb: 1\n", 1),
            ("a:\r  b:\r    c: 1", 3),
            ("# [[[\na: [1, # ]]]\n  [2]]\n", 3),
            ("a: &x [1]\nb: !t {c: [1]}\n", 3),
            ("? - - 1\n: x\n", 3),
            ("a: b # c: [[[\n", 1),
            ("{\"a\":[{\"b\":'x'}]}", 3),
            ("a: [x'y, [1]]\n", 3),
            // Single-pair mappings in flow sequences are not counted (the
            // reader nests 5); converting the parsed document counts them.
            ("a: [b: [c: 1]]\n", 3),
        ];
        for (text, want) in cases {
            assert_eq!(depth(text), want, "{text:?}");
        }
    }

    #[test]
    fn too_deep_points_at_the_first_collection_past_the_limit() {
        assert_eq!(too_deep("a:\n  b:\n    c: 1\n", 2), Some(Pos::new(3, 5)));
        assert_eq!(too_deep("a: [1, [2, [3]]]\n", 2), Some(Pos::new(1, 8)));
        assert_eq!(too_deep("a:\n  - - 1\n", 2), Some(Pos::new(2, 5)));
    }
}
