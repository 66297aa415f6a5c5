/* Image I/O: every kind of PNG written here with libpng and read back with exact
 * expected pixels (white compositing included), JPEG round trips, text chunks,
 * truncated / corrupted / foreign files, atomic saving and its failures, resize + crop,
 * float conversion and grids. */
#include "data/data.h"
#include "tests/testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <jpeglib.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static char *tmp_path(const char *name)
{
    static char buf[128][512];   /* enough for every path this test makes */
    static int k;
    char *p = buf[k++ % 128];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

static void write_all(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(b, 1, n, fp) != n || fclose(fp) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* An error names the file first: "NAME: problem". */
static int err_names(int rc, const char *err, const char *name)
{
    size_t n = strlen(name);
    return rc < 0 && strncmp(err, name, n) == 0 && err[n] == ':' && err[n + 1] == ' ' &&
           strlen(err) > n + 2;
}

static int count_tmp_leftovers(void)
{
    DIR *d = opendir(test_tmpdir());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) n++;
    if (d) closedir(d);
    return n;
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Recomputes the CRC of every complete chunk, so damage reaches the decoder proper. */
static void fix_crcs(uint8_t *b, size_t n)
{
    size_t p = 8;
    while (p + 12 <= n) {
        uint32_t len = be32(b + p);
        if (len > n - p - 12) break;
        put_be32(b + p + 8 + len, crc32_png(b + p + 4, len + 4));
        p += 12 + len;
    }
}

static int has_chunk(const uint8_t *b, size_t n, const char *type)
{
    size_t p = 8;
    while (p + 12 <= n) {
        uint32_t len = be32(b + p);
        if (memcmp(b + p + 4, type, 4) == 0) return 1;
        if (len > n - p - 12) break;
        p += 12 + len;
    }
    return 0;
}

/* ---------------------------------------------------------------- PNG writer (libpng) */

typedef struct {
    const char *label;
    int color, depth;
    int trns;        /* palette: partial alpha table; gray/RGB: one transparent colour */
    int interlace;
} png_kind_t;

/* Writes a w x h PNG of the kind with samples s (channels per pixel as the colour type,
 * values < 2^depth; palette: indices) and returns the expected RGB8 pixels. */
static uint8_t *make_png(const char *path, const png_kind_t *k, int w, int h,
                         const png_text *text, int n_text_before, int n_text_after)
{
    int nch = k->color == PNG_COLOR_TYPE_GRAY ? 1 : k->color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
            : k->color == PNG_COLOR_TYPE_RGB ? 3 : k->color == PNG_COLOR_TYPE_RGBA ? 4 : 1;
    int pal = k->color == PNG_COLOR_TYPE_PALETTE;
    uint32_t M = (1u << k->depth) - 1;
    int npal = pal ? (k->depth == 8 ? 200 : (1 << k->depth)) : 0;
    png_color palette[256];
    uint8_t palpha[256];
    for (int i = 0; i < npal; i++) {
        palette[i].red = (uint8_t)rnd(); palette[i].green = (uint8_t)rnd();
        palette[i].blue = (uint8_t)rnd();
        palpha[i] = i == 0 ? 0 : i == 1 ? 255 : (uint8_t)rnd();
    }
    int ntrans = pal && k->trns ? npal / 2 : 0;
    png_color_16 tc = {0};
    uint32_t tval[3] = {(uint32_t)rnd() & M, (uint32_t)rnd() & M, (uint32_t)rnd() & M};
    tc.gray = (png_uint_16)tval[0];
    tc.red = (png_uint_16)tval[0]; tc.green = (png_uint_16)tval[1]; tc.blue = (png_uint_16)tval[2];

    uint32_t *s = malloc(sizeof(uint32_t) * w * h * nch);
    uint8_t *want = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) {
        uint32_t *p = s + i * nch;
        for (int c = 0; c < nch; c++) p[c] = pal ? rnd() % npal : rnd() & M;
        if (nch == 2 || nch == 4) {   /* exercise alpha 0 and full alpha */
            if (i % 5 == 0) p[nch - 1] = 0;
            if (i % 5 == 1) p[nch - 1] = M;
        }
        if (k->trns && !pal && i % 3 == 0)
            for (int c = 0; c < nch; c++) p[c] = tval[c];
        double rgb[3], a = 1;
        if (pal) {
            rgb[0] = palette[p[0]].red / 255.0; rgb[1] = palette[p[0]].green / 255.0;
            rgb[2] = palette[p[0]].blue / 255.0;
            if ((int)p[0] < ntrans) a = palpha[p[0]] / 255.0;
        } else {
            for (int c = 0; c < 3; c++) rgb[c] = p[nch >= 3 ? c : 0] / (double)M;
            if (nch == 2 || nch == 4) a = p[nch - 1] / (double)M;
            if (k->trns) {
                int same = 1;
                for (int c = 0; c < nch; c++) same &= p[c] == tval[c];
                if (same) a = 0;
            }
        }
        for (int c = 0; c < 3; c++)
            want[3 * i + c] = (uint8_t)floor(255.0 * (a * rgb[c] + (1 - a)) + 0.5);
    }

    FILE *fp = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    size_t rowbytes = ((size_t)w * nch * k->depth + 7) / 8;
    uint8_t *row = calloc(rowbytes, 1);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "libpng failed writing %s\n", path);
        exit(1);
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, k->depth, k->color,
                 k->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, palette, npal);
    if (ntrans) png_set_tRNS(png, info, palpha, ntrans, NULL);
    if (k->trns && !pal) png_set_tRNS(png, info, NULL, 0, &tc);
    if (n_text_before) png_set_text(png, info, text, n_text_before);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) {
            memset(row, 0, rowbytes);
            for (int x = 0; x < w * nch; x++) {
                uint32_t v = s[y * w * nch + x];
                if (k->depth == 16) {
                    row[2 * x] = (uint8_t)(v >> 8);
                    row[2 * x + 1] = (uint8_t)v;
                } else if (k->depth == 8) {
                    row[x] = (uint8_t)v;
                } else {
                    int bit = x * k->depth;
                    row[bit / 8] |= (uint8_t)(v << (8 - k->depth - bit % 8));
                }
            }
            png_write_row(png, row);
        }
    if (n_text_after) png_set_text(png, info, text + n_text_before, n_text_after);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
    free(row);
    free(s);
    return want;
}

