/* PNG through libpng: decoding any PNG to RGB8 (alpha composited on white), text
 * chunks in and out, and atomic saving.
 *
 * libpng reports errors by longjmp to the setjmp in png_read_body / png_write_body.
 * Everything those functions allocate lives in a struct owned by their caller (never
 * in their own locals), so the error path needs no volatile and frees it all. */
#include "data/image_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A text value at or above this many bytes is stored zlib-compressed. */
#define TEXT_COMPRESS_BYTES 512
#define TEXT_MAX_BYTES (1 << 20)

static void png_err_fn(png_structp png, png_const_charp msg)
{
    char *dst = png_get_error_ptr(png);
    snprintf(dst, 200, "%s", msg);
    png_longjmp(png, 1);
}

/* libpng's default prints warnings; library code must not. One warning is an error
 * here: a chunk longer than png_set_chunk_malloc_max is only a "benign" error to
 * libpng 1.6 when reading (a warning), after which it allocates and zeroes every byte
 * the chunk claims (a 217-byte file took 1.6 GB and 4 s, tests/fuzz). */
static void png_warn_fn(png_structp png, png_const_charp msg)
{
    if (strstr(msg, "chunk data is too large")) png_error(png, msg);
}

/* ---------------------------------------------------------------- UTF-8 */

/* Well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += k + 1;
    }
    return 1;
}

/* Latin-1 to UTF-8 into dst (room for 2*strlen(s)+1); returns the bytes written. */
static size_t latin1_to_utf8(char *dst, const char *s)
{
    size_t o = 0;
    for (const uint8_t *p = (const uint8_t *)s; *p; p++) {
        if (*p < 0x80) {
            dst[o++] = (char)*p;
        } else {
            dst[o++] = (char)(0xc0 | (*p >> 6));
            dst[o++] = (char)(0x80 | (*p & 0x3f));
        }
    }
    dst[o] = 0;
    return o;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    img_src_t *src;
    img_t *img;            /* NULL: text only */
    uint8_t *rows;         /* one row, or the whole image when interlaced */
    img_text_t *text;      /* the packed text block being built */
    int n_text;
    char msg[200];         /* libpng's last error */
} png_dec_t;

static void png_read_fn(png_structp png, png_bytep dst, size_t n)
{
    png_dec_t *d = png_get_io_ptr(png);
    if (img_src_read(d->src, dst, n) != n)
        png_error(png, d->src->read_errno ? "read error" : "unexpected end of data");
}

/* One row after libpng's transforms (RGB or RGBA, 8 or 16 bits, big-endian) to RGB8.
 * With M the largest sample value, alpha a and colour c:
 *   out = round(255 * (a*c + (M-a)*M) / M^2)   (= round(255*c/M) without alpha),
 * in integers, rounding half up (exact halves cannot occur: 2*255*num is even and M^2
 * is odd). */
static void row_to_rgb(uint8_t *out, const uint8_t *row, int w, int channels, int bits16)
{
    const uint64_t M = bits16 ? 65535 : 255, MM = M * M;
    int bps = bits16 ? 2 : 1;
    for (int x = 0; x < w; x++) {
        const uint8_t *p = row + (size_t)x * channels * bps;
        uint64_t s[4];
        for (int c = 0; c < channels; c++)
            s[c] = bits16 ? ((uint64_t)p[2 * c] << 8 | p[2 * c + 1]) : p[c];
        for (int c = 0; c < 3; c++) {
            uint64_t v;
            if (channels == 4) {
                uint64_t num = s[3] * s[c] + (M - s[3]) * M;
                v = (2 * 255 * num + MM) / (2 * MM);
            } else {
                v = (2 * 255 * s[c] + M) / (2 * M);
            }
            out[3 * x + c] = (uint8_t)v;
        }
    }
}

