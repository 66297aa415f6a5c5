#!/bin/sh
# The browser test of dalle-c serve's page (docs/SERVER.md), outside the default ctest
# suite: it installs what it needs, so it wants the network and (for apt-get) root.
#   scripts/test-browser.sh [MODEL]
# MODEL: default $DALLEC_MODEL, else weights/default.dalle. It installs Debian's chromium
# (apt-get) and playwright-core (npm, into BUILD/browser-test; no browser download),
# starts `dalle-c serve` from BUILD (default build/, or $BUILD_DIR) on a free port, and
# runs tests/browser/serve_page.js: the page loads, a prompt is typed, Generate is
# clicked, the images are seen partly drawn, a screenshot is taken then
# (docs/serve-screenshot.png, or $SCREENSHOT; SCREENSHOT= for none), the finished PNG
# downloads and carries its seed. Exit status 0 when every check passed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
model=${1:-${DALLEC_MODEL:-$root/weights/default.dalle}}
screenshot=${SCREENSHOT-$root/docs/serve-screenshot.png}
say() { echo "test-browser.sh: $*" >&2; }

[ -f "$model" ] || { say "no model at $model: pass one (scripts/test-browser.sh MODEL)"; exit 1; }
[ -x "$build/dalle-c" ] || { say "no $build/dalle-c: build first (README), or set BUILD_DIR"; exit 1; }
build=$(cd "$build" && pwd)
"$build/dalle-c" serve --help >/dev/null

if ! [ -x /usr/bin/chromium ]; then
    if [ "$(id -u)" != 0 ]; then say "needs Debian's chromium: sudo apt-get install chromium"; exit 1; fi
    say "installing chromium (apt-get)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi
command -v node >/dev/null && command -v npm >/dev/null || {
    say "needs Node.js and npm (apt-get install nodejs npm)"; exit 1; }

tools=$build/browser-test
mkdir -p "$tools"
if ! [ -f "$tools/node_modules/playwright-core/package.json" ]; then
    say "installing playwright-core (npm; it drives Debian's chromium, downloads no browser)"
    [ -f "$tools/package.json" ] || echo '{"private": true}' >"$tools/package.json"
    (cd "$tools" && npm install --no-audit --no-fund --loglevel=error playwright-core@1)
fi

log=$tools/serve.log
hold=$tools/hold
rm -f "$hold"
: >"$log"
DALLEC_SERVE_TEST_HOLD=$hold "$build/dalle-c" serve -m "$model" --port 0 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$hold"' EXIT INT TERM
url=""
for _ in $(seq 1 600); do
    url=$(sed -n 's/^listening on \(http[^ ]*\)$/\1/p' "$log")
    [ -n "$url" ] && break
    kill -0 $pid 2>/dev/null || { cat "$log" >&2; say "the server did not start"; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { say "the server did not say where it listens"; exit 1; }
say "server at $url with $(basename "$model")"
node "$root/tests/browser/serve_page.js" "$url" "$hold" "$tools" "$screenshot"