static const png_kind_t kinds[] = {
    {"gray 1-bit", PNG_COLOR_TYPE_GRAY, 1, 0, 0},
    {"gray 2-bit", PNG_COLOR_TYPE_GRAY, 2, 0, 0},
    {"gray 4-bit", PNG_COLOR_TYPE_GRAY, 4, 0, 0},
    {"gray 8", PNG_COLOR_TYPE_GRAY, 8, 0, 0},
    {"gray 16", PNG_COLOR_TYPE_GRAY, 16, 0, 0},
    {"gray 8 tRNS", PNG_COLOR_TYPE_GRAY, 8, 1, 0},
    {"gray 16 tRNS", PNG_COLOR_TYPE_GRAY, 16, 1, 0},
    {"gray 2-bit tRNS", PNG_COLOR_TYPE_GRAY, 2, 1, 0},
    {"gray+alpha 8", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0},
    {"gray+alpha 16", PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 0},
    {"RGB 8", PNG_COLOR_TYPE_RGB, 8, 0, 0},
    {"RGB 16", PNG_COLOR_TYPE_RGB, 16, 0, 0},
    {"RGB 8 tRNS", PNG_COLOR_TYPE_RGB, 8, 1, 0},
    {"RGB 16 tRNS", PNG_COLOR_TYPE_RGB, 16, 1, 0},
    {"RGBA 8", PNG_COLOR_TYPE_RGBA, 8, 0, 0},
    {"RGBA 16", PNG_COLOR_TYPE_RGBA, 16, 0, 0},
    {"palette 8", PNG_COLOR_TYPE_PALETTE, 8, 0, 0},
    {"palette 8 tRNS", PNG_COLOR_TYPE_PALETTE, 8, 1, 0},
    {"palette 4", PNG_COLOR_TYPE_PALETTE, 4, 0, 0},
    {"palette 1 tRNS", PNG_COLOR_TYPE_PALETTE, 1, 1, 0},
};

static void test_png_kinds(void)
{
    printf("PNG kinds\n");
    int nk = (int)(sizeof kinds / sizeof kinds[0]);
    for (int il = 0; il < 2; il++)
        for (int i = 0; i < nk; i++) {
            png_kind_t k = kinds[i];
            k.interlace = il;
            int w = 13 + i % 4, h = 9 + il * 3;   /* odd sizes: partial Adam7 blocks */
            char *path = tmp_path("kind.png");
            uint8_t *want = make_png(path, &k, w, h, NULL, 0, 0);
            img_t img;
            char err[256] = "";
            int rc = img_load(&img, path, err);
            int bad = -1;
            if (rc == 0 && img.w == w && img.h == h)
                for (int j = 0; j < w * h * 3 && bad < 0; j++)
                    if (img.rgb[j] != want[j]) bad = j;
            check(rc == 0 && img.w == w && img.h == h && bad < 0,
                  "%s%s: rc %d (%s) %dx%d, first wrong byte %d (got %d want %d)", k.label,
                  il ? " interlaced" : "", rc, err, img.w, img.h, bad,
                  bad >= 0 ? img.rgb[bad] : 0, bad >= 0 ? want[bad] : 0);
            printf("  %-18s %-10s %s\n", k.label, il ? "interlaced" : "", rc == 0 && bad < 0 ? "exact" : "FAIL");
            img_deinit(&img);
            free(want);
        }
}

/* ---------------------------------------------------------------- JPEG writer (libjpeg) */

/* With app1 (n bytes): that APP1 segment after the JFIF header, as cameras write EXIF. */
static void make_jpeg_app1(const char *path, const uint8_t *px, int w, int h, int comps,
                           int quality, int progressive, const uint8_t *app1, unsigned n)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    FILE *fp = fopen(path, "wb");
    jpeg_stdio_dest(&c, fp);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    if (app1) jpeg_write_marker(&c, JPEG_APP0 + 1, app1, n);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(fp);
}

static void make_jpeg(const char *path, const uint8_t *px, int w, int h, int comps,
                      int quality, int progressive)
{
    make_jpeg_app1(path, px, w, h, comps, quality, progressive, NULL, 0);
}

static uint8_t *gradient(int w, int h, int comps)
{
    uint8_t *p = malloc((size_t)w * h * comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                p[(y * w + x) * comps + c] =
                    (uint8_t)(c == 0 ? x * 255 / (w - 1) : c == 1 ? y * 255 / (h - 1)
                              : 64 + (x + y) * 2);
    return p;
}

static void put16(uint8_t *p, unsigned v, int big_endian)
{
    p[big_endian ? 0 : 1] = (uint8_t)(v >> 8);
    p[big_endian ? 1 : 0] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v, int big_endian)
{
    put16(p + (big_endian ? 0 : 2), v >> 16, big_endian);
    put16(p + (big_endian ? 2 : 0), v & 0xffff, big_endian);
}

/* An APP1 "Exif" segment whose IFD0 (at ifd_offset from the TIFF header: 8 is right
 * after it) holds one SHORT tag 0x0112 = orientation, Intel or Motorola byte order.
 * Returns its size, 32 bytes. */
static unsigned exif_block(uint8_t *b, int orientation, int big_endian, uint32_t ifd_offset)
{
    memcpy(b, "Exif\0\0", 6);
    uint8_t *t = b + 6; /* the TIFF header */
    memset(t, 0, 26);
    t[0] = t[1] = big_endian ? 'M' : 'I';
    put16(t + 2, 42, big_endian);
    put32(t + 4, ifd_offset, big_endian);
    put16(t + 8, 1, big_endian);                     /* one entry: */
    put16(t + 10, 0x0112, big_endian);               /* Orientation, */
    put16(t + 12, 3, big_endian);                    /* SHORT, */
    put32(t + 14, 1, big_endian);                    /* one value, */
    put16(t + 18, (unsigned)orientation, big_endian); /* left-aligned in its 4 bytes */
    return 32;                                       /* next IFD offset 0 */
}

/* Four flat quadrants (colours q[0..3]: top-left, top-right, bottom-left, bottom-right). */
static uint8_t *quadrants(int w, int h, const uint8_t q[4][3])
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(p + ((size_t)y * w + x) * 3, q[(y >= h / 2) * 2 + (x >= w / 2)], 3);
    return p;
}

