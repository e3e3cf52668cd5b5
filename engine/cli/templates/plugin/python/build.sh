#!/bin/sh
# ./build.sh: {{module}}.py into the component {{name}}.wasm, with
# componentize-py (world `adapter` of wit/plugin.wit).
#
# Uses the componentize-py that $COMPONENTIZE_PY names, or else one installed
# into .venv the first time (needs python3, 3.9 or newer, with venv; $PYTHON
# names another interpreter).
set -eu
cd "$(dirname "$0")"

version=0.25.1
if [ -n "${COMPONENTIZE_PY:-}" ]; then
    cpy=$COMPONENTIZE_PY
else
    cpy=.venv/bin/componentize-py
    if [ "$("$cpy" --version 2>/dev/null)" != "componentize-py $version" ]; then
        echo "installing componentize-py $version into .venv"
        "${PYTHON:-python3}" -m venv .venv
        .venv/bin/pip install --quiet --disable-pip-version-check "componentize-py==$version"
    fi
fi

started=$(date +%s)
# Written aside and moved into place: a failed build leaves the last good one.
trap 'rm -f {{name}}.wasm.partial' EXIT
"$cpy" --wit-path wit --world adapter componentize {{module}} --python-path . \
    --output {{name}}.wasm.partial >/dev/null
mv {{name}}.wasm.partial {{name}}.wasm
bytes=$(wc -c <{{name}}.wasm)
echo "built {{name}}.wasm ($((bytes / 1048576)).$((bytes % 1048576 * 10 / 1048576)) MiB) in $(($(date +%s) - started)) s"
