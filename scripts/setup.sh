#!/usr/bin/env bash
# Installs what building weft needs beyond cargo itself: the wasm32-wasip2
# target the adapter plugins are compiled for.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "adding the wasm32-wasip2 target (once)"
    rustup target add wasm32-wasip2
fi