/* A camera's JPEG: the stored pixels and an EXIF orientation saying how to turn them
 * upright. Whatever the orientation, the loaded image is the upright picture: 24x16,
 * red, green / blue, white. The stored corners for each orientation were worked out by
 * hand from the EXIF definitions, not by the decoder's own mapping. */
static void test_jpeg_exif(void)
{
    printf("JPEG EXIF orientation\n");
    enum { R, G, B, W };
    static const uint8_t colour[4][3] = {{230, 20, 20}, {20, 200, 20}, {20, 20, 230}, {245, 245, 245}};
    static const int stored[9][4] = {
        {0}, {R, G, B, W}, {G, R, W, B}, {W, B, G, R}, {B, W, R, G},
        {R, B, G, W}, {G, W, R, B}, {W, G, B, R}, {B, R, W, G},
    };
    for (int o = 1; o <= 8; o++)
        for (int be = 0; be < 2; be++) {
            uint8_t q[4][3], app1[64];
            for (int k = 0; k < 4; k++) memcpy(q[k], colour[stored[o][k]], 3);
            int sw = o >= 5 ? 16 : 24, sh = o >= 5 ? 24 : 16;
            uint8_t *px = quadrants(sw, sh, q);
            char *path = tmp_path("exif.jpg");
            make_jpeg_app1(path, px, sw, sh, 3, 95, 0, app1, exif_block(app1, o, be, 8));
            free(px);
            img_t img;
            char err[256] = "";
            int rc = img_load(&img, path, err);
            int ok = rc == 0 && img.w == 24 && img.h == 16;
            for (int k = 0; ok && k < 4; k++) {
                int x = k % 2 ? 18 : 6, y = k / 2 ? 12 : 4; /* quadrant centres */
                for (int c = 0; c < 3; c++)
                    ok &= abs(img.rgb[(y * 24 + x) * 3 + c] - colour[k][c]) <= 12;
            }
            check(ok, "orientation %d (%s): rc %d %s, %dx%d, not the upright picture", o,
                  be ? "big-endian" : "little-endian", rc, err, img.w, img.h);
            img_deinit(&img);
        }
    printf("  orientations 1-8, both byte orders: upright 24x16\n");

    /* A damaged or odd EXIF block leaves the pixels as stored, readable. */
    uint8_t q[4][3], app1[64];
    memcpy(q, colour, sizeof q);
    uint8_t *px = quadrants(24, 16, q);
    struct { int orientation; uint32_t ifd; unsigned cut; const char *what; } bad[] = {
        {9, 8, 0, "orientation 9"},
        {0, 8, 0, "orientation 0"},
        {6, 0xfffffff0u, 0, "IFD0 offset past the end"},
        {6, 8, 12, "entry cut short"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = tmp_path("exif-bad.jpg");
        unsigned n = exif_block(app1, bad[i].orientation, 0, bad[i].ifd);
        make_jpeg_app1(path, px, 24, 16, 3, 95, 0, app1, n - bad[i].cut);
        img_t img;
        char err[256] = "";
        int rc = img_load(&img, path, err);
        check(rc == 0 && img.w == 24 && img.h == 16 && img.rgb[(4 * 24 + 6) * 3] > 200,
              "%s: rc %d %s, %dx%d, not the stored picture", bad[i].what, rc, err, img.w, img.h);
        img_deinit(&img);
    }
    free(px);
    printf("  orientation 0 and 9, an IFD0 out of the segment, a cut entry: pixels as stored\n");
}

static void test_jpeg(void)
{
    printf("JPEG\n");
    int w = 48, h = 40;
    for (int prog = 0; prog < 2; prog++)
        for (int comps = 1; comps <= 3; comps += 2) {
            uint8_t *src = gradient(w, h, comps);
            char *path = tmp_path("grad.jpg");
            make_jpeg(path, src, w, h, comps, 95, prog);
            img_t img;
            char err[256] = "";
            int rc = img_load(&img, path, err);
            double worst = 0, sum = 0;
            int gray_ok = 1;
            if (rc == 0 && img.w == w && img.h == h)
                for (int i = 0; i < w * h; i++)
                    for (int c = 0; c < 3; c++) {
                        double d = fabs((double)img.rgb[3 * i + c] - src[i * comps + (comps == 1 ? 0 : c)]);
                        worst = fmax(worst, d);
                        sum += d;
                        if (comps == 1) gray_ok &= img.rgb[3 * i + c] == img.rgb[3 * i];
                    }
            double mean = sum / (w * h * 3);
            printf("  %s %s: max abs err %.0f, mean %.2f (tol 12, 2)\n", comps == 1 ? "gray" : "colour",
                   prog ? "progressive" : "baseline", worst, mean);
            check(rc == 0 && img.w == w && img.h == h && worst <= 12 && mean <= 2 && gray_ok,
                  "JPEG %d comps prog %d: rc %d (%s)", comps, prog, rc, err);
            img_deinit(&img);
            free(src);
        }
    /* CMYK is refused with a message that says so */
    uint8_t *src = gradient(16, 16, 4);
    char *path = tmp_path("cmyk.jpg");
    make_jpeg(path, src, 16, 16, 4, 90, 0);
    img_t img;
    char err[256] = "";
    /* the format comes from the bytes, not the name */
    size_t n;
    uint8_t *bytes = read_all(tmp_path("grad.jpg"), &n);
    write_all(tmp_path("really-a-jpeg.png"), bytes, n);
    free(bytes);
    int rc = img_load(&img, tmp_path("really-a-jpeg.png"), err);
    check(rc == 0 && img.w == 48, "a JPEG named .png loads: rc %d %s", rc, err);
    img_deinit(&img);
    rc = img_load(&img, path, err);
    check(rc == IMG_EFORMAT && err_names(rc, err, path) && strstr(err, "CMYK") && !img.rgb,
          "CMYK JPEG: rc %d, message \"%s\"", rc, err);
    printf("  CMYK: %s\n", err);
    free(src);
}

/* ---------------------------------------------------------------- foreign inputs */

static void expect_error(const char *label, const char *path, int want_rc, const char *word)
{
    img_t img;
    char err[256] = "";
    int rc = img_load(&img, path, err);
    check(rc == want_rc && err_names(rc, err, path) && (!word || strstr(err, word)) &&
              !img.rgb && img.w == 0,
          "%s: rc %d (want %d), message \"%s\"", label, rc, want_rc, err);
    printf("  %-14s %s\n", label, err);
}

static void test_foreign(void)
{
    printf("foreign and missing files\n");
    char *p = tmp_path("empty.png");
    write_all(p, "", 0);
    expect_error("empty file", p, IMG_EFORMAT, "empty");
    p = tmp_path("notes.png");
    write_all(p, "hello, this is not an image\n", 28);
    expect_error("text file", p, IMG_EFORMAT, "not a PNG or JPEG");
    p = tmp_path("anim.png");
    write_all(p, "GIF89a\x01\0\x01\0\0\0\0;", 14);
    expect_error("GIF", p, IMG_EFORMAT, "GIF");
    p = tmp_path("short.png");
    write_all(p, "\x89PN", 3);
    expect_error("short PNG", p, IMG_ECORRUPT, "truncated");
    p = tmp_path("header-only.png");
    write_all(p, "\x89PNG\r\n\x1a\n", 8);
    expect_error("signature only", p, IMG_ECORRUPT, "truncated PNG");
    p = tmp_path("soi.jpg");
    write_all(p, "\xff\xd8\xff", 3);
    expect_error("JPEG SOI only", p, IMG_ECORRUPT, "truncated JPEG");
    expect_error("missing file", tmp_path("no-such-file.png"), IMG_EIO, "No such file");
    expect_error("directory", test_tmpdir(), IMG_EIO, "directory");

    img_t img;
    char err[256] = "";
    int rc = img_load_mem(&img, NULL, 0, "upload", err);
    check(rc == IMG_EFORMAT && err_names(rc, err, "upload"), "empty buffer: rc %d \"%s\"", rc, err);
    rc = img_load_mem(&img, "RIFF\0\0\0\0WEBPVP8 ", 16, "upload", err);
    check(rc == IMG_EFORMAT && strstr(err, "WebP"), "WebP buffer: rc %d \"%s\"", rc, err);
}

/* ---------------------------------------------------------------- damage */

/* Decodes a damaged buffer: an error must name the file; a success must be a sane
 * image (and, when want is given, exactly that image). Returns 1 if it decoded. */
static int try_damaged(const uint8_t *b, size_t n, const char *name, const img_t *want,
                       int *bad)
{
    img_t img;
    char err[256] = "";
    int rc = img_load_mem(&img, b, n, name, err);
    if (rc != 0) {
        if (!err_names(rc, err, name) || img.rgb) {
            if ((*bad)++ < 3) printf("    bad error at n=%zu: rc %d \"%s\"\n", n, rc, err);
        }
        return 0;
    }
    int ok = img.w > 0 && img.h > 0 && img.rgb;
    if (want)
        ok &= img.w == want->w && img.h == want->h &&
              memcmp(img.rgb, want->rgb, (size_t)want->w * want->h * 3) == 0;
    if (!ok && (*bad)++ < 3) printf("    bad success at n=%zu: %dx%d\n", n, img.w, img.h);
    img_deinit(&img);
    return 1;
}

static void truncations(const char *label, const char *path, int every)
{
    size_t n;
    uint8_t *b = read_all(path, &n);
    img_t full;
    char err[256] = "";
    int rc = img_load_mem(&full, b, n, "full", err);
    check(rc == 0, "%s: the whole file decodes: %s", label, err);
    int bad = 0, decoded = 0, cuts = 0;
    for (size_t cut = 0; cut < n; cut += (size_t)every) {
        /* a fresh exact-size copy, so ASan sees any read past the end */
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        decoded += try_damaged(c, cut, "cut.img", &full, &bad);
        free(c);
        cuts++;
    }
    /* through the file reader too, at a few cuts */
    char *tp = tmp_path("cut-file.img");
    for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
        write_all(tp, b, cut);
        img_t img;
        rc = img_load(&img, tp, err);
        if (rc != 0 && !err_names(rc, err, tp) && bad++ < 3) printf("    file cut %zu: \"%s\"\n", cut, err);
        if (rc == 0) img_deinit(&img);
        if (n > 8 && b[1] == 'P') {   /* the text reader walks the whole PNG as well */
            img_text_t *t;
            int nt;
            rc = img_load_text(tp, &t, &nt, err);
            if (rc != 0 && !err_names(rc, err, tp) && bad++ < 3) printf("    text cut %zu: \"%s\"\n", cut, err);
            if (rc == 0) free(t);
        }
    }
    check(bad == 0, "%s truncations: %d bad outcomes", label, bad);
    printf("  %-26s %d cuts of %zu bytes: %d errors, %d decoded (only cuts after the image data)\n",
           label, cuts, n, cuts - decoded, decoded);
    img_deinit(&full);
    free(b);
}

