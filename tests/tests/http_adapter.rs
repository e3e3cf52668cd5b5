//! The generic HTTP adapter (plugins/http) against a real HTTP service on
//! loopback: through the runtime directly, then through the engine with
//! retries, routing and `Retry-After`.

use serde_json::{Value, json};
use weft_model::bindings::grants_for_hosts;
use weft_model::{Span, StepOutcome};
use weft_runtime::{Call, Plugin, Runtime, RuntimeOptions};
use weft_tests::service::{Received, Reply, Service};
use weft_tests::{Sandbox, json as weft_json, plugin, run, run_args};

/// Answers by path: the behaviours the tests rely on.
fn service() -> Service {
    Service::start(|req: &Received, before: usize| match req.path.as_str() {
        "/missing" => Reply::text(404, "no such\n  order"),
        "/down" => Reply::text(503, "maintenance"),
        "/flaky" if before < 2 => Reply::text(503, "try later"),
        "/flaky" => Reply::json(200, json!({"ok": true, "calls": before + 1})),
        "/busy" if before == 0 => Reply::text(429, "slow down").with("retry-after", "1"),
        "/busy" => Reply::json(200, json!({"ok": true})),
        "/text" => Reply::text(200, "plain words"),
        "/empty" => Reply::text(204, ""),
        "/moved" => Reply::text(301, "").with("location", "/elsewhere"),
        "/charges" => Reply::json(
            201,
            json!({
                "charged": serde_json::from_str::<Value>(&req.body).unwrap_or(Value::Null),
                "key": req.header("idempotency-key"),
            }),
        ),
        p => Reply::json(200, json!({"path": p, "method": req.method})),
    })
}

async fn load(rt: &Runtime) -> Plugin {
    let bytes = std::fs::read(plugin("http")).expect("the http adapter is built");
    rt.load("http", bytes.into()).await.expect("it loads")
}

async fn call(
    rt: &Runtime,
    http: &Plugin,
    config: Value,
    input: Value,
    allow: &[String],
) -> StepOutcome {
    let grants = grants_for_hosts(allow).expect("valid hosts");
    rt.invoke(
        http,
        Call {
            action: "request",
            input: &input,
            config: &config,
            instance_id: "I1",
            key: "I1/fetch/1",
            attempt: 1,
            last_heartbeat: None,
            timeout: Span::from_secs(10),
            memory: 64 << 20,
            max_output: 1 << 20,
            fuel: None,
            grants: &grants,
            heartbeat: None,
        },
    )
    .await
}

