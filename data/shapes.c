/* The synthetic shapes set: vocabulary, scene sampling, rendering and captions.
 * The evaluator (shapes_eval.c) and the dataset writer (shapes_write.c) build on it. */
#include "data/data.h"
#include "data/shapes_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const shapes_shape_names[SHAPES_N_SHAPES] = {
    "circle", "square", "triangle", "star", "heart", "cross", "ring", "diamond"};
const char *const shapes_colour_names[SHAPES_N_COLOURS] = {
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "cyan", "brown", "black"};
const char *const shapes_background_names[SHAPES_N_BACKGROUNDS] = {"white", "gray", "beige"};
const char *const shapes_pos_names[SHAPES_N_POS] = {
    "top left", "top", "top right", "left", "center", "right",
    "bottom left", "bottom", "bottom right"};
const char *const shapes_relation_names[4] = {"above", "below", "left of", "right of"};
const char *const shapes_attr_names[SHAPES_N_ATTR] = {
    "colour", "shape", "size", "position", "relation", "background"};

/* Chosen so that every pair is far apart in RGB (the closest, red-orange and
 * orange-yellow, are over 80 apart) and each is at least 100 from most backgrounds. */
const uint8_t shapes_colour_rgb[SHAPES_N_COLOURS][3] = {
    {220, 30, 30},   /* red */
    {30, 160, 50},   /* green */
    {30, 60, 220},   /* blue */
    {245, 210, 20},  /* yellow */
    {245, 130, 20},  /* orange */
    {140, 30, 200},  /* purple */
    {245, 120, 190}, /* pink */
    {20, 200, 220},  /* cyan */
    {120, 70, 30},   /* brown */
    {20, 20, 20},    /* black */
};
const uint8_t shapes_background_rgb[SHAPES_N_BACKGROUNDS][3] = {
    {255, 255, 255}, /* white */
    {128, 128, 128}, /* gray */
    {235, 220, 180}, /* beige */
};

/* Object sides as fractions of S: small, large, pair (the two objects of a relation). */
void shapes_size_fracs(int S, float f[3])
{
    if (S >= 48) {
        f[0] = 0.24f, f[1] = 0.40f, f[2] = 0.34f;
    } else {
        f[0] = 0.34f, f[1] = 0.50f, f[2] = 0.40f;
    }
}

/* ---------------------------------------------------------------- geometry */

/* A 5-pointed star with inner radius 0.5, and the heart's lower part, in the unit box. */
static const float star_poly[10][2] = {
    {0.500000f, 0.000000f}, {0.654508f, 0.329180f}, {1.000000f, 0.381966f},
    {0.750000f, 0.638197f}, {0.809017f, 1.000000f}, {0.500000f, 0.829180f},
    {0.190983f, 1.000000f}, {0.250000f, 0.638197f}, {0.000000f, 0.381966f},
    {0.345492f, 0.329180f}};
static const float heart_poly[5][2] = {
    {0.25f, 0.25f}, {0.75f, 0.25f}, {0.98f, 0.35f}, {0.5f, 1.0f}, {0.02f, 0.35f}};

/* Crossing-number test (any simple polygon). */
static int in_poly(const float (*p)[2], int n, float u, float v)
{
    int in = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        float yi = p[i][1], yj = p[j][1];
        if ((yi > v) != (yj > v)) {
            float x = p[j][0] + (v - yj) * (p[i][0] - p[j][0]) / (yi - yj);
            if (u < x) in = !in;
        }
    }
    return in;
}

static float sq(float x) { return x * x; }
static float absf(float x) { return x < 0 ? -x : x; }

/* Is (u, v) in the unit box inside the shape? Each shape touches all four sides. */
int shapes_inside(int shape, float u, float v)
{
    float du = u - 0.5f, dv = v - 0.5f, r2 = du * du + dv * dv;
    switch (shape) {
    case 0: return r2 <= 0.25f;                                          /* circle */
    case 1: return 1;                                                    /* square */
    case 2: return absf(du) <= v * 0.5f;                                 /* triangle */
    case 3: return in_poly(star_poly, 10, u, v);                         /* star */
    case 4:                                                              /* heart */
        return sq(u - 0.25f) + sq(v - 0.25f) <= 0.0625f ||
               sq(u - 0.75f) + sq(v - 0.25f) <= 0.0625f || in_poly(heart_poly, 5, u, v);
    case 5: return absf(du) <= 0.17f || absf(dv) <= 0.17f;               /* cross */
    case 6: return r2 <= 0.25f && r2 >= 0.0784f;                         /* ring: inner r 0.28 */
    case 7: return absf(du) + absf(dv) <= 0.5f;                          /* diamond */
    }
    return 0;
}

