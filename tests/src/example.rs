//! What every example in `examples/` must do: say what it shows, validate,
//! and run its `input.json` to the end (through the signals it lists, if it
//! waits for people).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::{Sandbox, json, root, run, run_args};

/// Runs `scripts/build-foreign-adapters.sh` once per test process (it
/// installs the pinned JavaScript and Python toolchains under
/// `target/foreign/` and builds the adapters there); every caller fails with
/// what the script said if it failed.
pub fn foreign_adapters() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script = root().join("scripts/build-foreign-adapters.sh");
        let out = Command::new(&script)
            .current_dir(root())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
}

/// Examples whose adapters are not Rust crates under `plugins/` (which
/// `build.rs` builds) but JavaScript and Python ones that
/// `scripts/build-foreign-adapters.sh` builds with toolchains it fetches from
/// npm and PyPI. `tests/foreign_adapters.rs` builds them, then runs these
/// examples through [`check_example`]; `tests/examples.rs` runs all others.
pub const FOREIGN_EXAMPLES: &[&str] = &["polyglot"];

/// Validates the example in `dir` and runs its input to `succeed`, with the
/// data directory of `sandbox`.
pub fn check_example(dir: &Path, sandbox: &Sandbox) {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let process = dir.join("process.yaml").display().to_string();
    let bindings = dir.join("bindings.yaml").display().to_string();
    assert!(
        dir.join("README.md").exists(),
        "{name} has no README.md saying what it shows"
    );
    let v = run(&["validate", &process, "--bindings", &bindings]);
    assert_eq!(v.code, 0, "{name}: validate failed: {}", v.stderr);
    assert!(v.stdout.contains("is valid"), "{name}: {}", v.stdout);

    let input =
        std::fs::read_to_string(dir.join("input.json")).expect("each example has input.json");
    let data = sandbox.data();
    let out = run(&run_args(&process, &bindings, &input, &data));
    let lines = out.lines();
    assert_eq!(
        lines.first().map(|l| l.len()),
        Some(26),
        "{name}: the first line is the instance id: {lines:?}\n{}",
        out.stderr
    );
    // An example that waits for people lists the signals that finish it.
    let signals = dir.join("signals.json");
    if signals.exists() {
        assert_eq!(
            out.code, 4,
            "{name}: waits:\n{}\n{}",
            out.stdout, out.stderr
        );
        let list: Vec<(String, serde_json::Value)> =
            serde_json::from_str(&std::fs::read_to_string(&signals).expect("readable"))
                .expect("signals.json is a list of [event, payload]");
        for (event, payload) in list {
            let payload = payload.to_string();
            let s = run(&[
                "signal",
                lines[0],
                &event,
                "--data",
                &payload,
                "--data-dir",
                &data,
            ]);
            assert_eq!(s.code, 0, "{name}: signal {event}: {}", s.stderr);
        }
        let r = run(&["resume", "--data", &data]);
        assert_eq!(r.code, 0, "{name}: resume: {}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("1 succeeded"), "{name}: {}", r.stdout);
    } else {
        assert_eq!(
            out.code, 0,
            "{name}: run failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        assert!(
            lines.iter().any(|l| l.starts_with("succeeded in ")),
            "{name}: {lines:?}"
        );
    }
    let status = json(&["status", lines[0], "--data", &data, "--json"]);
    assert_eq!(status["status"], "succeeded", "{name}");
}
