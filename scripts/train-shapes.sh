#!/bin/sh
# The shapes acceptance run (DESIGN.md, issue 7): synthetic shapes set -> dVAE ->
# transformer -> generation -> `dalle-c eval shapes`. The transformer trains in under 30
# minutes (7,000 steps: 29 minutes on one core of a shared 2-core VM); the dVAE before it
# (8,000 steps, KL weight 1e-3, 1,024 codes: 31 minutes on one core) is what lets shapes
# through at all: the prompt images through its tokens and back keep 99% of their colours
# and shapes right, where the earlier 2,500-step, KL 1e-2, 512-code dVAE kept 62%
# (docs/TRAIN.md).
#
#   scripts/train-shapes.sh WORKDIR
#
# Writes into WORKDIR (created): shapes/ (training set, with held-out combinations),
# prompts/ (another seed's scenes: in-distribution test prompts), val/ (a third seed's:
# the prompts the sampling settings were chosen on, GEN_OPTS), shapes.dvae,
# shapes.dalle (the model) with .ckpt, .tokens and .samples.png beside it,
# shapes-scorer.dalle (the rerank scorer, docs/RERANK.md) and shapes+rr.dalle (the model
# with it), gen-in/ and gen-heldout/ (generated images with their prompts; gen-*-rr/: the
# best of 8 candidates) and eval-*.txt (the evaluator's reports). Steps already done are skipped when their output exists, so a stopped run
# can be restarted; an interrupted training resumes from its checkpoint.
#
# Environment (defaults in brackets) to scale it, e.g. a smoke test in seconds:
#   COUNT=200 DVAE_STEPS=30 GPT_STEPS=30 PROMPTS=16 scripts/train-shapes.sh /tmp/s
#   DALLEC      the dalle-c binary [build/dalle-c]
#   THREADS     [2]          SIZE  image side [32]        COUNT  training images [20000]
#   HOLDOUT     held-out combinations ["green triangle,red star"]
#   DVAE_STEPS  [8000]       GPT_STEPS [7000]             PROMPTS in-distribution prompts [100]
#   SCORER_EPOCHS [15]       CANDIDATES reranked evaluation's candidates, 0: none [8]
#   GEN_OPTS    generation options for the evaluation [--temperature 0.5 --guidance 1.5]:
#               the best of temperature 0.3-1 and guidance 1-5 on val/'s prompts
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: scripts/train-shapes.sh WORKDIR}
bin=${DALLEC:-$here/build/dalle-c}
threads=${THREADS:-2}
size=${SIZE:-32}
count=${COUNT:-20000}
holdout=${HOLDOUT:-green triangle,red star}
dvae_steps=${DVAE_STEPS:-8000}
gpt_steps=${GPT_STEPS:-7000}
scorer_epochs=${SCORER_EPOCHS:-15}
candidates=${CANDIDATES:-8}
prompts=${PROMPTS:-100}
gen_opts=${GEN_OPTS:---temperature 0.5 --guidance 1.5}

[ -x "$bin" ] || { echo "train-shapes: no dalle-c binary at $bin (set DALLEC)" >&2; exit 1; }
mkdir -p "$work"
cd "$work"
start=$(date +%s)
stamp() { echo "== $(($(date +%s) - start))s: $*"; }

if [ ! -d shapes ]; then
    stamp "data shapes: $count images of ${size}x$size, holding out: $holdout"
    "$bin" data shapes shapes --count "$count" --size "$size" --seed 1 --holdout "$holdout" -t "$threads"
fi
if [ ! -d prompts ]; then
    # another seed, the same holdout: scenes the model has not seen, in combinations it has
    "$bin" data shapes prompts --count "$prompts" --size "$size" --seed 2 --holdout "$holdout" -t "$threads"
fi
head -qn1 prompts/[0-9]*.txt > prompts-in.txt  # not holdout_prompts.txt
if [ ! -d val ]; then
    "$bin" data shapes val --count "$prompts" --size "$size" --seed 3 --holdout "$holdout" -t "$threads"
fi
head -qn1 val/[0-9]*.txt > prompts-val.txt