/* ---------------------------------------------------------------- sampling */

static float uni(nn_rng_t *r, float lo, float hi) { return lo + (hi - lo) * nn_rng_uniform(r); }
static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

static int rgb_dist2(const uint8_t a[3], const uint8_t b[3])
{
    int d = 0;
    for (int c = 0; c < 3; c++) d += (a[c] - b[c]) * (a[c] - b[c]);
    return d;
}

static int pick_colour(nn_rng_t *r, int bg)
{
    for (;;) {
        int c = (int)nn_rng_below(r, SHAPES_N_COLOURS);
        if (rgb_dist2(shapes_colour_rgb[c], shapes_background_rgb[bg]) >= 100 * 100) return c;
    }
}

void shapes_scene_random(shapes_scene_t *sc, int S, nn_rng_t *r)
{
    memset(sc, 0, sizeof *sc);
    float frac[3], fS = (float)S, m = 1.0f;
    shapes_size_fracs(S, frac);
    uint32_t b = nn_rng_below(r, 4);
    sc->background = b < 2 ? 0 : (int)b - 1; /* white half the time */
    sc->n = 1 + (int)nn_rng_below(r, 2);
    sc->relation = -1;
    for (int i = 0; i < sc->n; i++) {
        shapes_object_t *o = &sc->obj[i];
        do {
            o->shape = (int)nn_rng_below(r, SHAPES_N_SHAPES);
            o->colour = pick_colour(r, sc->background);
        } while (i == 1 && o->shape == sc->obj[0].shape && o->colour == sc->obj[0].colour);
    }
    if (sc->n == 1) {
        static const float cell[3] = {0.22f, 0.5f, 0.78f};
        shapes_object_t *o = &sc->obj[0];
        o->size = (int)nn_rng_below(r, 2);
        o->pos = (int)nn_rng_below(r, SHAPES_N_POS);
        float side = frac[o->size] * fS, h = side * 0.5f;
        float cx = cell[o->pos % 3] * fS + uni(r, -0.03f, 0.03f) * fS;
        float cy = cell[o->pos / 3] * fS + uni(r, -0.03f, 0.03f) * fS;
        cx = clampf(cx, h + m, fS - h - m);
        cy = clampf(cy, h + m, fS - h - m);
        o->x = cx - h, o->y = cy - h, o->w = o->h = side;
        return;
    }
    /* Two objects along the relation's axis with a gap, the cross-axis offset at most
     * 0.1 S each way so the relation is never in doubt. */
    sc->relation = (int)nn_rng_below(r, 4);
    float side = frac[2] * fS, gap = 0.08f * fS > 2 ? 0.08f * fS : 2;
    float slack = fS - 2 * m - 2 * side - gap;
    float a = uni(r, 0, slack), bb = uni(r, 0, slack - a);
    float first = m + a, second = first + side + gap + bb; /* along the axis */
    float c0 = uni(r, m + side * 0.5f, fS - m - side * 0.5f);
    float cross[2];
    for (int i = 0; i < 2; i++)
        cross[i] = clampf(c0 + uni(r, -0.1f, 0.1f) * fS, m + side * 0.5f, fS - m - side * 0.5f);
    /* obj[0] is the upper (above), lower (below), left (left of) or right (right of) one. */
    int flip = sc->relation == SHAPES_BELOW || sc->relation == SHAPES_RIGHT_OF;
    int vertical = sc->relation <= SHAPES_BELOW;
    for (int i = 0; i < 2; i++) {
        shapes_object_t *o = &sc->obj[i];
        float along = (i ^ flip) ? second : first;
        o->size = SHAPES_MEDIUM;
        o->pos = -1;
        o->w = o->h = side;
        if (vertical)
            o->y = along, o->x = cross[i] - side * 0.5f;
        else
            o->x = along, o->y = cross[i] - side * 0.5f;
    }
}

