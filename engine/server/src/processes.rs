//! Deployed processes: what exists, and each version's definition.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use weft_core::ProcessRecord;

use crate::App;
use crate::error::{ApiError, ApiResult};
use crate::openapi;

/// A deployed process version, without its definition.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deployed {
    name: String,
    version: u32,
    /// ms since the epoch.
    deployed_at: u64,
}

fn summary(r: ProcessRecord) -> Deployed {
    Deployed {
        name: r.name,
        version: r.version,
        deployed_at: r.deployed_at.0,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProcessList {
    items: Vec<Deployed>,
}

/// Every deployed process version (without definitions), by name then
/// version.
#[utoipa::path(
    get,
    path = "/v1/processes",
    tag = "processes",
    responses(
        (status = 200, description = "Deployed versions", body = ProcessList),
        openapi::Always,
    )
)]
pub(crate) async fn list(State(app): State<App>) -> ApiResult<Json<ProcessList>> {
    let items = app
        .engine
        .processes()
        .await?
        .into_iter()
        .map(summary)
        .collect();
    Ok(Json(ProcessList { items }))
}

/// Every deployed version of one process (without definitions), oldest
/// first.
#[utoipa::path(
    get,
    path = "/v1/processes/{name}/versions",
    tag = "processes",
    params(("name" = String, Path, description = "The process")),
    responses(
        (status = 200, description = "Its versions", body = ProcessList),
        (status = 404, description = "No such process", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn versions(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProcessList>> {
    let items: Vec<Deployed> = app
        .engine
        .processes()
        .await?
        .into_iter()
        .filter(|r| r.name == name)
        .map(summary)
        .collect();
    if items.is_empty() {
        return Err(weft_core::Error::NoProcess(name).into());
    }
    Ok(Json(ProcessList { items }))
}

/// The newest deployed version of a process, with its definition.
#[utoipa::path(
    get,
    path = "/v1/processes/{name}",
    tag = "processes",
    params(("name" = String, Path, description = "The process")),
    responses(
        (status = 200, description = "The newest version", body = openapi::ProcessVersion),
        (status = 404, description = "No such process", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn latest(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProcessRecord>> {
    Ok(Json(app.engine.process_record(&name, None).await?))
}

/// One deployed version of a process, with its definition.
#[utoipa::path(
    get,
    path = "/v1/processes/{name}/versions/{version}",
    tag = "processes",
    params(
        ("name" = String, Path, description = "The process"),
        ("version" = u32, Path, description = "The version"),
    ),
    responses(
        (status = 200, description = "That version", body = openapi::ProcessVersion),
        (status = 400, description = "The version is not a number", body = ApiError),
        (status = 404, description = "No such process or version", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn version(
    State(app): State<App>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ProcessRecord>> {
    let version: u32 = version
        .parse()
        .map_err(|_| ApiError::bad_request(format!("the version '{version}' is not a number")))?;
    Ok(Json(app.engine.process_record(&name, Some(version)).await?))
}
