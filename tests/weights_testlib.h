/* Helpers shared by tests/test_weights*.c: a small model file covering every kind of
 * entry, whole-file I/O, and a fixer that recomputes the CRC-32s after a mutation so
 * damage reaches the parsers behind them. Static functions: each test is one program. */
#ifndef DALLEC_WEIGHTS_TESTLIB_H
#define DALLEC_WEIGHTS_TESTLIB_H

#include "nn/nn.h"
#include "weights/weights.h"
#include "weights/wf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline unsigned char *wt_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static inline int wt_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A model with a config, f32/f16/bf16 tensors (one from raw bits), a scalar, an empty
 * tensor and blobs. scale multiplies the tensor sizes. Returns WF_OK or the error. */
static inline int wt_write_model(const char *path, uint64_t seed, int scale, char *err)
{
    wf_config_t *cfg = wf_config_create();
    wf_config_set_int(cfg, "dvae.codebook", 512);
    wf_config_set_int(cfg, "dvae.size", 64);
    wf_config_set_float(cfg, "dvae.tau_min", 0.0625);
    wf_config_set_float(cfg, "gpt.dropout", 0.1);
    wf_config_set_int(cfg, "gpt.n_layer", -3);
    wf_config_set_str(cfg, "tokenizer.kind", "sentencepiece \"unigram\"\n\ttab\\ \x01 caf\xc3\xa9");
    nn_rng_t rng;
    nn_rng_seed(&rng, seed);
    size_t n1 = (size_t)64 * 48 * scale, n2 = (size_t)32 * 3 * 3 * 3 * scale;
    float *a = malloc(n1 * sizeof *a), *b = malloc(n2 * sizeof *b);
    uint16_t *h = malloc(100 * sizeof *h);
    nn_rng_fill_normal(&rng, a, n1, 0, 0.02f);
    nn_rng_fill_normal(&rng, b, n2, 0, 1);
    for (int i = 0; i < 100; i++) h[i] = (uint16_t)nn_rng_u64(&rng);
    int64_t s1[2] = {64, 48 * scale}, s2[4] = {32 * scale, 3, 3, 3}, s3[1] = {100}, s0[2] = {0, 5};
    float scalar = 3.25f;
    const char tok[] = "\x00\x01sentencepiece model bytes\xff";
    wf_writer_t *w;
    int st = wf_writer_open(&w, path, cfg, 0, err);
    if (!st) st = wf_writer_add_tensor(w, "dvae.enc.conv1.w", WF_F32, 2, s1, a, err);
    if (!st) st = wf_writer_add_tensor(w, "dvae.enc.conv1.b", WF_F16, 4, s2, b, err);
    if (!st) st = wf_writer_add_blob(w, "tokenizer.model", tok, sizeof tok, err);
    if (!st) st = wf_writer_add_tensor(w, "gpt.wte", WF_BF16, 4, s2, b, err);
    if (!st) st = wf_writer_add_raw(w, "gpt.raw16", WF_F16, 1, s3, h, err);
    if (!st) st = wf_writer_add_tensor(w, "gpt.scale", WF_F32, 0, NULL, &scalar, err);
    if (!st) st = wf_writer_add_tensor(w, "rerank.empty", WF_F32, 2, s0, NULL, err);
    if (!st) st = wf_writer_add_blob(w, "rerank.none", NULL, 0, err);
    if (!st) st = wf_writer_close(w, err);
    else wf_writer_abort(w);
    free(a);
    free(b);
    free(h);
    wf_config_free(cfg);
    return st;
}

/* Recomputes the header, config, directory and (where the directory makes sense)
 * frame CRCs of a possibly damaged image, leaving everything else as it is. */
static inline void wt_fix_crcs(unsigned char *f, size_t n)
{
    if (n < WF_HEADER_SIZE) return;
    uint32_t hsize = wf_rd32(f + WF_H_SIZE);
    uint64_t coff = wf_rd64(f + WF_H_CONFIG_OFF), csize = wf_rd64(f + WF_H_CONFIG_SIZE);
    uint64_t doff = wf_rd64(f + WF_H_DIR_OFF), dsize = wf_rd64(f + WF_H_DIR_SIZE);
    if (coff <= n && csize <= n - coff) wf_wr32(f + WF_H_CONFIG_CRC, wf_crc32(0, f + coff, csize));
    if (doff <= n && dsize <= n - doff && dsize >= 4) {
        unsigned char *d = f + doff, *p = d + 4, *end = d + dsize;
        uint32_t count = wf_rd32(d);
        for (uint32_t i = 0; i < count && end - p >= WF_ENTRY_FIXED; i++) {
            uint32_t es = wf_rd32(p);
            uint64_t off = wf_rd64(p + 16), st = wf_rd64(p + 24);
            if (off <= n && st <= n - off) wf_wr32(p + 12, wf_crc32(0, f + off, st));
            if (es < WF_ENTRY_FIXED || es > (size_t)(end - p)) break;
            p += es;
        }
        wf_wr32(f + WF_H_DIR_CRC, wf_crc32(0, d, dsize));
    }
    if (hsize >= WF_HEADER_SIZE && hsize <= n) {
        wf_wr32(f + WF_H_CRC, 0);
        wf_wr32(f + WF_H_CRC, wf_crc32(0, f, hsize));
    }
}

/* Everything a model loader might do with the file. Returns WF_OK or the first error;
 * err must then be one line starting with the path. */
static inline int wt_read_all(const char *path, char *err)
{
    wf_reader_t *r;
    int st = wf_reader_open(&r, path, err);
    if (st) return st;
    const wf_config_t *c = wf_reader_config(r);
    int64_t iv;
    double dv;
    const char *sv;
    wf_config_get_int(c, "dvae.codebook", &iv);
    wf_config_get_float(c, "dvae.tau_min", &dv);
    wf_config_get_str(c, "tokenizer.kind", &sv);
    for (int i = 0; i < wf_reader_count(r) && st == WF_OK; i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        if (e->kind == WF_BLOB) {
            void *data;
            size_t size;
            st = wf_reader_blob(r, e->name, &data, &size, err);
            free(data);
        } else if (e->numel <= (1u << 22)) {
            float *dst = malloc(e->numel * sizeof(float) + 4);
            void *raw = malloc(e->raw_size + 4);
            st = wf_reader_load_entry(r, e, dst, err);
            if (st == WF_OK) st = wf_reader_load_raw(r, e, raw, err);
            if (st == WF_OK) st = wf_reader_load(r, e->name, e->ndim, e->shape, dst, err);
            free(dst);
            free(raw);
        }
    }
    if (st == WF_OK) st = wf_reader_verify(r, err);
    wf_reader_close(r);
    return st;
}

#endif
