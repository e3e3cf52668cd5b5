//! Instances: start (optionally waiting for the end), look up, list, read
//! history, and the operator actions; tokens: complete and heartbeat.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use weft_core::{Completion, Done, Operation, PageQuery};
use weft_model::{Failure, Instance, InstanceId, Span, Status};

use crate::App;
use crate::body::{Body, Payload, path, query};
use crate::error::{ApiError, ApiResult};
use crate::openapi;

/// What a caller of `start` (or of an operation) learns about the instance.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstanceView {
    id: String,
    process: String,
    version: u32,
    /// The business key it was started with.
    key: Option<String>,
    #[schema(value_type = openapi::Status)]
    status: Status,
    state: String,
    /// What it ended with, once it succeeded.
    output: Option<Value>,
    /// Why it failed or is parked.
    error: Option<InstanceErrorView>,
    /// On a start: whether its business key found an instance already
    /// there (nothing new was started).
    #[serde(skip_serializing_if = "Option::is_none")]
    existing: Option<bool>,
    /// On an operation with an `Idempotency-Key`: whether that request was
    /// applied before (this one changed nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    repeated: Option<bool>,
}

/// The error an instance ended or parked with.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstanceErrorView {
    state: String,
    kind: String,
    message: String,
}

fn view(inst: &Instance) -> InstanceView {
    InstanceView {
        id: inst.id.to_string(),
        process: inst.process.clone(),
        version: inst.version,
        key: inst.key.clone(),
        status: inst.status,
        state: inst.state.clone(),
        output: inst.output.clone(),
        error: inst.error.as_ref().map(|e| InstanceErrorView {
            state: e.state.clone(),
            kind: e.kind.clone(),
            message: e.message.clone(),
        }),
        existing: None,
        repeated: None,
    }
}

/// The instance a token belonged to.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Touched {
    instance: String,
}

fn located(status: StatusCode, id: &InstanceId, body: impl Serialize) -> Response {
    let mut r = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/instances/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    /// The instance's data to begin with (default `{}`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    input: Value,
    /// A business key, unique per process: a start with a key already used
    /// answers with that instance.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    key: Option<String>,
    /// The process version (default: the newest).
    #[serde(default, deserialize_with = "crate::body::whole_opt")]
    version: Option<u32>,
    /// How long to wait for the instance to end, e.g. `"30s"` (at most the
    /// server's limit, 5 minutes by default).
    #[serde(default)]
    #[schema(pattern = "^([0-9]{1,9}(ms|s|m|h|d))+$", max_length = 64)]
    wait: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// Answer when the instance ends, waits or parks, within this long.
    #[param(pattern = "^([0-9]{1,9}(ms|s|m|h|d))+$", max_length = 64)]
    wait: Option<String>,
}

