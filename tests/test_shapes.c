/* The shapes generator and evaluator as a library: the evaluator scores the generator's
 * own renders (every caption phrasing parsed back), at S = 64 and S = 32; prompts parse
 * to the scene they came from; captions and scenes are a function of the seed; holdout
 * specs parse and match; damaged images (blur, noise) still mostly score.
 * DALLEC_SHAPES_SCENES=N sets the scenes per size (default 200; the acceptance run is
 * 2000: see data/README.md). */
#include "data/data.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t scene_seed(uint64_t i) { return 0x5eed0000ull + i; }

/* Scores n scenes of size S: every phrasing of each caption is parsed and judged. */
static void self_score(int S, long n, double want_attr, double want_prompt, int degrade)
{
    long checked[SHAPES_N_ATTR] = {0}, correct[SHAPES_N_ATTR] = {0}, prompts = 0, prompts_ok = 0;
    int shown = 0;
    for (long i = 0; i < n; i++) {
        nn_rng_t r;
        nn_rng_seed(&r, scene_seed((uint64_t)i) + (uint64_t)S * 1000003u);
        shapes_scene_t sc;
        shapes_scene_random(&sc, S, &r);
        img_t img = {0};
        char err[256], caps[2048];
        if (!check(shapes_render(&img, &sc, S, err) == 0, "render: %s", err)) return;
        if (degrade) {
            /* A model-like image: a 3x3 box blur and +-24 uniform noise. */
            img_t tmp = {0};
            img_init(&tmp, S, S, err);
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    for (int c = 0; c < 3; c++) {
                        int sum = 0, cnt = 0;
                        for (int dy = -1; dy <= 1; dy++)
                            for (int dx = -1; dx <= 1; dx++) {
                                int xx = x + dx, yy = y + dy;
                                if (xx < 0 || yy < 0 || xx >= S || yy >= S) continue;
                                sum += img.rgb[(yy * S + xx) * 3 + c], cnt++;
                            }
                        int v = sum / cnt + (int)nn_rng_below(&r, 49) - 24;
                        tmp.rgb[(y * S + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
            img_deinit(&img);
            img = tmp;
        }
        shapes_captions(&sc, caps, sizeof caps);
        for (char *line = strtok(caps, "\n"); line; line = strtok(NULL, "\n")) {
            shapes_scene_t want;
            shapes_verdict_t v;
            if (!check(shapes_parse(&want, line, err) == 0, "parse \"%s\": %s", line, err)) continue;
            if (!check(shapes_evaluate(&img, &want, &v, err) == 0, "evaluate: %s", err)) continue;
            int all = 1;
            for (int a = 0; a < SHAPES_N_ATTR; a++) {
                checked[a] += v.checked[a], correct[a] += v.correct[a];
                if (v.correct[a] != v.checked[a]) all = 0;
            }
            prompts++, prompts_ok += all;
            if (!all && shown < 6 && !degrade) {
                char got[512];
                shapes_scene_format(&v.seen, got, sizeof got);
                printf("    miss S=%d scene %ld \"%s\": seen %s\n", S, i, line, got);
                shown++;
            }
        }
        img_deinit(&img);
    }
    long tc = 0, tk = 0;
    printf("  S=%d%s, %ld scenes, %ld prompts:", S, degrade ? " blurred+noisy" : "", n, prompts);
    for (int a = 0; a < SHAPES_N_ATTR; a++) {
        if (!checked[a]) continue;
        printf(" %s %.2f%%", shapes_attr_names[a], 100.0 * (double)correct[a] / (double)checked[a]);
        tc += checked[a], tk += correct[a];
    }
    double attr = (double)tk / (double)(tc ? tc : 1), prompt = (double)prompts_ok / (double)(prompts ? prompts : 1);
    printf("; attributes %.2f%%, prompts all-correct %.2f%%\n", 100 * attr, 100 * prompt);
    check(attr >= want_attr, "S=%d attribute accuracy %.4f below %.2f", S, attr, want_attr);
    check(prompt >= want_prompt, "S=%d prompt accuracy %.4f below %.2f", S, prompt, want_prompt);
}

static void test_parse(void)
{
    printf("parse\n");
    shapes_scene_t sc;
    char err[256];
    check(shapes_parse(&sc, "A small Red circle at the top left on a white background", err) == 0 &&
              sc.n == 1 && sc.obj[0].colour == 0 && sc.obj[0].shape == 0 && sc.obj[0].size == SHAPES_SMALL &&
              sc.obj[0].pos == 0 && sc.background == 0,
          "one object, every attribute");
    check(shapes_parse(&sc, "an orange star in the middle", err) == 0 && sc.obj[0].pos == 4 &&
              sc.obj[0].colour == 4 && sc.obj[0].size == -1 && sc.background == -1,
          "center, no size, no background");
    check(shapes_parse(&sc, "blue square, bottom", err) == 0 && sc.obj[0].pos == 7, "bottom");
    check(shapes_parse(&sc, "a red circle to the left of a blue square on a grey background", err) == 0 &&
              sc.n == 2 && sc.relation == SHAPES_LEFT_OF && sc.obj[1].colour == 2 && sc.obj[1].shape == 1 &&
              sc.background == 1,
          "relation left of, grey");
    check(shapes_parse(&sc, "a beige background with a pink heart below a cyan ring", err) == 0 &&
              sc.n == 2 && sc.relation == SHAPES_BELOW && sc.background == 2 && sc.obj[0].colour == 6,
          "background first");
    check(shapes_parse(&sc, "a cat on a mat", err) != 0 && strstr(err, "names no shape"), "no shape: %s", err);
    check(shapes_parse(&sc, "a circle, a square and a star", err) != 0, "three objects refused");
    /* Every caption parses back to its scene. */
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        nn_rng_t r;
        nn_rng_seed(&r, (uint64_t)i);
        shapes_scene_t s;
        shapes_scene_random(&s, 64, &r);
        char caps[2048];
        shapes_captions(&s, caps, sizeof caps);
        for (char *line = strtok(caps, "\n"); line; line = strtok(NULL, "\n")) {
            shapes_scene_t p;
            if (shapes_parse(&p, line, err) != 0 || p.n != s.n) {
                bad++;
                continue;
            }
            /* "b rel a" phrasings name the objects the other way round */
            int sw = s.n == 2 && !(p.obj[0].shape == s.obj[0].shape && p.obj[0].colour == s.obj[0].colour);
            static const int inv[4] = {1, 0, 3, 2};
            for (int k = 0; k < s.n; k++) {
                const shapes_object_t *a = &p.obj[sw ? 1 - k : k], *b = &s.obj[k];
                if (a->shape != b->shape || (a->colour >= 0 && a->colour != b->colour) ||
                    (a->size >= 0 && a->size != b->size) || (a->pos >= 0 && a->pos != b->pos))
                    bad++;
            }
            if (p.background >= 0 && p.background != s.background) bad++;
            if (s.n == 2 && p.relation != (sw ? inv[s.relation] : s.relation)) bad++;
        }
    }
    check(bad == 0, "%d captions did not parse back to their scene", bad);
}

static void test_determinism_and_holdout(void)
{
    printf("determinism and holdout\n");
    char a[2048], b[2048], err[256];
    nn_rng_t r1, r2;
    nn_rng_seed(&r1, 42), nn_rng_seed(&r2, 42);
    int same = 1;
    for (int i = 0; i < 100; i++) {
        shapes_scene_t s1, s2;
        shapes_scene_random(&s1, 64, &r1), shapes_scene_random(&s2, 64, &r2);
        shapes_captions(&s1, a, sizeof a), shapes_captions(&s2, b, sizeof b);
        img_t i1 = {0}, i2 = {0};
        shapes_render(&i1, &s1, 64, err), shapes_render(&i2, &s2, 64, err);
        same &= strcmp(a, b) == 0 && memcmp(i1.rgb, i2.rgb, 64 * 64 * 3) == 0;
        img_deinit(&i1), img_deinit(&i2);
    }
    check(same, "same seed, same scenes, captions and pixels");

    shapes_holdout_t h;
    check(shapes_holdout_parse(&h, "green triangle, red star,heart", err) == 0 && h.n == 3 &&
              h.colour[0] == 1 && h.shape[0] == 2 && h.colour[2] == -1 && h.shape[2] == 4,
          "holdout spec parses");
    check(shapes_holdout_parse(&h, "green hexagon", err) != 0 && strstr(err, "hexagon"), "bad spec: %s", err);
    check(shapes_holdout_parse(&h, " , ", err) != 0, "empty spec refused");
    shapes_holdout_parse(&h, "green triangle", err);
    shapes_scene_t sc = {0};
    sc.n = 2;
    sc.obj[0].colour = 1, sc.obj[0].shape = 0, sc.obj[1].colour = 1, sc.obj[1].shape = 2;
    check(shapes_holdout_match(&h, &sc), "second object matches");
    sc.obj[1].colour = 0;
    check(!shapes_holdout_match(&h, &sc), "red triangle and green circle do not match");
}

int main(void)
{
    long n = 200;
    const char *e = getenv("DALLEC_SHAPES_SCENES");
    if (e && atol(e) > 0) n = atol(e);
    test_parse();
    test_determinism_and_holdout();
    printf("self-score (the evaluator on the generator's renders)\n");
    self_score(64, n, 0.98, 0.98, 0);
    self_score(32, n, 0.98, 0.98, 0);
    self_score(128, n / 4 + 1, 0.98, 0.98, 0);
    printf("robustness (renders blurred and noised; no threshold beyond sanity)\n");
    self_score(64, n / 2 + 1, 0.85, 0.6, 1);
    return test_summary("test_shapes");
}
