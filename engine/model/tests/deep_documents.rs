//! Documents nested too deep are refused with a position, before anything
//! recursive can run out of stack (these run on the default 2 MiB test
//! thread, in a debug build), and user data embedded in a process or bindings
//! file is held to the same limits as data arriving at run time.

use std::path::Path;

use weft_model::source::{Format, load};

const TOO_DEEP: &str = "the document nests deeper than 100 levels";

fn refused(file: &str, text: &str) -> String {
    let format = Format::from_path(file);
    match load(file, text, format) {
        Ok(_) => panic!("{file} should be refused"),
        Err(d) => d.to_string(),
    }
}

/// `a:` then each level's `a:` two columns further in; level `n` is the
/// mapping on line `n`, at column `2n - 1`.
fn block_mappings(levels: usize) -> String {
    (0..levels)
        .map(|i| format!("{}a:\n", "  ".repeat(i)))
        .collect::<String>()
        + &"  ".repeat(levels)
        + "1\n"
}

#[test]
fn load_block_mappings_2000_deep_refused_at_the_first_too_deep_mapping() {
    let got = refused("t.yaml", &block_mappings(2_000));
    assert!(
        got.starts_with(&format!("t.yaml:101:201: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_block_mappings_100_deep_accepted_101_refused() {
    let doc = load("t.yaml", &block_mappings(100), Format::Yaml).expect("100 levels load");
    assert!(doc.value.pointer(&"/a".repeat(99)).is_some());
    let got = refused("t.yaml", &block_mappings(101));
    assert!(
        got.starts_with(&format!("t.yaml:101:201: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_compact_block_sequences_2000_deep_refused() {
    // The mapping is level 1; sequence `n` is level `n + 1`, at column `2n + 1`.
    let text = format!("a:\n  {}x\n", "- ".repeat(2_000));
    let got = refused("t.yaml", &text);
    assert!(
        got.starts_with(&format!("t.yaml:2:201: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_indented_block_sequences_2000_deep_refused() {
    let mut text = String::from("a:\n");
    for i in 0..2_000 {
        text.push_str(&format!(
            "{}- x\n{}-\n",
            " ".repeat(2 * i),
            " ".repeat(2 * i)
        ));
    }
    // Sequence `n` (level n + 1) starts on line 2n, at column 2n - 1.
    let got = refused("t.yaml", &text);
    assert!(
        got.starts_with(&format!("t.yaml:200:199: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_mixed_sequences_and_mappings_2000_deep_refused() {
    // Line i + 1 (i >= 1) holds `- a:`: a sequence (level 2i) and a mapping
    // (level 2i + 1), indented 4 more each line.
    let mut text = String::from("a:\n");
    for i in 1..=1_000 {
        text.push_str(&format!("{}- a:\n", " ".repeat(2 + 4 * (i - 1))));
    }
    text.push_str(&format!("{}x\n", " ".repeat(2 + 4 * 1_000)));
    let got = refused("t.yaml", &text);
    assert!(
        got.starts_with(&format!("t.yaml:51:201: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_flow_yaml_2000_deep_refused_with_the_same_message() {
    let text = format!("a: {}1{}\n", "[".repeat(2_000), "]".repeat(2_000));
    let got = refused("t.yaml", &text);
    // `[` number n is level n + 1.
    assert!(
        got.starts_with(&format!("t.yaml:1:103: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_flow_pair_past_the_limit_refused_once_parsed() {
    // `[b: 1]` is a sequence holding a one-pair mapping, which the text scan
    // does not count; converting the parsed document does. Sequences are
    // levels 2 to 100, the mapping inside the last is level 101.
    let text = format!("a: {}b: 1{}\n", "[".repeat(99), "]".repeat(99));
    let got = refused("t.yaml", &text);
    assert!(
        got.starts_with(&format!("t.yaml:1:103: {TOO_DEEP}")),
        "{got}"
    );
    let text = format!("a: {}b: 1{}\n", "[".repeat(98), "]".repeat(98));
    load("t.yaml", &text, Format::Yaml).expect("100 levels load");
}

#[test]
fn load_json_2000_deep_refused_with_the_same_message() {
    let text = format!("{{\"a\": {}1{}}}", "[".repeat(2_000), "]".repeat(2_000));
    let got = refused("t.json", &text);
    assert!(
        got.starts_with(&format!("t.json:1:106: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_json_100_deep_accepted_101_refused() {
    let json = |n: usize| format!("{{\"a\":\n{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
    load("t.json", &json(100), Format::Json).expect("100 levels load");
    let got = refused("t.json", &json(101));
    assert!(
        got.starts_with(&format!("t.json:2:100: {TOO_DEEP}")),
        "{got}"
    );
}

#[test]
fn load_deep_looking_text_inside_scalars_is_not_nesting() {
    let deep = "[{".repeat(300);
    let dashes = "- ".repeat(300);
    let text = format!(
        "literal: |\n  {dashes}\n  {deep}\nfolded: >2\n   {dashes}\nquoted: \"{deep}\n  {dashes}\"\n\
         single: '{deep} '' {deep}'\nplain: x\n  {dashes}\n  {deep}\nseq:\n  - x {deep}\n  - y # {deep}\n\
         flow: [\"{deep}\", '{deep}', a]\nend: 1\n"
    );
    let doc = load("t.yaml", &text, Format::Yaml).expect("loads");
    assert_eq!(doc.value["end"], 1);
    assert_eq!(doc.value["flow"][0].as_str(), Some(deep.as_str()));
}

#[test]
fn parse_process_too_deep_reports_the_position() {
    let mut text =
        String::from("process: p\nversion: 1\nstart: end\nstates:\n  end: { type: succeed }\nx:\n");
    for i in 1..200 {
        text.push_str(&format!("{}x:\n", "  ".repeat(i)));
    }
    let diags = weft_model::parse_process("p.yaml", &text).expect_err("too deep");
    assert_eq!(diags.to_string().lines().count(), 1, "{diags}");
    assert!(
        diags
            .to_string()
            .starts_with(&format!("p.yaml:106:201: {TOO_DEEP}")),
        "{diags}"
    );
}

/// `{"k": {"k": ... 1}}`, `levels` objects deep.
fn nested_json(levels: usize) -> String {
    format!("{}1{}", "{\"k\": ".repeat(levels), "}".repeat(levels))
}

fn bindings_with_config(config: &str) -> String {
    format!("plugins:\n  p: p.wasm\nactions:\n  charge:\n    plugin: p\n    config: {config}\n")
}

#[test]
fn bindings_config_80_deep_refused_at_the_config() {
    let text = bindings_with_config(&nested_json(80));
    let doc = load("b.yaml", &text, Format::Yaml).expect("within the document limit");
    let diags = weft_model::bindings::bindings(&doc, Path::new(".")).expect_err("too deep");
    assert_eq!(
        diags.to_string(),
        "b.yaml:6:13: the config of action 'charge' nests 80 levels deep; at most 64 are allowed (it goes with every invocation; give the plugin a file under `dirs:` for large data)"
    );
}

#[test]
fn bindings_config_64_deep_accepted() {
    let text = bindings_with_config(&nested_json(64));
    let doc = load("b.yaml", &text, Format::Yaml).expect("loads");
    weft_model::bindings::bindings(&doc, Path::new(".")).expect("64 levels are allowed");
}

#[test]
fn bindings_config_200_deep_refused_at_validate_time() {
    let text = bindings_with_config(&nested_json(200));
    let got = refused("b.yaml", &text);
    assert!(
        got.starts_with(&format!("b.yaml:6:{}: {TOO_DEEP}", 13 + 6 * 97)),
        "{got}"
    );
    // Read back without positions (from the store), the config check still holds.
    let mut value: serde_json::Value = serde_json::json!({
        "plugins": {"p": "p.wasm"},
        "actions": {"charge": {"plugin": "p"}}
    });
    let config: serde_json::Value =
        serde_json::from_str(&nested_json(90)).expect("serde_json reads 90 levels");
    value["actions"]["charge"]["config"] = config;
    let doc = weft_model::Document::from_value("b.yaml", value);
    let diags = weft_model::bindings::bindings(&doc, Path::new(".")).expect_err("too deep");
    assert_eq!(
        diags.to_string(),
        "b.yaml: the config of action 'charge' nests 90 levels deep; at most 64 are allowed (it goes with every invocation; give the plugin a file under `dirs:` for large data)"
    );
}

/// `levels` arrays deep under key `x`, built without recursion.
fn deep_value(levels: usize) -> serde_json::Value {
    let mut v = serde_json::json!(1);
    for _ in 0..levels {
        v = serde_json::Value::Array(vec![v]);
    }
    // Not `json!`, which would copy `v` by recursing through it.
    let mut top = serde_json::Map::new();
    top.insert("x".to_owned(), v);
    serde_json::Value::Object(top)
}

/// Takes a deep value apart from the top, so dropping it does not recurse
/// once per level.
fn dismantle(mut v: serde_json::Value) {
    loop {
        v = match v {
            serde_json::Value::Array(mut items) => match items.pop() {
                Some(inner) => inner,
                None => return,
            },
            // Only single-key objects here: the rest would drop recursively.
            serde_json::Value::Object(map) => match map.into_iter().next() {
                Some((_, inner)) => inner,
                None => return,
            },
            _ => return,
        };
    }
}

#[test]
fn from_value_documents_too_deep_refused_without_recursing() {
    // A document read back from the store never went through the text scan.
    let mut doc = weft_model::Document::from_value("p.yaml", deep_value(20_000));
    let diags = weft_model::validate::process(&doc).expect_err("too deep");
    assert!(
        diags
            .to_string()
            .starts_with(&format!("p.yaml: {TOO_DEEP}")),
        "{diags}"
    );
    let diags = weft_model::bindings::bindings(&doc, Path::new(".")).expect_err("too deep");
    assert!(
        diags
            .to_string()
            .starts_with(&format!("p.yaml: {TOO_DEEP}")),
        "{diags}"
    );
    dismantle(std::mem::take(&mut doc.value));
}

#[test]
fn process_schedule_input_70_deep_refused_at_the_input() {
    let text = format!(
        "process: p\nversion: 1\nschedule:\n  - cron: \"0 0 * * * *\"\n    input: {}\nstart: end\nstates:\n  end: {{ type: succeed }}\n",
        nested_json(70)
    );
    let diags = weft_model::parse_process("p.yaml", &text).expect_err("too deep");
    assert_eq!(
        diags.to_string(),
        "p.yaml:5:12: the schedule's input nests 70 levels deep; at most 64 are allowed (start with a small input and let the first step fetch the rest)"
    );
}
