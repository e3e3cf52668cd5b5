#!/usr/bin/env bash
# The PostgreSQL figures in README.md: a throwaway PostgreSQL cluster
# (scripts/postgres.sh) on a loopback port; durable transitions/s of the
# stores alone in batches of 1, 16 and 256; then the saga3 workload over
# HTTP on the embedded store and on 1, 2 and 3 nodes sharing PostgreSQL,
# each on a fresh database. Stops the cluster on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."
weft=target/release/weft
n=${N:-2000}
c=${C:-32}
dir=$(mktemp -d /tmp/weft-bench-pg.XXXXXX)
port=${PORT:-55439}
url=$(scripts/postgres.sh start "$dir" "$port")
trap 'scripts/postgres.sh stop "$dir"; rm -rf "$dir"' EXIT
bin=${WEFT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
fresh() {
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U weft "$1"
    echo "${url%/*}/$1"
}
env -u RUST_BACKTRACE "$weft" bench store --store "$(fresh store)"
env -u RUST_BACKTRACE "$weft" bench http --n "$n" --c "$c" --warmup 200
for nodes in 1 2 3; do
    env -u RUST_BACKTRACE "$weft" bench http --n "$n" --c "$c" --warmup 200 \
        --store "$(fresh "saga3_$nodes")" --nodes "$nodes"
done
