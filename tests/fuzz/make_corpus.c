/* Writes the image seeds of tests/fuzz/corpus/image (small PNGs and JPEGs of several
 * kinds) with libpng's and libjpeg's own writers. Run once, by hand:
 *   cc -o /tmp/make_corpus tests/fuzz/make_corpus.c -lpng -ljpeg && /tmp/make_corpus tests/fuzz/corpus/image
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

static unsigned char px[64 * 64 * 8];

static void fill(int w, int h, int ch, int bytes)
{
    for (int i = 0; i < w * h * ch * bytes; i++) px[i] = (unsigned char)(i * 37 + (i / (w * ch)) * 11);
}

static void png(const char *dir, const char *name, int w, int h, png_uint_32 format)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION, im.width = w, im.height = h, im.format = format;
    fill(w, h, PNG_IMAGE_SAMPLE_CHANNELS(format), PNG_IMAGE_SAMPLE_COMPONENT_SIZE(format));
    png_color cmap[16];
    for (int i = 0; i < 16; i++) cmap[i] = (png_color){(png_byte)(i * 16), (png_byte)(255 - i * 16), 40};
    if (format & PNG_FORMAT_FLAG_COLORMAP) {
        im.colormap_entries = 16;
        for (int i = 0; i < w * h; i++) px[i] &= 15;
    }
    if (!png_image_write_to_file(&im, p, 0, px, 0, (format & PNG_FORMAT_FLAG_COLORMAP) ? cmap : NULL))
        fprintf(stderr, "%s: %s\n", p, im.message);
}

static void jpeg(const char *dir, const char *name, int w, int h, int gray, int progressive)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w, c.image_height = h, c.input_components = gray ? 1 : 3;
    c.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 75, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    fill(w, h, c.input_components, 1);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + c.next_scanline * w * c.input_components;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *d = argc > 1 ? argv[1] : ".";
    png(d, "rgb8.png", 16, 12, PNG_FORMAT_RGB);
    png(d, "rgba8.png", 9, 17, PNG_FORMAT_RGBA);
    png(d, "gray8.png", 20, 20, PNG_FORMAT_GRAY);
    png(d, "graya8.png", 5, 7, PNG_FORMAT_GA);
    png(d, "rgba16.png", 8, 8, PNG_FORMAT_LINEAR_RGB_ALPHA);
    png(d, "palette.png", 16, 16, PNG_FORMAT_RGB_COLORMAP);
    png(d, "one-pixel.png", 1, 1, PNG_FORMAT_RGB);
    jpeg(d, "rgb.jpg", 16, 12, 0, 0);
    jpeg(d, "gray.jpg", 13, 9, 1, 0);
    jpeg(d, "progressive.jpg", 24, 16, 0, 1);
    return 0;
}
