//! Each failure rule on a simulated clock: exact retry times, timeouts and
//! deadlines, heartbeat loss, the circuit breaker, rate-limit spacing,
//! concurrency caps, async completion and restarts — without sleeping.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use support::*;
use weft_core::{Clock, Completion, Error};
use weft_model::{Failure, RecordKind, Span, Status, StepOutcome};

const ONE_STEP: &str = r#"
process: one
version: 1
start: call
states:
  call:
    action: call_api
    RETRY
    on: { done: ok, error.timeout: late, error: broken }
  ok: { type: succeed }
  late: { type: fail, error: late }
  broken: { type: fail }
"#;

fn one_step(retry: &str) -> String {
    ONE_STEP.replace("RETRY", retry)
}

fn times(sim: &Sim, action: &str) -> Vec<u64> {
    sim.invoker
        .calls_of(action)
        .iter()
        .map(|c| Sim::since_t0(c.at))
        .collect()
}

#[tokio::test]
async fn a_retry_after_from_the_tool_replaces_the_backoff_for_that_delay() {
    let sim = Sim::new(
        &one_step("retry: { max_attempts: 4, initial: 200ms, factor: 2 }"),
        "",
    );
    sim.on(
        "call_api",
        script(|ctx| match ctx.nth {
            // A 429 with Retry-After: 5.
            0 => StepOutcome::Failed {
                failure: Failure::new("retryable", "429").retry_after(Span::from_secs(5)),
            },
            1 => failed("retryable"),
            _ => done(json!(1)),
        }),
    );
    let id = sim.start(json!({})).await;
    sim.run_for(8_000, 50).await;
    // 5s as asked, then the policy's own second delay (400ms).
    assert_eq!(times(&sim, "call_api"), [0, 5_000, 5_400]);
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    let history = sim.store.history(&id, 0).expect("io");
    let asked: Vec<Option<Span>> = history
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::AttemptFailed { failure, .. } => Some(failure.retry_after),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [Some(Span::from_secs(5)), None]);
}

#[tokio::test]
async fn retries_happen_exactly_when_the_policy_says() {
    let sim = Sim::new(
        &one_step("retry: { max_attempts: 4, initial: 200ms, factor: 2 }"),
        "",
    );
    sim.on(
        "call_api",
        script(|ctx| {
            if ctx.nth < 3 {
                failed("retryable")
            } else {
                done(json!(1))
            }
        }),
    );
    let id = sim.start(json!({})).await;
    sim.run_for(2_000, 50).await;
    assert_eq!(times(&sim, "call_api"), [0, 200, 600, 1_400]);
    let attempts: Vec<u32> = sim
        .invoker
        .calls_of("call_api")
        .iter()
        .map(|c| c.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    let history = sim.store.history(&id, 0).expect("io");
    let failed = history
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::AttemptFailed { .. }))
        .count();
    assert_eq!(failed, 3);
}

#[tokio::test]
async fn jittered_retries_stay_within_their_bounds() {
    let sim = Sim::new(
        &one_step("retry: { max_attempts: 5, initial: 1s, factor: 2, jitter: full }"),
        "",
    );
    sim.on("call_api", script(|_| failed("retryable")));
    let id = sim.start(json!({})).await;
    sim.run_for(20_000, 100).await;
    let t = times(&sim, "call_api");
    assert_eq!(t.len(), 5);
    for (i, cap) in [1_000u64, 2_000, 4_000, 8_000].iter().enumerate() {
        let gap = t[i + 1] - t[i];
        assert!(
            gap <= cap + 100,
            "gap {i} is {gap}ms, over {cap}ms (+ one 100ms tick)"
        );
    }
    assert_eq!(sim.instance(&id).status, Status::Failed);
}

#[tokio::test]
async fn a_step_deadline_stops_a_slow_invocation_with_error_timeout() {
    let sim = Sim::new(
        &one_step("deadline: 5s\n    retry: { max_attempts: 3, initial: 1s }"),
        "",
    );
    sim.on("call_api", slow(60_000, done(json!(1))));
    let id = sim.start(json!({})).await;
    sim.run_for(4_900, 100).await;
    assert_eq!(sim.instance(&id).status, Status::Running);
    sim.run_for(200, 100).await;
    let inst = sim.instance(&id);
    assert_eq!((inst.status, inst.state.as_str()), (Status::Failed, "late"));
    assert_eq!(
        sim.invoker.dropped.load(Ordering::SeqCst),
        1,
        "the running invocation was stopped"
    );
    assert_eq!(sim.invoker.calls_of("call_api").len(), 1);
}

