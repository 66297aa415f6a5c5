/* JPEG decoding through libjpeg(-turbo) to RGB8.
 *
 * libjpeg reports errors through error_exit, which here longjmps back to
 * jpeg_read_body. As in image_png.c, all state lives in a jpeg_dec_t owned by the
 * caller, so the error path frees everything without volatile locals.
 *
 * libjpeg only warns about damaged entropy-coded data and about a file that ends early
 * (it then fills the rest of the image with grey). A training image like that is
 * garbage, so those warnings are errors here.
 *
 * Phones and cameras store pixels as the sensor saw them and say in the EXIF orientation
 * tag how to turn them upright; every viewer does, so the image is turned here too (a
 * dataset of phone photos would otherwise train on sideways pictures). */
#include "data/image_internal.h"

#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* A progressive JPEG may hold any number of scans, each a pass over the whole image;
 * real ones have about 10. */
#define MAX_SCANS 1000

typedef struct {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_source_mgr smgr;
    struct jpeg_progress_mgr prog;
    jmp_buf jmp;
    img_src_t *src;
    img_t *img;
    uint8_t *row;              /* grayscale scanline */
    int orientation;           /* EXIF 1..8, 1 upright */
    uint8_t fbuf[16384];       /* file read buffer */
    char msg[JMSG_LENGTH_MAX];
} jpeg_dec_t;

static void fail_jump(j_common_ptr c)
{
    jpeg_dec_t *d = c->client_data;
    c->err->format_message(c, d->msg);
    longjmp(d->jmp, 1);
}

static void on_error_exit(j_common_ptr c) { fail_jump(c); }

static void on_emit_message(j_common_ptr c, int level)
{
    if (level != -1) return;   /* trace messages */
    switch (c->err->msg_code) {
    case JWRN_JPEG_EOF:
        ((jpeg_dec_t *)c->client_data)->src->eof = 1;
        /* fall through */
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
        fail_jump(c);
        break;
    default:
        break;   /* harmless ones (unknown JFIF revision, extraneous bytes, ...) */
    }
}

static void on_output_message(j_common_ptr c) { (void)c; }

static void on_progress(j_common_ptr c)
{
    j_decompress_ptr cinfo = (j_decompress_ptr)c;
    if (cinfo->input_scan_number > MAX_SCANS) {
        jpeg_dec_t *d = c->client_data;
        snprintf(d->msg, sizeof d->msg, "more than %d scans", MAX_SCANS);
        longjmp(d->jmp, 1);
    }
}

/* ---------------------------------------------------------------- source manager */

static void src_init(j_decompress_ptr c) { (void)c; }
static void src_term(j_decompress_ptr c) { (void)c; }

static boolean src_fill(j_decompress_ptr c)
{
    jpeg_dec_t *d = c->client_data;
    size_t n;
    const uint8_t *p = img_src_next(d->src, d->fbuf, sizeof d->fbuf, &n);
    if (n == 0) {
        d->src->eof = 1;
        ERREXIT(c, JERR_INPUT_EOF);
    }
    d->smgr.next_input_byte = p;
    d->smgr.bytes_in_buffer = n;
    return TRUE;
}

static void src_skip(j_decompress_ptr c, long n)
{
    jpeg_dec_t *d = c->client_data;
    if (n <= 0) return;
    while ((size_t)n > d->smgr.bytes_in_buffer) {
        n -= (long)d->smgr.bytes_in_buffer;
        d->smgr.bytes_in_buffer = 0;
        src_fill(c);
    }
    d->smgr.next_input_byte += n;
    d->smgr.bytes_in_buffer -= (size_t)n;
}

/* ---------------------------------------------------------------- EXIF orientation */

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Tag 0x0112 of IFD0 in the first APP1 "Exif" segment; 1 when absent, out of range or
 * unreadable (a damaged EXIF block does not make the pixels unreadable). */
static int exif_orientation(j_decompress_ptr c)
{
    for (jpeg_saved_marker_ptr m = c->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 + 8 ||
            memcmp(m->data, "Exif\0\0", 6) != 0)
            continue;
        const uint8_t *t = m->data + 6; /* the TIFF header; offsets count from it */
        size_t n = m->data_length - 6;
        int le = t[0] == 'I' && t[1] == 'I';
        if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
        if (rd16(t + 2, le) != 42) return 1;
        size_t ifd = rd32(t + 4, le);
        if (ifd + 2 > n) return 1;
        unsigned count = rd16(t + ifd, le);
        for (size_t e = ifd + 2; count-- > 0 && e + 12 <= n; e += 12)
            if (rd16(t + e, le) == 0x0112) {
                unsigned v = rd16(t + e + 2, le) == 3 ? rd16(t + e + 8, le) : 1; /* SHORT */
                return v >= 1 && v <= 8 ? (int)v : 1;
            }
        return 1;
    }
    return 1;
}

