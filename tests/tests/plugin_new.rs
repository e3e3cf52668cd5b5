//! `weft plugin new`: what it refuses, what it writes for each language, and
//! that what it writes builds into a component that passes its own test.
//!
//! The Rust scaffold is built with a target directory shared between runs
//! (`target/scaffold-rust`): about a minute the first time, 2 s after. The
//! JavaScript and Python scaffolds reuse the toolchains
//! `scripts/build-foreign-adapters.sh` installs under `target/foreign` (as
//! `tests/foreign_adapters.rs` does); each builds and compiles a component of
//! 11 to 18 MiB, 11 to 14 s apiece.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use weft_tests::{Output, Sandbox, output, root, weft, weft_bin};

/// `weft plugin new <args>` run in `dir`, so the default `./<name>` lands there.
fn plugin_new(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = weft(&[&["plugin", "new"], args].concat());
    cmd.current_dir(dir);
    output(cmd)
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(base, &path, into);
            } else {
                let rel = path.strip_prefix(base).expect("under base");
                into.insert(
                    rel.display().to_string(),
                    std::fs::read(&path).expect("readable"),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

fn names(files: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
    files.keys().map(String::as_str).collect()
}

fn repo_wit() -> Vec<u8> {
    std::fs::read(root().join("wit/plugin.wit")).expect("the repo's WIT")
}

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn plugin_new_with_a_bad_name_is_refused_in_one_line_and_writes_nothing() {
    let s = Sandbox::new();
    let long = "a".repeat(41);
    for bad in [
        "Greeter",
        "9lives",
        "-x",
        "my_adapter",
        "a b",
        "é",
        "",
        &long,
    ] {
        let out = plugin_new(s.dir.path(), &["--dir", "here", "--", bad]);
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{bad:?}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with(&format!("error: '{bad}' cannot name an adapter: ")),
            "{bad:?}: {}",
            out.stderr
        );
        assert_eq!(
            names(&tree(s.dir.path())),
            Vec::<&str>::new(),
            "{bad:?} wrote something"
        );
        assert!(!s.path("here").exists(), "{bad:?}");
    }
    let out = plugin_new(s.dir.path(), &["My_Adapter"]);
    assert!(
        out.stderr.trim_end().ends_with("(say, 'my-adapter')"),
        "{}",
        out.stderr
    );
}

#[test]
fn plugin_new_into_a_non_empty_directory_is_refused_and_changes_nothing() {
    let s = Sandbox::new();
    let taken = s.path("greeter");
    std::fs::create_dir(&taken).expect("mkdir");
    std::fs::write(taken.join("notes.txt"), "mine").expect("write");
    std::fs::write(s.path("a-file"), "also mine").expect("write");
    let before = tree(s.dir.path());

    for lang in ["rust", "js", "python"] {
        let out = plugin_new(s.dir.path(), &["greeter", "--lang", lang]);
        assert_eq!(out.code, 2, "{lang}: {out:?}");
        assert_eq!(
            out.stderr.trim_end(),
            "error: greeter already exists and is not empty; pick another --dir, or remove it"
        );
        let out = plugin_new(
            s.dir.path(),
            &["greeter", "--lang", lang, "--dir", "a-file"],
        );
        assert_eq!(out.code, 2, "{lang}: {out:?}");
        assert!(out.stderr.contains("is not a directory"), "{}", out.stderr);
    }
    // Nothing written, nothing left behind (no scratch directory either).
    assert_eq!(tree(s.dir.path()), before);
    let entries: Vec<String> = std::fs::read_dir(s.dir.path())
        .expect("readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.iter().all(|e| !e.starts_with('.')), "{entries:?}");
}

#[test]
fn plugin_new_writes_each_language_s_files_with_the_engine_s_wit() {
    let s = Sandbox::new();
    let expected: [(&str, &[&str]); 3] = [
        (
            "rust",
            &[
                ".gitignore",
                "Cargo.toml",
                "README.md",
                "src/lib.rs",
                "wit/plugin.wit",
            ],
        ),
        (
            "js",
            &[
                ".gitignore",
                "README.md",
                "build.mjs",
                "greeter-js.js",
                "package-lock.json",
                "package.json",
                "preopens.mjs",
                "test.mjs",
                "wit/plugin.wit",
            ],
        ),
        (
            "python",
            &[
                ".gitignore",
                "README.md",
                "build.sh",
                "greeter_python.py",
                "test.sh",
                "wit/plugin.wit",
            ],
        ),
    ];
    for (lang, files) in expected {
        let name = format!("greeter-{lang}");
        let out = plugin_new(s.dir.path(), &[&name, "--lang", lang]);
        assert_eq!(out.code, 0, "{lang}: {out:?}");
        let dir = s.path(&name);
        let written = tree(&dir);
        assert_eq!(names(&written), files, "{lang}");
        assert_eq!(
            written["wit/plugin.wit"],
            repo_wit(),
            "{lang}: the WIT differs"
        );
        for (path, bytes) in &written {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("{{"),
                "{lang}: {path} has a placeholder left"
            );
        }
        // What was made, then the three commands to build, test and call it.
        let lines = out.lines();
        assert_eq!(
            lines.first().copied(),
            Some(format!("created {name}, a {} adapter, in {name}:", language(lang)).as_str()),
            "{}",
            out.stdout
        );
        assert_eq!(lines.len(), 6, "{}", out.stdout);
        assert!(
            lines[3].starts_with(&format!("  cd {name} && ")),
            "{}",
            out.stdout
        );
        assert!(
            lines[5].starts_with("  weft plugin call "),
            "{}",
            out.stdout
        );
        assert!(
            lines[5].ends_with(r#" greet --input '{"name":"ada"}'"#),
            "{}",
            out.stdout
        );
    }

    // Rust: a crate of its own, for a component and for native tests.
    let cargo = std::fs::read_to_string(s.path("greeter-rust/Cargo.toml")).expect("readable");
    for line in [
        "name = \"weft-greeter-rust\"",
        "\n[workspace]\n",
        "crate-type = [\"cdylib\", \"rlib\"]",
        "wit-bindgen = \"0.61\"",
        "serde_json = \"1\"",
    ] {
        assert!(cargo.contains(line), "{line} missing from\n{cargo}");
    }

    // JavaScript: the toolchain pinned as the engine's own JS adapters pin it.
    let js = s.path("greeter-js");
    let ours = json_file(&js.join("package.json"));
    let engine = json_file(&root().join("plugins/js/package.json"));
    assert_eq!(ours["name"], "greeter-js");
    assert_eq!(ours["devDependencies"], engine["devDependencies"]);
    assert_eq!(ours["overrides"], engine["overrides"]);
    let lock = json_file(&js.join("package-lock.json"));
    assert_eq!(lock["name"], "greeter-js");
    assert_eq!(lock["packages"][""]["name"], "greeter-js");
    assert_eq!(
        lock["packages"][""]["devDependencies"],
        ours["devDependencies"]
    );
    for script in ["build", "test"] {
        assert!(ours["scripts"][script].is_string(), "no npm {script}");
    }

    // Python: the scripts run as they are.
    #[cfg(unix)]
    for script in ["build.sh", "test.sh"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.path("greeter-python").join(script))
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
    }
}

fn language(lang: &str) -> &'static str {
    match lang {
        "rust" => "Rust",
        "js" => "JavaScript",
        _ => "Python",
    }
}

