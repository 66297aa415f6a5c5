/* `dalle-c data shapes`: a shapes dataset folder, byte for byte a function of the
 * config. Scene i draws from its own generator seeded by (seed, i), so images are made
 * in parallel and in any order with the same result. */
#include "data/data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK 256 /* scenes made in parallel between progress reports */

shapes_config_t shapes_config_default(void)
{
    shapes_config_t c = {1000, 1, 64, NULL, 20};
    return c;
}

static uint64_t mix(uint64_t seed, uint64_t i, uint64_t stream)
{
    uint64_t z = seed ^ (i + 1) * 0x9E3779B97F4A7C15ull ^ stream * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Scene i of the training set: redrawn while it shows a held-out combination. */
static int scene_at(shapes_scene_t *sc, const shapes_config_t *cfg, const shapes_holdout_t *h, long i)
{
    nn_rng_t r;
    nn_rng_seed(&r, mix(cfg->seed, (uint64_t)i, 1));
    for (int tries = 0; tries < 10000; tries++) {
        shapes_scene_random(sc, cfg->size, &r);
        if (!h || !shapes_holdout_match(h, sc)) return 0;
    }
    return -1;
}

static int mkdir_p(const char *path, char err[256])
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                if (err) snprintf(err, 256, "%.200s: cannot create folder (%s)", buf, strerror(errno));
                return IMG_EIO;
            }
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

static int write_text(const char *path, const char *text, size_t len, char err[256])
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        if (err) snprintf(err, 256, "%.200s: cannot create (%s)", path, strerror(errno));
        return IMG_EIO;
    }
    int ok = fwrite(text, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok) {
        if (err) snprintf(err, 256, "%.200s: write failed (%s)", path, strerror(errno));
        return IMG_EIO;
    }
    return 0;
}

static int make_one(const char *out_dir, int digits, long i, const shapes_config_t *cfg,
                    const shapes_holdout_t *h, char err[256])
{
    shapes_scene_t sc;
    if (scene_at(&sc, cfg, h, i) != 0) {
        if (err) snprintf(err, 256, "holdout \"%.100s\" leaves (almost) no scene to train on", cfg->holdout);
        return IMG_EINVAL;
    }
    char caps[2048], scene[512], path[4200];
    size_t n = shapes_captions(&sc, caps, sizeof caps);
    shapes_scene_format(&sc, scene, sizeof scene);
    char first[256];
    size_t k = strcspn(caps, "\n");
    snprintf(first, sizeof first, "%.*s", (int)k, caps);
    img_t img = {0};
    int rc = shapes_render(&img, &sc, cfg->size, err);
    if (rc) return rc;
    img_text_t text[2] = {{"caption", first}, {"scene", scene}};
    snprintf(path, sizeof path, "%s/%0*ld.png", out_dir, digits, i);
    rc = img_save_png(&img, path, text, 2, err);
    img_deinit(&img);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%0*ld.txt", out_dir, digits, i);
    return write_text(path, caps, n, err);
}

/* Test prompts for each held-out item: random scenes with one object forced to it. */
static int write_holdout_prompts(const char *out_dir, const shapes_config_t *cfg,
                                 const shapes_holdout_t *h, char err[256])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/holdout_prompts.txt", out_dir);
    size_t cap = (size_t)h->n * (size_t)(cfg->holdout_prompts > 0 ? cfg->holdout_prompts : 0) * 160 + 1,
           len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        if (err) snprintf(err, 256, "%.200s: out of memory", path);
        return IMG_ENOMEM;
    }
    for (int k = 0; k < h->n; k++) {
        nn_rng_t r;
        nn_rng_seed(&r, mix(cfg->seed, (uint64_t)k, 2));
        for (int j = 0; j < cfg->holdout_prompts; j++) {
            shapes_scene_t sc;
            shapes_scene_random(&sc, cfg->size, &r);
            shapes_object_t *o = &sc.obj[sc.n == 2 ? nn_rng_below(&r, 2) : 0];
            if (h->colour[k] >= 0) o->colour = h->colour[k];
            if (h->shape[k] >= 0) o->shape = h->shape[k];
            if (sc.n == 2 && sc.obj[0].colour == sc.obj[1].colour && sc.obj[0].shape == sc.obj[1].shape) {
                shapes_object_t *other = o == &sc.obj[0] ? &sc.obj[1] : &sc.obj[0];
                other->shape = (other->shape + 1) % SHAPES_N_SHAPES;
            }
            for (int i = 0; i < sc.n; i++) {
                const uint8_t *a = shapes_colour_rgb[sc.obj[i].colour], *b = shapes_background_rgb[sc.background];
                int d = 0;
                for (int c = 0; c < 3; c++) d += (a[c] - b[c]) * (a[c] - b[c]);
                if (d < 100 * 100) sc.background = 0; /* every colour stands out on white */
            }
            char caps[2048];
            shapes_captions(&sc, caps, sizeof caps);
            size_t n = strcspn(caps, "\n") + 1;
            if (len + n < cap) memcpy(buf + len, caps, n), len += n;
        }
    }
    int rc = write_text(path, buf, len, err);
    free(buf);
    return rc;
}

