#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ftw.h>
#include <unistd.h>

static int n_pass, n_fail;
static char tmpdir[256];

static void die(const char *msg, const char *path)
{
    fprintf(stderr, "fixture %s: %s\n", path, msg);
    exit(1);
}

static void read_exact(FILE *fp, void *dst, size_t n, const char *path)
{
    if (fread(dst, 1, n, fp) != n)
        die("truncated (regenerate with tests/make_fixtures.py)", path);
}

fx_file_t *fx_load(const char *name)
{
    fx_file_t *f = calloc(1, sizeof *f);
    if (!f) die("out of memory", name);
    const char *root = getenv("DALLEC_SOURCE_DIR");
    snprintf(f->path, sizeof f->path, "%s%stests/fixtures/%s.bin", root ? root : "",
             root ? "/" : "", name);
    FILE *fp = fopen(f->path, "rb");
    if (!fp) die("cannot open (regenerate with tests/make_fixtures.py)", f->path);
    char magic[4];
    uint32_t version, count;
    read_exact(fp, magic, 4, f->path);
    read_exact(fp, &version, 4, f->path);
    read_exact(fp, &count, 4, f->path);
    if (memcmp(magic, "DCFX", 4) != 0 || version != 1 || count > 4096)
        die("not a version-1 fixture file", f->path);
    f->count = (int)count;
    f->t = calloc(count ? count : 1, sizeof *f->t);
    if (!f->t) die("out of memory", f->path);
    for (uint32_t i = 0; i < count; i++) {
        fx_tensor_t *t = &f->t[i];
        uint32_t len, ndim, dtype;
        read_exact(fp, &len, 4, f->path);
        if (len == 0 || len >= sizeof t->name) die("bad tensor name length", f->path);
        read_exact(fp, t->name, len, f->path);
        t->name[len] = 0;
        read_exact(fp, &ndim, 4, f->path);
        if (ndim > 8) die("too many dimensions", f->path);
        t->ndim = (int)ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            read_exact(fp, &t->dims[d], 8, f->path);
            if (t->dims[d] < 0 || t->dims[d] > (1 << 28)) die("bad dimension", f->path);
            t->numel *= (size_t)t->dims[d];
        }
        read_exact(fp, &dtype, 4, f->path);
        if (dtype == 0) {
            t->data = malloc(t->numel * sizeof(float) + 1);
            if (!t->data) die("out of memory", f->path);
            read_exact(fp, t->data, t->numel * sizeof(float), f->path);
        } else if (dtype == 1) {
            int64_t *tmp = malloc(t->numel * sizeof(int64_t) + 1);
            t->idata = malloc(t->numel * sizeof(int) + 1);
            if (!tmp || !t->idata) die("out of memory", f->path);
            read_exact(fp, tmp, t->numel * sizeof(int64_t), f->path);
            for (size_t k = 0; k < t->numel; k++) t->idata[k] = (int)tmp[k];
            free(tmp);
        } else {
            die("unknown dtype", f->path);
        }
    }
    fclose(fp);
    return f;
}

void fx_free(fx_file_t *f)
{
    if (!f) return;
    for (int i = 0; i < f->count; i++) {
        free(f->t[i].data);
        free(f->t[i].idata);
    }
    free(f->t);
    free(f);
}

fx_tensor_t *fx_get(fx_file_t *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    fprintf(stderr, "fixture %s: no tensor \"%s\"\n", f->path, name);
    exit(1);
}

float *fx_f32(fx_file_t *f, const char *name)
{
    fx_tensor_t *t = fx_get(f, name);
    if (!t->data) {
        fprintf(stderr, "fixture %s: tensor \"%s\" is not f32\n", f->path, name);
        exit(1);
    }
    return t->data;
}

int *fx_i32(fx_file_t *f, const char *name)
{
    fx_tensor_t *t = fx_get(f, name);
    if (!t->idata) {
        fprintf(stderr, "fixture %s: tensor \"%s\" is not i64\n", f->path, name);
        exit(1);
    }
    return t->idata;
}

int check_close(const char *label, const float *got, const float *want, size_t n, double tol)
{
    double scale = 0, max_abs = 0, max_rel = 0;
    size_t worst = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    double floor_ = scale > 0 ? 1e-3 * scale : 1e-30;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i])) finite = 0;
        double a = fabs((double)got[i] - want[i]);
        double r = a / fmax(fabs(want[i]), floor_);
        if (a > max_abs) max_abs = a;
        if (r > max_rel) { max_rel = r; worst = i; }
    }
    int ok = finite && max_rel <= tol;
    printf("  %-28s max abs err %.3g, max rel err %.3g (tol %.0e) %s\n", label, max_abs,
           max_rel, tol, ok ? "ok" : "FAIL");
    if (!ok && n)
        printf("    worst at [%zu]: got %.9g want %.9g\n", worst, got[worst], want[worst]);
    if (ok) n_pass++; else n_fail++;
    return ok;
}

int check(int cond, const char *fmt, ...)
{
    if (cond) {
        n_pass++;
        return 1;
    }
    n_fail++;
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int test_summary(const char *name)
{
    /* scratch files go with the test that made them */
    if (tmpdir[0]) nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%s: %d passed, %d failed\n", name, n_pass, n_fail);
    return n_fail ? 1 : 0;
}

int check_grad_fd(const char *label, fd_func_t f, void *ctx, float *x, const float *grad,
                  size_t n, int max_probes, float h, double tol)
{
    size_t stride = n > (size_t)max_probes ? n / (size_t)max_probes : 1;
    double max_rel = 0, gscale = 0;
    for (size_t i = 0; i < n; i++) gscale = fmax(gscale, fabs(grad[i]));
    size_t worst = 0;
    double worst_fd = 0;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        x[i] = x0 + h;
        double fp = f(ctx);
        x[i] = x0 - h;
        double fm = f(ctx);
        x[i] = x0;
        double fd = (fp - fm) / (2.0 * (double)h);
        double rel = fabs(fd - grad[i]) / fmax(fmax(fabs(fd), fabs(grad[i])), 1e-2 * gscale + 1e-6);
        if (!isfinite(fd) || !isfinite(grad[i])) rel = INFINITY; /* a NaN must fail */
        if (!(rel <= max_rel)) { max_rel = rel; worst = i; worst_fd = fd; }
    }
    int ok = max_rel <= tol;
    printf("  %-28s finite-difference max rel err %.3g (tol %.0e) %s\n", label, max_rel, tol,
           ok ? "ok" : "FAIL");
    if (!ok) printf("    worst at [%zu]: analytic %.6g numeric %.6g\n", worst, grad[worst], worst_fd);
    if (ok) n_pass++; else n_fail++;
    return ok;
}

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/dallec-test-%d", base ? base : "/tmp", (int)getpid());
        mkdir(tmpdir, 0700);
    }
    return tmpdir;
}

int test_run(const char *cmdline, char **out)
{
    if (out) *out = NULL;
    FILE *p = popen(cmdline, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    if (!buf) {
        pclose(p);
        return -1;
    }
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) break;
            buf = bigger;
            cap *= 2;
        }
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        check(0, "cannot write %s", path);
        return;
    }
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    check(ok, "write %s", path);
}

int test_runf(char **out, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    return test_run(cmd, out);
}

const char *test_tmp_path(const char *name)
{
    static char buf[8][700];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 700, "%s/%s", test_tmpdir(), name);
    return b;
}
