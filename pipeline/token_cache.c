/* The token cache: dataset images encoded once by the dVAE (pipeline/token_cache.h). */
#include "pipeline/token_cache.h"

#include "weights/weights.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CACHE_KIND "dalle-c token cache"
#define CACHE_VERSION 1

/* ---------------------------------------------------------------- the key */

typedef struct {
    uint64_t h;
} fnv_t;

static void fnv_init(fnv_t *f) { f->h = 0xcbf29ce484222325ULL; }

static void fnv_bytes(fnv_t *f, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = f->h;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    f->h = h;
}

static void fnv_u64(fnv_t *f, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    fnv_bytes(f, b, 8);
}

static void fnv_str(fnv_t *f, const char *s)
{
    fnv_bytes(f, s, strlen(s) + 1); /* the NUL separates fields */
}

/* Every image of ds (both splits), sorted by name: the cache's row order. */
typedef struct {
    const char *name;
    int split;
    size_t idx;
} item_t;

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const item_t *)a)->name, ((const item_t *)b)->name);
}

static item_t *sorted_items(const ds_t *ds, size_t *n)
{
    size_t nt = ds_count(ds, DS_TRAIN), nh = ds_count(ds, DS_HELDOUT);
    item_t *it = malloc((nt + nh + 1) * sizeof *it);
    if (!it) return NULL;
    size_t k = 0;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < ds_count(ds, s); i++)
            it[k++] = (item_t){ds_name(ds, s, i), s, i};
    qsort(it, k, sizeof *it, cmp_item);
    *n = k;
    return it;
}

static int key_of(const dvae_t *dv, const ds_t *ds, const item_t *it, size_t n, uint64_t *key,
                  char err[256])
{
    fnv_t f;
    fnv_init(&f);
    fnv_str(&f, CACHE_KIND);
    wf_config_t *cfg = wf_config_create();
    if (!cfg || dvae_config_store(dvae_config(dv), cfg)) {
        wf_config_free(cfg);
        snprintf(err, 256, "token cache: out of memory");
        return -1;
    }
    for (int i = 0; i < wf_config_count(cfg); i++) {
        fnv_str(&f, wf_config_key(cfg, i));
        fnv_str(&f, wf_config_text(cfg, i));
    }
    wf_config_free(cfg);
    for (int i = 0; i < dvae_tensor_count(dv); i++) {
        dvae_tensor_t t = dvae_tensor(dv, i);
        fnv_str(&f, t.name);
        fnv_bytes(&f, t.data, t.numel * sizeof(float));
    }
    fnv_u64(&f, (uint64_t)ds_image_size(ds));
    fnv_u64(&f, n);
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        fnv_str(&f, it[i].name);
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", ds_root(ds), it[i].name);
        if (stat(path, &st) == 0) {
            fnv_u64(&f, (uint64_t)st.st_size);
            fnv_u64(&f, (uint64_t)st.st_mtim.tv_sec);
            fnv_u64(&f, (uint64_t)st.st_mtim.tv_nsec);
        }
    }
    *key = f.h;
    return 0;
}

int tcache_key(const dvae_t *dv, const ds_t *ds, uint64_t *key, char err[256])
{
    size_t n;
    item_t *it = sorted_items(ds, &n);
    if (!it) {
        snprintf(err, 256, "token cache: out of memory");
        return -1;
    }
    int rc = key_of(dv, ds, it, n, key, err);
    free(it);
    return rc;
}

/* ---------------------------------------------------------------- reading */

