/* The shapes evaluator: reads a prompt in the captions' grammar and judges an image
 * against it, attribute by attribute. It must work on model outputs (blurry, noisy,
 * imperfect shapes), so every decision is a nearest-match over soft evidence rather
 * than an exact test against our own renderer. */
#include "data/data.h"
#include "data/shapes_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the prompt */

#define MAX_WORDS 96

static int lookup(const char *const *names, int n, const char *w)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], w) == 0) return i;
    return -1;
}

static int is(const char *w, const char *a) { return strcmp(w, a) == 0; }

/* A shape word, singular or plural. */
static int shape_word(const char *w)
{
    int s = lookup(shapes_shape_names, SHAPES_N_SHAPES, w);
    if (s >= 0) return s;
    size_t n = strlen(w);
    if (n > 1 && w[n - 1] == 's') {
        char t[32];
        memcpy(t, w, n - 1);
        t[n - 1] = 0;
        if (n > 2 && t[n - 2] == 'e' && strcmp(t, "crosse") == 0) t[n - 2] = 0; /* crosses */
        return lookup(shapes_shape_names, SHAPES_N_SHAPES, t);
    }
    return -1;
}

int shapes_parse(shapes_scene_t *sc, const char *prompt, char err[256])
{
    char words[MAX_WORDS][32];
    int nw = 0;
    for (const char *p = prompt; *p && nw < MAX_WORDS;) {
        while (*p && !isalpha((unsigned char)*p)) p++;
        if (!*p) break;
        int k = 0;
        while (isalpha((unsigned char)*p)) {
            if (k < 31) words[nw][k++] = (char)tolower((unsigned char)*p);
            p++;
        }
        words[nw++][k] = 0;
    }
    memset(sc, 0, sizeof *sc);
    sc->relation = sc->background = -1;
    for (int i = 0; i < 2; i++) {
        shapes_object_t *o = &sc->obj[i];
        o->colour = o->shape = o->size = o->pos = -1;
    }
    int colour = -1, size = -1, vert = -1, horiz = -1, center = 0;
    for (int i = 0; i < nw; i++) {
        const char *w = words[i], *next = i + 1 < nw ? words[i + 1] : "";
        int c = lookup(shapes_colour_names, SHAPES_N_COLOURS, w);
        int g = is(w, "grey") ? 1 : lookup(shapes_background_names, SHAPES_N_BACKGROUNDS, w);
        int s;
        if (is(next, "background")) {
            if (g >= 0) sc->background = g;
            i++;
        } else if (c >= 0) {
            colour = c;
        } else if (is(w, "small") || is(w, "tiny") || is(w, "little")) {
            size = SHAPES_SMALL;
        } else if (is(w, "large") || is(w, "big") || is(w, "huge")) {
            size = SHAPES_LARGE;
        } else if ((s = shape_word(w)) >= 0) {
            if (sc->n == 2) {
                if (err) snprintf(err, 256, "prompt \"%.120s\": more than two objects", prompt);
                return IMG_EINVAL;
            }
            shapes_object_t *o = &sc->obj[sc->n++];
            o->shape = s, o->colour = colour, o->size = size;
            colour = size = -1;
        } else if (is(w, "above") || is(w, "over")) {
            if (sc->n == 1) sc->relation = SHAPES_ABOVE;
        } else if (is(w, "below") || is(w, "under") || is(w, "beneath") || is(w, "underneath")) {
            if (sc->n == 1) sc->relation = SHAPES_BELOW;
        } else if ((is(w, "left") || is(w, "right")) && is(next, "of")) {
            if (sc->n == 1) sc->relation = is(w, "left") ? SHAPES_LEFT_OF : SHAPES_RIGHT_OF;
            i++;
        } else if (is(w, "top") || is(w, "upper")) {
            vert = 0;
        } else if (is(w, "bottom") || is(w, "lower")) {
            vert = 2;
        } else if (is(w, "left")) {
            horiz = 0;
        } else if (is(w, "right")) {
            horiz = 2;
        } else if (is(w, "center") || is(w, "centre") || is(w, "middle")) {
            center = 1;
        }
    }
    if (sc->n == 0) {
        if (err) snprintf(err, 256, "prompt \"%.120s\": names no shape (%s, %s, ...)", prompt,
                          shapes_shape_names[0], shapes_shape_names[1]);
        return IMG_EINVAL;
    }
    if (sc->n == 1 && (vert >= 0 || horiz >= 0 || center))
        sc->obj[0].pos = (vert >= 0 ? vert : 1) * 3 + (horiz >= 0 ? horiz : 1);
    if (sc->n == 1) sc->relation = -1;
    return IMG_OK;
}

