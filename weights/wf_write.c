/* weights/: the writer. Streams each tensor through zstd into a temporary file beside
 * the target, then directory + header, fsync, rename, fsync of the directory. */
#include "weights/wf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define OUT_BUF (1u << 20)     /* compressed bytes staged per write() */
#define CONV_ELEMS (1u << 15)  /* elements converted per chunk */

typedef struct {
    char *name;
    uint8_t kind, dtype, ndim;
    int64_t shape[WF_MAX_DIMS];
    uint64_t offset, stored, raw;
    uint32_t crc;
} wentry_t;

struct wf_writer {
    int fd;
    char *path, *tmp;
    uint64_t pos;          /* bytes written so far = where the next frame starts */
    ZSTD_CCtx *cctx;
    unsigned char *obuf;
    size_t olen;
    union { float f[CONV_ELEMS]; uint16_t h[CONV_ELEMS]; } conv; /* conversion chunk */
    wentry_t *e;
    int n, cap;
    uint32_t config_crc;
    uint64_t config_size;
    int status;            /* first failure, sticky */
    char err[WF_ERR_SIZE];
};

static int sticky(wf_writer_t *w, char *err)
{
    if (err) snprintf(err, WF_ERR_SIZE, "%s", w->err);
    return w->status;
}

#define FAIL(w, err, st, ...) \
    (w->status = wf_fail(w->err, (st), w->path, __VA_ARGS__), sticky(w, err))

static int write_all(int fd, const void *buf, size_t n, uint64_t at)
{
    const char *p = buf;
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)at);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
        at += (uint64_t)k;
    }
    return 0;
}

static int flush(wf_writer_t *w, char *err)
{
    if (w->olen && write_all(w->fd, w->obuf, w->olen, w->pos) != 0)
        return FAIL(w, err, WF_EIO, "cannot write %s: %s", w->tmp, strerror(errno));
    w->pos += w->olen;
    w->olen = 0;
    return WF_OK;
}

static void writer_free(wf_writer_t *w)
{
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    ZSTD_freeCCtx(w->cctx);
    free(w->obuf);
    free(w->path);
    free(w->tmp);
    free(w);
}

void wf_writer_abort(wf_writer_t *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp) unlink(w->tmp);
    writer_free(w);
}

int wf_writer_open(wf_writer_t **out, const char *path, const wf_config_t *cfg, int level,
                   char err[WF_ERR_SIZE])
{
    *out = NULL;
    if (!path || !*path) return wf_fail(err, WF_EINVAL, "(model)", "no file name given");
    wf_writer_t *w = calloc(1, sizeof *w);
    if (!w) return wf_fail(err, WF_ENOMEM, path, "out of memory");
    w->fd = -1;
    size_t plen = strlen(path);
    w->path = strdup(path);
    w->tmp = malloc(plen + 48);
    w->obuf = malloc(OUT_BUF);
    w->cctx = ZSTD_createCCtx();
    if (!w->path || !w->tmp || !w->obuf || !w->cctx) {
        wf_writer_abort(w);
        return wf_fail(err, WF_ENOMEM, path, "out of memory");
    }
    size_t r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level ? level : WF_DEFAULT_LEVEL);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
    if (ZSTD_isError(r)) {
        wf_writer_abort(w);
        return wf_fail(err, WF_EINVAL, path, "zstd level %d: %s", level, ZSTD_getErrorName(r));
    }
    /* PATH.tmp.PID.N, created exclusively: a stale one from a killed process with the
     * same pid only moves us on to the next N. */
    for (int n = 0; n < 1000 && w->fd < 0; n++) {
        snprintf(w->tmp, plen + 48, "%s.tmp.%ld.%d", path, (long)getpid(), n);
        w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (w->fd < 0 && errno != EEXIST) break;
    }
    if (w->fd < 0) {
        int st = wf_fail(err, WF_EIO, path, "cannot create %s: %s", w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL; /* not ours: do not unlink */
        wf_writer_abort(w);
        return st;
    }
    /* a zeroed header until close: an interrupted temporary file is never mistaken
     * for a model */
    memset(w->obuf, 0, WF_HEADER_SIZE);
    w->olen = WF_HEADER_SIZE;
    size_t clen;
    char *text = wf_config_serialize(cfg, &clen);
    if (!text) {
        wf_writer_abort(w);
        return wf_fail(err, WF_ENOMEM, path, "out of memory");
    }
    if (clen > WF_MAX_CONFIG) {
        free(text);
        wf_writer_abort(w);
        return wf_fail(err, WF_EINVAL, path, "config is %zu bytes, over the limit", clen);
    }
    w->config_size = clen;
    w->config_crc = wf_crc32(0, text, clen);
    int st = flush(w, err);
    if (st == WF_OK && write_all(w->fd, text, clen, w->pos) != 0)
        st = FAIL(w, err, WF_EIO, "cannot write %s: %s", w->tmp, strerror(errno));
    free(text);
    if (st != WF_OK) {
        wf_writer_abort(w);
        return st;
    }
    w->pos += clen;
    *out = w;
    return WF_OK;
}

