//! The web dashboard: in a real headless Chromium (the distribution's
//! `chromium`, driven by playwright-core; `scripts/setup-browser.sh`
//! installs both) against a real `weft serve` holding a known workload —
//! counts, a diagram, an instance's path and timeline, a redrive and a
//! signal from the page, a live update, paging through 10,000 instances,
//! a phone's screen; screenshots of each page go to
//! `target/dashboard-screenshots`. And its auth: with a token, nothing
//! without it.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::OnceLock;

use weft_tests::{Sandbox, Server, deploy, expect, fixture, http, root, run};

/// The browser and its driver, installed once per test process; the path
/// of the browser.
fn browser() -> &'static str {
    static PATH: OnceLock<Result<String, String>> = OnceLock::new();
    let got = PATH.get_or_init(|| {
        let out = Command::new(root().join("scripts/setup-browser.sh"))
            .output()
            .map_err(|e| format!("cannot run scripts/setup-browser.sh: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(text.lines().last().unwrap_or_default().trim().to_owned())
    });
    match got {
        Ok(p) => p,
        Err(e) => panic!("the browser could not be set up: {e}"),
    }
}

const FRAGILE: &str = "\
process: fragile
version: 1
start: call
states:
  call:
    action: echo
    on: { done: ok }
  ok: { type: succeed }
";

fn start(server: &Server, process: &str, body: &str) -> String {
    let r = server.post(&format!("/v1/processes/{process}/instances"), body);
    let v = expect(&r, 201);
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn the_dashboard_in_a_browser_shows_the_store_and_acts_on_it() {
    let chromium = browser();
    let s = Sandbox::new();
    let data = s.data();
    // A step that fails fatally with nothing routing it: the instance
    // parks; then the tool is fixed by new bindings, for the redrive.
    let fragile = s.write("fragile.yaml", FRAGILE);
    deploy(
        &s,
        &data,
        &fragile,
        &[("echo", "    config: { simulate: { fatal: gateway down } }")],
    );
    deploy(&s, &data, &fixture("ping.yaml"), &[]);
    deploy(&s, &data, &fixture("waits.yaml"), &[]);
    deploy(&s, &data, &fixture("order.yaml"), &[]);
    let server = Server::start(&data, &[]);
    let parked = start(&server, "fragile", "{}");
    weft_tests::eventually("the fragile instance to park", || {
        let v = expect(&server.get(&format!("/v1/instances/{parked}")), 200);
        (v["status"] == "parked").then_some(())
    });
    deploy(&s, &data, &fragile, &[]);
    let waiting = start(&server, "waits", r#"{"input": {"mode": "approval"}}"#);
    let waiting2 = start(&server, "waits", r#"{"input": {"mode": "approval"}}"#);
    let order_input = weft_tests::order_input(1, "4242");
    let order = server.post(
        "/v1/processes/order-fulfillment/instances",
        &format!(r#"{{"input": {order_input}, "key": "ord-77", "wait": "20s"}}"#),
    );
    let order = expect(&order, 200);
    assert_eq!(order["status"], "succeeded", "{order}");

    // 10,000 instances of ping, from four clients.
    const PINGS: usize = 10_000;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let base = server.base.clone();
            std::thread::spawn(move || {
                for _ in 0..PINGS / 4 {
                    let r = http("POST", &base, "/v1/processes/ping/instances", "{}", &[]);
                    assert_eq!(r.status, 201, "{}", r.body);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    weft_tests::eventually("the pings to finish", || {
        let page = expect(
            &server.get("/v1/instances?process=ping&status=running&limit=1"),
            200,
        );
        page["items"].as_array().unwrap().is_empty().then_some(())
    });
    for id in [&waiting, &waiting2] {
        weft_tests::eventually("the approval to wait", || {
            let v = expect(&server.get(&format!("/v1/instances/{id}")), 200);
            (v["status"] == "waiting").then_some(())
        });
    }

    let shots = root().join("target/dashboard-screenshots");
    // Last run's screenshots are not this run's.
    let _ = std::fs::remove_dir_all(&shots);
    let case = serde_json::json!({
        "parked": parked,
        "waiting": waiting,
        "waiting2": waiting2,
        "order": order["id"],
        "orderKey": "ord-77",
        "pings": PINGS,
    });
    let out = Command::new("node")
        .arg(root().join("tests/browser/dashboard.mjs"))
        .env("WEFT_URL", &server.base)
        .env("WEFT_SHOTS", &shots)
        .env("WEFT_CHROMIUM", chromium)
        .env(
            "WEFT_PLAYWRIGHT",
            root().join("target/browser/node/node_modules/playwright-core/index.mjs"),
        )
        .env("WEFT_CASE", case.to_string())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{said}");
    assert!(out.status.success(), "the browser checks failed:\n{said}");
    for name in [
        "overview",
        "process",
        "instance-succeeded",
        "instances",
        "instance-phone",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}.png");
    }
}

/// With a token, every page needs it (a bearer header, or the cookie the
/// login form sets, which is not the token); the stylesheet and the login
/// form do not. A form posted from another site is refused, cookie or not.
#[test]
fn with_a_token_the_dashboard_is_refused_without_it() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("ping.yaml"), &[]);
    deploy(&s, &data, &fixture("waits.yaml"), &[]);
    let token = "dashboard-token-0123456789";
    let file = s.path("token");
    std::fs::write(&file, token).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = Server::start(&data, &["--token-file", file.to_str().unwrap()]);
    let bearer = format!("Bearer {token}");
    for page in [
        "/",
        "/ui/processes",
        "/ui/instances",
        "/ui/processes/ping/1",
    ] {
        let r = server.get(page);
        assert_eq!(r.status, 401, "{page}: {}", r.body);
        assert!(r.body.contains("Sign in"), "{page}: {}", r.body);
        assert!(
            !r.body.contains("ping"),
            "{page} shows nothing of the store"
        );
        let wrong = http(
            "GET",
            &server.base,
            page,
            "",
            &[("Cookie", "weft_session=nope")],
        );
        assert_eq!(wrong.status, 401, "{page}");
        let ok = http("GET", &server.base, page, "", &[("Authorization", &bearer)]);
        assert_eq!(ok.status, 200, "{page}: {}", ok.body);
    }
    // A form action without the token changes nothing.
    let r = http(
        "POST",
        &server.base,
        "/v1/processes/waits/instances",
        r#"{"input": {"mode": "approval"}, "wait": "10s"}"#,
        &[("Authorization", &bearer)],
    );
    let waiting = expect(&r, 200);
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    let id = waiting["id"].as_str().unwrap().to_owned();
    let status = || {
        let r = http(
            "GET",
            &server.base,
            &format!("/v1/instances/{id}"),
            "",
            &[("Authorization", &bearer)],
        );
        expect(&r, 200)["status"].as_str().unwrap().to_owned()
    };
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let cancel = format!("/ui/instances/{id}/cancel");
    let anonymous = http("POST", &server.base, &cancel, "compensate=true", &[form]);
    assert_eq!(anonymous.status, 401);
    assert_eq!(status(), "waiting");
    assert_eq!(server.get("/ui/assets/app.css").status, 200);
    assert_eq!(server.get("/ui/login").status, 200);
    let bad = http("POST", &server.base, "/ui/login", "token=wrong", &[form]);
    assert_eq!(bad.status, 401);
    let login = http(
        "POST",
        &server.base,
        "/ui/login",
        format!("token={token}"),
        &[form],
    );
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(!pair.contains(token), "the cookie is not the token: {pair}");
    let page = http("GET", &server.base, "/", "", &[("Cookie", &pair)]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Overview"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let csp = page
        .header("content-security-policy")
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // The API itself takes the bearer token only.
    let api = http(
        "GET",
        &server.base,
        "/v1/instances",
        "",
        &[("Cookie", &pair)],
    );
    assert_eq!(api.status, 401);
    // With the cookie, a form posted from another site (or another port of
    // this one) is refused; from this page it goes through.
    let cookie = ("Cookie", pair.as_str());
    let evil = http(
        "POST",
        &server.base,
        &cancel,
        "",
        &[cookie, form, ("Origin", "http://evil.example")],
    );
    assert_eq!(evil.status, 403, "{}", evil.body);
    let sibling = http(
        "POST",
        &server.base,
        &cancel,
        "",
        &[cookie, form, ("Sec-Fetch-Site", "same-site")],
    );
    assert_eq!(sibling.status, 403, "{}", sibling.body);
    assert_eq!(status(), "waiting");
    let origin = server.base.clone();
    let ours = http(
        "POST",
        &server.base,
        &cancel,
        "compensate=false",
        &[cookie, form, ("Origin", &origin)],
    );
    assert_eq!(ours.status, 303, "{}", ours.body);
    assert_eq!(status(), "cancelled");
    // The API refuses a browser's cross-site request too.
    let api = http(
        "POST",
        &server.base,
        "/v1/processes/ping/instances",
        "{}",
        &[
            ("Authorization", &bearer),
            ("Origin", "http://evil.example"),
        ],
    );
    assert_eq!(expect(&api, 403)["code"], "cross_site");
}

/// The status of `GET /` sent with this `Host` header.
fn status_with_host(base: &str, host: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Without a token the dashboard answers only at a loopback name (a site
/// rebinding its DNS name to 127.0.0.1 reads nothing); every text the
/// store holds is escaped.
#[test]
fn without_a_token_only_loopback_names_and_everything_escaped() {
    let s = Sandbox::new();
    let data = s.data();
    deploy(&s, &data, &fixture("waits.yaml"), &[]);
    let server = Server::start(&data, &[]);
    assert_eq!(status_with_host(&server.base, "evil.example:7070"), 421);
    for host in ["localhost:7070", "127.0.0.1", "[::1]:80"] {
        assert_eq!(status_with_host(&server.base, host), 200, "{host}");
    }
    let key = "<img src=x onerror=alert(1)>&\"'";
    let body = serde_json::json!({
        "input": {"mode": "approval", "note": "</pre><script>alert(2)</script>"},
        "key": key,
        "wait": "10s",
    });
    let started = server.post("/v1/processes/waits/instances", &body.to_string());
    let id = expect(&started, 200)["id"].as_str().unwrap().to_owned();
    for page in [format!("/ui/instances/{id}"), "/ui/instances".to_owned()] {
        let r = server.get(&page);
        assert_eq!(r.status, 200, "{page}");
        assert!(
            !r.body.contains("<img src=x"),
            "{page} shows the key as markup"
        );
        assert!(
            !r.body.contains("<script>alert"),
            "{page} shows data as markup"
        );
    }
    let r = server.get(&format!("/ui/instances/{id}"));
    assert!(
        r.body
            .contains("&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#39;"),
        "{}",
        r.body
    );
    let _ = run;
}
