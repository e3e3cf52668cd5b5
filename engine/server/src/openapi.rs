//! The API described as OpenAPI 3.1, generated from the handlers'
//! annotations and the types they take and answer. Served at
//! `/v1/openapi.json`; the copy checked in at `api/openapi.json` is
//! compared with this one by a test, so it cannot drift.
//!
//! Request and response envelopes are the handlers' own types. The stored
//! instance, its history records and a process definition are described as
//! JSON objects: their fields are the store's, documented in ARCHITECTURE.md.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, SecurityRequirement};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use crate::ApiError;

use crate::{deploy, instances, metrics, plugins, processes, swaps};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "weft",
        description = "The HTTP API of a weft engine: deploy processes, start and drive their instances, read what happened. Errors are JSON with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::health,
        crate::ready,
        metrics::scrape,
        document,
        deploy::deploy,
        plugins::add,
        plugins::list,
        plugins::describe,
        plugins::component,
        swaps::swap,
        swaps::rollback,
        swaps::promote,
        swaps::log,
        processes::list,
        processes::latest,
        processes::versions,
        processes::version,
        instances::start,
        instances::list,
        instances::get,
        instances::history,
        instances::signal,
        instances::cancel,
        instances::redrive,
        instances::migrate,
        instances::complete,
        instances::heartbeat,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "processes", description = "Deployed process versions"),
        (name = "plugins", description = "The plugin registry: adapter components by name and version; hot swaps, canaries and rollbacks"),
        (name = "instances", description = "Running and finished instances"),
        (name = "tokens", description = "Steps whose adapter answered `pending`"),
    )
)]
pub struct ApiDoc;

/// The document as served and as checked in: pretty JSON, one trailing
/// newline.
pub fn document_text() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "health",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"),
        (status = 401, description = "A token is needed", body = crate::ApiError),
    )
)]
pub(crate) async fn document() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document_text(),
    )
}

/// A token is asked for only when the server has one (`--token-file`), so
/// an operation takes the bearer token or nothing.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

/// Where an instance stands.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a description only: the value is `weft_model::Status`
pub(crate) enum Status {
    Running,
    Succeeded,
    Failed,
    Parked,
    Cancelled,
    Waiting,
}

/// A JSON object whose fields are described elsewhere (`what`).
macro_rules! object_schema {
    ($name:ident, $what:expr) => {
        #[allow(dead_code)]
        pub(crate) struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Object))
                    .description(Some($what))
                    .into()
            }
        }
        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

object_schema!(
    StoredInstance,
    "An instance as stored: id, process, version, key, status, state, data, output, error, the step in progress, timers, overdue SLAs, seq, created_at and updated_at (ARCHITECTURE.md)."
);
object_schema!(
    HistoryRecord,
    "One history record: seq, at (ms since the epoch), branch, bindings revision and plugin (the sha256 of the component that ran an attempt), and `kind` with what happened (started, transition — with the step's input and result —, attempt_failed, ...)."
);

/// Raw bytes (an adapter component).
#[allow(dead_code)] // a description only
pub(crate) struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Binary")
    }
}

/// An SLA an instance ran past.
#[derive(ToSchema)]
#[allow(dead_code)] // a description only: the value is `weft_model::Overdue`
pub(crate) struct Overdue {
    /// The state whose sla it is; absent for the process's.
    pub state: Option<String>,
    /// The sla, in milliseconds.
    pub sla: u64,
    /// When its clock started, in ms since the epoch.
    pub since: u64,
    /// The key of the timer that flagged it.
    pub key: String,
}

/// One line of a listing.
#[derive(ToSchema)]
#[allow(dead_code)] // a description only: the value is `weft_core::Summary`
pub(crate) struct InstanceSummary {
    pub id: String,
    pub process: String,
    pub version: u32,
    pub key: Option<String>,
    pub status: Status,
    pub state: String,
    /// ms since the epoch.
    pub updated_at: u64,
    /// The SLAs it ran past.
    pub overdue: Vec<Overdue>,
}

/// A page of instances, oldest first.
#[derive(ToSchema)]
#[allow(dead_code)] // a description only: the value is `weft_core::Page`
pub(crate) struct InstancePage {
    pub items: Vec<InstanceSummary>,
    /// The `cursor` for the next page; null on the last.
    pub next: Option<String>,
}

/// A deployed process version.
#[derive(ToSchema)]
#[allow(dead_code)] // a description only: the value is `weft_store::ProcessRecord`
pub(crate) struct ProcessVersion {
    pub name: String,
    pub version: u32,
    /// The definition as written, as JSON.
    pub definition: ProcessDefinition,
    /// ms since the epoch.
    pub deployed_at: u64,
}

object_schema!(
    ProcessDefinition,
    "A process definition as written (the process format of the README), as JSON."
);

/// What any call behind the token may answer besides its own answers.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description only
pub(crate) enum Always {
    /// A token is needed, or it is not this server's (`unauthorized`).
    #[response(status = 401)]
    Unauthorized(ApiError),
    /// The store is failing (`unavailable`).
    #[response(status = 503)]
    Unavailable(ApiError),
}

/// What a call on an instance or a token may be refused with.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description only
pub(crate) enum Refusals {
    /// Bad JSON, unknown fields, or a bad path or query (`bad_json`,
    /// `bad_request`).
    #[response(status = 400)]
    BadRequest(ApiError),
    /// No such instance, process, version or token.
    #[response(status = 404)]
    NotFound(ApiError),
    /// Refused where the instance or token stands; the message says why
    /// (`refused`, `conflict`, `token_used`).
    #[response(status = 409)]
    Conflict(ApiError),
    /// Over a size limit (`too_large`).
    #[response(status = 413)]
    TooLarge(ApiError),
}