/* ---------------------------------------------------------------- the image */

#define FG_THRESHOLD 40.0f /* RGB distance from the background that makes a pixel foreground */
#define GRID 16            /* shape templates are compared on a GRID x GRID sampling */

typedef struct {
    int w, h;
    const uint8_t *rgb;
    float bg[3];
    int *owner; /* per pixel: detected object 0/1, or -1 */
} scene_img_t;

typedef struct {
    int ok;
    int area;
    int colour, shape;
    int x0, y0, x1, y1; /* bounding box, inclusive */
    float cx, cy;
} det_t;

static void estimate_background(scene_img_t *s)
{
    int *hist = calloc(4096, sizeof *hist);
    int W = s->w, H = s->h, best = 0;
    for (int pass = 0; pass < 2; pass++) {
        double sum[3] = {0, 0, 0};
        long cnt = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                if (y != 0 && y != H - 1 && x != 0 && x != W - 1) continue;
                const uint8_t *p = s->rgb + ((size_t)y * W + x) * 3;
                int b = (p[0] >> 4) << 8 | (p[1] >> 4) << 4 | (p[2] >> 4);
                if (pass == 0 && hist) {
                    if (++hist[b] > hist[best]) best = b;
                } else if (!hist || b == best) {
                    for (int c = 0; c < 3; c++) sum[c] += p[c];
                    cnt++;
                }
            }
        if (pass == 1)
            for (int c = 0; c < 3; c++) s->bg[c] = cnt ? (float)(sum[c] / (double)cnt) : 255.0f;
    }
    free(hist);
}

static float dist_bg(const scene_img_t *s, size_t i)
{
    const uint8_t *p = s->rgb + i * 3;
    float d = 0;
    for (int c = 0; c < 3; c++) d += ((float)p[c] - s->bg[c]) * ((float)p[c] - s->bg[c]);
    return sqrtf(d);
}

/* Residual of pixel p explained as bg + a (col - bg), a in [0, 1]; *alpha gets a. */
static float blend_residual(const float bg[3], const uint8_t col[3], const uint8_t *p, float *alpha)
{
    float v[3], q[3], vv = 0, qv = 0;
    for (int c = 0; c < 3; c++) {
        v[c] = (float)col[c] - bg[c];
        q[c] = (float)p[c] - bg[c];
        vv += v[c] * v[c];
        qv += q[c] * v[c];
    }
    float a = vv > 0 ? qv / vv : 0;
    a = a < 0 ? 0 : a > 1 ? 1 : a;
    float r = 0;
    for (int c = 0; c < 3; c++) r += (q[c] - a * v[c]) * (q[c] - a * v[c]);
    if (alpha) *alpha = a;
    return sqrtf(r);
}

