/* weights/: the reader. Every length, offset and count from the file is checked
 * against the file's real size and the format's limits before it is used; the data of
 * each entry is checked by its CRC-32 and zstd's content checksum. */
#include "weights/wf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define MAX_HEADER (64u << 10)
#define ZSTD_MAGIC 0xFD2FB528u
#define VERIFY_CHUNK (128u << 10)

struct wf_reader {
    int fd;                    /* -1 when reading from memory */
    const unsigned char *mem;  /* wf_reader_open_mem: the caller's bytes, not copied */
    char *path;
    uint64_t file_size;
    int major, minor;
    char *config_text;
    wf_config_t *cfg;
    wf_entry_t *e;
    uint32_t *crc;      /* per entry: CRC-32 of its frame */
    int n;
    int *by_name;       /* entry indices sorted by name */
    char *names;
    ZSTD_DCtx *dctx;
    unsigned char *buf; /* one frame */
    size_t buf_cap;
};

static const char *kind_word(const wf_entry_t *e) { return e->kind == WF_BLOB ? "blob" : "tensor"; }

/* Reads n bytes at off; a short read means the file shrank under us. */
static int read_at(wf_reader_t *r, void *dst, size_t n, uint64_t off, const char *what, char *err)
{
    char *p = dst;
    if (r->mem) {
        if (off > r->file_size || n > r->file_size - off)
            return wf_fail(err, WF_ETRUNC, r->path, "%s is truncated (file ends at %llu)", what,
                           (unsigned long long)r->file_size);
        memcpy(p, r->mem + off, n);
        return WF_OK;
    }
    while (n) {
        ssize_t k = pread(r->fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return wf_fail(err, WF_EIO, r->path, "cannot read %s: %s", what, strerror(errno));
        if (k == 0) return wf_fail(err, WF_ETRUNC, r->path, "%s is truncated (file ends at %llu)", what, (unsigned long long)off);
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return WF_OK;
}

void wf_reader_close(wf_reader_t *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free(r->path);
    free(r->config_text);
    wf_config_free(r->cfg);
    free(r->e);
    free(r->crc);
    free(r->by_name);
    free(r->names);
    ZSTD_freeDCtx(r->dctx);
    free(r->buf);
    free(r);
}

static int cmp_name(const void *a, const void *b)
{
    const wf_entry_t *ea = *(const wf_entry_t *const *)a, *eb = *(const wf_entry_t *const *)b;
    return strcmp(ea->name, eb->name);
}
static int cmp_offset(const void *a, const void *b)
{
    const wf_entry_t *ea = *(const wf_entry_t *const *)a, *eb = *(const wf_entry_t *const *)b;
    return ea->offset < eb->offset ? -1 : ea->offset > eb->offset;
}

/* The header: magic, size, CRC, version, and the section table. */
static int parse_header(wf_reader_t *r, uint64_t *sect, char *err)
{
    unsigned char fixed[WF_HEADER_SIZE];
    size_t have = r->file_size < WF_HEADER_SIZE ? (size_t)r->file_size : WF_HEADER_SIZE;
    int st = read_at(r, fixed, have, 0, "header", err);
    if (st) return st;
    if (have < 8 || memcmp(fixed, WF_MAGIC, 8) != 0) {
        if (memcmp(fixed, WF_MAGIC, have < 8 ? have : 8) == 0)
            return wf_fail(err, WF_ETRUNC, r->path, "truncated (%zu bytes, shorter than the header)", have);
        return wf_fail(err, WF_EFOREIGN, r->path, "not a dalle-c model file (wrong magic bytes)");
    }
    if (have < 16)
        return wf_fail(err, WF_ETRUNC, r->path, "truncated (%zu bytes, shorter than the header)", have);
    uint32_t hsize = wf_rd32(fixed + WF_H_SIZE);
    if (hsize < WF_HEADER_SIZE || hsize > MAX_HEADER)
        return wf_fail(err, WF_ECORRUPT, r->path, "corrupt header (header size %u)", hsize);
    if (hsize > r->file_size)
        return wf_fail(err, WF_ETRUNC, r->path, "truncated (%llu bytes, shorter than its %u-byte header)",
                       (unsigned long long)r->file_size, hsize);
    unsigned char *h = malloc(hsize);
    if (!h) return wf_fail(err, WF_ENOMEM, r->path, "out of memory");
    if ((st = read_at(r, h, hsize, 0, "header", err))) {
        free(h);
        return st;
    }
    uint32_t want = wf_rd32(h + WF_H_CRC);
    wf_wr32(h + WF_H_CRC, 0);
    uint32_t got = wf_crc32(0, h, hsize);
    r->major = wf_rd16(h + WF_H_MAJOR);
    r->minor = wf_rd16(h + WF_H_MINOR);
    for (int i = 0; i < 3; i++) sect[i] = wf_rd32(h + WF_H_CONFIG_CRC + 4 * i);
    for (int i = 0; i < 5; i++) sect[3 + i] = wf_rd64(h + WF_H_FILE_SIZE + 8 * i);
    free(h);
    /* the file size first: a truncated file is reported as truncated, not as a bad CRC */
    if (got == want && sect[3] > r->file_size)
        return wf_fail(err, WF_ETRUNC, r->path, "truncated (%llu bytes; its header says %llu)",
                       (unsigned long long)r->file_size, (unsigned long long)sect[3]);
    if (got != want)
        return wf_fail(err, WF_ECORRUPT, r->path, "corrupt header (checksum mismatch)");
    if (r->major != WF_VERSION_MAJOR)
        return wf_fail(err, WF_EVERSION, r->path,
                       "format version %d.%d %s; this dalle-c reads %d.x%s", r->major, r->minor,
                       r->major > WF_VERSION_MAJOR ? "is newer than this build knows" : "is not supported",
                       WF_VERSION_MAJOR, r->major > WF_VERSION_MAJOR ? " (update dalle-c)" : "");
    if (sect[3] != r->file_size)
        return wf_fail(err, WF_ECORRUPT, r->path, "is %llu bytes but its header says %llu (trailing data)",
                       (unsigned long long)r->file_size, (unsigned long long)sect[3]);
    uint64_t coff = sect[4], csize = sect[5], doff = sect[6], dsize = sect[7], fs = r->file_size;
    if (coff < hsize || coff > fs || csize > WF_MAX_CONFIG || csize > fs - coff)
        return wf_fail(err, WF_ECORRUPT, r->path, "corrupt header (config at %llu, %llu bytes)",
                       (unsigned long long)coff, (unsigned long long)csize);
    if (doff < coff + csize || doff > fs || dsize < 4 || dsize > WF_MAX_DIRECTORY || dsize > fs - doff)
        return wf_fail(err, WF_ECORRUPT, r->path, "corrupt header (directory at %llu, %llu bytes)",
                       (unsigned long long)doff, (unsigned long long)dsize);
    return WF_OK;
}

/* Reads and CRC-checks the section [off, off+size) into a new NUL-terminated buffer. */
static int read_section(wf_reader_t *r, uint64_t off, uint64_t size, uint32_t crc, const char *what,
                        char **out, char *err)
{
    char *s = malloc((size_t)size + 1);
    if (!s) return wf_fail(err, WF_ENOMEM, r->path, "out of memory");
    int st = read_at(r, s, (size_t)size, off, what, err);
    if (st == WF_OK && wf_crc32(0, s, (size_t)size) != crc)
        st = wf_fail(err, WF_ECORRUPT, r->path, "%s is corrupt (checksum mismatch)", what);
    if (st) {
        free(s);
        return st;
    }
    s[size] = 0;
    *out = s;
    return WF_OK;
}

/* The directory d[size]: entries whose frames lie in [data_lo, data_hi). */
static int parse_directory(wf_reader_t *r, const unsigned char *d, uint64_t size, uint64_t data_lo,
                           uint64_t data_hi, char *err)
{
    uint32_t count = wf_rd32(d);
    if (count > (size - 4) / WF_ENTRY_FIXED)
        return wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (%u entries in %llu bytes)",
                       count, (unsigned long long)size);
    r->e = calloc(count ? count : 1, sizeof *r->e);
    r->crc = calloc(count ? count : 1, sizeof *r->crc);
    r->by_name = calloc(count ? count : 1, sizeof *r->by_name);
    r->names = malloc((size_t)size + count + 1);
    const wf_entry_t **order = calloc(count ? count : 1, sizeof *order);
    int st = WF_OK;
    if (!r->e || !r->crc || !r->by_name || !r->names || !order) {
        free(order);
        return wf_fail(err, WF_ENOMEM, r->path, "out of memory");
    }
    const unsigned char *p = d + 4, *end = d + size;
    char *names = r->names;
    for (uint32_t i = 0; i < count && st == WF_OK; i++) {
        size_t left = (size_t)(end - p);
        uint32_t esize = left >= 4 ? wf_rd32(p) : 0;
        if (left < WF_ENTRY_FIXED || esize < WF_ENTRY_FIXED || esize > left) {
            st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (entry %u overruns it)", i);
            break;
        }
        unsigned kind = p[4], dtype = p[5], ndim = p[6], nlen = wf_rd16(p + 8);
        if (kind > WF_BLOB && r->minor > WF_VERSION_MINOR) { /* a later minor's kind: skip */
            p += esize;
            continue;
        }
        if (kind > WF_BLOB || dtype > WF_BF16 || ndim > WF_MAX_DIMS ||
            (kind == WF_BLOB && (dtype || ndim)) ||
            (uint64_t)WF_ENTRY_FIXED + 8u * ndim + nlen > esize ||
            !wf_valid_name((const char *)p + WF_ENTRY_FIXED + 8 * ndim, nlen, WF_MAX_NAME)) {
            st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (entry %u is malformed)", i);
            break;
        }
        wf_entry_t *e = &r->e[r->n];
        memcpy(names, p + WF_ENTRY_FIXED + 8 * ndim, nlen);
        names[nlen] = 0;
        e->name = names;
        names += nlen + 1;
        e->kind = (wf_kind)kind;
        e->dtype = (wf_dtype)dtype;
        e->ndim = (int)ndim;
        r->crc[r->n] = wf_rd32(p + 12);
        e->offset = wf_rd64(p + 16);
        e->stored_size = wf_rd64(p + 24);
        e->raw_size = wf_rd64(p + 32);
        uint64_t numel = 1, width = kind == WF_BLOB ? 1 : wf_dtype_size(e->dtype);
        int bad = 0;
        for (unsigned k = 0; k < ndim; k++) {
            uint64_t dim = wf_rd64(p + WF_ENTRY_FIXED + 8 * k);
            if (dim > (uint64_t)INT64_MAX || (dim && numel > UINT64_MAX / 8 / dim)) bad = 1;
            else numel *= dim;
            e->shape[k] = (int64_t)dim;
        }
        e->numel = kind == WF_BLOB ? e->raw_size : numel;
        if (bad || (kind == WF_TENSOR && e->raw_size != numel * width) ||
            (kind == WF_BLOB && e->raw_size > WF_MAX_BLOB)) {
            st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (%s \"%s\": shape and size disagree)",
                         kind_word(e), e->name);
            break;
        }
        if (e->offset < data_lo || e->offset > data_hi || e->stored_size > data_hi - e->offset ||
            e->stored_size < 9) {
            st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (%s \"%s\" lies outside the data)",
                         kind_word(e), e->name);
            break;
        }
        /* a zstd block of at least 4 bytes holds at most 128 KiB: a larger claim is damage,
         * refused before any caller sizes a buffer by it */
        if (e->raw_size / 32768 > e->stored_size) {
            st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (%s \"%s\" claims more bytes "
                         "than its frame can hold)", kind_word(e), e->name);
            break;
        }
        order[r->n] = e;
        r->n++;
        p += esize;
    }
    if (st == WF_OK && p != end && r->minor <= WF_VERSION_MINOR)
        st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (%zu stray bytes at its end)", (size_t)(end - p));
    if (st == WF_OK) { /* frames must not overlap */
        qsort(order, (size_t)r->n, sizeof *order, cmp_offset);
        for (int i = 1; i < r->n && st == WF_OK; i++)
            if (order[i]->offset < order[i - 1]->offset + order[i - 1]->stored_size)
                st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (\"%s\" overlaps \"%s\")",
                             order[i]->name, order[i - 1]->name);
    }
    if (st == WF_OK) { /* names must be unique; by_name serves lookups */
        qsort(order, (size_t)r->n, sizeof *order, cmp_name);
        for (int i = 0; i < r->n; i++) r->by_name[i] = (int)(order[i] - r->e);
        for (int i = 1; i < r->n && st == WF_OK; i++)
            if (strcmp(order[i]->name, order[i - 1]->name) == 0)
                st = wf_fail(err, WF_ECORRUPT, r->path, "corrupt directory (two entries named \"%s\")", order[i]->name);
    }
    free(order);
    return st;
}

static int finish_open(wf_reader_t **out, wf_reader_t *r, int st, char *err);

int wf_reader_open(wf_reader_t **out, const char *path, char err[WF_ERR_SIZE])
{
    *out = NULL;
    if (!path) return wf_fail(err, WF_EINVAL, "(model)", "no file name given");
    wf_reader_t *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return wf_fail(err, WF_ENOMEM, path, "out of memory");
    }
    int st = WF_OK;
    struct stat sb;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) st = wf_fail(err, WF_EIO, path, "cannot open: %s", strerror(errno));
    else if (fstat(r->fd, &sb) != 0) st = wf_fail(err, WF_EIO, path, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(sb.st_mode)) st = wf_fail(err, WF_EINVAL, path, "not a regular file");
    else if (sb.st_size == 0) st = wf_fail(err, WF_ETRUNC, path, "is empty");
    if (st == WF_OK) r->file_size = (uint64_t)sb.st_size;
    return finish_open(out, r, st, err);
}

