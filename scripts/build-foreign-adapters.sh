#!/usr/bin/env bash
# Builds the adapters written in JavaScript (plugins/js/<name>/<name>.js) and
# Python (plugins/python/<name>/<name>.py) into components at
# target/foreign/weft_<name>_js.wasm and target/foreign/weft_<name>_py.wasm.
#
# The toolchains are pinned below and installed under target/foreign/ only:
# jco and componentize-js with npm (from plugins/js/package-lock.json) into
# target/foreign/node, componentize-py with pip into target/foreign/py-venv.
# Needs node and npm (20 or newer) and python3 (3.9 or newer, with venv) on
# PATH, and the npm registry and PyPI the first time.
#
# Running it again only redoes what changed: a tool already installed at its
# pinned version is kept, a component newer than its sources is kept.
set -euo pipefail

# The toolchain versions, here and nowhere else. plugins/js/package.json and
# its lock must pin the same JS ones (checked below); after changing them there,
# run `npm install --package-lock-only` in plugins/js. That package.json also
# lists preview2-shim: componentize-js 0.23 loads it at build time but declares
# it only as a dev dependency, so `npm ci` would leave it out.
JCO_VERSION=1.35.0
COMPONENTIZE_JS_VERSION=0.23.0
COMPONENTIZE_PY_VERSION=0.25.1
NODE_MIN_MAJOR=20
PYTHON=${PYTHON:-python3}

self=$(realpath "$0")
cd "$(dirname "$self")/.."
root=$PWD
out=target/foreign
node_dir=$out/node
venv=$out/py-venv
mkdir -p "$out"

# One run at a time: two test binaries may start it together.
exec 9>"$out/.lock"
flock 9

die() {
    echo "build-foreign-adapters: $*" >&2
    exit 1
}

# Runs a command quietly; prints what it said only if it fails.
quiet() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "failed: $*"
    fi
    rm -f "$log"
}

# True when $1 exists and is newer than every file under the other arguments.
up_to_date() {
    local target=$1
    shift
    [[ -e $target ]] || return 1
    [[ -z $(find "$@" -type f -newer "$target" -print -quit) ]]
}

size_of() {
    local bytes
    bytes=$(stat -c %s "$1")
    echo "$((bytes / 1048576)).$((bytes % 1048576 * 10 / 1048576)) MiB"
}

# --- JavaScript: jco + componentize-js (StarlingMonkey) -----------------------

js_toolchain() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        die "node and npm ($NODE_MIN_MAJOR or newer) are needed for plugins/js"
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= NODE_MIN_MAJOR)) || die "node $major is too old: jco $JCO_VERSION needs $NODE_MIN_MAJOR or newer"

    local pinned
    pinned=$(node -p 'const d = require("./plugins/js/package.json").devDependencies;
        d["@bytecodealliance/jco"] + " " + d["@bytecodealliance/componentize-js"]')
    [[ $pinned == "$JCO_VERSION $COMPONENTIZE_JS_VERSION" ]] ||
        die "plugins/js/package.json pins jco and componentize-js at $pinned, this script at $JCO_VERSION $COMPONENTIZE_JS_VERSION"

    if [[ -d $node_dir/node_modules ]] &&
        cmp -s plugins/js/package-lock.json "$node_dir/package-lock.json" &&
        [[ $(installed_js_versions) == "$JCO_VERSION $COMPONENTIZE_JS_VERSION" ]]; then
        :
    else
        echo "installing jco $JCO_VERSION and componentize-js $COMPONENTIZE_JS_VERSION into $node_dir"
        rm -rf "$node_dir"
        mkdir -p "$node_dir"
        cp plugins/js/package.json plugins/js/package-lock.json "$node_dir/"
        (cd "$node_dir" && quiet npm ci --no-audit --no-fund)
        [[ $(installed_js_versions) == "$JCO_VERSION $COMPONENTIZE_JS_VERSION" ]] ||
            die "npm installed jco and componentize-js $(installed_js_versions); plugins/js/package-lock.json is stale"
    fi
    # jco must run with its WASI shim given a root to read the WIT from.
    cmp -s plugins/js/preopens.mjs "$node_dir/preopens.mjs" || cp plugins/js/preopens.mjs "$node_dir/"
}

# The versions of jco, and of the componentize-js that jco itself loads.
installed_js_versions() {
    local m=$root/$node_dir/node_modules/@bytecodealliance cjs
    cjs=$m/jco/node_modules/@bytecodealliance/componentize-js
    [[ -d $cjs ]] || cjs=$m/componentize-js
    node -p "require('$m/jco/package.json').version + ' ' + require('$cjs/package.json').version" 2>/dev/null || true
}

build_js() {
    local dir=${1%/} name wasm started
    name=$(basename "$dir")
    wasm=$out/weft_${name}_js.wasm
    [[ -f $dir/$name.js ]] || die "$dir has no $name.js"
    if up_to_date "$wasm" "$dir" wit "$node_dir/package-lock.json" "$node_dir/preopens.mjs" "$self"; then
        echo "$wasm is up to date"
        return
    fi
    started=$SECONDS
    # --disable all: no wasi:http, clocks, random or stdio imports; the
    # component imports weft:plugin/host and nothing else.
    quiet node --import "$root/$node_dir/preopens.mjs" \
        "$node_dir/node_modules/@bytecodealliance/jco/dist/jco.js" componentize "$dir/$name.js" \
        --wit wit --world-name adapter --disable all --out "$wasm.partial"
    mv "$wasm.partial" "$wasm"
    echo "built $wasm ($(size_of "$wasm")) in $((SECONDS - started)) s"
}

# --- Python: componentize-py ----------------------------------------------------

py_toolchain() {
    if [[ $("$venv/bin/componentize-py" --version 2>/dev/null) == "componentize-py $COMPONENTIZE_PY_VERSION" ]]; then
        return
    fi
    command -v "$PYTHON" >/dev/null || die "$PYTHON (3.9 or newer) is needed for plugins/python"
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv"
    quiet "$PYTHON" -m venv --clear "$venv"
    quiet "$venv/bin/pip" install --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
}

build_py() {
    local dir=${1%/} name wasm stage started
    name=$(basename "$dir")
    wasm=$out/weft_${name}_py.wasm
    [[ -f $dir/$name.py ]] || die "$dir has no $name.py"
    if up_to_date "$wasm" "$dir" wit "$venv/bin/componentize-py" "$self"; then
        echo "$wasm is up to date"
        return
    fi
    started=$SECONDS
    # componentize-py writes __pycache__ beside the modules it reads: build a
    # copy so the source tree stays clean.
    stage=$out/build/$name
    rm -rf "$stage"
    mkdir -p "$stage"
    cp -R "$dir/." "$stage/"
    # Without --stub-wasi: the component imports WASI p2, which the engine
    # links for every plugin, and holds 14 core instances instead of 38.
    (cd "$stage" && quiet "$root/$venv/bin/componentize-py" --wit-path "$root/wit" --world adapter \
        componentize "$name" --python-path . --output "$root/$wasm.partial")
    mv "$wasm.partial" "$wasm"
    echo "built $wasm ($(size_of "$wasm")) in $((SECONDS - started)) s"
}

shopt -s nullglob
js=(plugins/js/*/)
py=(plugins/python/*/)
if ((${#js[@]})); then
    js_toolchain
    for dir in "${js[@]}"; do build_js "$dir"; done
fi
if ((${#py[@]})); then
    py_toolchain
    for dir in "${py[@]}"; do build_py "$dir"; done
fi
