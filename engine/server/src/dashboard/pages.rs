//! The overview, the processes and a process, and the list of instances:
//! each reads through the engine's public operations and renders. The
//! instance page is in `instance`, the forms' actions in `actions`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use weft_core::PageQuery;
use weft_model::{InstanceId, Millis, Status};

use super::html::{self, Section, esc, url};
use crate::App;

/// Instances per page of the list.
pub(super) const PAGE: usize = 50;
/// History records an instance page shows, the newest.
pub(super) const TIMELINE: u64 = 1_000;
/// Instances one call of the engine's list reads at most, for a page.
pub(super) const READ_PER_CALL: usize = 2_000;
/// Calls of the engine's list one page makes at most: 10,000 instances.
pub(super) const CALLS: usize = 5;
/// Unfinished instances read to count per state on a diagram (the rest
/// are said to be more).
pub(super) const COUNT_CAP: usize = 20_000;

/// A page, or only its `<main>` when the live script asks.
pub(super) fn render(
    headers: &HeaderMap,
    title: &str,
    section: Section,
    live: bool,
    main: String,
) -> Response {
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        main.hash(&mut h);
        format!("{:016x}", h.finish())
    };
    if headers.get("x-weft-part").is_some_and(|v| v == "main") {
        return ([("x-weft-digest", digest)], Html(main)).into_response();
    }
    Html(html::page(title, section, live, &digest, &main)).into_response()
}

