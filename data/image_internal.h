/* Internal to data/: the byte source the PNG and JPEG decoders read from, and the
 * error helpers the image files share. Not part of the public surface (data.h). */
#ifndef DALLEC_DATA_IMAGE_INTERNAL_H
#define DALLEC_DATA_IMAGE_INTERNAL_H

#include "data/data.h"

#include <stdio.h>

/* A file or a buffer, read front to back. The first bytes of a file are read ahead into
 * head (to recognise the format) and handed out again before the rest. */
typedef struct {
    const char *name;      /* for messages */
    FILE *fp;              /* a file, or */
    const uint8_t *mem;    /* a buffer of size bytes */
    size_t size, pos;
    uint8_t head[16];
    size_t head_n, head_pos;
    int eof;               /* a read came up short: the data ended */
    int read_errno;        /* a read failed with this errno */
} img_src_t;

/* Copies up to n bytes; fewer means the end of the data (or a read error). */
size_t img_src_read(img_src_t *s, void *dst, size_t n);
/* The next run of bytes, at most cap: a pointer into the buffer, or into scratch for a
 * file. *n is 0 at the end. */
const uint8_t *img_src_next(img_src_t *s, uint8_t *scratch, size_t cap, size_t *n);

/* Fills err (when not NULL) with "NAME: " and the formatted problem; returns code. */
int img_fail(char *err, int code, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* IMG_ETOOBIG (with a message) when w x h is over the limits, IMG_ECORRUPT when not
 * positive, else 0. */
int img_check_size(int64_t w, int64_t h, const char *name, char *err);

/* Decoders, called with the source positioned at the signature. On error *img is
 * zeroed. text/n_text may be NULL (pixels only); img may be NULL (text only). */
int img_png_decode(img_t *img, img_src_t *src, img_text_t **text, int *n_text, char *err);
int img_jpeg_decode(img_t *img, img_src_t *src, char *err);

#endif