/* Labels 8-connected foreground regions; returns their count, areas in *areas. */
static int label_regions(const scene_img_t *s, const uint8_t *fg, int *lab, int **areas)
{
    int W = s->w, H = s->h, n = 0, cap = 16;
    size_t N = (size_t)W * H;
    int *queue = malloc(N * sizeof *queue), *area = malloc((size_t)cap * sizeof *area);
    if (!queue || !area) {
        free(queue), free(area);
        return -1;
    }
    for (size_t i = 0; i < N; i++) lab[i] = -1;
    for (size_t i = 0; i < N; i++) {
        if (!fg[i] || lab[i] >= 0) continue;
        if (n == cap) {
            int *t = realloc(area, (size_t)(cap *= 2) * sizeof *area);
            if (!t) {
                free(queue), free(area);
                return -1;
            }
            area = t;
        }
        size_t head = 0, tail = 0;
        queue[tail++] = (int)i;
        lab[i] = n;
        while (head < tail) {
            int q = queue[head++], x = q % W, y = q / W;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
                    size_t j = (size_t)yy * W + xx;
                    if (fg[j] && lab[j] < 0) {
                        lab[j] = n;
                        queue[tail++] = (int)j;
                    }
                }
        }
        area[n++] = (int)tail;
    }
    free(queue);
    *areas = area;
    return n;
}

static int best_colour(const scene_img_t *s, int k)
{
    int best = 0;
    float best_cost = 0;
    for (int c = 0; c < SHAPES_N_COLOURS; c++) {
        float cost = 0;
        for (size_t i = 0; i < (size_t)s->w * s->h; i++)
            if (s->owner[i] == k)
                cost += blend_residual(s->bg, shapes_colour_rgb[c], s->rgb + i * 3, NULL);
        if (c == 0 || cost < best_cost) best = c, best_cost = cost;
    }
    return best;
}

/* Coverage of object k at pixel (x, y): its blend weight where the pixel is its own or
 * nobody's, 0 outside the image or on another object. */
static float alpha_at(const scene_img_t *s, int k, int colour, int x, int y)
{
    if (x < 0 || y < 0 || x >= s->w || y >= s->h) return 0;
    size_t i = (size_t)y * s->w + x;
    if (s->owner[i] != k && s->owner[i] != -1) return 0;
    float a;
    blend_residual(s->bg, shapes_colour_rgb[colour], s->rgb + i * 3, &a);
    return a;
}

static float alpha_bilinear(const scene_img_t *s, int k, int colour, float X, float Y)
{
    X -= 0.5f, Y -= 0.5f;
    int x = (int)floorf(X), y = (int)floorf(Y);
    float fx = X - (float)x, fy = Y - (float)y;
    return (1 - fy) * ((1 - fx) * alpha_at(s, k, colour, x, y) + fx * alpha_at(s, k, colour, x + 1, y)) +
           fy * ((1 - fx) * alpha_at(s, k, colour, x, y + 1) + fx * alpha_at(s, k, colour, x + 1, y + 1));
}

/* The shape whose template, drawn into the box and blurred by one pixel as the image
 * is, differs least (L1) from the object's coverage sampled on a GRID x GRID lattice. */
static int best_shape(const scene_img_t *s, int k, const det_t *d)
{
    float bw = (float)(d->x1 + 1 - d->x0), bh = (float)(d->y1 + 1 - d->y0);
    float img[GRID * GRID];
    for (int j = 0; j < GRID; j++)
        for (int i = 0; i < GRID; i++)
            img[j * GRID + i] = alpha_bilinear(s, k, d->colour, (float)d->x0 + (i + 0.5f) * bw / GRID,
                                               (float)d->y0 + (j + 0.5f) * bh / GRID);
    int best = 0;
    float best_cost = 0;
    for (int sh = 0; sh < SHAPES_N_SHAPES; sh++) {
        float cost = 0;
        for (int j = 0; j < GRID; j++)
            for (int i = 0; i < GRID; i++) {
                float u = (i + 0.5f) / GRID, v = (j + 0.5f) / GRID, t = 0;
                for (int sy = 0; sy < 4; sy++)
                    for (int sx = 0; sx < 4; sx++) {
                        float uu = u + ((sx + 0.5f) / 4 - 0.5f) / bw;
                        float vv = v + ((sy + 0.5f) / 4 - 0.5f) / bh;
                        if (uu >= 0 && uu < 1 && vv >= 0 && vv < 1) t += (float)shapes_inside(sh, uu, vv);
                    }
                cost += fabsf(t / 16 - img[j * GRID + i]);
            }
        if (sh == 0 || cost < best_cost) best = sh, best_cost = cost;
    }
    return best;
}

