//! Hot swaps on a simulated clock and the in-memory store: attempts run on
//! the component live when they start and record it; rollbacks walk back;
//! refused swaps write nothing; canaries are judged on their failure rate.

mod support;

use serde_json::json;
use support::*;
use weft_core::{Clock, Component, Error, SwapRequest};
use weft_model::{ActionInfo, Manifest, RecordKind, Status};
use weft_store::{CanaryPolicy, SwapKind};

const ONE_STEP: &str = r#"
process: one
version: 1
start: call
states:
  call:
    action: echo
    retry: { max_attempts: 6, initial: 100ms, factor: 1 }
    on: { done: ok, error.no_such_thing: ok }
  ok: { type: succeed }
"#;

const BINDINGS: &str = "plugins: { echo: echo.wasm }\nactions:\n  echo:\n    plugin: echo\n";

fn manifest(action: &str, errors: &[&str]) -> Manifest {
    Manifest {
        name: "echo".into(),
        version: "2".into(),
        actions: vec![ActionInfo {
            name: action.into(),
            idempotent: true,
            compensated_by: None,
            errors: errors.iter().map(|e| e.to_string()).collect(),
        }],
    }
}

fn component(sha: &str) -> Component {
    Component {
        sha256: sha.into(),
        manifest: manifest("echo", &["no_such_thing"]),
        register: None,
        registered: None,
    }
}

fn swap(target: &str, sha: &str) -> SwapRequest {
    SwapRequest {
        target: target.into(),
        component: component(sha),
        canary: None,
    }
}

/// The component each recorded attempt outcome of an instance ran on.
fn ran_on(sim: &Sim, id: &weft_model::InstanceId) -> Vec<String> {
    sim.store
        .history(id, 0)
        .expect("io")
        .into_iter()
        .filter_map(|r| r.plugin)
        .collect()
}

fn live(sim: &Sim) -> String {
    let d = sim
        .store
        .deployment("one", 1)
        .expect("io")
        .expect("deployed");
    d.digest_of("echo").expect("bound").to_owned()
}

#[tokio::test]
async fn attempts_run_on_the_component_live_when_they_start_and_rollbacks_walk_back() {
    let sim = Sim::new(ONE_STEP, BINDINGS);
    let a = sim.start(json!({})).await;
    assert_eq!(ran_on(&sim, &a), ["sha-echo"]);

    let first = sim.engine.swap(swap("echo", "v2")).await.expect("swaps");
    assert_eq!((first.seq, first.kind), (1, SwapKind::Swap));
    assert_eq!(first.target.to_string(), "plugin:echo");
    assert_eq!(first.changes[0].from, "sha-echo");
    let b = sim.start(json!({})).await;
    assert_eq!(ran_on(&sim, &b), ["v2"]);
    let h = sim.store.history(&b, 0).expect("io");
    assert!(
        h.iter()
            .any(|r| r.plugin.as_deref() == Some("v2") && r.bindings == Some(2)),
        "{h:?}"
    );

    sim.engine
        .swap(swap("action:echo", "v3"))
        .await
        .expect("swaps");
    let c = sim.start(json!({})).await;
    assert_eq!(ran_on(&sim, &c), ["v3"]);

    // Each rollback undoes one more swap.
    let back = sim.engine.rollback("echo").await;
    assert!(
        matches!(&back, Err(Error::SwapRefused(m)) if m.contains("plugin:echo changed since")),
        "plugin:echo's swap is under action:echo's: {back:?}"
    );
    let back = sim
        .engine
        .rollback("action:echo")
        .await
        .expect("rolls back");
    assert_eq!((back.kind, back.settles), (SwapKind::Rollback, Some(2)));
    assert_eq!(live(&sim), "v2");
    let back = sim
        .engine
        .rollback("plugin:echo")
        .await
        .expect("rolls back");
    assert_eq!(back.settles, Some(1));
    assert_eq!(live(&sim), "sha-echo");
    let d = sim.start(json!({})).await;
    assert_eq!(ran_on(&sim, &d), ["sha-echo"]);
    assert!(matches!(
        sim.engine.rollback("plugin:echo").await,
        Err(Error::SwapRefused(m)) if m.contains("nothing to roll back")
    ));

    let log = sim.engine.swap_log(Some("plugin:echo")).await.expect("log");
    assert_eq!(
        log.records.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [SwapKind::Swap, SwapKind::Rollback]
    );
    assert_eq!(log.live.len(), 1);
    assert_eq!(log.live[0].sha256, "sha-echo");
    for id in [a, b, c, d] {
        assert_eq!(sim.instance(&id).status, Status::Succeeded);
    }
}

