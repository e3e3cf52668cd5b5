//! The engine as the one owner of deployments and operations, under the
//! interleavings that used to go wrong: bindings per process version
//! whichever engine applies an event, work queued while no bindings exist,
//! re-deployed bindings from the next attempt, a completion racing its
//! pending commit, a cancel racing a recovered invocation, failing timers,
//! store errors, schedules — on a simulated clock, without sleeping.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use support::flaky::Flaky;
use support::*;
use weft_core::{Clock, Completion, DeployRequest, Engine, EngineOptions, Error, PageQuery};
use weft_model::{RecordKind, Status, StepOutcome};
use weft_store::{Definitions, Instances, MemStore, PluginBlob, Store};

const APPROVAL: &str = r#"
process: approval
version: 1
start: review
states:
  review:
    type: wait
    on: { approve: pay }
  pay:
    action: pay
    on: { done: paid, error: unpaid }
  paid: { type: succeed }
  unpaid: { type: fail }
"#;

const PAY_RETRIES: &str = "plugins: { p: /p.wasm }\nactions:\n  pay: { plugin: p, retry: { max_attempts: 3, initial: 1s } }\n";

fn fail_twice() -> Script {
    script(|ctx| {
        if ctx.nth < 2 {
            failed("retryable")
        } else {
            done(json!({"paid": true}))
        }
    })
}

fn kinds(store: &dyn Store, id: &weft_model::InstanceId) -> Vec<String> {
    store
        .history(id, 0)
        .unwrap()
        .iter()
        .map(|r| match &r.kind {
            RecordKind::Transition { event, to, .. } => format!("{event}->{to}"),
            RecordKind::AttemptFailed { attempt, .. } => format!("attempt {attempt} failed"),
            other => format!("{other:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_signal_applied_offline_keeps_the_bindings_retry_policy() {
    let sim = Sim::new(APPROVAL, PAY_RETRIES);
    sim.on("pay", fail_twice());
    let id = sim.start(json!({})).await;
    assert_eq!(sim.instance(&id).status, Status::Waiting);
    // An offline engine (no engine runs: a CLI command applies the signal).
    let offline = Engine::new(
        sim.store.clone(),
        sim.invoker.clone(),
        sim.clock.clone(),
        EngineOptions {
            offline: true,
            ..EngineOptions::default()
        },
    );
    offline.signal(&id, "approve", json!({})).await.unwrap();
    assert!(
        sim.invoker.calls_of("pay").is_empty(),
        "offline invokes nothing"
    );
    // The step it entered carries the binding's retry policy.
    let step = sim.instance(&id).step.expect("in the pay step");
    assert_eq!(step.retry.max_attempts, 3);
    sim.engine.resume().await.unwrap();
    sim.run_for(5_000, 100).await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    assert_eq!(sim.invoker.calls_of("pay").len(), 3);
}

#[tokio::test]
async fn deploying_v2_leaves_running_v1_instances_on_v1_bindings() {
    let sim = Sim::new(APPROVAL, PAY_RETRIES);
    sim.on("pay", fail_twice());
    let id = sim.start(json!({})).await;
    // v2: same shape, bindings without retries.
    let v2 = APPROVAL.replace("version: 1", "version: 2");
    deploy_into(
        &*sim.store,
        &v2,
        &parse_bindings("plugins: { p: /p.wasm }\nactions:\n  pay: { plugin: p }\n"),
        sim.clock.now(),
    );
    sim.engine.signal(&id, "approve", json!({})).await.unwrap();
    sim.run_for(5_000, 100).await;
    let inst = sim.instance(&id);
    assert_eq!((inst.version, inst.status), (1, Status::Succeeded));
    assert_eq!(sim.invoker.calls_of("pay").len(), 3, "v1's three attempts");
}

const ONE: &str = r#"
process: one
version: 1
start: call
states:
  call:
    action: call_api
    retry: { max_attempts: 2, initial: 1s }
    on: { done: ok }
  ok: { type: succeed }
"#;

fn request(process: &str, bindings: &str) -> DeployRequest {
    let doc = weft_model::source::load("p.yaml", process, weft_model::Format::Yaml).unwrap();
    DeployRequest {
        process: weft_model::validate::process(&doc).unwrap(),
        bindings: parse_bindings(bindings),
        plugins: vec![PluginBlob {
            name: "p".into(),
            sha256: "00ff".into(),
            bytes: Arc::from(&b"\0asm"[..]),
        }],
    }
}

#[tokio::test]
async fn redeployed_bindings_apply_from_the_next_attempt_and_history_says_which() {
    let first = "plugins: { p: /p.wasm }\nactions:\n  call_api: { plugin: p, config: { v: 1 } }\n";
    let sim = Sim::new(ONE, first);
    sim.on(
        "call_api",
        script(|ctx| {
            if ctx.nth == 0 {
                failed("retryable")
            } else {
                done(json!(2))
            }
        }),
    );
    let id = sim.start(json!({})).await;
    assert_eq!(*sim.invoker.revisions.lock().unwrap(), [1]);
    // The tool is swapped while the instance waits to retry.
    let swapped =
        "plugins: { p: /p.wasm }\nactions:\n  call_api: { plugin: p, config: { v: 2 } }\n";
    let deployed = sim.engine.deploy(request(ONE, swapped)).await.unwrap();
    assert_eq!((deployed.revision, deployed.new_revision), (2, true));
    sim.run_for(2_000, 100).await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    assert_eq!(*sim.invoker.revisions.lock().unwrap(), [1, 2]);
    let stamped: Vec<Option<u32>> = sim
        .store
        .history(&id, 0)
        .unwrap()
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                RecordKind::AttemptFailed { .. } | RecordKind::Transition { .. }
            )
        })
        .map(|r| r.bindings)
        .collect();
    assert_eq!(stamped, [Some(1), Some(2)]);
    // The same deploy again changes nothing.
    let again = sim.engine.deploy(request(ONE, swapped)).await.unwrap();
    assert_eq!((again.revision, again.new_revision), (2, false));
}

