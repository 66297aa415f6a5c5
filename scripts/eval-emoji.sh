#!/bin/sh
# The default model's nearest-neighbour measure (issue 10; weights/MODELS.md): N emoji
# names as prompts, one image each, and whether an image of that same emoji (any style)
# is among each generated image's K nearest training images in pixel space.
#
#   scripts/eval-emoji.sh WORKDIR [-- extra generation options, e.g. --candidates 8]
#
# The names: the distinct names of the training images (first caption line without
# ", ... style"), skin-tone variants left out (they differ from their base emoji only in
# a hue the name does not ask for), ordered by the SHA-256 of "SEED:name" and the first
# N taken: a fixed sample that does not depend on the model.
#
# Validation names for choosing settings (weights/MODELS.md) are another seed's order with the
# test names left out, so nothing is tuned on the names the figure is reported on:
#   N=100 NAMES_ONLY=1 scripts/eval-emoji.sh test
#   SEED=2 EXCLUDE=test/prompts.txt N=100 scripts/eval-emoji.sh val
#
# Environment (defaults in brackets):
#   DALLEC [build/dalle-c]   MODEL [weights/default.dalle]   TRAIN [data/emoji/out]
#   N [50]   SEED [1]   TOP [5]   THREADS [2]   SIZE: the pixel grid compared [64]
#   EXCLUDE: a file of names (one a line) left out before the first N are taken
#   NAMES_ONLY=1: write WORKDIR/prompts.txt and stop
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: scripts/eval-emoji.sh WORKDIR [-- generation options]}
shift
[ "${1:-}" = "--" ] && shift
bin=${DALLEC:-$here/build/dalle-c}
model=${MODEL:-$here/weights/default.dalle}
train=${TRAIN:-$here/data/emoji/out}
n=${N:-50}
seed=${SEED:-1}
top=${TOP:-5}
threads=${THREADS:-2}
size=${SIZE:-64}
exclude=${EXCLUDE:-/dev/null}

[ -x "$bin" ] || { echo "eval-emoji: no dalle-c binary at $bin (set DALLEC)" >&2; exit 1; }
[ -f "$model" ] || { echo "eval-emoji: no model at $model (set MODEL)" >&2; exit 1; }
[ -r "$exclude" ] || { echo "eval-emoji: cannot read EXCLUDE file $exclude" >&2; exit 1; }
[ -d "$train" ] || { echo "eval-emoji: no training images at $train (data/emoji/build.sh; set TRAIN)" >&2; exit 1; }
mkdir -p "$work"

find -L "$train" -name '*.txt' -exec head -qn1 {} + |
    sed 's/, [^,]* style$//' | grep -v 'skin tone' | LC_ALL=C sort -u > "$work/names.txt"
while IFS= read -r name; do
    printf '%s\t%s\n' "$(printf '%s:%s' "$seed" "$name" | sha256sum | cut -c1-16)" "$name"
done < "$work/names.txt" | LC_ALL=C sort | cut -f2 | grep -Fxv -f "$exclude" |
    head -n "$n" > "$work/prompts.txt"
echo "eval-emoji: $(wc -l < "$work/prompts.txt") names of $(wc -l < "$work/names.txt") (seed $seed)"
if [ "${NAMES_ONLY:-0}" = 1 ]; then exit 0; fi

rm -rf "$work/gen"
"$bin" --prompts "$work/prompts.txt" -o "$work/gen" -m "$model" --seed "$seed" -t "$threads" -q "$@"
"$bin" eval nearest "$work/gen" --train "$train" --top "$top" --size "$size" -t "$threads" > "$work/nearest.txt"
tail -n1 "$work/nearest.txt"
