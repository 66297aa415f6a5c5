#!/bin/sh
# The emoji art set: emoji images from the npm registry, composited on white, resized,
# with captions from each emoji's name, short names, keywords and category.
#
#   data/emoji/build.sh [-o OUT_DIR] [--size S] [--sets twitter,google,facebook,openmoji]
#
# Output (default data/emoji/out): OUT_DIR/SET/NAME.png (S x S RGB, default 64) with
# NAME.txt (one caption a line, e.g. "grinning face, twitter style"), a dataset folder for
# `dalle-c dvae train` / `dalle-c train`. Needs the dalle-c binary (README's first
# command builds build/dalle-c; DALLEC_BIN=path to use another). Installs what else it
# needs from Debian when missing (npm and nodejs; librsvg2-bin to draw OpenMoji's SVGs),
# as root or through sudo. Licences of the images: data/LICENSES.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/out"
size=64
sets="twitter,google,facebook,openmoji"
while [ $# -gt 0 ]; do
    case "$1" in
        -o) out="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --sets) sets="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
bin="${DALLEC_BIN:-$root/build/dalle-c}"
if [ ! -x "$bin" ]; then
    echo "build.sh: $bin not found: build dalle-c first (cmake -S . -B build && cmake --build build -j2) or set DALLEC_BIN" >&2
    exit 1
fi

# ---------------------------------------------------------------- Debian packages
apt_install() {
    as_root=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then as_root="sudo"; else
            echo "build.sh: need root (or sudo) to install: $*" >&2; exit 1
        fi
    fi
    echo "installing from Debian: $*"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}
missing=""
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v node >/dev/null 2>&1 || command -v nodejs >/dev/null 2>&1 || missing="$missing nodejs"
case ",$sets," in *,openmoji,*)
    command -v rsvg-convert >/dev/null 2>&1 || missing="$missing librsvg2-bin" ;;
esac
command -v xargs >/dev/null 2>&1 || missing="$missing findutils"
# shellcheck disable=SC2086
[ -z "$missing" ] || apt_install $missing
node=$(command -v node || command -v nodejs)

# ---------------------------------------------------------------- npm packages
# Pinned versions, so the set (and its counts) are reproducible.
cache="$here/cache"
mkdir -p "$cache"
cat > "$cache/package.json" <<'JSON'
{
  "name": "dallec-emoji-set",
  "private": true,
  "description": "emoji images and metadata for the dalle-c emoji art set",
  "dependencies": {
    "emoji-datasource-twitter": "16.0.0",
    "emoji-datasource-google": "16.0.0",
    "emoji-datasource-facebook": "16.0.0",
    "openmoji": "17.0.0",
    "emojilib": "4.0.3"
  }
}
JSON
echo "installing the emoji packages from the npm registry into $cache (about 330 MB)"
(cd "$cache" && npm install --no-audit --no-fund --ignore-scripts --no-package-lock --loglevel=error)

# ---------------------------------------------------------------- captions and images
work="$cache/work"
rm -rf "$work"
mkdir -p "$work" "$out"
"$node" "$here/captions.js" "$cache/node_modules" "$out" "$work" "$sets"

jobs=$(nproc 2>/dev/null || echo 2)
if [ -s "$work/svg.tsv" ]; then
    n_svg=$(wc -l < "$work/svg.tsv")
    echo "drawing $n_svg OpenMoji SVGs at $((size * 2)) px with rsvg-convert"
    cut -f1,2 "$work/svg.tsv" | tr '\t' '\n' |
        xargs -d '\n' -n 2 -P "$jobs" sh -c 'rsvg-convert -w "$0" -h "$0" -o "$2" "$1" 2>/dev/null || true' "$((size * 2))"
    cut -f2,3 "$work/svg.tsv" >> "$work/convert.tsv"
fi
echo "compositing on white and resizing to ${size}x${size}"
"$bin" data convert "$work/convert.tsv" --size "$size" --keep-going

# A caption whose image failed is removed, so every .txt has its .png.
find "$out" -name '*.txt' | while IFS= read -r t; do
    [ -f "${t%.txt}.png" ] || rm -f "$t"
done

echo
echo "emoji art set in $out:"
total=0
for d in "$out"/*/; do
    [ -d "$d" ] || continue
    n=$(find "$d" -name '*.png' | wc -l)
    total=$((total + n))
    printf '  %-10s %6d captioned images\n' "$(basename "$d")" "$n"
done
printf '  %-10s %6d\n' total "$total"