/// An engine error as a page.
pub(super) fn problem(headers: &HeaderMap, e: weft_core::Error) -> Response {
    let status = match &e {
        weft_core::Error::NoProcess(_)
        | weft_core::Error::NoVersion { .. }
        | weft_core::Error::NoInstance(_)
        | weft_core::Error::UnknownTarget(_) => StatusCode::NOT_FOUND,
        weft_core::Error::Store(_) | weft_core::Error::Stopped | weft_core::Error::WriterGone => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let main = format!(
        "<h1>{}</h1><p class=\"flash err\" role=\"alert\">{}</p>",
        status,
        esc(&e.to_string())
    );
    (
        status,
        render(headers, "Problem", Section::Overview, false, main),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Flash {
    #[serde(default)]
    pub(super) ok: Option<String>,
}

/// Counters from the metrics recorder, by metric and label set.
fn metric_lines(app: &App, name: &str) -> Vec<(String, f64)> {
    let Some(handle) = &app.options.metrics else {
        return Vec::new();
    };
    handle
        .render()
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `action="charge",kind="timeout"` → its values by label.
fn labels(series: &str) -> BTreeMap<String, String> {
    let inner = series
        .split_once('{')
        .and_then(|(_, rest)| rest.strip_suffix('}'))
        .unwrap_or_default();
    inner
        .split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once("=\"")?;
            Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
        })
        .collect()
}

fn summary_rows(items: &[weft_core::Summary], out: &mut String) {
    for i in items {
        let _ = write!(
            out,
            "<tr><td class=\"mono\"><a href=\"/ui/instances/{id}\">{id}</a></td><td><a href=\"/ui/processes/{pu}/{v}\">{p}</a> v{v}</td>\
             <td>{key}</td><td>{st}</td><td>{state}</td><td>{at}</td></tr>",
            id = esc(i.id.as_str()),
            pu = url(&i.process),
            p = esc(&i.process),
            v = i.version,
            key = esc(i.key.as_deref().unwrap_or("")),
            st = html::status(i.status),
            state = esc(&i.state),
            at = html::time(i.updated_at),
        );
    }
}

const SUMMARY_HEAD: &str = "<thead><tr><th>instance</th><th>process</th><th>key</th><th>status</th><th>state</th><th>updated</th></tr></thead>";

/// `/`: counts, what needs an operator, failures and step times.
pub(crate) async fn overview(State(app): State<App>, headers: HeaderMap) -> Response {
    let e = &app.engine;
    let gauges = match e.gauges().await {
        Ok(g) => g,
        Err(err) => return problem(&headers, err),
    };
    let mut main = String::from("<h1>Overview</h1><div class=\"cards\" id=\"counts\">");
    for (status, n) in &gauges.by_status {
        let _ = write!(
            main,
            "<a class=\"card\" href=\"/ui/instances?status={status}\" data-status=\"{status}\"><div class=\"n\">{n}</div><div class=\"l\">{status}</div></a>"
        );
    }
    let _ = write!(
        main,
        "<div class=\"card\"><div class=\"n\">{}</div><div class=\"l\">steps in flight</div></div></div>",
        gauges.outbox
    );
    let total: usize = gauges.by_status.iter().map(|(_, n)| n).sum();
    let processes = match e.processes().await {
        Ok(p) => p,
        Err(err) => return problem(&headers, err),
    };
    if processes.is_empty() {
        main.push_str("<p class=\"empty\">No process deployed yet: deploy one with <code>weft deploy process.yaml --bindings bindings.yaml</code>.</p>");
    } else if total == 0 {
        main.push_str("<p class=\"empty\">No instances yet: start one with <code>weft start &lt;process&gt;</code> or <code>POST /v1/processes/&lt;process&gt;/instances</code>.</p>");
    }

    // Unfinished instances by process.
    let mut by_process: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for (col, status) in [Status::Running, Status::Waiting, Status::Parked]
        .into_iter()
        .enumerate()
    {
        let mut after = None;
        let mut seen = 0;
        loop {
            let q = PageQuery {
                status: Some(status),
                after: after.clone(),
                limit: 1_000,
                ..PageQuery::default()
            };
            let Ok(page) = e.list(q).await else { break };
            for i in &page.items {
                if let Some(row) = by_process.get_mut(&i.process) {
                    row[col] += 1;
                } else {
                    let mut row = [0; 3];
                    row[col] = 1;
                    by_process.insert(i.process.clone(), row);
                }
            }
            seen += page.items.len();
            match page.next {
                Some(n) if seen < COUNT_CAP => after = Some(n),
                _ => break,
            }
        }
    }
    main.push_str("<h2>Unfinished, by process</h2>");
    if by_process.is_empty() {
        main.push_str("<p class=\"empty\">Nothing running, waiting or parked.</p>");
    } else {
        main.push_str("<div class=\"scroll\"><table id=\"by-process\"><thead><tr><th>process</th><th class=\"num\">running</th><th class=\"num\">waiting</th><th class=\"num\">parked</th></tr></thead><tbody>");
        for (p, [r, w, k]) in &by_process {
            let pu = url(p);
            let _ = write!(
                main,
                "<tr data-process=\"{pe}\"><td>{pe}</td><td class=\"num\"><a href=\"/ui/instances?process={pu}&amp;status=running\">{r}</a></td>\
                 <td class=\"num\"><a href=\"/ui/instances?process={pu}&amp;status=waiting\">{w}</a></td>\
                 <td class=\"num\"><a href=\"/ui/instances?process={pu}&amp;status=parked\">{k}</a></td></tr>",
                pe = esc(p)
            );
        }
        main.push_str("</tbody></table></div>");
    }

    main.push_str("<div class=\"grid2\"><section><h2>Parked: waiting for an operator</h2>");
    let parked = e
        .list(PageQuery {
            status: Some(Status::Parked),
            limit: 20,
            ..PageQuery::default()
        })
        .await;
    match parked {
        Ok(p) if !p.items.is_empty() => {
            main.push_str("<div class=\"scroll\"><table id=\"parked\"><thead><tr><th>instance</th><th>process</th><th>state</th><th>why</th></tr></thead><tbody>");
            for s in &p.items {
                let why = match e.status(&s.id).await {
                    Ok(i) => i
                        .error
                        .map(|er| format!("{}: {}", er.kind, er.message))
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let _ = write!(
                    main,
                    "<tr><td class=\"mono\"><a href=\"/ui/instances/{id}\">{id}</a></td><td>{p}</td><td>{st}</td><td>{why}</td></tr>",
                    id = esc(s.id.as_str()),
                    p = esc(&s.process),
                    st = esc(&s.state),
                    why = esc(&why)
                );
            }
            main.push_str("</tbody></table></div>");
        }
        _ => main.push_str("<p class=\"empty\">No parked instance.</p>"),
    }
    main.push_str("<h2>Stuck: past an SLA</h2>");
    let stuck = e
        .list(PageQuery {
            stuck: true,
            limit: 20,
            max_read: Some(COUNT_CAP),
            ..PageQuery::default()
        })
        .await;
    match stuck {
        Ok(p) if !p.items.is_empty() => {
            main.push_str("<div class=\"scroll\"><table id=\"stuck\">");
            main.push_str(SUMMARY_HEAD);
            main.push_str("<tbody>");
            summary_rows(&p.items, &mut main);
            main.push_str("</tbody></table></div>");
        }
        Ok(p) if p.next.is_some() => main.push_str(
            "<p class=\"empty\">None of the first 20,000 unfinished instances is past an SLA: <code>weft list --stuck</code> reads them all.</p>",
        ),
        _ => main.push_str("<p class=\"empty\">No instance past an SLA.</p>"),
    }
    main.push_str("</section><section><h2>Failures since this server started</h2>");
    let failures = metric_lines(&app, "weft_step_failures_total{");
    if failures.is_empty() {
        main.push_str("<p class=\"empty\">No failed attempt.</p>");
    } else {
        main.push_str("<table id=\"failures\"><thead><tr><th>action</th><th>kind</th><th class=\"num\">attempts</th></tr></thead><tbody>");
        for (series, n) in &failures {
            let l = labels(series);
            let _ = write!(
                main,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>",
                esc(l.get("action").map_or("", String::as_str)),
                esc(l.get("kind").map_or("", String::as_str))
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str("<h2>Steps since this server started</h2>");
    let sums = metric_lines(&app, "weft_step_duration_seconds_sum{");
    let counts = metric_lines(&app, "weft_step_duration_seconds_count{");
    let transitions: f64 = metric_lines(&app, "weft_transitions_total{")
        .iter()
        .map(|(_, n)| n)
        .sum();
    let _ = write!(
        main,
        "<p>{} transitions committed.</p>",
        transitions.max(0.0) as u64
    );
    if counts.is_empty() {
        main.push_str("<p class=\"empty\">No step has run.</p>");
    } else {
        main.push_str("<table id=\"latency\"><thead><tr><th>action</th><th>outcome</th><th class=\"num\">attempts</th><th class=\"num\">mean</th></tr></thead><tbody>");
        for (series, n) in &counts {
            let l = labels(series);
            let sum = sums
                .iter()
                .find(|(s, _)| labels(s) == l)
                .map_or(0.0, |(_, v)| *v);
            let mean = if *n > 0.0 { sum / n * 1e3 } else { 0.0 };
            let _ = write!(
                main,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td><td class=\"num\">{mean:.1} ms</td></tr>",
                esc(l.get("action").map_or("", String::as_str)),
                esc(l.get("outcome").map_or("", String::as_str))
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str("</section></div><p class=\"live\">Updates every 2 s.</p>");
    render(&headers, "Overview", Section::Overview, true, main)
}

/// `/ui/processes`: every deployed version.
pub(crate) async fn processes(State(app): State<App>, headers: HeaderMap) -> Response {
    let list = match app.engine.processes().await {
        Ok(l) => l,
        Err(e) => return problem(&headers, e),
    };
    let mut main = String::from("<h1>Processes</h1>");
    if list.is_empty() {
        main.push_str("<p class=\"empty\">No process deployed yet: deploy one with <code>weft deploy process.yaml --bindings bindings.yaml</code> or <code>POST /v1/deployments</code>.</p>");
        return render(&headers, "Processes", Section::Processes, false, main);
    }
    main.push_str("<div class=\"scroll\"><table id=\"processes\"><thead><tr><th>process</th><th>version</th><th>deployed</th><th>bindings</th></tr></thead><tbody>");
    for p in &list {
        let revision = match app.engine.deployment(&p.name, p.version).await {
            Ok(Some(d)) => format!("revision {}", d.revision),
            _ => "none".to_owned(),
        };
        let _ = write!(
            main,
            "<tr><td><a href=\"/ui/processes/{u}/{v}\">{n}</a></td><td>v{v}</td><td>{at}</td><td>{revision}</td></tr>",
            u = url(&p.name),
            n = esc(&p.name),
            v = p.version,
            at = html::time(p.deployed_at)
        );
    }
    main.push_str("</tbody></table></div>");
    render(&headers, "Processes", Section::Processes, false, main)
}

/// Unfinished instances of a version, by state (at most `COUNT_CAP` read).
async fn counts_by_state(app: &App, name: &str, version: u32) -> (BTreeMap<String, usize>, bool) {
    let mut counts = BTreeMap::new();
    let mut read = 0;
    for status in [Status::Running, Status::Waiting, Status::Parked] {
        let mut after = None;
        loop {
            // Reads at most 1,000 instances a call, whatever they match.
            let q = PageQuery {
                process: Some(name.to_owned()),
                status: Some(status),
                after: after.clone(),
                limit: 1_000,
                max_read: Some(1_000),
                ..PageQuery::default()
            };
            let Ok(page) = app.engine.list(q).await else {
                break;
            };
            for i in page.items.iter().filter(|i| i.version == version) {
                *counts.entry(i.state.clone()).or_insert(0) += 1;
            }
            read += 1_000;
            if read >= COUNT_CAP {
                return (counts, true);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    (counts, false)
}

pub(super) fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// `/ui/processes/{name}/{version}`: the diagram with counts, the bindings.
pub(crate) async fn process(
    State(app): State<App>,
    headers: HeaderMap,
    p: Result<Path<(String, u32)>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path((name, version))) = p else {
        let main = "<h1>404 Not Found</h1><p class=\"flash err\" role=\"alert\">A process page is /ui/processes/&lt;name&gt;/&lt;version number&gt;: see <a href=\"/ui/processes\">the processes</a>.</p>".to_owned();
        return (
            StatusCode::NOT_FOUND,
            render(&headers, "Problem", Section::Processes, false, main),
        )
            .into_response();
    };
    let process = match app.engine.process(&name, version).await {
        Ok(p) => p,
        Err(e) => return problem(&headers, e),
    };
    let (counts, capped) = counts_by_state(&app, &name, version).await;
    let svg = weft_model::diagram::svg(&process, None, &counts);
    let mut main = format!(
        "<h1>{} <span class=\"muted\">v{version}</span></h1>\
         <p><a href=\"/ui/instances?process={}\">Its instances</a></p>\
         <h2>Diagram</h2><p class=\"muted\">Badges: unfinished instances of this version in each state{}.</p>\
         <div class=\"diagram\" id=\"diagram\">{svg}</div>",
        esc(&name),
        url(&name),
        if capped {
            " (the first 20,000 read)"
        } else {
            ""
        }
    );
    main.push_str("<h2>Bindings</h2>");
    match app.engine.deployment(&name, version).await {
        Ok(Some(d)) => {
            let _ = write!(
                main,
                "<p>Revision {}, deployed {}.</p>",
                d.revision,
                html::time(d.deployed_at)
            );
            main.push_str("<div class=\"scroll\"><table id=\"bindings\"><thead><tr><th>action</th><th>plugin</th><th>component</th><th>limits</th><th>capabilities</th></tr></thead><tbody>");
            for (action, b) in &d.bindings.actions {
                let sha = d.digest_of(action).unwrap_or_default();
                let canary = d
                    .canary_for(action)
                    .map(|c| {
                        format!(
                            "<br>canary {}% on <code>{}</code>",
                            c.policy.percent,
                            esc(short(&c.sha256))
                        )
                    })
                    .unwrap_or_default();
                let mut limits = vec![
                    format!("timeout {}", b.timeout),
                    format!("memory {} MiB", b.memory >> 20),
                ];
                if let Some(f) = b.fuel {
                    limits.push(format!("fuel {f}"));
                }
                let l = serde_json::to_value(&b.limits).unwrap_or(Value::Null);
                if let Some(obj) = l.as_object() {
                    for (k, v) in obj {
                        if !v.is_null() {
                            limits.push(format!("{k} {v}"));
                        }
                    }
                }
                let g = serde_json::to_value(&b.grants).unwrap_or(Value::Null);
                let mut caps = Vec::new();
                if let Some(obj) = g.as_object() {
                    for (k, v) in obj {
                        let empty = v.as_array().is_some_and(Vec::is_empty)
                            || v.as_object().is_some_and(serde_json::Map::is_empty)
                            || v.is_null();
                        if !empty {
                            caps.push(format!("{k}: {v}"));
                        }
                    }
                }
                if !b.secrets.is_empty() {
                    caps.push(format!("secrets: {}", b.secrets.join(", ")));
                }
                let _ = write!(
                    main,
                    "<tr><td>{a}</td><td>{p} <span class=\"muted\">({pa})</span></td><td><code title=\"{full}\">{s}</code>{canary}</td><td>{lim}</td><td>{cap}</td></tr>",
                    a = esc(action),
                    p = esc(&b.plugin),
                    pa = esc(&b.action),
                    full = esc(sha),
                    s = esc(short(sha)),
                    lim = esc(&limits.join(", ")),
                    cap = if caps.is_empty() {
                        "none".to_owned()
                    } else {
                        esc(&caps.join("; "))
                    },
                );
            }
            main.push_str("</tbody></table></div>");
        }
        Ok(None) => main.push_str("<p class=\"empty\">No bindings deployed for this version.</p>"),
        Err(e) => return problem(&headers, e),
    }
    render(&headers, &name, Section::Processes, true, main)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    process: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    state: Option<String>,
    /// Only this version of the process.
    #[serde(default)]
    version: Option<String>,
    /// An instance id or business key.
    #[serde(default)]
    key: Option<String>,
    /// Only instances started at or after this time (RFC 3339).
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

fn blank(o: &Option<String>) -> Option<&str> {
    o.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `/ui/instances`: filtered, a page at a time.
pub(crate) async fn instances(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let mut problems = Vec::new();
    let status = match blank(&q.status) {
        Some(s) => match Status::ALL.into_iter().find(|st| st.as_str() == s) {
            Some(st) => Some(st),
            None => {
                problems.push(format!("'{s}' is not a status"));
                None
            }
        },
        None => None,
    };
    let since = match blank(&q.since) {
        Some(s) => {
            match Millis::parse_rfc3339(s).or_else(|_| Millis::parse_rfc3339(&format!("{s}:00Z"))) {
                Ok(m) => Some(m),
                Err(_) => {
                    problems.push(format!("'{s}' is not a time: write 2026-11-30T08:00:00Z"));
                    None
                }
            }
        }
        None => None,
    };
    let version = match blank(&q.version) {
        Some(v) => match v.trim_start_matches('v').parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!("'{v}' is not a version number"));
                None
            }
        },
        None => None,
    };
    let after = match blank(&q.cursor) {
        Some(c) => InstanceId::parse(c),
        // Ids begin with their creation time: the first id of that
        // millisecond is where a time filter starts.
        None => since.map(|m| InstanceId::new(Millis(m.0.saturating_sub(1)), u128::MAX >> 48)),
    };
    let processes = app.engine.processes().await.unwrap_or_default();
    let mut names: Vec<&str> = processes.iter().map(|p| p.name.as_str()).collect();
    names.dedup();
    let mut main = String::from("<h1>Instances</h1>");
    main.push_str(
        "<form class=\"filters\" method=\"get\" action=\"/ui/instances\" role=\"search\">",
    );
    let _ = write!(
        main,
        "<label>Process<select name=\"process\"><option value=\"\">any</option>"
    );
    for n in &names {
        let sel = if blank(&q.process) == Some(n) {
            " selected"
        } else {
            ""
        };
        let _ = write!(main, "<option{sel}>{}</option>", esc(n));
    }
    main.push_str(
        "</select></label><label>Status<select name=\"status\"><option value=\"\">any</option>",
    );
    for s in Status::ALL {
        let sel = if status == Some(s) { " selected" } else { "" };
        let _ = write!(main, "<option{sel}>{s}</option>");
    }
    let _ = write!(
        main,
        "</select></label><label>State<input name=\"state\" value=\"{}\" size=\"12\"></label>\
         <label>Version<input name=\"version\" value=\"{}\" size=\"4\" inputmode=\"numeric\"></label>\
         <label>Id or key<input name=\"key\" value=\"{}\" size=\"16\"></label>\
         <label>Started since<input name=\"since\" value=\"{}\" placeholder=\"2026-11-30T08:00:00Z\" size=\"20\"></label>\
         <button type=\"submit\">Filter</button></form>",
        esc(blank(&q.state).unwrap_or("")),
        esc(blank(&q.version).unwrap_or("")),
        esc(blank(&q.key).unwrap_or("")),
        esc(blank(&q.since).unwrap_or("")),
    );
    if !problems.is_empty() {
        main.push_str(&html::flash(None, Some(&problems.join("; "))));
    }
    // A key (or id) names one instance.
    if let Some(k) = blank(&q.key) {
        match app.engine.resolve(k).await {
            Ok(id) => {
                return Redirect::to(&format!("/ui/instances/{}", url(id.as_str())))
                    .into_response();
            }
            Err(e) => main.push_str(&html::flash(None, Some(&e.to_string()))),
        }
    }
    // The engine's list filters by process, status and state (a version
    // is kept from its pages here); each call reads at most 2,000
    // instances, and a request makes at most 5 calls: a filter that
    // matches few of many gives a shorter page and a link to search on.
    let mut page = weft_core::Page {
        items: Vec::new(),
        next: None,
    };
    let mut from = after;
    let mut searched = 0usize;
    let mut partial = false;
    for call in 0..CALLS {
        let got = app
            .engine
            .list(PageQuery {
                process: blank(&q.process).map(str::to_owned),
                status,
                state: blank(&q.state).map(str::to_owned),
                stuck: false,
                after: from.clone(),
                limit: PAGE - page.items.len(),
                max_read: Some(READ_PER_CALL),
            })
            .await;
        let got = match got {
            Ok(p) => p,
            Err(e) => return problem(&headers, e),
        };
        searched += READ_PER_CALL;
        page.items.extend(
            got.items
                .into_iter()
                .filter(|i| version.is_none_or(|v| i.version == v)),
        );
        page.next = got.next.clone();
        if got.next.is_none() || page.items.len() >= PAGE {
            break;
        }
        if call + 1 == CALLS {
            partial = true;
        }
        from = got.next;
    }
    if page.items.is_empty() {
        if processes.is_empty() {
            main.push_str("<p class=\"empty\">No instances yet: deploy a process, then start one with <code>weft start &lt;process&gt;</code>.</p>");
        } else {
            main.push_str("<p class=\"empty\">No instance matches. Start one with <code>weft start &lt;process&gt;</code>, or loosen the filters.</p>");
        }
    } else {
        main.push_str("<div class=\"scroll\"><table id=\"instances\">");
        main.push_str(SUMMARY_HEAD);
        main.push_str("<tbody>");
        summary_rows(&page.items, &mut main);
        main.push_str("</tbody></table></div>");
    }
    main.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if blank(&q.cursor).is_some() || since.is_some() {
        let mut first = Vec::new();
        for (k, v) in [
            ("process", &q.process),
            ("status", &q.status),
            ("state", &q.state),
            ("version", &q.version),
            ("since", &q.since),
        ] {
            if let Some(v) = blank(v) {
                first.push(format!("{k}={}", url(v)));
            }
        }
        let _ = write!(
            main,
            "<a href=\"/ui/instances?{}\" rel=\"first\">First page</a>",
            esc(&first.join("&"))
        );
    }
    if let Some(next) = &page.next {
        let mut params = Vec::new();
        for (k, v) in [
            ("process", &q.process),
            ("status", &q.status),
            ("state", &q.state),
            ("version", &q.version),
            ("since", &q.since),
        ] {
            if let Some(v) = blank(v) {
                params.push(format!("{k}={}", url(v)));
            }
        }
        params.push(format!("cursor={}", url(next.as_str())));
        let _ = write!(
            main,
            "<a href=\"/ui/instances?{}\" rel=\"next\" id=\"next\">Next page</a>",
            esc(&params.join("&"))
        );
    }
    let _ = write!(
        main,
        "<span class=\"muted\">{} shown</span></nav>",
        page.items.len()
    );
    if partial {
        let _ = write!(
            main,
            "<p class=\"muted\" id=\"searched\">About {searched} instances were searched for this page; the next page searches on.</p>"
        );
    }
    render(&headers, "Instances", Section::Instances, true, main)
}
