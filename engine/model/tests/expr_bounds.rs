//! Expressions are bounded: whatever a user writes, evaluating it returns, in
//! bounded steps, memory and stack, either a value or an error naming the
//! budget it ran out of. And ordinary expressions evaluate as jq does.

use serde_json::{Value, json};
use weft_model::expr::{MAX_BYTES, MAX_DEPTH, MAX_INDEX_GAP, MAX_SOURCE, MAX_STEPS};
use weft_model::{Expr, PathExpr};

/// Runs `f` on a thread with a 2 MiB stack, the size of the engine's and of
/// the test harness's: a stack overflow would abort the whole test binary.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, f)
            .expect("spawn")
            .join()
            .expect("no panic")
    })
}

fn eval(code: &str, input: Value) -> Result<Value, String> {
    let e = Expr::compile(code).unwrap_or_else(|e| panic!("{code}: {e}"));
    on_small_stack(|| e.eval(&input)).map_err(|e| e.to_string())
}

fn fails_with(code: &str, input: Value, what: &str) {
    match eval(code, input) {
        Ok(v) => panic!("`{code}` gave {v}, expected it to fail with `{what}`"),
        Err(e) => assert!(
            e.starts_with(&format!("expression `{code}` {what}")),
            "`{code}`: {e}"
        ),
    }
}

fn steps() -> String {
    format!("exceeded its budget of {MAX_STEPS} steps")
}

fn bytes() -> String {
    format!("built values larger than {MAX_BYTES} bytes")
}

fn depth() -> String {
    format!("built values nested deeper than {MAX_DEPTH} levels")
}

const STACK: &str = "recursed deeper than its stack budget";

#[test]
fn deep_recursion_in_a_guard_fails_instead_of_overflowing_the_stack() {
    let guard = Expr::compile("def c(n): if n > 0 then 1 + c(n - 1) else 0 end; c(.count) > 10")
        .expect("compiles");
    let err = on_small_stack(|| guard.test(&json!({"count": 100000})))
        .expect_err("too deep")
        .to_string();
    assert!(err.contains(STACK), "{err}");
    // Shallow recursion is fine.
    assert_eq!(
        on_small_stack(|| guard.test(&json!({"count": 20}))),
        Ok(true)
    );
    fails_with(
        "def c(n): if n > 0 then [c(n - 1)] else 0 end; c(.count)",
        json!({"count": 100000}),
        STACK,
    );
    fails_with("def f: try f catch f; f", json!(null), STACK);
}

#[test]
fn huge_ranges_fail_on_their_length_or_size() {
    fails_with(
        "[range(.count)]|length>10",
        json!({"count": 1e12}),
        &steps(),
    );
    fails_with(
        "[range(.count) | \"x\" * 1000] | length",
        json!({"count": 1e12}),
        &bytes(),
    );
    fails_with("last(range(1e15))", json!(null), &steps());
    fails_with(
        "[limit(1000000000; repeat(1))] | length",
        json!(null),
        &steps(),
    );
}

#[test]
fn endless_loops_fail_on_steps() {
    fails_with("def f: f; f", json!(null), &steps());
    fails_with("[0 | while(true; . + 1)] | length", json!(null), &steps());
    fails_with("0 | until(false; . + 1)", json!(null), &steps());
    fails_with("[1 | recurse(. + 1)] | length", json!(null), &steps());
}

#[test]
fn try_cannot_swallow_a_spent_budget() {
    fails_with("try (def f: f; f) catch \"caught\"", json!(null), &steps());
    fails_with("[(def f: f; f)?] | length", json!(null), &steps());
    fails_with("(def f: f; f) // 1", json!(null), &steps());
}

#[test]
fn values_growing_without_end_fail_on_bytes() {
    fails_with("\"ab\" * 100000000000 | length", json!(null), &bytes());
    fails_with(
        "\"ab\" * 9223372036854775807 | length",
        json!(null),
        &bytes(),
    );
    fails_with(
        "reduce range(40) as $i (\"x\"; . + .) | length",
        json!(null),
        &bytes(),
    );
    fails_with(
        "reduce range(40) as $i (\"\\\"\"; tojson) | length",
        json!(null),
        &bytes(),
    );
    fails_with(
        "(\"a\" * 10000000) | explode | length",
        json!(null),
        &bytes(),
    );
}