static void flips(const char *label, const char *path, int trials, int png_crc)
{
    size_t n;
    uint8_t *b = read_all(path, &n);
    uint8_t *c = malloc(n);
    int bad = 0, decoded = 0;
    for (int t = 0; t < trials; t++) {
        memcpy(c, b, n);
        int k = 1 + (int)(rnd() % 3);
        for (int j = 0; j < k; j++) {
            /* most damage after the signature, so it reaches the decoders */
            size_t at = j == 0 && t % 2 ? 8 + rnd() % 60 : rnd() % n;
            if (at >= n) at = n - 1;
            c[at] ^= (uint8_t)(1 + rnd() % 255);
        }
        if (png_crc) fix_crcs(c, n);
        decoded += try_damaged(c, n, "flip.img", NULL, &bad);
    }
    check(bad == 0, "%s flips: %d bad outcomes", label, bad);
    printf("  %-26s %d damaged copies: %d errors, %d decoded\n", label, trials,
           trials - decoded, decoded);
    free(c);
    free(b);
}

static void test_damage(void)
{
    printf("truncated and corrupted files\n");
    png_kind_t rgba = {"RGBA 8", PNG_COLOR_TYPE_RGBA, 8, 0, 0};
    png_kind_t pal = {"palette 8 tRNS", PNG_COLOR_TYPE_PALETTE, 8, 1, 1};
    png_kind_t g16 = {"gray+alpha 16", PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 1};
    png_text t[1] = {{PNG_TEXT_COMPRESSION_zTXt, (png_charp)"Comment",
                      (png_charp)"some text in a zTXt chunk, some text in a zTXt chunk", 0, 0,
                      NULL, NULL}};
    char *p1 = tmp_path("d-rgba.png"), *p2 = tmp_path("d-pal.png"), *p3 = tmp_path("d-g16.png");
    free(make_png(p1, &rgba, 37, 23, t, 1, 0));
    free(make_png(p2, &pal, 30, 20, t, 0, 1));
    free(make_png(p3, &g16, 21, 17, NULL, 0, 0));
    char *j1 = tmp_path("d.jpg"), *j2 = tmp_path("d-prog.jpg");
    uint8_t *src = gradient(40, 33, 3);
    make_jpeg(j1, src, 40, 33, 3, 85, 0);
    make_jpeg(j2, src, 40, 33, 3, 85, 1);
    free(src);

    truncations("PNG RGBA", p1, 1);
    truncations("PNG palette interlaced", p2, 1);
    truncations("PNG gray+alpha16 interl.", p3, 1);
    truncations("JPEG baseline", j1, 1);
    truncations("JPEG progressive", j2, 1);
    flips("PNG RGBA", p1, 600, 0);
    flips("PNG RGBA, CRCs fixed", p1, 600, 1);
    flips("PNG palette, CRCs fixed", p2, 600, 1);
    flips("PNG gray+alpha16, CRCs f.", p3, 600, 1);
    flips("JPEG baseline", j1, 600, 0);
    flips("JPEG progressive", j2, 600, 0);

    /* absurd sizes are refused from the header */
    size_t n;
    uint8_t *b = read_all(p1, &n);
    struct { uint32_t w, h; } sizes[] = {{20000, 10}, {10, 16385}, {10000, 10000}, {0x7fffffff, 1}};
    for (int i = 0; i < 4; i++) {
        put_be32(b + 16, sizes[i].w);
        put_be32(b + 20, sizes[i].h);
        fix_crcs(b, n);
        img_t img;
        char err[256] = "";
        int rc = img_load_mem(&img, b, n, "huge.png", err);
        check(rc == IMG_ETOOBIG && err_names(rc, err, "huge.png"), "PNG %ux%u: rc %d \"%s\"",
              sizes[i].w, sizes[i].h, rc, err);
        if (i == 0) printf("  %s\n", err);
    }
    free(b);
    b = read_all(j1, &n);
    for (size_t i = 2; i + 9 < n; i++)
        if (b[i] == 0xff && b[i + 1] == 0xc0) {   /* SOF0: FFC0 len(2) prec(1) h(2) w(2) */
            b[i + 5] = 20000 >> 8; b[i + 6] = 20000 & 255;
            b[i + 7] = 20000 >> 8; b[i + 8] = 20000 & 255;
            break;
        }
    img_t img;
    char err[256] = "";
    int rc = img_load_mem(&img, b, n, "huge.jpg", err);
    check(rc == IMG_ETOOBIG && err_names(rc, err, "huge.jpg"), "JPEG 20000x20000: rc %d \"%s\"", rc, err);
    printf("  %s\n", err);
    free(b);
}

