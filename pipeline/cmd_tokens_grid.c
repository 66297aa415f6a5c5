/* The token-grid text reader of `dalle-c tokens decode` (pipeline/token_grid.h; the
 * format is docs/TOKENS.md), apart from cmd_tokens.c so tests/fuzz/fuzz_grid.c can link
 * it without the rest of the command line. */
#include "pipeline/token_grid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID_HEADER "# dalle-c tokens"

/* A grid file, parsed: its token lines (rows) and how they group into grids. A grid is
 * a run of token lines; a blank line or a header ends it, other comment lines are
 * skipped. */
typedef struct {
    int line;     /* in the file, from 1 */
    int len;      /* tokens on it */
    size_t off;   /* of its first token in v */
} row_t;

typedef struct {
    int line;         /* of its first row */
    int header_line;  /* of its '# dalle-c tokens' header, 0 when none */
    int hdr_g, hdr_k; /* from the header */
    int first, rows;  /* its rows in the row array */
} grid_t;

typedef struct {
    const char *name; /* for messages */
    row_t *rows;
    int n_rows, cap_rows;
    grid_t *grids;
    int n_grids, cap_grids;
    long long *v;
    int n_v, cap_v;
} grid_file_t;

static void grid_file_free(grid_file_t *f)
{
    free(f->rows);
    free(f->grids);
    free(f->v);
}

/* Room for need elements in *p (capacity *cap). */
static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    if (need > (1 << 28)) return -1;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* A word of a token line, shown in a message: at most 24 characters, non-printing
 * bytes as '?'. */
static void show_word(char *buf, const char *w, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k < 24; i++)
        buf[k++] = (unsigned char)w[i] < 0x20 || (unsigned char)w[i] >= 0x7f ? '?' : w[i];
    if (len > 24) buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = 0;
}

