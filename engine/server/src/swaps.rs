//! Hot swaps: replace the component behind an action (or every action of a
//! plugin) on the running engine, put one on trial for a share of attempts
//! (a canary), promote or roll back, and read what ran when. Loading and
//! describing the component needs the WASM runtime, which the binary's
//! [`Deployer`](crate::Deployer) has; the rest is one engine call each.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weft_core::SwapLog;
use weft_store::{CanaryPolicy, SwapRecord};

use crate::App;
use crate::body::{Body, query};
use crate::error::{ApiError, ApiResult};
use crate::openapi;

/// The component a swap makes live.
#[derive(Debug, Clone)]
pub enum SwapComponent {
    /// Bytes sent with the request, registered under `name` (default: the
    /// target's plugin).
    Bytes {
        name: Option<String>,
        bytes: Vec<u8>,
    },
    /// A registered component: `name`, `name@version`, or a sha256 digest.
    Registered(String),
}

/// A decoded swap request.
#[derive(Debug, Clone)]
pub struct Swap {
    pub target: String,
    pub component: SwapComponent,
    pub canary: Option<CanaryPolicy>,
}

pub type SwapFuture<'a> = Pin<Box<dyn Future<Output = Result<SwapRecord, ApiError>> + Send + 'a>>;

/// A canary: how much goes to the component on trial and how it is judged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanaryBody {
    /// Per cent of attempts routed to it, 1 to 99.
    #[serde(deserialize_with = "crate::body::whole")]
    percent: u32,
    /// Successful attempts on it after which it is promoted (default 100).
    #[serde(default, deserialize_with = "crate::body::whole_opt")]
    promote_after: Option<u32>,
    /// Rolled back when its failure rate exceeds the live component's by
    /// more than this many percentage points (default 10).
    #[serde(default, deserialize_with = "crate::body::whole_opt")]
    threshold: Option<u32>,
    /// The most recent attempts of each component the rates are taken
    /// over (default 100).
    #[serde(default, deserialize_with = "crate::body::whole_opt")]
    window: Option<u32>,
    /// Attempts it must have made before its rate can roll it back
    /// (default 20).
    #[serde(default, deserialize_with = "crate::body::whole_opt")]
    min_calls: Option<u32>,
}

/// What to swap in for which target. Give `component` (registered) or
/// `wasm` (the bytes, base64), not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwapBody {
    /// `action:<name>`, `plugin:<name>`, or a bare name the deployed
    /// bindings use as one of the two.
    target: String,
    /// A registered component: name (its newest version), name@version,
    /// or sha256 digest.
    #[serde(default)]
    component: Option<String>,
    /// The component's bytes, base64.
    #[serde(default)]
    #[schema(content_encoding = "base64")]
    wasm: Option<String>,
    /// With `wasm`: the registry name it is added under (default: the
    /// target's plugin).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    name: Option<String>,
    /// Put it on trial for a share of attempts instead of all of them.
    #[serde(default)]
    canary: Option<CanaryBody>,
}

/// A target, for a rollback or a promotion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetBody {
    /// `action:<name>`, `plugin:<name>`, or a bare name.
    target: String,
}

/// How a canary is judged.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyView {
    percent: u8,
    promote_after: u32,
    threshold: u8,
    window: u32,
    min_calls: u32,
}

impl From<CanaryPolicy> for PolicyView {
    fn from(p: CanaryPolicy) -> Self {
        PolicyView {
            percent: p.percent,
            promote_after: p.promote_after,
            threshold: p.threshold,
            window: p.window,
            min_calls: p.min_calls,
        }
    }
}

/// A process version a swap changed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangeView {
    process: String,
    version: u32,
    /// The bindings revision it wrote.
    revision: u32,
    /// The component live for the target before.
    from: String,
}