fn failure(out: &StepOutcome) -> &weft_model::Failure {
    match out {
        StepOutcome::Failed { failure } => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_service_and_answers_map_to_outcomes() {
    let svc = service();
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let http = load(&rt).await;
    assert_eq!(http.manifest.name, "http");
    let request = http.manifest.action("request").expect("one action");
    assert!(request.errors.iter().any(|e| e == "http_404"));
    let allow = vec![svc.authority()];
    let url = |path: &str| format!("http://{}{path}", svc.authority());

    // GET with a templated, percent-encoded path.
    let out = call(
        &rt,
        &http,
        json!({"url": url("/orders/{{ input.id }}")}),
        json!({"id": "A 1/2"}),
        &allow,
    )
    .await;
    assert_eq!(
        out,
        StepOutcome::Done {
            output: json!({"path": "/orders/A%201%2F2", "method": "GET"})
        }
    );

    // POST: body and headers from templates, the secret in a header only.
    let config = json!({
        "method": "post",
        "url": url("/charges"),
        "headers": {"authorization": "Bearer {{ secrets.TOKEN }}"},
        "body": {"amount": "{{ input.amount }}", "order": "{{ input.id }}"},
        "secrets": {"TOKEN": "tok-123"},
    });
    let out = call(
        &rt,
        &http,
        config,
        json!({"id": "o1", "amount": 42}),
        &allow,
    )
    .await;
    assert_eq!(
        out,
        StepOutcome::Done {
            output: json!({"charged": {"amount": 42, "order": "o1"}, "key": "I1/fetch/1"})
        }
    );
    let charge = svc
        .received()
        .into_iter()
        .find(|r| r.path == "/charges")
        .expect("sent");
    assert_eq!(charge.method, "POST");
    assert_eq!(charge.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(charge.header("content-type"), Some("application/json"));

    // A POST without `body` sends the input.
    let out = call(
        &rt,
        &http,
        json!({"method": "POST", "url": url("/charges")}),
        json!({"x": 1}),
        &allow,
    )
    .await;
    assert_eq!(
        out,
        StepOutcome::Done {
            output: json!({"charged": {"x": 1}, "key": "I1/fetch/1"})
        }
    );

    // Text and empty bodies.
    let out = call(&rt, &http, json!({"url": url("/text")}), json!({}), &allow).await;
    assert_eq!(
        out,
        StepOutcome::Done {
            output: json!("plain words")
        }
    );
    let out = call(&rt, &http, json!({"url": url("/empty")}), json!({}), &allow).await;
    assert_eq!(
        out,
        StepOutcome::Done {
            output: Value::Null
        }
    );

    // 4xx: a typed error on one line, naming the URL as the binding wrote it.
    let out = call(
        &rt,
        &http,
        json!({"url": url("/{{ input.p }}")}),
        json!({"p": "missing"}),
        &allow,
    )
    .await;
    let f = failure(&out);
    assert_eq!(f.kind, "http_404");
    assert!(
        f.message
            .contains("/{{ input.p }} answered 404: no such order"),
        "{f:?}"
    );
    assert_eq!(f.retry_after, None);

    // 5xx: retryable. 429 with Retry-After: retryable, asking for 1s.
    let f =
        failure(&call(&rt, &http, json!({"url": url("/down")}), json!({}), &allow).await).clone();
    assert_eq!(
        (f.kind.as_str(), f.retry_after),
        ("retryable", None),
        "{f:?}"
    );
    let f =
        failure(&call(&rt, &http, json!({"url": url("/busy")}), json!({}), &allow).await).clone();
    assert_eq!(
        (f.kind.as_str(), f.retry_after),
        ("retryable", Some(Span::from_secs(1))),
        "{f:?}"
    );

    // Redirects are not followed.
    let f =
        failure(&call(&rt, &http, json!({"url": url("/moved")}), json!({}), &allow).await).clone();
    assert_eq!(f.kind, "fatal", "{f:?}");

    // Nobody listening: retryable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let gone = closed.local_addr().expect("addr").port();
    drop(closed);
    let out = call(
        &rt,
        &http,
        json!({"url": format!("http://127.0.0.1:{gone}/x")}),
        json!({}),
        &[format!("127.0.0.1:{gone}")],
    )
    .await;
    assert_eq!(failure(&out).kind, "retryable", "{out:?}");

    // A service that echoes the token: the message never carries it.
    let svc_echo = Service::start(|req: &Received, _| {
        Reply::text(
            401,
            &format!("invalid {}", req.header("authorization").unwrap_or("")),
        )
    });
    let echoing = json!({
        "url": format!("http://{}/", svc_echo.authority()),
        "headers": {"authorization": "Bearer {{ secrets.TOKEN }}"},
        "secrets": {"TOKEN": "tok-123"},
    });
    let out = call(&rt, &http, echoing, json!({}), &[svc_echo.authority()]).await;
    let f = failure(&out);
    assert_eq!(f.kind, "http_401", "{f:?}");
    assert!(
        f.message.contains("invalid Bearer ***") && !f.message.contains("tok-123"),
        "{f:?}"
    );

    // A whole URL from the input is used as it is.
    let whole = json!({"url": url("/orders/o%202")});
    let out = call(&rt, &http, json!({"url": "{{ input.url }}"}), whole, &allow).await;
    assert_eq!(
        out,
        StepOutcome::Done {
            output: json!({"path": "/orders/o%202", "method": "GET"})
        }
    );

    // Values filled into the host cannot move it, nor add credentials.
    for host in ["127.0.0.1:1/x", "u:tok-123@127.0.0.1"] {
        let config = json!({"url": "http://{{ input.h }}/"});
        let out = call(&rt, &http, config, json!({"h": host}), &allow).await;
        let f = failure(&out);
        assert_eq!(f.kind, "fatal", "{host}: {f:?}");
        assert!(
            f.message.contains("is not a host:port once filled in")
                && !f.message.contains("tok-123"),
            "{f:?}"
        );
    }

    // A bad config is fatal and says where.
    let f = failure(&call(&rt, &http, json!({"url": "ftp://x/"}), json!({}), &allow).await).clone();
    assert_eq!(f.kind, "fatal");
    assert!(f.message.contains("must start with http://"), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hosts_a_binding_allows_are_reachable() {
    let svc = service();
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let http = load(&rt).await;
    let config = json!({"url": format!("http://{}/anything", svc.authority())});
    let denied = [
        Vec::new(),
        vec!["127.0.0.1:1".to_owned()],
        vec!["localhost:443".to_owned()],
    ];
    for allow in denied {
        let out = call(&rt, &http, config.clone(), json!({}), &allow).await;
        let f = failure(&out);
        assert_eq!(f.kind, "capability_denied", "{allow:?}: {f:?}");
        assert!(f.message.contains(&svc.authority()), "{f:?}");
    }
    assert_eq!(
        svc.count("/anything"),
        0,
        "no denied request reached the service"
    );
    // The runtime keeps serving, and the allowed host is reached.
    let out = call(&rt, &http, config, json!({}), &[svc.authority()]).await;
    assert!(matches!(out, StepOutcome::Done { .. }), "{out:?}");
    assert_eq!(svc.count("/anything"), 1);
}

/// The process the engine tests run: one fetch, retried, 404 routed.
const PROCESS: &str = "\
process: fetcher
version: 1
start: get
states:
  get:
    action: fetch
    input: '{path: .path}'
    output: .answer
    retry: { max_attempts: 4, initial: 10ms }
    on:
      done: ok
      error.http_404: not_found
      error.capability_denied: denied
      error: broken
  ok: { type: succeed }
  not_found: { type: fail, error: not_found }
  denied: { type: fail, error: denied }
  broken: { type: fail }
";

fn history(id: &str, data: &str) -> Vec<Value> {
    weft_json(&["history", id, "--data", data, "--json"])
        .as_array()
        .expect("an array")
        .clone()
}

#[test]
fn the_engine_retries_5xx_routes_4xx_and_waits_as_retry_after_asks() {
    let svc = service();
    let s = Sandbox::new();
    let data = s.data();
    let process = s.write("fetcher.yaml", PROCESS);
    let binding = format!(
        "    allow_hosts: [\"{}\"]\n    config: {{ url: \"http://{}/{{{{ input.path }}}}\" }}\n",
        svc.authority(),
        svc.authority()
    );
    let bindings = s.bindings(&[("fetch", binding.as_str())]);
    let go = |path: &str| {
        let input = json!({ "path": path }).to_string();
        let out = run(&run_args(&process, &bindings, &input, &data));
        let id = out.lines().first().copied().unwrap_or_default().to_owned();
        (out, id)
    };

    // 503 twice, then 200: done on the third attempt.
    let (out, id) = go("flaky");
    assert_eq!(out.code, 0, "{out:?}");
    let h = history(&id, &data);
    let failed: Vec<_> = h.iter().filter(|r| r["type"] == "attempt_failed").collect();
    assert_eq!(failed.len(), 2, "{h:#?}");
    assert!(failed.iter().all(|r| r["failure"]["kind"] == "retryable"));
    let status = weft_json(&["status", &id, "--data", &data, "--json"]);
    assert_eq!(status["output"]["answer"], json!({"ok": true, "calls": 3}));
    assert_eq!(svc.count("/flaky"), 3);

    // 404: not retried, routed on error.http_404.
    let (out, id) = go("missing");
    assert_eq!(out.code, 1, "{out:?}");
    let status = weft_json(&["status", &id, "--data", &data, "--json"]);
    assert_eq!(status["error"]["kind"], "not_found", "{status}");
    assert_eq!(svc.count("/missing"), 1);

    // 429 with Retry-After: 1 → the next attempt is due 1s later, not 10ms.
    let (out, id) = go("busy");
    assert_eq!(out.code, 0, "{out:?}");
    let h = history(&id, &data);
    let failed = h
        .iter()
        .find(|r| r["type"] == "attempt_failed")
        .expect("one retry");
    assert_eq!(failed["failure"]["retry_after"], 1000, "{failed}");
    let at = failed["at"].as_u64().expect("at");
    let due = failed["retry_at"].as_u64().expect("retry_at");
    assert_eq!(due - at, 1000, "{failed}");
    let second = svc
        .received()
        .into_iter()
        .filter(|r| r.path == "/busy")
        .count();
    assert_eq!(second, 2);

    // The same process with bindings that allow another host: the step
    // fails with error.capability_denied, which the process routes.
    let text = std::fs::read_to_string(&bindings).expect("readable");
    let other = s.write(
        "other-host.yaml",
        &text.replace(
            &format!("allow_hosts: [\"{}\"]", svc.authority()),
            "allow_hosts: [\"127.0.0.1:1\"]",
        ),
    );
    let input = json!({ "path": "flaky" }).to_string();
    let out = run(&run_args(&process, &other, &input, &data));
    assert_eq!(out.code, 1, "{out:?}");
    let id = out.lines().first().copied().unwrap_or_default().to_owned();
    let status = weft_json(&["status", &id, "--data", &data, "--json"]);
    assert_eq!(status["error"]["kind"], "denied", "{status}");
    assert_eq!(
        svc.count("/flaky"),
        3,
        "the denied request never reached the service"
    );
}