static int alloc_rows(tcache_t *c, const ds_t *ds)
{
    for (int s = 0; s < 2; s++) {
        c->n[s] = ds_count(ds, s);
        c->tokens[s] = malloc((c->n[s] * (size_t)c->grid2 + 1) * sizeof(int));
        if (!c->tokens[s]) return -1;
    }
    return 0;
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* 1: used the file; 0: not usable (why says so); -1: a hard error (memory). */
static int try_read(tcache_t *c, const char *path, const dvae_t *dv, const item_t *it, size_t n,
                    char err[256])
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(c->why, sizeof c->why, "no cache file yet");
        return 0;
    }
    wf_reader_t *r;
    char e[WF_ERR_SIZE];
    if (wf_reader_open(&r, path, e)) {
        snprintf(c->why, sizeof c->why, "%s", e);
        return 0;
    }
    const wf_config_t *cfg = wf_reader_config(r);
    const char *kind = NULL, *key = NULL;
    int64_t version = 0, count = -1, grid = -1, K = -1;
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, c->key);
    int rc = 0;
    void *names = NULL, *toks = NULL;
    size_t nsz = 0, tsz = 0;
    if (wf_config_get_str(cfg, "cache.kind", &kind) || strcmp(kind, CACHE_KIND) != 0 ||
        wf_config_get_int(cfg, "cache.version", &version) || version != CACHE_VERSION) {
        snprintf(c->why, sizeof c->why, "%.200s is not a version-%d token cache", path, CACHE_VERSION);
        goto done;
    }
    if (wf_config_get_str(cfg, "cache.key", &key) || strcmp(key, want) != 0 ||
        wf_config_get_int(cfg, "cache.count", &count) || count != (int64_t)n ||
        wf_config_get_int(cfg, "cache.grid", &grid) ||
        grid * grid != c->grid2 || wf_config_get_int(cfg, "cache.codebook", &K) ||
        K != dvae_config(dv)->codebook_size) {
        snprintf(c->why, sizeof c->why, "the dVAE or the dataset changed since it was made");
        goto done;
    }
    if (wf_reader_blob(r, "cache.names", &names, &nsz, e) ||
        wf_reader_blob(r, "cache.tokens", &toks, &tsz, e)) {
        snprintf(c->why, sizeof c->why, "%s", e);
        goto done;
    }
    if (tsz != n * (size_t)c->grid2 * 4) {
        snprintf(c->why, sizeof c->why, "%.200s: tokens blob has the wrong size", path);
        goto done;
    }
    /* the names must be ours, in order (the key makes this near certain; check anyway) */
    const char *p = names, *end = (const char *)names + nsz;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(it[i].name) + 1;
        if ((size_t)(end - p) < len || memcmp(p, it[i].name, len) != 0) {
            snprintf(c->why, sizeof c->why, "%.200s: image list differs", path);
            goto done;
        }
        p += len;
    }
    const unsigned char *tb = toks;
    const int Kc = (int)K;
    for (size_t i = 0; i < n; i++) {
        int *dst = c->tokens[it[i].split] + it[i].idx * (size_t)c->grid2;
        const unsigned char *src = tb + i * (size_t)c->grid2 * 4;
        int bad = (int32_t)get_le32(src) < 0;
        for (int k = 0; k < c->grid2; k++) {
            int32_t v = (int32_t)get_le32(src + 4 * (size_t)k);
            if (bad ? v != -1 : (v < 0 || v >= Kc)) {
                snprintf(c->why, sizeof c->why, "%.200s: token out of range", path);
                goto done;
            }
            dst[k] = v;
        }
        c->bad += (size_t)bad;
    }
    rc = 1;
done:
    free(names);
    free(toks);
    wf_reader_close(r);
    (void)err;
    if (rc == 0) c->bad = 0;
    return rc;
}

/* ---------------------------------------------------------------- building */

