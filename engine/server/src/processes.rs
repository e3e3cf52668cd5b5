//! Deployed processes: what exists, and each version's definition.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use weft_core::ProcessRecord;

use crate::App;
use crate::error::{ApiError, ApiResult};

/// Every deployed process version (without definitions).
pub(crate) async fn list(State(app): State<App>) -> ApiResult<Json<Value>> {
    let records = app.engine.processes().await?;
    let items: Vec<Value> = records
        .iter()
        .map(|r| json!({ "name": r.name, "version": r.version, "deployed_at": r.deployed_at }))
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn latest(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProcessRecord>> {
    Ok(Json(app.engine.process_record(&name, None).await?))
}

pub(crate) async fn version(
    State(app): State<App>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ProcessRecord>> {
    let version: u32 = version
        .parse()
        .map_err(|_| ApiError::bad_request(format!("the version '{version}' is not a number")))?;
    Ok(Json(app.engine.process_record(&name, Some(version)).await?))
}
