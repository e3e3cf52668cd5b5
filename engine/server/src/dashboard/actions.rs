//! The forms' actions: each calls the engine operation its API endpoint
//! calls, then goes back to the instance page with what came of it.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use weft_core::{Completion, Operation};
use weft_model::{Failure, Phase};

use super::html::url;
use crate::App;

use super::instance::instance_page;

/// Back to the instance page after an action: a redirect with its code
/// when it went through; the page itself with the reason (422) when not.
async fn back(
    app: &App,
    headers: &HeaderMap,
    target: &str,
    outcome: Result<&str, String>,
) -> Response {
    match outcome {
        Ok(code) => {
            Redirect::to(&format!("/ui/instances/{}?ok={code}", url(target))).into_response()
        }
        Err(why) => {
            let page = instance_page(app, headers, target, None, Some(&why)).await;
            if page.status() == StatusCode::OK {
                (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
            } else {
                page
            }
        }
    }
}

async fn act(app: &App, headers: &HeaderMap, target: &str, op: Operation, code: &str) -> Response {
    let outcome = match app.engine.resolve(target).await {
        Ok(id) => app
            .engine
            .operate(&id, op, None)
            .await
            .map(|_| code)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    back(app, headers, target, outcome).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignalForm {
    event: String,
    #[serde(default)]
    payload: String,
}

pub(crate) async fn signal(
    State(app): State<App>,
    headers: HeaderMap,
    Path(target): Path<String>,
    form: Result<Form<SignalForm>, FormRejection>,
) -> Response {
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return back(&app, &headers, &target, Err(format!("the form: {e}"))).await,
    };
    let text = if f.payload.trim().is_empty() {
        "{}"
    } else {
        f.payload.trim()
    };
    let data = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(e) => {
            let why = format!("the payload is not JSON: {e}");
            return back(&app, &headers, &target, Err(why)).await;
        }
    };
    if let Err(why) = weft_model::limits::check(&data) {
        return back(&app, &headers, &target, Err(format!("the payload {why}"))).await;
    }
    act(
        &app,
        &headers,
        &target,
        Operation::Signal {
            name: f.event,
            data,
        },
        "signalled",
    )
    .await
}

pub(crate) async fn redrive(
    State(app): State<App>,
    headers: HeaderMap,
    Path(target): Path<String>,
) -> Response {
    act(&app, &headers, &target, Operation::Redrive, "redriven").await
}

#[derive(Debug, Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    compensate: Option<String>,
}

pub(crate) async fn cancel(
    State(app): State<App>,
    headers: HeaderMap,
    Path(target): Path<String>,
    form: Result<Form<CancelForm>, FormRejection>,
) -> Response {
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return back(&app, &headers, &target, Err(format!("the form: {e}"))).await,
    };
    let compensate = match f.compensate.as_deref().map(str::trim) {
        None | Some("" | "false" | "off" | "no") => false,
        Some("true" | "on" | "yes") => true,
        Some(other) => {
            let why = format!("compensate is '{other}': give true or false");
            return back(&app, &headers, &target, Err(why)).await;
        }
    };
    let code = if compensate {
        "compensating"
    } else {
        "cancelled"
    };
    act(
        &app,
        &headers,
        &target,
        Operation::Cancel { compensate },
        code,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct MigrateForm {
    version: u32,
}

pub(crate) async fn migrate(
    State(app): State<App>,
    headers: HeaderMap,
    Path(target): Path<String>,
    form: Result<Form<MigrateForm>, FormRejection>,
) -> Response {
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return back(&app, &headers, &target, Err(format!("the form: {e}"))).await,
    };
    act(
        &app,
        &headers,
        &target,
        Operation::Migrate { version: f.version },
        "migrated",
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompleteForm {
    token: String,
    #[serde(default)]
    output: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

pub(crate) async fn complete(
    State(app): State<App>,
    headers: HeaderMap,
    Path(target): Path<String>,
    form: Result<Form<CompleteForm>, FormRejection>,
) -> Response {
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return back(&app, &headers, &target, Err(format!("the form: {e}"))).await,
    };
    let output = f.output.trim();
    let completion = if f.error.trim().is_empty() {
        let text = if output.is_empty() { "{}" } else { output };
        match serde_json::from_str::<Value>(text) {
            Ok(v) => Completion::Done(v),
            Err(e) => {
                let why = format!("the output is not JSON: {e}");
                return back(&app, &headers, &target, Err(why)).await;
            }
        }
    } else if !output.is_empty() && output != "{}" {
        let why = "give an output or an error kind, not both".to_owned();
        return back(&app, &headers, &target, Err(why)).await;
    } else {
        let message = if f.message.trim().is_empty() {
            "completed with an error"
        } else {
            f.message.trim()
        };
        Completion::Failed(Failure::new(f.error.trim(), message))
    };
    // The token must be this instance's pending step's.
    let mine = match app.engine.resolve(&target).await {
        Ok(id) => app
            .engine
            .status(&id)
            .await
            .ok()
            .and_then(|i| i.step)
            .is_some_and(|s| matches!(&s.phase, Phase::Pending { token } if *token == f.token)),
        Err(_) => false,
    };
    if !mine {
        let why = "that token is not this instance's pending step's".to_owned();
        return back(&app, &headers, &target, Err(why)).await;
    }
    let outcome = app
        .engine
        .complete(&f.token, completion)
        .await
        .map(|_| "completed")
        .map_err(|e| e.to_string());
    back(&app, &headers, &target, outcome).await
}