#[tokio::test]
async fn a_deploy_that_leaves_an_action_unbound_is_refused_and_writes_nothing() {
    let sim = Sim::new(ONE, "");
    let err = sim
        .engine
        .deploy(request(&ONE.replace("version: 1", "version: 2"), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DeployRefused(_)), "{err}");
    assert!(err.to_string().contains("call_api"), "{err}");
    assert_eq!(sim.store.process("one", 2).unwrap(), None);
}

#[tokio::test]
async fn work_without_bindings_stays_queued_until_a_deploy() {
    // A clock and an invoker from a world; a store with the process but no
    // bindings at all.
    let sim = Sim::new(ONE, "");
    let doc = weft_model::source::load("p.yaml", ONE, weft_model::Format::Yaml).unwrap();
    let p = weft_model::validate::process(&doc).unwrap();
    let bare = Arc::new(MemStore::new());
    bare.put_process(&weft_store::ProcessRecord {
        name: p.name.clone(),
        version: p.version,
        definition: p.definition.clone(),
        deployed_at: T0,
    })
    .unwrap()
    .unwrap();
    let engine = Engine::new(
        bare.clone(),
        sim.invoker.clone(),
        sim.clock.clone(),
        EngineOptions::default(),
    );
    let id = engine.start("one", None, json!({})).await.unwrap();
    for _ in 0..5 {
        engine.settle().await;
        sim.clock.advance(weft_model::Span(10_000));
    }
    engine.settle().await;
    assert!(sim.invoker.calls_of("call_api").is_empty());
    let inst = bare.instance(&id).unwrap().unwrap();
    assert_eq!(inst.status, Status::Running, "nothing failed");
    assert_eq!(bare.outbox_of(&id).unwrap().len(), 1, "still queued");
    let bindings = "plugins: { p: /p.wasm }\nactions:\n  call_api: { plugin: p }\n";
    engine.deploy(request(ONE, bindings)).await.unwrap();
    engine.settle().await;
    assert_eq!(sim.invoker.calls_of("call_api").len(), 1);
    assert_eq!(
        bare.instance(&id).unwrap().unwrap().status,
        Status::Succeeded
    );
}

