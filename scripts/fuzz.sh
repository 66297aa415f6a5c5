#!/bin/sh
# The long fuzz campaign (docs/RELIABILITY.md): builds the libFuzzer targets of
# tests/fuzz with clang (-fsanitize=fuzzer,address,undefined; Debian packages clang and
# libclang-rt-14-dev, or scripts/install-deps.sh --fuzz) in build-libfuzzer/, then runs
# each target for SECONDS (default 600) on a working copy of its committed corpus.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: model image grid caption args
# Findings (crash-*, timeout-*, oom-*) are left in build-libfuzzer/fuzz-out/TARGET/;
# replay one with build-libfuzzer/tests/fuzz/fuzz_TARGET FILE (or the gcc driver
# fuzz_TARGET_run FILE). New corpus entries stay in fuzz-out/TARGET/corpus: copy the
# interesting small ones into tests/fuzz/corpus/TARGET by hand (keep it under ~300 KB).
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-model image grid caption args}
build=build-libfuzzer
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDALLEC_SANITIZE=ON -DDALLEC_LIBFUZZER=ON -DDALLEC_MPI=OFF -DDALLEC_NATIVE=OFF \
    -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
for t in $targets; do
    cmake --build "$build" -j "${JOBS:-1}" --target "fuzz_$t"
done
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in $targets; do
    out=$build/fuzz-out/$t
    mkdir -p "$out/corpus"
    echo "== fuzz_$t for $seconds s"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: 2 GB
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "tests/fuzz/corpus/$t" \
            2>"$out/log.txt"; then
        echo "fuzz_$t: FOUND SOMETHING, see $out/log.txt and $out/"
        status=1
    fi
    grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|^#[0-9]+.*DONE" "$out/log.txt" || true
done
exit $status