#[tokio::test]
async fn an_invocation_under_way_finishes_on_the_component_it_started_on() {
    let sim = Sim::new(ONE_STEP, BINDINGS);
    sim.on("echo", slow(1_000, done(json!({"ok": true}))));
    let name = "one";
    let slow_one = sim
        .engine
        .start(name, None, json!({}))
        .await
        .expect("starts");
    sim.advance(10).await;
    sim.engine.swap(swap("echo", "v2")).await.expect("swaps");
    let fresh = sim
        .engine
        .start(name, None, json!({}))
        .await
        .expect("starts");
    sim.run_for(2_000, 100).await;
    assert_eq!(ran_on(&sim, &slow_one), ["sha-echo"]);
    assert_eq!(ran_on(&sim, &fresh), ["v2"]);
    let calls = sim.invoker.calls_of("echo");
    assert_eq!(
        calls
            .iter()
            .map(|c| c.component.as_str())
            .collect::<Vec<_>>(),
        ["sha-echo", "v2"]
    );
}

#[tokio::test]
async fn a_component_that_fails_a_check_is_refused_and_nothing_is_written() {
    let sim = Sim::new(ONE_STEP, BINDINGS);
    let before = sim.store.deployment("one", 1).expect("io");
    let mut missing = swap("echo", "v2");
    missing.component.manifest = manifest("shout", &[]);
    let e = sim.engine.swap(missing).await.expect_err("refused");
    assert!(
        e.to_string().contains("does not have (it has: shout)"),
        "{e}"
    );
    let mut untyped = swap("echo", "v2");
    untyped.component.manifest = manifest("echo", &[]);
    let e = sim.engine.swap(untyped).await.expect_err("refused");
    assert!(
        e.to_string().contains("routes 'error.no_such_thing'"),
        "{e}"
    );
    let e = sim
        .engine
        .swap(swap("nothing", "v2"))
        .await
        .expect_err("refused");
    assert!(matches!(e, Error::NoTarget(_)), "{e}");
    let e = sim
        .engine
        .swap(swap("echo", "sha-echo"))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("already what runs"), "{e}");
    assert_eq!(sim.store.deployment("one", 1).expect("io"), before);
    assert!(sim.store.swaps().expect("io").is_empty());
    let a = sim.start(json!({})).await;
    assert_eq!(ran_on(&sim, &a), ["sha-echo"]);
}

fn canary(sha: &str, policy: CanaryPolicy) -> SwapRequest {
    SwapRequest {
        canary: Some(policy),
        ..swap("echo", sha)
    }
}

#[tokio::test]
async fn a_worse_canary_is_rolled_back_and_a_good_one_promoted() {
    let sim = Sim::new(ONE_STEP, BINDINGS);
    // "bad" fails 3 attempts in 10, retryably; everything else works.
    sim.on(
        "echo",
        script(|ctx| {
            if ctx.component == "bad" && ctx.nth % 10 < 3 {
                failed("retryable")
            } else {
                done(json!({}))
            }
        }),
    );
    let policy = CanaryPolicy {
        percent: 50,
        promote_after: 1_000,
        threshold: 10,
        window: 50,
        min_calls: 20,
    };
    let started = sim
        .engine
        .swap(canary("bad", policy))
        .await
        .expect("canary");
    assert_eq!(started.kind, SwapKind::Canary);
    // Routing is by step key and attempt: some go to each side.
    let mut ids = Vec::new();
    for _ in 0..120 {
        ids.push(sim.start(json!({})).await);
    }
    sim.run_for(3_000, 100).await;
    let log = sim.store.swaps().expect("io");
    let abort = log
        .iter()
        .find(|r| r.kind == SwapKind::Abort)
        .expect("the canary was rolled back");
    assert_eq!(abort.settles, Some(started.seq));
    let why = abort.reason.as_deref().unwrap_or_default();
    assert!(why.contains("points worse"), "{why}");
    let d = sim
        .store
        .deployment("one", 1)
        .expect("io")
        .expect("deployed");
    assert!(d.canaries.is_empty());
    assert_eq!(live(&sim), "sha-echo");
    // Every instance finished: failed attempts were retried.
    for id in &ids {
        assert_eq!(sim.instance(id).status, Status::Succeeded);
    }
    let on_bad = ids
        .iter()
        .filter(|id| ran_on(&sim, id).iter().any(|c| c == "bad"))
        .count();
    assert!(on_bad > 0, "the canary took a share");
    // The history of an attempt that failed on the canary says so.
    let failed_on_bad = ids.iter().any(|id| {
        sim.store.history(id, 0).expect("io").iter().any(|r| {
            matches!(r.kind, RecordKind::AttemptFailed { .. }) && r.plugin.as_deref() == Some("bad")
        })
    });
    assert!(failed_on_bad);

    // A good one is promoted after its successes.
    let good = CanaryPolicy {
        percent: 50,
        promote_after: 25,
        ..policy
    };
    sim.engine.swap(canary("good", good)).await.expect("canary");
    // Half of 200 attempts, give or take: well over the 25 successes it
    // needs (routing hashes the step key, whose id is random).
    for _ in 0..200 {
        sim.start(json!({})).await;
    }
    sim.run_for(1_000, 100).await;
    let log = sim.store.swaps().expect("io");
    let promote = log.last().expect("records");
    assert_eq!(promote.kind, SwapKind::Promote, "{log:?}");
    assert!(
        promote
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("25 successful attempts"),
        "{promote:?}"
    );
    assert_eq!(live(&sim), "good");
    // A promotion rolls back like a swap.
    sim.engine.rollback("echo").await.expect("rolls back");
    assert_eq!(live(&sim), "sha-echo");
}

