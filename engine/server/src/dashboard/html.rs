//! Small pieces of HTML: escaping, the page around a `<main>`, badges,
//! times. Everything user-written (names, keys, payloads, messages) goes
//! through [`esc`].

use std::fmt::Write as _;

use weft_model::{Millis, Status};

/// Text made safe for HTML element content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value, percent-encoded.
pub(crate) fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Which part of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Processes,
    Instances,
}

/// A whole page around `main` (the part live pages fetch again).
pub(crate) fn page(title: &str, section: Section, live: bool, digest: &str, main: &str) -> String {
    let nav = [
        (Section::Overview, "/", "Overview"),
        (Section::Processes, "/ui/processes", "Processes"),
        (Section::Instances, "/ui/instances", "Instances"),
    ]
    .iter()
    .map(|(s, href, label)| {
        let current = if *s == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    })
    .collect::<Vec<_>>()
    .join("");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · weft</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/ui/assets/app.css\">\
         <script src=\"/ui/assets/app.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"/\">weft</a><nav aria-label=\"Sections\">{nav}</nav></header>\
         <main id=\"main\"{} data-digest=\"{}\">{main}</main></body></html>",
        esc(title),
        if live { " data-live" } else { "" },
        esc(digest)
    )
}

pub(crate) fn status(s: Status) -> String {
    format!("<span class=\"badge s-{s}\">{s}</span>")
}

pub(crate) fn time(at: Millis) -> String {
    format!("<time datetime=\"{at}\">{}</time>", esc(&at.to_string()))
}

/// Pretty JSON in a `<pre>`.
pub(crate) fn json(v: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    format!("<pre>{}</pre>", esc(&text))
}

/// A message for the top of a page, after an action.
pub(crate) fn flash(ok: Option<&str>, err: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(m) = ok {
        let _ = write!(out, "<p class=\"flash ok\" role=\"status\">{}</p>", esc(m));
    }
    if let Some(m) = err {
        let _ = write!(out, "<p class=\"flash err\" role=\"alert\">{}</p>", esc(m));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_urls_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
    }
}