/* Turns img upright for EXIF orientation o: 2 mirrored, 3 upside down, 4 flipped, 5
 * transposed, 6 to be turned 90 degrees clockwise, 7 transversed, 8 turned
 * counter-clockwise. 5-8 swap width and height. */
static int orient(img_t *img, int o, const char *name, char *err)
{
    if (o <= 1) return 0;
    const int w = img->w, h = img->h, swap = o >= 5;
    const int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *out = malloc((size_t)w * (size_t)h * 3);
    if (!out) return img_fail(err, IMG_ENOMEM, name, "out of memory turning the image upright");
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int ix, iy; /* the stored pixel shown at (ox, oy) */
            switch (o) {
            case 2: ix = w - 1 - ox; iy = oy; break;
            case 3: ix = w - 1 - ox; iy = h - 1 - oy; break;
            case 4: ix = ox; iy = h - 1 - oy; break;
            case 5: ix = oy; iy = ox; break;
            case 6: ix = oy; iy = h - 1 - ox; break;
            case 7: ix = w - 1 - oy; iy = h - 1 - ox; break;
            default: ix = w - 1 - oy; iy = ox; break; /* 8 */
            }
            memcpy(out + ((size_t)oy * ow + ox) * 3, img->rgb + ((size_t)iy * w + ix) * 3, 3);
        }
    free(img->rgb);
    img->rgb = out;
    img->w = ow;
    img->h = oh;
    return 0;
}

/* ---------------------------------------------------------------- decoding */

static int jpeg_read_body(jpeg_dec_t *d, char *err)
{
    const char *name = d->src->name;
    j_decompress_ptr c = &d->cinfo;
    if (setjmp(d->jmp)) {
        if (d->src->read_errno)
            return img_fail(err, IMG_EIO, name, "read failed (%s)", strerror(d->src->read_errno));
        return img_fail(err, IMG_ECORRUPT, name, "%s JPEG (libjpeg: %s)",
                        d->src->eof ? "truncated" : "corrupt", d->msg);
    }
    jpeg_create_decompress(c);
    c->src = &d->smgr;
    c->progress = &d->prog;
    jpeg_save_markers(c, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(c, TRUE);
    d->orientation = exif_orientation(c);

    int rc = img_check_size(c->image_width, c->image_height, name, err);
    if (rc) return rc;
    if (c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK)
        return img_fail(err, IMG_EFORMAT, name, "CMYK JPEG is not supported (convert it to RGB)");
    int gray = c->num_components == 1;
    c->out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(c);
    if (c->output_width != c->image_width || c->output_height != c->image_height ||
        c->output_components != (gray ? 1 : 3))
        return img_fail(err, IMG_ECORRUPT, name, "unexpected JPEG output layout");

    int w = (int)c->output_width, h = (int)c->output_height;
    if ((rc = img_init(d->img, w, h, err)) != 0)
        return img_fail(err, rc, name, "out of memory for %dx%d pixels", w, h);
    if (gray && !(d->row = malloc((size_t)w)))
        return img_fail(err, IMG_ENOMEM, name, "out of memory");
    while (c->output_scanline < c->output_height) {
        uint8_t *out = d->img->rgb + (size_t)c->output_scanline * w * 3;
        JSAMPROW r = gray ? d->row : out;
        if (jpeg_read_scanlines(c, &r, 1) != 1)
            return img_fail(err, IMG_ECORRUPT, name, "truncated JPEG");
        if (gray)
            for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = d->row[x];
    }
    return 0;
}

int img_jpeg_decode(img_t *img, img_src_t *src, char *err)
{
    memset(img, 0, sizeof *img);
    jpeg_dec_t *d = calloc(1, sizeof *d);
    if (!d) return img_fail(err, IMG_ENOMEM, src->name, "out of memory");
    d->src = src;
    d->img = img;
    d->cinfo.client_data = d;
    d->cinfo.err = jpeg_std_error(&d->jerr);
    d->jerr.error_exit = on_error_exit;
    d->jerr.emit_message = on_emit_message;
    d->jerr.output_message = on_output_message;
    d->smgr.init_source = src_init;
    d->smgr.fill_input_buffer = src_fill;
    d->smgr.skip_input_data = src_skip;
    d->smgr.resync_to_restart = jpeg_resync_to_restart;
    d->smgr.term_source = src_term;
    d->prog.progress_monitor = on_progress;
    int rc = jpeg_read_body(d, err);
    if (rc == 0) rc = orient(img, d->orientation, src->name, err);
    jpeg_destroy_decompress(&d->cinfo);
    free(d->row);
    free(d);
    if (rc) img_deinit(img);
    return rc;
}
