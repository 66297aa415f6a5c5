#!/bin/sh
# Installs what dalle-c needs to build and test on Debian 12 (run as root).
#   scripts/install-deps.sh           build and test dependencies
#   scripts/install-deps.sh --torch   also python3-torch, for regenerating test fixtures
#                                     and the PyTorch side of the benchmarks
#   scripts/install-deps.sh --fuzz    also clang and its fuzzer runtime (scripts/fuzz.sh)
# libmicrohttpd and jansson are dalle-c serve's (HTTP, JSON); libcurl is its tests' client.
# scripts/test-browser.sh installs what the browser test needs itself.
set -eu
packages="build-essential cmake pkg-config git
  libopenblas-openmp-dev libsentencepiece-dev sentencepiece
  libpng-dev libjpeg62-turbo-dev libzstd-dev zstd
  libopenmpi-dev openmpi-bin
  libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev"
for opt in "$@"; do
    case $opt in
        --torch) packages="$packages python3 python3-torch python3-numpy" ;;
        --fuzz) packages="$packages clang libclang-rt-14-dev libomp-14-dev" ;;
        *) echo "install-deps.sh: unknown option '$opt' (--torch, --fuzz)" >&2; exit 2 ;;
    esac
done
export DEBIAN_FRONTEND=noninteractive
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