/* Packs libpng's text chunks into one block: the array, then the UTF-8 strings. */
static int pack_text(png_dec_t *d, png_textp t, int n, char *err)
{
    size_t bytes = (size_t)n * sizeof(img_text_t);
    for (int i = 0; i < n; i++) {
        const char *v = t[i].text ? t[i].text : "";
        bytes += 2 * strlen(t[i].key) + 1 + 2 * strlen(v) + 1;
    }
    d->text = malloc(bytes ? bytes : 1);
    if (!d->text) return img_fail(err, IMG_ENOMEM, d->src->name, "out of memory for text");
    char *p = (char *)(d->text + n);
    for (int i = 0; i < n; i++) {
        const char *v = t[i].text ? t[i].text : "";
        d->text[i].key = p;
        p += latin1_to_utf8(p, t[i].key) + 1;
        d->text[i].value = p;
        /* iTXt is UTF-8 by definition; one that is not is read as Latin-1 like tEXt */
        int itxt = t[i].compression >= PNG_ITXT_COMPRESSION_NONE;
        if (itxt && utf8_valid((const uint8_t *)v, strlen(v))) {
            size_t k = strlen(v);
            memcpy(p, v, k + 1);
            p += k + 1;
        } else {
            p += latin1_to_utf8(p, v) + 1;
        }
    }
    d->n_text = n;
    return 0;
}

static int png_read_body(png_structp png, png_infop info, png_dec_t *d, char *err)
{
    const char *name = d->src->name;
    if (setjmp(png_jmpbuf(png))) {
        if (d->src->read_errno)
            return img_fail(err, IMG_EIO, name, "read failed (%s)", strerror(d->src->read_errno));
        return img_fail(err, IMG_ECORRUPT, name, "%s PNG (libpng: %s)",
                        d->src->eof ? "truncated" : "corrupt", d->msg);
    }
    png_set_read_fn(png, d, png_read_fn);
    /* our own limits apply (below), with a message that says so */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    /* A chunk may claim any length up to 2^31: libpng allocates what it claims before
     * reading it (a 570-byte file asked for 2 GB, tests/fuzz), unless the claim is over
     * this cap (made an error in png_warn_fn). Text chunks of ours are small; 8 MiB is
     * far above anything real. */
    png_set_chunk_malloc_max(png, (png_alloc_size_t)8 << 20);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    int rc = img_check_size(w, h, name, err);
    if (rc) return rc;

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int bits16 = png_get_bit_depth(png, info) == 16;
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((channels != 3 && channels != 4) || rowbytes != (size_t)w * channels * (bits16 ? 2 : 1))
        return img_fail(err, IMG_ECORRUPT, name, "unexpected PNG layout after transforms");

    /* Interlaced images need every row kept until the last pass; others go row by row.
     * Text-only reads still pass the rows through to reach chunks after the data. */
    int whole = passes > 1 && d->img;
    d->rows = malloc(whole ? rowbytes * h : rowbytes);
    if (!d->rows) return img_fail(err, IMG_ENOMEM, name, "out of memory for %ux%u", w, h);
    if (d->img && (rc = img_init(d->img, (int)w, (int)h, err)) != 0)
        return img_fail(err, rc, name, "out of memory for %ux%u pixels", w, h);
    if (whole) {
        for (int p = 0; p < passes; p++)
            for (png_uint_32 y = 0; y < h; y++) png_read_row(png, d->rows + y * rowbytes, NULL);
        for (png_uint_32 y = 0; y < h; y++)
            row_to_rgb(d->img->rgb + (size_t)y * w * 3, d->rows + y * rowbytes, (int)w,
                       channels, bits16);
    } else {
        for (int p = 0; p < passes; p++)
            for (png_uint_32 y = 0; y < h; y++) {
                png_read_row(png, d->rows, NULL);
                if (d->img)
                    row_to_rgb(d->img->rgb + (size_t)y * w * 3, d->rows, (int)w, channels,
                               bits16);
            }
    }
    if (!d->img) {
        png_read_end(png, info);   /* text chunks after the image data */
        png_textp t;
        int n = 0;
        if (!png_get_text(png, info, &t, &n)) n = 0;
        return pack_text(d, t, n, err);
    }
    return 0;
}