if [ ! -f shapes.dvae ]; then
    stamp "dvae train: $dvae_steps steps"
    resume=""
    [ -f shapes.dvae.ckpt ] && resume="--resume shapes.dvae.ckpt"
    # shellcheck disable=SC2086
    "$bin" dvae train shapes -o shapes.dvae --size "$size" --layers 2 --channels 64 \
        --res-blocks 2 --codebook 1024 --code-dim 64 --batch 32 --steps "$dvae_steps" \
        --hard --kl-weight 1e-3 --lr 2e-3 --eval-every 1000 --samples-every 1000 \
        --checkpoint-every 500 \
        -t "$threads" $resume
fi

if [ ! -f shapes.dalle ]; then
    stamp "train: $gpt_steps steps"
    if [ -f shapes.dalle.ckpt ]; then
        "$bin" train shapes -o shapes.dalle --resume shapes.dalle.ckpt -t "$threads"
    else
        "$bin" train shapes --dvae shapes.dvae -o shapes.dalle --text-len 20 --layers 4 \
            --heads 4 --embd 128 --batch 32 --steps "$gpt_steps" --lr 1e-3 --lr-min 1e-4 \
            --warmup 200 --eval-every 500 --samples-every 1000 --checkpoint-every 250 \
            -t "$threads"
    fi
fi
# the scorer: the model's tokenizer and image size, so it can go into the model file
if [ ! -f shapes+rr.dalle ]; then
    stamp "rerank train: $scorer_epochs epochs"
    if [ -f shapes-scorer.dalle.ckpt ]; then
        "$bin" rerank train shapes -o shapes-scorer.dalle --resume shapes-scorer.dalle.ckpt -t "$threads"
        "$bin" rerank add shapes.dalle shapes-scorer.dalle -o shapes+rr.dalle
    else
        "$bin" rerank train shapes -m shapes.dalle --into shapes+rr.dalle -o shapes-scorer.dalle \
            --epochs "$scorer_epochs" --batch 128 --eval-every 300 --checkpoint-every 200 -t "$threads"
    fi
fi
stamp "training done"
"$bin" info shapes.dalle --no-verify | sed -n '1,/^parameters/d; /^tensors/q; p'

generate() {  # generate PROMPTS_FILE OUT_DIR [more options]
    prompts_file=$1 out_dir=$2
    shift 2
    rm -rf "$out_dir"
    # shellcheck disable=SC2086
    if ! "$bin" --prompts "$prompts_file" -o "$out_dir" -m shapes+rr.dalle --seed 1 -t "$threads" -q \
        $gen_opts "$@" > /dev/null; then
        echo "train-shapes: generation failed (is \`dalle-c --prompts\` built yet?)" >&2
        exit 1
    fi
}
evaluate() {  # evaluate NAME PROMPTS_FILE: eval-NAME.txt, and eval-NAME-rr.txt reranked
    stamp "generating $(wc -l < "$2") prompts ($1)"
    generate "$2" "gen-$1"
    "$bin" eval shapes "gen-$1" > "eval-$1.txt" || true
    [ "$candidates" -gt 1 ] || return 0
    generate "$2" "gen-$1-rr" --candidates "$candidates"
    "$bin" eval shapes "gen-$1-rr" > "eval-$1-rr.txt" || true
}
evaluate val prompts-val.txt
evaluate in prompts-in.txt
if [ -s shapes/holdout_prompts.txt ]; then evaluate heldout shapes/holdout_prompts.txt; fi
# what weights/shapes.dalle is: f16, with the settings GEN_OPTS defaults to as its own
"$bin" convert shapes+rr.dalle -o shapes-ship.dalle --dtype f16 --sample temperature=0.5,guidance=1.5
stamp "done (copy shapes-ship.dalle to weights/shapes.dalle to ship it)"
for name in val in heldout; do
    [ -f "eval-$name.txt" ] || continue
    echo "$name: $(tail -n1 "eval-$name.txt")"
    if [ -f "eval-$name-rr.txt" ]; then
        echo "$name, best of $candidates: $(tail -n1 "eval-$name-rr.txt")"
    fi
done
echo "acceptance (issue 7): colour_shape_ok >= 0.80 on in-distribution prompts (issue 10: >= 0.50 held out)"