#[test]
fn plugin_new_into_an_empty_directory_fills_it() {
    let s = Sandbox::new();
    let dir = s.path("nested/empty");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let out = plugin_new(
        s.dir.path(),
        &["http", "--lang", "python", "--dir", "nested/empty"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let written = tree(&dir);
    // `http` is a Python standard module, which would shadow the adapter's.
    assert!(
        written.contains_key("http_adapter.py"),
        "{:?}",
        names(&written)
    );
    let build = String::from_utf8_lossy(&written["build.sh"]).into_owned();
    assert!(
        build.contains("componentize http_adapter ") && build.contains("--output http.wasm"),
        "{build}"
    );
    let left: Vec<_> = std::fs::read_dir(s.path("nested"))
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["empty"], "a scratch directory was left behind");
}

/// A command with the settings of the `cargo test` running this removed, so
/// they do not leak into a build of another project.
fn clean(mut cmd: Command) -> Command {
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn must(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{said}",
        out.status
    );
    said
}

/// `weft plugin call` on a component: its exit code and stdout. Compiled
/// components are cached in the sandbox, not in the user's cache.
fn call(s: &Sandbox, wasm: &Path, args: &[&str]) -> Output {
    let wasm = wasm.display().to_string();
    let mut cmd = weft(&[&["plugin", "call", wasm.as_str(), "greet"], args].concat());
    cmd.env("XDG_CACHE_HOME", s.path("cache"));
    output(cmd)
}

/// The fenced YAML blocks of a README, in order.
fn yaml_blocks(readme: &str) -> Vec<String> {
    readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block.to_owned()))
        .collect()
}

