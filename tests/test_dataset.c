/* The dataset reader (ds_): recursive scan in a stable order, sidecar captions (one
 * drawn per epoch, reproducibly), the hash split (stable, near the asked fraction,
 * independent of other files), bad images skipped and counted, both batch layouts,
 * concurrent batch fills from two threads, and the errors for an empty folder or one
 * without captions. */
#include "data/data.h"
#include "tests/testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char root[512];

static void write_file(const char *rel, const char *text)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    if (!f) {
        check(0, "cannot write %s", path);
        return;
    }
    fputs(text, f);
    fclose(f);
}

/* A w x h image, every pixel (v, v, v); saved as PNG. */
static void write_png(const char *rel, int w, int h, uint8_t v)
{
    char path[1400], err[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    img_t img = {0};
    img_init(&img, w, h, err);
    memset(img.rgb, v, (size_t)w * h * 3);
    check(img_save_png(&img, path, NULL, 0, err) == 0, "save %s: %s", rel, err);
    img_deinit(&img);
}

static void make_folder(void)
{
    snprintf(root, sizeof root, "%s/ds", test_tmpdir());
    mkdir(root, 0700);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", root), mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/sub/deeper", root), mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/.hidden", root), mkdir(sub, 0700);
    /* 200 good images: value i, captions "caption A of i" etc. */
    for (int i = 0; i < 200; i++) {
        char rel[64], cap[256];
        snprintf(rel, sizeof rel, "%simg%03d.png", i % 3 == 0 ? "sub/" : i % 3 == 1 ? "sub/deeper/" : "", i);
        write_png(rel, 40 + i % 7, 32, (uint8_t)i);
        snprintf(rel + strlen(rel) - 4, 8, ".txt");
        if (i % 10 != 9) { /* every tenth has no caption */
            snprintf(cap, sizeof cap, "caption A of %d\n\n  caption B of %d \r\ncaption C of %d", i, i, i);
            write_file(rel, cap);
        }
    }
    write_file("broken.png", "this is not a PNG");
    write_file("broken.txt", "a broken image\n");
    write_file("truncated.jpg", "\xff\xd8\xff\xe0\x00\x10JFIF\x00");
    write_file(".hidden/img.png", "hidden");
    write_file("notes.txt", "a text file without an image is not a caption\n");
    write_file("readme.md", "ignored");
}

static size_t find(const ds_t *ds, int split, const char *name)
{
    for (size_t i = 0; i < ds_count(ds, split); i++)
        if (strcmp(ds_name(ds, split, i), name) == 0) return i;
    return (size_t)-1;
}

