/* Test helpers: fixture files written by tests/make_fixtures.py, comparisons that
 * print the worst error, and a failure count that becomes the exit status.
 *
 * Fixture file (little-endian):
 *   "DCFX" magic, u32 version (1), u32 tensor count, then per tensor:
 *   u32 name length, name bytes (no NUL), u32 ndim, i64 dims[ndim],
 *   u32 dtype (0 = f32, 1 = i64), then the data, row-major.
 * i64 tensors are returned converted to int32 in `idata` (values must fit).
 */
#ifndef DALLEC_TESTUTIL_H
#define DALLEC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[64];
    int ndim;
    int64_t dims[8];
    size_t numel;
    float *data;  /* f32 tensors */
    int *idata;   /* i64 tensors, narrowed */
} fx_tensor_t;

typedef struct {
    char path[512];
    int count;
    fx_tensor_t *t;
} fx_file_t;

/* Loads tests/fixtures/NAME.bin (relative to DALLEC_SOURCE_DIR or the working
 * directory); exits the test with a message when it is missing or malformed. */
fx_file_t *fx_load(const char *name);
void fx_free(fx_file_t *f);
/* The tensor called name; exits the test when absent. */
fx_tensor_t *fx_get(fx_file_t *f, const char *name);
float *fx_f32(fx_file_t *f, const char *name);
int *fx_i32(fx_file_t *f, const char *name);

/* Compares got against want over n values: prints
 *   "  LABEL: max abs err E, max rel err R (tol TOL) ok|FAIL"
 * where the relative error of element i is |got-want| / max(|want|, floor) and floor
 * is 1e-3 * max|want| (so near-zero entries are judged by the tensor's scale). Counts
 * a failure when R > tol. Returns 1 if ok. */
int check_close(const char *label, const float *got, const float *want, size_t n, double tol);
/* The exit status of a test that cannot run here (ctest reports it as skipped). */
#define TEST_SKIPPED 77

/* Counts a failure with a message unless cond holds. Returns cond. */
int check(int cond, const char *fmt, ...);
/* The number of failures so far; tests end with `return test_summary("name");`,
 * which prints "NAME: N passed, M failed" and returns the exit status. */
int test_summary(const char *name);

/* Central finite-difference check of a scalar function f(x) (x [n]) against an
 * analytic gradient: probes up to max_probes coordinates spread over x with step h,
 * in double via the float function, and compares with relative tolerance tol.
 * f may read ctx and must restore nothing (x is restored by the checker). */
typedef double (*fd_func_t)(void *ctx);
int check_grad_fd(const char *label, fd_func_t f, void *ctx, float *x, const float *grad,
                  size_t n, int max_probes, float h, double tol);

/* Runs a shell command line. When out is not NULL, *out receives what it printed on
 * stdout (add 2>&1 to the line for stderr too), malloc'd and NUL-terminated; the caller
 * frees it. Returns the exit status, or -1 when it could not run or died by a signal. */
int test_run(const char *cmdline, char **out);
/* test_run on a command line built from fmt, with stderr joined to stdout in *out. */
int test_runf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes text to path; counts a failure when it cannot. */
void test_write_file(const char *path, const char *text);

/* A scratch directory of this test process ($TMPDIR or /tmp), removed with everything
 * in it by test_summary. */
const char *test_tmpdir(void);
/* test_tmpdir()/name, in one of 8 static buffers used in turn (so up to 8 may be alive
 * in one expression). */
const char *test_tmp_path(const char *name);

#endif