/* "-12", "+7", "0042": whole numbers; |v| > 10^15 is -2 (too large), not a number -1. */
static int parse_token(const char *w, size_t len, long long *out)
{
    size_t i = 0;
    int neg = 0;
    if (len && (w[0] == '-' || w[0] == '+')) neg = w[0] == '-', i = 1;
    if (i == len) return -1;
    long long v = 0;
    for (; i < len; i++) {
        if (w[i] < '0' || w[i] > '9') return -1;
        if (v > 1000000000000000LL) return -2;
        v = v * 10 + (w[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

/* Reads the header's "G=.. K=.."; 0 when the line is not such a header. */
static int parse_header(const char *s, size_t len, int *g, int *k)
{
    size_t hl = strlen(GRID_HEADER);
    if (len <= hl || memcmp(s, GRID_HEADER, hl) != 0 || (s[hl] != ' ' && s[hl] != ':'))
        return 0;
    char buf[64];
    size_t n = len - hl - 1 < sizeof buf - 1 ? len - hl - 1 : sizeof buf - 1;
    memcpy(buf, s + hl + 1, n);
    buf[n] = 0;
    return sscanf(buf, " G=%d K=%d", g, k) == 2;
}

static int is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

/* Splits text into grids. Syntax errors (a word that is not a whole number) are
 * reported here, sizes and ranges by check_grid for the grid decode takes. */
static int grid_parse(grid_file_t *f, const char *text, size_t size, char err[512])
{
    int line = 0, open = 0, pending_hdr = 0, hg = 0, hk = 0;
    for (size_t pos = 0; pos < size;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - s) : size - pos;
        pos += len + 1;
        line++;
        size_t b = 0;
        while (b < len && is_blank(s[b])) b++;
        if (b == len) { /* blank: the grid ends */
            open = 0;
            continue;
        }
        if (s[b] == '#') {
            int g, k;
            if (parse_header(s + b, len - b, &g, &k)) {
                open = 0;
                pending_hdr = line, hg = g, hk = k;
            }
            continue;
        }
        if (!open) {
            if (grow((void **)&f->grids, &f->cap_grids, f->n_grids + 1, sizeof *f->grids))
                goto oom;
            f->grids[f->n_grids++] = (grid_t){line, pending_hdr, hg, hk, f->n_rows, 0};
            pending_hdr = 0;
            open = 1;
        }
        if (grow((void **)&f->rows, &f->cap_rows, f->n_rows + 1, sizeof *f->rows)) goto oom;
        grid_t *g = &f->grids[f->n_grids - 1];
        row_t *row = &f->rows[f->n_rows];
        *row = (row_t){line, 0, (size_t)f->n_v};
        for (size_t i = b; i < len;) {
            while (i < len && is_blank(s[i])) i++;
            if (i == len) break;
            size_t w = i;
            while (i < len && !is_blank(s[i])) i++;
            long long v;
            int rc = parse_token(s + w, i - w, &v);
            int col = ++row->len;
            if (rc) {
                char shown[32];
                show_word(shown, s + w, i - w);
                if (rc == -2)
                    snprintf(err, 512, "%.200s: row %d, column %d (line %d): token %s is out of range",
                             f->name, g->rows + 1, col, line, shown);
                else
                    snprintf(err, 512,
                             "%.200s: line %d: '%s' is not a token (tokens are whole numbers; "
                             "comments start with #)",
                             f->name, line, shown);
                return -1;
            }
            if (grow((void **)&f->v, &f->cap_v, f->n_v + 1, sizeof *f->v)) goto oom;
            f->v[f->n_v++] = v;
        }
        f->n_rows++;
        g->rows++;
    }
    return 0;
oom:
    snprintf(err, 512, "%.200s: out of memory reading the grid", f->name);
    return -1;
}

/* The grid's tokens into tok[G*G] when it fits the model; else a message. */
static int check_grid(const grid_file_t *f, const grid_t *g, int G, int K, const char *model,
                      int *tok, char err[512])
{
    if (g->header_line && (g->hdr_g != G || g->hdr_k != K)) {
        snprintf(err, 512,
                 "%.160s: line %d: the grid is for a model with G=%d K=%d; %.160s has G=%d "
                 "(%dx%d grids) and K=%d codes",
                 f->name, g->header_line, g->hdr_g, g->hdr_k, model, G, G, G, K);
        return -1;
    }
    for (int r = 0; r < g->rows; r++) {
        const row_t *row = &f->rows[g->first + r];
        if (row->len != G) {
            snprintf(err, 512,
                     "%.160s: line %d has %d tokens; %.160s needs %dx%d grids (%d tokens on "
                     "each of %d lines)",
                     f->name, row->line, row->len, model, G, G, G, G);
            return -1;
        }
    }
    if (g->rows != G) {
        snprintf(err, 512, "%.160s: the grid at line %d has %d rows; %.160s needs %dx%d grids",
                 f->name, g->line, g->rows, model, G, G);
        return -1;
    }
    for (int r = 0; r < G; r++) {
        const row_t *row = &f->rows[g->first + r];
        const long long *v = f->v + row->off;
        for (int c = 0; c < G; c++) {
            if (v[c] < 0 || v[c] >= K) {
                snprintf(err, 512,
                         "%.160s: row %d, column %d (line %d): token %lld is out of range; "
                         "%.160s has K=%d codes (0 to %d)",
                         f->name, r + 1, c + 1, row->line, v[c], model, K, K - 1);
                return -1;
            }
            tok[r * G + c] = (int)v[c];
        }
    }
    return 0;
}

/* The line a grid's block starts on: its header, or its first row. */
static int grid_start(const grid_t *g) { return g->header_line ? g->header_line : g->line; }

int tokens_grid_read(const char *text, size_t size, const char *name, const char *model, int G,
                     int K, int index, int *tok, char err[512])
{
    grid_file_t f = {.name = name};
    int rc = -1;
    if (grid_parse(&f, text, size, err)) goto done;
    if (f.n_grids == 0) {
        snprintf(err, 512, "%.200s: no token grid in it (expected %d lines of %d tokens)",
                 f.name, G, G);
        goto done;
    }
    if (index > f.n_grids) {
        snprintf(err, 512, "%.200s: --index %d, but it holds %d grid%s", f.name, index,
                 f.n_grids, f.n_grids == 1 ? "" : "s");
        goto done;
    }
    if (!index && f.n_grids > 1) {
        snprintf(err, 512,
                 "%.200s: holds %d grids (at lines %d, %d%s); decode takes one: pick it with "
                 "--index N",
                 f.name, f.n_grids, grid_start(&f.grids[0]), grid_start(&f.grids[1]),
                 f.n_grids > 2 ? ", ..." : "");
        goto done;
    }
    if (check_grid(&f, &f.grids[index ? index - 1 : 0], G, K, model, tok, err)) goto done;
    rc = 0;
done:
    grid_file_free(&f);
    return rc;
}
