//! `GET /metrics`: Prometheus text. The engine's counters and histograms
//! (see `weft_core::metrics`) come from the recorder this process
//! installed; gauges (instances by status, outbox depth, armed timers) are
//! read from the store when scraped.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::App;
use crate::error::ApiResult;

/// Installs the process-wide recorder the engine's metrics go to, and
/// returns the handle `/metrics` renders. Once per process.
pub fn install() -> Result<PrometheusHandle, String> {
    let seconds = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    let sizes = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes))
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    weft_core::metrics::describe();
    Ok(handle)
}

/// Prometheus text: the engine's counters and histograms, and gauges read
/// from the store now.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
        (status = 401, description = "A token is needed", body = crate::ApiError),
        (status = 503, description = "The store is failing", body = crate::ApiError),
    )
)]
pub(crate) async fn scrape(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    let mut text = app
        .options
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    let g = app.engine.gauges().await?;
    let _ = writeln!(
        text,
        "# HELP weft_instances Instances in the store, by status."
    );
    let _ = writeln!(text, "# TYPE weft_instances gauge");
    for (status, n) in &g.by_status {
        let _ = writeln!(text, "weft_instances{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        text,
        "# HELP weft_outbox Invocations committed and not yet settled."
    );
    let _ = writeln!(text, "# TYPE weft_outbox gauge");
    let _ = writeln!(text, "weft_outbox {}", g.outbox);
    let _ = writeln!(text, "# HELP weft_timers Durable timers armed.");
    let _ = writeln!(text, "# TYPE weft_timers gauge");
    let _ = writeln!(text, "weft_timers {}", g.timers);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