static int build(tcache_t *c, const char *path, dvae_t *dv, int batch, ds_t *ds, const item_t *it,
                 size_t n, data_progress_fn progress, void *ctx, char err[256])
{
    const int S = ds_image_size(ds), G2 = c->grid2;
    const size_t per = (size_t)3 * S * S;
    float *x = malloc((size_t)batch * per * sizeof(float));
    int *tok = malloc((size_t)batch * G2 * sizeof(int));
    size_t *idx = malloc((size_t)batch * sizeof(size_t)), *used = malloc((size_t)batch * sizeof(size_t));
    unsigned char *blob = malloc(n * (size_t)G2 * 4 + 1);
    size_t names_len = 0;
    for (size_t i = 0; i < n; i++) names_len += strlen(it[i].name) + 1;
    char *names = malloc(names_len + 1);
    int rc = -1;
    if (!x || !tok || !idx || !used || !blob || !names) {
        snprintf(err, 256, "token cache: out of memory");
        goto done;
    }
    /* each split in batches (ds_batch_fill reads one split), then the rows in name order */
    long done = 0;
    for (int split = 0; split < 2; split++)
        for (size_t i0 = 0; i0 < c->n[split]; i0 += (size_t)batch) {
            int nb = c->n[split] - i0 < (size_t)batch ? (int)(c->n[split] - i0) : batch;
            for (int j = 0; j < nb; j++) idx[j] = i0 + (size_t)j;
            if (ds_batch_fill(ds, split, idx, nb, x, DS_NCHW, used, 0, err))
                goto done; /* no image of the split decodes */
            dvae_encode(dv, x, nb, tok);
            for (int j = 0; j < nb; j++) {
                int *dst = c->tokens[split] + idx[j] * (size_t)G2;
                /* a bad image was replaced by another one: its row is marked bad */
                int bad = used[j] != idx[j];
                for (int k = 0; k < G2; k++) dst[k] = bad ? -1 : tok[(size_t)j * G2 + k];
                c->bad += (size_t)bad;
            }
            done += nb;
            if (progress) progress(ctx, done, (long)n);
        }
    for (size_t row = 0; row < n; row++) {
        const int *src = c->tokens[it[row].split] + it[row].idx * (size_t)G2;
        unsigned char *b = blob + row * (size_t)G2 * 4;
        for (int k = 0; k < G2; k++) {
            uint32_t v = (uint32_t)src[k];
            b[4 * k] = (unsigned char)v, b[4 * k + 1] = (unsigned char)(v >> 8);
            b[4 * k + 2] = (unsigned char)(v >> 16), b[4 * k + 3] = (unsigned char)(v >> 24);
        }
    }
    char *p = names;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(it[i].name) + 1;
        memcpy(p, it[i].name, len);
        p += len;
    }
    wf_config_t *cfg = wf_config_create();
    char key[32];
    snprintf(key, sizeof key, "%016" PRIx64, c->key);
    int G = dvae_grid_size(dvae_config(dv));
    if (!cfg || wf_config_set_str(cfg, "cache.kind", CACHE_KIND) ||
        wf_config_set_int(cfg, "cache.version", CACHE_VERSION) ||
        wf_config_set_str(cfg, "cache.key", key) || wf_config_set_int(cfg, "cache.count", (int64_t)n) ||
        wf_config_set_int(cfg, "cache.grid", G) ||
        wf_config_set_int(cfg, "cache.codebook", dvae_config(dv)->codebook_size) ||
        wf_config_set_int(cfg, "cache.image_size", S)) {
        wf_config_free(cfg);
        snprintf(err, 256, "token cache: out of memory");
        goto done;
    }
    wf_writer_t *w;
    int wrc = wf_writer_open(&w, path, cfg, 0, err);
    wf_config_free(cfg);
    if (wrc) goto done;
    if (wf_writer_add_blob(w, "cache.names", names, names_len, err) ||
        wf_writer_add_blob(w, "cache.tokens", blob, n * (size_t)G2 * 4, err)) {
        wf_writer_abort(w);
        goto done;
    }
    if (wf_writer_close(w, err)) goto done;
    rc = 0;
done:
    free(x), free(tok), free(idx), free(used), free(blob), free(names);
    return rc;
}

int tcache_open(tcache_t *c, const char *path, dvae_t *dv, int batch, ds_t *ds,
                data_progress_fn progress, void *ctx, char err[256])
{
    memset(c, 0, sizeof *c);
    const dvae_config_t *dc = dvae_config(dv);
    if (ds_image_size(ds) != dc->image_size) {
        snprintf(err, 256, "token cache: the dataset is read at %d pixels but the dVAE takes %d",
                 ds_image_size(ds), dc->image_size);
        return -1;
    }
    int G = dvae_grid_size(dc);
    c->grid2 = G * G;
    size_t n;
    item_t *it = sorted_items(ds, &n);
    if (!it || alloc_rows(c, ds)) {
        free(it);
        tcache_free(c);
        snprintf(err, 256, "token cache: out of memory");
        return -1;
    }
    if (key_of(dv, ds, it, n, &c->key, err)) goto fail;
    int got = try_read(c, path, dv, it, n, err);
    if (got < 0) goto fail;
    if (!got) {
        c->rebuilt = 1;
        c->bad = 0;
        if (build(c, path, dv, batch, ds, it, n, progress, ctx, err)) goto fail;
    }
    free(it);
    return 0;
fail:
    free(it);
    tcache_free(c);
    return -1;
}

void tcache_free(tcache_t *c)
{
    for (int s = 0; s < 2; s++) {
        free(c->tokens[s]);
        c->tokens[s] = NULL;
    }
}
