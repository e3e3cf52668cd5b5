//! The OpenAPI document checked in at `api/openapi.json` is the one the
//! server generates and serves. After changing the API, write it anew with
//! `WEFT_BLESS=1 cargo test -p weft-server --test openapi` (or `make openapi`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api/openapi.json")
}

#[test]
fn the_checked_in_document_is_current() {
    let generated = weft_server::openapi::document_text();
    let path = checked_in();
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "api/openapi.json is not what the server generates: run `make openapi` and commit it"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_describes_every_route() {
    let doc: serde_json::Value =
        serde_json::from_str(&weft_server::openapi::document_text()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/deployments", "post"),
        ("/v1/processes", "get"),
        ("/v1/processes/{name}", "get"),
        ("/v1/processes/{name}/versions", "get"),
        ("/v1/plugins", "post"),
        ("/v1/plugins", "get"),
        ("/v1/plugins/{plugin}", "get"),
        ("/v1/plugins/{plugin}/component", "get"),
        ("/v1/processes/{name}/versions/{version}", "get"),
        ("/v1/processes/{name}/instances", "post"),
        ("/v1/instances", "get"),
        ("/v1/instances/{id}", "get"),
        ("/v1/instances/{id}/history", "get"),
        ("/v1/instances/{id}/signals/{event}", "post"),
        ("/v1/instances/{id}/cancel", "post"),
        ("/v1/instances/{id}/redrive", "post"),
        ("/v1/instances/{id}/migrate", "post"),
        ("/v1/tokens/{token}/complete", "post"),
        ("/v1/tokens/{token}/heartbeat", "post"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not described");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    // Every error is the one shape.
    let error = &doc["components"]["schemas"]["ApiError"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]));
}