/* ---------------------------------------------------------------- rendering */

int shapes_render(img_t *img, const shapes_scene_t *sc, int S, char err[256])
{
    int rc = img_init(img, S, S, err);
    if (rc) return rc;
    const uint8_t *bg = shapes_background_rgb[sc->background >= 0 ? sc->background : 0];
    for (long i = 0; i < (long)S * S; i++) memcpy(img->rgb + i * 3, bg, 3);
    for (int k = 0; k < sc->n; k++) {
        const shapes_object_t *o = &sc->obj[k];
        const uint8_t *col = shapes_colour_rgb[o->colour];
        int x0 = (int)o->x, y0 = (int)o->y, x1 = (int)(o->x + o->w) + 1,
            y1 = (int)(o->y + o->h) + 1;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > S) x1 = S;
        if (y1 > S) y1 = S;
        for (int py = y0; py < y1; py++)
            for (int px = x0; px < x1; px++) {
                int cov = 0;
                for (int sy = 0; sy < 4; sy++)
                    for (int sx = 0; sx < 4; sx++) {
                        float u = ((float)px + (sx + 0.5f) * 0.25f - o->x) / o->w;
                        float v = ((float)py + (sy + 0.5f) * 0.25f - o->y) / o->h;
                        if (u >= 0 && u < 1 && v >= 0 && v < 1) cov += shapes_inside(o->shape, u, v);
                    }
                if (!cov) continue;
                uint8_t *p = img->rgb + ((size_t)py * S + px) * 3;
                for (int c = 0; c < 3; c++) p[c] = (uint8_t)((p[c] * (16 - cov) + col[c] * cov + 8) / 16);
            }
    }
    return IMG_OK;
}

/* ---------------------------------------------------------------- captions */

typedef struct {
    char *buf;
    size_t n, len;
} sbuf_t;

static void put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->n ? b->n - b->len : 0;
    int k = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0) b->len += (size_t)k;
}