static void measure(const scene_img_t *s, int k, det_t *d)
{
    int W = s->w, H = s->h, x0 = W, y0 = H, x1 = -1, y1 = -1, area = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (s->owner[(size_t)y * W + x] == k) {
                area++;
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
    d->ok = area > 0;
    d->area = area;
    if (!area) return;
    d->colour = best_colour(s, k);
    /* The box of the pixels at least half covered: the shape's true edges to a pixel. */
    int bx0 = W, by0 = H, bx1 = -1, by1 = -1;
    for (int y = y0 - 1; y <= y1 + 1; y++)
        for (int x = x0 - 1; x <= x1 + 1; x++)
            if (alpha_at(s, k, d->colour, x, y) >= 0.5f) {
                if (x < bx0) bx0 = x;
                if (x > bx1) bx1 = x;
                if (y < by0) by0 = y;
                if (y > by1) by1 = y;
            }
    if (bx1 >= 0) x0 = bx0, x1 = bx1, y0 = by0, y1 = by1;
    d->x0 = x0, d->y0 = y0, d->x1 = x1, d->y1 = y1;
    d->cx = (float)(x0 + x1 + 1) * 0.5f, d->cy = (float)(y0 + y1 + 1) * 0.5f;
    d->shape = best_shape(s, k, d);
}

/* One region for two objects: split it by the prompt's colours when they differ and
 * both halves are substantial, else by 2-means on pixel positions. */
static void split_region(scene_img_t *s, int region, const int *lab, const shapes_scene_t *want)
{
    size_t N = (size_t)s->w * s->h;
    int ca = want->obj[0].colour, cb = want->obj[1].colour, cnt[2] = {0, 0};
    if (ca >= 0 && cb >= 0 && ca != cb) {
        for (size_t i = 0; i < N; i++) {
            if (lab[i] != region) continue;
            float ra = blend_residual(s->bg, shapes_colour_rgb[ca], s->rgb + i * 3, NULL);
            float rb = blend_residual(s->bg, shapes_colour_rgb[cb], s->rgb + i * 3, NULL);
            s->owner[i] = ra <= rb ? 0 : 1;
            cnt[s->owner[i]]++;
        }
        int total = cnt[0] + cnt[1];
        if (cnt[0] * 5 >= total && cnt[1] * 5 >= total) return;
    }
    int W = s->w, x0 = W, x1 = -1, y0 = s->h, y1 = -1;
    for (size_t i = 0; i < N; i++)
        if (lab[i] == region) {
            int x = (int)(i % W), y = (int)(i / W);
            x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1, y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
        }
    float c[2][2];
    if (x1 - x0 >= y1 - y0)
        c[0][0] = (float)x0, c[1][0] = (float)x1, c[0][1] = c[1][1] = (float)(y0 + y1) * 0.5f;
    else
        c[0][1] = (float)y0, c[1][1] = (float)y1, c[0][0] = c[1][0] = (float)(x0 + x1) * 0.5f;
    for (int it = 0; it < 10; it++) {
        double sum[2][3] = {{0}};
        for (size_t i = 0; i < N; i++) {
            if (lab[i] != region) continue;
            float x = (float)(i % W), y = (float)(i / W);
            float d0 = (x - c[0][0]) * (x - c[0][0]) + (y - c[0][1]) * (y - c[0][1]);
            float d1 = (x - c[1][0]) * (x - c[1][0]) + (y - c[1][1]) * (y - c[1][1]);
            int k = d0 <= d1 ? 0 : 1;
            s->owner[i] = k;
            sum[k][0] += x, sum[k][1] += y, sum[k][2] += 1;
        }
        for (int k = 0; k < 2; k++)
            if (sum[k][2] > 0) c[k][0] = (float)(sum[k][0] / sum[k][2]), c[k][1] = (float)(sum[k][1] / sum[k][2]);
    }
}

static int relation_holds(int rel, const det_t *a, const det_t *b)
{
    float dx = b->cx - a->cx, dy = b->cy - a->cy;
    switch (rel) {
    case SHAPES_ABOVE: return dy > 0 && dy >= fabsf(dx);
    case SHAPES_BELOW: return dy < 0 && -dy >= fabsf(dx);
    case SHAPES_LEFT_OF: return dx > 0 && dx >= fabsf(dy);
    case SHAPES_RIGHT_OF: return dx < 0 && -dx >= fabsf(dy);
    }
    return 0;
}

static int position_of(const det_t *d, int W, int H)
{
    int col = d->cx * 3 < (float)W ? 0 : d->cx * 3 < 2.0f * (float)W ? 1 : 2;
    int row = d->cy * 3 < (float)H ? 0 : d->cy * 3 < 2.0f * (float)H ? 1 : 2;
    return row * 3 + col;
}

static void count(shapes_verdict_t *v, int attr, int ok)
{
    v->checked[attr]++;
    v->correct[attr] += ok != 0;
}

int shapes_evaluate(const img_t *img, const shapes_scene_t *want, shapes_verdict_t *v,
                    char err[256])
{
    memset(v, 0, sizeof *v);
    if (img->w < 16 || img->h < 16 || !img->rgb || want->n < 1 || want->n > 2) {
        if (err) snprintf(err, 256, "shapes_evaluate: want an image of at least 16x16 (got %dx%d) and 1-2 objects",
                          img->w, img->h);
        return IMG_EINVAL;
    }
    scene_img_t s = {img->w, img->h, img->rgb, {0, 0, 0}, NULL};
    size_t N = (size_t)s.w * s.h;
    uint8_t *fg = malloc(N);
    int *lab = malloc(N * sizeof *lab), *areas = NULL;
    s.owner = malloc(N * sizeof *s.owner);
    if (!fg || !lab || !s.owner) {
        free(fg), free(lab), free(s.owner);
        if (err) snprintf(err, 256, "shapes_evaluate: out of memory");
        return IMG_ENOMEM;
    }
    estimate_background(&s);
    for (size_t i = 0; i < N; i++) fg[i] = dist_bg(&s, i) > FG_THRESHOLD;
    int nreg = label_regions(&s, fg, lab, &areas);
    if (nreg < 0) {
        free(fg), free(lab), free(s.owner);
        if (err) snprintf(err, 256, "shapes_evaluate: out of memory");
        return IMG_ENOMEM;
    }
    /* The largest regions are the objects; specks below 1/400 of the image are noise. */
    int min_area = (int)(N / 400) > 4 ? (int)(N / 400) : 4, top[2] = {-1, -1}, found = 0;
    for (int r = 0; r < nreg; r++) {
        if (areas[r] < min_area) continue;
        found++;
        if (top[0] < 0 || areas[r] > areas[top[0]]) top[1] = top[0], top[0] = r;
        else if (top[1] < 0 || areas[r] > areas[top[1]]) top[1] = r;
    }
    v->objects_found = found;
    for (size_t i = 0; i < N; i++) s.owner[i] = -1;
    int ndet = 0;
    if (top[0] >= 0) {
        if (want->n == 2 && top[1] < 0) {
            split_region(&s, top[0], lab, want);
            ndet = 2;
        } else {
            ndet = want->n == 2 ? 2 : 1;
            for (size_t i = 0; i < N; i++)
                if (lab[i] == top[0]) s.owner[i] = 0;
                else if (ndet == 2 && lab[i] == top[1]) s.owner[i] = 1;
        }
    }
    det_t det[2];
    memset(det, 0, sizeof det);
    for (int k = 0; k < ndet; k++) measure(&s, k, &det[k]);

    /* Match detections to the prompt's objects in the order that agrees best. */
    int order[2] = {0, 1};
    if (want->n == 2) {
        int score[2];
        for (int o = 0; o < 2; o++) {
            const det_t *a = &det[o], *b = &det[1 - o];
            score[o] = 4 * ((a->ok && a->colour == want->obj[0].colour) + (a->ok && a->shape == want->obj[0].shape) +
                            (b->ok && b->colour == want->obj[1].colour) + (b->ok && b->shape == want->obj[1].shape)) +
                       (a->ok && b->ok && relation_holds(want->relation, a, b));
        }
        if (score[1] > score[0]) order[0] = 1, order[1] = 0;
    }
    float frac[3];
    int S = s.w < s.h ? s.w : s.h;
    shapes_size_fracs(S, frac);
    v->seen.n = want->n;
    v->seen.relation = v->seen.background = -1;
    for (int o = 0; o < want->n; o++) {
        const shapes_object_t *w = &want->obj[o];
        const det_t *d = &det[order[o]];
        shapes_object_t *seen = &v->seen.obj[o];
        seen->colour = seen->shape = seen->size = seen->pos = -1;
        if (d->ok) {
            int side = d->x1 - d->x0 > d->y1 - d->y0 ? d->x1 - d->x0 + 1 : d->y1 - d->y0 + 1;
            seen->colour = d->colour, seen->shape = d->shape;
            seen->size = (float)side >= 0.5f * (frac[0] + frac[1]) * (float)S ? SHAPES_LARGE : SHAPES_SMALL;
            seen->pos = position_of(d, s.w, s.h);
            seen->x = (float)d->x0, seen->y = (float)d->y0;
            seen->w = (float)(d->x1 + 1 - d->x0), seen->h = (float)(d->y1 + 1 - d->y0);
        }
        if (w->colour >= 0) count(v, SHAPES_ATTR_COLOUR, d->ok && seen->colour == w->colour);
        if (w->shape >= 0) count(v, SHAPES_ATTR_SHAPE, d->ok && seen->shape == w->shape);
        if (w->size == SHAPES_SMALL || w->size == SHAPES_LARGE)
            count(v, SHAPES_ATTR_SIZE, d->ok && seen->size == w->size);
        if (want->n == 1 && w->pos >= 0) count(v, SHAPES_ATTR_POSITION, d->ok && seen->pos == w->pos);
    }
    if (want->n == 2 && want->relation >= 0) {
        const det_t *a = &det[order[0]], *b = &det[order[1]];
        int ok = a->ok && b->ok && relation_holds(want->relation, a, b);
        count(v, SHAPES_ATTR_RELATION, ok);
        if (ok) v->seen.relation = want->relation;
    }
    /* Background: the nearest of the backgrounds and object colours. */
    int bg_best = -1;
    float bg_d = 0;
    for (int c = 0; c < SHAPES_N_BACKGROUNDS + SHAPES_N_COLOURS; c++) {
        const uint8_t *rgb = c < SHAPES_N_BACKGROUNDS ? shapes_background_rgb[c]
                                                      : shapes_colour_rgb[c - SHAPES_N_BACKGROUNDS];
        float d = 0;
        for (int ch = 0; ch < 3; ch++) d += ((float)rgb[ch] - s.bg[ch]) * ((float)rgb[ch] - s.bg[ch]);
        if (bg_best < 0 || d < bg_d) bg_best = c, bg_d = d;
    }
    if (bg_best < SHAPES_N_BACKGROUNDS) v->seen.background = bg_best;
    if (want->background >= 0) count(v, SHAPES_ATTR_BACKGROUND, bg_best == want->background);
    free(fg), free(lab), free(s.owner), free(areas);
    return IMG_OK;
}
