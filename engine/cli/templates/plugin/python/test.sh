#!/bin/sh
# ./test.sh: builds {{name}}.wasm, then calls it through `weft plugin call`,
# as the engine would run it, and checks each outcome. `weft` is $WEFT, or
# the one on PATH.
set -eu
cd "$(dirname "$0")"
./build.sh

weft=${WEFT:-weft}
if ! command -v "$weft" >/dev/null 2>&1; then
    echo "cannot run $weft (set WEFT to the weft binary)" >&2
    exit 2
fi
err=$(mktemp)
trap 'rm -f "$err"' EXIT
failed=0
total=0

# check <what> <expected exit> <expected start of output> <call arguments...>
check() {
    what=$1 code=$2 says=$3
    shift 3
    total=$((total + 1))
    if out=$("$weft" plugin call {{name}}.wasm greet "$@" 2>"$err"); then got=0; else got=$?; fi
    case $got:$out in
    "$code:$says"*) echo "ok - $what" ;;
    *)
        failed=$((failed + 1))
        echo "not ok - $what: expected exit $code and \"$says...\", got exit $got: $out"
        cat "$err"
        ;;
    esac
}

check "a name is greeted" 0 'done: {"greeting":"hello, ada"}' \
    --input '{"name":"ada"}'
check "a blocked name fails with the typed error" 1 'failed: blocked: ' \
    --input '{"name":"mallory"}' --config '{"blocked":["mallory"]}'
check "a flaky attempt fails retryably" 1 'failed: retryable: ' \
    --input '{"name":"ada"}' --config '{"flaky_attempts":1}'

if [ "$failed" -gt 0 ]; then
    echo "$failed of $total failed"
    exit 1
fi
echo "all $total passed"