#[tokio::test]
async fn a_canary_under_way_blocks_swaps_and_is_ended_by_rollback_or_promote() {
    let sim = Sim::new(ONE_STEP, BINDINGS);
    let policy = CanaryPolicy {
        percent: 10,
        ..CanaryPolicy::default()
    };
    sim.engine.swap(canary("c1", policy)).await.expect("canary");
    let e = sim.engine.swap(swap("echo", "v2")).await.expect_err("busy");
    assert!(
        e.to_string().contains("canary of plugin:echo is under way"),
        "{e}"
    );
    let ended = sim.engine.rollback("echo").await.expect("ends it");
    assert_eq!(ended.kind, SwapKind::Abort);
    assert_eq!(live(&sim), "sha-echo");
    sim.engine.swap(canary("c2", policy)).await.expect("canary");
    let promoted = sim.engine.promote("echo").await.expect("promotes");
    assert_eq!(promoted.kind, SwapKind::Promote);
    assert_eq!(live(&sim), "c2");
    assert!(matches!(
        sim.engine.promote("echo").await,
        Err(Error::SwapRefused(m)) if m.contains("no canary")
    ));
    let bad = CanaryPolicy {
        percent: 100,
        ..policy
    };
    let e = sim
        .engine
        .swap(canary("c3", bad))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("out of range"), "{e}");
}

#[tokio::test]
async fn a_deploy_ends_swaps_and_canaries_of_its_version_and_rollback_says_so() {
    let sim = Sim::new(ONE_STEP, BINDINGS);
    sim.engine.swap(swap("echo", "v2")).await.expect("swaps");
    let policy = CanaryPolicy {
        percent: 10,
        ..CanaryPolicy::default()
    };
    sim.engine.swap(canary("c1", policy)).await.expect("canary");
    // A deploy of other bindings for the version: its own components, no
    // canary.
    let other = parse_bindings(&format!("{BINDINGS}    config: {{ loud: true }}\n"));
    deploy_into(&*sim.store, ONE_STEP, &other, sim.clock.now());
    let d = sim
        .store
        .deployment("one", 1)
        .expect("io")
        .expect("deployed");
    assert!(d.canaries.is_empty());
    assert_eq!(live(&sim), "sha-echo");
    // The canary is over; the swap before it was replaced by the deploy.
    let e = sim.engine.rollback("echo").await.expect_err("refused");
    assert!(e.to_string().contains("plugin:echo changed since"), "{e}");
    let e = sim.engine.promote("echo").await.expect_err("refused");
    assert!(e.to_string().contains("no canary"), "{e}");
    // A new swap is not blocked by the canary the deploy ended.
    sim.engine.swap(swap("echo", "v3")).await.expect("swaps");
    assert_eq!(live(&sim), "v3");
}

#[tokio::test]
async fn an_idempotent_action_is_not_taken_over_by_one_that_is_not() {
    let sim = Sim::new(ONE_STEP, BINDINGS);
    sim.invoker
        .manifests
        .lock()
        .expect("lock")
        .insert("sha-echo".into(), manifest("echo", &["no_such_thing"]));
    let mut weaker = swap("echo", "v2");
    weaker.component.manifest.actions[0].idempotent = false;
    let e = sim.engine.swap(weaker).await.expect_err("refused");
    assert!(e.to_string().contains("was idempotent"), "{e}");
    assert!(sim.store.swaps().expect("io").is_empty());
    sim.engine.swap(swap("echo", "v2")).await.expect("swaps");
}