int img_png_decode(img_t *img, img_src_t *src, img_text_t **text, int *n_text, char *err)
{
    png_dec_t d;
    memset(&d, 0, sizeof d);
    d.src = src;
    d.img = img;
    if (img) memset(img, 0, sizeof *img);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d.msg, png_err_fn,
                                             png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc;
    if (!info)
        rc = img_fail(err, IMG_ENOMEM, src->name, "out of memory (libpng)");
    else
        rc = png_read_body(png, info, &d, err);
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    free(d.rows);
    if (rc) {
        if (img) img_deinit(img);
        free(d.text);
        return rc;
    }
    if (text) {
        *text = d.n_text ? d.text : NULL;
        *n_text = d.n_text;
        if (!d.n_text) free(d.text);
    } else {
        free(d.text);
    }
    return 0;
}

/* ---------------------------------------------------------------- encoding */

typedef struct {
    uint8_t *buf;
    size_t size, cap;
    png_text *chunks;
    char msg[200];
} png_enc_t;

static void png_write_fn(png_structp png, png_bytep src, size_t n)
{
    png_enc_t *e = png_get_io_ptr(png);
    if (n > e->cap - e->size) {
        size_t cap = e->cap ? e->cap : 4096;
        while (n > cap - e->size) {
            if (cap > SIZE_MAX / 2) png_error(png, "out of memory");
            cap *= 2;
        }
        uint8_t *b = realloc(e->buf, cap);
        if (!b) png_error(png, "out of memory");
        e->buf = b;
        e->cap = cap;
    }
    memcpy(e->buf + e->size, src, n);
    e->size += n;
}

static void png_flush_fn(png_structp png) { (void)png; }

/* PNG keywords: 1-79 Latin-1 characters without leading, trailing or consecutive
 * spaces; we allow the printable ASCII ones. */
static int check_key(const char *key, const char *name, char *err)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > 79)
        return img_fail(err, IMG_EINVAL, name, "text key \"%.80s\" must have 1 to 79 characters",
                        key ? key : "");
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)key[i];
        if (c < 32 || c > 126 || (c == ' ' && (i == 0 || i == n - 1 || key[i + 1] == ' ')))
            return img_fail(err, IMG_EINVAL, name,
                            "text key \"%.80s\" must be printable ASCII without leading, "
                            "trailing or double spaces", key);
    }
    return 0;
}

static int png_write_body(png_structp png, png_infop info, png_enc_t *e, const img_t *img,
                          const img_text_t *text, int n_text, const char *name, char *err)
{
    if (setjmp(png_jmpbuf(png)))
        return img_fail(err, strcmp(e->msg, "out of memory") ? IMG_EINVAL : IMG_ENOMEM, name,
                        "cannot encode PNG (libpng: %s)", e->msg);
    png_set_write_fn(png, e, png_write_fn, png_flush_fn);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < n_text; i++) {
        const char *v = text[i].value ? text[i].value : "";
        size_t len = strlen(v);
        int ascii = 1;
        for (size_t k = 0; k < len; k++) ascii &= (uint8_t)v[k] < 0x80;
        int big = len >= TEXT_COMPRESS_BYTES;
        png_text *c = &e->chunks[i];
        c->key = (png_charp)text[i].key;
        c->text = (png_charp)v;
        if (ascii) {
            c->compression = big ? PNG_TEXT_COMPRESSION_zTXt : PNG_TEXT_COMPRESSION_NONE;
            c->text_length = len;
        } else {
            c->compression = big ? PNG_ITXT_COMPRESSION_zTXt : PNG_ITXT_COMPRESSION_NONE;
            c->itxt_length = len;
            c->lang = (png_charp)"";
            c->lang_key = (png_charp)"";
        }
    }
    if (n_text) png_set_text(png, info, e->chunks, n_text);
    png_write_info(png, info);
    for (int y = 0; y < img->h; y++)
        png_write_row(png, img->rgb + (size_t)y * img->w * 3);
    png_write_end(png, NULL);
    return 0;
}

