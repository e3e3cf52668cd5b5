//! Field values: jq expressions and durations, with errors that point into
//! the written text.

use crate::expr::CompileError;
use crate::source::{Diagnostics, Document};
use crate::time::Span;

pub(super) fn duration(
    doc: &Document,
    at: &str,
    text: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<Span> {
    match Span::parse(text?) {
        Ok(d) if d.as_millis() > 0 => Some(d),
        Ok(_) => {
            diags.push(doc.diag(at, "a duration here must be longer than 0s"));
            None
        }
        Err(e) => {
            diags.push(
                doc.diag(at, e.to_string())
                    .hint("write it like 500ms, 30s, 5m or 1h30m"),
            );
            None
        }
    }
}

pub(super) fn expr<T>(
    doc: &Document,
    at: &str,
    src: &str,
    compile: impl Fn(&str) -> Result<T, CompileError>,
    diags: &mut Diagnostics,
) -> Option<T> {
    match compile(src) {
        Ok(e) => Some(e),
        Err(e) => {
            let mut d = doc.diag(at, format!("bad jq expression: {}", e.message));
            if let Some(p) = d.pos.as_mut() {
                p.col += expr_column_offset(doc, *p, src, e.offset);
            }
            diags.push(d);
            None
        }
    }
}

/// How far into the written value an error at `offset` of the expression is:
/// past an opening quote, when the offset is on the first line.
fn expr_column_offset(doc: &Document, pos: crate::source::Pos, src: &str, offset: usize) -> u32 {
    let head = &src[..offset.min(src.len())];
    if head.contains('\n') {
        return 0;
    }
    let quoted = doc.text_at(pos).is_some_and(|c| c == '\'' || c == '"');
    head.chars().count() as u32 + u32::from(quoted)
}