#[tokio::test]
async fn a_pending_step_times_out_on_its_stored_timer() {
    let sim = Sim::new(&one_step("timeout: 30s"), "");
    sim.on(
        "call_api",
        script(|_| StepOutcome::Pending {
            token: "tok-1".into(),
        }),
    );
    let id = sim.start(json!({})).await;
    sim.run_for(29_000, 1_000).await;
    assert_eq!(sim.instance(&id).status, Status::Running);
    sim.advance(1_000).await;
    let inst = sim.instance(&id);
    assert_eq!((inst.status, inst.state.as_str()), (Status::Failed, "late"));
    // Completing it now is refused: the token closed with the step.
    let late = sim
        .engine
        .complete("tok-1", Completion::Done(json!(1)))
        .await;
    assert!(matches!(late, Err(Error::TokenUsed(_))), "{late:?}");
}

#[tokio::test]
async fn async_completion_finishes_the_step_once() {
    let sim = Sim::new(&one_step(""), "");
    sim.on(
        "call_api",
        script(|_| StepOutcome::Pending {
            token: "tok-7".into(),
        }),
    );
    let id = sim.start(json!({})).await;
    assert_eq!(sim.instance(&id).status, Status::Running);
    sim.engine
        .complete("tok-7", Completion::Done(json!({"approved": true})))
        .await
        .expect("completes");
    sim.engine.settle().await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    let again = sim
        .engine
        .complete("tok-7", Completion::Done(json!(2)))
        .await;
    assert!(matches!(again, Err(Error::TokenUsed(_))), "{again:?}");
    let unknown = sim
        .engine
        .complete("nope", Completion::Failed(Failure::new("x", "y")))
        .await;
    assert!(matches!(unknown, Err(Error::NoToken(_))), "{unknown:?}");
}

#[tokio::test]
async fn a_step_that_stops_heartbeating_is_stopped_and_retried_with_its_last_details() {
    let sim = Sim::new(
        &one_step("heartbeat: 20s\n    retry: { max_attempts: 2, initial: 1s }"),
        "",
    );
    sim.on(
        "call_api",
        Arc::new(|ctx: Ctx| {
            Box::pin(async move {
                if ctx.nth > 0 {
                    return done(json!("second attempt"));
                }
                // Beat every 10s for 30s, then hang.
                for i in 1..=3 {
                    let at = ctx.clock.now().plus(Span::from_secs(10));
                    ctx.clock.sleep_until(at).await;
                    (ctx.heartbeat)(format!("{{\"beat\":{i}}}"));
                }
                std::future::pending::<StepOutcome>().await
            })
        }),
    );
    let id = sim.start(json!({})).await;
    sim.run_for(49_000, 1_000).await;
    assert_eq!(
        sim.invoker.calls_of("call_api").len(),
        1,
        "still beating, then within 20s of the last beat"
    );
    sim.run_for(3_000, 1_000).await;
    let calls = sim.invoker.calls_of("call_api");
    assert_eq!(calls.len(), 2, "stopped at 30s + 20s, retried 1s later");
    assert_eq!(Sim::since_t0(calls[1].at), 51_000);
    assert_eq!(calls[1].last_heartbeat.as_deref(), Some("{\"beat\":3}"));
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    let history = sim.store.history(&id, 0).expect("io");
    assert!(history.iter().any(|r| matches!(&r.kind, RecordKind::AttemptFailed { failure, heartbeat: Some(h), .. } if failure.kind == "heartbeat" && h == "{\"beat\":3}")));
}

const BREAKER_BINDINGS: &str = r#"
plugins: {}
actions:
  call_api:
    plugin: p
    circuit_breaker: { failures: 3, cool_down: 30s }
"#;

#[tokio::test]
async fn the_circuit_breaker_opens_half_opens_and_closes() {
    let process = one_step("retry: { max_attempts: 10, initial: 1s, factor: 1 }");
    let sim = Sim::new(
        &process,
        &BREAKER_BINDINGS.replace("plugins: {}", "plugins: { p: /x.wasm }"),
    );
    // The tool fails 4 times in a row, then recovers.
    sim.on(
        "call_api",
        script(|ctx| {
            if ctx.nth < 4 {
                failed("retryable")
            } else {
                done(json!(1))
            }
        }),
    );
    let id = sim.start(json!({})).await;
    sim.run_for(60_000, 500).await;
    // Calls at 0, 1s, 2s open the breaker; the retry due at 3s waits until
    // the cool-down ends at 32s (half-open trial, fails: open again), the
    // next at 62s... the trial after that succeeds and closes it.
    sim.run_for(40_000, 500).await;
    let t = times(&sim, "call_api");
    assert_eq!(&t[..3], [0, 1_000, 2_000]);
    assert_eq!(
        t[3], 32_000,
        "waited for the cool-down instead of burning attempts"
    );
    assert_eq!(
        t[4], 62_000,
        "the failed trial re-opened it for another cool-down"
    );
    assert_eq!(t.len(), 5);
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Succeeded);
    assert!(inst.step.is_none());
    let failures = sim
        .store
        .history(&id, 0)
        .expect("io")
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::AttemptFailed { .. }))
        .count();
    assert_eq!(failures, 4, "waiting used up no attempts");
}

