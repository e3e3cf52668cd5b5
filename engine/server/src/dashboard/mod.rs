//! The web dashboard, served by `weft serve` at `/` on the API's listener:
//! server-rendered HTML, one embedded stylesheet and one small script (live
//! pages refetch their `<main>` every 2 s), no external assets. Every page
//! is made from the engine operations the API calls (`list`, `status`,
//! `history`, `processes`, `deployment`, ...), and every form calls the
//! operation its API endpoint calls, so the dashboard, the API and the CLI
//! agree.
//!
//! With a token (`--token-file`) every page needs it, as the API does: as
//! a bearer header, or in the `weft_token` cookie the login form sets
//! (HttpOnly, SameSite=Strict, so other sites cannot make a browser send
//! it with a request of theirs).

mod html;
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
const COOKIE: &str = "weft_token";

/// The dashboard's routes, behind its own check of the token.
pub(crate) fn routes(app: App) -> Router<App> {
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/ui/processes", get(pages::processes))
        .route("/ui/processes/{name}/{version}", get(pages::process))
        .route("/ui/instances", get(pages::instances))
        .route("/ui/instances/{id}", get(pages::instance))
        .route("/ui/instances/{id}/signal", post(pages::signal))
        .route("/ui/instances/{id}/redrive", post(pages::redrive))
        .route("/ui/instances/{id}/cancel", post(pages::cancel))
        .route("/ui/instances/{id}/migrate", post(pages::migrate))
        .route("/ui/instances/{id}/complete", post(pages::complete))
        .route_layer(middleware::from_fn_with_state(app, gate));
    Router::new()
        .route("/ui/assets/app.css", get(css))
        .route("/ui/assets/app.js", get(js))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .merge(pages)
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

/// The token a request carries: a bearer header, or the login cookie.
fn given_token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| unescape(v))
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
        return next.run(req).await;
    };
    match given_token(req.headers()) {
        Some(g) if crate::same(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        given => (
            StatusCode::UNAUTHORIZED,
            Html(login_page(
                given.is_some().then_some("that token is not this server's"),
            )),
        )
            .into_response(),
    }
}

fn login_page(problem: Option<&str>) -> String {
    html::page(
        "Sign in",
        html::Section::Overview,
        false,
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
        html::url(login.token.trim())
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}
