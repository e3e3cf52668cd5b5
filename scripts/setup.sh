#!/usr/bin/env bash
# Installs what building weft needs beyond cargo itself: the wasm32-wasip2
# target the adapter plugins are compiled for, and PostgreSQL for the tests of
# the PostgreSQL store.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "adding the wasm32-wasip2 target (once)"
    rustup target add wasm32-wasip2
fi

# PostgreSQL's server binaries, for the PostgreSQL store's tests: each test
# starts a cluster of its own on a loopback port and stops it.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && [ -z "${WEFT_PG_BIN:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing PostgreSQL (once)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "PostgreSQL's server binaries are missing: install the postgresql package, or set WEFT_PG_BIN" >&2
        exit 1
    fi
fi