int shapes_write_dataset(const char *out_dir, const shapes_config_t *cfg,
                         data_progress_fn progress, void *ctx, char err[256])
{
    if (cfg->count < 1 || cfg->size < 16 || cfg->size > 4096) {
        if (err) snprintf(err, 256, "shapes: want --count >= 1 and --size in 16..4096 (got %ld, %d)",
                          cfg->count, cfg->size);
        return IMG_EINVAL;
    }
    shapes_holdout_t h;
    if (cfg->holdout && cfg->holdout[0] && shapes_holdout_parse(&h, cfg->holdout, err) != 0)
        return IMG_EINVAL;
    const shapes_holdout_t *hp = cfg->holdout && cfg->holdout[0] ? &h : NULL;
    struct stat st;
    if (stat(out_dir, &st) == 0 && (!S_ISDIR(st.st_mode) || !dir_is_empty(out_dir))) {
        if (err) snprintf(err, 256, "%.200s: exists and is not an empty folder (pick a new one)", out_dir);
        return IMG_EINVAL;
    }
    int rc = mkdir_p(out_dir, err);
    if (rc) return rc;
    int digits = 6;
    for (long c = 1000000; c < cfg->count; c *= 10) digits++;

    int failed = 0;
    for (long start = 0; start < cfg->count && !failed; start += CHUNK) {
        long end = start + CHUNK < cfg->count ? start + CHUNK : cfg->count;
#pragma omp parallel for schedule(dynamic, 4)
        for (long i = start; i < end; i++) {
            int stop;
#pragma omp atomic read
            stop = failed;
            if (stop) continue;
            char e[256];
            if (make_one(out_dir, digits, i, cfg, hp, e) != 0) {
#pragma omp critical(shapes_write_err)
                {
                    if (!failed && err) memcpy(err, e, 256);
                    failed = 1;
                }
            }
        }
        if (progress && !failed) progress(ctx, end, cfg->count);
    }
    if (failed) return IMG_EIO;

    /* The manifest, in index order: name, then shapes_scene_format's fields. */
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.tsv", out_dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        if (err) snprintf(err, 256, "%.200s: cannot create (%s)", path, strerror(errno));
        return IMG_EIO;
    }
    int ok = fprintf(f, "# name\tbackground\tobjects\trelation\t(colour\tshape\tsize\tposition\tx\ty\tw\th) per object\n") > 0;
    for (long i = 0; i < cfg->count && ok; i++) {
        shapes_scene_t sc;
        char line[512];
        scene_at(&sc, cfg, hp, i);
        shapes_scene_format(&sc, line, sizeof line);
        ok = fprintf(f, "%0*ld.png\t%s\n", digits, i, line) > 0;
    }
    ok &= fclose(f) == 0;
    if (!ok) {
        if (err) snprintf(err, 256, "%.200s: write failed (%s)", path, strerror(errno));
        return IMG_EIO;
    }
    return hp ? write_holdout_prompts(out_dir, cfg, hp, err) : 0;
}
