/* dalle.h's PNG files: the generated images with their settings as text chunks, so the
 * command line, the server and programs embedding libdallec write the same files (and
 * `dalle-c --from` reads any of them back). The encoding itself is data/'s. */
#include "pipeline/dalle.h"

#include "data/data.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int img_to_dalle(int st)
{
    switch (st) {
    case IMG_OK: return DALLE_OK;
    case IMG_EIO: return DALLE_EIO;
    case IMG_ENOMEM: return DALLE_ENOMEM;
    case IMG_EINVAL:
    case IMG_ETOOBIG: return DALLE_EINVAL;
    default: return DALLE_EIMAGE;
    }
}

/* data/'s chunk list from ours (the same two pointers, but distinct types). NULL with a
 * message when n_text is negative or the list is missing or memory runs out. */
static img_text_t *to_img_text(const dalle_text_t *text, int n_text, int *status, char *err)
{
    if (n_text < 0 || (n_text > 0 && !text)) {
        if (err) snprintf(err, DALLE_ERR_SIZE, "PNG text chunks: bad list (%d chunks)", n_text);
        *status = DALLE_EINVAL;
        return NULL;
    }
    img_text_t *kv = malloc((n_text ? (size_t)n_text : 1) * sizeof *kv);
    if (!kv) {
        if (err) snprintf(err, DALLE_ERR_SIZE, "PNG text chunks: out of memory");
        *status = DALLE_ENOMEM;
        return NULL;
    }
    for (int i = 0; i < n_text; i++) kv[i] = (img_text_t){text[i].key, text[i].value};
    return kv;
}

/* img to path (atomically) when path is not NULL, else to *png. */
static int write_png(const dalle_image_t *img, const dalle_text_t *text, int n_text,
                     const char *path, uint8_t **png, size_t *size, char *err)
{
    int st = DALLE_OK;
    img_text_t *kv = to_img_text(text, n_text, &st, err);
    if (!kv) return st;
    img_t im = img ? (img_t){img->w, img->h, img->rgb} : (img_t){0};
    st = img_to_dalle(path ? img_save_png(&im, path, kv, n_text, err)
                           : img_encode_png(&im, kv, n_text, png, size, "PNG", err));
    free(kv);
    return st;
}

int dalle_image_encode_png(const dalle_image_t *img, const dalle_text_t *text, int n_text,
                           uint8_t **png, size_t *size, char err[DALLE_ERR_SIZE])
{
    if (!png || !size) {
        if (err) snprintf(err, DALLE_ERR_SIZE, "dalle_image_encode_png: no place for the PNG");
        return DALLE_EINVAL;
    }
    *png = NULL;
    *size = 0;
    return write_png(img, text, n_text, NULL, png, size, err);
}

int dalle_image_save_png(const dalle_image_t *img, const char *path, const dalle_text_t *text,
                         int n_text, char err[DALLE_ERR_SIZE])
{
    if (!path || !*path) {
        if (err) snprintf(err, DALLE_ERR_SIZE, "dalle_image_save_png: no file name");
        return DALLE_EINVAL;
    }
    return write_png(img, text, n_text, path, NULL, NULL, err);
}

/* ---------------------------------------------------------------- settings */

static void add(dalle_settings_text_t *t, const char *key, const char *value)
{
    if (t->n_text < DALLE_SETTINGS_MAX) t->text[t->n_text++] = (dalle_text_t){key, value};
}

/* A value formatted into the slot of the chunk about to be added. */
static void add_fmt(dalle_settings_text_t *t, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_fmt(dalle_settings_text_t *t, const char *key, const char *fmt, ...)
{
    if (t->n_text >= DALLE_SETTINGS_MAX) return;
    char *slot = t->numbers[t->n_text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot, sizeof t->numbers[0], fmt, ap);
    va_end(ap);
    add(t, key, slot);
}

/* The shortest decimal that reads back as the same float, so --from gets v exactly. */
static void add_float(dalle_settings_text_t *t, const char *key, float v)
{
    char text[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, (double)v);
        if (strtof(text, NULL) == v) break;
    }
    add_fmt(t, key, "%s", text);
}

void dalle_settings_text(dalle_settings_text_t *t, const dalle_result_t *r, int image,
                         const char *prompt, const char *model, const char *init_image)
{
    t->n_text = 0;
    add(t, "dalle-c:prompt", prompt ? prompt : "");
    add_fmt(t, "dalle-c:seed", "%llu", (unsigned long long)r->seed);
    add_fmt(t, "dalle-c:n", "%d", r->n_images);
    if (image <= 0) add(t, "dalle-c:image", "grid");
    else add_fmt(t, "dalle-c:image", "%d", image);
    add_float(t, "dalle-c:temperature", r->params.temperature);
    add_fmt(t, "dalle-c:top-k", "%d", r->params.top_k);
    add_float(t, "dalle-c:top-p", r->params.top_p);
    add_float(t, "dalle-c:guidance", r->params.guidance);
    add(t, "dalle-c:model", model ? model : "");
    if (init_image) {
        add(t, "dalle-c:init-image", init_image);
        add_fmt(t, "dalle-c:init-rows", "%d", r->params.init_rows);
    }
    if (r->params.candidates > 1) add_fmt(t, "dalle-c:candidates", "%d", r->params.candidates);
    if (r->scores && image > 0 && image <= r->n_images)
        add_fmt(t, "dalle-c:score", "%.4f", (double)r->scores[image - 1]);
    add(t, "dalle-c:version", dalle_version());
}
