//! JSON Schemas (draft 2020-12) for process and bindings files, generated
//! from the types their parser reads ([`def`](crate::def)), so they cannot
//! drift from it. Editors use them through a first line such as
//! `# yaml-language-server: $schema=../../schema/process.schema.json`.
//! A schema says what a file may contain; `weft validate` checks more
//! (targets exist, expressions compile, every action is bound).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::def::{BindingsDef, ProcessDef};

fn generate<T: JsonSchema>(title: &str, description: &str) -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut v = schema.to_value();
    if let Some(o) = v.as_object_mut() {
        o.insert("title".into(), title.into());
        o.insert("description".into(), description.into());
    }
    v
}

/// The schema of a process file.
pub fn process() -> Value {
    generate::<ProcessDef>(
        "weft process",
        "A weft process: a versioned state machine in domain terms. See the README's Processes section.",
    )
}

/// The schema of a bindings file.
pub fn bindings() -> Value {
    generate::<BindingsDef>(
        "weft bindings",
        "Which plugin carries out each domain action of a process, with its config, limits and grants.",
    )
}

/// A schema as printed and checked in: pretty JSON and a final newline.
pub fn text(schema: &Value) -> String {
    let mut t = serde_json::to_string_pretty(schema).unwrap_or_default();
    t.push('\n');
    t
}