#[test]
fn rust_scaffold_builds_passes_cargo_test_and_runs_in_a_process() {
    let s = Sandbox::new();
    let out = plugin_new(s.dir.path(), &["greeter"]);
    assert_eq!(out.code, 0, "{out:?}");
    let project = s.path("greeter");
    let target = root().join("target/scaffold-rust");
    let cargo_bin = option_env!("CARGO").unwrap_or("cargo");
    let cargo = |args: &[&str]| {
        let mut cmd = clean(Command::new(cargo_bin));
        cmd.args(args)
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target);
        cmd
    };
    must(
        cargo(&["build", "--release", "--target", "wasm32-wasip2"]),
        "cargo build of the scaffold",
    );
    let tested = must(cargo(&["test"]), "cargo test of the scaffold");
    assert!(
        tested.contains("greet_with_a_name_answers_a_greeting ... ok"),
        "{tested}"
    );

    let wasm = target.join("wasm32-wasip2/release/weft_greeter.wasm");
    let done = call(&s, &wasm, &["--input", r#"{"name":"ada"}"#]);
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout.trim(), r#"done: {"greeting":"hello, ada"}"#);
    let blocked = call(
        &s,
        &wasm,
        &[
            "--input",
            r#"{"name":"mallory"}"#,
            "--config",
            r#"{"blocked":["mallory"]}"#,
        ],
    );
    assert_eq!(blocked.code, 1, "{blocked:?}");
    assert!(
        blocked.stdout.starts_with("failed: blocked: "),
        "{blocked:?}"
    );
    let busy = call(
        &s,
        &wasm,
        &[
            "--input",
            r#"{"name":"ada"}"#,
            "--config",
            r#"{"flaky_attempts":1}"#,
        ],
    );
    assert_eq!(busy.code, 1, "{busy:?}");
    assert!(busy.stdout.starts_with("failed: retryable: "), "{busy:?}");

    // The README's bindings and process, as written but for where the
    // component is: a greeting, and a blocked name routed to its state.
    let readme = std::fs::read_to_string(project.join("README.md")).expect("readable");
    let blocks = yaml_blocks(&readme);
    assert_eq!(blocks.len(), 2, "{readme}");
    let bindings = blocks[0].replace(
        "target/wasm32-wasip2/release/weft_greeter.wasm",
        &wasm.display().to_string(),
    );
    let bindings = s.write("bindings.yaml", &bindings);
    let process = s.write("hello.yaml", &blocks[1]);
    let data = s.data();
    let run = |name: &str| {
        let input = format!(r#"{{"name":"{name}"}}"#);
        weft_tests::run(&weft_tests::run_args(&process, &bindings, &input, &data))
    };
    let greeted = run("ada");
    assert_eq!(greeted.code, 0, "{greeted:?}");
    assert!(
        greeted.stdout.contains("succeeded in 'greeted'")
            && greeted.stdout.contains("\"greeting\": \"hello, ada\""),
        "{greeted:?}"
    );
    let refused = run("mallory");
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stdout.contains("greet --error.blocked--> refused"),
        "{refused:?}"
    );
}

/// Scaffolds `name` in `lang` and runs its own test (`test`, from the
/// project's directory) with the installed toolchains and this `weft`.
fn foreign_scaffold_passes_its_own_test(lang: &str, name: &str, test: &[&str]) {
    weft_tests::foreign_adapters();
    let s = Sandbox::new();
    let out = plugin_new(s.dir.path(), &[name, "--lang", lang]);
    assert_eq!(out.code, 0, "{out:?}");
    let project: PathBuf = s.path(name);
    let foreign = root().join("target/foreign");
    let jco = foreign.join("node/node_modules/.bin/jco");
    let componentize_py = foreign.join("py-venv/bin/componentize-py");
    assert!(
        jco.exists() && componentize_py.exists(),
        "toolchains missing"
    );
    let mut cmd = Command::new(test[0]);
    cmd.args(&test[1..])
        .current_dir(&project)
        .env("JCO", &jco)
        .env("COMPONENTIZE_PY", &componentize_py)
        .env("WEFT", weft_bin())
        .env("WEFT_LOG", "error")
        .env("XDG_CACHE_HOME", s.path("cache"));
    let said = must(cmd, &format!("the {lang} scaffold's own test"));
    for line in [
        "ok - a name is greeted",
        "ok - a blocked name fails with the typed error",
        "ok - a flaky attempt fails retryably",
        "all 3 passed",
    ] {
        assert!(said.contains(line), "{line:?} missing from:\n{said}");
    }
    assert!(project.join(format!("{name}.wasm")).is_file(), "{said}");
}

#[test]
fn js_scaffold_builds_and_passes_its_own_test() {
    foreign_scaffold_passes_its_own_test("js", "greeter", &["npm", "test"]);
}

#[test]
fn python_scaffold_builds_and_passes_its_own_test() {
    foreign_scaffold_passes_its_own_test("python", "greeter", &["./test.sh"]);
}
