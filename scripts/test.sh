#!/bin/sh
# The whole test suite: release build and the ASan + UBSan build, each through ctest.
#   scripts/test.sh            both builds
#   scripts/test.sh release    only the release build (faster while developing)
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
which=${1:-all}

run() {  # run BUILD_DIR CMAKE_ARGS...
    dir=$1; shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

if [ "$which" = all ] || [ "$which" = release ]; then
    echo "== release build (build/)"
    run build -DCMAKE_BUILD_TYPE=Release
fi
if [ "$which" = all ] || [ "$which" = sanitize ]; then
    echo "== ASan + UBSan build (build-sanitize/)"
    # libgomp keeps its thread pool alive to exit: not a leak of ours.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDALLEC_SANITIZE=ON -DDALLEC_NATIVE=ON
fi
