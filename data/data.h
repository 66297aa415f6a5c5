/* data: images in and out, and (later) the dataset readers built on them.
 *
 * Errors follow the project's convention: functions return 0 or a negative IMG_E*
 * code and, when err is not NULL, fill it with a message that names the file (or the
 * display name given for a buffer) and the problem, e.g.
 *   "cat.png: truncated PNG (libpng: unexpected end of data)".
 * Nothing here prints, exits or keeps global state; every function may be called from
 * several threads at once on different images.
 */
#ifndef DALLEC_DATA_H
#define DALLEC_DATA_H

#include <stddef.h>
#include <stdint.h>

/* ================================================================ images (img_) */

/* An 8-bit RGB image: rgb holds h rows of w pixels, each 3 bytes R, G, B, with no
 * padding (byte (y*w + x)*3 + c). The struct is the caller's; the pixels belong to it
 * once a function below has filled it, and img_deinit() releases them. */
typedef struct {
    int w, h;
    uint8_t *rgb;
} img_t;

/* A text chunk: key (1-79 printable ASCII characters, no leading, trailing or double
 * spaces, as PNG requires) and a UTF-8 value. */
typedef struct {
    const char *key;
    const char *value;
} img_text_t;

enum {
    IMG_OK = 0,
    IMG_EIO = -1,       /* cannot open, read, write, sync or rename */
    IMG_EFORMAT = -2,   /* not PNG or JPEG, or a kind of them we refuse (CMYK JPEG) */
    IMG_ECORRUPT = -3,  /* truncated or damaged file */
    IMG_ETOOBIG = -4,   /* more than IMG_MAX_SIDE per side or IMG_MAX_PIXELS in all */
    IMG_ENOMEM = -5,
    IMG_EINVAL = -6,    /* bad argument: size, text key, non-UTF-8 value, ... */
};

/* Images larger than this are refused from the header, before any pixel memory is
 * allocated. */
#define IMG_MAX_SIDE 16384
#define IMG_MAX_PIXELS (64L * 1024 * 1024)

/* Allocates a w x h image, all black. */
int img_init(img_t *img, int w, int h, char err[256]);
/* Frees the pixels and zeroes the struct; safe on a zeroed or already freed image. */
void img_deinit(img_t *img);

/* Reads a PNG or JPEG, recognised by its first bytes (not its name), into *img as
 * 8-bit RGB.
 * PNG: every colour type and bit depth (1-16), palettes with or without tRNS,
 *   interlaced or not. Alpha (an alpha channel or tRNS) is composited on white,
 *   out = round(a*c + (1-a)*255) with a and c in [0,1] at the file's full precision;
 *   16-bit samples are rounded to 8 bits. gAMA/iCCP are ignored (values as stored).
 * JPEG: grayscale and YCbCr/RGB, baseline or progressive. CMYK/YCCK are refused.
 *   A JPEG that ends early or whose entropy-coded data is damaged is an error
 *   (libjpeg would only warn and fill the rest with grey).
 * On error *img is left zeroed. */
int img_load(img_t *img, const char *path, char err[256]);
/* The same from a buffer; name is used in messages only. */
int img_load_mem(img_t *img, const void *data, size_t size, const char *name, char err[256]);

/* Encodes img as an 8-bit RGB PNG with n_text text chunks (text may be NULL when
 * n_text is 0). A value that is plain ASCII goes into tEXt, anything else into iTXt
 * (UTF-8); values over 512 bytes are zlib-compressed (zTXt / compressed iTXt). Keys and
 * values are checked first (a bad one is IMG_EINVAL). *out is malloc'ed; free() it.
 * name is used in messages only. */
int img_encode_png(const img_t *img, const img_text_t *text, int n_text, uint8_t **out,
                   size_t *out_size, const char *name, char err[256]);
/* img_encode_png() written atomically to path: a temporary file in the same
 * directory, written, fsync'ed and closed with every step checked, then renamed over
 * path. On any failure (a full disk included) the temporary file is removed and path
 * is left as it was. */
int img_save_png(const img_t *img, const char *path, const img_text_t *text, int n_text,
                 char err[256]);

/* Reads the tEXt, zTXt and iTXt chunks of a PNG, before and after the image data, in
 * file order. Values come back as UTF-8 (tEXt/zTXt are Latin-1 and converted).
 * *text is one malloc'ed block holding the array and all strings: free(*text) once.
 * *n_text may be 0 (and *text NULL). A JPEG or other file is IMG_EFORMAT. */
int img_load_text(const char *path, img_text_t **text, int *n_text, char err[256]);
/* The value of the first chunk with this key, or NULL. */
const char *img_text_get(const img_text_t *text, int n_text, const char *key);

/* Makes an S x S image from src, as torchvision's Resize(S) + CenterCrop(S): scale so
 * the shorter side is S (the longer becomes floor(long*S/short)), then keep the centre
 * S x S (offset floor((len - S)/2)). Each axis is resampled on its own: an axis that
 * shrinks uses the exact box filter (output pixel i averages the input interval
 * [i*n/m, (i+1)*n/m) with fractional coverage at the ends, which for integer factors
 * is PyTorch's area / adaptive_avg_pool); an axis that grows uses bilinear
 * interpolation (align_corners=False, edges clamped); an axis that keeps its size is
 * copied. So an S x S input comes back unchanged and a 2S x 2S input gives exact 2x2
 * block means. Sums are kept in float between the passes and rounded once. dst must
 * not be src. */
int img_resize_crop(img_t *dst, const img_t *src, int S, char err[256]);

/* Pixels to floats in [-1, 1], x/127.5 - 1, planar: channel c of pixel (y, x) goes to
 * out[c*plane_stride + y*w + x]. plane_stride = w*h gives CHW; for a batch in nn's
 * CNHW layout [3, B, h, w] pass B*w*h and out + b*w*h. */
void img_to_planar(const img_t *img, float *out, size_t plane_stride);
/* The inverse, into an image already of the right size: round((x+1)*127.5) clamped to
 * [0, 255]; NaN becomes 0. */
void img_from_planar(img_t *img, const float *in, size_t plane_stride);

/* Tiles n images of one size into a grid of cols columns (cols <= 0: ceil(sqrt(n))),
 * in row-major order, with pad pixels of white between and around the tiles (as
 * torchvision's make_grid). Unused cells stay white. */
int img_grid(img_t *dst, const img_t *tiles, int n, int cols, int pad, char err[256]);

/* ================================================================ datasets */

#endif
