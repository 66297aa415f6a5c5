/* Dataset folders: the names and contents of the files a training folder holds. The
 * input is NUL-separated pairs NAME, CONTENT (up to 12 files): NAME is a path below the
 * folder (any bytes; empty, "." and ".." parts are dropped, so nothing lands outside;
 * three parts at most, each cut to 200 bytes), CONTENT the file's bytes, or a valid 8x8
 * PNG when it is exactly "PNG". The folder goes through everything a training run does
 * with it: ds_open (with and without require_captions), ds_verify, names, captions,
 * ds_batch_fill, ds_epoch_order, the bad-image record.
 *
 * Promises: refusals are one line starting with the folder; every item is an image name
 * (.png, .jpg, .jpeg) outside hidden folders; caption lines are trimmed and non-empty;
 * after ds_verify every image left in the splits decodes. */
#include "data/data.h"
#include "tests/fuzz/fuzz_util.h"

#include <errno.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_FILES 12
#define MAX_PARTS 3
#define MAX_PART 200

static uint8_t *png;
static size_t png_size;

/* root/NAME from the fuzzed name, making the folders on the way; 0 when there is none. */
static int make_path(char *out, size_t cap, const char *root, const char *name)
{
    size_t len = (size_t)snprintf(out, cap, "%s", root);
    int parts = 0;
    const char *p = name;
    while (*p && parts < MAX_PARTS) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        int skip = n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.');
        if (!skip) {
            if (parts > 0 && mkdir(out, 0755) != 0 && errno != EEXIST) return 0;
            size_t k = n < MAX_PART ? n : MAX_PART;
            if (len + 1 + k + 1 > cap) return 0;
            out[len++] = '/';
            memcpy(out + len, p, k);
            out[len += k] = 0;
            parts++;
        }
        p += n + (slash != NULL);
    }
    return parts > 0;
}

static void check_dataset(ds_t *ds)
{
    char err[256] = "";
    size_t n_train = ds_count(ds, DS_TRAIN), n_held = ds_count(ds, DS_HELDOUT);
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < (s ? n_held : n_train); i++) {
            const char *name = ds_name(ds, s, i), *dot = name ? strrchr(name, '.') : NULL;
            if (!dot || (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg")))
                fuzz_fail("item \"%s\" is not an image name", name ? name : "(null)");
            if (name[0] == '.' || strstr(name, "/.")) fuzz_fail("item \"%s\" is hidden", name);
            int lines = ds_caption_count(ds, s, i);
            for (int k = 0; k < lines; k++) {
                const char *c = ds_caption_line(ds, s, i, k);
                size_t len = strlen(c);
                if (!len || strchr(c, '\n') || c[0] == ' ' || c[0] == '\t' || c[len - 1] == ' ' ||
                    c[len - 1] == '\t' || c[len - 1] == '\r')
                    fuzz_fail("caption line \"%s\" of %s", c, name);
            }
            (void)ds_caption(ds, s, i, 7, 1);
        }
    if (ds_name(ds, DS_TRAIN, n_train) != NULL) fuzz_fail("a name past the end");
    size_t bad = ds_verify(ds, NULL, NULL);
    if (bad != ds_bad_count(ds)) fuzz_fail("ds_verify found %zu bad, ds_bad_count says %zu", bad, ds_bad_count(ds));
    for (size_t k = 0; k < bad; k++) {
        char name[512], e[256];
        if (ds_bad(ds, k, name, e) != 0 || !name[0] || !e[0] || strchr(e, '\n'))
            fuzz_fail("bad-image record %zu: \"%s\": \"%s\"", k, name, e);
    }
    for (int s = 0; s < 2; s++) {
        size_t count = ds_count(ds, s);
        if (count == 0) continue;
        const int S = ds_image_size(ds), B = 2;
        float *batch = malloc((size_t)B * 3 * S * S * sizeof *batch);
        size_t idx[2] = {0, count}, used[2], *perm = malloc(count * sizeof *perm);
        if (batch && perm) {
            if (ds_batch_fill(ds, s, idx, B, batch, DS_NCHW, used, 1, err) != 0)
                fuzz_fail("after ds_verify a batch does not fill: %s", err);
            for (int b = 0; b < B; b++)
                if (used[b] >= count) fuzz_fail("batch slot %d used item %zu of %zu", b, used[b], count);
            ds_epoch_order(ds, s, 3, 1, perm);
        }
        free(batch);
        free(perm);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], dir[600], path[4096];
    if (!png) {
        img_t im;
        if (img_init(&im, 8, 8, err) || img_encode_png(&im, NULL, 0, &png, &png_size, "fuzz.png", err))
            fuzz_fail("setup: %s", err);
        img_deinit(&im);
    }
    if (size > 65536) return 0;
    snprintf(dir, sizeof dir, "%s/ds", fuzz_tmpdir());
    fuzz_remove_tree(dir);
    if (mkdir(dir, 0755) != 0) fuzz_fail("setup: cannot make %s", dir);
    char *buf = malloc(size + 2);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = 0;
    size_t at = 0;
    for (int files = 0; files < MAX_FILES && at < size; files++) {
        const char *name = buf + at;
        at += strlen(name) + 1;
        const char *content = at <= size ? buf + at : "";
        size_t clen = at <= size ? strnlen(content, size - at) : 0;
        at += clen + 1;
        if (!make_path(path, sizeof path, dir, name)) continue;
        FILE *f = fopen(path, "wb");
        if (!f) continue; /* e.g. a folder of that name */
        if (clen == 3 && memcmp(content, "PNG", 3) == 0) fwrite(png, 1, png_size, f);
        else fwrite(content, 1, clen, f);
        fclose(f);
    }
    free(buf);
    for (int req = 0; req < 2; req++) {
        ds_config_t c = ds_config_default();
        c.size = 8, c.holdout = 0.3, c.require_captions = req;
        ds_t *ds;
        if (ds_open(&ds, dir, &c, err)) {
            fuzz_check_message(err, dir);
            continue;
        }
        check_dataset(ds);
        ds_close(ds);
    }
    fuzz_remove_tree(dir);
    return 0;
}