/// Starts an instance. Without `wait`: 201 with its id and `Location`.
/// With `wait`: 200 and the instance once it has ended, is waiting for a
/// signal or is parked, within the wait; otherwise 202 and its `Location`.
/// A business key already used answers with that instance (`existing`).
/// An `Idempotency-Key` header without a `key` in the body is the business
/// key: a retried start finds the instance the first one made.
#[utoipa::path(
    post,
    path = "/v1/processes/{name}/instances",
    tag = "instances",
    params(
        ("name" = String, Path, description = "The process"),
        WaitQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Used as the business key when the body has none: 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<StartBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Ended, waiting or parked within the wait; or, without a wait, its business key found it already there", body = InstanceView),
        (status = 201, description = "Started (without a wait): the instance now", body = InstanceView, headers(("Location" = String, description = "The instance"))),
        (status = 202, description = "Still running when the wait was over", body = InstanceView, headers(("Location" = String, description = "The instance"))),
        (status = 422, description = "The input is not a JSON object, or `wait` is given twice", body = ApiError),
        openapi::Always, openapi::Refusals,
    )
)]
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
            return Err(ApiError::unprocessable(
                "`wait` is given twice, in the query and in the body: give it once",
            ));
        }
        (a, b) => a.or(b),
    };
    let wait = wait
        .map(|w| {
            if w.len() > 64 {
                return Err(ApiError::bad_request(
                    "`wait` is over 64 characters: write it like 30s or 2m",
                ));
            }
            Span::parse(&w).map_err(|e| ApiError::bad_request(format!("`wait`: {e}")))
        })
        .transpose()?
        .map(|w| w.min(app.options.max_wait));
    // A malformed header is refused even when the body has a key.
    let header_key = idempotency_key(&headers)?;
    let key = body.key.or(header_key);
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
        let mut body = view(&app.engine.status(&id).await?);
        body.existing = Some(started.existing);
        return Ok(located(status, &id, body));
    };
    let clock = app.engine.clock().clone();
    let deadline = clock.now().plus(wait);
    let ended = tokio::select! {
        inst = app.engine.wait(&id) => Some(inst?),
        () = clock.sleep_until(deadline) => None,
    };
    let (status, inst) = match ended {
        Some(inst) => (StatusCode::OK, inst),
        None => (StatusCode::ACCEPTED, app.engine.status(&id).await?),
    };
    let mut body = view(&inst);
    body.existing = Some(started.existing);
    Ok(located(status, &id, body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only instances of this process.
    process: Option<String>,
    /// Only instances with this status.
    #[param(value_type = Option<openapi::Status>)]
    status: Option<String>,
    /// Only instances in this state.
    state: Option<String>,
    /// Only unfinished instances past an sla.
    stuck: Option<bool>,
    /// Where the previous page ended (its `next`).
    #[param(pattern = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")]
    cursor: Option<String>,
    /// Instances per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Instances, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/instances",
    tag = "instances",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = openapi::InstancePage),
        (status = 400, description = "A bad filter, cursor or limit", body = ApiError),
        openapi::Always,
    )
)]
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
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` is {limit}; it is 1 to 1000"
        )));
    }
    let page = app
        .engine
        .list(PageQuery {
            process: q.process,
            status,
            state: q.state,
            stuck: q.stuck.unwrap_or(false),
            after,
            limit,
            max_read: None,
        })
        .await?;
    Ok(Json(json!(page)))
}

/// An instance by id, or by the business key it was started with.
#[utoipa::path(
    get,
    path = "/v1/instances/{id}",
    tag = "instances",
    params(("id" = String, Path, description = "An instance id, or a business key")),
    responses(
        (status = 200, description = "The instance as stored", body = openapi::StoredInstance),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn get(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Instance>> {
    let id = app.engine.resolve(&path(id)?).await?;
    Ok(Json(app.engine.status(&id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// The first record (its `seq`; default 0).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    from: Option<u64>,
    /// Records per page (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// A page of history records.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryPage {
    #[schema(value_type = Vec<openapi::HistoryRecord>)]
    items: Vec<weft_model::Record>,
    /// The `from` of the next page; null on the last.
    next: Option<u64>,
}

/// History records from `from` on, at most `limit` (default 1,000);
/// `next` is where the next page starts.
#[utoipa::path(
    get,
    path = "/v1/instances/{id}/history",
    tag = "instances",
    params(("id" = String, Path, description = "An instance id, or a business key"), HistoryQuery),
    responses(
        (status = 200, description = "A page of records, gap-free by seq", body = HistoryPage),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn history(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<HistoryPage>> {
    let q = query(q)?;
    let id = app.engine.resolve(&path(id)?).await?;
    let from = q.from.unwrap_or(0);
    if from > i64::MAX as u64 {
        return Err(ApiError::bad_request(format!(
            "`from` is {from}; history seqs go up to {}",
            i64::MAX
        )));
    }
    let limit = q.limit.unwrap_or(1_000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` is {limit}; it is 1 to 10000"
        )));
    }
    let mut records = app.engine.history(&id, from).await?;
    let next = (records.len() > limit).then(|| from.saturating_add(limit as u64));
    records.truncate(limit);
    Ok(Json(HistoryPage {
        items: records,
        next,
    }))
}

/// Carries out an operator's request and answers with the instance; with
/// an `Idempotency-Key`, a retry answers the same (`repeated: true`) and
/// changes nothing.
async fn operate(
    app: &App,
    target: &str,
    op: Operation,
    headers: &HeaderMap,
) -> ApiResult<Json<InstanceView>> {
    let key = idempotency_key(headers)?;
    let id = app.engine.resolve(target).await?;
    let done = app.engine.operate(&id, op, key.as_deref()).await?;
    let mut body = view(&app.engine.status(&id).await?);
    if key.is_some() {
        body.repeated = Some(done == Done::Repeated);
    }
    Ok(Json(body))
}