const PENDING: &str = r#"
process: pend
version: 1
start: ask
states:
  ask:
    action: ask
    on: { done: ok }
  ok: { type: succeed }
"#;

/// Makes `action` answer `pending` with `token`, telling the receiver
/// (once) as it gives the token away, before its answer is committed.
fn hands_out_first(
    action: &str,
    token: &'static str,
    sim: &Sim,
) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (handed_out, told) = tokio::sync::mpsc::unbounded_channel::<()>();
    let handed_out = std::sync::Mutex::new(Some(handed_out));
    sim.on(
        action,
        Arc::new(move |_ctx| {
            if let Some(tx) = handed_out.lock().unwrap().take() {
                let _ = tx.send(());
            }
            Box::pin(async move {
                tokio::task::yield_now().await;
                StepOutcome::Pending {
                    token: token.into(),
                }
            })
        }),
    );
    told
}

#[tokio::test]
async fn a_completion_racing_the_pending_commit_is_not_lost() {
    let sim = Sim::new(PENDING, "");
    let mut told = hands_out_first("ask", "tok-7", &sim);
    let engine = sim.engine.clone();
    let completer = tokio::spawn(async move {
        told.recv().await;
        engine
            .complete("tok-7", Completion::Done(json!({"answer": 42})))
            .await
    });
    let id = sim.engine.start("pend", None, json!({})).await.unwrap();
    let completed = completer.await.unwrap();
    assert_eq!(completed.unwrap(), id);
    sim.engine.settle().await;
    let inst = sim.instance(&id);
    assert_eq!(inst.status, Status::Succeeded);
    // A token completes once.
    let again = sim
        .engine
        .complete("tok-7", Completion::Done(json!(1)))
        .await;
    assert!(matches!(again, Err(Error::TokenUsed(_))), "{again:?}");
}

/// The completion's first look for the token misses it (the `pending`
/// answer is not committed yet) and returns only after that commit and the
/// end of the invocation: the completion still waits for the token and
/// applies, instead of answering "no step is waiting".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_token_lookup_races_the_commit_still_applies() {
    let flaky = Arc::new(Flaky::default());
    let sim = Sim::on_store(PENDING, "", flaky.clone());
    let mut told = hands_out_first("ask", "tok-8", &sim);
    flaky
        .late_token_read
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let engine = sim.engine.clone();
    let completer = tokio::spawn(async move {
        told.recv().await;
        engine
            .complete("tok-8", Completion::Done(json!({"answer": 8})))
            .await
    });
    let id = sim.engine.start("pend", None, json!({})).await.unwrap();
    assert_eq!(completer.await.unwrap().unwrap(), id);
    sim.engine.settle().await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
}

#[tokio::test]
async fn a_token_taken_by_another_step_fails_the_second_step_as_an_adapter_error() {
    let process = PENDING.replace("on: { done: ok }", "on: { done: ok, error: broken }")
        + "  broken: { type: fail }\n";
    let sim = Sim::new(&process, "");
    sim.on(
        "ask",
        script(|_| StepOutcome::Pending {
            token: "same".into(),
        }),
    );
    let a = sim.start(json!({})).await;
    let b = sim.start(json!({})).await;
    assert_eq!(sim.instance(&a).status, Status::Running);
    let inst = sim.instance(&b);
    assert_eq!(inst.status, Status::Failed);
    let history = kinds(&*sim.store, &b);
    assert!(
        history.contains(&"error.adapter->broken".to_owned()),
        "{history:?}"
    );
    let error = inst.error.expect("failed with an error");
    assert!(
        error.message.contains("already in use"),
        "{}",
        error.message
    );
}

const SLOW: &str = r#"
process: slow
version: 1
start: work
states:
  work:
    action: work
    on: { done: ok }
  ok: { type: succeed }
"#;

