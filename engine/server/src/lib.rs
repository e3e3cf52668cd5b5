//! weft-server: the HTTP API of a running engine, the one way into it.
//!
//! Handlers parse a request, call one [`Engine`] operation and render its
//! answer as JSON; they do no engine work of their own. Errors are JSON
//! with a stable `code` ([`ApiError`]). Bodies are read under a size limit
//! and parsed strictly ([`body`]). When a token is configured every request
//! but `/healthz` and `/readyz` must carry it as a bearer token.
//!
//! Routes (all JSON):
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/healthz` | the process is up |
//! | GET | `/readyz` | the engine is working (503 with the reason while its store fails) |
//! | GET | `/metrics` | Prometheus text: counters, histograms, and gauges read from the store |
//! | POST | `/v1/deployments` | deploy a process version with its bindings and plugin components |
//! | POST | `/v1/plugins?name=N` | register a component (the body is its bytes) |
//! | GET | `/v1/plugins` | the plugin registry |
//! | GET | `/v1/plugins/{plugin}` | a plugin (name, name@version or digest), its manifest and users |
//! | GET | `/v1/plugins/{plugin}/component` | its bytes (the newest version of a name) |
//! | GET | `/v1/processes` | deployed process versions |
//! | GET | `/v1/processes/{name}` | the newest version, with its definition |
//! | GET | `/v1/processes/{name}/versions` | its deployed versions |
//! | GET | `/v1/processes/{name}/versions/{v}` | one version, with its definition |
//! | POST | `/v1/processes/{name}/instances` | start one (`input`, `key`, `version`; `?wait=30s` answers when it ends) |
//! | GET | `/v1/openapi.json` | this API as an OpenAPI 3.1 document |
//! | GET | `/v1/instances` | list (`process`, `status`, `state`, `stuck`, `cursor`, `limit`) |
//! | GET | `/v1/instances/{id}` | one instance (by id or business key) |
//! | GET | `/v1/instances/{id}/history` | its history (`from`, `limit`) |
//! | POST | `/v1/instances/{id}/signals/{event}` | send a signal; the body is its payload |
//! | POST | `/v1/instances/{id}/cancel` | cancel (`{"compensate": true}` undoes first) |
//! | POST | `/v1/instances/{id}/redrive` | retry a parked instance |
//! | POST | `/v1/instances/{id}/migrate` | move to another version (`{"version": 2}`) |
//! | POST | `/v1/tokens/{token}/complete` | complete a pending step (`output`, or `error: {kind, message}`) |
//! | POST | `/v1/tokens/{token}/heartbeat` | report progress (`details`) |

mod body;
mod dashboard;
mod deploy;
mod error;
mod forward;
mod instances;
pub mod metrics;
pub mod openapi;
mod plugins;
mod processes;
mod swaps;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use weft_core::Engine;
use weft_model::Span;

pub use deploy::{Deploy, DeployFuture, Deployed, Deployer, InspectFuture, SourceFile};
pub use error::{ApiError, ApiResult};
pub use forward::Peers;
pub use swaps::{Swap, SwapComponent, SwapFuture};

/// How a server answers.
#[derive(Clone)]
pub struct Options {
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// Longest `wait` a start may ask for.
    pub max_wait: Span,
    /// When set, every request but the health checks must carry
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest deploy body (it carries plugin components), in bytes.
    pub max_deploy_body: usize,
    /// Checks and stores a deploy; without one, `POST /v1/deployments`
    /// answers `not_supported`.
    pub deployer: Option<Arc<dyn Deployer>>,
    /// The recorder's handle ([`metrics::install`]); without one,
    /// `/metrics` has the gauges only.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The other nodes of a shared store: a request for an instance one of
    /// them drives is forwarded to it.
    pub peers: Option<Arc<dyn Peers>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_body: 8 << 20,
            max_wait: Span::from_secs(300),
            token: None,
            max_deploy_body: 128 << 20,
            deployer: None,
            metrics: None,
            peers: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) engine: Engine,
    pub(crate) options: Arc<Options>,
}

/// The API over `engine`.
pub fn router(engine: Engine, options: Options) -> Router {
    let max_body = options.max_body;
    let max_deploy_body = options.max_deploy_body;
    let app = App {
        engine,
        options: Arc::new(options),
    };
    let v1 = Router::new()
        .route("/openapi.json", get(openapi::document))
        .route(
            "/deployments",
            post(deploy::deploy).layer(DefaultBodyLimit::max(max_deploy_body)),
        )
        .route(
            "/plugins",
            post(plugins::add)
                .layer(DefaultBodyLimit::max(max_deploy_body))
                .get(plugins::list),
        )
        .route("/plugins/{plugin}", get(plugins::describe))
        .route("/plugins/{plugin}/component", get(plugins::component))
        .route(
            "/swaps",
            post(swaps::swap)
                .layer(DefaultBodyLimit::max(max_deploy_body))
                .get(swaps::log),
        )
        .route("/swaps/rollback", post(swaps::rollback))
        .route("/swaps/promote", post(swaps::promote))
        .route("/processes", get(processes::list))
        .route("/processes/{name}", get(processes::latest))
        .route("/processes/{name}/versions", get(processes::versions))
        .route(
            "/processes/{name}/versions/{version}",
            get(processes::version),
        )
        .route("/processes/{name}/instances", post(instances::start))
        .route("/instances", get(instances::list))
        .route("/instances/{id}", get(instances::get))
        .route("/instances/{id}/history", get(instances::history))
        .route("/instances/{id}/signals/{event}", post(instances::signal))
        .route("/instances/{id}/cancel", post(instances::cancel))
        .route("/instances/{id}/redrive", post(instances::redrive))
        .route("/instances/{id}/migrate", post(instances::migrate))
        .route("/tokens/{token}/complete", post(instances::complete))
        .route("/tokens/{token}/heartbeat", post(instances::heartbeat))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            forward::forward,
        ))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(metrics::scrape)
                .route_layer(middleware::from_fn_with_state(app.clone(), authorize)),
        )
        .nest("/v1", v1)
        .merge(dashboard::routes(app.clone()))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: the API lives under /v1 (see the README)",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(same_origin))
        .with_state(app)
}

/// Refuses a request that changes something when a browser says another
/// site made it (`Sec-Fetch-Site`, or an `Origin` that is not this
/// server's): a page elsewhere cannot post the dashboard's forms, or the
/// API's requests, with the operator's browser. Clients that are not
/// browsers (curl, the CLI) send neither header and are not affected.
async fn same_origin(req: Request, next: Next) -> Response {
    let safe = matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    if !safe {
        let h = req.headers();
        let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let cross_site = matches!(site, Some(s) if s != "same-origin" && s != "none");
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let foreign_origin = match (h.get(header::ORIGIN).and_then(|v| v.to_str().ok()), host) {
            (Some(origin), Some(host)) => {
                let authority = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .unwrap_or(origin);
                !authority.eq_ignore_ascii_case(host)
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        if cross_site || foreign_origin {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                "refused: another site made this request (its Origin is not this server's)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    responses((status = 200, description = "Up", content_type = "text/plain", body = String, example = "ok\n"))
)]
pub(crate) async fn health() -> &'static str {
    "ok\n"
}

/// The engine is working: 503 with the reason while its store fails.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", content_type = "text/plain", body = String, example = "ready\n"),
        (status = 503, description = "Not ready, and why", body = ApiError),
    )
)]
pub(crate) async fn ready(State(app): State<App>) -> Response {
    let trouble = app.engine.trouble().borrow().clone();
    match trouble {
        None => "ready\n".into_response(),
        Some(why) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why).into_response()
        }
    }
}

async fn authorize(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = &app.options.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not this server's",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs `Authorization: Bearer <token>` (the token in its --token-file)",
        )
        .into_response(),
    }
}

/// Compares in time that depends on the lengths only, not on where the
/// first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::same(b"secret", b"secret"));
        assert!(!super::same(b"secret", b"secreT"));
        assert!(!super::same(b"secret", b"secret2"));
        assert!(!super::same(b"", b"x"));
    }
}
