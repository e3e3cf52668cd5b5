//! The JSON Schemas checked in at `schema/` are the ones generated from the
//! parser's types (`WEFT_BLESS=1` writes them anew: `make schema`), and
//! they name exactly the fields the parser takes.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;
use weft_model::schema;

fn checked_in(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schema")
        .join(name)
}

#[test]
fn the_checked_in_schemas_are_current() {
    for (file, generated) in [
        ("process.schema.json", schema::process()),
        ("bindings.schema.json", schema::bindings()),
    ] {
        let text = schema::text(&generated);
        let path = checked_in(file);
        if std::env::var_os("WEFT_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "schema/{file} is not current: run `make schema` and commit it"
        );
    }
}

/// The fields the parser names when it refuses an unknown one.
fn parser_fields(text: &str) -> Vec<String> {
    let err = match weft_model::parse_process("p.yaml", text) {
        Ok(_) => panic!("accepted"),
        Err(d) => d.to_string(),
    };
    let list = err
        .split("expected one of: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    list.trim_end_matches(|c| c != ')')
        .trim_end_matches(')')
        .split(", ")
        .map(str::to_owned)
        .collect()
}

fn properties(v: &Value) -> Vec<String> {
    v["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_schema_names_the_fields_the_parser_takes() {
    let s = schema::process();
    let top = parser_fields(
        "process: p\nversion: 1\nstart: a\nstates: { a: { type: succeed } }\nbogus: 1\n",
    );
    assert_eq!(properties(&s), top);
    let state = parser_fields(
        "process: p\nversion: 1\nstart: a\nstates: { a: { type: succeed, bogus: 1 } }\n",
    );
    assert_eq!(properties(&s["$defs"]["StateDef"]), state);
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(s["$defs"]["StateDef"]["additionalProperties"], false);
    let b = schema::bindings();
    assert_eq!(properties(&b), ["plugins", "actions"]);
    assert_eq!(b["$defs"]["BindingDef"]["additionalProperties"], false);
}
