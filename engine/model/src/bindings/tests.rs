use super::*;
use crate::source::{Format, load};

fn parse(yaml: &str) -> Result<Bindings, Diagnostics> {
    let doc = load("b.yaml", yaml, Format::Yaml).map_err(Diagnostics::from)?;
    bindings(&doc, Path::new("."))
}

const HEAD: &str = "plugins: { http: http.wasm }\nactions:\n  fetch:\n    plugin: http\n";

#[test]
fn allow_hosts_match_host_and_port_exactly_or_by_subdomain() {
    let b = parse(&format!(
        "{HEAD}    allow_hosts: [\"API.example.com:443\", \"127.0.0.1:8081\", \"*.svc.internal:80\"]\n    fuel: 1000\n"
    ))
    .expect("valid");
    let fetch = &b.actions["fetch"];
    assert_eq!(fetch.fuel, Some(1000));
    let g = &fetch.grants;
    for ok in [
        "api.example.com:443",
        "Api.Example.com:443",
        "127.0.0.1:8081",
        "a.svc.internal:80",
        "a.b.svc.internal:80",
    ] {
        assert!(g.allows_host(ok), "{ok}");
    }
    for no in [
        "api.example.com:80",
        "example.com:443",
        "127.0.0.1:8082",
        "svc.internal:80",
        "evilsvc.internal:80",
        "127.0.0.1",
        "x.api.example.com:443",
    ] {
        assert!(!g.allows_host(no), "{no}");
    }
    assert!(!Grants::default().allows_host("api.example.com:443"));
}

#[test]
fn bad_allow_hosts_and_fuel_are_located_errors() {
    for (entry, says) in [
        ("api.example.com", "has no port"),
        ("api.example.com:0", "is not a port"),
        ("api.example.com:http", "is not a port"),
        ("http://api.example.com:443", "is not a host name"),
        ("a b:443", "is not a host name"),
        (":443", "is not a host name"),
        ("*.com:443", "is too wide"),
        ("*.0.0.1:80", "is too wide"),
    ] {
        let e = parse(&format!("{HEAD}    allow_hosts: [\"{entry}\"]\n"))
            .expect_err(entry)
            .to_string();
        assert!(e.starts_with("b.yaml:5:"), "{entry}: {e}");
        assert!(e.contains(says), "{entry}: {e}");
    }
    let e = parse(&format!("{HEAD}    fuel: 0\n"))
        .expect_err("no fuel")
        .to_string();
    assert!(e.contains("fuel must be 1 or more"), "{e}");
}

#[test]
fn a_swap_is_checked_against_the_bindings_and_routes_it_takes_over() {
    let pdoc = load(
        "p.yaml",
        "process: order\nversion: 1\nstart: charge\nstates:\n  charge:\n    action: charge_card\n    on:\n      done: ok\n      error.card_declined: ok\n  ok:\n    type: succeed\n",
        Format::Yaml,
    )
    .expect("loads");
    let process = crate::validate::process(&pdoc).expect("valid");
    let b = parse("plugins: { payments: p.wasm }\nactions:\n  charge_card:\n    plugin: payments\n    action: charge\n")
        .expect("valid");
    let manifest = |action: &str, idempotent: bool, errors: &[&str]| Manifest {
        name: "payments".into(),
        version: "1".into(),
        actions: vec![ActionInfo {
            name: action.into(),
            idempotent,
            compensated_by: None,
            errors: errors.iter().map(|e| e.to_string()).collect(),
        }],
    };
    let old = manifest("charge", true, &["card_declined"]);
    let good = manifest("charge", true, &["card_declined", "expired"]);
    assert!(check_swap(&process, &b, &["charge_card"], Some(&old), &good).is_empty());
    let missing = check_swap(
        &process,
        &b,
        &["charge_card"],
        Some(&old),
        &manifest("pay", true, &["card_declined"]),
    );
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].contains("does not have (it has: pay)"),
        "{missing:?}"
    );
    let weaker = check_swap(
        &process,
        &b,
        &["charge_card"],
        Some(&old),
        &manifest("charge", false, &["card_declined"]),
    );
    assert!(weaker[0].contains("was idempotent"), "{weaker:?}");
    let untyped = check_swap(
        &process,
        &b,
        &["charge_card"],
        Some(&old),
        &manifest("charge", true, &[]),
    );
    assert!(
        untyped[0].contains("routes 'error.card_declined'"),
        "{untyped:?}"
    );
    // Actions the swap does not take over are not its business.
    assert!(check_swap(&process, &b, &[], Some(&old), &manifest("pay", false, &[])).is_empty());
}
