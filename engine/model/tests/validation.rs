//! One broken file per kind of problem. Each YAML file states the diagnostic
//! it must produce in its first line (`# expect: line:col: message (hint)`);
//! JSON files, which cannot hold comments, are listed here.

use std::path::Path;

const JSON_EXPECTATIONS: &[(&str, &str)] = &[
    (
        "malformed.json",
        "7:3: this is not valid JSON: trailing comma (fix the syntax, or name the file .yaml to write YAML)",
    ),
    (
        "unknown-field.json",
        "6:38: unknown field 'colour' in state 'finished' (expected one of: type, description, action, input, output, on, error, cause, retry, timeout, deadline, heartbeat, compensate, then, wait, branches, items, branch, max_concurrency, tolerated_failures, sla)",
    ),
];

fn expectation(path: &Path, text: &str) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if let Some((_, e)) = JSON_EXPECTATIONS.iter().find(|(f, _)| *f == name) {
        return (*e).to_owned();
    }
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{name} has no `# expect:` line"))
        .to_owned()
}

#[test]
fn invalid_files_each_report_their_problem_at_line_and_column() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/invalid exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected a file per problem kind, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let shown = format!(
            "invalid/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        let expected = format!("{shown}:{}", expectation(path, &text));
        match weft_model::parse_process(&shown, &text) {
            Ok(_) => failures.push(format!("{shown}: accepted, expected `{expected}`")),
            Err(diags) => {
                let got: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                if !got.contains(&expected) {
                    failures.push(format!(
                        "{shown}:\n  expected: {expected}\n  got:      {}",
                        got.join("\n            ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_problem_in_a_file_is_reported_not_just_the_first() {
    let text = "process: order\nversion: 1\nstart: a\nstates:\n  a:\n    action: x\n    on: { done: nowhere, error: elsewhere }\n  b:\n    action: y\n    bogus: 1\n    on: { done: a }\n";
    let diags = weft_model::parse_process("p.yaml", text).expect_err("should fail");
    let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("p.yaml:7:17: state 'a' goes to 'nowhere'"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("p.yaml:7:33: state 'a' goes to 'elsewhere'"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with("p.yaml:10:5: unknown field 'bogus' in state 'b'"),
        "{lines:#?}"
    );
}
