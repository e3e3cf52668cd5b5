//! The WASM runtime against real components built from plugins/.

use std::sync::Arc;

use serde_json::json;
use weft_model::{Grants, Span, StepOutcome};
use weft_runtime::{Call, Plugin, Runtime, RuntimeOptions};
use weft_tests::plugin;

async fn load(rt: &Runtime, name: &str) -> Plugin {
    let bytes = std::fs::read(plugin(name)).expect("plugin built");
    rt.load(name, bytes.into()).await.expect("loads")
}

fn call<'a>(
    input: &'a serde_json::Value,
    config: &'a serde_json::Value,
    grants: &'a Grants,
    timeout: Span,
) -> Call<'a> {
    Call {
        action: "echo",
        input,
        config,
        instance_id: "I",
        key: "I/s/1",
        attempt: 1,
        last_heartbeat: None,
        timeout,
        memory: 64 << 20,
        max_output: 1 << 20,
        fuel: None,
        grants,
        heartbeat: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_answers_with_its_input_and_describes_itself() {
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let echo = load(&rt, "echo").await;
    assert_eq!(echo.manifest.name, "echo");
    assert!(echo.manifest.action("echo").is_some_and(|a| a.idempotent));
    let input = json!({"hello": [1, 2, 3]});
    let out = rt
        .invoke(
            &echo,
            call(&input, &json!({}), &Grants::default(), Span::from_secs(5)),
        )
        .await;
    assert_eq!(out, StepOutcome::Done { output: input });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_guests_become_typed_failures_and_the_runtime_keeps_serving() {
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let echo = load(&rt, "echo").await;
    let none = Grants::default();
    let kind = |o: &StepOutcome| match o {
        StepOutcome::Failed { failure } => (failure.kind.clone(), failure.message.clone()),
        other => panic!("expected a failure, got {other:?}"),
    };
    let cases = [
        (
            json!({"simulate": {"trap": true}}),
            "trap",
            "simulated trap in echo",
        ),
        (
            json!({"simulate": {"spin": true}}),
            "timeout",
            "did not finish within 200ms",
        ),
        (
            json!({"simulate": {"sleep_ms": 5000}}),
            "timeout",
            "did not finish within 200ms",
        ),
        (
            json!({"simulate": {"recurse": true}}),
            "trap",
            "stack overflow",
        ),
        (
            json!({"simulate": {"alloc_mb": 200}}),
            "out_of_memory",
            "memory limit of 64 MiB exceeded",
        ),
        (
            json!({"simulate": {"retryable_times": 1}}),
            "retryable",
            "simulated transient failure 1 of 1",
        ),
        (
            json!({"simulate": {"fail": "card_declined"}}),
            "card_declined",
            "simulated card_declined",
        ),
        (json!({"simulate": {"fatal": "no"}}), "fatal", "no"),
        // No filesystem unless granted.
        (
            json!({"simulate": {"record": "/log/x"}}),
            "fatal",
            "cannot open /log/x",
        ),
    ];
    for (input, want, says) in cases {
        let out = rt
            .invoke(
                &echo,
                call(&input, &json!({}), &none, Span::from_millis(200)),
            )
            .await;
        let (k, m) = kind(&out);
        assert_eq!(k, want, "{input}: {m}");
        assert!(m.contains(says), "{input}: {m:?} does not say {says:?}");
        // The same runtime and plugin still work after each failure.
        let ok = rt
            .invoke(
                &echo,
                call(&json!({"n": 1}), &json!({}), &none, Span::from_secs(5)),
            )
            .await;
        assert_eq!(
            ok,
            StepOutcome::Done {
                output: json!({"n": 1})
            },
            "after {input}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_stops_a_runaway_guest_before_its_timeout() {
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let echo = load(&rt, "echo").await;
    let none = Grants::default();
    let spin = json!({"simulate": {"spin": true}});
    let empty = json!({});
    let mut c = call(&spin, &empty, &none, Span::from_secs(60));
    c.fuel = Some(5_000_000);
    let out = rt.invoke(&echo, c).await;
    match out {
        StepOutcome::Failed { failure } => {
            assert_eq!(failure.kind, "out_of_fuel", "{failure:?}");
            assert!(failure.message.contains("fuel"), "{failure:?}");
        }
        other => panic!("expected out_of_fuel, got {other:?}"),
    }
    // The same fuel is plenty for an ordinary call.
    let input = json!({"n": 1});
    let mut c = call(&input, &empty, &none, Span::from_secs(5));
    c.fuel = Some(5_000_000);
    assert_eq!(
        rt.invoke(&echo, c).await,
        StepOutcome::Done { output: input }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_directories_are_the_only_files_a_plugin_sees() {
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let echo = load(&rt, "echo").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let grants = Grants {
        dirs: vec![("/log".into(), dir.path().to_path_buf())],
        ..Grants::default()
    };
    let input = json!({"simulate": {"record": "/log/calls.log"}});
    let out = rt
        .invoke(&echo, call(&input, &json!({}), &grants, Span::from_secs(5)))
        .await;
    assert!(matches!(out, StepOutcome::Done { .. }), "{out:?}");
    let log = std::fs::read_to_string(dir.path().join("calls.log")).expect("written");
    assert_eq!(log, "echo I/s/1 1\n");
    // Paths outside the grant stay out of reach.
    let input = json!({"simulate": {"record": "/etc/passwd"}});
    let out = rt
        .invoke(&echo, call(&input, &json!({}), &grants, Span::from_secs(5)))
        .await;
    assert!(
        matches!(out, StepOutcome::Failed { ref failure } if failure.kind == "fatal"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk_and_reused() {
    let cache = tempfile::tempdir().expect("tempdir");
    let options = RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeOptions::default()
    };
    let rt = Runtime::new(options.clone()).expect("runtime");
    let first = load(&rt, "echo").await;
    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries.len(), 1);
    let name = entries[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        name.starts_with(&first.sha256) && name.ends_with(".cwasm"),
        "{name}"
    );
    let modified = std::fs::metadata(&entries[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    drop(rt);
    // A new runtime (a restart) loads from the cache without rewriting it.
    let rt = Runtime::new(options).expect("runtime");
    let again = load(&rt, "echo").await;
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(
        std::fs::metadata(&entries[0])
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified
    );
    // A corrupt entry is ignored and replaced, not trusted.
    std::fs::write(&entries[0], b"garbage").expect("write");
    let _ = load(&rt, "echo").await;
    assert_ne!(std::fs::read(&entries[0]).expect("read"), b"garbage");

    // A runtime with a cache of its own reads this one as a fallback: the
    // entry is used (so nothing is compiled into its own), never written.
    let own = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::new(RuntimeOptions {
        cache_dir: Some(own.path().to_path_buf()),
        cache_fallback: Some(cache.path().to_path_buf()),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let before = std::fs::read(&entries[0]).expect("read");
    let _ = load(&rt, "echo").await;
    assert_eq!(std::fs::read_dir(own.path()).expect("dir").count(), 0);
    assert_eq!(std::fs::read(&entries[0]).expect("read"), before);
    // A component the fallback lacks is compiled into its own cache.
    let _ = load(&rt, "payments").await;
    assert_eq!(std::fs::read_dir(own.path()).expect("dir").count(), 1);
    assert_eq!(std::fs::read_dir(cache.path()).expect("dir").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_invocations_run_concurrently_each_in_a_fresh_store() {
    let rt = Arc::new(Runtime::new(RuntimeOptions::default()).expect("runtime"));
    let echo = Arc::new(load(&rt, "echo").await);
    let mut tasks = Vec::new();
    for n in 0..200 {
        let (rt, echo) = (rt.clone(), echo.clone());
        tasks.push(tokio::spawn(async move {
            let input = json!({"n": n});
            let grants = Grants::default();
            rt.invoke(
                &echo,
                call(&input, &json!({}), &grants, Span::from_secs(10)),
            )
            .await
        }));
    }
    for (n, t) in tasks.into_iter().enumerate() {
        assert_eq!(
            t.await.expect("joins"),
            StepOutcome::Done {
                output: json!({"n": n})
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_larger_than_the_pool_is_refused_as_a_pool_limit() {
    let rt = Runtime::new(RuntimeOptions {
        core_instances_per_component: 1,
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let bytes = std::fs::read(plugin("echo")).expect("plugin built");
    let e = rt
        .load("echo", bytes.into())
        .await
        .expect_err("echo holds more than one core instance")
        .to_string();
    assert!(
        e.starts_with("echo: the component is larger than this engine's instance pool allows"),
        "{e}"
    );
    assert!(e.contains("core module instances"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}
