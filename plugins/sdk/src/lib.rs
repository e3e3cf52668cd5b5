//! Write a weft adapter in a few lines of Rust.
//!
//! An adapter is a WebAssembly component implementing the `weft:plugin` world
//! (see `wit/plugin.wit`). This crate hides the generated bindings behind a small
//! [`Adapter`] trait with JSON values, and the [`adapter!`] macro exports it:
//!
//! ```ignore
//! use weft_plugin_sdk::{Action, Adapter, Call, Failure, Manifest, Reply, json};
//!
//! struct Greeter;
//!
//! impl Adapter for Greeter {
//!     fn manifest() -> Manifest {
//!         Manifest::new("greeter", env!("CARGO_PKG_VERSION")).action(Action::new("greet"))
//!     }
//!     fn invoke(call: Call) -> Result<Reply, Failure> {
//!         let name = call.input["name"].as_str().unwrap_or("world");
//!         Ok(Reply::done(json!({ "greeting": format!("hello, {name}") })))
//!     }
//! }
//!
//! weft_plugin_sdk::adapter!(Greeter);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm` it
//! writes is the component the engine loads.

// Lets generated code name this crate by its public path from inside it too.
extern crate self as weft_plugin_sdk;

pub mod simulate;

pub use serde_json::{Value, json};

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated code
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "adapter",
        pub_export_macro: true,
        export_macro_name: "__export_adapter",
        default_bindings_module: "weft_plugin_sdk::bindings",
        runtime_path: "weft_plugin_sdk::__rt::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen;
}

use bindings::weft::plugin::host;

/// One call of one action, with its JSON already parsed.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: String,
    pub input: Value,
    pub config: Value,
    pub instance_id: String,
    /// Stable across retries and restarts of one visit of a state: deduplicate
    /// side effects on it to make them happen once.
    pub idempotency_key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// What the previous attempt last reported through [`heartbeat`].
    pub last_heartbeat: Option<String>,
}

impl Call {
    /// A field of the input, falling back to the binding's config.
    pub fn setting(&self, name: &str) -> Option<&Value> {
        self.input
            .get(name)
            .filter(|v| !v.is_null())
            .or_else(|| self.config.get(name).filter(|v| !v.is_null()))
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The action finished with this result.
    Done(Value),
    /// The action finishes later: the engine parks the step until this token
    /// is completed from outside.
    Pending(String),
}

impl Reply {
    pub fn done(value: Value) -> Self {
        Reply::Done(value)
    }
}

/// Why an action did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Worth trying again later.
    Retryable(String),
    /// Will never succeed.
    Fatal(String),
    /// A domain failure the process routes on as `error.<kind>`.
    Error { kind: String, message: String },
}

impl Failure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Failure::Retryable(message.into())
    }
    pub fn fatal(message: impl Into<String>) -> Self {
        Failure::Fatal(message.into())
    }
    pub fn error(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Failure::Error {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// One action an adapter offers.
#[derive(Debug, Clone)]
pub struct Action {
    name: String,
    idempotent: bool,
    compensated_by: Option<String>,
    errors: Vec<String>,
}

impl Action {
    pub fn new(name: impl Into<String>) -> Self {
        Action {
            name: name.into(),
            idempotent: false,
            compensated_by: None,
            errors: Vec::new(),
        }
    }
    /// Running it twice with the same idempotency key has the effect of once.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
    /// The action that undoes this one.
    pub fn compensated_by(mut self, action: impl Into<String>) -> Self {
        self.compensated_by = Some(action.into());
        self
    }
    /// The error kinds this action may fail with (`error.<kind>` in a process).
    pub fn errors<I, S>(mut self, kinds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.errors.extend(kinds.into_iter().map(Into::into));
        self
    }
}

/// What an adapter says about itself.
#[derive(Debug, Clone)]
pub struct Manifest {
    name: String,
    version: String,
    actions: Vec<Action>,
}

impl Manifest {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            actions: Vec::new(),
        }
    }
    pub fn action(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }
}

/// An adapter: a manifest and a way to invoke its actions.
pub trait Adapter {
    fn manifest() -> Manifest;
    fn invoke(call: Call) -> Result<Reply, Failure>;
}

/// Severity of a [`log`] line.
pub use host::Level;

/// Writes a line to the engine's log, tagged with the plugin and instance.
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Tells the engine this invocation is still making progress. `details` is
/// kept and handed to the next attempt if this one is lost.
pub fn heartbeat(details: &str) {
    host::heartbeat(details);
}

/// Asks for the next attempt no sooner than `millis` from now, should this
/// one fail (a service's `Retry-After`, say). It replaces the retry
/// policy's backoff for that one delay.
pub fn retry_after(millis: u64) {
    host::retry_after(millis);
}

#[doc(hidden)]
pub fn __describe<A: Adapter>() -> bindings::Manifest {
    let m = A::manifest();
    bindings::Manifest {
        name: m.name,
        version: m.version,
        actions: m
            .actions
            .into_iter()
            .map(|a| bindings::weft::plugin::types::ActionInfo {
                name: a.name,
                idempotent: a.idempotent,
                compensated_by: a.compensated_by,
                errors: a.errors,
            })
            .collect(),
    }
}

#[doc(hidden)]
pub fn __invoke<A: Adapter>(
    inv: bindings::Invocation,
) -> Result<bindings::Outcome, bindings::Failure> {
    let parse = |what: &str, text: &str| -> Result<Value, Failure> {
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(text).map_err(|e| Failure::fatal(format!("{what} is not JSON: {e}")))
    };
    let call = (|| {
        Ok(Call {
            input: parse("input", &inv.input)?,
            config: parse("config", &inv.config)?,
            action: inv.action,
            instance_id: inv.instance_id,
            idempotency_key: inv.idempotency_key,
            attempt: inv.attempt,
            last_heartbeat: inv.last_heartbeat,
        })
    })();
    match call.and_then(A::invoke) {
        Ok(Reply::Done(v)) => Ok(bindings::Outcome::Done(v.to_string())),
        Ok(Reply::Pending(token)) => Ok(bindings::Outcome::Pending(token)),
        Err(Failure::Retryable(m)) => Err(bindings::Failure::Retryable(m)),
        Err(Failure::Fatal(m)) => Err(bindings::Failure::Fatal(m)),
        Err(Failure::Error { kind, message }) => Err(bindings::Failure::Error(
            bindings::weft::plugin::types::TypedError { kind, message },
        )),
    }
}

/// Exports a type implementing [`Adapter`] as this component's `weft:plugin` world.
#[macro_export]
macro_rules! adapter {
    ($ty:ty) => {
        struct __WeftAdapterExport;

        impl $crate::bindings::Guest for __WeftAdapterExport {
            fn describe() -> $crate::bindings::Manifest {
                $crate::__describe::<$ty>()
            }
            fn invoke(
                inv: $crate::bindings::Invocation,
            ) -> ::core::result::Result<$crate::bindings::Outcome, $crate::bindings::Failure> {
                $crate::__invoke::<$ty>(inv)
            }
        }

        $crate::bindings::__export_adapter!(__WeftAdapterExport with_types_in $crate::bindings);
    };
}

/// A short stable reference derived from an idempotency key, so the same visit
/// of a step always yields the same id (FNV-1a, not a security hash).
pub fn reference(prefix: &str, key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}-{:012x}", h & 0xffff_ffff_ffff)
}
