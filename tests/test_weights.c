/* The model file: f16/bf16 rounding against PyTorch, write-then-read bit for bit for
 * every dtype, damage of every kind giving one-line errors, writer failures (a full
 * disk) keeping the previous file, and `dalle-c info`. */
#include "tests/testutil.h"
#include "tests/weights_testlib.h"

#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* narrow then widen each x and compare the bits with torch's (NaN: NaN-ness only) */
static void check_rounding(const char *label, const float *x, const float *want, size_t n,
                           int bf16)
{
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        float got = bf16 ? wf_bf16_to_f32(wf_f32_to_bf16(x[i])) : wf_f16_to_f32(wf_f32_to_f16(x[i]));
        int ok = isnan(want[i]) ? isnan(got) != 0 : bits_of(got) == bits_of(want[i]);
        if (!ok && !bad++) first = i;
    }
    check(bad == 0, "%s: %zu of %zu differ from torch (first x=%.9g: got %.9g want %.9g)", label, bad, n,
          first < n ? x[first] : 0.0, first < n ? (double)(bf16 ? wf_bf16_to_f32(wf_f32_to_bf16(x[first]))
                                                                : wf_f16_to_f32(wf_f32_to_f16(x[first]))) : 0.0,
          first < n ? want[first] : 0.0);
    if (!bad) printf("  %-28s %zu values bit-identical to torch\n", label, n);
}

static void test_conversions(void)
{
    printf("conversions vs torch .half() / .bfloat16():\n");
    fx_file_t *fx = fx_load("weights_rounding");
    fx_tensor_t *x = fx_get(fx, "x");
    check_rounding("f16 all", x->data, fx_f32(fx, "half"), x->numel, 0);
    check_rounding("bf16 all", x->data, fx_f32(fx, "bf16"), x->numel, 1);
    size_t ne = (size_t)fx_i32(fx, "n_edge")[0];
    check_rounding("f16 edge values", x->data, fx_f32(fx, "half"), ne, 0);
    check_rounding("bf16 edge values", x->data, fx_f32(fx, "bf16"), ne, 1);
    fx_tensor_t *xs = fx_get(fx, "x_small");
    check_rounding("f16 scalar path", xs->data, fx_f32(fx, "half_small"), xs->numel, 0);
    check_rounding("bf16 scalar path", xs->data, fx_f32(fx, "bf16_small"), xs->numel, 1);
    fx_free(fx);
    /* every 16-bit pattern survives widen + narrow; NaN keeps its sign (f16) */
    int bad16 = 0, badb = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = wf_f16_to_f32((uint16_t)h), g = wf_bf16_to_f32((uint16_t)h);
        int nan16 = (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
        if (nan16 ? !isnan(f) || wf_f32_to_f16(f) != ((h & 0x8000) | 0x7E00) : wf_f32_to_f16(f) != h) bad16++;
        int nanb = (h & 0x7F80) == 0x7F80 && (h & 0x7F);
        if (nanb ? !isnan(g) || wf_f32_to_bf16(g) != 0x7FC0 : wf_f32_to_bf16(g) != h) badb++;
    }
    check(bad16 == 0, "f16 widen+narrow: %d of 65536 patterns changed", bad16);
    check(badb == 0, "bf16 widen+narrow: %d of 65536 patterns changed", badb);
    printf("  all 65536 f16 and bf16 patterns round-trip through f32: %s\n", bad16 + badb ? "FAIL" : "ok");
}

