//! weft-model: the pure heart of weft.
//!
//! Owns the process format (YAML/JSON with `line:col` errors), validation and
//! static analysis, the bindings format and its checks against plugin
//! manifests, jq expressions, and the interpreter
//! `(process, instance, event, now) -> (instance', records, commands)`.
//!
//! It must not depend on tokio, sled or wasmtime, and must not read a clock or
//! do I/O: time and data come in as arguments.

pub mod analysis;
pub mod bindings;
pub mod def;
pub mod diagram;
mod error;
pub mod expr;
pub mod instance;
pub mod interpret;
pub mod limits;
mod nesting;
pub mod process;
mod record;
pub mod retry;
pub mod schedule;
pub mod schema;
pub mod source;
mod step_key;
pub mod testing;
pub mod time;
pub mod validate;

pub use bindings::{
    ActionDefaults, ActionInfo, Binding, Bindings, BreakerPolicy, Grants, Limits, Manifest,
    NoDefaults, Rate,
};
pub use error::{Error, Result};
pub use expr::{Expr, PathExpr};
pub use instance::{
    ActiveStep, Command, Compensable, Event, Failure, Fan, Instance, InstanceError, InstanceId,
    Invoke, Overdue, ParkedOn, Phase, Record, RecordKind, Slot, Status, StepOutcome, Timer,
    TimerKind,
};
pub use interpret::{Applied, Refused, Rejected};
pub use process::{Process, State, StateKind};
pub use retry::{Jitter, RetryPolicy};
pub use source::{Diagnostic, Diagnostics, Document, Format, Pos};
pub use step_key::StepKey;
pub use time::{Millis, Span};

/// Loads and validates a process from its text.
pub fn parse_process(file: &str, text: &str) -> Result<Process, Diagnostics> {
    let doc = source::load(file, text, Format::from_path(file))?;
    validate::process(&doc)
}
