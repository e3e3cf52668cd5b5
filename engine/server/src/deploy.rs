//! `POST /v1/deployments`: a process version, its bindings and the plugin
//! components they name, in one request. Checking them needs the WASM
//! runtime (the components' manifests), which the server does not have: the
//! binary that runs it gives a [`Deployer`]. The server decodes the request,
//! calls it, and renders what came of it.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::App;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::openapi;

/// A file as the client read it: its name (which says YAML or JSON, and
/// names it in problems) and its text.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployBody {
    /// The process file.
    process: SourceFile,
    /// The bindings file.
    bindings: SourceFile,
    /// The directory relative paths in the bindings resolve against (the
    /// bindings file's own, where the client read it).
    #[serde(default)]
    base: Option<String>,
    /// Each plugin the bindings name: its component, base64.
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>, content_encoding = "base64")]
    plugins: IndexMap<String, String>,
}

/// A decoded deploy request.
#[derive(Debug, Clone)]
pub struct Deploy {
    pub process: SourceFile,
    pub bindings: SourceFile,
    pub base: Option<String>,
    pub plugins: IndexMap<String, Vec<u8>>,
}

/// What a deploy stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deployed {
    pub process: String,
    pub version: u32,
    /// The bindings revision now in force for this version.
    pub revision: u32,
    /// Whether this version was new.
    pub new_version: bool,
    /// Whether the bindings (or plugins) changed, making a new revision.
    pub new_revision: bool,
    /// Actions bound.
    pub actions: usize,
    /// Plugin components carried.
    pub plugins: usize,
}

pub type DeployFuture<'a> = Pin<Box<dyn Future<Output = Result<Deployed, ApiError>> + Send + 'a>>;

/// Checks a deploy the way `weft validate` does (process, bindings and the
/// components' manifests together) and stores it through the engine;
/// answers a summary of what was deployed, or an `invalid_definition`
/// error listing every problem.
pub trait Deployer: Send + Sync + 'static {
    fn deploy(&self, req: Deploy) -> DeployFuture<'_>;

    /// Loads a component as the engine would run it and answers what it
    /// says about itself, or an `invalid_plugin` error saying why it is not
    /// a weft adapter.
    fn inspect(&self, bytes: std::sync::Arc<[u8]>) -> InspectFuture<'_>;

    /// Loads and describes a swap's component (from the request or the
    /// registry), makes it ready to run, and swaps it in through the
    /// engine; or says why not (`invalid_plugin`, `swap_refused`).
    fn swap(&self, req: crate::swaps::Swap) -> crate::swaps::SwapFuture<'_>;
}

/// A component's manifest, and the sha256 of its bytes.
pub type InspectFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(weft_model::Manifest, String), ApiError>> + Send + 'a>>;

/// Deploys a process version with its bindings and the plugin components
/// they name, checked as `weft validate` checks them; the next start uses
/// it.
#[utoipa::path(
    post,
    path = "/v1/deployments",
    tag = "processes",
    request_body(content = DeployBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Deployed (or already there: see `new_version`, `new_revision`)", body = Deployed),
        (status = 400, description = "Bad JSON or unknown fields", body = ApiError),
        (status = 413, description = "Over the deploy size limit", body = ApiError),
        (status = 422, description = "The definition does not validate (`invalid_definition`, with `problems`), cannot be deployed (`deploy_refused`), or a plugin is not base64", body = ApiError),
        (status = 501, description = "This server takes no deploys", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn deploy(
    State(app): State<App>,
    Body(body): Body<DeployBody>,
) -> ApiResult<(StatusCode, Json<Deployed>)> {
    let Some(deployer) = app.options.deployer.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported",
            "this server takes no deploys",
        ));
    };
    let mut plugins = IndexMap::new();
    for (name, text) in body.plugins {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| ApiError::unprocessable(format!("plugin '{name}' is not base64: {e}")))?;
        plugins.insert(name, bytes);
    }
    let summary = deployer
        .deploy(Deploy {
            process: body.process,
            bindings: body.bindings,
            base: body.base,
            plugins,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(summary)))
}
