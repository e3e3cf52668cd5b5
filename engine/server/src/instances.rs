//! Instances: start (optionally waiting for the end), look up, list, read
//! history, and the operator actions; tokens: complete and heartbeat.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_core::{Completion, PageQuery};
use weft_model::{Failure, Instance, InstanceId, Span, Status};

use crate::App;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};

fn path<T>(p: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    p.map(|Path(t)| t)
        .map_err(|e| ApiError::bad_request(format!("the path: {e}")))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("the query string: {e}")))
}

/// What a caller of `start` (or of an operation) learns about the instance.
fn view(inst: &Instance) -> Value {
    json!({
        "id": inst.id,
        "process": inst.process,
        "version": inst.version,
        "key": inst.key,
        "status": inst.status,
        "state": inst.state,
        "output": inst.output,
        "error": inst.error,
    })
}

fn located(status: StatusCode, id: &InstanceId, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/instances/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    #[serde(default = "empty_object")]
    input: Value,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    version: Option<u32>,
    /// How long to wait for the instance to end, e.g. `"30s"`.
    #[serde(default)]
    wait: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    wait: Option<String>,
}

/// Starts an instance. Without `wait`: 201 with its id and `Location`.
/// With `wait`: 200 and the instance once it has ended, is waiting for a
/// signal or is parked, within the wait; otherwise 202 and its `Location`.
/// A business key already used answers with that instance (`existing`).
/// An `Idempotency-Key` header without a `key` in the body is the business
/// key: a retried start finds the instance the first one made.
pub(crate) async fn start(
    State(app): State<App>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    Body(body): Body<StartBody>,
) -> ApiResult<Response> {
    let name = path(name)?;
    let wait = match (query(wait)?.wait, body.wait) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "`wait` is given twice, in the query and in the body: give it once",
            ));
        }
        (a, b) => a.or(b),
    };
    let wait = wait
        .map(|w| Span::parse(&w).map_err(|e| ApiError::bad_request(format!("`wait`: {e}"))))
        .transpose()?
        .map(|w| w.min(app.options.max_wait));
    let key = match body.key {
        Some(k) => Some(k),
        None => idempotency_key(&headers)?,
    };
    let started = app
        .engine
        .start_keyed(&name, body.version, body.input, key)
        .await?;
    let id = started.id;
    let Some(wait) = wait else {
        let status = if started.existing {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        return Ok(located(
            status,
            &id,
            json!({ "id": id, "existing": started.existing }),
        ));
    };
    let clock = app.engine.clock().clone();
    let deadline = clock.now().plus(wait);
    let ended = tokio::select! {
        inst = app.engine.wait(&id) => Some(inst?),
        () = clock.sleep_until(deadline) => None,
    };
    let mut body = match &ended {
        Some(inst) => view(inst),
        None => json!({ "id": id, "status": Status::Running }),
    };
    body["existing"] = json!(started.existing);
    Ok(match ended {
        Some(_) => located(StatusCode::OK, &id, body),
        None => located(StatusCode::ACCEPTED, &id, body),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    process: Option<String>,
    status: Option<String>,
    state: Option<String>,
    stuck: Option<bool>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(app): State<App>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let status = q
        .status
        .map(|s| {
            Status::ALL
                .into_iter()
                .find(|st| st.as_str() == s)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`status` is '{s}'; it is one of: {}",
                        Status::ALL.map(Status::as_str).join(", ")
                    ))
                })
        })
        .transpose()?;
    let after = q
        .cursor
        .map(|c| {
            InstanceId::parse(&c).ok_or_else(|| {
                ApiError::bad_request(format!("`cursor` '{c}' is not one this API handed out"))
            })
        })
        .transpose()?;
    let page = app
        .engine
        .list(PageQuery {
            process: q.process,
            status,
            state: q.state,
            stuck: q.stuck.unwrap_or(false),
            after,
            limit: q.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(json!(page)))
}

/// An instance by id, or by the business key it was started with.
pub(crate) async fn get(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Instance>> {
    let id = app.engine.resolve(&path(id)?).await?;
    Ok(Json(app.engine.status(&id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// History records from `from` on, at most `limit` (default 1,000);
/// `next` is where the next page starts.
pub(crate) async fn history(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let id = app.engine.resolve(&path(id)?).await?;
    let from = q.from.unwrap_or(0);
    let limit = q.limit.unwrap_or(1_000).clamp(1, 10_000);
    let mut records = app.engine.history(&id, from).await?;
    let next = (records.len() > limit).then(|| from + limit as u64);
    records.truncate(limit);
    Ok(Json(json!({ "items": records, "next": next })))
}

async fn answer(app: &App, id: &InstanceId) -> ApiResult<Json<Value>> {
    Ok(Json(view(&app.engine.status(id).await?)))
}

/// Sends a signal; the body is its payload (empty: none).
pub(crate) async fn signal(
    State(app): State<App>,
    p: Result<Path<(String, String)>, PathRejection>,
    Body(payload): Body<Value>,
) -> ApiResult<Json<Value>> {
    let (target, event) = path(p)?;
    let id = app.engine.resolve(&target).await?;
    app.engine.signal(&id, &event, payload).await?;
    answer(&app, &id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    #[serde(default)]
    compensate: bool,
}

pub(crate) async fn cancel(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    Body(body): Body<CancelBody>,
) -> ApiResult<Json<Value>> {
    let id = app.engine.resolve(&path(p)?).await?;
    app.engine.cancel(&id, body.compensate).await?;
    answer(&app, &id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoBody {}

pub(crate) async fn redrive(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    Body(NoBody {}): Body<NoBody>,
) -> ApiResult<Json<Value>> {
    let id = app.engine.resolve(&path(p)?).await?;
    app.engine.redrive(&id).await?;
    answer(&app, &id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MigrateBody {
    version: u32,
}

pub(crate) async fn migrate(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    Body(body): Body<MigrateBody>,
) -> ApiResult<Json<Value>> {
    let id = app.engine.resolve(&path(p)?).await?;
    app.engine.migrate(&id, body.version).await?;
    answer(&app, &id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<Failure>,
}

/// Completes the step waiting on a token: with `output`, or failed with
/// `error: {kind, message}` (routable as `error.<kind>`).
pub(crate) async fn complete(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    Body(body): Body<CompleteBody>,
) -> ApiResult<Json<Value>> {
    let token = path(p)?;
    let completion = match (body.output, body.error) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `output` (done) or `error` (failed), not both",
            ));
        }
        (_, Some(f)) => Completion::Failed(f),
        (out, None) => Completion::Done(out.unwrap_or_else(empty_object)),
    };
    let id = app.engine.complete(&token, completion).await?;
    Ok(Json(json!({ "instance": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatBody {
    #[serde(default)]
    details: String,
}

pub(crate) async fn heartbeat(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    Body(body): Body<HeartbeatBody>,
) -> ApiResult<Json<Value>> {
    let token = path(p)?;
    let id = app.engine.heartbeat(&token, body.details).await?;
    Ok(Json(json!({ "instance": id })))
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_owned()))
        }
        _ => Err(ApiError::bad_request(
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
        )),
    }
}