int wf_reader_open_mem(wf_reader_t **out, const void *data, size_t size, const char *name,
                       char err[WF_ERR_SIZE])
{
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return wf_fail(err, WF_EINVAL, name, "no data given");
    wf_reader_t *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(name))) {
        free(r);
        return wf_fail(err, WF_ENOMEM, name, "out of memory");
    }
    r->fd = -1;
    r->mem = data;
    r->file_size = (uint64_t)size;
    int st = size == 0 ? wf_fail(err, WF_ETRUNC, name, "is empty") : WF_OK;
    return finish_open(out, r, st, err);
}

/* Everything after the bytes are reachable: header, config and directory. */
static int finish_open(wf_reader_t **out, wf_reader_t *r, int st, char *err)
{
    const char *path = r->path;
    uint64_t sect[8];
    if (st == WF_OK) st = parse_header(r, sect, err);
    char *dir = NULL;
    if (st == WF_OK) st = read_section(r, sect[4], sect[5], (uint32_t)sect[0], "config", &r->config_text, err);
    if (st == WF_OK) {
        char msg[160];
        st = wf_config_parse(&r->cfg, r->config_text, (size_t)sect[5], msg, sizeof msg);
        if (st) wf_fail(err, st, path, "%s", msg);
    }
    if (st == WF_OK) st = read_section(r, sect[6], sect[7], (uint32_t)sect[1], "directory", &dir, err);
    if (st == WF_OK)
        st = parse_directory(r, (const unsigned char *)dir, sect[7], sect[4] + sect[5], sect[6], err);
    free(dir);
    if (st == WF_OK && !(r->dctx = ZSTD_createDCtx())) st = wf_fail(err, WF_ENOMEM, path, "out of memory");
    if (st) {
        wf_reader_close(r);
        return st;
    }
    *out = r;
    return WF_OK;
}