#[test]
fn costly_operations_are_charged_by_their_work() {
    // Big integers squared: each product costs its size squared.
    fails_with(
        "reduce range(40) as $i (3; . * .) | tostring | length",
        json!(null),
        &steps(),
    );
    // Comparing big arrays, again and again.
    fails_with(
        "[range(100000)] as $a | [range(100000)] as $b | reduce range(100000) as $i (0; if $a == $b then . + 1 end)",
        json!(null),
        &steps(),
    );
    // A regular expression whose size is multiplied by its repetitions.
    fails_with(
        "(\"a\" * 1000000) | test(\"(a{1000}){100}b\")",
        json!(null),
        &steps(),
    );
    // Searching a long string for a long one.
    fails_with(
        "(\"a\" * 3000000) as $s | $s | indices($s[0:1500000]) | length",
        json!(null),
        &steps(),
    );
    // jn recurs n times.
    fails_with("jn(2000000000; 1)", json!(null), &steps());
}

#[test]
fn deeply_nested_values_fail_on_depth() {
    fails_with(
        "reduce range(1000000) as $i (null; [.]) | length",
        json!(null),
        &depth(),
    );
    fails_with(
        "reduce range(200) as $i (null; {a: .}) | length",
        json!(null),
        &depth(),
    );
    fails_with("(\"[\" * 1000000) | fromjson", json!(null), &depth());
    fails_with(
        "reduce range(200) as $i ({}; .a = .) | length",
        json!(null),
        &depth(),
    );
    fails_with(
        "reduce range(200) as $i ([0]; .[0] = .) | length",
        json!(null),
        &depth(),
    );
    // Up to the limit is fine, including from nested input.
    let mut nested = json!(1);
    for _ in 0..MAX_DEPTH - 1 {
        nested = json!([nested]);
    }
    assert_eq!(eval("[.] | length", nested.clone()), Ok(json!(1)));
    fails_with("[[.]] | length", nested, &depth());
}

#[test]
fn storing_far_past_the_end_of_an_array_is_refused() {
    let p = PathExpr::compile(".a[1000000000000]").expect("a path");
    let err = p
        .set(&json!({}), &json!(1))
        .expect_err("too far")
        .to_string();
    assert!(err.contains("index 1000000000000"), "{err}");
    assert!(
        err.contains(&format!("more than {MAX_INDEX_GAP} past the end")),
        "{err}"
    );
    let near = PathExpr::compile(".a[3]").expect("a path");
    assert_eq!(
        near.set(&json!({"a": [1]}), &json!(2)),
        Ok(json!({"a": [1, null, null, 2]}))
    );
    // An index taken from the data is checked against the data's array.
    let from_data = PathExpr::compile(".a[.n // 0]").expect("a path");
    let long = json!({"a": vec![0; 20_000], "n": 25_000});
    assert!(from_data.set(&long, &json!(1)).is_ok());
    assert!(from_data.set(&json!({"n": 25_000}), &json!(1)).is_err());
}

#[test]
fn storing_deeper_than_data_can_be_read_back_is_refused() {
    let deep = ".a".repeat(MAX_DEPTH as usize + 1);
    let err = PathExpr::compile(&deep).expect_err("too deep");
    assert!(
        err.message.ends_with(&format!(
            "names a place nested deeper than {MAX_DEPTH} levels"
        )),
        "{err}"
    );
    let from_data = PathExpr::compile("getpath(.p // [])").expect("a path");
    let long = json!({"p": vec!["a"; MAX_DEPTH as usize + 1]});
    assert!(from_data.set(&long, &json!(1)).is_err());
}

#[test]
fn output_paths_that_never_end_are_refused_when_compiled() {
    let err = PathExpr::compile("def f: f; f").expect_err("never ends");
    assert_eq!(err.message, format!("`def f: f; f` {}", steps()));
}

#[test]
fn long_and_deeply_nested_expressions_compile_on_a_small_stack() {
    let parens = format!("{}.{}", "(".repeat(8000), ")".repeat(8000));
    let e = on_small_stack(|| Expr::compile(&parens)).expect("compiles");
    assert_eq!(eval(e.source(), json!(1)), Ok(json!(1)));
    // Evaluating a deeply nested expression is bounded like any recursion.
    let negations = format!("{}1", "-".repeat(MAX_SOURCE - 1));
    let e = on_small_stack(|| Expr::compile(&negations)).expect("compiles");
    let err = on_small_stack(|| e.eval(&json!(null)))
        .expect_err("too deep")
        .to_string();
    assert!(err.contains(STACK), "{}", &err[err.len() - 80..]);
    let too_long = format!("{}.", " ".repeat(MAX_SOURCE));
    let err = Expr::compile(&too_long).expect_err("too long");
    assert_eq!(
        err.message,
        format!("the expression is longer than {MAX_SOURCE} bytes")
    );
}