#[tokio::test]
async fn a_step_cancelled_while_its_recovered_invocation_waits_is_never_invoked() {
    let mut sim = Sim::new(SLOW, "");
    sim.on("work", slow(3_600_000, done(json!(1))));
    // More unfinished steps than a restart carries out at once.
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(sim.engine.start("slow", None, json!({})).await.unwrap());
    }
    sim.engine.settle().await;
    sim.on("work", slow(1_000, done(json!(1))));
    sim.invoker.calls.lock().unwrap().clear();
    sim.reboot().await;
    sim.engine.settle().await;
    let called = |id: &weft_model::InstanceId| {
        sim.invoker
            .calls_of("work")
            .iter()
            .any(|c| c.key.starts_with(id.as_str()))
    };
    assert_eq!(sim.invoker.calls_of("work").len(), 256, "a slot each");
    let last = ids.iter().find(|id| !called(id)).unwrap().clone();
    sim.engine.cancel(&last, false).await.unwrap();
    sim.run_for(5_000, 500).await;
    assert_eq!(sim.instance(&last).status, Status::Cancelled);
    assert!(!called(&last), "a cancelled step is never invoked");
    let done = ids
        .iter()
        .filter(|id| sim.instance(id).status == Status::Succeeded)
        .count();
    assert_eq!(done, 299);
}

const NAP: &str = r#"
process: nap
version: 1
start: nap
states:
  nap:
    type: wait
    wait: { for: 1s }
    on: { elapsed: ok }
  ok: { type: succeed }
"#;

#[tokio::test]
async fn failing_timers_are_retried_with_backoff_and_do_not_starve_others() {
    let flaky = Arc::new(Flaky::default());
    let sim = Sim::on_store(NAP, "", flaky.clone());
    let mut bad = Vec::new();
    for _ in 0..600 {
        bad.push(sim.engine.start("nap", None, json!({})).await.unwrap());
    }
    sim.clock.advance(weft_model::Span(10));
    let good = sim.engine.start("nap", None, json!({})).await.unwrap();
    flaky.unreadable.lock().unwrap().extend(bad.iter().cloned());
    sim.engine.settle().await;
    sim.advance(1_100).await;
    assert_eq!(sim.instance(&good).status, Status::Succeeded);
    // The failing ones are tried again, with backoff, not in a loop: after
    // 10 s each has been tried a handful of times, and all are still due.
    sim.run_for(10_000, 100).await;
    assert!(
        sim.engine.trouble().borrow().is_some(),
        "the trouble is told"
    );
    for id in &bad {
        assert_eq!(
            flaky.inner.instance(id).unwrap().unwrap().status,
            Status::Waiting
        );
    }
    // Once the records can be read, they fire.
    flaky.unreadable.lock().unwrap().clear();
    sim.run_for(31_000, 1_000).await;
    for id in &bad {
        assert_eq!(sim.instance(id).status, Status::Succeeded);
    }
}

#[tokio::test]
async fn an_outcome_the_store_cannot_take_is_retried_until_it_can() {
    let flaky = Arc::new(Flaky::default());
    let sim = Sim::on_store(SLOW, "", flaky.clone());
    sim.on("work", slow(1_000, done(json!({"n": 1}))));
    let id = sim.start(json!({})).await;
    // The disk fills while the step runs.
    flaky.commits_fail.store(true, Ordering::SeqCst);
    sim.run_for(3_000, 100).await;
    let trouble = sim.engine.trouble().borrow().clone();
    assert!(
        trouble
            .as_deref()
            .is_some_and(|t| t.contains("no space left on device")),
        "{trouble:?}"
    );
    assert_eq!(
        flaky.inner.instance(&id).unwrap().unwrap().status,
        Status::Running
    );
    let tries = flaky.failed_commits.load(Ordering::SeqCst);
    assert!(
        (2..=10).contains(&tries),
        "backoff, not a loop: {tries} tries"
    );
    // Space comes back.
    flaky.commits_fail.store(false, Ordering::SeqCst);
    sim.run_for(31_000, 1_000).await;
    assert_eq!(sim.instance(&id).status, Status::Succeeded);
    assert!(
        sim.engine.trouble().borrow().is_none(),
        "the trouble is over"
    );
    assert_eq!(sim.invoker.calls_of("work").len(), 1, "invoked once");
}

const REPORT: &str = r#"
process: report
version: 1
start: make
schedule:
  - { cron: "0 0 * * * *" }
