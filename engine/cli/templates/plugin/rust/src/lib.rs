//! The `{{name}}` adapter: a WebAssembly component implementing the
//! `weft:plugin` world in `wit/plugin.wit`.
//!
//! Action `greet`, input `{"name": "ada"}`, answers `{"greeting": "hello, ada"}`.
//! Config (the binding's `config:`):
//! - `blocked`: names that fail with the typed error `blocked`, which a
//!   process routes on as `error.blocked`;
//! - `flaky_attempts` (default 0): attempts up to this number fail
//!   retryably, as a busy service would, so the retry policy is seen working.
//!
//! The logic is in [`run`], a plain function `cargo test` runs natively; the
//! host's imports (`log`, `heartbeat`, `retry_after`) exist only inside a
//! component, so they are called from [`Component::invoke`] alone.

use serde_json::{Value, json};

mod bindings {
    // The generated glue passes an invocation's fields one by one.
    #![allow(clippy::too_many_arguments)]
    wit_bindgen::generate!({ path: "wit", world: "adapter" });
}

use bindings::weft::plugin::host::{self, Level};
use bindings::weft::plugin::types::{ActionInfo, TypedError};
use bindings::{Failure, Guest, Invocation, Manifest, Outcome};

struct Component;

impl Guest for Component {
    fn describe() -> Manifest {
        Manifest {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: vec![ActionInfo {
                name: "greet".into(),
                // The same input gives the same greeting: safe to run twice.
                idempotent: true,
                compensated_by: None,
                errors: vec!["blocked".into()],
            }],
        }
    }

    fn invoke(inv: Invocation) -> Result<Outcome, Failure> {
        let answer = run(&inv);
        let (level, said) = match &answer {
            Ok(value) => (Level::Debug, format!("done {value}")),
            // A typed error is an answer the process expects, not a fault.
            Err(Failure::Error(e)) => (Level::Info, format!("error {}: {}", e.kind, e.message)),
            Err(Failure::Retryable(m)) => (Level::Warn, format!("retryable: {m}")),
            Err(Failure::Fatal(m)) => (Level::Error, format!("fatal: {m}")),
        };
        host::log(
            level,
            &format!("{} attempt {}: {said}", inv.action, inv.attempt),
        );
        // A service that says when to come back (HTTP 429 with Retry-After)
        // would call `host::retry_after(millis)` before failing retryably.
        answer.map(|value| Outcome::Done(value.to_string()))
    }
}

bindings::export!(Component with_types_in bindings);

/// Carries out one invocation: the JSON result, or why there is none.
pub fn run(inv: &Invocation) -> Result<Value, Failure> {
    let input = parse("input", &inv.input)?;
    let config = parse("config", &inv.config)?;
    match inv.action.as_str() {
        "greet" => greet(&input, &config, inv.attempt),
        other => Err(Failure::Fatal(format!("{{name}} has no action '{other}'"))),
    }
}

fn greet(input: &Value, config: &Value, attempt: u32) -> Result<Value, Failure> {
    let flaky = match config.get("flaky_attempts") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            Failure::Fatal(format!(
                "config 'flaky_attempts' must be a whole number, not {v}"
            ))
        })?,
    };
    if u64::from(attempt) <= flaky {
        return Err(Failure::Retryable(format!(
            "busy (attempt {attempt} of {flaky} set to fail)"
        )));
    }
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            Failure::Fatal("greet needs a non-empty string 'name' in its input".into())
        })?;
    let blocked = config
        .get("blocked")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|b| b.as_str() == Some(name)));
    if blocked {
        return Err(Failure::Error(TypedError {
            kind: "blocked".into(),
            message: format!("{name} is on the blocked list"),
        }));
    }
    Ok(json!({ "greeting": format!("hello, {name}") }))
}

/// An empty text is an empty object: the engine sends `{}` when a state maps
/// no input, and a hand-made call may send nothing.
fn parse(what: &str, text: &str) -> Result<Value, Failure> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(text).map_err(|e| Failure::Fatal(format!("{what} is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(input: Value, config: Value, attempt: u32) -> Result<Value, Failure> {
        run(&Invocation {
            action: "greet".into(),
            input: input.to_string(),
            config: config.to_string(),
            instance_id: "test".into(),
            idempotency_key: "test/greet/1".into(),
            attempt,
            last_heartbeat: None,
        })
    }

    #[test]
    fn greet_with_a_name_answers_a_greeting() {
        let out = call(json!({"name": "ada"}), json!({}), 1);
        assert_eq!(out.ok(), Some(json!({"greeting": "hello, ada"})));
    }

    #[test]
    fn greet_with_a_blocked_name_fails_with_the_typed_error() {
        let out = call(
            json!({"name": "mallory"}),
            json!({"blocked": ["mallory"]}),
            1,
        );
        assert!(
            matches!(&out, Err(Failure::Error(e)) if e.kind == "blocked"),
            "{out:?}"
        );
    }

    #[test]
    fn greet_on_a_flaky_attempt_fails_retryably_then_succeeds() {
        let config = json!({"flaky_attempts": 1});
        let first = call(json!({"name": "ada"}), config.clone(), 1);
        assert!(matches!(first, Err(Failure::Retryable(_))), "{first:?}");
        assert!(call(json!({"name": "ada"}), config, 2).is_ok());
    }

    #[test]
    fn greet_without_a_name_fails_fatally() {
        let out = call(json!({}), json!({}), 1);
        assert!(matches!(out, Err(Failure::Fatal(_))), "{out:?}");
    }

    #[test]
    fn an_unknown_action_fails_fatally() {
        let out = run(&Invocation {
            action: "wave".into(),
            input: "{}".into(),
            config: "{}".into(),
            instance_id: "test".into(),
            idempotency_key: "test/wave/1".into(),
            attempt: 1,
            last_heartbeat: None,
        });
        assert!(matches!(out, Err(Failure::Fatal(_))), "{out:?}");
    }
}
