#!/bin/sh
# The shipped default model (weights/default.dalle; weights/MODELS.md): the emoji art
# set -> the rerank scorer (which also trains the tokenizer on the captions) -> dVAE ->
# transformer in five stages (all images; then fine-tuned with --init on the emoji
# without their skin-tone variants, which are half of the set and differ from their base
# emoji only in a hue; then on those images with their names alone as captions, what
# people type, and twice more on those with fresh, lower learning-rate schedules) ->
# default.dalle with the scorer in it, then the nearest-neighbour
# measure (scripts/eval-emoji.sh) without and with reranking. Resumable: a stage whose output
# exists is skipped, an interrupted training resumes from its checkpoint, so the script
# can be stopped (Ctrl-C) and run again, in another session too.
#
#   scripts/train-default.sh WORKDIR
#
# Writes into WORKDIR: emoji/ (the images: the twitter, google and openmoji sets; the
# facebook set's licence is unclear, data/LICENSES.md), emoji-base/ (links to those
# without skin tones), emoji-names/ (the same images, captions "NAME" and "NAME, SET
# style"), emoji-scorer.dalle, emoji.dvae, stage1.dalle, stage2.dalle, stage3.dalle, stage4.dalle and
# transformer.dalle (with .ckpt, .tokens, .samples.png beside them), default-f32.dalle
# (the transformer's file with the scorer added), default.dalle (that in f16 with its
# sampling settings: what weights/ ships), eval/ and eval-rerank/.
#
# Environment (defaults in brackets):
#   DALLEC [build/dalle-c]   THREADS [2]   DVAE_STEPS [3500]
#   STAGE1_STEPS [2400]   STAGE2_STEPS [3150]   STAGE3_STEPS [6800]   STAGE4_STEPS [5500]
#   GPT_STEPS: the last stage [1500]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: scripts/train-default.sh WORKDIR}
bin=${DALLEC:-$here/build/dalle-c}
threads=${THREADS:-2}
dvae_steps=${DVAE_STEPS:-3500}
stage1_steps=${STAGE1_STEPS:-2400}
stage2_steps=${STAGE2_STEPS:-3150}
stage3_steps=${STAGE3_STEPS:-6800}
stage4_steps=${STAGE4_STEPS:-5500}
gpt_steps=${GPT_STEPS:-1500}

[ -x "$bin" ] || { echo "train-default: no dalle-c binary at $bin (set DALLEC)" >&2; exit 1; }
mkdir -p "$work"
work=$(cd "$work" && pwd)
cd "$work"
start=$(date +%s)
stamp() { echo "== $(($(date +%s) - start))s: $*"; }

# A resumable training: OUT is skipped when it exists, resumed from OUT.ckpt when that
# does, else trained from scratch with the options given.
#   stage 'SUBCOMMAND' DATA OUT 'WHAT' OPTIONS...   (SUBCOMMAND: train, dvae train, ...)
stage() {
    cmd=$1 data=$2 out=$3 what=$4
    shift 4
    if [ -f "$out" ]; then return 0; fi
    stamp "$what"
    # shellcheck disable=SC2086 # the subcommand is one or two words
    if [ -f "$out.ckpt" ]; then
        "$bin" $cmd "$data" -o "$out" --resume "$out.ckpt" -t "$threads"
    else
        "$bin" $cmd "$data" -o "$out" "$@" -t "$threads"
    fi
}

if [ ! -d emoji ]; then
    stamp "emoji art set"
    DALLEC_BIN="$bin" "$here/data/emoji/build.sh" -o "$work/emoji.partial" --size 64 \
        --sets twitter,google,openmoji
    mv emoji.partial emoji
fi

stage "rerank train" emoji emoji-scorer.dalle "rerank train (and the tokenizer)" \
    --epochs 15 --batch 128 --eval-every 200 --checkpoint-every 100

stage "dvae train" emoji emoji.dvae "dvae train: $dvae_steps steps" \
    --size 64 --layers 2 --channels 64 --res-blocks 2 --codebook 1024 --code-dim 64 --hard \
    --kl-weight 1e-3 --lr 2e-3 --batch 32 --steps "$dvae_steps" --eval-every 250 \
    --samples-every 250 --checkpoint-every 250