/* ---------------------------------------------------------------- saving and text */

static void noise(img_t *img, int w, int h)
{
    img_init(img, w, h, NULL);
    for (int i = 0; i < w * h * 3; i++) img->rgb[i] = (uint8_t)rnd();
}

static int same_image(const img_t *a, const img_t *b)
{
    return a->w == b->w && a->h == b->h && a->rgb && b->rgb &&
           memcmp(a->rgb, b->rgb, (size_t)a->w * a->h * 3) == 0;
}

static void test_save_and_text(void)
{
    printf("saving and text chunks\n");
    img_t img, back;
    noise(&img, 31, 17);
    char long_ascii[2001], long_utf8[1200];
    for (int i = 0; i < 2000; i++) long_ascii[i] = (char)('a' + i % 26);
    long_ascii[2000] = 0;
    long_utf8[0] = 0;
    while (strlen(long_utf8) + 12 < sizeof long_utf8) strcat(long_utf8, "画像 ü ");
    const img_text_t text[] = {
        {"prompt", "an armchair shaped like an avocado \xf0\x9f\xa5\x91 \xe2\x80\x94 caf\xc3\xa9"},
        {"seed", "42"},
        {"settings", long_ascii},
        {"notes", long_utf8},
        {"empty value", ""},
    };
    int nt = 5;
    char *path = tmp_path("saved.png");
    char err[256] = "";
    int rc = img_save_png(&img, path, text, nt, err);
    check(rc == 0, "save: %s", err);
    rc = img_load(&back, path, err);
    check(rc == 0 && same_image(&img, &back), "saved pixels come back exactly: rc %d %s", rc, err);
    img_deinit(&back);

    img_text_t *got = NULL;
    int ng = -1;
    rc = img_load_text(path, &got, &ng, err);
    int same = rc == 0 && ng == nt;
    for (int i = 0; same && i < nt; i++)
        same &= strcmp(got[i].key, text[i].key) == 0 && strcmp(got[i].value, text[i].value) == 0;
    check(same, "text round trip: rc %d (%s), %d chunks", rc, err, ng);
    check(rc == 0 && img_text_get(got, ng, "seed") && strcmp(img_text_get(got, ng, "seed"), "42") == 0 &&
              !img_text_get(got, ng, "nope"), "img_text_get");
    printf("  %d chunks round trip, prompt \"%s\"\n", ng, rc == 0 && ng > 0 ? got[0].value : "");
    free(got);

    size_t n;
    uint8_t *b = read_all(path, &n);
    check(has_chunk(b, n, "tEXt") && has_chunk(b, n, "iTXt") && has_chunk(b, n, "zTXt"),
          "saved file has tEXt (ASCII), iTXt (UTF-8) and zTXt (long ASCII) chunks");
    /* encode to memory gives the same bytes */
    uint8_t *mem;
    size_t mn;
    rc = img_encode_png(&img, text, nt, &mem, &mn, "mem", err);
    check(rc == 0 && mn == n && memcmp(mem, b, n) == 0, "img_encode_png equals the saved file");
    rc = img_load_mem(&back, mem, mn, "mem", err);
    check(rc == 0 && same_image(&img, &back), "load from memory: %s", err);
    img_deinit(&back);
    free(mem);
    free(b);

    /* tEXt is Latin-1 and comes back as UTF-8; chunks after the image data are found */
    png_kind_t k = {"RGB 8", PNG_COLOR_TYPE_RGB, 8, 0, 1};
    png_text lt[3] = {
        {PNG_TEXT_COMPRESSION_NONE, (png_charp)"Title", (png_charp)"caf\xe9 \xbd", 0, 0, NULL, NULL},
        {PNG_TEXT_COMPRESSION_zTXt, (png_charp)"Comment", (png_charp)"before the data", 0, 0, NULL, NULL},
        {PNG_ITXT_COMPRESSION_NONE, (png_charp)"after", (png_charp)"\xe6\x97\xa5\xe6\x9c\xac", 0, 0,
         (png_charp)"ja", (png_charp)""},
    };
    char *lp = tmp_path("latin1.png");
    free(make_png(lp, &k, 9, 9, lt, 2, 1));
    rc = img_load_text(lp, &got, &ng, err);
    check(rc == 0 && ng == 3 && strcmp(got[0].value, "caf\xc3\xa9 \xc2\xbd") == 0 &&
              strcmp(got[1].value, "before the data") == 0 && strcmp(got[2].key, "after") == 0 &&
              strcmp(got[2].value, "\xe6\x97\xa5\xe6\x9c\xac") == 0,
          "Latin-1 tEXt, zTXt, and iTXt after IDAT: rc %d (%s) n %d", rc, err, ng);
    free(got);

    /* no text at all; not a PNG */
    char *plain = tmp_path("plain.png");
    rc = img_save_png(&img, plain, NULL, 0, err);
    rc |= img_load_text(plain, &got, &ng, err);
    check(rc == 0 && ng == 0 && got == NULL, "PNG without text: rc %d n %d", rc, ng);
    uint8_t *g = gradient(8, 8, 3);
    char *jp = tmp_path("t.jpg");
    make_jpeg(jp, g, 8, 8, 3, 90, 0);
    free(g);
    rc = img_load_text(jp, &got, &ng, err);
    check(rc == IMG_EFORMAT && err_names(rc, err, jp) && !got, "text of a JPEG: rc %d \"%s\"", rc, err);

    /* bad keys and values are refused before anything is written */
    const img_text_t bad[][1] = {
        {{"", "x"}}, {{" lead", "x"}}, {{"trail ", "x"}}, {{"two  spaces", "x"}},
        {{"tab\tkey", "x"}}, {{"k\xc3\xa9y", "x"}},
        {{"a123456789b123456789c123456789d123456789e123456789f123456789g123456789h1234567890", "x"}},
        {{"prompt", "bad \xff utf-8"}}, {{"prompt", "overlong \xc0\xaf"}}, {{"prompt", "cut \xe6\x97"}},
        {{"prompt", "surrogate \xed\xa0\x80"}},
    };
    int nbad = (int)(sizeof bad / sizeof bad[0]);
    int refused = 0;
    char *bp = tmp_path("bad-text.png");
    for (int i = 0; i < nbad; i++) {
        rc = img_save_png(&img, bp, bad[i], 1, err);
        struct stat st;
        refused += rc == IMG_EINVAL && err_names(rc, err, bp) && stat(bp, &st) != 0;
        if (i == 0 || i == 7) printf("  %s\n", err);
    }
    check(refused == nbad, "bad text keys/values refused: %d of %d", refused, nbad);

    /* unwritable paths: a missing directory, an existing directory */
    char *missing = tmp_path("no-such-dir/out.png");
    rc = img_save_png(&img, missing, NULL, 0, err);
    check(rc == IMG_EIO && err_names(rc, err, missing), "save into a missing dir: rc %d \"%s\"", rc, err);
    printf("  %s\n", err);
    char *dir = tmp_path("a-dir");
    mkdir(dir, 0700);
    rc = img_save_png(&img, dir, NULL, 0, err);
    check(rc == IMG_EIO && err_names(rc, err, dir), "save over a directory: rc %d \"%s\"", rc, err);
    printf("  %s\n", err);

    /* a full disk (a file size limit: writes fail with EFBIG) leaves the old file alone */
    img_t big;
    noise(&big, 96, 96);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        rc = img_save_png(&big, path, text, 2, err);
        setrlimit(RLIMIT_FSIZE, &old);
        check(rc == IMG_EIO && err_names(rc, err, path) && strstr(err, "write failed"),
              "save on a full disk: rc %d \"%s\"", rc, err);
        printf("  %s\n", err);
        rc = img_load(&back, path, err);
        check(rc == 0 && same_image(&img, &back), "the previous file is intact after the failed save");
        img_deinit(&back);
    } else {
        printf("  (setrlimit failed; full-disk case skipped)\n");
    }
    check(count_tmp_leftovers() == 0, "no temporary files left behind (%d)", count_tmp_leftovers());

    /* replacing an existing file works */
    rc = img_save_png(&big, path, NULL, 0, err);
    rc |= img_load(&back, path, err);
    check(rc == 0 && same_image(&big, &back), "save replaces an existing file");
    img_deinit(&back);
    img_deinit(&big);
    img_deinit(&img);
}

