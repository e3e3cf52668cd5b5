//! Static guarantees on fixtures: one per warning, each checked at its
//! `line:col` with its message; a saga that covers its compensations gives
//! none; worst-case durations against hand-computed values.

#![allow(clippy::unwrap_used)] // an unwrap that fails is a test that fails

use weft_model::analysis::{self, Context, duration};
use weft_model::source::{Format, load};
use weft_model::{NoDefaults, Span, parse_process};

fn warnings(text: &str, declared: &dyn Fn(&str) -> Option<Vec<String>>) -> Vec<String> {
    let p = parse_process("p.yaml", text).unwrap_or_else(|d| panic!("{d}"));
    let doc = load("p.yaml", text, Format::Yaml).unwrap();
    let cx = Context {
        defaults: &NoDefaults,
        bindings: None,
        declared_errors: declared,
    };
    analysis::check(&doc, &p, &cx)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn none(_: &str) -> Option<Vec<String>> {
    None
}

const UNCOVERED: &str = r#"process: saga
version: 1
start: reserve
states:
  reserve:
    action: reserve
    compensate: release
    on: { done: charge, error: failed }
  charge:
    action: charge
    on: { done: ok, error: failed }
  ok: { type: succeed }
  failed: { type: fail }
"#;

#[test]
fn a_failure_after_a_compensable_step_without_a_compensate_state_is_named_with_its_path() {
    let w = warnings(UNCOVERED, &none);
    assert_eq!(
        w,
        [
            "p.yaml:11:28: warning: the path reserve -done-> charge -error-> failed ends the instance failed after 'reserve' completed, and does not undo it (route the failure through a `type: compensate` state, which undoes every completed step)"
        ]
    );
}

#[test]
fn a_saga_that_undoes_what_it_must_gives_no_warning() {
    let covered = UNCOVERED
        .replace(
            "on: { done: ok, error: failed }",
            "on: { done: ok, error: undo }",
        )
        .replace(
            "  failed: { type: fail }",
            "  undo: { type: compensate, then: failed }\n  failed: { type: fail }",
        );
    assert_eq!(warnings(&covered, &none), Vec::<String>::new());
}

#[test]
fn steps_completed_inside_branches_count_too() {
    let text = r#"process: fan
version: 1
start: both
states:
  both:
    type: parallel
    branches:
      pay:
        start: charge
        states:
          charge: { action: charge, compensate: refund, on: { done: paid } }
          paid: { type: succeed }
      ship:
        start: send
        states:
          send: { action: send, on: { done: sent } }
          sent: { type: succeed }
    on: { done: ok, error: failed }
  ok: { type: succeed }
  failed: { type: fail }
"#;
    let w = warnings(text, &none);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("p.yaml:18:28:") && w[0].contains("after 'pay/charge' completed"),
        "{w:?}"
    );
}

#[test]
fn a_declared_error_nothing_routes_and_a_wait_that_can_last_for_ever() {
    let text = r#"process: w
version: 1
start: reserve
states:
  reserve:
    action: reserve
    on: { done: hold, error.out_of_stock: gone }
  hold:
    type: wait
    on: { go: ok }
  ok: { type: succeed }
  gone: { type: fail }
"#;
    let declared =
        |a: &str| (a == "reserve").then(|| vec!["out_of_stock".into(), "blocked".into()]);
    let w = warnings(text, &declared);
    assert_eq!(
        w,
        [
            "p.yaml:5:3: warning: 'reserve' can fail with 'blocked' (its adapter declares it for 'reserve'), and no transition routes it: the instance would park (add `error.blocked: <state>` or a catch-all `error: <state>`)",
            "p.yaml:8:3: warning: 'hold' waits for go with no timeout and no sla: an instance can wait here for ever unnoticed (add `timeout:` (and route `timeout`), or an `sla:` to have it flagged)",
        ]
    );
}

#[test]
fn a_path_and_a_state_that_can_outlast_their_sla() {
    let text = r#"process: slow
version: 1
sla: 1m
start: charge
states:
  charge:
    action: charge
    timeout: 10s
    retry: { max_attempts: 4, initial: 1s, factor: 2, max_delay: 3s }
    sla: 30s
    on: { done: ship }
  ship:
    action: ship
    timeout: 20s
    on: { done: ok }
  ok: { type: succeed }
"#;
    let w = warnings(text, &none);
    assert_eq!(
        w,
        [
            "p.yaml:3:6: warning: the path charge → ship → ok can take 1m6s, over the process sla of 1m (shorten timeouts or retries on that path, or raise the sla)",
            "p.yaml:10:10: warning: 'charge' can take 46s, over its sla of 30s (its retries and timeouts allow more than the sla)",
        ]
    );
}

fn worst(text: &str, state: &str) -> duration::Worst {
    let p = parse_process("p.yaml", text).unwrap();
    duration::state(&p, &p, state, &NoDefaults)
}

fn span(s: &str) -> duration::Worst {
    duration::Worst::Bounded(Span::parse(s).unwrap())
}