static void test_scan_and_split(void)
{
    printf("scan, split, captions\n");
    ds_config_t cfg = ds_config_default();
    cfg.size = 32;
    cfg.holdout = 0.2;
    ds_t *ds;
    char err[256];
    if (!check(ds_open(&ds, root, &cfg, err) == 0, "open: %s", err)) return;
    size_t nt = ds_count(ds, DS_TRAIN), nh = ds_count(ds, DS_HELDOUT);
    printf("  %zu training, %zu held out (20%% asked)\n", nt, nh);
    check(nt + nh == 202, "202 images found (200 + broken.png + truncated.jpg; hidden skipped), got %zu", nt + nh);
    check(nh >= 20 && nh <= 62, "held-out share near 20%%: %zu of 202", nh);
    int sorted = 1;
    for (size_t i = 1; i < nt; i++) sorted &= strcmp(ds_name(ds, DS_TRAIN, i - 1), ds_name(ds, DS_TRAIN, i)) < 0;
    check(sorted, "items in path order");
    /* The split is a function of the name alone. */
    int stable = 1;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < ds_count(ds, s); i++) {
            double u = (double)(ds_hash(ds_name(ds, s, i)) >> 11) / 9007199254740992.0;
            stable &= (u < 0.2) == (s == DS_HELDOUT);
        }
    check(stable, "split = FNV-1a hash of the relative path below the fraction");
    check(ds_hash("") == 0xcbf29ce484222325ull && ds_hash("a") == 0xaf63dc4c8601ec8cull, "FNV-1a 64 test vectors");

    size_t k = find(ds, DS_TRAIN, "sub/img000.png");
    int split = DS_TRAIN;
    if (k == (size_t)-1) split = DS_HELDOUT, k = find(ds, DS_HELDOUT, "sub/img000.png");
    if (check(k != (size_t)-1, "sub/img000.png found")) {
        check(ds_caption_count(ds, split, k) == 3, "3 caption lines (blank skipped), got %d",
              ds_caption_count(ds, split, k));
        check(strcmp(ds_caption_line(ds, split, k, 1), "caption B of 0") == 0, "line trimmed: \"%s\"",
              ds_caption_line(ds, split, k, 1));
        int seen[3] = {0}, same = 1;
        for (uint64_t e = 0; e < 60; e++) {
            const char *c = ds_caption(ds, split, k, 7, e);
            same &= strcmp(c, ds_caption(ds, split, k, 7, e)) == 0;
            if (strncmp(c, "caption ", 8) == 0 && c[8] >= 'A' && c[8] <= 'C') seen[c[8] - 'A']++;
        }
        check(same, "same (seed, epoch), same caption");
        check(seen[0] && seen[1] && seen[2] && seen[0] + seen[1] + seen[2] == 60,
              "all three lines drawn over 60 epochs (%d %d %d)", seen[0], seen[1], seen[2]);
    }
    size_t u = find(ds, DS_TRAIN, "sub/img009.png");
    if (u == (size_t)-1) u = find(ds, DS_HELDOUT, "sub/img009.png"), split = DS_HELDOUT;
    else split = DS_TRAIN;
    check(u != (size_t)-1 && ds_caption_count(ds, split, u) == 0 && strcmp(ds_caption(ds, split, u, 1, 1), "") == 0,
          "an image without captions is kept with caption \"\"");
    ds_close(ds);

    /* Adding files does not move existing ones between splits. */
    write_file("zzz_new.png", "new file, not an image either");
    ds_t *ds2;
    ds_open(&ds2, root, &cfg, err);
    check(ds_count(ds2, DS_TRAIN) + ds_count(ds2, DS_HELDOUT) == 203, "new file found");
    char path[1400];
    snprintf(path, sizeof path, "%s/zzz_new.png", root);
    remove(path);
    ds_open(&ds, root, &cfg, err);
    int same_split = 1;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < ds_count(ds, s); i++) same_split &= find(ds2, s, ds_name(ds, s, i)) != (size_t)-1;
    check(same_split, "every image keeps its split when a file is added");
    ds_close(ds2);

    cfg.require_captions = 1;
    ds_close(ds);
    if (check(ds_open(&ds, root, &cfg, err) == 0, "open: %s", err)) {
        check(ds_uncaptioned(ds) == 21 && ds_count(ds, DS_TRAIN) + ds_count(ds, DS_HELDOUT) == 181,
              "require_captions: 20 uncaptioned + truncated.jpg left out (%zu)", ds_uncaptioned(ds));
        ds_close(ds);
    }
}

static void test_load_and_batches(void)
{
    printf("loading, batches, bad images\n");
    ds_config_t cfg = ds_config_default();
    cfg.size = 16;
    cfg.holdout = 0;
    ds_t *ds;
    char err[256];
    if (!check(ds_open(&ds, root, &cfg, err) == 0, "open: %s", err)) return;
    size_t n = ds_count(ds, DS_TRAIN);
    size_t kb = find(ds, DS_TRAIN, "broken.png"), kg = find(ds, DS_TRAIN, "img002.png");
    float *one = malloc(3 * 16 * 16 * sizeof(float));
    check(ds_load(ds, DS_TRAIN, kb, one, 256, err) != 0 && strstr(err, "broken.png"), "bad image: %s", err);
    check(ds_load(ds, DS_TRAIN, kg, one, 256, err) == 0 && fabsf(one[0] - (2 / 127.5f - 1)) < 1e-6f &&
              fabsf(one[2 * 256 + 255] - (2 / 127.5f - 1)) < 1e-6f,
          "img002 loads as 2/127.5 - 1");

    /* A batch naming the broken image gets the next good one instead. */
    const int B = 4;
    size_t idx[4] = {kb, kg, kg, 0}, used[4];
    float *nchw = malloc((size_t)B * 3 * 256 * sizeof(float)), *cnhw = malloc((size_t)B * 3 * 256 * sizeof(float));
    check(ds_batch_fill(ds, DS_TRAIN, idx, B, nchw, DS_NCHW, used, 0, err) == 0, "batch: %s", err);
    check(used[0] != kb && used[1] == kg, "broken image replaced (slot 0 got item %zu)", used[0]);
    check(ds_batch_fill(ds, DS_TRAIN, idx, B, cnhw, DS_CNHW, used, 2, err) == 0, "batch cnhw: %s", err);
    int same = 1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < 3; c++)
            same &= memcmp(nchw + ((size_t)b * 3 + c) * 256, cnhw + ((size_t)c * B + b) * 256, 256 * sizeof(float)) == 0;
    check(same, "NCHW and CNHW batches hold the same pixels");
    size_t nbad = ds_bad_count(ds);
    char name[512], why[256];
    check(nbad == 1 && ds_bad(ds, 0, name, why) == 0 && strcmp(name, "broken.png") == 0, "bad image recorded once: %zu", nbad);
    printf("  bad: %s: %s\n", name, why);

    size_t *perm = malloc(n * sizeof *perm), *perm2 = malloc(n * sizeof *perm2);
    ds_epoch_order(ds, DS_TRAIN, 3, 1, perm);
    ds_epoch_order(ds, DS_TRAIN, 3, 1, perm2);
    int same_order = memcmp(perm, perm2, n * sizeof *perm) == 0;
    ds_epoch_order(ds, DS_TRAIN, 3, 2, perm2);
    long sum = 0;
    for (size_t i = 0; i < n; i++) sum += (long)perm[i];
    check(same_order && memcmp(perm, perm2, n * sizeof *perm) != 0 && sum == (long)(n * (n - 1) / 2),
          "epoch order: a permutation, reproducible, different per epoch");

    size_t bad = ds_verify(ds, NULL, NULL);
    check(bad == 2 && ds_count(ds, DS_TRAIN) == n - 2, "verify finds both bad images and drops them (%zu)", bad);
    free(one), free(nchw), free(cnhw), free(perm), free(perm2);
    ds_close(ds);
}