/* ---------------------------------------------------------------- pixel operations */

static void test_resize(void)
{
    printf("resize + centre crop\n");
    const int S = 16;
    img_t a, out;
    char err[256] = "";
    noise(&a, S, S);
    int rc = img_resize_crop(&out, &a, S, err);
    check(rc == 0 && same_image(&a, &out), "S x S passes through unchanged");
    img_deinit(&out);
    img_deinit(&a);

    /* 2S x 2S: exact 2x2 block means, rounded half up */
    noise(&a, 2 * S, 2 * S);
    rc = img_resize_crop(&out, &a, S, err);
    int bad = rc != 0;
    for (int y = 0; !bad && y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        s += a.rgb[((2 * y + dy) * 2 * S + 2 * x + dx) * 3 + c];
                bad += out.rgb[(y * S + x) * 3 + c] != (s + 2) / 4;
            }
    check(!bad, "2S x 2S averages exact 2x2 blocks (%d wrong)", bad);
    img_deinit(&out);
    img_deinit(&a);

    /* non-square with the shorter side already S: the centre columns, unchanged */
    noise(&a, 2 * S + 3, S);
    rc = img_resize_crop(&out, &a, S, err);
    bad = rc != 0;
    int off = (2 * S + 3 - S) / 2;
    for (int y = 0; !bad && y < S; y++)
        bad += memcmp(out.rgb + y * S * 3, a.rgb + (y * a.w + off) * 3, S * 3) != 0;
    check(!bad, "(2S+3) x S keeps columns %d..%d", off, off + S - 1);
    img_deinit(&out);
    img_deinit(&a);

    /* tall 2S x 4S: halve, then the centre rows of the 2x2 means */
    noise(&a, 2 * S, 4 * S);
    rc = img_resize_crop(&out, &a, S, err);
    bad = rc != 0;
    off = (2 * S - S) / 2;
    for (int y = 0; !bad && y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0, yy = 2 * (y + off);
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) s += a.rgb[((yy + dy) * 2 * S + 2 * x + dx) * 3 + c];
                bad += out.rgb[(y * S + x) * 3 + c] != (s + 2) / 4;
            }
    check(!bad, "2S x 4S: 2x2 means of rows %d..%d", 2 * off, 2 * (off + S) - 1);
    img_deinit(&out);
    img_deinit(&a);

    /* fractional coverage: 3 -> 2 is (p0 + p1/2)/1.5 and (p1/2 + p2)/1.5 per axis */
    img_init(&a, 3, 3, NULL);
    const int v[3] = {0, 90, 255};
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
            for (int c = 0; c < 3; c++) a.rgb[(y * 3 + x) * 3 + c] = (uint8_t)(c == 0 ? v[x] : v[y]);
    rc = img_resize_crop(&out, &a, 2, err);
    double e0 = (0 + 45) / 1.5, e1 = (45 + 255) / 1.5;   /* 30, 200 */
    check(rc == 0 && out.rgb[0] == (int)lround(e0) && out.rgb[3] == (int)lround(e1) &&
              out.rgb[1] == (int)lround(e0) && out.rgb[(2 + 0) * 3 + 1] == (int)lround(e1),
          "3x3 -> 2x2 box filter: got %d %d, want %.0f %.0f", out.rgb[0], out.rgb[3], e0, e1);
    img_deinit(&out);
    img_deinit(&a);

    /* enlarging: bilinear, align_corners=False: [0, 255] -> 0, 63.75, 191.25, 255 */
    img_init(&a, 2, 2, NULL);
    for (int y = 0; y < 2; y++)
        for (int c = 0; c < 3; c++) a.rgb[(y * 2 + 1) * 3 + c] = 255;
    rc = img_resize_crop(&out, &a, 4, err);
    check(rc == 0 && out.rgb[0] == 0 && out.rgb[3] == 64 && out.rgb[6] == 191 && out.rgb[9] == 255 &&
              out.rgb[12] == 0 && out.rgb[45] == 255,
          "2x2 -> 4x4 bilinear: row %d %d %d %d", out.rgb[0], out.rgb[3], out.rgb[6], out.rgb[9]);
    img_deinit(&out);
    img_deinit(&a);

    /* constant images stay constant through any scale */
    int sizes[][2] = {{37, 23}, {5, 11}, {300, 200}, {64, 65}};
    bad = 0;
    for (int i = 0; i < 4; i++) {
        img_init(&a, sizes[i][0], sizes[i][1], NULL);
        memset(a.rgb, 77, (size_t)a.w * a.h * 3);
        rc = img_resize_crop(&out, &a, 32, err);
        for (int j = 0; rc == 0 && j < 32 * 32 * 3; j++) bad += out.rgb[j] != 77;
        bad += rc != 0 || out.w != 32 || out.h != 32;
        img_deinit(&out);
        img_deinit(&a);
    }
    check(!bad, "constant images stay constant (%d wrong)", bad);
    rc = img_resize_crop(&out, &a, 0, err);
    check(rc == IMG_EINVAL, "S = 0 and an empty source are refused: %s", err);
}

