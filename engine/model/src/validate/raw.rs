//! Raw values into typed definitions: a serde error becomes a diagnostic at
//! the offending key or value, said in the document's terms.

use serde::Deserialize;
use serde_json::Value;

use super::suggest;
use crate::source::{Diagnostic, Document, pointer_segment};

/// Deserializes `value` (found at `at` in `doc`) and turns a serde error into a
/// diagnostic at the offending key or value.
pub(crate) fn deserialize<'de, T: Deserialize<'de>>(
    doc: &Document,
    at: &str,
    value: &'de Value,
) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut ptr = at.to_owned();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Map { key } => ptr.push_str(&format!("/{}", pointer_segment(key))),
                Segment::Seq { index } => ptr.push_str(&format!("/{index}")),
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        serde_diag(doc, &ptr, &e.into_inner().to_string())
    })
}

fn serde_diag(doc: &Document, ptr: &str, msg: &str) -> Diagnostic {
    let field = ptr.rsplit('/').next().unwrap_or("");
    let place = describe_place(ptr);
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let key_ptr = if field == name {
            ptr.to_owned()
        } else {
            format!("{ptr}/{}", pointer_segment(name))
        };
        let mut hint = format!("expected one of: {}", expected.join(", "));
        if let Some(s) = suggest(name, expected.iter().copied()) {
            hint = format!("did you mean '{s}'? {hint}");
        }
        return doc
            .key_diag(&key_ptr, format!("unknown field '{name}'{place}"))
            .hint(hint);
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        return doc
            .key_diag(ptr, format!("missing field '{name}'{place}"))
            .hint(format!("add `{name}:`"));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        return doc
            .diag(ptr, format!("'{name}' is not a valid '{field}'{place}"))
            .hint(format!("expected one of: {}", expected.join(", ")));
    }
    let mut d = doc.diag(ptr, format!("'{field}'{place}: {msg}"));
    if matches!(field, "input" | "output" | "if" | "cause") && msg.contains("invalid type") {
        d = d.hint("write jq expressions as quoted strings, e.g. '{sku: .order.sku}'");
    }
    d
}

/// " in state 'charge'" for pointers under /states/charge, else "".
fn describe_place(ptr: &str) -> String {
    let mut parts = ptr.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some("states"), Some(name)) => format!(" in state '{}'", unescape(name)),
        (Some("actions"), Some(name)) => format!(" in the binding of '{}'", unescape(name)),
        _ => String::new(),
    }
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

pub(super) fn last(ptr: &str) -> String {
    unescape(ptr.rsplit('/').next().unwrap_or(""))
}