typedef struct {
    ds_t *ds;
    float *out;
    int rc;
} fill_job_t;

static void *fill_thread(void *p)
{
    fill_job_t *j = p;
    size_t idx[8];
    char err[256];
    for (int rep = 0; rep < 20 && j->rc == 0; rep++) {
        for (int b = 0; b < 8; b++) idx[b] = (size_t)(rep * 8 + b);
        j->rc = ds_batch_fill(j->ds, DS_TRAIN, idx, 8, j->out, DS_CNHW, NULL, 2, err);
    }
    return NULL;
}

static void test_concurrent(void)
{
    printf("two threads filling batches at once (as a prefetch thread would)\n");
    ds_config_t cfg = ds_config_default();
    cfg.size = 32;
    cfg.holdout = 0;
    ds_t *ds;
    char err[256];
    if (!check(ds_open(&ds, root, &cfg, err) == 0, "open: %s", err)) return;
    fill_job_t a = {ds, malloc(8 * 3 * 1024 * sizeof(float)), 0}, b = {ds, malloc(8 * 3 * 1024 * sizeof(float)), 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, fill_thread, &a);
    pthread_create(&tb, NULL, fill_thread, &b);
    pthread_join(ta, NULL), pthread_join(tb, NULL);
    check(a.rc == 0 && b.rc == 0 && memcmp(a.out, b.out, 8 * 3 * 1024 * sizeof(float)) == 0,
          "both threads filled the same last batch");
    check(ds_bad_count(ds) == 1, "the bad image recorded once across threads (%zu)", ds_bad_count(ds));
    free(a.out), free(b.out);
    ds_close(ds);
}

static void test_errors(void)
{
    printf("errors\n");
    ds_config_t cfg = ds_config_default();
    ds_t *ds;
    char err[256], empty[600];
    snprintf(empty, sizeof empty, "%s/empty", test_tmpdir());
    mkdir(empty, 0700);
    check(ds_open(&ds, empty, &cfg, err) != 0 && strstr(err, "no images") && strstr(err, "empty"),
          "empty folder: %s", err);
    check(ds_open(&ds, "/no/such/folder", &cfg, err) != 0 && strstr(err, "/no/such/folder"), "missing: %s", err);
    snprintf(empty, sizeof empty, "%s/nocap", test_tmpdir());
    mkdir(empty, 0700);
    char p[64];
    snprintf(p, sizeof p, "nocap/a.png");
    snprintf(root, sizeof root, "%s", test_tmpdir());
    write_png(p, 8, 8, 1);
    cfg.require_captions = 1;
    check(ds_open(&ds, empty, &cfg, err) != 0 && strstr(err, "none has a caption"), "no captions: %s", err);
}

int main(void)
{
    make_folder();
    test_scan_and_split();
    test_load_and_batches();
    test_concurrent();
    test_errors();
    return test_summary("test_dataset");
}