const char *wf_reader_path(const wf_reader_t *r) { return r->path; }
const wf_config_t *wf_reader_config(const wf_reader_t *r) { return r->cfg; }
const char *wf_reader_config_text(const wf_reader_t *r) { return r->config_text; }
uint64_t wf_reader_file_size(const wf_reader_t *r) { return r->file_size; }
void wf_reader_version(const wf_reader_t *r, int *major, int *minor)
{
    *major = r->major;
    *minor = r->minor;
}
int wf_reader_count(const wf_reader_t *r) { return r->n; }
const wf_entry_t *wf_reader_entry(const wf_reader_t *r, int i)
{
    return i >= 0 && i < r->n ? &r->e[i] : NULL;
}

const wf_entry_t *wf_reader_find(const wf_reader_t *r, const char *name)
{
    int lo = 0, hi = r->n - 1;
    while (name && lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const wf_entry_t *e = &r->e[r->by_name[mid]];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

/* Reads e's frame into r->buf and checks its CRC and zstd frame header. */
static int read_frame(wf_reader_t *r, const wf_entry_t *e, char *err)
{
    size_t n = (size_t)e->stored_size;
    if (n > r->buf_cap) {
        unsigned char *b = realloc(r->buf, n);
        if (!b) return wf_fail(err, WF_ENOMEM, r->path, "out of memory for %s \"%s\"", kind_word(e), e->name);
        r->buf = b;
        r->buf_cap = n;
    }
    char what[WF_MAX_NAME + 16];
    snprintf(what, sizeof what, "%s \"%s\"", kind_word(e), e->name);
    int st = read_at(r, r->buf, n, e->offset, what, err);
    if (st) return st;
    if (wf_crc32(0, r->buf, n) != r->crc[e - r->e])
        return wf_fail(err, WF_ECORRUPT, r->path, "%s is corrupt (checksum mismatch)", what);
    /* one zstd frame, without dictionary, with a content checksum and the right size */
    unsigned fhd = r->buf[4];
    if (wf_rd32(r->buf) != ZSTD_MAGIC || (fhd & 0x0B) != 0 || !(fhd & 0x04))
        return wf_fail(err, WF_ECORRUPT, r->path, "%s is corrupt (not a checksummed zstd frame)", what);
    unsigned long long csize = ZSTD_getFrameContentSize(r->buf, n);
    if (csize != e->raw_size)
        return wf_fail(err, WF_ECORRUPT, r->path, "%s is corrupt (frame holds %s bytes, directory says %llu)",
                       what, csize == ZSTD_CONTENTSIZE_UNKNOWN || csize == ZSTD_CONTENTSIZE_ERROR ? "?" : "other",
                       (unsigned long long)e->raw_size);
    size_t fsize = ZSTD_findFrameCompressedSize(r->buf, n);
    if (ZSTD_isError(fsize) || fsize != n)
        return wf_fail(err, WF_ECORRUPT, r->path, "%s is corrupt (zstd frame length)", what);
    return WF_OK;
}

/* Decompresses the frame read_frame left in r->buf into dst[e->raw_size]. */
static int decompress_frame(wf_reader_t *r, const wf_entry_t *e, void *dst, char *err)
{
    size_t got = ZSTD_decompressDCtx(r->dctx, dst, (size_t)e->raw_size, r->buf, (size_t)e->stored_size);
    if (ZSTD_isError(got))
        return wf_fail(err, WF_ECORRUPT, r->path, "%s \"%s\" is corrupt (zstd: %s)", kind_word(e), e->name,
                       ZSTD_getErrorName(got));
    if (got != e->raw_size)
        return wf_fail(err, WF_ECORRUPT, r->path, "%s \"%s\" is corrupt (%zu bytes, want %llu)", kind_word(e),
                       e->name, got, (unsigned long long)e->raw_size);
    if (e->kind == WF_TENSOR && !wf_host_is_le())
        wf_byteswap(dst, (size_t)e->numel, wf_dtype_size(e->dtype));
    return WF_OK;
}

static int decompress_into(wf_reader_t *r, const wf_entry_t *e, void *dst, char *err)
{
    int st = read_frame(r, e, err);
    return st ? st : decompress_frame(r, e, dst, err);
}

int wf_reader_load_raw(wf_reader_t *r, const wf_entry_t *e, void *dst, char err[WF_ERR_SIZE])
{
    if (!r || !e || (!dst && e->raw_size)) return WF_EINVAL;
    return decompress_into(r, e, dst, err);
}

int wf_reader_load_entry(wf_reader_t *r, const wf_entry_t *e, float *dst, char err[WF_ERR_SIZE])
{
    if (!r || !e) return WF_EINVAL;
    if (e->kind != WF_TENSOR)
        return wf_fail(err, WF_EINVAL, r->path, "\"%s\" is a blob, not a tensor", e->name);
    if (e->numel > SIZE_MAX / 4) return wf_fail(err, WF_ENOMEM, r->path, "tensor \"%s\" is too large", e->name);
    size_t n = (size_t)e->numel;
    if (e->dtype == WF_F32) return decompress_into(r, e, dst, err);
    /* 16-bit data goes into the upper half of dst and widens in place, front to back,
     * a block at a time through a local copy: block i's floats (bytes 4i..) only
     * overwrite halves of blocks already copied out */
    unsigned char *half = (unsigned char *)dst + 2 * n;
    int st = decompress_into(r, e, half, err);
    if (st) return st;
    uint16_t tmp[1024];
    for (size_t i = 0; i < n; i += 1024) {
        size_t k = n - i < 1024 ? n - i : 1024;
        memcpy(tmp, half + 2 * i, 2 * k);
        float *out = dst + i;
        if (e->dtype == WF_F16)
            for (size_t j = 0; j < k; j++) out[j] = wf_h2f(tmp[j]);
        else
            for (size_t j = 0; j < k; j++) out[j] = wf_b2f(tmp[j]);
    }
    return WF_OK;
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int wf_reader_load(wf_reader_t *r, const char *name, int ndim, const int64_t *shape, float *dst,
                   char err[WF_ERR_SIZE])
{
    if (!r || !name) return WF_EINVAL;
    const wf_entry_t *e = wf_reader_find(r, name);
    if (!e || e->kind != WF_TENSOR) return wf_fail(err, WF_ENOTFOUND, r->path, "has no tensor \"%s\"", name);
    int same = ndim == e->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == e->shape[i];
    if (!same) {
        char have[128], want[128];
        format_shape(have, sizeof have, e->ndim, e->shape);
        format_shape(want, sizeof want, ndim > WF_MAX_DIMS ? WF_MAX_DIMS : ndim, shape);
        return wf_fail(err, WF_ESHAPE, r->path, "tensor \"%s\" has shape %s, expected %s", name, have, want);
    }
    return wf_reader_load_entry(r, e, dst, err);
}

int wf_reader_blob(wf_reader_t *r, const char *name, void **data, size_t *size, char err[WF_ERR_SIZE])
{
    *data = NULL;
    *size = 0;
    const wf_entry_t *e = r && name ? wf_reader_find(r, name) : NULL;
    if (!e || e->kind != WF_BLOB) return wf_fail(err, WF_ENOTFOUND, r ? r->path : NULL, "has no blob \"%s\"", name ? name : "");
    int st = read_frame(r, e, err); /* first, so a damaged size allocates nothing */
    if (st) return st;
    char *b = malloc((size_t)e->raw_size + 1);
    if (!b) return wf_fail(err, WF_ENOMEM, r->path, "out of memory for blob \"%s\"", name);
    st = decompress_frame(r, e, b, err);
    if (st) {
        free(b);
        return st;
    }
    b[e->raw_size] = 0;
    *data = b;
    *size = (size_t)e->raw_size;
    return WF_OK;
}

int wf_reader_verify(wf_reader_t *r, char err[WF_ERR_SIZE])
{
    unsigned char *chunk = malloc(VERIFY_CHUNK);
    if (!chunk) return wf_fail(err, WF_ENOMEM, r->path, "out of memory");
    int st = WF_OK;
    for (int i = 0; i < r->n && st == WF_OK; i++) {
        const wf_entry_t *e = &r->e[i];
        if ((st = read_frame(r, e, err))) break;
        ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
        ZSTD_inBuffer in = {r->buf, (size_t)e->stored_size, 0};
        uint64_t total = 0;
        size_t left = 1;
        while (left != 0 && st == WF_OK) {
            ZSTD_outBuffer o = {chunk, VERIFY_CHUNK, 0};
            size_t in_before = in.pos;
            left = ZSTD_decompressStream(r->dctx, &o, &in);
            if (!ZSTD_isError(left) && left && o.pos == 0 && in.pos == in_before) {
                st = wf_fail(err, WF_ECORRUPT, r->path, "%s \"%s\" is corrupt (zstd stalls)", kind_word(e), e->name);
                break;
            }
            total += o.pos;
            if (ZSTD_isError(left))
                st = wf_fail(err, WF_ECORRUPT, r->path, "%s \"%s\" is corrupt (zstd: %s)", kind_word(e), e->name,
                             ZSTD_getErrorName(left));
            else if (total > e->raw_size || (left && in.pos == in.size && o.pos < o.size))
                st = wf_fail(err, WF_ECORRUPT, r->path, "%s \"%s\" is corrupt (frame size)", kind_word(e), e->name);
        }
        if (st == WF_OK && total != e->raw_size)
            st = wf_fail(err, WF_ECORRUPT, r->path, "%s \"%s\" is corrupt (%llu bytes, want %llu)", kind_word(e),
                         e->name, (unsigned long long)total, (unsigned long long)e->raw_size);
    }
    free(chunk);
    return st;
}
