/* The dataset reader both trainings use: an image folder with sidecar captions, a
 * stable held-out split, parallel batch filling, and bad images skipped and counted.
 * Captions are read once at open (they are small) so drawing one costs nothing. */
#include "data/data.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <omp.h>

#define MAX_DEPTH 64 /* folder nesting followed (guards against symlink loops) */

typedef struct {
    char *rel;             /* path relative to the root */
    size_t cap_first;      /* first caption line in ds->lines */
    int cap_n;             /* caption lines */
} item_t;

typedef struct {
    size_t item;
    char err[256];
} bad_t;

struct ds {
    char *root;
    ds_config_t cfg;
    item_t *items;
    size_t n_items;
    size_t *split[2], count[2];
    char *arena;           /* caption text, NUL-terminated lines */
    size_t *line_off;      /* offsets into arena */
    size_t n_lines;
    size_t uncaptioned;
    unsigned char *is_bad; /* per item; __atomic access */
    pthread_mutex_t lock;  /* guards bad[] */
    bad_t *bad;
    size_t n_bad, cap_bad;
};

ds_config_t ds_config_default(void)
{
    ds_config_t c = {64, 0.05, 0};
    return c;
}

uint64_t ds_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t z = a ^ (b + 1) * 0x9E3779B97F4A7C15ull ^ (c + 1) * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- scanning */

typedef struct {
    char **v;
    size_t n, cap;
    int oom;
} strvec_t;

static void push(strvec_t *s, const char *str)
{
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->oom = 1;
            return;
        }
        s->v = v, s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str))) s->oom = 1;
    else s->n++;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                   strcasecmp(dot, ".jpeg") == 0);
}

/* Appends the image paths under root/rel (rel "" for the root) to out. */
static void scan(const char *root, const char *rel, int depth, strvec_t *out)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* hidden, . and .. */
        char sub[4096], full[8192];
        if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= sizeof sub)
            continue;
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH) scan(root, sub, depth + 1, out);
        } else if (S_ISREG(st.st_mode) && is_image_name(e->d_name)) {
            push(out, sub);
        }
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads root/NAME.txt for image rel into the arena; returns the lines added. */
static int read_captions(ds_t *ds, const char *rel, size_t *arena_len, size_t *arena_cap,
                         size_t *lines_cap)
{
    char path[8192];
    const char *dot = strrchr(rel, '.');
    snprintf(path, sizeof path, "%s/%.*s.txt", ds->root, (int)(dot - rel), rel);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') { /* overlong: keep the start */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n') {}
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            line[--len] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++, len--;
        if (!len) continue;
        if (*arena_len + len + 1 > *arena_cap) {
            size_t cap = (*arena_cap ? *arena_cap * 2 : 1 << 16) + len + 1;
            char *a = realloc(ds->arena, cap);
            if (!a) break;
            ds->arena = a, *arena_cap = cap;
        }
        if (ds->n_lines == *lines_cap) {
            size_t cap = *lines_cap ? *lines_cap * 2 : 1024;
            size_t *o = realloc(ds->line_off, cap * sizeof *o);
            if (!o) break;
            ds->line_off = o, *lines_cap = cap;
        }
        memcpy(ds->arena + *arena_len, s, len + 1);
        ds->line_off[ds->n_lines++] = *arena_len;
        *arena_len += len + 1;
        n++;
    }
    fclose(f);
    return n;
}

int ds_open(ds_t **out, const char *dir, const ds_config_t *cfg, char err[256])
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (err) snprintf(err, 256, "%.200s: not a folder (%s)", dir, stat(dir, &st) ? strerror(errno) : "a file");
        return IMG_EIO;
    }
    if (cfg->size < 8 || cfg->size > 4096 || !(cfg->holdout >= 0 && cfg->holdout <= 1)) {
        if (err) snprintf(err, 256, "%.200s: bad dataset config (size %d, holdout %g)", dir, cfg->size, cfg->holdout);
        return IMG_EINVAL;
    }
    ds_t *ds = calloc(1, sizeof *ds);
    strvec_t names = {0};
    if (!ds || !(ds->root = strdup(dir))) goto oom;
    size_t rl = strlen(ds->root);
    while (rl > 1 && ds->root[rl - 1] == '/') ds->root[--rl] = 0;
    ds->cfg = *cfg;
    pthread_mutex_init(&ds->lock, NULL);
    scan(ds->root, "", 0, &names);
    if (names.oom) goto oom;
    if (names.n == 0) {
        if (err) snprintf(err, 256, "%.200s: no images (*.png, *.jpg, *.jpeg) in it or below it", dir);
        free(names.v);
        ds_close(ds);
        return IMG_EINVAL;
    }
    qsort(names.v, names.n, sizeof *names.v, cmp_str);
    ds->items = calloc(names.n, sizeof *ds->items);
    ds->split[0] = malloc(names.n * sizeof(size_t));
    ds->split[1] = malloc(names.n * sizeof(size_t));
    ds->is_bad = calloc(names.n, 1);
    if (!ds->items || !ds->split[0] || !ds->split[1] || !ds->is_bad) goto oom;
    size_t alen = 0, acap = 0, lcap = 0;
    for (size_t i = 0; i < names.n; i++) {
        size_t first = ds->n_lines;
        int n = read_captions(ds, names.v[i], &alen, &acap, &lcap);
        if (cfg->require_captions && n == 0) {
            ds->uncaptioned++;
            free(names.v[i]);
            continue;
        }
        item_t *it = &ds->items[ds->n_items];
        it->rel = names.v[i], it->cap_first = first, it->cap_n = n;
        /* held out when hash / 2^64 < fraction; the top 53 bits make the fraction exact */
        double u = (double)(ds_hash(it->rel) >> 11) * (1.0 / 9007199254740992.0);
        int sp = u < cfg->holdout ? DS_HELDOUT : DS_TRAIN;
        ds->split[sp][ds->count[sp]++] = ds->n_items++;
    }
    free(names.v);
    names.v = NULL;
    if (ds->n_items == 0) {
        if (err) snprintf(err, 256, "%.160s: %zu images but none has a caption (NAME.txt beside NAME.png)",
                          dir, ds->uncaptioned);
        ds_close(ds);
        return IMG_EINVAL;
    }
    *out = ds;
    return IMG_OK;
