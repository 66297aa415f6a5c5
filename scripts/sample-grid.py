#!/usr/bin/python3
"""The sample grids under docs/ (weights/MODELS.md): for each prompt, the images of
seeds 1..N drawn by `dalle-c`, side by side, with the prompt written under them.

    scripts/sample-grid.py MODEL OUT.png [--seeds N] [--scale K] [--per-row P]
                           [--dalle-c BIN] [-- GENERATION OPTIONS] -- PROMPT...

Needs Python's PIL (Debian: python3-pil; /usr/bin/python3 with python3-torch has it).
Generation options go between the first and the second `--`, e.g.
    scripts/sample-grid.py weights/shapes.dalle docs/shapes-samples.png --scale 2 \\
        -- --temperature 0.5 --guidance 1.5 -- "a red circle on a white background"
"""
import argparse
import os
import subprocess
import sys
import tempfile

from PIL import Image, ImageDraw


def wrap(draw, text, width, lines=2):
    """text in at most `lines` lines of at most width pixels, cut with ... if longer"""
    out, words = [], text.split()
    while words and len(out) < lines:
        line = words.pop(0)
        while words and draw.textlength(line + " " + words[0]) <= width:
            line += " " + words.pop(0)
        out.append(line)
    if words:
        last = out[-1] + " " + " ".join(words)
        while draw.textlength(last + "...") > width and len(last) > 1:
            last = last[:-1]
        out[-1] = last + "..."
    return out


def main():
    argv = sys.argv[1:]
    gen_opts, prompts = [], []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
        if "--" in rest:
            j = rest.index("--")
            gen_opts, prompts = rest[:j], rest[j + 1:]
        else:
            prompts = rest
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscaling")
    ap.add_argument("--per-row", type=int, default=0, help="prompts per row (all: 0)")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--dalle-c", default=os.path.join(here, "build", "dalle-c"))
    a = ap.parse_args(argv)
    if not prompts:
        ap.error("no prompts (after --)")

    with tempfile.TemporaryDirectory() as tmp:
        cells = []  # one list of images per prompt
        for k, prompt in enumerate(prompts):
            row = []
            for seed in range(1, a.seeds + 1):
                path = os.path.join(tmp, "%d-%d.png" % (k, seed))
                subprocess.run([a.dalle_c, prompt, "-m", a.model, "--seed", str(seed),
                                "-o", path, "-q"] + gen_opts, check=True,
                               stdout=subprocess.DEVNULL)
                im = Image.open(path).convert("RGB")
                if a.scale > 1:
                    im = im.resize((im.width * a.scale, im.height * a.scale), Image.NEAREST)
                row.append(im)
            cells.append(row)

    S = cells[0][0].width
    gap, label_h = 8, 26
    group_w = a.seeds * S + (a.seeds - 1) * 2
    per_row = a.per_row or len(prompts)
    rows = (len(prompts) + per_row - 1) // per_row
    W = per_row * group_w + (per_row - 1) * gap
    H = rows * (S + label_h + gap) - gap
    grid = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(grid)
    for k, (prompt, row) in enumerate(zip(prompts, cells)):
        x0 = (k % per_row) * (group_w + gap)
        y0 = (k // per_row) * (S + label_h + gap)
        for i, im in enumerate(row):
            grid.paste(im, (x0 + i * (S + 2), y0))
        for n, line in enumerate(wrap(draw, prompt, group_w)):
            draw.text((x0, y0 + S + 2 + 12 * n), line, fill="black")
    grid.save(a.out, optimize=True)
    print("wrote %s: %d prompts x %d seeds" % (a.out, len(prompts), a.seeds))


if __name__ == "__main__":
    main()
