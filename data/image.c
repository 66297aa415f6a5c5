/* Images: allocation, errors, the byte source, format detection and loading. The PNG
 * and JPEG codecs are in image_png.c and image_jpeg.c, pixel operations in
 * image_ops.c. */
#include "data/image_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The name as messages show it: one line (a control byte, which a file name may hold,
 * becomes '?') and at most 160 bytes, so the problem always fits after it. */
#define IMG_SHOWN_NAME 160

int img_fail(char *err, int code, const char *name, const char *fmt, ...)
{
    if (!err) return code;
    const char *s = name ? name : "(image)";
    char shown[IMG_SHOWN_NAME + 4];
    size_t k = 0;
    for (; *s && k < IMG_SHOWN_NAME; s++) shown[k++] = (unsigned char)*s < 0x20 || *s == 0x7F ? '?' : *s;
    if (*s) memcpy(shown + k, "...", 3), k += 3;
    shown[k] = 0;
    int n = snprintf(err, 256, "%s: ", shown);
    if (n < 0 || n >= 256) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, 256 - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

int img_check_size(int64_t w, int64_t h, const char *name, char *err)
{
    if (w <= 0 || h <= 0)
        return img_fail(err, IMG_ECORRUPT, name, "bad image size %lldx%lld", (long long)w,
                        (long long)h);
    if (w > IMG_MAX_SIDE || h > IMG_MAX_SIDE || w * h > IMG_MAX_PIXELS)
        return img_fail(err, IMG_ETOOBIG, name,
                        "image too large (%lldx%lld; the limit is %d per side and %ld "
                        "Mpixel)", (long long)w, (long long)h, IMG_MAX_SIDE,
                        IMG_MAX_PIXELS >> 20);
    return 0;
}

int img_init(img_t *img, int w, int h, char err[256])
{
    memset(img, 0, sizeof *img);
    int rc = img_check_size(w, h, "img_init", err);
    if (rc == IMG_ECORRUPT) rc = IMG_EINVAL;
    if (rc) return rc;
    img->rgb = calloc((size_t)w * (size_t)h, 3);
    if (!img->rgb)
        return img_fail(err, IMG_ENOMEM, "img_init", "out of memory for %dx%d pixels", w, h);
    img->w = w;
    img->h = h;
    return 0;
}

void img_deinit(img_t *img)
{
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* ---------------------------------------------------------------- byte source */

size_t img_src_read(img_src_t *s, void *dst, size_t n)
{
    uint8_t *d = dst;
    size_t got = 0;
    while (got < n) {
        size_t k;
        const uint8_t *p = img_src_next(s, d + got, n - got, &k);
        if (k == 0) break;
        if (p != d + got) memcpy(d + got, p, k);
        got += k;
    }
    if (got < n) s->eof = 1;
    return got;
}

const uint8_t *img_src_next(img_src_t *s, uint8_t *scratch, size_t cap, size_t *n)
{
    *n = 0;
    if (cap == 0) return scratch;
    if (s->head_pos < s->head_n) {
        size_t k = s->head_n - s->head_pos;
        if (k > cap) k = cap;
        const uint8_t *p = s->head + s->head_pos;
        s->head_pos += k;
        *n = k;
        return p;
    }
    if (s->mem) {
        size_t k = s->size - s->pos;
        if (k > cap) k = cap;
        const uint8_t *p = s->mem + s->pos;
        s->pos += k;
        *n = k;
        return p;
    }
    if (!s->fp) return scratch;
    size_t k = fread(scratch, 1, cap, s->fp);
    if (k < cap && ferror(s->fp) && !s->read_errno) s->read_errno = errno ? errno : EIO;
    *n = k;
    return scratch;
}

/* ---------------------------------------------------------------- loading */

typedef enum { FMT_PNG, FMT_JPEG } img_format_t;

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* Recognises the format from the first bytes (the source's head for a file, the buffer
 * itself otherwise). */
static int detect(img_src_t *s, img_format_t *fmt, char *err)
{
    const uint8_t *h = s->mem ? s->mem : s->head;
    size_t n = s->mem ? s->size : s->head_n;
    if (s->read_errno)
        return img_fail(err, IMG_EIO, s->name, "read failed (%s)", strerror(s->read_errno));
    if (n == 0) return img_fail(err, IMG_EFORMAT, s->name, "empty file");
    if (h[0] == 0x89 && memcmp(h, png_sig, n < 8 ? n : 8) == 0) {
        if (n < 8) return img_fail(err, IMG_ECORRUPT, s->name, "truncated PNG signature");
        *fmt = FMT_PNG;
        return 0;
    }
    if (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff) {
        *fmt = FMT_JPEG;
        return 0;
    }
    if (n >= 6 && (memcmp(h, "GIF87a", 6) == 0 || memcmp(h, "GIF89a", 6) == 0))
        return img_fail(err, IMG_EFORMAT, s->name, "GIF is not supported (PNG or JPEG only)");
    if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0)
        return img_fail(err, IMG_EFORMAT, s->name, "WebP is not supported (PNG or JPEG only)");
    return img_fail(err, IMG_EFORMAT, s->name, "not a PNG or JPEG file");
}

static int decode(img_t *img, img_src_t *s, char *err)
{
    img_format_t fmt = FMT_PNG;
    int rc = detect(s, &fmt, err);
    if (rc) return rc;
    return fmt == FMT_PNG ? img_png_decode(img, s, NULL, NULL, err)
                          : img_jpeg_decode(img, s, err);
}

/* Opens path and reads its first bytes into the source's head. */
static int open_src(img_src_t *s, const char *path, char *err)
{
    memset(s, 0, sizeof *s);
    s->name = path;
    s->fp = fopen(path, "rb");
    if (!s->fp) return img_fail(err, IMG_EIO, path, "cannot open (%s)", strerror(errno));
    struct stat st;
    if (fstat(fileno(s->fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(s->fp);
        s->fp = NULL;
        return img_fail(err, IMG_EIO, path, "is a directory");
    }
    s->head_n = fread(s->head, 1, sizeof s->head, s->fp);
    if (s->head_n < sizeof s->head && ferror(s->fp)) s->read_errno = errno ? errno : EIO;
    return 0;
}

int img_load(img_t *img, const char *path, char err[256])
{
    memset(img, 0, sizeof *img);
    img_src_t s;
    int rc = open_src(&s, path, err);
    if (rc) return rc;
    rc = decode(img, &s, err);
    fclose(s.fp);
    return rc;
}

int img_load_mem(img_t *img, const void *data, size_t size, const char *name, char err[256])
{
    memset(img, 0, sizeof *img);
    img_src_t s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.mem = data;
    s.size = data ? size : 0;
    return decode(img, &s, err);
}

int img_load_text(const char *path, img_text_t **text, int *n_text, char err[256])
{
    *text = NULL;
    *n_text = 0;
    img_src_t s;
    int rc = open_src(&s, path, err);
    if (rc) return rc;
    img_format_t fmt = FMT_PNG;
    rc = detect(&s, &fmt, err);
    if (!rc && fmt != FMT_PNG)
        rc = img_fail(err, IMG_EFORMAT, path, "a JPEG has no PNG text chunks");
    if (!rc) rc = img_png_decode(NULL, &s, text, n_text, err);
    fclose(s.fp);
    return rc;
}

const char *img_text_get(const img_text_t *text, int n_text, const char *key)
{
    for (int i = 0; i < n_text; i++)
        if (strcmp(text[i].key, key) == 0) return text[i].value;
    return NULL;
}
