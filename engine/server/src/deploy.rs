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
use serde::Deserialize;
use serde_json::Value;

use crate::App;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};

/// A file as the client read it: its name (which says YAML or JSON, and
/// names it in problems) and its text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployBody {
    process: SourceFile,
    bindings: SourceFile,
    /// The directory relative paths in the bindings resolve against (the
    /// bindings file's own, where the client read it).
    #[serde(default)]
    base: Option<String>,
    /// Each plugin the bindings name, base64.
    #[serde(default)]
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

pub type DeployFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send + 'a>>;

/// Checks a deploy the way `weft validate` does (process, bindings and the
/// components' manifests together) and stores it through the engine;
/// answers a summary of what was deployed, or an `invalid_definition`
/// error listing every problem.
pub trait Deployer: Send + Sync + 'static {
    fn deploy(&self, req: Deploy) -> DeployFuture<'_>;
}

pub(crate) async fn deploy(
    State(app): State<App>,
    Body(body): Body<DeployBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
            .map_err(|e| ApiError::bad_request(format!("plugin '{name}' is not base64: {e}")))?;
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