/* Feeds src[n] into the current frame; end finishes it. Compressed output goes to
 * obuf (CRC'd on the way) and is written whenever obuf fills. */
static int feed(wf_writer_t *w, wentry_t *e, const void *src, size_t n, int end, char *err)
{
    ZSTD_inBuffer in = {src, n, 0};
    for (;;) {
        ZSTD_outBuffer o = {w->obuf, OUT_BUF, w->olen};
        size_t left = ZSTD_compressStream2(w->cctx, &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            return FAIL(w, err, WF_EIO, "tensor \"%s\": zstd: %s", e->name, ZSTD_getErrorName(left));
        e->crc = wf_crc32(e->crc, w->obuf + w->olen, o.pos - w->olen);
        e->stored += o.pos - w->olen;
        w->olen = o.pos;
        if (w->olen == OUT_BUF && flush(w, err) != WF_OK) return w->status;
        if (end ? left == 0 : in.pos == in.size) return WF_OK;
    }
}

/* Adds one entry: validates, then compresses raw_size bytes produced chunk by chunk.
 * src is float32 (convert to dtype) when from_f32, else already in dtype's form. */
static int add_entry(wf_writer_t *w, const char *name, wf_kind kind, wf_dtype dtype, int ndim,
                     const int64_t *shape, const void *src, size_t count, int from_f32,
                     char *err)
{
    if (!w) return WF_EINVAL;
    if (w->status) return sticky(w, err);
    if (!name || !wf_valid_name(name, strlen(name), WF_MAX_NAME))
        return wf_fail(err, WF_EINVAL, w->path, "bad entry name (want 1-%d chars of [A-Za-z0-9_.:/-])", WF_MAX_NAME);
    if (dtype != WF_F32 && dtype != WF_F16 && dtype != WF_BF16)
        return wf_fail(err, WF_EINVAL, w->path, "tensor \"%s\": unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > WF_MAX_DIMS || (ndim && !shape))
        return wf_fail(err, WF_EINVAL, w->path, "tensor \"%s\": bad number of dimensions %d", name, ndim);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return wf_fail(err, WF_EINVAL, w->path, "two entries named \"%s\"", name);
    if (count && !src) return wf_fail(err, WF_EINVAL, w->path, "\"%s\": no data", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        wentry_t *ne = realloc(w->e, (size_t)cap * sizeof *ne);
        if (!ne) return FAIL(w, err, WF_ENOMEM, "out of memory");
        w->e = ne;
        w->cap = cap;
    }
    wentry_t *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return FAIL(w, err, WF_ENOMEM, "out of memory");
    w->n++;
    e->kind = (uint8_t)kind;
    e->dtype = (uint8_t)dtype;
    e->ndim = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    size_t width = kind == WF_BLOB ? 1 : wf_dtype_size(dtype);
    e->raw = (uint64_t)count * width;
    e->offset = w->pos + w->olen;

    size_t r = ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setPledgedSrcSize(w->cctx, e->raw);
    if (ZSTD_isError(r)) return FAIL(w, err, WF_EIO, "zstd: %s", ZSTD_getErrorName(r));

    int direct = !from_f32 && (width == 1 || wf_host_is_le());
    if (direct) return feed(w, e, src, (size_t)e->raw, 1, err);
    /* convert (or byte-swap on big-endian hosts) a chunk at a time */
    for (size_t i = 0; i < count || count == 0; i += CONV_ELEMS) {
        size_t k = count - i < CONV_ELEMS ? count - i : CONV_ELEMS;
        if (dtype == WF_F32) {
            memcpy(w->conv.f, (const float *)src + i, k * 4);
        } else if (from_f32) {
            const float *f = (const float *)src + i;
            uint16_t *h = w->conv.h;
            if (dtype == WF_F16) for (size_t j = 0; j < k; j++) h[j] = wf_f32_to_f16(f[j]);
            else for (size_t j = 0; j < k; j++) h[j] = wf_f32_to_bf16(f[j]);
        } else {
            memcpy(w->conv.h, (const uint16_t *)src + i, k * 2);
        }
        if (!wf_host_is_le()) wf_byteswap(&w->conv, k, width);
        int last = i + k >= count;
        if (feed(w, e, &w->conv, k * width, last, err) != WF_OK) return w->status;
        if (last) break;
    }
    return WF_OK;
}

static int tensor_count(wf_writer_t *w, const char *name, int ndim, const int64_t *shape,
                        size_t *count, char *err)
{
    uint64_t n = 1;
    for (int i = 0; shape && i < ndim && i < WF_MAX_DIMS; i++) {
        if (shape[i] < 0 || (shape[i] && n > (UINT64_MAX / 4) / (uint64_t)shape[i]))
            return wf_fail(err, WF_EINVAL, w ? w->path : NULL, "tensor \"%s\": bad shape", name ? name : "");
        n *= (uint64_t)shape[i];
    }
    if (n > SIZE_MAX / 4) return wf_fail(err, WF_EINVAL, w ? w->path : NULL, "tensor too large");
    *count = (size_t)n;
    return WF_OK;
}

int wf_writer_add_tensor(wf_writer_t *w, const char *name, wf_dtype dtype, int ndim,
                         const int64_t *shape, const float *data, char err[WF_ERR_SIZE])
{
    size_t count;
    int st = tensor_count(w, name, ndim, shape, &count, err);
    if (st) return st;
    return add_entry(w, name, WF_TENSOR, dtype, ndim, shape, data, count, dtype != WF_F32, err);
}

int wf_writer_add_raw(wf_writer_t *w, const char *name, wf_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, char err[WF_ERR_SIZE])
{
    size_t count;
    int st = tensor_count(w, name, ndim, shape, &count, err);
    if (st) return st;
    return add_entry(w, name, WF_TENSOR, dtype, ndim, shape, data, count, 0, err);
}

int wf_writer_add_blob(wf_writer_t *w, const char *name, const void *data, size_t size,
                       char err[WF_ERR_SIZE])
{
    if (w && (uint64_t)size > WF_MAX_BLOB)
        return wf_fail(err, WF_EINVAL, w->path, "blob \"%s\" is over 2 GiB", name ? name : "");
    return add_entry(w, name, WF_BLOB, WF_F32, 0, NULL, data, size, 0, err);
}

/* fsync of the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir) return -1;
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && errno == EINVAL) rc = 0; /* file systems that cannot sync directories */
    close(fd);
    return rc;
}

int wf_writer_close(wf_writer_t *w, char err[WF_ERR_SIZE])
{
    if (!w) return WF_EINVAL;
    int st = w->status ? sticky(w, err) : flush(w, err);
    unsigned char *dir = NULL;
    size_t dsize = 4;
    if (st == WF_OK) {
        for (int i = 0; i < w->n; i++) dsize += WF_ENTRY_FIXED + 8u * w->e[i].ndim + strlen(w->e[i].name);
        if (dsize > WF_MAX_DIRECTORY) st = FAIL(w, err, WF_EINVAL, "too many entries");
        else if (!(dir = malloc(dsize))) st = FAIL(w, err, WF_ENOMEM, "out of memory");
    }
    if (st == WF_OK) {
        unsigned char *p = dir;
        wf_wr32(p, (uint32_t)w->n);
        p += 4;
        for (int i = 0; i < w->n; i++) {
            const wentry_t *e = &w->e[i];
            size_t nl = strlen(e->name), esize = WF_ENTRY_FIXED + 8u * e->ndim + nl;
            memset(p, 0, WF_ENTRY_FIXED);
            wf_wr32(p, (uint32_t)esize);
            p[4] = e->kind;
            p[5] = e->dtype;
            p[6] = e->ndim;
            wf_wr16(p + 8, (uint16_t)nl);
            wf_wr32(p + 12, e->crc);
            wf_wr64(p + 16, e->offset);
            wf_wr64(p + 24, e->stored);
            wf_wr64(p + 32, e->raw);
            for (int d = 0; d < e->ndim; d++) wf_wr64(p + WF_ENTRY_FIXED + 8 * d, (uint64_t)e->shape[d]);
            memcpy(p + WF_ENTRY_FIXED + 8 * e->ndim, e->name, nl);
            p += esize;
        }
        uint64_t dir_off = w->pos;
        unsigned char h[WF_HEADER_SIZE] = {0};
        memcpy(h, WF_MAGIC, 8);
        wf_wr16(h + WF_H_MAJOR, WF_VERSION_MAJOR);
        wf_wr16(h + WF_H_MINOR, WF_VERSION_MINOR);
        wf_wr32(h + WF_H_SIZE, WF_HEADER_SIZE);
        wf_wr32(h + WF_H_CONFIG_CRC, w->config_crc);
        wf_wr32(h + WF_H_DIR_CRC, wf_crc32(0, dir, dsize));
        wf_wr64(h + WF_H_FILE_SIZE, dir_off + dsize);
        wf_wr64(h + WF_H_CONFIG_OFF, WF_HEADER_SIZE);
        wf_wr64(h + WF_H_CONFIG_SIZE, w->config_size);
        wf_wr64(h + WF_H_DIR_OFF, dir_off);
        wf_wr64(h + WF_H_DIR_SIZE, dsize);
        wf_wr32(h + WF_H_CRC, wf_crc32(0, h, WF_HEADER_SIZE));
        if (write_all(w->fd, dir, dsize, dir_off) != 0 || write_all(w->fd, h, WF_HEADER_SIZE, 0) != 0)
            st = FAIL(w, err, WF_EIO, "cannot write %s: %s", w->tmp, strerror(errno));
        else if (fsync(w->fd) != 0)
            st = FAIL(w, err, WF_EIO, "cannot sync %s: %s", w->tmp, strerror(errno));
    }
    free(dir);
    if (st == WF_OK) {
        int rc = close(w->fd);
        w->fd = -1;
        if (rc != 0) st = FAIL(w, err, WF_EIO, "cannot close %s: %s", w->tmp, strerror(errno));
    }
    if (st == WF_OK && rename(w->tmp, w->path) != 0)
        st = FAIL(w, err, WF_EIO, "cannot rename %s over it: %s", w->tmp, strerror(errno));
    if (st != WF_OK) {
        wf_writer_abort(w);
        return st;
    }
    /* the new file is in place; a failed directory sync only risks its durability */
    if (sync_dir(w->path) != 0)
        st = wf_fail(err, WF_EIO, w->path, "written, but syncing its directory failed: %s", strerror(errno));
    writer_free(w);
    return st;
}
