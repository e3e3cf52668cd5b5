//! The instance page: the diagram with the path taken, the timeline, the
//! step in progress, the data, and the forms of the actions that apply.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use weft_model::diagram::Trail;
use weft_model::{Instance, Phase, Record, RecordKind, StateKind, Status};

use super::html::{self, Section, esc, url};
use crate::App;

use super::pages::{Flash, TIMELINE, problem, render, short};

/// The current state, the states visited and the transitions taken, at
/// the top level of the process.
fn trail_of(inst: &Instance, history: &[Record]) -> Trail {
    let mut trail = Trail {
        current: Some(inst.state.clone()),
        ..Trail::default()
    };
    for r in history.iter().filter(|r| r.branch.is_none()) {
        if let RecordKind::Transition { from, to, .. } = &r.kind {
            trail.visited.insert(from.clone());
            trail.visited.insert(to.clone());
            trail.taken.insert((from.clone(), to.clone()));
        }
    }
    trail
}

/// The input of the step an attempt belongs to: recorded on the
/// transition that ended the step visit (every attempt of a visit gets the
/// same input), or the step in progress.
fn attempt_input<'a>(history: &'a [Record], at: usize, inst: &'a Instance) -> Option<&'a Value> {
    let Some(RecordKind::AttemptFailed { state, .. }) = history.get(at).map(|r| &r.kind) else {
        return None;
    };
    let branch = history.get(at).and_then(|r| r.branch.as_deref());
    let ended = history.iter().skip(at + 1).find_map(|r| match &r.kind {
        RecordKind::Transition { from, input, .. }
            if from == state && r.branch.as_deref() == branch =>
        {
            Some(input.as_ref())
        }
        _ => None,
    });
    match ended {
        Some(input) => input,
        None => inst
            .step
            .as_ref()
            .filter(|s| s.state == *state && branch.is_none())
            .map(|s| &s.input),
    }
}

/// One history record as a row of the timeline; `input`, for an attempt,
/// the input its step got.
fn timeline_row(r: &Record, input: Option<&Value>, out: &mut String) {
    let mut input = input.cloned();
    let (what, detail): (String, Option<Value>) = match &r.kind {
        RecordKind::Started {
            process,
            version,
            input,
        } => (format!("started {process} v{version}"), Some(input.clone())),
        RecordKind::Transition {
            from,
            event,
            to,
            took,
            result,
            failure,
            input: got,
            ..
        } => {
            let mut w = format!("{from} —{event}→ {to} (took {took})");
            if let Some(f) = failure {
                let _ = write!(w, ": {}: {}", f.kind, f.message);
            }
            input = got.clone();
            (w, result.clone())
        }
        RecordKind::AttemptFailed {
            state,
            action,
            attempt,
            failure,
            retry_at,
            ..
        } => (
            format!(
                "{state}: attempt {attempt} of {action} failed: {}: {}; retry at {retry_at}",
                failure.kind, failure.message
            ),
            None,
        ),
        RecordKind::Pending { state, token } => {
            (format!("{state}: waiting on token {token}"), None)
        }
        RecordKind::Succeeded { state, output } => {
            (format!("succeeded in {state}"), Some(output.clone()))
        }
        RecordKind::Failed { state, error } => (
            format!("failed in {state}: {}: {}", error.kind, error.message),
            None,
        ),
        RecordKind::Parked { state, error } => (
            format!("parked in {state}: {}: {}", error.kind, error.message),
            None,
        ),
        other => {
            let v = serde_json::to_value(other).unwrap_or(Value::Null);
            let kind = v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("event")
                .replace('_', " ");
            let mut rest = v.clone();
            if let Some(o) = rest.as_object_mut() {
                o.remove("type");
            }
            (kind, Some(rest))
        }
    };
    let kind = serde_json::to_value(&r.kind)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let ran = match (&r.bindings, &r.plugin) {
        (Some(rev), Some(sha)) => format!(
            "<br><span class=\"muted\">bindings r{rev}, component <code title=\"{}\">{}</code></span>",
            esc(sha),
            esc(short(sha))
        ),
        (Some(rev), None) => format!("<br><span class=\"muted\">bindings r{rev}</span>"),
        _ => String::new(),
    };
    let branch = r
        .branch
        .as_deref()
        .map(|b| format!("[{}] ", esc(b)))
        .unwrap_or_default();
    let mut detail = match detail {
        Some(v) if !v.is_null() && v != Value::Object(Default::default()) => {
            let label = if matches!(r.kind, RecordKind::Transition { .. }) {
                "output"
            } else {
                "data"
            };
            format!(
                "<details><summary>{label}</summary>{}</details>",
                html::json(&v)
            )
        }
        _ => String::new(),
    };
    if let Some(v) = input {
        detail = format!(
            "<details class=\"input\"><summary>input</summary>{}</details>{detail}",
            html::json(&v)
        );
    }
    let _ = write!(
        out,
        "<tr data-kind=\"{kind}\"><td class=\"num\">{}</td><td>{}</td><td>{branch}{}{ran}{detail}</td></tr>",
        r.seq,
        html::time(r.at),
        esc(&what)
    );
}

