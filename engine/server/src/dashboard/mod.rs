//! The web dashboard, served by `weft serve` at `/` on the API's listener:
//! server-rendered HTML, one embedded stylesheet and one small script (live
//! pages refetch their `<main>` every 2 s), no external assets. Every page
//! is made from the engine operations the API calls (`list`, `status`,
//! `history`, `processes`, `deployment`, ...), and every form calls the
//! operation its API endpoint calls, so the dashboard, the API and the CLI
//! agree.
//!
//! With a token (`--token-file`) every page needs it, as the API does: as
//! a bearer header, or the `weft_session` cookie the login form sets
//! (HttpOnly, SameSite=Strict), which holds a digest of the token, not the
//! token: it opens the dashboard and nothing else. Without a token, pages
//! answer only requests addressed to a loopback name (so a site that
//! rebinds its DNS name to 127.0.0.1 cannot read them). Every page is sent
//! with headers that forbid framing it and caching it; requests from other
//! sites that change something are refused for the whole server
//! (`same_origin` in the crate root).

mod actions;
mod html;
mod instance;
mod pages;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::App;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");
const COOKIE: &str = "weft_session";

/// What the session cookie holds for a token: a digest, so the cookie is
/// no use against the API (or anywhere the token works).
fn session_of(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(format!(
        "weft-dashboard-session\0{token}"
    )))
}

/// The dashboard's routes, behind its own check of the token.
pub(crate) fn routes(app: App) -> Router<App> {
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/ui/processes", get(pages::processes))
        .route("/ui/processes/{name}/{version}", get(pages::process))
        .route("/ui/instances", get(pages::instances))
        .route("/ui/instances/{id}", get(instance::instance))
        .route("/ui/instances/{id}/signal", post(actions::signal))
        .route("/ui/instances/{id}/redrive", post(actions::redrive))
        .route("/ui/instances/{id}/cancel", post(actions::cancel))
        .route("/ui/instances/{id}/migrate", post(actions::migrate))
        .route("/ui/instances/{id}/complete", post(actions::complete))
        .route_layer(middleware::from_fn_with_state(app, gate));
    Router::new()
        .route("/ui/assets/app.css", get(css))
        .route("/ui/assets/app.js", get(js))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .merge(pages)
        .layer(middleware::map_response(hardened))
}

async fn hardened(r: Response) -> Response {
    harden(r)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Whether a request carries the token: as a bearer header, or the
/// session cookie made from it.
fn carries(headers: &HeaderMap, token: &str) -> Option<bool> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(crate::same(bearer.as_bytes(), token.as_bytes()));
    }
    let session = session_of(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| crate::same(unescape(v).as_bytes(), session.as_bytes()))
}

/// Whether the request names the server by a loopback name.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What every dashboard answer carries: not to be framed, sniffed or cached.
fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (header::VARY, "X-Weft-Part, Cookie, Authorization"),
    ] {
        if let Ok(v) = axum::http::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    r
}

/// Undoes [`html::url`]: the cookie holds the token percent-encoded.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lets a request through when the server has no token, or it carries the
/// token; otherwise answers 401 with the login form.
async fn gate(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = &app.options.token else {
        if !loopback_host(req.headers()) {
            return harden(
                (
                    StatusCode::MISDIRECTED_REQUEST,
                    "this server has no token, so its dashboard answers only at a loopback address (127.0.0.1, localhost)",
                )
                    .into_response(),
            );
        }
        return harden(next.run(req).await);
    };
    match carries(req.headers(), token) {
        Some(true) => harden(next.run(req).await),
        given => harden(
            (
                StatusCode::UNAUTHORIZED,
                Html(login_page(
                    given.is_some().then_some("that token is not this server's"),
                )),
            )
                .into_response(),
        ),
    }
}

fn login_page(problem: Option<&str>) -> String {
    html::page(
        "Sign in",
        html::Section::Overview,
        false,
        "",
        &format!(
            "<h1>Sign in</h1>{}<p>This server needs its token (the one in its <code>--token-file</code>).</p>\
             <form method=\"post\" action=\"/ui/login\" class=\"filters\">\
             <label>Token<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
             <button type=\"submit\">Sign in</button></form>",
            html::flash(None, problem)
        ),
    )
}

async fn login_form() -> Html<String> {
    Html(login_page(None))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cookie_holds_any_token() {
        let token = "a;b c=%d/é";
        assert_eq!(super::unescape(&super::html::url(token)), token);
        assert_eq!(super::unescape("%zz%4"), "%zz%4");
    }
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

async fn login(
    State(app): State<App>,
    form: Result<axum::Form<Login>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(token) = &app.options.token else {
        return Redirect::to("/").into_response();
    };
    let Ok(axum::Form(login)) = form else {
        return (
            StatusCode::BAD_REQUEST,
            Html(login_page(Some("give the token"))),
        )
            .into_response();
    };
    if !crate::same(login.token.trim().as_bytes(), token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            Html(login_page(Some("that token is not this server's"))),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        session_of(token)
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}
