/* Pixel operations: resize + centre crop, float planar conversion, grids. */
#include "data/image_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- resize */

/* The weights that make outputs off..off+count-1 of a 1-D resize from n to m samples:
 * output j is sum_k w[j*taps + k] * in[first[j] + k] for k < len[j]. */
typedef struct {
    int taps;
    int *first, *len;
    float *w;
} axis_t;

static void axis_free(axis_t *a)
{
    free(a->first);
    free(a->len);
    free(a->w);
}

static int axis_init(axis_t *a, int n, int m, int off, int count)
{
    double scale = (double)n / m;
    a->taps = m < n ? (int)ceil(scale) + 1 : 2;
    a->first = malloc((size_t)count * sizeof(int));
    a->len = malloc((size_t)count * sizeof(int));
    a->w = calloc((size_t)count * (size_t)a->taps, sizeof(float));
    if (!a->first || !a->len || !a->w) return -1;
    for (int j = 0; j < count; j++) {
        int o = j + off;
        float *w = a->w + (size_t)j * a->taps;
        if (m == n) {
            a->first[j] = o;
            a->len[j] = 1;
            w[0] = 1;
        } else if (m < n) {
            /* box filter: output o covers [o*scale, (o+1)*scale) of the input */
            double lo = o * scale, hi = (o + 1) * scale;
            int i0 = (int)floor(lo), i1 = (int)ceil(hi);
            if (i1 > n) i1 = n;
            if (i1 - i0 > a->taps) i1 = i0 + a->taps;   /* cannot happen; keeps w in bounds */
            a->first[j] = i0;
            a->len[j] = i1 - i0;
            for (int i = i0; i < i1; i++)
                w[i - i0] = (float)((fmin(i + 1, hi) - fmax(i, lo)) / scale);
        } else {
            /* bilinear, align_corners=False: sample at (o+0.5)*scale-0.5, clamped */
            double s = (o + 0.5) * scale - 0.5;
            if (s < 0) s = 0;
            int i0 = (int)floor(s);
            if (i0 >= n - 1) {
                a->first[j] = n - 1;
                a->len[j] = 1;
                w[0] = 1;
            } else {
                a->first[j] = i0;
                a->len[j] = 2;
                w[0] = (float)(1 - (s - i0));
                w[1] = (float)(s - i0);
            }
        }
    }
    return 0;
}

int img_resize_crop(img_t *dst, const img_t *src, int S, char err[256])
{
    if (dst == src) return img_fail(err, IMG_EINVAL, "img_resize_crop", "dst is src");
    memset(dst, 0, sizeof *dst);
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0)
        return img_fail(err, IMG_EINVAL, "img_resize_crop", "no source image");
    if (S <= 0 || S > IMG_MAX_SIDE)
        return img_fail(err, IMG_EINVAL, "img_resize_crop", "bad size %d", S);
    int w = src->w, h = src->h, shorter = w < h ? w : h;
    int W = w == shorter ? S : (int)((int64_t)w * S / shorter);
    int H = h == shorter ? S : (int)((int64_t)h * S / shorter);
    axis_t ax = {0}, ay = {0};
    float *tmp = NULL;
    int rc = img_init(dst, S, S, err);
    if (rc) return rc;
    if (axis_init(&ax, w, W, (W - S) / 2, S) || axis_init(&ay, h, H, (H - S) / 2, S)) {
        rc = img_fail(err, IMG_ENOMEM, "img_resize_crop", "out of memory");
        goto done;
    }
    /* horizontal pass over the source rows the vertical pass reads */
    int y0 = ay.first[0], y1 = ay.first[S - 1] + ay.len[S - 1];
    tmp = malloc((size_t)(y1 - y0) * S * 3 * sizeof(float));
    if (!tmp) {
        rc = img_fail(err, IMG_ENOMEM, "img_resize_crop", "out of memory");
        goto done;
    }
    for (int y = y0; y < y1; y++) {
        const uint8_t *in = src->rgb + (size_t)y * w * 3;
        float *out = tmp + (size_t)(y - y0) * S * 3;
        for (int x = 0; x < S; x++) {
            const float *wt = ax.w + (size_t)x * ax.taps;
            const uint8_t *p = in + (size_t)ax.first[x] * 3;
            float r = 0, g = 0, b = 0;
            for (int k = 0; k < ax.len[x]; k++) {
                r += wt[k] * p[3 * k];
                g += wt[k] * p[3 * k + 1];
                b += wt[k] * p[3 * k + 2];
            }
            out[3 * x] = r;
            out[3 * x + 1] = g;
            out[3 * x + 2] = b;
        }
    }
    /* vertical pass, rounded once */
    for (int y = 0; y < S; y++) {
        const float *wt = ay.w + (size_t)y * ay.taps;
        uint8_t *out = dst->rgb + (size_t)y * S * 3;
        for (int i = 0; i < S * 3; i++) {
            float v = 0;
            for (int k = 0; k < ay.len[y]; k++)
                v += wt[k] * tmp[(size_t)(ay.first[y] + k - y0) * S * 3 + i];
            v = floorf(v + 0.5f);
            out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
done:
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    if (rc) img_deinit(dst);
    return rc;
}

/* ---------------------------------------------------------------- float planes */

void img_to_planar(const img_t *img, float *out, size_t plane_stride)
{
    size_t n = (size_t)img->w * img->h;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++)
            out[c * plane_stride + i] = img->rgb[3 * i + c] / 127.5f - 1.0f;
}

void img_from_planar(img_t *img, const float *in, size_t plane_stride)
{
    size_t n = (size_t)img->w * img->h;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++) {
            float v = (in[c * plane_stride + i] + 1.0f) * 127.5f;
            /* written so NaN fails both tests and becomes 0 */
            img->rgb[3 * i + c] = !(v > 0) ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5f);
        }
}

/* ---------------------------------------------------------------- grids */

int img_grid(img_t *dst, const img_t *tiles, int n, int cols, int pad, char err[256])
{
    memset(dst, 0, sizeof *dst);
    if (n <= 0 || !tiles || pad < 0 || pad > IMG_MAX_SIDE)
        return img_fail(err, IMG_EINVAL, "img_grid", "bad arguments (n %d, pad %d)", n, pad);
    int tw = tiles[0].w, th = tiles[0].h;
    for (int i = 0; i < n; i++)
        if (!tiles[i].rgb || tiles[i].w != tw || tiles[i].h != th || tw <= 0 || th <= 0)
            return img_fail(err, IMG_EINVAL, "img_grid", "tile %d is %dx%d, tile 0 is %dx%d", i,
                            tiles[i].w, tiles[i].h, tw, th);
    if (cols <= 0)
        for (cols = 1; cols * cols < n; cols++) {}
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    int64_t W = (int64_t)cols * (tw + pad) + pad, H = (int64_t)rows * (th + pad) + pad;
    int rc = img_check_size(W, H, "img_grid", err);
    if (rc) return rc;
    if ((rc = img_init(dst, (int)W, (int)H, err)) != 0) return rc;
    memset(dst->rgb, 255, (size_t)W * H * 3);
    for (int i = 0; i < n; i++) {
        int x0 = pad + (i % cols) * (tw + pad), y0 = pad + (i / cols) * (th + pad);
        for (int y = 0; y < th; y++)
            memcpy(dst->rgb + ((size_t)(y0 + y) * W + x0) * 3,
                   tiles[i].rgb + (size_t)y * tw * 3, (size_t)tw * 3);
    }
    return 0;
}