#[test]
fn worst_cases_match_hand_computed_values() {
    // 5 attempts of 2s; backoffs 500ms, 1s, 2s, then 2s (max_delay).
    let retried = r#"process: r
version: 1
start: a
states:
  a:
    action: a
    timeout: 2s
    retry: { max_attempts: 5, initial: 500ms, factor: 2, max_delay: 2s, jitter: full }
    on: { done: ok }
  ok: { type: succeed }
"#;
    assert_eq!(worst(retried, "a"), span("15500ms"));
    // The same, cut by a deadline.
    let cut = retried.replace("    timeout: 2s\n", "    timeout: 2s\n    deadline: 9s\n");
    assert_eq!(worst(&cut, "a"), span("9s"));
    // No retry and no timeout anywhere: one attempt of the default 30s.
    let plain = "process: p\nversion: 1\nstart: a\nstates:\n  a: { action: a, on: { done: ok } }\n  ok: { type: succeed }\n";
    assert_eq!(worst(plain, "a"), span("30s"));

    // Parallel: the slowest branch (3 × 10s + 1s + 2s = 33s against 20s).
    let fan = r#"process: f
version: 1
start: both
states:
  both:
    type: parallel
    branches:
      slow:
        start: s
        states:
          s: { action: s, timeout: 10s, retry: { max_attempts: 3, initial: 1s }, on: { done: end } }
          end: { type: succeed }
      quick:
        start: q
        states:
          q: { action: q, timeout: 20s, on: { done: end } }
          end: { type: succeed }
    on: { done: ok }
  ok: { type: succeed }
"#;
    assert_eq!(worst(fan, "both"), span("33s"));

    // Map over 7 literal items, 3 at a time: 3 waves of 5s.
    let map = r#"process: m
version: 1
start: each
states:
  each:
    type: map
    items: '[1, 2, 3, 4, 5, 6, 7]'
    max_concurrency: 3
    branch:
      start: work
      states:
        work: { action: work, timeout: 5s, on: { done: end } }
        end: { type: succeed }
    on: { done: ok }
  ok: { type: succeed }
"#;
    assert_eq!(worst(map, "each"), span("15s"));
    // Over the data: no bound, and why.
    let data = map.replace("'[1, 2, 3, 4, 5, 6, 7]'", ".files");
    assert_eq!(
        worst(&data, "each"),
        duration::Worst::Unbounded(
            "'each' runs a branch per item of its data (each up to 5s, 3 at a time)".into()
        )
    );
}

#[test]
fn loops_and_waits_without_timeout_have_no_bound_and_say_why() {
    let text = r#"process: l
version: 1
start: a
states:
  a: { action: a, timeout: 1s, on: { done: b } }
  b:
    type: wait
    timeout: 1h
    on: { again: a, timeout: ok }
  ok: { type: succeed }
"#;
    let p = parse_process("p.yaml", text).unwrap();
    let (w, _) = duration::path(&p, &p, "a", &NoDefaults);
    assert_eq!(
        w,
        duration::Worst::Unbounded("it can loop: a → b → a".into())
    );
    let explained = analysis::explain(&p, "b", &NoDefaults).unwrap();
    assert!(explained.contains("on again -> a"), "{explained}");
    assert!(
        explained.contains("one visit takes at most: 1h"),
        "{explained}"
    );
}

#[test]
fn a_retry_whose_failure_loops_back_is_a_storm() {
    let text = r#"process: storm
version: 1
start: charge
states:
  charge:
    action: charge
    retry: { max_attempts: 5, initial: 1s }
    on: { done: ok, error: cool_off }
  cool_off:
    type: wait
    wait: { for: 1m }
    on: { elapsed: charge }
  ok: { type: succeed }
"#;
    let w = warnings(text, &none);
    assert_eq!(
        w,
        [
            "p.yaml:8:28: warning: 'charge' retries up to 5 times, and its failure leads back to it (charge → cool_off → charge): attempts of 'charge' multiply with every round, without bound (route the final failure elsewhere, or count the rounds in the data and stop)"
        ]
    );
    // Once, with no retries of its own, the loop is the retry policy: fine.
    let once = text.replace("    retry: { max_attempts: 5, initial: 1s }\n", "");
    assert_eq!(warnings(&once, &none), Vec::<String>::new());
}

#[test]
fn a_map_wider_than_its_actions_rate_limit_waits_in_line() {
    let text = r#"process: wide
version: 1
start: each
states:
  each:
    type: map
    items: .files
    max_concurrency: 20
    branch:
      start: load
      states:
        load: { action: load, on: { done: end } }
        end: { type: succeed }
    on: { done: ok }
  ok: { type: succeed }
"#;
    let p = parse_process("p.yaml", text).unwrap();
    let doc = load("p.yaml", text, Format::Yaml).unwrap();
    let btext = "plugins: { x: x.wasm }\nactions:\n  load: { plugin: x, rate_limit: { rate: 10/s, burst: 5 } }\n";
    let bdoc = load("b.yaml", btext, Format::Yaml).unwrap();
    let b = weft_model::bindings::bindings(&bdoc, std::path::Path::new(".")).unwrap();
    let cx = Context {
        defaults: &b,
        bindings: Some(&b),
        declared_errors: &none,
    };
    let w: Vec<String> = analysis::check(&doc, &p, &cx)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        w,
        [
            "p.yaml:5:3: warning: 'each' starts up to 20 branches at once, each invoking 'load' (up to 1 attempts), over its rate limit of 10 per 1s (burst 5): they wait in line for the limiter (lower max_concurrency to the burst, or raise the binding's rate limit)"
        ]
    );
}

/// A process may chain a great many states: the longest path is found
/// without recursion (this chain overflowed the stack when it was
/// recursive), and the names are checked without a scan per target.
#[test]
fn a_very_long_chain_is_analysed_without_overflowing_the_stack() {
    let n = 60_000;
    let mut text = String::from("process: chain\nversion: 1\nsla: 1h\nstart: s0\nstates:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  s{i}: {{ action: a, timeout: 1s, on: {{ done: s{} }} }}\n",
            i + 1
        ));
    }
    text.push_str(&format!("  s{n}: {{ type: succeed }}\n"));
    let p = parse_process("p.yaml", &text).unwrap();
    let (worst, path) = duration::path(&p, &p, "s0", &NoDefaults);
    assert_eq!(worst, duration::Worst::Bounded(Span::from_secs(n)));
    assert_eq!(path.len(), n as usize + 1);
}
