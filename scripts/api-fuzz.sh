#!/usr/bin/env bash
# API robustness: schemathesis (from PyPI, pinned, in a venv under target/)
# against a real `weft serve` on a free loopback port and the checked-in
# OpenAPI document (api/openapi.json), with every check on: no 5xx, no
# answer outside the document, bad input refused with a 4xx. The server is
# given something to find first: two deployed processes, a few instances
# and a registered plugin.
#
#   scripts/api-fuzz.sh                        # what `make test` runs
#   WEFT_FUZZ_EXAMPLES=500 scripts/api-fuzz.sh # a longer run
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
venv=target/schemathesis-venv
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
    echo "installing schemathesis $version into $venv (once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$version"
fi

weft=target/debug/weft
cargo build -q -p weft
(cd plugins && cargo build -q --release --target wasm32-wasip2)
work=$(mktemp -d)
serve_pid=
cleanup() {
    if [ -n "$serve_pid" ]; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
export WEFT_LOG=${WEFT_LOG:-error}
for ex in order-fulfillment loan-approval; do
    $weft deploy examples/$ex/process.yaml --bindings examples/$ex/bindings.yaml \
        --data "$data" > /dev/null
done
$weft serve --data "$data" --listen 127.0.0.1:0 > "$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 300); do
    [ -s "$data/server.addr" ] && break
    sleep 0.05
done
url=$(cat "$data/server.addr")
$weft start order-fulfillment --key o-1 --input "$(cat examples/order-fulfillment/input.json)" \
    --data "$data" > /dev/null
curl -sf --data-binary @plugins/target/wasm32-wasip2/release/weft_echo.wasm \
    "$url/v1/plugins?name=echo" > /dev/null
$weft start loan-approval --key loan-1 --input "$(cat examples/loan-approval/input.json)" \
    --data "$data" > /dev/null

status=0
"$venv/bin/st" --config-file api/schemathesis.toml run api/openapi.json --url "$url" \
    --checks all \
    --max-examples "${WEFT_FUZZ_EXAMPLES:-100}" \
    --workers 1 \
    --seed 7 \
    --no-color || status=$?

# The server must still be up and answering after all of it.
if ! kill -0 "$serve_pid" 2>/dev/null; then
    echo "weft serve died during the run:"
    cat "$work/serve.log"
    exit 1
fi
curl -sf "$url/healthz" > /dev/null || { echo "weft serve stopped answering"; exit 1; }
exit $status
