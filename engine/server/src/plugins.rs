//! The plugin registry: upload a component (checked by loading it, as the
//! engine would run it), list what is registered, describe one version or
//! every version of a name, with the deployments that use it.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weft_core::{PluginInfo, PluginUse};
use weft_store::PluginEntry;

use crate::App;
use crate::body::{Raw, path, query};
use crate::error::{ApiError, ApiResult};
use crate::openapi;

/// One version of a registered plugin.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PluginView {
    name: String,
    version: u32,
    sha256: String,
    /// Bytes.
    size: u64,
    /// ms since the epoch.
    added_at: u64,
    manifest: ManifestView,
}

/// What a component says about itself.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ManifestView {
    name: String,
    version: String,
    actions: Vec<ActionView>,
}

/// One action a component carries out.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActionView {
    name: String,
    /// Safe to run twice with the same key.
    idempotent: bool,
    /// The action that undoes it, if any.
    compensated_by: Option<String>,
    /// The typed errors it may fail with (routable as `error.<kind>`).
    errors: Vec<String>,
}

fn view(e: PluginEntry) -> PluginView {
    PluginView {
        name: e.name,
        version: e.version,
        sha256: e.sha256,
        size: e.size,
        added_at: e.added_at.0,
        manifest: ManifestView {
            name: e.manifest.name,
            version: e.manifest.version,
            actions: e
                .manifest
                .actions
                .into_iter()
                .map(|a| ActionView {
                    name: a.name,
                    idempotent: a.idempotent,
                    compensated_by: a.compensated_by,
                    errors: a.errors,
                })
                .collect(),
        },
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PluginList {
    /// By name, then version.
    items: Vec<PluginView>,
}

/// A plugin described: the versions asked for and where they are used.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PluginDescription {
    /// Oldest first.
    versions: Vec<PluginView>,
    /// Deployed process versions whose newest bindings use these bytes.
    used_by: Vec<PluginUseView>,
}

/// Where a deployed process version uses a component.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PluginUseView {
    process: String,
    version: u32,
    /// Its bindings revision.
    revision: u32,
    sha256: String,
    /// The actions bound to it.
    actions: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AddQuery {
    /// The name to register it under (letters, digits, `-`, `_`, `.`).
    #[param(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    name: String,
}

/// Registers a component: the body is its bytes. It is loaded as the
/// engine would run it and its manifest read; the same bytes as the
/// name's newest version change nothing (200), other bytes make the next
/// version (201).
#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    params(AddQuery),
    request_body(content = openapi::Binary, description = "The component's bytes (a wasm32-wasip2 component implementing weft:plugin); any content type is read as bytes", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Those bytes are the name's newest version already", body = PluginView),
        (status = 201, description = "Registered as a new version", body = PluginView),
        (status = 400, description = "No or a bad `name`", body = ApiError),
        (status = 413, description = "Over the upload limit", body = ApiError),
        (status = 422, description = "Not a weft adapter component (`invalid_plugin`), or a bad name", body = ApiError),
        (status = 501, description = "This server takes no uploads", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn add(
    State(app): State<App>,
    q: Result<Query<AddQuery>, QueryRejection>,
    Raw(bytes): Raw,
) -> ApiResult<(StatusCode, Json<PluginView>)> {
    let q = query(q)?;
    let Some(host) = app.options.deployer.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported",
            "this server takes no plugins",
        ));
    };
    let bytes: Arc<[u8]> = Arc::from(bytes.as_ref());
    let (manifest, sha256) = host.inspect(bytes.clone()).await?;
    let (entry, new) = app
        .engine
        .register_plugin(&q.name, bytes, sha256, manifest)
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(entry))))
}

/// Every registered version of every plugin.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    responses(
        (status = 200, description = "The registry", body = PluginList),
        openapi::Always,
    )
)]
pub(crate) async fn list(State(app): State<App>) -> ApiResult<Json<PluginList>> {
    let items = app.engine.plugins().await?.into_iter().map(view).collect();
    Ok(Json(PluginList { items }))
}

/// A plugin by name (every version), `name@version`, or sha256 digest, with
/// its manifest and the deployments that use it.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}",
    tag = "plugins",
    params(("plugin" = String, Path, description = "A name, name@version, or a sha256 digest")),
    responses(
        (status = 200, description = "The plugin", body = PluginDescription),
        (status = 400, description = "A bad path", body = ApiError),
        (status = 404, description = "Nothing registered by that name, version or digest", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn describe(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<PluginDescription>> {
    let what = path(p)?;
    let PluginInfo { versions, used_by } = app.engine.plugin(&what).await?;
    Ok(Json(PluginDescription {
        versions: versions.into_iter().map(view).collect(),
        used_by: used_by
            .into_iter()
            .map(|u: PluginUse| PluginUseView {
                process: u.process,
                version: u.version,
                revision: u.revision,
                sha256: u.sha256,
                actions: u.actions,
            })
            .collect(),
    }))
}

/// The component's bytes: the newest version of a name, one version, or
/// one digest.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}/component",
    tag = "plugins",
    params(("plugin" = String, Path, description = "A name, name@version, or a sha256 digest")),
    responses(
        (status = 200, description = "The component", content_type = "application/wasm", body = openapi::Binary),
        (status = 400, description = "A bad path", body = ApiError),
        (status = 404, description = "Nothing registered by that name, version or digest", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn component(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let what = path(p)?;
    let (entry, bytes) = app.engine.plugin_component(&what).await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/wasm".to_owned(),
            ),
            (axum::http::header::ETAG, format!("\"{}\"", entry.sha256)),
        ],
        bytes,
    ))
}