static void test_round_trip(const char *dir)
{
    printf("write then read:\n");
    char path[512], path2[512], err[WF_ERR_SIZE];
    snprintf(path, sizeof path, "%s/rt.dalle", dir);
    snprintf(path2, sizeof path2, "%s/rt2.dalle", dir);
    nn_rng_t rng;
    nn_rng_seed(&rng, 11);
    enum { N = 5000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint16_t h16[N], hb[N], back[N];
    nn_rng_fill_normal(&rng, x, N, 0, 3);
    /* specials, including NaNs with payloads and f32 subnormals */
    const uint32_t special[] = {0x80000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0xFFA12345,
                                0x00000001, 0x807FFFFF, 0x477FF000, 0x33000000, 0x3F808000};
    for (size_t i = 0; i < sizeof special / 4; i++) memcpy(&x[i], &special[i], 4);
    for (int i = 0; i < N; i++) {
        h16[i] = (uint16_t)nn_rng_u64(&rng);
        hb[i] = (uint16_t)nn_rng_u64(&rng);
    }
    wf_config_t *cfg = wf_config_create();
    check(wf_config_set_int(cfg, "dvae.codebook", 512) == WF_OK, "set int");
    check(wf_config_set_int(cfg, "gpt.big", INT64_MIN) == WF_OK, "set int64 min");
    check(wf_config_set_float(cfg, "dvae.tau", 1.0 / 3) == WF_OK, "set float");
    check(wf_config_set_float(cfg, "dvae.one", 1.0) == WF_OK, "set float 1.0");
    check(wf_config_set_float(cfg, "dvae.tiny", 4.9e-324) == WF_OK, "set float subnormal");
    check(wf_config_set_str(cfg, "tokenizer.note", "a \"q\" \\ \n\t\x7f\xc3\xa9 end") == WF_OK, "set str");
    check(wf_config_set_int(cfg, "dvae.codebook", 1024) == WF_OK, "replace");
    check(wf_config_set_int(cfg, "bad key", 1) == WF_EINVAL, "a key with a space is refused");
    check(wf_config_set_float(cfg, "dvae.nan", NAN) == WF_EINVAL, "NaN config value is refused");
    int64_t s1[2] = {50, 100}, s0[3] = {2, 0, 7};
    for (int pass = 0; pass < 2; pass++) {
        wf_writer_t *w;
        int st = wf_writer_open(&w, pass ? path2 : path, cfg, 0, err);
        if (!check(st == WF_OK, "open for writing: %s", err)) return;
        st |= wf_writer_add_tensor(w, "dvae.f32", WF_F32, 2, s1, x, err);
        st |= wf_writer_add_tensor(w, "dvae.f16", WF_F16, 2, s1, x, err);
        st |= wf_writer_add_tensor(w, "gpt.bf16", WF_BF16, 2, s1, x, err);
        st |= wf_writer_add_raw(w, "gpt.raw.f16", WF_F16, 2, s1, h16, err);
        st |= wf_writer_add_raw(w, "gpt.raw.bf16", WF_BF16, 2, s1, hb, err);
        st |= wf_writer_add_raw(w, "gpt.raw.f32", WF_F32, 2, s1, x, err);
        st |= wf_writer_add_tensor(w, "rerank.empty", WF_F16, 3, s0, x, err);
        st |= wf_writer_add_tensor(w, "rerank.scalar", WF_BF16, 0, NULL, x + 20, err);
        st |= wf_writer_add_blob(w, "tokenizer.model", h16, sizeof h16, err);
        check(st == WF_OK, "adding entries: %s", err);
        check(wf_writer_add_blob(w, "tokenizer.model", "x", 1, err) == WF_EINVAL, "duplicate name refused");
        check(wf_writer_add_tensor(w, "bad name!", WF_F32, 2, s1, x, err) == WF_EINVAL, "bad name refused");
        check(wf_writer_add_tensor(w, "dvae.x", (wf_dtype)7, 2, s1, x, err) == WF_EINVAL, "bad dtype refused");
        check(wf_writer_close(w, err) == WF_OK, "close: %s", err);
    }
    size_t n1, n2;
    unsigned char *f1 = wt_read_file(path, &n1), *f2 = wt_read_file(path2, &n2);
    check(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0, "the same input gives the same file bytes");
    free(f1);
    free(f2);

    wf_reader_t *r;
    if (!check(wf_reader_open(&r, path, err) == WF_OK, "open: %s", err)) return;
    check(wf_reader_verify(r, err) == WF_OK, "verify: %s", err);
    const wf_config_t *c = wf_reader_config(r);
    int64_t iv = 0;
    double dv = 0;
    const char *sv = NULL;
    check(wf_config_get_int(c, "dvae.codebook", &iv) == WF_OK && iv == 1024, "config int");
    check(wf_config_get_int(c, "gpt.big", &iv) == WF_OK && iv == INT64_MIN, "config int64 min");
    check(wf_config_get_float(c, "dvae.tau", &dv) == WF_OK && dv == 1.0 / 3, "config float exact");
    check(wf_config_get_float(c, "dvae.one", &dv) == WF_OK && dv == 1.0 &&
          wf_config_get_int(c, "dvae.one", &iv) == WF_ESHAPE, "config float 1.0 stays a float");
    check(wf_config_get_float(c, "dvae.tiny", &dv) == WF_OK && dv == 4.9e-324, "config subnormal float");
    check(wf_config_get_float(c, "dvae.codebook", &dv) == WF_OK && dv == 1024, "get_float of an int");
    check(wf_config_get_str(c, "tokenizer.note", &sv) == WF_OK && sv &&
          strcmp(sv, "a \"q\" \\ \n\t\x7f\xc3\xa9 end") == 0, "config string with escapes");
    check(wf_config_get_str(c, "dvae.codebook", &sv) == WF_ESHAPE, "type mismatch reported");
    check(wf_config_get_int(c, "dvae.nope", &iv) == WF_ENOTFOUND, "missing key reported");
    check(wf_config_count(c) == 6, "6 config values (got %d)", wf_config_count(c));
    printf("  config text:\n%s", wf_reader_config_text(r));

    check(wf_reader_load(r, "dvae.f32", 2, s1, y, err) == WF_OK && memcmp(x, y, N * 4) == 0,
          "f32 bitwise identical (NaN payloads, -0, subnormals): %s", err);
    int bad = 0;
    check(wf_reader_load(r, "dvae.f16", 2, s1, y, err) == WF_OK, "load f16: %s", err);
    for (int i = 0; i < N; i++) bad += bits_of(y[i]) != bits_of(wf_f16_to_f32(wf_f32_to_f16(x[i])));
    check(bad == 0, "f16 tensor loads as the rounded values (%d differ)", bad);
    check(wf_reader_load_raw(r, wf_reader_find(r, "dvae.f16"), back, err) == WF_OK, "raw f16");
    bad = 0;
    for (int i = 0; i < N; i++) bad += back[i] != wf_f32_to_f16(x[i]);
    check(bad == 0, "f16 stored bits are the conversion's (%d differ)", bad);
    bad = 0;
    check(wf_reader_load(r, "gpt.bf16", 2, s1, y, err) == WF_OK, "load bf16: %s", err);
    for (int i = 0; i < N; i++) bad += bits_of(y[i]) != bits_of(wf_bf16_to_f32(wf_f32_to_bf16(x[i])));
    check(bad == 0, "bf16 tensor loads as the rounded values (%d differ)", bad);
    check(wf_reader_load_raw(r, wf_reader_find(r, "gpt.raw.f16"), back, err) == WF_OK &&
          memcmp(back, h16, sizeof h16) == 0, "raw f16 bits identical");
    check(wf_reader_load_raw(r, wf_reader_find(r, "gpt.raw.bf16"), back, err) == WF_OK &&
          memcmp(back, hb, sizeof hb) == 0, "raw bf16 bits identical");
    check(wf_reader_load(r, "gpt.raw.f32", 2, s1, y, err) == WF_OK && memcmp(x, y, N * 4) == 0, "raw f32 identical");
    bad = 0;
    check(wf_reader_load(r, "gpt.raw.f16", 2, s1, y, err) == WF_OK, "raw f16 as f32");
    for (int i = 0; i < N; i++) bad += bits_of(y[i]) != bits_of(wf_f16_to_f32(h16[i]));
    check(bad == 0, "raw f16 widens exactly (%d differ)", bad);
    float sc = 0;
    check(wf_reader_load(r, "rerank.scalar", 0, NULL, &sc, err) == WF_OK &&
          sc == wf_bf16_to_f32(wf_f32_to_bf16(x[20])), "0-d tensor");
    check(wf_reader_load(r, "rerank.empty", 3, s0, y, err) == WF_OK, "empty tensor: %s", err);
    void *blob;
    size_t bsize;
    check(wf_reader_blob(r, "tokenizer.model", &blob, &bsize, err) == WF_OK && bsize == sizeof h16 &&
          memcmp(blob, h16, bsize) == 0, "blob identical");
    free(blob);
    int64_t wrong[2] = {100, 50};
    check(wf_reader_load(r, "dvae.f32", 2, wrong, y, err) == WF_ESHAPE && strstr(err, "[50, 100]") &&
          strstr(err, "expected [100, 50]"), "shape mismatch: %s", err);
    printf("  shape check: %s\n", err);
    check(wf_reader_load(r, "dvae.nope", 2, s1, y, err) == WF_ENOTFOUND, "missing tensor: %s", err);
    check(wf_reader_load(r, "tokenizer.model", 0, NULL, y, err) == WF_ENOTFOUND, "a blob is not a tensor");
    check(wf_reader_blob(r, "dvae.f32", &blob, &bsize, err) == WF_ENOTFOUND, "a tensor is not a blob");
    wf_reader_close(r);
    wf_config_free(cfg);
    free(x);
    free(y);
}

/* One damaged image: must fail with one line starting with the path. Returns 1 when it
 * was refused properly. */
static int refused(const char *path, const unsigned char *img, size_t n, int *status)
{
    char err[WF_ERR_SIZE] = "";
    wt_write_file(path, img, n);
    int st = wt_read_all(path, err);
    *status = st;
    return st != WF_OK && strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':' &&
           !strchr(err, '\n');
}

static void test_damage(const char *dir)
{
    printf("damaged files:\n");
    char good[512], bad[512], err[WF_ERR_SIZE];
    snprintf(good, sizeof good, "%s/good.dalle", dir);
    snprintf(bad, sizeof bad, "%s/bad.dalle", dir);
    if (!check(wt_write_model(good, 3, 1, err) == WF_OK, "write: %s", err)) return;
    check(wt_read_all(good, err) == WF_OK, "the good file reads: %s", err);
    size_t n;
    unsigned char *img = wt_read_file(good, &n), *m = malloc(n + 64);
    int st, fails = 0, truncs = 0;
    /* truncation at every length */
    for (size_t len = 0; len < n; len++) {
        if (!refused(bad, img, len, &st)) fails++;
        truncs += st == WF_ETRUNC;
    }
    check(fails == 0, "truncation: %d of %zu lengths not refused", fails, n);
    printf("  truncated at each of %zu lengths: refused (%d as \"truncated\")\n", n, truncs);
    check(truncs >= (int)n - 1, "truncations reported as truncated: %d of %zu", truncs, n);
    /* one flipped bit at every byte */
    fails = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(m, img, n);
        m[i] ^= (unsigned char)(1u << (i % 8));
        if (!refused(bad, m, n, &st)) {
            if (!fails) printf("  flip at %zu not detected\n", i);
            fails++;
        }
    }
    check(fails == 0, "bit flips: %d of %zu not refused", fails, n);
    printf("  one bit flipped in each of %zu bytes: all refused\n", n);
    /* trailing garbage */
    memcpy(m, img, n);
    memset(m + n, 0, 16);
    check(refused(bad, m, n + 16, &st), "trailing bytes refused");
    wt_read_all(bad, err);
    printf("  trailing data: %s\n", err);
    /* foreign files */
    const char *png = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    check(refused(bad, (const unsigned char *)png, 16, &st) && st == WF_EFOREIGN, "PNG refused as foreign");
    wt_read_all(bad, err);
    printf("  foreign: %s\n", err);
    check(refused(bad, (const unsigned char *)"hello\n", 6, &st) && st == WF_EFOREIGN, "text refused");
    check(refused(bad, img, 0, &st) && st == WF_ETRUNC, "empty file refused");
    check(refused(bad, img + 8, n - 8, &st), "file without its magic refused");
    /* a newer major version (valid checksums) is refused as such; a newer minor reads */
    memcpy(m, img, n);
    wf_wr16(m + WF_H_MAJOR, 2);
    wt_fix_crcs(m, n);
    check(refused(bad, m, n, &st) && st == WF_EVERSION, "major version 2 refused");
    wt_read_all(bad, err);
    check(strstr(err, "newer") != NULL, "message says newer: %s", err);
    printf("  newer version: %s\n", err);
    memcpy(m, img, n);
    wf_wr16(m + WF_H_MINOR, 7);
    wt_fix_crcs(m, n);
    wt_write_file(bad, m, n);
    check(wt_read_all(bad, err) == WF_OK, "minor version 1.7 still reads: %s", err);
    /* damage behind valid CRCs reaches the parsers: a tensor's shape disagreeing */
    memcpy(m, img, n);
    uint64_t doff = wf_rd64(m + WF_H_DIR_OFF);
    wf_wr64(m + doff + 4 + WF_ENTRY_FIXED, 65);
    wt_fix_crcs(m, n);
    check(refused(bad, m, n, &st) && st == WF_ECORRUPT, "shape/size disagreement refused");
    wt_read_all(bad, err);
    printf("  inconsistent directory: %s\n", err);
    /* a missing file */
    snprintf(bad, sizeof bad, "%s/missing.dalle", dir);
    check(wt_read_all(bad, err) == WF_EIO && strstr(err, "missing.dalle:"), "missing file: %s", err);
    printf("  missing: %s\n", err);
    free(img);
    free(m);
}

