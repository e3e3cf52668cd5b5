//! The errors of weft-model's fallible functions: text that does not parse
//! (durations, sizes, rates, times, cron expressions) and expressions that
//! fail on the data they are given.
//!
//! Each displays as exactly the message it carries: these messages reach
//! users inside diagnostics and failure records, which say where it happened.

/// What went wrong in a weft-model function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Text that should be a `what` (a duration, a size, a rate, a time, a
    /// cron expression) is not one.
    #[error("{message}")]
    Syntax { what: &'static str, message: String },
    /// Evaluating a jq expression gave an error, no value, or ran out of its
    /// budget; the message quotes the expression.
    #[error("{message}")]
    Eval { expr: String, message: String },
    /// A value could not be stored at an output path in the data.
    #[error("{message}")]
    Store { path: String, message: String },
}

impl Error {
    pub(crate) fn syntax(what: &'static str, message: impl Into<String>) -> Self {
        Error::Syntax {
            what,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
