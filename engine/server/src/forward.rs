//! Forwarding: on a store several nodes share, a request that changes an
//! instance another node drives (a signal, a cancel, a token's completion)
//! is sent on to that node, and its answer is this one's — so every node
//! answers for every instance, the same as one node would. Reads need no
//! forwarding: every node reads the whole store.
//!
//! The engine says where a request belongs (`Error::Elsewhere`) only after
//! looking, so the body is kept until the answer is known. A forwarded
//! request carries `x-weft-forwarded`; one that lands on a node that does
//! not drive the instance either (ownership moving) is answered 503 with
//! `Retry-After`, never sent on again.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use weft_model::InstanceId;

use crate::{ApiError, App};

/// Set on a response whose request belongs to another node.
#[derive(Debug, Clone)]
pub(crate) struct Elsewhere(pub InstanceId);

/// Where the other nodes of a shared store answer.
pub trait Peers: Send + Sync {
    /// The API base URL (`http://host:port`) of the live node that drives
    /// `id`, if there is one. May block on the store.
    fn owner(&self, id: &InstanceId) -> Option<String>;
}

const FORWARDED: &str = "x-weft-forwarded";

fn moving(id: &InstanceId, why: &str) -> Response {
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("instance {id} is driven by another node, and {why}: try again in a moment"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

pub(crate) async fn forward(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(peers) = app.options.peers.clone() else {
        return next.run(req).await;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // Inside `/v1` the path has lost its prefix; the peer needs it whole.
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
    let (method, headers) = (parts.method.clone(), parts.headers.clone());
    let bytes = match axum::body::to_bytes(body, app.options.max_deploy_body).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is too large",
            )
            .into_response();
        }
    };
    let answer = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let Some(Elsewhere(id)) = answer.extensions().get::<Elsewhere>().cloned() else {
        return answer;
    };
    if headers.contains_key(FORWARDED) {
        return moving(&id, "this node was told it drives it");
    }
    let lookup = id.clone();
    let owner = tokio::task::spawn_blocking(move || peers.owner(&lookup))
        .await
        .ok()
        .flatten();
    let Some(base) = owner else {
        return moving(&id, "no live node holds its partition now");
    };
    // A node that hangs (stopped, not dead) still accepts connections.
    let sent = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        send(&base, method, &uri, headers, bytes),
    )
    .await
    .unwrap_or_else(|_| Err("no answer within 30 s".into()));
    match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(instance = %id, node = %base, "forwarding failed: {e}");
            moving(&id, &format!("its node at {base} did not answer"))
        }
    }
}

/// Sends the request to `base` and relays the answer.
async fn send(
    base: &str,
    method: Method,
    uri: &axum::http::Uri,
    mut headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
    let authority = base
        .strip_prefix("http://")
        .ok_or("only http:// peers are supported")?
        .trim_end_matches('/')
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    headers.insert(header::HOST, HeaderValue::from_str(&authority)?);
    headers.insert(FORWARDED, HeaderValue::from_static("1"));
    headers.remove(header::CONNECTION);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .body(http_body_util::Full::new(body))?;
    *req.headers_mut() = headers;
    let answer = sender.send_request(req).await?;
    let (parts, body) = answer.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
