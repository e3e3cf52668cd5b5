//! Loading YAML and JSON documents into JSON values while remembering where
//! every key and value was written, so later checks can say `file:line:col`.
//!
//! YAML is read with `marked-yaml`, whose nodes carry source positions; its
//! scalars are typed here with the YAML 1.2 core schema (so `on:` stays a
//! string and `"1"` stays a string). JSON is read with `serde_json` for exact
//! syntax errors and types, then once more as YAML (JSON is YAML's flow style)
//! only to learn the positions.

use std::collections::HashMap;
use std::fmt;

use marked_yaml::{LoaderOptions, Node};
use serde_json::{Map, Number, Value};

use crate::limits::MAX_DOCUMENT_DEPTH;
use crate::nesting;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

/// One problem found in a user's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Option<Pos>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &str, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            pos,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// All problems found in one check, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    /// Sorts by file then position and drops exact repeats.
    pub fn sorted(mut self) -> Self {
        self.0
            .sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
        self.0.dedup();
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// Positions of the keys and values of a document, by JSON pointer
/// (`/states/charge/on/done`).
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

impl SourceMap {
    /// Where the value at `pointer` starts, or the closest enclosing value's.
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        self.lookup(&self.values, pointer)
    }

    /// Where the key naming `pointer` is written (falls back to the value).
    pub fn key(&self, pointer: &str) -> Option<Pos> {
        self.keys
            .get(pointer)
            .copied()
            .or_else(|| self.value(pointer))
    }

    fn lookup(&self, table: &HashMap<String, Pos>, pointer: &str) -> Option<Pos> {
        let mut p = pointer;
        loop {
            if let Some(pos) = table.get(p) {
                return Some(*pos);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

/// Escapes one JSON-pointer segment.
pub fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Builds a JSON pointer from segments.
pub fn pointer<I, S>(segments: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&pointer_segment(s.as_ref()));
    }
    out
}

/// A document as loaded: its display name, its value and where things are.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: String,
    pub value: Value,
    pub map: SourceMap,
    /// The text as read, to look at what is written at a position.
    pub text: std::sync::Arc<str>,
}

impl Document {
    /// A document built from a value alone (say, read back from the store):
    /// it has no positions, so diagnostics name only the file.
    pub fn from_value(file: &str, value: Value) -> Self {
        Document {
            file: file.to_owned(),
            value,
            map: SourceMap::default(),
            text: "".into(),
        }
    }

    /// The character written at `pos`, if the text is known.
    pub fn text_at(&self, pos: Pos) -> Option<char> {
        let line = self.text.lines().nth((pos.line as usize).checked_sub(1)?)?;
        line.chars().nth((pos.col as usize).checked_sub(1)?)
    }

    pub fn at(&self, pointer: &str) -> Option<Pos> {
        self.map.value(pointer)
    }
    pub fn key_at(&self, pointer: &str) -> Option<Pos> {
        self.map.key(pointer)
    }
    pub fn diag(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.file, self.at(pointer), message)
    }
    pub fn key_diag(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.file, self.key_at(pointer), message)
    }
}

/// How a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// `.json` files are JSON; everything else is read as YAML.
    pub fn from_path(path: &str) -> Self {
        if path.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Loads a document whose top level must be a mapping.
pub fn load(file: &str, text: &str, format: Format) -> Result<Document, Diagnostic> {
    // Before any reader runs: the YAML reader recurses once per level.
    if let Some(pos) = nesting::too_deep(text, MAX_DOCUMENT_DEPTH) {
        return Err(too_deep(file, Some(pos)));
    }
    match format {
        Format::Json => load_json(file, text),
        Format::Yaml => load_yaml(file, text),
    }
}

fn too_deep(file: &str, pos: Option<Pos>) -> Diagnostic {
    Diagnostic::new(
        file,
        pos,
        format!("the document nests deeper than {MAX_DOCUMENT_DEPTH} levels"),
    )
    .hint("check the indentation and the brackets")
}

/// Refuses a document that nests too deep to be deserialized safely (serde
/// recurses once per level). `load` already refused such a text; this covers
/// documents made with `Document::from_value`.
pub(crate) fn check_depth(doc: &Document) -> Result<(), Diagnostic> {
    if crate::limits::depth(&doc.value) <= MAX_DOCUMENT_DEPTH {
        return Ok(());
    }
    Err(too_deep(&doc.file, None))
}

fn options() -> LoaderOptions {
    LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true)
}