stage train emoji stage1.dalle "train, stage 1 (all images): $stage1_steps steps" \
    --dvae emoji.dvae --tokenizer emoji-scorer.dalle --text-len 24 --layers 6 --heads 8 \
    --embd 256 --batch 16 --steps "$stage1_steps" --lr 1e-3 --lr-min 1e-4 --warmup 300 \
    --eval-every 300 --samples-every 300 --checkpoint-every 100

if [ ! -d emoji-base ]; then
    for set in emoji/*/; do
        set=$(basename "$set")
        mkdir -p "emoji-base.partial/$set"
        for txt in "emoji/$set"/*.txt; do
            head -n1 "$txt" | grep -q 'skin tone' && continue
            png=${txt%.txt}.png
            [ -f "$png" ] || continue
            ln -s "$work/$txt" "$work/$png" "emoji-base.partial/$set/"
        done
    done
    mv emoji-base.partial emoji-base
fi

stage train emoji-base stage2.dalle "train, stage 2 (fine-tuning on emoji-base): $stage2_steps steps" \
    --init stage1.dalle --batch 16 --steps "$stage2_steps" --lr 5e-4 --lr-min 5e-5 --warmup 50 \
    --holdout 0.02 --eval-every 250 --samples-every 250 --checkpoint-every 100

# The captions a name prompt is: the name, and the name with its set's style. The
# images are emoji-base's, so the held-out split (by path) is the same.
if [ ! -d emoji-names ]; then
    for set in emoji-base/*/; do
        set=$(basename "$set")
        mkdir -p "emoji-names.partial/$set"
        for txt in "emoji-base/$set"/*.txt; do
            first=$(head -n1 "$txt")
            printf '%s\n%s\n' "${first%, * style}" "$first" > "emoji-names.partial/$set/$(basename "$txt")"
            ln -s "$(readlink -f "${txt%.txt}.png")" "emoji-names.partial/$set/"
        done
    done
    mv emoji-names.partial emoji-names
fi

stage train emoji-names stage3.dalle "train, stage 3 (names as captions): $stage3_steps steps" \
    --init stage2.dalle --batch 16 --steps "$stage3_steps" --lr 5e-4 --lr-min 2e-5 --warmup 50 \
    --weight-decay 0.01 --holdout 0.02 --eval-every 1000 --samples-every 1000 \
    --checkpoint-every 200
# The names memorised further: held-out loss is no guide here (it rises), the
# nearest-neighbour measure is (weights/MODELS.md).
stage train emoji-names stage4.dalle "train, stage 4 (names, again): $stage4_steps steps" \
    --init stage3.dalle --batch 16 --steps "$stage4_steps" --lr 2.5e-4 --lr-min 1e-5 --warmup 100 \
    --weight-decay 0.01 --holdout 0.02 --eval-every 1000 --samples-every 1000 \
    --checkpoint-every 200
stage train emoji-names transformer.dalle "train, stage 5 (names, a low schedule): $gpt_steps steps" \
    --init stage4.dalle --batch 16 --steps "$gpt_steps" --lr 1e-4 --lr-min 5e-6 --warmup 50 \
    --weight-decay 0.01 --holdout 0.02 --eval-every 500 --samples-every 500 \
    --checkpoint-every 200
[ -f default-f32.dalle ] || "$bin" rerank add transformer.dalle emoji-scorer.dalle -o default-f32.dalle
# what weights/default.dalle is: f16, with the sampling settings chosen for it (weights/MODELS.md)
[ -f default.dalle ] ||
    "$bin" convert default-f32.dalle -o default.dalle --dtype f16 --sample temperature=0.2,guidance=1,candidate_temperature=0.5
stamp "training done"
"$bin" info default.dalle --no-verify | sed -n '1,/^tensors/p'

MODEL="$work/default.dalle" TRAIN="$work/emoji" DALLEC="$bin" THREADS="$threads" \
    "$here/scripts/eval-emoji.sh" "$work/eval"
MODEL="$work/default.dalle" TRAIN="$work/emoji" DALLEC="$bin" THREADS="$threads" \
    "$here/scripts/eval-emoji.sh" "$work/eval-rerank" -- --candidates 8
stamp "done"
