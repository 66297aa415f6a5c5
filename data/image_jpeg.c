/* JPEG decoding through libjpeg(-turbo) to RGB8.
 *
 * libjpeg reports errors through error_exit, which here longjmps back to
 * jpeg_read_body. As in image_png.c, all state lives in a jpeg_dec_t owned by the
 * caller, so the error path frees everything without volatile locals.
 *
 * libjpeg only warns about damaged entropy-coded data and about a file that ends early
 * (it then fills the rest of the image with grey). A training image like that is
 * garbage, so those warnings are errors here. */
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
    jpeg_read_header(c, TRUE);

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
    jpeg_destroy_decompress(&d->cinfo);
    free(d->row);
    free(d);
    if (rc) img_deinit(img);
    return rc;
}