fn load_json(file: &str, text: &str) -> Result<Document, Diagnostic> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let pos = (e.line() > 0).then(|| Pos::new(e.line() as u32, e.column() as u32));
        Diagnostic::new(
            file,
            pos,
            format!("this is not valid JSON: {}", strip_serde_pos(&e)),
        )
        .hint("fix the syntax, or name the file .yaml to write YAML")
    })?;
    if !value.is_object() {
        return Err(Diagnostic::new(
            file,
            Some(Pos::new(1, 1)),
            "the top level must be an object",
        ));
    }
    // Positions only: a JSON text the YAML reader cannot follow still loads,
    // it just reports problems without a line.
    let mut map = SourceMap::default();
    if let Ok(node) = marked_yaml::parse_yaml_with_options(0, text, options()) {
        let _ = convert(&node, String::new(), &mut map, 0);
    }
    Ok(Document {
        file: file.to_owned(),
        value,
        map,
        text: text.into(),
    })
}

fn strip_serde_pos(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn load_yaml(file: &str, text: &str) -> Result<Document, Diagnostic> {
    if text.trim().is_empty() {
        return Err(Diagnostic::new(
            file,
            Some(Pos::new(1, 1)),
            "the file is empty",
        ));
    }
    let node = marked_yaml::parse_yaml_with_options(0, text, options())
        .map_err(|e| load_error(file, e))?;
    let mut map = SourceMap::default();
    let value = convert(&node, String::new(), &mut map, 0).map_err(|e| match e {
        ConvertError::TooDeep(pos) => too_deep(file, Some(pos)),
    })?;
    Ok(Document {
        file: file.to_owned(),
        value,
        map,
        text: text.into(),
    })
}

fn marker_pos(m: &marked_yaml::Marker) -> Pos {
    Pos::new(m.line() as u32, m.column() as u32)
}

fn node_pos(node: &Node) -> Pos {
    node.span().start().map(marker_pos).unwrap_or_default()
}

fn load_error(file: &str, e: marked_yaml::LoadError) -> Diagnostic {
    use marked_yaml::LoadError as E;
    match e {
        E::TopLevelMustBeMapping(m) | E::TopLevelMustBeSequence(m) => Diagnostic::new(
            file,
            Some(marker_pos(&m)),
            "the top level must be a mapping",
        )
        .hint("start the file with `process: <name>`"),
        E::UnexpectedAnchor(m) => Diagnostic::new(
            file,
            Some(marker_pos(&m)),
            "YAML anchors and aliases are not supported",
        )
        .hint("write the value out in full"),
        E::MappingKeyMustBeScalar(m) => Diagnostic::new(
            file,
            Some(marker_pos(&m)),
            "a mapping key must be a plain value",
        ),
        E::UnexpectedTag(m) => Diagnostic::new(
            file,
            Some(marker_pos(&m)),
            "YAML tags (`!name`) are not supported",
        ),
        E::ScanError(m, se) => {
            let info = se.info().to_owned();
            Diagnostic::new(
                file,
                Some(marker_pos(&m)),
                format!("this is not valid YAML: {info}"),
            )
        }
        E::DuplicateKey(inner) => {
            let first = inner
                .prev_key
                .span()
                .start()
                .map(marker_pos)
                .unwrap_or_default();
            let at = inner.key.span().start().map(marker_pos);
            Diagnostic::new(
                file,
                at,
                format!("the key '{}' is written twice", inner.key.as_str()),
            )
            .hint(format!("first at line {}:{}", first.line, first.col))
        }
    }
}

enum ConvertError {
    TooDeep(Pos),
}

/// `depth` counts the collections around `node`. The text was measured
/// before parsing; this exact count also bounds the recursion here, and
/// catches what the text scan counts low (`[a: [b: ...]]`).
fn convert(
    node: &Node,
    at: String,
    map: &mut SourceMap,
    depth: usize,
) -> Result<Value, ConvertError> {
    let mut pos = node_pos(node);
    // A block mapping's own mark can sit after its first key; point at
    // whichever comes first.
    if let Node::Mapping(m) = node
        && let Some(first) = m.iter().next().and_then(|(k, _)| k.span().start())
    {
        pos = pos.min(marker_pos(first));
    }
    map.values.insert(at.clone(), pos);
    if !matches!(node, Node::Scalar(_)) && depth >= MAX_DOCUMENT_DEPTH {
        return Err(ConvertError::TooDeep(pos));
    }
    match node {
        Node::Scalar(s) => Ok(scalar(s)),
        Node::Sequence(seq) => {
            let mut out = Vec::with_capacity(seq.len());
            for (i, item) in seq.iter().enumerate() {
                out.push(convert(item, format!("{at}/{i}"), map, depth + 1)?);
            }
            Ok(Value::Array(out))
        }
        Node::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter() {
                let child = format!("{at}/{}", pointer_segment(k.as_str()));
                if let Some(p) = k.span().start() {
                    map.keys.insert(child.clone(), marker_pos(p));
                }
                let value = convert(v, child, map, depth + 1)?;
                out.insert(k.as_str().to_owned(), value);
            }
            Ok(Value::Object(out))
        }
    }
}