static void test_planar_and_grid(void)
{
    printf("planar floats and grids\n");
    img_t a, b;
    img_init(&a, 16, 16, NULL);
    for (int i = 0; i < 256; i++)
        for (int c = 0; c < 3; c++) a.rgb[3 * i + c] = (uint8_t)(c == 0 ? i : c == 1 ? 255 - i : i / 2);
    float *f = malloc(sizeof(float) * 2 * 3 * 256);   /* CNHW batch of 2, image at b=1 */
    img_to_planar(&a, f + 256, 2 * 256);
    check(f[256] == -1.0f && f[256 + 255] == 1.0f && f[512 + 256] == 1.0f &&
              fabsf(f[256 + 100] - (100 / 127.5f - 1)) < 1e-7f && f[2 * 512 + 256 + 3] == 1 / 127.5f - 1,
          "to planar: values and CNHW strides");
    img_init(&b, 16, 16, NULL);
    img_from_planar(&b, f + 256, 2 * 256);
    check(same_image(&a, &b), "planar round trip is exact for all 256 values");
    float odd[3] = {2.0f, -3.0f, NAN};
    img_t px;
    img_init(&px, 1, 1, NULL);
    img_from_planar(&px, odd, 1);
    check(px.rgb[0] == 255 && px.rgb[1] == 0 && px.rgb[2] == 0, "from planar clamps (NaN -> 0)");
    img_deinit(&px);
    free(f);
    img_deinit(&b);
    img_deinit(&a);

    img_t tiles[3], g;
    for (int i = 0; i < 3; i++) {
        img_init(&tiles[i], 4, 4, NULL);
        memset(tiles[i].rgb, 10 * (i + 1), 48);
    }
    char err[256] = "";
    int rc = img_grid(&g, tiles, 3, 0, 1, err);
    /* 2 columns (ceil sqrt 3), 2 rows: 2*4 + 3*1 = 11 */
    int ok = rc == 0 && g.w == 11 && g.h == 11;
    if (ok) {
        ok &= g.rgb[0] == 255 && g.rgb[(1 * 11 + 1) * 3] == 10 && g.rgb[(1 * 11 + 6) * 3] == 20 &&
              g.rgb[(6 * 11 + 1) * 3] == 30 && g.rgb[(6 * 11 + 6) * 3] == 255 &&
              g.rgb[(4 * 11 + 4) * 3] == 10 && g.rgb[(5 * 11 + 5) * 3] == 255;
    }
    check(ok, "3 tiles in a 2x2 grid with 1px white padding: rc %d %dx%d", rc, g.w, g.h);
    img_deinit(&g);
    tiles[2].w = 3;
    rc = img_grid(&g, tiles, 3, 3, 0, err);
    check(rc == IMG_EINVAL, "tiles of different sizes refused: %s", err);
    tiles[2].w = 4;
    for (int i = 0; i < 3; i++) img_deinit(&tiles[i]);
}

