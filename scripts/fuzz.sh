#!/bin/sh
# The long fuzz campaign (docs/RELIABILITY.md): builds the libFuzzer targets of
# tests/fuzz with clang (-fsanitize=fuzzer,address,undefined; Debian packages clang and
# libclang-rt-14-dev, or scripts/install-deps.sh --fuzz) in build-libfuzzer/, then runs
# each target for SECONDS (default 600) on a working copy of its committed corpus, one
# after another, and prints a line per target and a table of them all at the end:
#   TARGET  SECONDS  EXECS  EXEC/S  CORPUS  PEAK RSS  RESULT
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# targets: model image grid caption args tokenizer tokenizer_train prompt dataset
# model_load cli_generate request (all by default; request is dalle-c serve's, built with
# the server). On a busy machine run it as `nice -n 19 scripts/fuzz.sh`: each target is
# one process on one core (OMP_NUM_THREADS=1).
# The build folder is build-libfuzzer/ ($FUZZ_BUILD to choose another); findings
# (crash-*, timeout-*, oom-*, leak-*) are left in build-libfuzzer/fuzz-out/TARGET/
# with the log (log.txt); replay one with build-libfuzzer/tests/fuzz/fuzz_TARGET FILE (or
# the gcc driver fuzz_TARGET_run FILE). New corpus entries stay in fuzz-out/TARGET/corpus:
# copy the interesting small ones into tests/fuzz/corpus/TARGET by hand (keep it under
# ~300 KB). The exit status is 1 when any target found something.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-model image grid caption args tokenizer tokenizer_train prompt dataset model_load cli_generate request}
build=${FUZZ_BUILD:-build-libfuzzer}
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDALLEC_SANITIZE=ON -DDALLEC_LIBFUZZER=ON -DDALLEC_MPI=OFF -DDALLEC_NATIVE=OFF \
    -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
for t in $targets; do
    cmake --build "$build" -j "${JOBS:-1}" --target "fuzz_$t"
done
export OMP_NUM_THREADS=1
# dataset and cli_generate write files (atomic saves fsync): tmpfs keeps that cheap
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=$build/fuzz-out/summary.txt
mkdir -p "$build/fuzz-out"
printf '%-11s %7s %11s %7s %16s %9s  %s\n' TARGET SECONDS EXECS EXEC/S CORPUS "PEAK RSS" RESULT >"$summary"
for t in $targets; do
    out=$build/fuzz-out/$t
    mkdir -p "$out/corpus"
    echo "== fuzz_$t for $seconds s ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    result=clean
    # -timeout: one input taking over FUZZ_TIMEOUT s (wall clock; default 10) is a hang:
    # raise it under nice on a busy machine, where a 0.1 s input has waited 129 s for a
    # core; -rss_limit_mb: 2 GB (also the largest single allocation allowed)
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" \
            -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "tests/fuzz/corpus/$t" \
            </dev/null 2>"$out/log.txt"; then
        result="FOUND SOMETHING: $out/log.txt"
        status=1
    fi
    # (after a finding libFuzzer prints its stats twice: the last ones count)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log.txt" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log.txt" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$out/log.txt" | tail -n 1)
    corpus=$(grep -o 'corp: [0-9]*/[0-9A-Za-z]*' "$out/log.txt" | tail -n 1 | sed 's/corp: //')
    printf '%-11s %7s %11s %7s %16s %9s  %s\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" \
        "${corpus:-?}" "${rss:-?} MB" "$result" | tee -a "$summary"
done
echo "== summary ($(uname -n), $(nproc) cores, $(date -u '+%Y-%m-%d'); also in $summary)"
cat "$summary"
exit $status