/// Sends a signal; the body is its payload (empty: none).
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/signals/{event}",
    tag = "instances",
    params(
        ("id" = String, Path, description = "An instance id, or a business key"),
        ("event" = String, Path, description = "An event its wait state accepts"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request change nothing (the answer says `repeated`): 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<Value>, description = "The signal's payload, any JSON (none: `{}`)", content_type = "application/json"),
    responses(
        (status = 200, description = "Done: the instance now", body = InstanceView),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn signal(
    State(app): State<App>,
    p: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    Payload(payload): Payload,
) -> ApiResult<Json<InstanceView>> {
    let (target, event) = path(p)?;
    let op = Operation::Signal {
        name: event,
        data: payload,
    };
    operate(&app, &target, op, &headers).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    /// Undo its completed steps first.
    #[serde(default)]
    compensate: bool,
}

/// Ends an instance, undoing its completed steps first when asked.
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/cancel",
    tag = "instances",
    params(
        ("id" = String, Path, description = "An instance id, or a business key"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request change nothing (the answer says `repeated`): 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<CancelBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Done: the instance now", body = InstanceView),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn cancel(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    Body(body): Body<CancelBody>,
) -> ApiResult<Json<InstanceView>> {
    let op = Operation::Cancel {
        compensate: body.compensate,
    };
    operate(&app, &path(p)?, op, &headers).await
}

/// An empty object (or no body at all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoBody {}

/// Retries a parked instance from where it stopped.
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/redrive",
    tag = "instances",
    params(
        ("id" = String, Path, description = "An instance id, or a business key"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request change nothing (the answer says `repeated`): 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<NoBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Done: the instance now", body = InstanceView),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn redrive(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    Body(NoBody {}): Body<NoBody>,
) -> ApiResult<Json<InstanceView>> {
    operate(&app, &path(p)?, Operation::Redrive, &headers).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MigrateBody {
    /// The deployed version to move to.
    #[serde(deserialize_with = "crate::body::whole")]
    version: u32,
}

/// Moves an instance to another deployed version of its process.
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/migrate",
    tag = "instances",
    params(
        ("id" = String, Path, description = "An instance id, or a business key"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request change nothing (the answer says `repeated`): 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = MigrateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Done: the instance now", body = InstanceView),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn migrate(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    Body(body): Body<MigrateBody>,
) -> ApiResult<Json<InstanceView>> {
    let op = Operation::Migrate {
        version: body.version,
    };
    operate(&app, &path(p)?, op, &headers).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    /// The step's result (done); default `{}`.
    #[serde(default)]
    output: Option<Value>,
    /// The step failed with this (routable as `error.<kind>`).
    #[serde(default)]
    #[schema(value_type = Option<FailureBody>)]
    error: Option<Failure>,
}

/// A failure: `kind` is what a process routes on.
#[derive(ToSchema)]
#[allow(dead_code)] // a description only: the value is `weft_model::Failure`
pub(crate) struct FailureBody {
    kind: String,
    message: String,
}

/// Completes the step waiting on a token: with `output`, or failed with
/// `error: {kind, message}` (routable as `error.<kind>`).
#[utoipa::path(
    post,
    path = "/v1/tokens/{token}/complete",
    tag = "tokens",
    params(("token" = String, Path, description = "The token the adapter handed out")),
    request_body(content = Option<CompleteBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded", body = Touched),
        (status = 422, description = "Both `output` and `error` are given", body = ApiError),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn complete(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    Body(body): Body<CompleteBody>,
) -> ApiResult<Json<Touched>> {
    let token = path(p)?;
    let completion = match (body.output, body.error) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "give `output` (done) or `error` (failed), not both",
            ));
        }
        (_, Some(f)) => Completion::Failed(f),
        (out, None) => Completion::Done(out.unwrap_or_else(empty_object)),
    };
    let id = app.engine.complete(&token, completion).await?;
    Ok(Json(Touched {
        instance: id.to_string(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatBody {
    /// Progress details, handed to the next attempt if this one fails.
    #[serde(default)]
    details: String,
}

/// Reports progress of a pending step that has a `heartbeat:` limit.
#[utoipa::path(
    post,
    path = "/v1/tokens/{token}/heartbeat",
    tag = "tokens",
    params(("token" = String, Path, description = "The token the adapter handed out")),
    request_body(content = Option<HeartbeatBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded", body = Touched),
        openapi::Always, openapi::Refusals,
    )
)]
pub(crate) async fn heartbeat(
    State(app): State<App>,
    p: Result<Path<String>, PathRejection>,
    Body(body): Body<HeartbeatBody>,
) -> ApiResult<Json<Touched>> {
    let token = path(p)?;
    let id = app.engine.heartbeat(&token, body.details).await?;
    Ok(Json(Touched {
        instance: id.to_string(),
    }))
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
