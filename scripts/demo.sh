#!/usr/bin/env bash
# The order-fulfillment demo: a saga through three WASM adapters, a crash in
# the middle of a step, and the resume that finishes it with nothing lost and
# nothing that was recorded done twice. Run it with `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

weft=target/debug/weft
ex=examples/order-fulfillment
demo=target/demo
rm -rf "$demo"
mkdir -p "$demo/log"
export WEFT_LOG=${WEFT_LOG:-error}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. check the process against its bindings and the plugins' manifests"
$weft validate $ex/process.yaml --bindings $ex/bindings.yaml

step "2. run an order: reserve -> charge -> ship, each step a WASM adapter"
$weft run $ex/process.yaml --bindings $ex/bindings.yaml \
    --input "$(cat $ex/input.json)" --data "$demo/data"

step "3. a declined card: the reservation is undone, the order fails (exit code 1)"
$weft run $ex/process.yaml --bindings $ex/bindings.yaml --data "$demo/data" \
    --input '{"order": {"id": "ord-1002", "sku": "TEA-GREEN-250", "qty": 1, "amount": 9.5, "card": "4000000000000002", "address": "2 Loom Street"}}' \
    || echo "(exit code $?)"

step "4. crash: same process, bindings that make charging slow and log every call"
# Only the tool layer changes: process.yaml is untouched.
sed -e "s|\.\./\.\./plugins/|$PWD/plugins/|" \
    -e "s|^    config: { stock: 25 }|    config: { stock: 25, simulate: { record: /log/calls.log } }\n    dirs: { /log: $PWD/$demo/log }|" \
    -e "s|^    config: { limit: 5000 }|    config: { limit: 5000, simulate: { record: /log/calls.log, sleep_ms: 2000 } }\n    dirs: { /log: $PWD/$demo/log }|" \
    -e "s|^    config: { carrier: parcel-post }|    config: { carrier: parcel-post, simulate: { record: /log/calls.log } }\n    dirs: { /log: $PWD/$demo/log }|" \
    $ex/bindings.yaml > "$demo/bindings.slow.yaml"
sed -i 's|^    timeout: 10s|    timeout: 30s|' "$demo/bindings.slow.yaml"
$weft run $ex/process.yaml --bindings "$demo/bindings.slow.yaml" \
    --input "$(cat $ex/input.json)" --data "$demo/crash" > "$demo/run.out" &
pid=$!
until grep -q charge_payment "$demo/log/calls.log" 2>/dev/null; do sleep 0.05; done
kill -9 $pid
wait $pid 2>/dev/null || true
id=$(head -1 "$demo/run.out")
cat "$demo/run.out"
echo "killed the engine (SIGKILL) while 'charge' was running"
$weft status "$id" --data "$demo/crash"

step "5. restart: weft resume picks the instance up from the store"
$weft resume --data "$demo/crash"

step "6. the history, gap-free; and what the adapters saw"
$weft history "$id" --data "$demo/crash"
echo
echo "calls made (action, idempotency key, attempt):"
sed 's/^/  /' "$demo/log/calls.log"
echo "reserve and ship ran once: their outcomes were recorded. charge was cut off"
echo "before its outcome was recorded, so it ran again with the same idempotency key."

step "7. a flaky payment gateway: retries with backoff, and a circuit breaker"
$weft run examples/payment-retry/process.yaml --bindings examples/payment-retry/bindings.yaml \
    --input "$(cat examples/payment-retry/input.json)" --data "$demo/data"