/* A write that hits a full disk (RLIMIT_FSIZE in a child) fails cleanly and leaves the
 * previous file and no temporary behind. */
static void test_full_disk(const char *dir)
{
    printf("full disk while saving:\n");
    char path[512], err[WF_ERR_SIZE];
    snprintf(path, sizeof path, "%s/full.dalle", dir);
    check(wt_write_model(path, 1, 1, err) == WF_OK, "first save: %s", err);
    size_t n0;
    unsigned char *before = wt_read_file(path, &n0);
    int fd[2];
    if (pipe(fd) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 << 10, 64 << 10};
        setrlimit(RLIMIT_FSIZE, &rl);
        char e[WF_ERR_SIZE] = "";
        int st = wt_write_model(path, 2, 64, e);
        ssize_t k = write(fd[1], e, strlen(e) + 1);
        (void)k;
        _exit(st == WF_EIO ? 0 : 1);
    }
    close(fd[1]);
    char msg[WF_ERR_SIZE] = "";
    ssize_t k = read(fd[0], msg, sizeof msg - 1);
    (void)k;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the save reported an I/O error: %s", msg);
    printf("  %s\n", msg);
    size_t n1;
    unsigned char *after = wt_read_file(path, &n1);
    check(after && n0 == n1 && memcmp(before, after, n0) == 0, "previous file unchanged");
    check(wt_read_all(path, err) == WF_OK, "previous file still reads: %s", err);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^full.dalle.tmp' > /dev/null", dir);
    check(system(cmd) != 0, "no temporary file left behind");
    free(before);
    free(after);
}