/// `/ui/instances/{id}`: the diagram with its path, the timeline, the data
/// and what an operator can do.
pub(crate) async fn instance(
    State(app): State<App>,
    headers: HeaderMap,
    Path(target): Path<String>,
    flash: Result<Query<Flash>, QueryRejection>,
) -> Response {
    // Only the fixed messages of the actions are shown from the query, so
    // a link cannot put words of its own on the page.
    let ok = flash
        .ok()
        .and_then(|Query(f)| f.ok)
        .and_then(|code| done_text(&code));
    instance_page(&app, &headers, &target, ok, None).await
}

/// What an action that went through says, by its code.
fn done_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "signalled" => "Signal sent.",
        "redriven" => "Redriven: the step it stopped at runs again.",
        "cancelled" => "Cancelled.",
        "compensating" => "Cancelled: its completed steps are being undone.",
        "migrated" => "Migrated.",
        "completed" => "The pending step is completed.",
        _ => return None,
    })
}

pub(super) async fn instance_page(
    app: &App,
    headers: &HeaderMap,
    target: &str,
    ok: Option<&str>,
    err: Option<&str>,
) -> Response {
    let headers = headers.clone();
    let target = target.to_owned();
    let e = &app.engine;
    let id = match e.resolve(&target).await {
        Ok(id) => id,
        Err(err) => return problem(&headers, err),
    };
    let inst = match e.status(&id).await {
        Ok(i) => i,
        Err(err) => return problem(&headers, err),
    };
    // The newest records: a very long history is read a page at a time
    // through the API.
    let from = inst.seq.saturating_sub(TIMELINE);
    let history = match e.history(&id, from).await {
        Ok(h) => h,
        Err(err) => return problem(&headers, err),
    };
    let process = match e.process(&inst.process, inst.version).await {
        Ok(p) => p,
        Err(err) => return problem(&headers, err),
    };
    let trail = trail_of(&inst, &history);
    let svg = weft_model::diagram::svg(&process, Some(&trail), &BTreeMap::new());
    let mut main = html::flash(ok, err);
    let _ = write!(
        main,
        "<h1>Instance <span class=\"mono\">{id}</span></h1>\
         <dl class=\"kv\" id=\"summary\"><dt>process</dt><dd><a href=\"/ui/processes/{pu}/{v}\">{p}</a> v{v}</dd>\
         <dt>key</dt><dd>{key}</dd><dt>status</dt><dd id=\"status\" data-status=\"{s}\">{sb}</dd>\
         <dt>state</dt><dd id=\"state\">{state}</dd><dt>started</dt><dd>{c}</dd><dt>updated</dt><dd>{u}</dd>",
        id = esc(id.as_str()),
        pu = url(&inst.process),
        p = esc(&inst.process),
        v = inst.version,
        key = esc(inst.key.as_deref().unwrap_or("none")),
        s = inst.status,
        sb = html::status(inst.status),
        state = esc(&inst.state),
        c = html::time(inst.created_at),
        u = html::time(inst.updated_at),
    );
    if let Some(err) = &inst.error {
        let _ = write!(
            main,
            "<dt>why</dt><dd>{}: {} (in {})</dd>",
            esc(&err.kind),
            esc(&err.message),
            esc(&err.state)
        );
    }
    for o in &inst.overdue {
        let _ = write!(
            main,
            "<dt>overdue</dt><dd>{} past its sla of {}</dd>",
            esc(o.state.as_deref().unwrap_or("the process")),
            o.sla
        );
    }
    main.push_str("</dl>");
    main.push_str("<div class=\"grid2\"><section>");
    let _ = write!(
        main,
        "<h2>Path</h2><div class=\"diagram\" id=\"diagram\">{svg}</div>"
    );
    if let Some(step) = &inst.step {
        let phase = match &step.phase {
            Phase::Invoking => "invoking".to_owned(),
            Phase::Pending { token } => format!("pending on token {token}"),
            Phase::Backoff { until } => format!("retrying at {until}"),
        };
        let _ = write!(
            main,
            "<h2>Current step</h2><dl class=\"kv\" id=\"step\"><dt>state</dt><dd>{}</dd><dt>action</dt><dd>{}</dd>\
             <dt>attempt</dt><dd>{}</dd><dt>phase</dt><dd>{}</dd><dt>key</dt><dd class=\"mono\">{}</dd></dl>\
             <h3>Input it got</h3>{}",
            esc(&step.state),
            esc(&step.action),
            step.attempt,
            esc(&phase),
            esc(&step.key),
            html::json(&step.input)
        );
    }
    if from > 0 {
        let _ = write!(
            main,
            "<p class=\"muted\">The newest {TIMELINE} of its {} history records; all of them: <code>GET /v1/instances/{}/history</code>.</p>",
            inst.seq,
            esc(id.as_str())
        );
    }
    main.push_str("<h2>Timeline</h2><div class=\"scroll\"><table class=\"tl\" id=\"timeline\"><thead><tr><th class=\"num\">#</th><th>at</th><th>what</th></tr></thead><tbody>");
    for (i, r) in history.iter().enumerate() {
        timeline_row(r, attempt_input(&history, i, &inst), &mut main);
    }
    main.push_str("</tbody></table></div></section><section><h2>Act</h2><div class=\"acts\">");
    let base = format!("/ui/instances/{}", url(id.as_str()));
    let mut any = false;
    if inst.status == Status::Waiting {
        let events: Vec<String> = match process.state(&inst.state).map(|s| &s.kind) {
            Some(StateKind::Wait(w)) => w.events.clone(),
            _ => inst
                .waiting
                .as_ref()
                .map(|w| w.events.clone())
                .unwrap_or_default(),
        };
        if !events.is_empty() {
            any = true;
            let options: String = events
                .iter()
                .map(|ev| format!("<option>{}</option>", esc(ev)))
                .collect();
            let _ = write!(
                main,
                "<form class=\"act\" method=\"post\" action=\"{base}/signal\" id=\"signal\"><h3>Signal</h3>\
                 <label>Event<select name=\"event\">{options}</select></label>\
                 <label>Payload (JSON)<textarea name=\"payload\" spellcheck=\"false\">{{}}</textarea></label>\
                 <button type=\"submit\">Send</button></form>"
            );
        }
    }
    if let Some(step) = &inst.step
        && let Phase::Pending { token } = &step.phase
    {
        any = true;
        let _ = write!(
            main,
            "<form class=\"act\" method=\"post\" action=\"{base}/complete\" id=\"complete\"><h3>Complete the pending step</h3>\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <label>Output (JSON)<textarea name=\"output\" spellcheck=\"false\">{{}}</textarea></label>\
             <label>…or fail it with kind<input name=\"error\" placeholder=\"e.g. rejected\"></label>\
             <label>Message<input name=\"message\"></label>\
             <button type=\"submit\">Complete</button></form>",
            esc(token)
        );
    }
    if inst.status == Status::Parked {
        any = true;
        let _ = write!(
            main,
            "<form class=\"act\" method=\"post\" action=\"{base}/redrive\" id=\"redrive\"><h3>Redrive</h3>\
             <p class=\"muted\">Retries the step it stopped at; completed steps do not run again.</p>\
             <button type=\"submit\">Redrive</button></form>"
        );
    }
    if !inst.status.is_finished() {
        any = true;
        let _ = write!(
            main,
            "<form class=\"act\" method=\"post\" action=\"{base}/cancel\" id=\"cancel\"><h3>Cancel</h3>\
             <label><span><input type=\"checkbox\" name=\"compensate\" value=\"true\"> undo its completed steps first</span></label>\
             <button type=\"submit\" class=\"danger\">Cancel the instance</button></form>"
        );
        let versions: Vec<u32> = e
            .processes()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|p| p.name == inst.process && p.version != inst.version)
            .map(|p| p.version)
            .collect();
        if !versions.is_empty() {
            let options: String = versions
                .iter()
                .map(|v| format!("<option value=\"{v}\">v{v}</option>"))
                .collect();
            let _ = write!(
                main,
                "<form class=\"act\" method=\"post\" action=\"{base}/migrate\" id=\"migrate\"><h3>Migrate</h3>\
                 <label>To version<select name=\"version\">{options}</select></label>\
                 <button type=\"submit\">Migrate</button></form>"
            );
        }
    }
    if !any {
        main.push_str("<p class=\"empty\">It has ended: nothing to do.</p>");
    }
    main.push_str("</div><h2>Data</h2>");
    main.push_str(&html::json(&inst.data));
    if let Some(out) = &inst.output {
        main.push_str("<h2>Output</h2>");
        main.push_str(&html::json(out));
    }
    main.push_str(
        "</section></div><p class=\"live\">Updates every 2 s while you are not typing.</p>",
    );
    render(
        &headers,
        &format!("Instance {}", id.as_str()),
        Section::Instances,
        true,
        main,
    )
}