/// Types a YAML scalar with the YAML 1.2 core schema. Quoted scalars are strings.
fn scalar(s: &marked_yaml::types::MarkedScalarNode) -> Value {
    let text = s.as_str();
    if !s.may_coerce() {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if looks_like_float(text)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Number> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if neg {
        let v = i64::try_from(magnitude).ok()?;
        Some(Number::from(-v))
    } else {
        Some(Number::from(magnitude))
    }
}

fn looks_like_float(text: &str) -> bool {
    let body = text.trim_start_matches(['-', '+']);
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && body.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Document {
        load("t.yaml", text, Format::Yaml).expect("loads")
    }

    #[test]
    fn yaml_scalars_follow_the_core_schema() {
        let d = yaml("a: 1\nb: '1'\nc: true\nd: on\ne: ~\nf: 2.5\ng: -3\nh: 0x10\ni: 1.2.3\nj:\n");
        assert_eq!(
            d.value,
            json!({"a": 1, "b": "1", "c": true, "d": "on", "e": null, "f": 2.5, "g": -3,
                   "h": 16, "i": "1.2.3", "j": null})
        );
    }

    #[test]
    fn yaml_positions_are_recorded_for_keys_and_values() {
        let d = yaml("process: p\nstates:\n  charge:\n    on: { done: ship }\n");
        assert_eq!(d.key_at("/states/charge"), Some(Pos::new(3, 3)));
        assert_eq!(d.at("/states/charge/on/done"), Some(Pos::new(4, 17)));
        // An unknown pointer falls back to the closest enclosing value.
        assert_eq!(d.at("/states/charge/on/nope"), d.at("/states/charge/on"));
    }

    #[test]
    fn yaml_duplicate_keys_are_an_error_pointing_at_the_second() {
        let e = load("t.yaml", "a: 1\nb: 2\na: 3\n", Format::Yaml).expect_err("should fail");
        assert_eq!(e.pos, Some(Pos::new(3, 1)));
        assert!(e.message.contains("'a' is written twice"), "{e}");
    }

    #[test]
    fn yaml_syntax_error_has_a_position() {
        let e = load("t.yaml", "a: [1, 2\nb: 3\n", Format::Yaml).expect_err("should fail");
        assert!(e.pos.is_some(), "{e}");
        assert!(e.message.starts_with("this is not valid YAML"), "{e}");
    }

    #[test]
    fn json_keeps_exact_types_and_learns_positions() {
        let d = load(
            "t.json",
            "{\n  \"a\": \"1\",\n  \"b\": {\"c\": 2}\n}",
            Format::Json,
        )
        .expect("loads");
        assert_eq!(d.value, json!({"a": "1", "b": {"c": 2}}));
        assert_eq!(d.key_at("/b/c").map(|p| p.line), Some(3));
    }

    #[test]
    fn json_syntax_error_reports_line_and_column() {
        let e = load("t.json", "{\n  \"a\": 1,\n}", Format::Json).expect_err("should fail");
        assert_eq!(e.pos.map(|p| p.line), Some(3));
        assert!(e.to_string().starts_with("t.json:3:"), "{e}");
    }

    #[test]
    fn empty_and_non_mapping_documents_are_rejected() {
        assert!(load("t.yaml", "  \n", Format::Yaml).is_err());
        assert!(load("t.yaml", "- a\n- b\n", Format::Yaml).is_err());
        assert!(load("t.json", "[1]", Format::Json).is_err());
    }
}