/* "a" or "an" before word */
static const char *art(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

static const char *at_phrase(int pos, int corner)
{
    static const char *const at[SHAPES_N_POS] = {
        "at the top left", "at the top", "at the top right", "on the left", "in the center",
        "on the right", "at the bottom left", "at the bottom", "at the bottom right"};
    static const char *const in_corner[SHAPES_N_POS] = {
        "in the top left corner", "at the top", "in the top right corner", "on the left",
        "in the middle", "on the right", "in the bottom left corner", "at the bottom",
        "in the bottom right corner"};
    return corner ? in_corner[pos] : at[pos];
}

size_t shapes_captions(const shapes_scene_t *sc, char *buf, size_t n)
{
    sbuf_t b = {buf, n, 0};
    if (n) buf[0] = 0;
    const char *bg = shapes_background_names[sc->background >= 0 ? sc->background : 0];
    if (sc->n == 1) {
        const shapes_object_t *o = &sc->obj[0];
        const char *sz = o->size == SHAPES_SMALL ? "small" : "large";
        const char *col = shapes_colour_names[o->colour], *sh = shapes_shape_names[o->shape];
        put(&b, "%s %s %s %s %s on %s %s background\n", art(sz), sz, col, sh,
            at_phrase(o->pos, 0), art(bg), bg);
        put(&b, "%s %s %s %s\n", art(col), col, sh, at_phrase(o->pos, 0));
        put(&b, "%s %s, %s\n", col, sh, shapes_pos_names[o->pos]);
        put(&b, "%s %s %s %s %s, %s background\n", art(sz), sz, col, sh, at_phrase(o->pos, 1), bg);
        put(&b, "%s %s %s %s on %s %s background\n", art(sz), sz, col, sh, art(bg), bg);
        put(&b, "%s %s %s\n", sz, col, sh);
    } else {
        static const char *const rel[4] = {"above", "below", "to the left of", "to the right of"};
        static const int inv[4] = {1, 0, 3, 2};
        const char *ca = shapes_colour_names[sc->obj[0].colour], *sa = shapes_shape_names[sc->obj[0].shape];
        const char *cb = shapes_colour_names[sc->obj[1].colour], *sb = shapes_shape_names[sc->obj[1].shape];
        int r = sc->relation;
        put(&b, "%s %s %s %s %s %s %s on %s %s background\n", art(ca), ca, sa, rel[r], art(cb), cb,
            sb, art(bg), bg);
        put(&b, "%s %s %s %s %s %s %s\n", art(ca), ca, sa, rel[r], art(cb), cb, sb);
        put(&b, "%s %s %s %s %s %s %s\n", art(cb), cb, sb, rel[inv[r]], art(ca), ca, sa);
        put(&b, "%s %s %s %s %s\n", ca, sa, shapes_relation_names[r], cb, sb);
        put(&b, "%s %s background with %s %s %s %s %s %s %s\n", art(bg), bg, art(ca), ca, sa,
            rel[r], art(cb), cb, sb);
    }
    return b.len;
}

size_t shapes_scene_format(const shapes_scene_t *sc, char *buf, size_t n)
{
    sbuf_t b = {buf, n, 0};
    if (n) buf[0] = 0;
    put(&b, "%s\t%d\t%s", sc->background >= 0 ? shapes_background_names[sc->background] : "-",
        sc->n, sc->n == 2 && sc->relation >= 0 ? shapes_relation_names[sc->relation] : "-");
    for (int i = 0; i < sc->n; i++) {
        const shapes_object_t *o = &sc->obj[i];
        static const char *const sz[3] = {"small", "large", "medium"};
        put(&b, "\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f",
            o->colour >= 0 ? shapes_colour_names[o->colour] : "-",
            o->shape >= 0 ? shapes_shape_names[o->shape] : "-",
            o->size >= 0 ? sz[o->size] : "-", o->pos >= 0 ? shapes_pos_names[o->pos] : "-",
            (double)o->x, (double)o->y, (double)o->w, (double)o->h);
    }
    return b.len;
}

/* ---------------------------------------------------------------- holdout */

static int find_name(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], s, len) == 0) return i;
    return -1;
}

int shapes_holdout_parse(shapes_holdout_t *h, const char *spec, char err[256])
{
    memset(h, 0, sizeof *h);
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        int colour = -1, shape = -1, words = 0;
        const char *q = p;
        while (q < end) {
            while (q < end && *q == ' ') q++;
            const char *w = q;
            while (q < end && *q != ' ') q++;
            if (q == w) break;
            int c = find_name(shapes_colour_names, SHAPES_N_COLOURS, w, (size_t)(q - w));
            int s = find_name(shapes_shape_names, SHAPES_N_SHAPES, w, (size_t)(q - w));
            if (c >= 0 && colour < 0) colour = c;
            else if (s >= 0 && shape < 0) shape = s;
            else {
                if (err)
                    snprintf(err, 256, "holdout \"%.*s\": \"%.*s\" is not a colour or shape (or repeats one)",
                             (int)(end - p > 100 ? 100 : end - p), p,
                             (int)(q - w > 40 ? 40 : q - w), w);
                return IMG_EINVAL;
            }
            words++;
        }
        if (words) {
            if (h->n == 64) {
                if (err) snprintf(err, 256, "holdout: more than 64 items");
                return IMG_EINVAL;
            }
            h->colour[h->n] = colour, h->shape[h->n] = shape, h->n++;
        }
        p = *end ? end + 1 : end;
    }
    if (!h->n) {
        if (err) snprintf(err, 256, "holdout: no item in \"%.100s\" (want e.g. \"green triangle,red star\")", spec);
        return IMG_EINVAL;
    }
    return IMG_OK;
}

int shapes_holdout_match(const shapes_holdout_t *h, const shapes_scene_t *sc)
{
    for (int k = 0; k < h->n; k++)
        for (int i = 0; i < sc->n; i++)
            if ((h->colour[k] < 0 || h->colour[k] == sc->obj[i].colour) &&
                (h->shape[k] < 0 || h->shape[k] == sc->obj[i].shape))
                return 1;
    return 0;
}