states:
  make:
    action: make
    on: { done: ok }
  ok: { type: succeed }
"#;

#[tokio::test]
async fn a_schedule_mark_moves_only_after_its_firing_is_recorded() {
    let flaky = Arc::new(Flaky::default());
    let sim = Sim::on_store(REPORT, "", flaky.clone());
    sim.engine.run_schedules().await.unwrap();
    sim.engine.settle().await;
    let before = flaky.schedule_mark("report", 0).unwrap();
    flaky.commits_fail.store(true, Ordering::SeqCst);
    // Past the next full hour: the firing cannot be recorded.
    sim.run_for(3_700_000, 60_000).await;
    assert_eq!(flaky.schedule_mark("report", 0).unwrap(), before);
    assert!(
        flaky
            .inner
            .ids_with_status(Status::Succeeded)
            .unwrap()
            .is_empty()
    );
    flaky.commits_fail.store(false, Ordering::SeqCst);
    sim.run_for(60_000, 1_000).await;
    let started = flaky.inner.ids_with_status(Status::Succeeded).unwrap();
    assert_eq!(started.len(), 1, "the firing happened once it could");
    assert!(flaky.schedule_mark("report", 0).unwrap() > before);
}

#[tokio::test]
async fn list_pages_through_instances_with_filters() {
    let sim = Sim::new(APPROVAL, "");
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(sim.engine.start("approval", None, json!({})).await.unwrap());
    }
    sim.engine.settle().await;
    sim.engine.cancel(&ids[3], false).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = sim
            .engine
            .list(PageQuery {
                status: Some(Status::Waiting),
                after: after.clone(),
                limit: 10,
                ..PageQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|s| s.id.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.remove(3);
    expected.sort();
    assert_eq!(seen, expected);
    let cancelled = sim
        .engine
        .list(PageQuery {
            status: Some(Status::Cancelled),
            limit: 10,
            ..PageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].state, "review");

    // Every status at once, a few at a time: the indexes merge in id order.
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = sim
            .engine
            .list(PageQuery {
                after: after.clone(),
                limit: 3,
                ..PageQuery::default()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        all.extend(page.items.iter().map(|s| s.id.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    // A filter that skips everything walks every batch and ends empty.
    let none = sim
        .engine
        .list(PageQuery {
            process: Some("other".into()),
            limit: 2,
            ..PageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((none.items.len(), none.next), (0, None));
    let one = sim
        .engine
        .list(PageQuery {
            state: Some("review".into()),
            status: Some(Status::Cancelled),
            limit: 1,
            ..PageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((one.items.len(), one.next), (1, None));
}

#[tokio::test]
async fn resolve_finds_ids_and_business_keys_and_says_what_is_wrong() {
    let sim = Sim::new(APPROVAL, "");
    let started = sim
        .engine
        .start_keyed("approval", None, json!({}), Some("order-9".into()))
        .await
        .unwrap();
    assert_eq!(sim.engine.resolve("order-9").await.unwrap(), started.id);
    assert_eq!(
        sim.engine
            .resolve(&started.id.as_str().to_lowercase())
            .await
            .unwrap(),
        started.id
    );
    let err = sim.engine.resolve("nope").await.unwrap_err();
    assert!(matches!(err, Error::UnknownTarget(_)), "{err}");
}

#[tokio::test]
async fn payloads_nested_too_deep_are_refused_where_they_enter() {
    let sim = Sim::new(APPROVAL, "");
    let id = sim.start(json!({})).await;
    let mut deep = json!(1);
    for _ in 0..126 {
        deep = json!({ "by": deep });
    }
    let err = sim
        .engine
        .signal(&id, "approve", deep.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(sim.instance(&id).status, Status::Waiting, "nothing changed");
    let err = sim
        .engine
        .start("approval", None, json!({ "x": deep }))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn a_damaged_outbox_entry_is_left_alone_and_the_others_resume() {
    let flaky = Arc::new(Flaky::default());
    let mut sim = Sim::on_store(SLOW, "", flaky.clone());
    sim.on("work", slow(3_600_000, done(json!(1))));
    let a = sim.start(json!({})).await;
    let b = sim.start(json!({})).await;
    flaky.damaged_outbox.lock().unwrap().insert(a.clone());
    sim.on("work", slow(1_000, done(json!(1))));
    sim.reboot().await;
    let trouble = sim.engine.trouble().borrow().clone().unwrap_or_default();
    assert!(
        trouble.contains("left alone") && trouble.contains(a.as_str()),
        "{trouble}"
    );
    sim.advance(2_000).await;
    assert_eq!(sim.instance(&b).status, Status::Succeeded);
    assert_eq!(
        sim.instance(&a).status,
        Status::Running,
        "left where it was"
    );
}

const RUNAWAY: &str = r#"
process: runaway
version: 1
start: work
states:
  work:
    action: work
    on:
      done:
        - if: 'def c(n): if n > 0 then 1 + c(n - 1) else 0 end; c(.count) > 10'
          to: big
        - to: small
      error.mapping: mapped
  big: { type: succeed }
  small: { type: succeed }
  mapped: { type: fail, error: mapped }
"#;

#[tokio::test]
async fn a_runaway_guard_fails_its_mapping_and_the_engine_keeps_serving() {
    let sim = Sim::new(RUNAWAY, "");
    let runaway = sim.start(json!({"count": 100_000})).await;
    let modest = sim.start(json!({"count": 20})).await;
    let inst = sim.instance(&runaway);
    assert_eq!(
        (inst.status, inst.state.as_str()),
        (Status::Failed, "mapped")
    );
    let error = kinds(&*sim.store, &runaway);
    assert!(
        error.contains(&"error.mapping->mapped".to_owned()),
        "{error:?}"
    );
    let inst = sim.instance(&modest);
    assert_eq!(
        (inst.status, inst.state.as_str()),
        (Status::Succeeded, "big")
    );
}

#[tokio::test]
async fn a_failed_timer_that_its_instance_moved_past_is_forgotten_not_spun_on() {
    let flaky = Arc::new(Flaky::default());
    let sim = Sim::on_store(NAP, "", flaky.clone());
    let id = sim.start(json!({})).await;
    // The nap's timer falls due while the store cannot commit: it fails.
    flaky.commits_fail.store(true, Ordering::SeqCst);
    sim.advance(1_050).await;
    assert_eq!(
        flaky.inner.instance(&id).unwrap().unwrap().status,
        Status::Waiting
    );
    // The store works again, and the instance moves on before the retry.
    flaky.commits_fail.store(false, Ordering::SeqCst);
    sim.engine.cancel(&id, false).await.unwrap();
    // A timer service still waking for the dropped timer would never let
    // the engine settle.
    sim.run_for(60_000, 1_000).await;
    assert_eq!(sim.instance(&id).status, Status::Cancelled);
}

#[tokio::test]
async fn each_process_version_keeps_its_own_guard() {
    let one = "plugins: { p: /p.wasm }\nactions:\n  work: { plugin: p, concurrency: 1 }\n";
    let sim = Sim::new(SLOW, one);
    sim.on("work", slow(1_000, done(json!(1))));
    deploy_into(
        &*sim.store,
        &SLOW.replace("version: 1", "version: 2"),
        &parse_bindings(
            "plugins: { p: /p.wasm }\nactions:\n  work: { plugin: p, concurrency: 5 }\n",
        ),
        sim.clock.now(),
    );
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for _ in 0..3 {
        v1.push(sim.engine.start("slow", Some(1), json!({})).await.unwrap());
        v2.push(sim.engine.start("slow", Some(2), json!({})).await.unwrap());
    }
    sim.run_for(4_000, 100).await;
    let starts = |ids: &[weft_model::InstanceId]| {
        let mut t: Vec<u64> = sim
            .invoker
            .calls_of("work")
            .iter()
            .filter(|c| ids.iter().any(|id| c.key.starts_with(id.as_str())))
            .map(|c| Sim::since_t0(c.at))
            .collect();
        t.sort();
        t
    };
    assert_eq!(starts(&v1), [0, 1_000, 2_000], "v1: one at a time");
    assert_eq!(starts(&v2), [0, 0, 0], "v2: all at once");
}