/* Removes this run's scratch files (test_tmpdir() is this process's own directory). */
static void cleanup(void)
{
    DIR *d = opendir(test_tmpdir());
    struct dirent *e;
    char path[1024];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(), e->d_name);
        if (unlink(path) != 0) rmdir(path);
    }
    if (d) closedir(d);
    rmdir(test_tmpdir());
}

/* A chunk that claims 2 GB (tests/fuzz/corpus/image/png-text-chunk-2gb-claim.png, 570
 * bytes) is refused before libpng allocates the claim: libpng 1.6 only warns about a
 * chunk over png_set_chunk_malloc_max, then allocates and zeroes all of it. */
static void test_huge_chunk_claim(void)
{
    printf("a chunk claiming 2 GB\n");
    const char *path = "tests/fuzz/corpus/image/png-text-chunk-2gb-claim.png";
    FILE *f = fopen(path, "rb");
    if (!check(f != NULL, "%s opens (run from the source folder)", path)) return;
    uint8_t buf[1024];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    img_t img;
    char err[256] = "";
    int rc = img_load_mem(&img, buf, n, "claim.png", err);
    check(rc == IMG_ECORRUPT && strstr(err, "chunk data is too large"), "refused: %s", err);
    img_text_t *text = NULL;
    int n_text = 0;
    rc = img_load_text(path, &text, &n_text, err);
    check(rc == IMG_ECORRUPT && strstr(err, "chunk data is too large"), "its text refused: %s", err);
    free(text);
    getrusage(RUSAGE_SELF, &after);
    long grew_mb = (after.ru_maxrss - before.ru_maxrss) / 1024;
    check(grew_mb < 256, "peak memory grew by %ld MB (under 256)", grew_mb);
}

int main(void)
{
    test_huge_chunk_claim();
    test_png_kinds();
    test_jpeg();
    test_jpeg_exif();
    test_foreign();
    test_damage();
    test_save_and_text();
    test_resize();
    test_planar_and_grid();
    cleanup();
    return test_summary("test_image");
}