#[test]
fn after_running_out_the_next_evaluation_has_its_whole_budget() {
    let runaway = Expr::compile("def f: f; f").expect("compiles");
    let busy = Expr::compile("[range(100000)] | length").expect("compiles");
    on_small_stack(|| {
        for _ in 0..2 {
            assert!(runaway.eval(&json!(null)).is_err());
            assert_eq!(busy.eval(&json!(null)), Ok(json!(100000)));
        }
    });
}

#[test]
fn ordinary_expressions_evaluate_as_before() {
    let data = json!({
        "order": {"id": "o-1", "sku": "A-1", "qty": 3, "amount": 1250.5, "email": "a@b.c"},
        "items": [
            {"name": "x", "price": 3, "tags": ["a", "b"]},
            {"name": "y", "price": 1, "tags": []},
            {"name": "z", "price": 2, "tags": ["b"]}
        ],
        "loaded": [{"file": "f1", "rows": 3}, null, {"file": "f3", "rows": 4}],
        "big": 12345678901234567890_u64,
        "text": "Hello, World"
    });
    let cases: &[(&str, Value)] = &[
        (
            "{sku: .order.sku, qty: (.order.qty * 2)}",
            json!({"sku": "A-1", "qty": 6}),
        ),
        (".items | length", json!(3)),
        ("[.items[] | select(.price > 1) | .name]", json!(["x", "z"])),
        ("[.items[] | .price] | add", json!(6)),
        (".items | map(.price * 10)", json!([30, 10, 20])),
        (
            "\"order \\(.order.id) of \\(.order.qty)\"",
            json!("order o-1 of 3"),
        ),
        (
            "\"Your order \" + .order.id + \" ships\"",
            json!("Your order o-1 ships"),
        ),
        (".order.amount | tostring", json!("1250.5")),
        (".order.amount > 1000 and .order.qty < 5", json!(true)),
        (".missing // \"default\"", json!("default")),
        (
            "{loaded: [.loaded[] | select(. != null) | .file], failed: [.loaded | to_entries[] | select(.value == null) | .key], rows: ([.loaded[] | select(. != null) | .rows] | add)}",
            json!({"loaded": ["f1", "f3"], "failed": [1], "rows": 7}),
        ),
        (
            ".items | sort_by(.price) | map(.name)",
            json!(["y", "z", "x"]),
        ),
        (
            ".items | group_by(.tags | length) | map(length)",
            json!([1, 1, 1]),
        ),
        ("[.items[].tags[]] | unique", json!(["a", "b"])),
        (".items | map(.tags) | flatten", json!(["a", "b", "b"])),
        (
            ".order | keys",
            json!(["amount", "email", "id", "qty", "sku"]),
        ),
        (".order | to_entries | map(.key) | first", json!("id")),
        (
            ".order | with_entries(select(.key == \"id\"))",
            json!({"id": "o-1"}),
        ),
        (
            "[.order | has(\"sku\"), has(\"nope\")]",
            json!([true, false]),
        ),
        (".items | has(2)", json!(true)),
        (".items[0].tags | contains([\"a\"])", json!(true)),
        (".text | contains(\"World\")", json!(true)),
        (".text | indices(\"o\")", json!([4, 8])),
        (".text | test(\"w.r\"; \"i\")", json!(true)),
        (".text | sub(\"World\"; \"jq\")", json!("Hello, jq")),
        (".text | gsub(\"l\"; \"L\")", json!("HeLLo, WorLd")),
        (".text | split(\", \")", json!(["Hello", "World"])),
        (".text | ascii_downcase", json!("hello, world")),
        (".text | length", json!(12)),
        (".text | @base64 | @base64d", json!("Hello, World")),
        ("[.items[].name] | join(\"-\")", json!("x-y-z")),
        (".order | tojson | fromjson | .qty", json!(3)),
        ("\"42\" | tonumber", json!(42)),
        ("-5 | length", json!(5)),
        (".big", json!(12345678901234567890_u64)),
        (".big + 1 | tostring", json!("12345678901234567891")),
        ("[paths] | length", json!(32)),
        ("getpath([\"order\", \"sku\"])", json!("A-1")),
        (
            "setpath([\"order\", \"sku\"]; \"B\") | .order.sku",
            json!("B"),
        ),
        ("del(.items) | has(\"items\")", json!(false)),
        (".items[1:] | map(.name)", json!(["y", "z"])),
        (".items[-1].name", json!("z")),
        (".order.qty |= . + 1 | .order.qty", json!(4)),
        (".items |= map(.price) | .items", json!([3, 1, 2])),
        ("[limit(2; .items[])] | length", json!(2)),
        ("first(.items[] | select(.price < 3)) | .name", json!("y")),
        ("reduce .items[] as $i (0; . + $i.price)", json!(6)),
        (
            "[foreach .items[] as $i (0; . + $i.price)]",
            json!([3, 4, 6]),
        ),
        ("[range(5)] | map(. * .) | max", json!(16)),
        (
            "[.items[] | {(.name): .price}] | add",
            json!({"x": 3, "y": 1, "z": 2}),
        ),
        ("{a: {b: 1}} * {a: {c: 2}}", json!({"a": {"b": 1, "c": 2}})),
        (
            "[[1, [2, 3]] == [1, [2, 3]], [1] < [1, 0], {} < []]",
            json!([true, true, false]),
        ),
        (
            "[{\"b\": 1, \"a\": 2}, {\"a\": 1}] | sort",
            json!([{"a": 1}, {"b": 1, "a": 2}]),
        ),
        ("[1, 2, 3] | bsearch(2)", json!(1)),
        ("[[1, 2, 1] | index(1), rindex(1)]", json!([0, 2])),
        ("\"abc\" | tobytes | length", json!(3)),
        ("[.items[].price] | [min, max]", json!([1, 3])),
        ("try error(\"boom\") catch .", json!("boom")),
        (
            "try (.text + 1) catch .",
            json!("cannot calculate \"Hello, World\" + 1"),
        ),
        ("[.[] | numbers]", json!([12345678901234567890_u64])),
        (
            "[splits(\", \")]? // \"not a string\"",
            json!("not a string"),
        ),
        (".text | [splits(\", \")]", json!(["Hello", "World"])),
        ("[pow(2; 10), (100 | log10)]", json!([1024.0, 2.0])),
        (
            "[{\"b\": 1, \"a\": 2}, {\"a\": 1, \"c\": 0}, {\"a\": 1, \"b\": 0}] | sort",
            json!([{"a": 1, "b": 0}, {"b": 1, "a": 2}, {"a": 1, "c": 0}]),
        ),
        ("[1, 2, 3] - [2]", json!([1, 3])),
        ("[1, 2, 1, 2] | indices([1, 2])", json!([0, 2])),
        (
            "\"test 123\" | capture(\"(?<n>[0-9]+)\")",
            json!({"n": "123"}),
        ),
        ("[.text | explode | implode]", json!(["Hello, World"])),
        ("[1, 2, 3] | .[1:2] |= map(. * 10)", json!([1, 20, 3])),
        ("{} | .a += 1", json!({"a": 1})),
        (
            "def fac: if . <= 1 then 1 else . * (. - 1 | fac) end; 10 | fac",
            json!(3628800),
        ),
        (
            "label $out | foreach .items[] as $i (0; . + 1; if . > 1 then ., break $out else empty end)",
            json!(2),
        ),
        ("\"x\" * 0", json!(null)),
    ];
    let mut wrong = Vec::new();
    for (code, want) in cases {
        match eval(code, data.clone()) {
            Ok(got) if got == *want => {}
            got => wrong.push(format!("`{code}`: got {got:?}, want {want}")),
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn failing_expressions_say_why_as_before() {
    assert_eq!(
        eval(".a + 1", json!({"a": "x"})),
        Err("`.a + 1` failed: cannot calculate \"x\" + 1".to_owned())
    );
    assert_eq!(
        eval(".a.b", json!({"a": 5})),
        Err("`.a.b` failed: cannot index 5 with \"b\"".to_owned())
    );
    assert_eq!(
        eval("error(\"no\")", json!(null)),
        Err("`error(\"no\")` failed: no".to_owned())
    );
    assert_eq!(
        eval("error({code: 1})", json!(null)),
        Err("`error({code: 1})` failed: {\"code\":1}".to_owned())
    );
    assert_eq!(
        eval("empty", json!(null)),
        Err("`empty` produced no value".to_owned())
    );
    // A message quoting a huge value is cut short.
    let err = eval("[range(100000)] | .x", json!(null)).expect_err("fails");
    assert!(
        err.len() < 1100 && err.ends_with("..."),
        "{} bytes",
        err.len()
    );
}
