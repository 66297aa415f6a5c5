/* Model-file load speed against `zstd -d` on the same compressed bytes.
 *
 *     bench-weights [PARAMS_MILLIONS]     (default 13: a ~50 MB f32 file)
 *
 * Writes a model of transformer-like tensors (N(0, 0.02) weights, as at init), then
 * times (best of 5, warm page cache):
 *   load:    wf_reader_open + wf_reader_load of every tensor into the model's buffers
 *   zstd -d: the zstd CLI decompressing the same frames, concatenated into a .zst,
 *            to /dev/null (process start included, measured separately and reported)
 * once with f32 storage and once with f16 (which loads with conversion). */
#include "nn/nn.h"
#include "weights/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double best_of_system(const char *cmd, int runs)
{
    double best = 1e30;
    for (int i = 0; i < runs; i++) {
        double t = now();
        if (system(cmd) != 0) return -1;
        t = now() - t;
        if (t < best) best = t;
    }
    return best;
}

static int run(const char *dir, size_t params, wf_dtype dtype)
{
    char path[512], zst[600], cmd[1400], err[WF_ERR_SIZE];
    snprintf(path, sizeof path, "%s/bench-%s.dalle", dir, wf_dtype_name(dtype));
    snprintf(zst, sizeof zst, "%s.zst", path);
    /* a stack of d x d and d x 4d matrices, as in a transformer */
    const int d = 512;
    int ntensors = 0;
    size_t sizes[256];
    int64_t shapes[256][2];
    for (size_t total = 0; total < params && ntensors < 256; ntensors++) {
        int wide = ntensors % 3 == 2;
        shapes[ntensors][0] = wide ? 4 * d : d;
        shapes[ntensors][1] = d;
        sizes[ntensors] = (size_t)shapes[ntensors][0] * d;
        total += sizes[ntensors];
    }
    size_t total = 0;
    for (int i = 0; i < ntensors; i++) total += sizes[i];
    float *w = malloc(total * sizeof *w), *dst = malloc(total * sizeof *dst);
    if (!w || !dst) return 1;
    nn_rng_t rng;
    nn_rng_seed(&rng, 1);
    nn_rng_fill_normal(&rng, w, total, 0, 0.02f);

    wf_config_t *cfg = wf_config_create();
    wf_config_set_int(cfg, "gpt.d_model", d);
    double t = now();
    wf_writer_t *wr;
    int st = wf_writer_open(&wr, path, cfg, 0, err);
    size_t off = 0;
    for (int i = 0; i < ntensors && st == WF_OK; i++) {
        char name[64];
        snprintf(name, sizeof name, "gpt.h%d.w", i);
        st = wf_writer_add_tensor(wr, name, dtype, 2, shapes[i], w + off, err);
        off += sizes[i];
    }
    st = st ? (wf_writer_abort(wr), st) : wf_writer_close(wr, err);
    double t_write = now() - t;
    wf_config_free(cfg);
    if (st) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    /* the same compressed bytes, as one .zst of concatenated frames */
    wf_reader_t *r;
    if (wf_reader_open(&r, path, err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    FILE *in = fopen(path, "rb"), *out = fopen(zst, "wb");
    unsigned long long stored = 0, raw = 0;
    for (int i = 0; i < wf_reader_count(r) && in && out; i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        char *buf = malloc(e->stored_size);
        fseek(in, (long)e->offset, SEEK_SET);
        if (!buf || fread(buf, 1, e->stored_size, in) != e->stored_size ||
            fwrite(buf, 1, e->stored_size, out) != e->stored_size)
            return 1;
        free(buf);
        stored += e->stored_size;
        raw += e->raw_size;
    }
    if (!in || !out) return 1;
    fclose(in);
    fclose(out);
    uint64_t fsize = wf_reader_file_size(r);
    wf_reader_close(r);

    /* load: open + every tensor into the (already allocated) parameter buffer */
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        t = now();
        if (wf_reader_open(&r, path, err)) return 1;
        off = 0;
        for (int i = 0; i < ntensors; i++) {
            char name[64];
            snprintf(name, sizeof name, "gpt.h%d.w", i);
            if (wf_reader_load(r, name, 2, shapes[i], dst + off, err)) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            off += sizes[i];
        }
        wf_reader_close(r);
        t = now() - t;
        if (t < best) best = t;
    }
    int same = 1;
    for (size_t i = 0; i < total && same; i++)
        same = dtype == WF_F32 ? dst[i] == w[i] : dst[i] == wf_f16_to_f32(wf_f32_to_f16(w[i]));

    snprintf(cmd, sizeof cmd, "zstd -d -q -c '%s' > /dev/null", zst);
    double t_zstd = best_of_system(cmd, 5);
    double t_true = best_of_system("zstd -V > /dev/null", 5);
    printf("%s: %zu params in %d tensors; file %.1f MB, data %.1f MB -> %.1f MB (ratio %.3f); write %.0f ms\n",
           wf_dtype_name(dtype), total, ntensors, fsize / 1e6, raw / 1e6, stored / 1e6,
           (double)raw / (double)stored, t_write * 1e3);
    printf("  load (open + all tensors to f32): %7.1f ms  %s\n", best * 1e3,
           same ? "(values check)" : "(VALUES DIFFER)");
    if (t_zstd < 0) {
        printf("  zstd -d: the zstd program is not available\n");
    } else {
        printf("  zstd -d -c > /dev/null:           %7.1f ms  (of which process start ~%.1f ms)\n",
               t_zstd * 1e3, t_true * 1e3);
        printf("  load / zstd -d = %.2f (acceptance: <= 2)\n", best / t_zstd);
    }
    unlink(zst);
    unlink(path);
    free(w);
    free(dst);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    double millions = argc > 1 ? atof(argv[1]) : 13;
    const char *base = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/dallec-bench-%d", base ? base : "/tmp", (int)getpid());
    mkdir(dir, 0700);
    int rc = run(dir, (size_t)(millions * 1e6), WF_F32);
    rc |= run(dir, (size_t)(millions * 1e6), WF_F16);
    rmdir(dir);
    return rc;
}