oom:
    if (names.v)
        for (size_t i = 0; i < names.n; i++) free(names.v[i]);
    free(names.v);
    ds_close(ds);
    if (err) snprintf(err, 256, "%.200s: out of memory reading the folder", dir);
    return IMG_ENOMEM;
}

void ds_close(ds_t *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->n_items; i++) free(ds->items[i].rel);
    if (ds->root) pthread_mutex_destroy(&ds->lock);
    free(ds->items), free(ds->split[0]), free(ds->split[1]), free(ds->arena), free(ds->line_off);
    free(ds->is_bad), free(ds->bad), free(ds->root);
    free(ds);
}

/* ---------------------------------------------------------------- access */

size_t ds_count(const ds_t *ds, int split) { return split == DS_HELDOUT ? ds->count[1] : ds->count[0]; }
size_t ds_uncaptioned(const ds_t *ds) { return ds->uncaptioned; }

static const item_t *item(const ds_t *ds, int split, size_t i)
{
    int s = split == DS_HELDOUT;
    return i < ds->count[s] ? &ds->items[ds->split[s][i]] : NULL;
}

const char *ds_name(const ds_t *ds, int split, size_t i)
{
    const item_t *it = item(ds, split, i);
    return it ? it->rel : NULL;
}

const char *ds_root(const ds_t *ds) { return ds->root; }
int ds_image_size(const ds_t *ds) { return ds->cfg.size; }
double ds_holdout(const ds_t *ds) { return ds->cfg.holdout; }

int ds_caption_count(const ds_t *ds, int split, size_t i)
{
    const item_t *it = item(ds, split, i);
    return it ? it->cap_n : 0;
}

const char *ds_caption_line(const ds_t *ds, int split, size_t i, int k)
{
    const item_t *it = item(ds, split, i);
    if (!it || k < 0 || k >= it->cap_n) return "";
    return ds->arena + ds->line_off[it->cap_first + (size_t)k];
}

const char *ds_caption(const ds_t *ds, int split, size_t i, uint64_t seed, uint64_t epoch)
{
    const item_t *it = item(ds, split, i);
    if (!it || it->cap_n == 0) return "";
    nn_rng_t r;
    nn_rng_seed(&r, mix3(seed, epoch, ds_hash(it->rel)));
    return ds->arena + ds->line_off[it->cap_first + nn_rng_below(&r, (uint32_t)it->cap_n)];
}

void ds_epoch_order(const ds_t *ds, int split, uint64_t seed, uint64_t epoch, size_t *perm)
{
    size_t n = ds_count(ds, split);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    nn_rng_t r;
    nn_rng_seed(&r, mix3(seed, epoch, 0x5EED5EEDull + (uint64_t)(split == DS_HELDOUT)));
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(nn_rng_u64(&r) % i); /* bias < n / 2^64 */
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j], perm[j] = t;
    }
}

/* ---------------------------------------------------------------- loading */

static void mark_bad(ds_t *ds, size_t it, const char *e)
{
    pthread_mutex_lock(&ds->lock);
    if (!ds->is_bad[it]) {
        __atomic_store_n(&ds->is_bad[it], 1, __ATOMIC_RELEASE);
        if (ds->n_bad == ds->cap_bad) {
            size_t cap = ds->cap_bad ? ds->cap_bad * 2 : 16;
            bad_t *b = realloc(ds->bad, cap * sizeof *b);
            if (b) ds->bad = b, ds->cap_bad = cap;
        }
        if (ds->n_bad < ds->cap_bad) {
            ds->bad[ds->n_bad].item = it;
            snprintf(ds->bad[ds->n_bad].err, 256, "%s", e);
            ds->n_bad++;
        }
    }
    pthread_mutex_unlock(&ds->lock);
}

