#!/usr/bin/env bash
# What the dashboard's browser tests need: the distribution's headless
# Chromium (Debian's `chromium` package, installed with apt-get when it is
# missing) and playwright-core (pinned in tests/browser/package-lock.json,
# installed with npm into target/browser/node; it drives the installed
# Chromium and downloads no browser of its own). Running it again changes
# nothing once both are there. Prints the Chromium path on its last line.
set -euo pipefail

self=$(realpath "$0")
cd "$(dirname "$self")/.."
out=target/browser
mkdir -p "$out"

# One run at a time: two test binaries may start it together.
exec 9>"$out/.lock"
flock 9

die() {
    echo "setup-browser: $*" >&2
    exit 1
}

chromium=${WEFT_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    command -v apt-get >/dev/null || die "no $chromium and no apt-get to install it: install Chromium and set WEFT_CHROMIUM"
    echo "setup-browser: installing chromium with apt-get (once)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q chromium >/dev/null || die "apt-get install chromium failed"
fi
[ -x "$chromium" ] || die "$chromium is not there after installing it"

command -v npm >/dev/null || die "npm is needed (node 20 or newer) to install playwright-core"
want=$(sed -n 's/.*"playwright-core": "\([^"]*\)".*/\1/p' tests/browser/package.json)
have=$(sed -n 's/.*"version": "\([^"]*\)".*/\1/p' "$out/node/node_modules/playwright-core/package.json" 2>/dev/null | head -1 || true)
if [ "$have" != "$want" ]; then
    echo "setup-browser: installing playwright-core $want into $out/node (once)" >&2
    rm -rf "$out/node"
    mkdir -p "$out/node"
    cp tests/browser/package.json tests/browser/package-lock.json "$out/node/"
    (cd "$out/node" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent) \
        || die "npm ci of playwright-core failed"
fi
echo "$chromium"
