//! `weft plugin add | list | describe | call` through the real binary: on
//! the store, and through a running server that holds the data directory.

#![allow(clippy::unwrap_used)]

use weft_tests::{Running, Sandbox, plugin, run};

fn file(name: &str) -> String {
    plugin(name).display().to_string()
}

#[test]
fn plugins_are_added_listed_described_and_called_on_the_store() {
    let s = Sandbox::new();
    let data = s.data();
    let first = run(&["plugin", "add", &file("payments"), "--data", &data]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.starts_with("payments@1  "), "{}", first.stdout);
    let again = run(&["plugin", "add", &file("payments"), "--data", &data]);
    assert_eq!(
        again.stdout, first.stdout,
        "the same bytes: the same version"
    );
    let other = run(&[
        "plugin",
        "add",
        &file("echo"),
        "--name",
        "payments",
        "--data",
        &data,
    ]);
    assert!(other.stdout.starts_with("payments@2  "), "{}", other.stdout);

    let list = run(&["plugin", "list", "--data", &data]);
    assert!(
        list.stdout.contains("payments@1")
            && list.stdout.contains("charge_payment, refund_payment"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("payments@2") && list.stdout.contains("echo"),
        "{}",
        list.stdout
    );
    let described = run(&["plugin", "describe", "payments@1", "--data", &data]);
    assert!(
        described.stdout.contains("charge_payment  (idempotent; undone by refund_payment; errors: card_declined, insufficient_funds)"),
        "{}",
        described.stdout
    );

    let paid = run(&[
        "plugin",
        "call",
        "payments@1",
        "charge_payment",
        "--input",
        r#"{"amount": 10, "card": "4242"}"#,
        "--data",
        &data,
    ]);
    assert_eq!(paid.code, 0, "{}\n{}", paid.stdout, paid.stderr);
    assert!(
        paid.stdout.starts_with("done: {") && paid.stdout.contains("charge_id"),
        "{}",
        paid.stdout
    );
    let declined = run(&[
        "plugin",
        "call",
        &file("payments"),
        "charge_payment",
        "--input",
        r#"{"amount": 10, "card": "4000000000000002"}"#,
    ]);
    assert_eq!(declined.code, 1);
    assert!(
        declined.stdout.contains("failed: card_declined:"),
        "{}",
        declined.stdout
    );
    let nope = run(&["plugin", "call", &file("payments"), "nope"]);
    assert_eq!(nope.code, 2);
    assert!(
        nope.stderr
            .contains("has no action 'nope'; it has: charge_payment, refund_payment"),
        "{}",
        nope.stderr
    );
    let junk = s.write("junk.wasm", "not a component");
    let refused = run(&["plugin", "add", &junk, "--data", &data]);
    assert_eq!(refused.code, 2);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not a weft adapter component"),
        "{}",
        refused.stderr
    );
    let unknown = run(&["plugin", "describe", "nothing", "--data", &data]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("no plugin 'nothing' in the registry"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn plugin_commands_go_through_a_running_server() {
    let s = Sandbox::new();
    let data = s.data();
    let bindings = s.bindings(&[]);
    let process = weft_tests::root()
        .join("tests/fixtures/waits.yaml")
        .display()
        .to_string();
    let deployed = run(&["deploy", &process, "--bindings", &bindings, "--data", &data]);
    assert_eq!(deployed.code, 0, "{}", deployed.stderr);
    let mut serve = Running::spawn(&["serve", "--data", &data, "--listen", "127.0.0.1:0"]);
    serve.wait_for("serving");
    let added = run(&["plugin", "add", &file("echo"), "--data", &data]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert!(added.stdout.starts_with("echo@1  "), "{}", added.stdout);
    // The deployed process binds `echo` to these very bytes.
    let described = run(&["plugin", "describe", "echo", "--data", &data]);
    assert!(
        described
            .stdout
            .contains("used by: waits v1 (bindings r1) for echo"),
        "{}",
        described.stdout
    );
    // Called by name: the bytes come from the server's registry.
    let called = run(&[
        "plugin",
        "call",
        "echo",
        "echo",
        "--input",
        r#"{"n": 1}"#,
        "--data",
        &data,
    ]);
    assert_eq!(called.code, 0, "{}\n{}", called.stdout, called.stderr);
    assert!(called.stdout.starts_with("done: "), "{}", called.stdout);
    let _ = serve.child.kill();
    let _ = serve.child.wait();
}

/// Commands without a data directory keep compiled components in the user's
/// cache, so the next `validate` or `plugin call` does not compile again;
/// `WEFT_NO_CACHE` turns it off.
#[test]
fn validate_keeps_compiled_components_in_the_user_cache() {
    let s = Sandbox::new();
    let cache = s.path("xdg");
    let process = weft_tests::root()
        .join("tests/fixtures/waits.yaml")
        .display()
        .to_string();
    let bindings = s.bindings(&[]);
    let validate = |no_cache: bool| {
        let mut cmd = weft_tests::weft(&["validate", &process, "--bindings", &bindings]);
        cmd.env("XDG_CACHE_HOME", &cache);
        if no_cache {
            cmd.env("WEFT_NO_CACHE", "1");
        }
        weft_tests::output(cmd)
    };
    let off = validate(true);
    assert_eq!(off.code, 0, "{}", off.stderr);
    assert!(!cache.exists(), "WEFT_NO_CACHE writes nothing");
    let first = validate(false);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let entries = std::fs::read_dir(cache.join("weft/components"))
        .unwrap()
        .count();
    assert_eq!(
        entries, 5,
        "one compiled entry per plugin the bindings name"
    );
    let again = validate(false);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        std::fs::read_dir(cache.join("weft/components"))
            .unwrap()
            .count(),
        entries
    );
}

/// Bindings may name registered components instead of files: `name@version`
/// or `sha256:<digest>`, found in the data directory's registry — from the
/// store, or through the server that holds it.
#[test]
fn bindings_name_registered_components_by_version_or_digest() {
    let s = Sandbox::new();
    let data = s.data();
    let added = run(&["plugin", "add", &file("payments"), "--data", &data]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    let echo = run(&["plugin", "add", &file("echo"), "--data", &data]);
    let digest = echo.stdout.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(digest.len(), 64, "{}", echo.stdout);
    let bindings = std::fs::read_to_string(s.bindings(&[])).unwrap();
    let bindings = bindings
        .lines()
        .map(|l| {
            if l.starts_with("  payments: ") {
                "  payments: payments@1".to_owned()
            } else if l.starts_with("  echo: ") {
                format!("  echo: sha256:{digest}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bindings = s.write("registered.yaml", &bindings);
    let order = weft_tests::order_process();
    let ran = run(&weft_tests::run_args(
        &order,
        &bindings,
        &weft_tests::order_input(1, "4242"),
        &data,
    ));
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let described = run(&["plugin", "describe", "payments@1", "--data", &data]);
    assert!(
        described.stdout.contains("used by: order-fulfillment v1"),
        "{}",
        described.stdout
    );

    // Unknown versions are named where they are written.
    let wrong = s.write(
        "wrong.yaml",
        &std::fs::read_to_string(&bindings)
            .unwrap()
            .replace("payments@1", "payments@7"),
    );
    let refused = run(&["validate", &order, "--bindings", &wrong, "--data", &data]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("wrong.yaml:")
            && refused
                .stderr
                .contains("no plugin 'payments@7' in the registry"),
        "{}",
        refused.stderr
    );

    // Through a running server: the CLI fetches the bytes from it.
    let mut serve = Running::spawn(&["serve", "--data", &data, "--listen", "127.0.0.1:0"]);
    serve.wait_for("serving");
    let deployed = run(&["deploy", &order, "--bindings", &bindings, "--data", &data]);
    assert_eq!(deployed.code, 0, "{}\n{}", deployed.stdout, deployed.stderr);
    let _ = serve.child.kill();
    let _ = serve.child.wait();
}