#[tokio::test]
async fn rate_limits_space_calls_out_without_blocking_other_bindings() {
    let process = r#"
process: two
version: 1
start: a
states:
  a: { action: limited, on: { done: b } }
  b: { action: free, on: { done: ok } }
  ok: { type: succeed }
"#;
    let bindings = r#"
plugins: { p: /x.wasm }
actions:
  limited: { plugin: p, rate_limit: 60/min }
  free: { plugin: p }
"#;
    let sim = Sim::new(process, bindings);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            sim.engine
                .start("two", None, json!({"n": n}))
                .await
                .expect("starts"),
        );
    }
    sim.engine.settle().await;
    sim.run_for(6_000, 250).await;
    assert_eq!(
        times(&sim, "limited"),
        [0, 1_000, 2_000, 3_000, 4_000],
        "one per second"
    );
    // `free` is called as soon as each `limited` call is done, never held
    // back by the instances still waiting for a rate slot.
    assert_eq!(times(&sim, "free"), [0, 1_000, 2_000, 3_000, 4_000]);
    for id in &ids {
        assert_eq!(sim.instance(id).status, Status::Succeeded);
    }
}

#[tokio::test]
async fn a_concurrency_cap_is_never_exceeded() {
    let bindings = "plugins: { p: /x.wasm }\nactions:\n  call_api: { plugin: p, concurrency: 2 }\n";
    let sim = Sim::new(&one_step(""), bindings);
    sim.on("call_api", slow(1_000, done(json!(1))));
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(
            sim.engine
                .start("one", None, json!({"n": n}))
                .await
                .expect("starts"),
        );
    }
    sim.run_for(5_000, 250).await;
    assert_eq!(sim.invoker.max_running("call_api"), 2);
    assert_eq!(
        times(&sim, "call_api"),
        [0, 0, 1_000, 1_000, 2_000, 2_000, 3_000]
    );
    for id in &ids {
        assert_eq!(sim.instance(id).status, Status::Succeeded);
    }
}

#[tokio::test]
async fn a_restart_while_a_retry_is_pending_fires_it_on_time_once() {
    let mut sim = Sim::new(&one_step("retry: { max_attempts: 3, initial: 10s }"), "");
    sim.on(
        "call_api",
        script(|ctx| {
            if ctx.nth < 1 {
                failed("retryable")
            } else {
                done(json!(1))
            }
        }),
    );
    let id = sim.start(json!({})).await;
    sim.advance(4_000).await;
    sim.reboot().await;
    sim.advance(4_000).await;
    assert_eq!(sim.invoker.calls_of("call_api").len(), 1, "not early");
    sim.reboot().await;
    sim.advance(2_000).await;
    sim.advance(5_000).await;
    assert_eq!(
        times(&sim, "call_api"),
        [0, 10_000],
        "on time, once, across two restarts"
    );
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
}

#[tokio::test]
async fn an_attempt_that_outlives_its_timeout_fails_with_error_timeout_and_is_retried() {
    let sim = Sim::new(
        &one_step("timeout: 5s\n    retry: { max_attempts: 2, initial: 1s }"),
        "",
    );
    sim.on(
        "call_api",
        Arc::new(|ctx: Ctx| {
            Box::pin(async move {
                if ctx.nth == 0 {
                    std::future::pending::<()>().await;
                }
                done(json!("fine"))
            })
        }),
    );
    let id = sim.start(json!({})).await;
    sim.run_for(4_900, 100).await;
    assert_eq!(sim.invoker.calls_of("call_api").len(), 1);
    sim.run_for(1_300, 100).await;
    let t = times(&sim, "call_api");
    assert_eq!(
        t.len(),
        2,
        "timed out at 5s (+50ms grace), retried 1s later"
    );
    assert!((6_000..=6_100).contains(&t[1]), "{t:?}");
    assert_eq!(
        sim.invoker.dropped.load(Ordering::SeqCst),
        1,
        "the hung call was dropped"
    );
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    let history = sim.store.history(&id, 0).expect("io");
    assert!(history.iter().any(|r| matches!(&r.kind, RecordKind::AttemptFailed { failure, .. } if failure.kind == "timeout")));
}

#[tokio::test]
async fn the_transition_ending_a_step_records_the_input_its_attempts_got() {
    let sim = Sim::new(&one_step("retry: { max_attempts: 3, initial: 100ms }"), "");
    sim.on(
        "call_api",
        script(|ctx| match ctx.nth {
            0 => failed("retryable"),
            _ => done(json!({"ok": ctx.inv.input.clone()})),
        }),
    );
    let id = sim.start(json!({"amount": 12})).await;
    sim.run_for(1_000, 50).await;
    let history = sim.store.history(&id, 0).expect("io");
    let ended = history
        .iter()
        .find_map(|r| match &r.kind {
            RecordKind::Transition { from, input, .. } if from == "call" => Some(input.clone()),
            _ => None,
        })
        .expect("the step ended");
    let got = sim.invoker.calls_of("call_api");
    assert_eq!(got.len(), 2);
    assert_eq!(ended, Some(json!({"amount": 12})), "{history:?}");
}
