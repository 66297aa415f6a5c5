/* PNG and JPEG: img_load_mem, then img_resize_crop to a size picked from the input's
 * length (as every image of a dataset goes), and for PNGs the text-chunk reader
 * (img_load_text, which reads a file). A PNG of even length has its chunk CRCs
 * recomputed first, so mutations reach libpng's parsers and zlib (odd lengths keep
 * the CRC checks in play). */
#include "data/data.h"
#include "tests/fuzz/fuzz_util.h"

#define NAME "fuzz.img"

static void one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size % 2 || size < 8 || memcmp(data, "\x89PNG", 4) != 0) {
        one(data, size);
        return 0;
    }
    uint8_t *fixed = malloc(size);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    fuzz_png_fix_crcs(fixed, size);
    one(fixed, size);
    free(fixed);
    return 0;
}

static void one(const uint8_t *data, size_t size)
{
    static const int sizes[] = {8, 16, 32, 64};
    img_t img = {0}, out = {0};
    char err[256] = "";
    if (img_load_mem(&img, data, size, NAME, err) != 0) {
        fuzz_check_message(err, NAME);
        if (img.rgb || img.w || img.h) fuzz_fail("a refused image left pixels behind");
    } else {
        if (img.w < 1 || img.h < 1 || img.w > IMG_MAX_SIDE || img.h > IMG_MAX_SIDE || !img.rgb)
            fuzz_fail("accepted an image of %d x %d", img.w, img.h);
        int S = sizes[size & 3];
        if (img_resize_crop(&out, &img, S, err) != 0) fuzz_fail("resize of %dx%d to %d: %s", img.w, img.h, S, err);
        if (out.w != S || out.h != S) fuzz_fail("resize gave %dx%d, not %d", out.w, out.h, S);
        img_deinit(&out);
        img_deinit(&img);
    }
    if (size >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/text.png", fuzz_tmpdir());
        FILE *f = fopen(path, "wb");
        if (!f) return;
        fwrite(data, 1, size, f);
        fclose(f);
        img_text_t *t = NULL;
        int n = 0;
        if (img_load_text(path, &t, &n, err) == 0) {
            for (int i = 0; i < n; i++) (void)(strlen(t[i].key) + strlen(t[i].value));
            (void)img_text_get(t, n, "dalle-c tokens");
            free(t);
        } else {
            fuzz_check_message(err, path);
        }
    }
}
