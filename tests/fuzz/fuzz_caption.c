/* Caption files: a folder with one image a.png and the input as a.txt, opened with
 * ds_open (with and without require_captions); every caption line must be non-empty,
 * one line, without surrounding blanks, and ds_caption must pick one of them. */
#include "data/data.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    char path[700], err[256];
    const char *dir = fuzz_tmpdir();
    if (!ready) {
        img_t im;
        snprintf(path, sizeof path, "%s/a.png", dir);
        if (img_init(&im, 8, 8, err) || img_save_png(&im, path, NULL, 0, err)) fuzz_fail("setup: %s", err);
        img_deinit(&im);
        ready = 1;
    }
    snprintf(path, sizeof path, "%s/a.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    if (fclose(f)) return 0;
    for (int req = 0; req < 2; req++) {
        ds_config_t c = ds_config_default();
        c.size = 8, c.holdout = 0, c.require_captions = req;
        ds_t *ds;
        if (ds_open(&ds, dir, &c, err)) {
            fuzz_check_message(err, dir);
            continue;
        }
        int n = ds_caption_count(ds, DS_TRAIN, 0);
        for (int k = 0; k < n; k++) {
            const char *s = ds_caption_line(ds, DS_TRAIN, 0, k);
            size_t len = strlen(s);
            if (!len || strchr(s, '\n') || s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' ||
                s[len - 1] == '\t' || s[len - 1] == '\r')
                fuzz_fail("caption line %d is \"%s\"", k, s);
        }
        for (uint64_t epoch = 0; epoch < 3; epoch++) {
            const char *s = ds_caption(ds, DS_TRAIN, 0, 7, epoch);
            int found = n == 0 && s[0] == 0;
            for (int k = 0; k < n && !found; k++) found = strcmp(s, ds_caption_line(ds, DS_TRAIN, 0, k)) == 0;
            if (!found) fuzz_fail("ds_caption gave \"%s\", not one of the %d lines", s, n);
        }
        (void)ds_caption_line(ds, DS_TRAIN, 0, n); /* past the end: "" */
        ds_close(ds);
    }
    return 0;
}