static int load_item(ds_t *ds, size_t it, float *out, size_t plane_stride, char err[256])
{
    char path[8192], e[256];
    snprintf(path, sizeof path, "%s/%s", ds->root, ds->items[it].rel);
    img_t img = {0}, sq = {0};
    int rc = img_load(&img, path, e);
    if (rc == 0) rc = img_resize_crop(&sq, &img, ds->cfg.size, e);
    img_deinit(&img);
    if (rc) {
        if (rc != IMG_ENOMEM) mark_bad(ds, it, e);
        if (err) snprintf(err, 256, "%s", e);
        return rc;
    }
    img_to_planar(&sq, out, plane_stride);
    img_deinit(&sq);
    return 0;
}

int ds_load(ds_t *ds, int split, size_t i, float *out, size_t plane_stride, char err[256])
{
    if (!item(ds, split, i)) {
        if (err) snprintf(err, 256, "%.200s: item %zu out of range (%zu)", ds->root, i, ds_count(ds, split));
        return IMG_EINVAL;
    }
    return load_item(ds, ds->split[split == DS_HELDOUT][i], out, plane_stride, err);
}

int ds_batch_fill(ds_t *ds, int split, const size_t *idx, int n, float *out, int layout,
                  size_t *used, int threads, char err[256])
{
    int s = split == DS_HELDOUT;
    size_t count = ds->count[s], S2 = (size_t)ds->cfg.size * (size_t)ds->cfg.size;
    if (count == 0 || n <= 0) {
        if (err) snprintf(err, 256, "%.200s: no %s items to fill a batch from", ds->root, s ? "held-out" : "training");
        return IMG_EINVAL;
    }
    int failed = 0;
    int nt = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic) num_threads(nt)
    for (int b = 0; b < n; b++) {
        float *dst = layout == DS_CNHW ? out + (size_t)b * S2 : out + (size_t)b * 3 * S2;
        size_t stride = layout == DS_CNHW ? (size_t)n * S2 : S2;
        size_t k = idx[b] % count, tries;
        for (tries = 0; tries < count; tries++, k = (k + 1) % count) {
            size_t it = ds->split[s][k];
            if (__atomic_load_n(&ds->is_bad[it], __ATOMIC_ACQUIRE)) continue;
            if (load_item(ds, it, dst, stride, NULL) == 0) break;
        }
        if (used) used[b] = k;
        if (tries == count) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (failed) {
        if (err) snprintf(err, 256, "%.200s: no %s image decodes (%zu bad; see ds_bad)", ds->root,
                          s ? "held-out" : "training", ds_bad_count(ds));
        return IMG_ECORRUPT;
    }
    return 0;
}

size_t ds_verify(ds_t *ds, data_progress_fn progress, void *ctx)
{
    const size_t chunk = 512;
    for (size_t start = 0; start < ds->n_items; start += chunk) {
        size_t end = start + chunk < ds->n_items ? start + chunk : ds->n_items;
#pragma omp parallel for schedule(dynamic)
        for (size_t it = start; it < end; it++) {
            char path[8192], e[256];
            snprintf(path, sizeof path, "%s/%s", ds->root, ds->items[it].rel);
            img_t img = {0};
            int rc = img_load(&img, path, e);
            img_deinit(&img);
            if (rc != 0 && rc != IMG_ENOMEM) mark_bad(ds, it, e);
        }
        if (progress) progress(ctx, (long)end, (long)ds->n_items);
    }
    /* Drop bad items from the splits so counts and epochs see only good ones. */
    for (int s = 0; s < 2; s++) {
        size_t k = 0;
        for (size_t i = 0; i < ds->count[s]; i++)
            if (!ds->is_bad[ds->split[s][i]]) ds->split[s][k++] = ds->split[s][i];
        ds->count[s] = k;
    }
    return ds->n_bad;
}

size_t ds_bad_count(ds_t *ds)
{
    pthread_mutex_lock(&ds->lock);
    size_t n = ds->n_bad;
    pthread_mutex_unlock(&ds->lock);
    return n;
}

int ds_bad(ds_t *ds, size_t k, char name[512], char error[256])
{
    pthread_mutex_lock(&ds->lock);
    int ok = k < ds->n_bad;
    if (ok) {
        snprintf(name, 512, "%s", ds->items[ds->bad[k].item].rel);
        snprintf(error, 256, "%s", ds->bad[k].err);
    }
    pthread_mutex_unlock(&ds->lock);
    return ok ? 0 : IMG_EINVAL;
}