/// One record of the swap log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SwapView {
    seq: u64,
    /// ms since the epoch.
    at: u64,
    target: String,
    /// `swap`, `rollback`, `canary`, `promote` or `abort`.
    kind: String,
    /// The component made live (a canary's: the one on trial; an abort's:
    /// the one taken out).
    sha256: String,
    /// Its registry entry, `name@version`.
    plugin: Option<String>,
    changes: Vec<ChangeView>,
    /// Why, with the figures for the engine's own decisions.
    reason: Option<String>,
    /// The record it settles (rollback, promote, abort).
    settles: Option<u64>,
    canary: Option<PolicyView>,
}

pub(crate) fn view(r: SwapRecord) -> SwapView {
    SwapView {
        seq: r.seq,
        at: r.at.0,
        target: r.target.to_string(),
        kind: r.kind.as_str().to_owned(),
        sha256: r.sha256,
        plugin: r.plugin,
        changes: r
            .changes
            .into_iter()
            .map(|c| ChangeView {
                process: c.process,
                version: c.version,
                revision: c.revision,
                from: c.from,
            })
            .collect(),
        reason: r.reason,
        settles: r.settles,
        canary: r.canary.map(PolicyView::from),
    }
}

/// A canary's counts in this engine since it (or the engine) started.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TallyView {
    trial_attempts: u64,
    trial_failures: u64,
    live_attempts: u64,
    live_failures: u64,
}

/// A component on trial for an action.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LiveCanaryView {
    sha256: String,
    policy: PolicyView,
    tally: Option<TallyView>,
}

/// The component running one bound action of a deployed process version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LiveView {
    process: String,
    version: u32,
    revision: u32,
    action: String,
    plugin: String,
    sha256: String,
    canary: Option<LiveCanaryView>,
}

/// The swap log and what runs now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SwapLogView {
    /// Oldest first.
    records: Vec<SwapView>,
    live: Vec<LiveView>,
}

fn log_view(l: SwapLog) -> SwapLogView {
    SwapLogView {
        records: l.records.into_iter().map(view).collect(),
        live: l
            .live
            .into_iter()
            .map(|x| LiveView {
                process: x.process,
                version: x.version,
                revision: x.revision,
                action: x.action,
                plugin: x.plugin,
                sha256: x.sha256,
                canary: x.canary.map(|c| LiveCanaryView {
                    sha256: c.sha256,
                    policy: c.policy.into(),
                    tally: c.tally.map(|t| TallyView {
                        trial_attempts: t.trial_attempts,
                        trial_failures: t.trial_failures,
                        live_attempts: t.live_attempts,
                        live_failures: t.live_failures,
                    }),
                }),
            })
            .collect(),
    }
}

fn policy(c: CanaryBody) -> Result<CanaryPolicy, ApiError> {
    let d = CanaryPolicy::default();
    let small = |n: u32, what: &str| {
        u8::try_from(n)
            .map_err(|_| ApiError::unprocessable(format!("canary {what} {n} is over 100")))
    };
    let p = CanaryPolicy {
        percent: small(c.percent, "percent")?,
        promote_after: c.promote_after.unwrap_or(d.promote_after),
        threshold: small(c.threshold.unwrap_or(u32::from(d.threshold)), "threshold")?,
        window: c.window.unwrap_or(d.window),
        min_calls: c.min_calls.unwrap_or(d.min_calls),
    };
    p.check().map_err(ApiError::unprocessable)?;
    Ok(p)
}