static int encode(const img_t *img, const img_text_t *text, int n_text, png_enc_t *e,
                  const char *name, char *err)
{
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return img_fail(err, IMG_EINVAL, name, "no image to write");
    if (n_text < 0 || (n_text > 0 && !text))
        return img_fail(err, IMG_EINVAL, name, "bad text chunk list");
    for (int i = 0; i < n_text; i++) {
        int rc = check_key(text[i].key, name, err);
        if (rc) return rc;
        const char *v = text[i].value ? text[i].value : "";
        size_t len = strlen(v);
        if (len > TEXT_MAX_BYTES)
            return img_fail(err, IMG_EINVAL, name, "text \"%s\" is longer than %d bytes",
                            text[i].key, TEXT_MAX_BYTES);
        if (!utf8_valid((const uint8_t *)v, len))
            return img_fail(err, IMG_EINVAL, name, "text \"%s\" is not valid UTF-8", text[i].key);
    }
    e->chunks = calloc(n_text ? (size_t)n_text : 1, sizeof *e->chunks);
    if (!e->chunks) return img_fail(err, IMG_ENOMEM, name, "out of memory");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e->msg, png_err_fn,
                                              png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc;
    if (!info)
        rc = img_fail(err, IMG_ENOMEM, name, "out of memory (libpng)");
    else
        rc = png_write_body(png, info, e, img, text, n_text, name, err);
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(e->chunks);
    e->chunks = NULL;
    return rc;
}

int img_encode_png(const img_t *img, const img_text_t *text, int n_text, uint8_t **out,
                   size_t *out_size, const char *name, char err[256])
{
    png_enc_t e;
    memset(&e, 0, sizeof e);
    *out = NULL;
    *out_size = 0;
    int rc = encode(img, text, n_text, &e, name, err);
    if (rc) {
        free(e.buf);
        return rc;
    }
    *out = e.buf;
    *out_size = e.size;
    return 0;
}

/* ---------------------------------------------------------------- atomic save */

/* Creates PATH.tmp-PID-N exclusively (so the umask applies, unlike mkstemp's 0600). */
static int create_tmp(const char *path, char *tmp, size_t cap, int *fd, char *err)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned seq = (unsigned)ts.tv_nsec ^ ((unsigned)(uintptr_t)tmp >> 4);
    for (int attempt = 0; attempt < 100; attempt++, seq = seq * 1664525u + 1013904223u) {
        int n = snprintf(tmp, cap, "%s.tmp-%ld-%08x", path, (long)getpid(), seq);
        if (n < 0 || (size_t)n >= cap)
            return img_fail(err, IMG_EINVAL, path, "path too long");
        *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (*fd >= 0) return 0;
        if (errno != EEXIST)
            return img_fail(err, IMG_EIO, path, "cannot create temporary file (%s)",
                            strerror(errno));
    }
    return img_fail(err, IMG_EIO, path, "cannot create a temporary file name");
}

static int write_atomic(const char *path, const uint8_t *buf, size_t n, char *err)
{
    char tmp[4096];
    int fd = -1;
    int rc = create_tmp(path, tmp, sizeof tmp, &fd, err);
    if (rc) return rc;
    const char *step = NULL;
    for (size_t off = 0; off < n && !step;) {
        ssize_t k = write(fd, buf + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = ENOSPC;
            step = "write failed";
        } else {
            off += (size_t)k;
        }
    }
    if (!step && fsync(fd) != 0) step = "fsync failed";
    int saved = errno;
    if (close(fd) != 0 && !step) {
        step = "close failed";
        saved = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "cannot rename the temporary file into place";
        saved = errno;
    }
    if (step) {
        unlink(tmp);
        return img_fail(err, IMG_EIO, path, "%s (%s)", step, strerror(saved));
    }
    /* Make the rename itself durable. Best effort: some file systems refuse to fsync a
     * directory, and the file is complete either way. */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        if (len < sizeof dir) {
            memcpy(dir, path, len);
            dir[len] = 0;
        } else {
            dir[0] = 0;
        }
    }
    if (dir[0]) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

int img_save_png(const img_t *img, const char *path, const img_text_t *text, int n_text,
                 char err[256])
{
    uint8_t *buf;
    size_t n;
    int rc = img_encode_png(img, text, n_text, &buf, &n, path, err);
    if (rc) return rc;
    rc = write_atomic(path, buf, n, err);
    free(buf);
    return rc;
}
