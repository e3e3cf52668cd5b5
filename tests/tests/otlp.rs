//! OpenTelemetry export: `weft serve --otlp-endpoint` sends its spans over
//! OTLP/HTTP (JSON) to a small collector this test runs on loopback, which
//! counts what arrives.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use weft_tests::{Running, Sandbox, http, order_input, root, run};

/// An OTLP/HTTP receiver: answers every POST with 200 and keeps the paths
/// and the JSON bodies it was sent.
struct Collector {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let keep = keep.clone();
                std::thread::spawn(move || serve(conn, &keep));
            }
        });
        Collector { url, got }
    }

    /// Every span received: (name, attributes as a JSON object).
    fn spans(&self) -> Vec<(String, serde_json::Map<String, Value>)> {
        let mut out = Vec::new();
        for (path, body) in self.got.lock().unwrap().iter() {
            assert_eq!(path, "/v1/traces");
            for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].clone());
                assert_eq!(service, Some(Value::from("weft")), "{rs}");
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        let mut attrs = serde_json::Map::new();
                        for a in span["attributes"].as_array().into_iter().flatten() {
                            let v = &a["value"];
                            let v = v
                                .get("stringValue")
                                .or_else(|| v.get("intValue"))
                                .cloned()
                                .unwrap_or(Value::Null);
                            attrs.insert(a["key"].as_str().unwrap().to_owned(), v);
                        }
                        out.push((span["name"].as_str().unwrap().to_owned(), attrs));
                    }
                }
            }
        }
        out
    }
}

/// One keep-alive connection: reads requests, keeps each body, answers 200.
fn serve(conn: std::net::TcpStream, keep: &Mutex<Vec<(String, Value)>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let json: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("the export is not JSON ({e})"));
        keep.lock().unwrap().push((path, json));
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        writer.write_all(answer.as_bytes()).unwrap();
    }
}

#[test]
fn spans_of_every_transition_and_invocation_reach_an_otlp_collector() {
    let collector = Collector::start();
    let s = Sandbox::new();
    let data = s.data();
    let bindings = s.bindings(&[]);
    let process = root()
        .join("tests/fixtures/order.yaml")
        .display()
        .to_string();
    let out = run(&["deploy", &process, "--bindings", &bindings, "--data", &data]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut serve = Running::spawn(&[
        "serve",
        "--data",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--otlp-endpoint",
        &collector.url,
    ]);
    let line = serve.wait_for("serving");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|w| w.trim_end_matches(':').to_owned())
        .unwrap();
    let mut ids = Vec::new();
    for card in ["4242", "4242"] {
        let body = format!(r#"{{"input": {}}}"#, order_input(1, card));
        let r = http(
            "POST",
            &base,
            "/v1/processes/order-fulfillment/instances?wait=30s",
            &body,
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["status"], "succeeded");
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    // A graceful stop exports what is still buffered before exiting.
    let pid = serve.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    serve.rest();
    assert_eq!(serve.child.wait().unwrap().code(), Some(0));

    let spans = collector.spans();
    for id in &ids {
        let of = |name: &str| {
            spans
                .iter()
                .filter(|(n, a)| n == name && a["instance"] == id.as_str())
                .collect::<Vec<_>>()
        };
        // Three steps: three invocations, and a transition for each step's
        // outcome.
        let invokes = of("invoke");
        assert_eq!(invokes.len(), 3, "{id}: {spans:#?}");
        let actions: Vec<&str> = invokes
            .iter()
            .map(|(_, a)| a["action"].as_str().unwrap())
            .collect();
        for action in ["reserve_inventory", "charge_payment", "create_shipment"] {
            assert!(actions.contains(&action), "{id}: {actions:?}");
        }
        for (_, a) in &invokes {
            assert_eq!(a["process"], "order-fulfillment");
            assert_eq!(a["plugin"].as_str().unwrap().len(), 64, "{a:?}");
            assert!(a["key"].as_str().unwrap().starts_with(id.as_str()), "{a:?}");
        }
        assert_eq!(of("transition").len(), 3, "{id}: {spans:#?}");
    }
}