/// Swaps a component in for a target on every deployed process version
/// that binds it (or puts it on trial with `canary`). It is loaded and
/// described first, and checked against every binding it would serve;
/// refused (422 `swap_refused`, with every reason) when it cannot serve
/// one, and then nothing changes.
#[utoipa::path(
    post,
    path = "/v1/swaps",
    tag = "plugins",
    request_body(content = SwapBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Swapped (or the canary started): the swap-log record", body = SwapView),
        (status = 400, description = "Bad JSON or unknown fields", body = ApiError),
        (status = 404, description = "No deployed bindings use the target, or no such registered component", body = ApiError),
        (status = 413, description = "Over the upload limit", body = ApiError),
        (status = 422, description = "Not a weft adapter (`invalid_plugin`), it cannot take over the target (`swap_refused`), or the request cannot be carried out (`bad_request`: both or neither of `component` and `wasm`, `wasm` not base64, a canary out of range)", body = ApiError),
        (status = 501, description = "This server takes no swaps", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn swap(
    State(app): State<App>,
    Body(body): Body<SwapBody>,
) -> ApiResult<(StatusCode, Json<SwapView>)> {
    let Some(host) = app.options.deployer.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported",
            "this server takes no swaps",
        ));
    };
    let component = match (body.component, body.wasm) {
        (Some(c), None) if body.name.is_none() => SwapComponent::Registered(c),
        (Some(_), None) => {
            return Err(ApiError::unprocessable(
                "`name` goes with `wasm`: a registered component has its name",
            ));
        }
        (None, Some(b64)) => SwapComponent::Bytes {
            name: body.name,
            bytes: base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| ApiError::unprocessable(format!("`wasm` is not base64: {e}")))?,
        },
        _ => {
            return Err(ApiError::unprocessable(
                "give `component` (a registered one) or `wasm` (its bytes, base64), one of the two",
            ));
        }
    };
    let canary = body.canary.map(policy).transpose()?;
    let record = host
        .swap(Swap {
            target: body.target,
            component,
            canary,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view(record))))
}

/// Undoes the newest swap of a target still in force (back to what ran
/// before it), or ends its canary. Each rollback goes one swap further
/// back.
#[utoipa::path(
    post,
    path = "/v1/swaps/rollback",
    tag = "plugins",
    request_body(content = TargetBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Rolled back: the swap-log record", body = SwapView),
        (status = 400, description = "Bad JSON or unknown fields", body = ApiError),
        (status = 404, description = "No deployed bindings use the target", body = ApiError),
        (status = 413, description = "Over the request size limit", body = ApiError),
        (status = 422, description = "Nothing to roll back, or the target changed since (`swap_refused`)", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn rollback(
    State(app): State<App>,
    Body(body): Body<TargetBody>,
) -> ApiResult<(StatusCode, Json<SwapView>)> {
    let r = app.engine.rollback(&body.target).await?;
    Ok((StatusCode::CREATED, Json(view(r))))
}

/// Makes the component on trial for a target live for every attempt.
#[utoipa::path(
    post,
    path = "/v1/swaps/promote",
    tag = "plugins",
    request_body(content = TargetBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Promoted: the swap-log record", body = SwapView),
        (status = 400, description = "Bad JSON or unknown fields", body = ApiError),
        (status = 404, description = "No deployed bindings use the target", body = ApiError),
        (status = 413, description = "Over the request size limit", body = ApiError),
        (status = 422, description = "No canary of the target is under way (`swap_refused`)", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn promote(
    State(app): State<App>,
    Body(body): Body<TargetBody>,
) -> ApiResult<(StatusCode, Json<SwapView>)> {
    let r = app.engine.promote(&body.target).await?;
    Ok((StatusCode::CREATED, Json(view(r))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Only this target's records and actions.
    #[serde(default)]
    target: Option<String>,
}

/// The swap log (of one target, or all), oldest first, and which component
/// runs each bound action of every deployed process version now, with the
/// canaries under way and their counts.
#[utoipa::path(
    get,
    path = "/v1/swaps",
    tag = "plugins",
    params(LogQuery),
    responses(
        (status = 200, description = "The log and what runs now", body = SwapLogView),
        (status = 400, description = "A bad query", body = ApiError),
        (status = 404, description = "No deployed bindings use the target", body = ApiError),
        (status = 422, description = "An ambiguous or malformed target (`swap_refused`)", body = ApiError),
        openapi::Always,
    )
)]
pub(crate) async fn log(
    State(app): State<App>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Json<SwapLogView>> {
    let q = query(q)?;
    let l = app.engine.swap_log(q.target.as_deref()).await?;
    Ok(Json(log_view(l)))
}