static int run_info(const char *args, char *out, size_t n)
{
    const char *bin = getenv("DALLEC_BIN");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s' info %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_info(const char *dir)
{
    if (!getenv("DALLEC_BIN")) {
        printf("dalle-c info: DALLEC_BIN not set, skipped\n");
        return;
    }
    printf("dalle-c info:\n");
    char path[512], args[600], err[WF_ERR_SIZE];
    static char out[1 << 16];
    snprintf(path, sizeof path, "%s/info.dalle", dir);
    check(wt_write_model(path, 5, 1, err) == WF_OK, "write: %s", err);
    int rc = run_info(path, out, sizeof out);
    check(rc == 0, "info on a good file exits 0 (got %d): %s", rc, out);
    check(strstr(out, "dvae.codebook = 512") && strstr(out, "dvae.enc.conv1.w") && strstr(out, "bf16") &&
          strstr(out, "compression ratio") && strstr(out, "tokenizer.model") && strstr(out, "total"),
          "info shows config, tensors, blobs, ratio:\n%s", out);
    check(strstr(out, "3,936") != NULL, "info counts dvae parameters (3,072 + 864 = 3,936)");
    printf("%s", out);
    size_t n;
    unsigned char *img = wt_read_file(path, &n);
    img[n - 40] ^= 0x10;
    snprintf(args, sizeof args, "%s/info-bad.dalle", dir);
    wt_write_file(args, img, n);
    rc = run_info(args, out, sizeof out);
    check(rc == 1 && strncmp(out, args, strlen(args)) == 0 && strchr(out, '\n') == out + strlen(out) - 1,
          "info on a damaged file: exit 1 and one line (got %d): %s", rc, out);
    printf("  damaged: exit %d: %s", rc, out);
    wt_write_file(args, img, n / 2);
    rc = run_info(args, out, sizeof out);
    check(rc == 1 && strstr(out, "truncated"), "info on a truncated file (got %d): %s", rc, out);
    printf("  truncated: exit %d: %s", rc, out);
    check(run_info("", out, sizeof out) == 2, "info without a file exits 2");
    check(run_info("--bogus x", out, sizeof out) == 2, "info with an unknown option exits 2");
    check(run_info("--help", out, sizeof out) == 0 && strstr(out, "usage"), "info --help exits 0");
    free(img);
}

int main(void)
{
    const char *dir = test_tmpdir();
    test_conversions();
    test_round_trip(dir);
    test_damage(dir);
    test_full_disk(dir);
    test_info(dir);
    const char *files[] = {"rt", "rt2", "good", "bad", "full", "info", "info-bad"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s.dalle", dir, files[i]);
        unlink(p);
    }
    return test_summary("test_weights");
}
