//! Errors as the API answers them: a status, a stable `code` a client can
//! branch on, and a message a person can act on.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use weft_core::Error;

/// An error: a stable `code` to branch on, a message to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    #[schema(ignore)]
    pub status: StatusCode,
    /// Stable: `bad_request`, `bad_json`, `too_large`, `unauthorized`,
    /// `not_found`, `process_not_found`, `instance_not_found`,
    /// `token_not_found`, `plugin_not_found`, `token_used`, `conflict`,
    /// `refused`, `deploy_refused`, `invalid_definition`, `invalid_plugin`,
    /// `not_supported`, `swap_refused`, `target_not_found`, `cross_site`,
    /// `unavailable`, `elsewhere` (only when no node could be reached to
    /// forward to), `internal`.
    #[schema(value_type = String)]
    pub code: &'static str,
    pub message: String,
    /// For a definition that does not validate: every problem, as
    /// `file:line:col: what is wrong (hint)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The instance is another node's: the request is forwarded there.
    #[serde(skip)]
    #[schema(ignore)]
    pub elsewhere: Option<weft_model::InstanceId>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
            elsewhere: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Well-formed, but asks for something that cannot be (two fields that
    /// exclude each other, a plugin that is not base64): 422.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(&self)).into_response();
        if let Some(id) = self.elsewhere {
            r.extensions_mut().insert(crate::forward::Elsewhere(id));
        }
        r
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        // A commit refused because another node took the instance's
        // partition meanwhile: the request belongs there, like one the
        // engine turned away before trying.
        let e = match e {
            Error::Conflict(weft_store::Conflict::Fenced { instance, .. }) => {
                Error::Elsewhere(instance)
            }
            e => e,
        };
        let (status, code) = match &e {
            Error::NoProcess(_) | Error::NoVersion { .. } => (S::NOT_FOUND, "process_not_found"),
            Error::NoInstance(_) | Error::UnknownTarget(_) => (S::NOT_FOUND, "instance_not_found"),
            Error::NoToken(_) => (S::NOT_FOUND, "token_not_found"),
            Error::NoPlugin(_) => (S::NOT_FOUND, "plugin_not_found"),
            Error::TokenUsed(_) => (S::CONFLICT, "token_used"),
            Error::Conflict(_) | Error::AmbiguousKey { .. } => (S::CONFLICT, "conflict"),
            Error::Refused(..) => (S::CONFLICT, "refused"),
            Error::InputNotObject => (S::UNPROCESSABLE_ENTITY, "bad_request"),
            Error::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "too_large"),
            Error::DeployRefused(_) => (S::UNPROCESSABLE_ENTITY, "deploy_refused"),
            Error::SwapRefused(_) => (S::UNPROCESSABLE_ENTITY, "swap_refused"),
            Error::NoTarget(_) => (S::NOT_FOUND, "target_not_found"),
            Error::Stopped | Error::WriterGone | Error::Store(_) | Error::NoPartition => {
                (S::SERVICE_UNAVAILABLE, "unavailable")
            }
            Error::Elsewhere(_) => (S::MISDIRECTED_REQUEST, "elsewhere"),
            Error::BadStoredProcess { .. } => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::error!("answered {status}: {e}");
        }
        let mut a = ApiError::new(status, code, e.to_string());
        if let Error::Elsewhere(id) = e {
            a.elsewhere = Some(id);
        }
        a
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
