#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a loopback port, for trying weft's
# PostgreSQL store and for its benchmarks:
#   scripts/postgres.sh start DIR [PORT]   prints the store URL
#   scripts/postgres.sh stop DIR
# The server binaries come from the distribution's package (scripts/setup.sh
# installs it). As root the cluster belongs to the postgres user.
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a directory for the cluster}
bin=${WEFT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
case "$cmd" in
start)
    port=${3:-55432}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U weft -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U weft weft 2>/dev/null || true
    echo "postgres://weft@127.0.0.1:$port/weft"
    ;;
stop)
    dir=$(cd "$dir" && pwd)
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
*)
    echo "usage: $0 start DIR [PORT] | stop DIR" >&2
    exit 2
    ;;
esac
