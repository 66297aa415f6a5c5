/* dalle-c tokens encode | decode | stats | atlas: images to dVAE token grids and back,
 * and what the codebook learned. The grid text format is docs/TOKENS.md:
 *
 *   # dalle-c tokens G=8 K=512 image=cat.png
 *   G lines of G space-separated tokens in [0, K)
 *
 * one such block per image, blocks separated by a blank line. */
#include "data/data.h"
#include "dvae/dvae.h"
#include "nn/nn.h"
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "pipeline/progress.h"
#include "pipeline/token_grid.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID_HEADER "# dalle-c tokens"
#define GRID_MAX_BYTES (64L << 20)
#define DEFAULT_BATCH 16

static const char *const tokens_usage =
    "usage: dalle-c tokens encode -m MODEL IMAGE...            print each image's token grid\n"
    "       dalle-c tokens decode -m MODEL GRID.txt -o OUT.png  a token grid back to pixels\n"
    "       dalle-c tokens stats  -m MODEL IMAGE_DIR            codebook usage over a folder\n"
    "       dalle-c tokens atlas  -m MODEL -o ATLAS.png         what each code decodes to\n"
    "(each with --help for its options; the grid format is docs/TOKENS.md)\n";

static const char *const encode_usage =
    "usage: dalle-c tokens encode -m MODEL [options] IMAGE...\n"
    "\n"
    "Prints each image's G x G grid of dVAE tokens (argmax of the encoder's logits).\n"
    "Images (PNG or JPEG) are resized and centre-cropped to the model's size S. Output,\n"
    "one block per image, blocks separated by a blank line (docs/TOKENS.md):\n"
    "\n"
    "  # dalle-c tokens G=8 K=512 image=cat.png\n"
    "  G lines of G space-separated tokens in [0, K)\n"
    "\n"
    "  -m MODEL      a model file holding a dVAE\n"
    "  --batch B     images encoded at once (default 16)\n"
    "  -t THREADS    (default: OMP_NUM_THREADS or all cores)\n"
    "\n"
    "An unreadable image is reported on stderr and skipped; the exit status is then 1.\n";

static const char *const decode_usage =
    "usage: dalle-c tokens decode -m MODEL GRID.txt -o OUT.png [--index N]\n"
    "\n"
    "Decodes one token grid, as `tokens encode` prints it, into an S x S PNG (written\n"
    "atomically). GRID.txt may be - for stdin. Lines starting with # are comments; a\n"
    "'# dalle-c tokens G=.. K=..' header must agree with the model. Every token must be a\n"
    "whole number in [0, K) and the grid exactly G x G.\n"
    "\n"
    "  -m MODEL      a model file holding a dVAE\n"
    "  -o OUT.png    output image\n"
    "  --index N     the N-th grid (from 1) of a file holding several; without it such a\n"
    "                file is refused\n"
    "  -t THREADS    (default: OMP_NUM_THREADS or all cores)\n";

static const char *const stats_usage =
    "usage: dalle-c tokens stats -m MODEL IMAGE_DIR [options]\n"
    "\n"
    "Encodes every PNG and JPEG under IMAGE_DIR (recursively; unreadable files are skipped\n"
    "and counted) and reports how the codebook is used: codes used of K, the perplexity of\n"
    "the token histogram (exp of its entropy: K when all codes are equally used), dead codes\n"
    "and the most frequent codes with their share of all tokens.\n"
    "\n"
    "  -m MODEL      a model file holding a dVAE\n"
    "  --json        machine-readable output (with the whole histogram and dead-code list)\n"
    "  --top N       most frequent codes to list (default 10)\n"
    "  --batch B     images encoded at once (default 16)\n"
    "  -t THREADS    (default: OMP_NUM_THREADS or all cores)\n"
    "\n"
    "Exit status 1 when no image under IMAGE_DIR can be read.\n";

static const char *const atlas_usage =
    "usage: dalle-c tokens atlas -m MODEL -o ATLAS.png [options]\n"
    "\n"
    "Shows what each codebook entry decodes to: code k as the image of a G x G grid filled\n"
    "with k, all codes tiled row-major into one PNG (white padding between tiles). The\n"
    "PNG's text chunk 'dalle-c codes' lists the code of each tile in order.\n"
    "\n"
    "  -m MODEL         a model file holding a dVAE\n"
    "  -o ATLAS.png     output image (written atomically)\n"
    "  --codes A-B      only codes A to B (inclusive; default all, 0 to K-1); A alone is one\n"
    "  --cols N         tiles per row (default 32)\n"
    "  --tile PX        tile side in pixels (default: the model's image size S)\n"
    "  --pad PX         padding between tiles (default 2)\n"
    "  --dir IMAGE_DIR  order the codes by how often they occur over the images in this\n"
    "                   folder (most used first; ties by code)\n"
    "  --batch B        grids decoded at once (default 16)\n"
    "  -t THREADS       (default: OMP_NUM_THREADS or all cores)\n";

/* ---------------------------------------------------------------- shared */

/* Options every subcommand takes; parse_common returns 1 when argv[*i] was one of them,
 * 0 when not, -1 on a bad value (usage error, already printed). */
typedef struct {
    const char *model;
    int batch;
    int threads;
} common_t;

static int parse_common(const char *cmd, int argc, char **argv, int *i, common_t *c)
{
    const char *a = argv[*i], *v;
    if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
        if (!(v = arg_value(cmd, argc, argv, i))) return -1;
        c->model = v;
        return 1;
    }
    if (strcmp(a, "--batch") == 0) {
        if (!(v = arg_value(cmd, argc, argv, i))) return -1;
        return arg_int(cmd, a, v, 1, 4096, &c->batch) ? -1 : 1;
    }
    if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
        if (!(v = arg_value(cmd, argc, argv, i))) return -1;
        return arg_int(cmd, a, v, 1, 1024, &c->threads) ? -1 : 1;
    }
    return 0;
}

static int unknown_option(const char *cmd, const char *a)
{
    fprintf(stderr, "%s: unknown option '%s' (see --help)\n", cmd, a);
    return 2;
}

/* Checks -m, sets the thread count and loads the dVAE; NULL after printing why. */
static dvae_t *open_model(const char *cmd, const common_t *c, int max_batch)
{
    char err[256];
    dvae_t *m;
    if (c->threads) nn_set_threads(c->threads);
    if (dvae_load(&m, c->model, max_batch, err)) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return NULL;
    }
    return m;
}

/* A path printed inside one line: control characters (a newline in a file name would
 * break the grid format) become '?'. */
static void print_clean(FILE *out, const char *s)
{
    for (; *s; s++) fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

static int flush_stdout(const char *cmd)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: writing the output failed\n", cmd);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- encode */

/* img_load, resize/centre-crop to S, floats in [-1, 1] CHW at out. */
static int load_image(const char *path, int S, float *out, char err[256])
{
    img_t src = {0}, dst = {0};
    if (img_load(&src, path, err)) return -1;
    char e[256];
    int rc = img_resize_crop(&dst, &src, S, e);
    img_deinit(&src);
    if (rc) {
        snprintf(err, 256, "%.120s: %.120s", path, e);
        return -1;
    }
    img_to_planar(&dst, out, (size_t)S * S);
    img_deinit(&dst);
    return 0;
}

static void print_grid(const int *tok, int G, int K, const char *name)
{
    printf(GRID_HEADER " G=%d K=%d image=", G, K);
    print_clean(stdout, name);
    putchar('\n');
    for (int r = 0; r < G; r++)
        for (int c = 0; c < G; c++) printf("%d%c", tok[r * G + c], c + 1 < G ? ' ' : '\n');
}

/* Encodes the n images in batches of B, printing each grid as it is done. Unreadable
 * images are reported and skipped. 0, or 1 when some image failed. */
static int encode_images(const char *cmd, dvae_t *m, char **images, int n, int B)
{
    const int S = dvae_config(m)->image_size, K = dvae_config(m)->codebook_size;
    const int G = dvae_grid_size(dvae_config(m));
    const size_t px = (size_t)3 * S * S;
    float *x = malloc(sizeof *x * px * (size_t)B);
    int *tok = malloc(sizeof *tok * (size_t)B * G * G);
    int *ok = malloc(sizeof *ok * (size_t)B);
    char (*errs)[256] = malloc(sizeof *errs * (size_t)B);
    int status = 0, printed = 0;
    if (!x || !tok || !ok || !errs) {
        fprintf(stderr, "%s: out of memory for a batch of %d images of %dx%d\n", cmd, B, S, S);
        status = 1;
        n = 0;
    }
    for (int start = 0; start < n; start += B) {
        int nb = n - start < B ? n - start : B;
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < nb; j++)
            ok[j] = load_image(images[start + j], S, x + (size_t)j * px, errs[j]) == 0;
        /* the readable ones, packed to the front in argument order */
        int good = 0;
        for (int j = 0; j < nb; j++) {
            if (!ok[j]) continue;
            if (good != j) memmove(x + (size_t)good * px, x + (size_t)j * px, sizeof *x * px);
            good++;
        }
        if (good) dvae_encode(m, x, good, tok);
        for (int j = 0, g = 0; j < nb; j++) {
            if (!ok[j]) {
                fflush(stdout);
                fprintf(stderr, "%s: %s\n", cmd, errs[j]);
                status = 1;
                continue;
            }
            if (printed++) putchar('\n');
            print_grid(tok + (size_t)g++ * G * G, G, K, images[start + j]);
        }
    }
    if (flush_stdout(cmd)) status = 1;
    free(x);
    free(tok);
    free(ok);
    free(errs);
    return status;
}

static int cmd_encode(int argc, char **argv)
{
    static const char *const cmd = "dalle-c tokens encode";
    if (cmd_wants_help(argc, argv)) {
        fputs(encode_usage, stdout);
        return 0;
    }
    common_t c = {NULL, DEFAULT_BATCH, 0};
    char **images = malloc(sizeof *images * (size_t)argc);
    int n = 0, only_paths = 0, status = 2;
    if (!images) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = only_paths ? 0 : parse_common(cmd, argc, argv, &i, &c);
        if (r < 0) goto done;
        if (r) continue;
        if (!only_paths && strcmp(a, "--") == 0) {
            only_paths = 1;
        } else if (!only_paths && a[0] == '-' && a[1]) {
            unknown_option(cmd, a);
            goto done;
        } else {
            images[n++] = argv[i];
        }
    }
    if (!c.model || n == 0) {
        fprintf(stderr, "%s: needs -m MODEL and at least one IMAGE (see --help)\n", cmd);
        goto done;
    }
    dvae_t *m = open_model(cmd, &c, n < c.batch ? n : c.batch);
    status = m ? encode_images(cmd, m, images, n, n < c.batch ? n : c.batch) : 1;
    dvae_free(m);
done:
    free(images);
    return status;
}

/* ---------------------------------------------------------------- grid text
 * (parsed by cmd_tokens_grid.c) */

/* The whole file (or stdin for "-"), NUL-terminated, at most GRID_MAX_BYTES. */
static char *read_all(const char *path, size_t *size, char err[512])
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    const char *name = fp == stdin ? "stdin" : path;
    if (!fp) {
        snprintf(err, 512, "%.200s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= (size_t)GRID_MAX_BYTES) {
                snprintf(err, 512, "%.200s: over %ld MiB, too big for a token grid", name,
                         GRID_MAX_BYTES >> 20);
                free(buf);
                buf = NULL;
                break;
            }
            char *q = realloc(buf, cap * 2);
            if (!q) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = q, cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) {
                snprintf(err, 512, "%.200s: read error (%s)", name, strerror(errno));
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (!buf && !err[0]) snprintf(err, 512, "%.200s: out of memory reading it", name);
    if (fp != stdin) fclose(fp);
    if (buf) buf[n] = 0, *size = n;
    return buf;
}

/* ---------------------------------------------------------------- decode */

/* Decodes n token grids (n <= the model's batch) into n S x S images. */
static int decode_tiles(dvae_t *m, const int *tok, int n, float *buf, img_t *out, char err[256])
{
    const int S = dvae_config(m)->image_size;
    dvae_decode(m, tok, n, buf);
    for (int j = 0; j < n; j++) {
        if (img_init(&out[j], S, S, err)) return -1;
        img_from_planar(&out[j], buf + (size_t)j * 3 * S * S, (size_t)S * S);
    }
    return 0;
}

static int cmd_decode(int argc, char **argv)
{
    static const char *const cmd = "dalle-c tokens decode";
    if (cmd_wants_help(argc, argv)) {
        fputs(decode_usage, stdout);
        return 0;
    }
    common_t c = {NULL, 1, 0};
    const char *in = NULL, *out = NULL, *v;
    int index = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = parse_common(cmd, argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r) continue;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            out = v;
        } else if (strcmp(a, "--index") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            if (arg_int(cmd, a, v, 1, 1 << 30, &index)) return 2;
        } else if (a[0] == '-' && a[1]) {
            return unknown_option(cmd, a);
        } else if (in) {
            fprintf(stderr, "%s: one GRID file at a time (got '%s' and '%s')\n", cmd, in, a);
            return 2;
        } else {
            in = a;
        }
    }
    if (!c.model || !in || !out) {
        fprintf(stderr, "%s: needs -m MODEL, GRID.txt (or -) and -o OUT.png (see --help)\n", cmd);
        return 2;
    }
    dvae_t *m = open_model(cmd, &c, 1);
    if (!m) return 1;
    const int S = dvae_config(m)->image_size, K = dvae_config(m)->codebook_size;
    const int G = dvae_grid_size(dvae_config(m));

    char err[512] = "";
    size_t size = 0;
    int *tok = malloc(sizeof *tok * (size_t)G * G);
    float *px = malloc(sizeof *px * (size_t)3 * S * S);
    char *grid_text = malloc((size_t)G * G * 7 + 64);
    img_t img = {0};
    char *text = read_all(in, &size, err);
    int status = 1;
    if (!text || !tok || !px || !grid_text) {
        if (!err[0]) snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (tokens_grid_read(text, size, strcmp(in, "-") == 0 ? "stdin" : in, c.model, G, K, index,
                         tok, err))
        goto fail;

    /* the PNG carries its tokens, in the grid format (ASCII, so always a valid value) */
    size_t k = (size_t)sprintf(grid_text, GRID_HEADER " G=%d K=%d\n", G, K);
    for (int t = 0; t < G * G; t++)
        k += (size_t)sprintf(grid_text + k, "%d%c", tok[t], t % G == G - 1 ? '\n' : ' ');
    char e[256];
    img_text_t meta[2] = {{"Software", "dalle-c " DALLEC_VERSION}, {"dalle-c tokens", grid_text}};
    if (decode_tiles(m, tok, 1, px, &img, e) || img_save_png(&img, out, meta, 2, e)) {
        snprintf(err, sizeof err, "%s", e);
        goto fail;
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", cmd, err);
done:
    img_deinit(&img);
    free(text);
    free(grid_text);
    free(tok);
    free(px);
    dvae_free(m);
    return status;
}

/* ---------------------------------------------------------------- usage over a folder */

/* Encodes every image of ds (holdout 0: all are in DS_TRAIN) and adds each token to
 * counts[K]. Unreadable images are recorded as bad by ds and left out. images: how many
 * were encoded. 0, or 1 after printing why. */
static int collect_usage(const char *cmd, dvae_t *m, ds_t *ds, int B, long long *counts,
                         size_t *images)
{
    const int S = dvae_config(m)->image_size, G = dvae_grid_size(dvae_config(m));
    const size_t px = (size_t)3 * S * S, n = ds_count(ds, DS_TRAIN);
    float *x = malloc(sizeof *x * px * (size_t)B);
    int *tok = malloc(sizeof *tok * (size_t)B * G * G);
    int *ok = malloc(sizeof *ok * (size_t)B);
    *images = 0;
    if (!x || !tok || !ok) {
        fprintf(stderr, "%s: out of memory for a batch of %d images of %dx%d\n", cmd, B, S, S);
        free(x);
        free(tok);
        free(ok);
        return 1;
    }
    progress_t bar;
    progress_start(&bar, stderr, "encode", (long)n);
    for (size_t start = 0; start < n; start += (size_t)B) {
        int nb = n - start < (size_t)B ? (int)(n - start) : B;
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < nb; j++)
            ok[j] = ds_load(ds, DS_TRAIN, start + (size_t)j, x + j * px, (size_t)S * S, NULL) == 0;
        int good = 0;
        for (int j = 0; j < nb; j++) {
            if (!ok[j]) continue;
            if (good != j) memmove(x + good * px, x + j * px, sizeof *x * px);
            good++;
        }
        if (good) dvae_encode(m, x, good, tok);
        for (size_t t = 0; t < (size_t)good * G * G; t++) counts[tok[t]]++;
        *images += (size_t)good;
        char status[64];
        snprintf(status, sizeof status, "%zu skipped", ds_bad_count(ds));
        progress_update(&bar, (long)(start + (size_t)nb), status);
    }
    progress_finish(&bar, "");
    free(x);
    free(tok);
    free(ok);
    return 0;
}

static ds_t *open_folder(const char *cmd, const char *dir, int S)
{
    ds_config_t dc = ds_config_default();
    dc.size = S;
    dc.holdout = 0;
    dc.require_captions = 0;
    ds_t *ds;
    char err[256];
    if (ds_open(&ds, dir, &dc, err)) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return NULL;
    }
    return ds;
}

typedef struct {
    int code;
    long long count;
} code_count_t;

/* most used first, ties by code */
static int cmp_usage(const void *a, const void *b)
{
    const code_count_t *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return (x->code > y->code) - (x->code < y->code);
}

/* "3, 5-9, 200" of the codes with no use; returns the length it needed. */
static size_t format_ranges(char *buf, size_t cap, const long long *counts, int K)
{
    size_t k = 0;
    buf[0] = 0;
    for (int a = 0; a < K; a++) {
        if (counts[a]) continue;
        int b = a;
        while (b + 1 < K && !counts[b + 1]) b++;
        char one[32];
        int l = a == b ? snprintf(one, sizeof one, "%s%d", k ? ", " : "", a)
                       : snprintf(one, sizeof one, "%s%d-%d", k ? ", " : "", a, b);
        if (k + (size_t)l < cap) memcpy(buf + k, one, (size_t)l + 1);
        k += (size_t)l;
        a = b;
    }
    if (k >= cap) buf[0] = 0;
    return k;
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", out);
        else if (ch == '\t') fputs("\\t", out);
        else if (ch < 0x20 || ch == 0x7f) fprintf(out, "\\u%04x", ch);
        else fputc(ch, out);
    }
    fputc('"', out);
}

/* ---------------------------------------------------------------- stats */

static void print_stats_json(const char *model, ds_t *ds, const dvae_config_t *mc, size_t images,
                             const long long *counts, const code_count_t *order, int top,
                             long long total, int used, double ppl)
{
    const int K = mc->codebook_size, G = dvae_grid_size(mc);
    size_t bad = ds_bad_count(ds);
    printf("{\n  \"model\": ");
    json_string(stdout, model);
    printf(",\n  \"folder\": ");
    json_string(stdout, ds_root(ds));
    printf(",\n  \"image_size\": %d,\n  \"grid\": %d,\n  \"codebook_size\": %d,\n", mc->image_size,
           G, K);
    printf("  \"images\": %zu,\n  \"skipped\": %zu,\n  \"skipped_files\": [", images, bad);
    for (size_t k = 0; k < bad; k++) {
        char name[512], e[256];
        if (ds_bad(ds, k, name, e)) break;
        printf("%s\n    {\"name\": ", k ? "," : "");
        json_string(stdout, name);
        printf(", \"error\": ");
        json_string(stdout, e);
        printf("}");
    }
    printf("%s],\n", bad ? "\n  " : "");
    printf("  \"tokens\": %lld,\n  \"used_codes\": %d,\n  \"perplexity\": %.4f,\n", total, used,
           ppl);
    printf("  \"dead_codes\": %d,\n  \"dead\": [", K - used);
    for (int k = 0, first = 1; k < K; k++)
        if (!counts[k]) printf("%s%d", first ? "" : ", ", k), first = 0;
    printf("],\n  \"top\": [");
    for (int i = 0; i < top; i++)
        printf("%s\n    {\"code\": %d, \"count\": %lld, \"share\": %.6f}", i ? "," : "",
               order[i].code, order[i].count, total ? (double)order[i].count / (double)total : 0.0);
    printf("%s],\n  \"histogram\": [", top ? "\n  " : "");
    for (int k = 0; k < K; k++) printf("%s%lld", k ? ", " : "", counts[k]);
    printf("]\n}\n");
}

static void print_stats_text(const char *model, ds_t *ds, const dvae_config_t *mc, size_t images,
                             const long long *counts, const code_count_t *order, int top,
                             long long total, int used, double ppl)
{
    const int K = mc->codebook_size, G = dvae_grid_size(mc);
    size_t bad = ds_bad_count(ds);
    printf("model:       %s (S=%d, %dx%d grids, K=%d codes)\n", model, mc->image_size, G, G, K);
    printf("folder:      %s\n", ds_root(ds));
    printf("images:      %zu read, %zu skipped (unreadable)\n", images, bad);
    for (size_t k = 0; k < bad && k < 10; k++) {
        char name[512], e[256];
        if (ds_bad(ds, k, name, e)) break;
        printf("  skipped:   %s\n", e);
    }
    if (bad > 10) printf("  ... and %zu more skipped (all with --json)\n", bad - 10);
    printf("tokens:      %lld (%d per image)\n", total, G * G);
    printf("codes used:  %d of %d (%.1f%%)\n", used, K, 100.0 * used / K);
    printf("perplexity:  %.1f (at most %d: all codes equally used)\n", ppl, K);
    char list[256];
    size_t need = format_ranges(list, sizeof list, counts, K);
    if (used == K) printf("dead codes:  0\n");
    else if (need < sizeof list && need <= 160) printf("dead codes:  %d: %s\n", K - used, list);
    else printf("dead codes:  %d (the list with --json)\n", K - used);
    if (top) printf("top codes:   code      count   share\n");
    for (int i = 0; i < top; i++)
        printf("             %4d %10lld  %5.2f%%\n", order[i].code, order[i].count,
               total ? 100.0 * (double)order[i].count / (double)total : 0.0);
}

static int cmd_stats(int argc, char **argv)
{
    static const char *const cmd = "dalle-c tokens stats";
    if (cmd_wants_help(argc, argv)) {
        fputs(stats_usage, stdout);
        return 0;
    }
    common_t c = {NULL, DEFAULT_BATCH, 0};
    const char *dir = NULL, *v;
    int json = 0, top = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = parse_common(cmd, argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r) continue;
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--top") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            if (arg_int(cmd, a, v, 0, 65536, &top)) return 2;
        } else if (a[0] == '-' && a[1]) {
            return unknown_option(cmd, a);
        } else if (dir) {
            fprintf(stderr, "%s: one IMAGE_DIR at a time (got '%s' and '%s')\n", cmd, dir, a);
            return 2;
        } else {
            dir = a;
        }
    }
    if (!c.model || !dir) {
        fprintf(stderr, "%s: needs -m MODEL and IMAGE_DIR (see --help)\n", cmd);
        return 2;
    }
    dvae_t *m = open_model(cmd, &c, c.batch);
    if (!m) return 1;
    const dvae_config_t *mc = dvae_config(m);
    const int K = mc->codebook_size;
    ds_t *ds = open_folder(cmd, dir, mc->image_size);
    long long *counts = calloc((size_t)K, sizeof *counts);
    code_count_t *order = malloc(sizeof *order * (size_t)K);
    size_t images = 0;
    int status = 1;
    if (!ds) goto done;
    if (!counts || !order) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        goto done;
    }
    if (collect_usage(cmd, m, ds, c.batch, counts, &images)) goto done;
    if (images == 0) {
        char name[512], e[256] = "";
        ds_bad(ds, 0, name, e);
        fprintf(stderr, "%s: %s: none of its %zu images can be read (first: %s)\n", cmd,
                ds_root(ds), ds_bad_count(ds), e);
        goto done;
    }
    long long total = 0;
    int used = 0;
    for (int k = 0; k < K; k++) total += counts[k], used += counts[k] > 0;
    double h = 0;
    for (int k = 0; k < K; k++)
        if (counts[k]) {
            double p = (double)counts[k] / (double)total;
            h -= p * log(p);
        }
    for (int k = 0; k < K; k++) order[k] = (code_count_t){k, counts[k]};
    qsort(order, (size_t)K, sizeof *order, cmp_usage);
    if (top > used) top = used;
    if (json) print_stats_json(c.model, ds, mc, images, counts, order, top, total, used, exp(h));
    else print_stats_text(c.model, ds, mc, images, counts, order, top, total, used, exp(h));
    status = flush_stdout(cmd);
done:
    free(counts);
    free(order);
    if (ds) ds_close(ds);
    dvae_free(m);
    return status;
}

/* ---------------------------------------------------------------- atlas */

/* "A-B" or "A" into [*lo, *hi]. */
static int parse_range(const char *s, int *lo, int *hi)
{
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end == s || a < 0 || a > 1 << 30) return -1;
    if (*end == '-') {
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t || b < a || b > 1 << 30) return -1;
    }
    if (*end) return -1;
    *lo = (int)a, *hi = (int)b;
    return 0;
}

static int cmd_atlas(int argc, char **argv)
{
    static const char *const cmd = "dalle-c tokens atlas";
    if (cmd_wants_help(argc, argv)) {
        fputs(atlas_usage, stdout);
        return 0;
    }
    common_t c = {NULL, DEFAULT_BATCH, 0};
    const char *out = NULL, *dir = NULL, *codes = NULL, *v;
    int cols = 32, tile = 0, pad = 2, lo = 0, hi = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = parse_common(cmd, argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r) continue;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            out = v;
        } else if (strcmp(a, "--dir") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            dir = v;
        } else if (strcmp(a, "--codes") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            if (parse_range(v, &lo, &hi)) {
                fprintf(stderr, "%s: --codes wants A-B (0 <= A <= B) or A, got '%s'\n", cmd, v);
                return 2;
            }
            codes = v;
        } else if (strcmp(a, "--cols") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            if (arg_int(cmd, a, v, 1, 4096, &cols)) return 2;
        } else if (strcmp(a, "--tile") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            if (arg_int(cmd, a, v, 1, 4096, &tile)) return 2;
        } else if (strcmp(a, "--pad") == 0) {
            if (!(v = arg_value(cmd, argc, argv, &i))) return 2;
            if (arg_int(cmd, a, v, 0, 256, &pad)) return 2;
        } else if (a[0] == '-' && a[1]) {
            return unknown_option(cmd, a);
        } else {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd, a);
            return 2;
        }
    }
    if (!c.model || !out) {
        fprintf(stderr, "%s: needs -m MODEL and -o ATLAS.png (see --help)\n", cmd);
        return 2;
    }
    dvae_t *m = open_model(cmd, &c, c.batch);
    if (!m) return 1;
    const dvae_config_t *mc = dvae_config(m);
    const int S = mc->image_size, K = mc->codebook_size, G = dvae_grid_size(mc);
    if (!codes) lo = 0, hi = K - 1;
    if (hi >= K) {
        fprintf(stderr, "%s: --codes %s: %s has K=%d codes (0 to %d)\n", cmd, codes, c.model, K,
                K - 1);
        dvae_free(m);
        return 2;
    }
    if (!tile) tile = S;
    const int n = hi - lo + 1, ncols = cols < n ? cols : n, nrows = (n + ncols - 1) / ncols;
    const long W = (long)ncols * (tile + pad) + pad, H = (long)nrows * (tile + pad) + pad;
    if (W > IMG_MAX_SIDE || H > IMG_MAX_SIDE || W * H > IMG_MAX_PIXELS) {
        fprintf(stderr,
                "%s: %s: an atlas of %d codes would be %ldx%ld pixels, over the PNG limit "
                "(%d per side, %ld in all); use --tile, --cols or --codes\n",
                cmd, out, n, W, H, IMG_MAX_SIDE, (long)IMG_MAX_PIXELS);
        dvae_free(m);
        return 1;
    }

    int status = 1, B = c.batch;
    ds_t *ds = NULL;
    long long *counts = calloc((size_t)K, sizeof *counts);
    code_count_t *order = malloc(sizeof *order * (size_t)n);
    img_t *tiles = calloc((size_t)n, sizeof *tiles), grid = {0};
    img_t *full = calloc((size_t)B, sizeof *full); /* decoded at S, before --tile resizes */
    int *tok = malloc(sizeof *tok * (size_t)B * G * G);
    float *buf = malloc(sizeof *buf * (size_t)B * 3 * S * S);
    char *list = malloc((size_t)n * 7 + 1);
    char err[256];
    if (!counts || !order || !tiles || !full || !tok || !buf || !list) {
        fprintf(stderr, "%s: out of memory for %d tiles\n", cmd, n);
        goto done;
    }
    if (dir) {
        size_t images;
        if (!(ds = open_folder(cmd, dir, S)) || collect_usage(cmd, m, ds, B, counts, &images))
            goto done;
        if (images == 0) {
            fprintf(stderr, "%s: %s: none of its images can be read\n", cmd, ds_root(ds));
            goto done;
        }
    }
    for (int i = 0; i < n; i++) order[i] = (code_count_t){lo + i, counts[lo + i]};
    if (dir) qsort(order, (size_t)n, sizeof *order, cmp_usage);

    progress_t bar;
    progress_start(&bar, stderr, "decode", n);
    for (int start = 0; start < n; start += B) {
        int nb = n - start < B ? n - start : B;
        for (int j = 0; j < nb; j++)
            for (int t = 0; t < G * G; t++) tok[j * G * G + t] = order[start + j].code;
        if (decode_tiles(m, tok, nb, buf, tile == S ? tiles + start : full, err)) goto fail;
        for (int j = 0; j < nb && tile != S; j++) {
            int rc = img_resize_crop(&tiles[start + j], &full[j], tile, err);
            img_deinit(&full[j]);
            if (rc) goto fail;
        }
        progress_update(&bar, start + nb, NULL);
    }
    progress_finish(&bar, "");

    size_t k = 0;
    for (int i = 0; i < n; i++) k += (size_t)sprintf(list + k, "%s%d", i ? " " : "", order[i].code);
    list[k] = 0;
    img_text_t meta[2] = {{"Software", "dalle-c " DALLEC_VERSION}, {"dalle-c codes", list}};
    if (img_grid(&grid, tiles, n, ncols, pad, err) || img_save_png(&grid, out, meta, 2, err))
        goto fail;
    fprintf(stderr, "%s: wrote %s: codes %d-%d%s, %dx%d tiles of %d px, %dx%d pixels\n", cmd, out,
            lo, hi, dir ? " by usage" : "", ncols, nrows, tile, grid.w, grid.h);
    status = 0;
    goto done;
fail:
    if (strncmp(err, out, strlen(out)) == 0) fprintf(stderr, "%s: %s\n", cmd, err);
    else fprintf(stderr, "%s: %s: %s\n", cmd, out, err);
done:
    if (tiles)
        for (int i = 0; i < n; i++) img_deinit(&tiles[i]);
    if (full)
        for (int j = 0; j < B; j++) img_deinit(&full[j]);
    img_deinit(&grid);
    free(tiles);
    free(full);
    free(counts);
    free(order);
    free(tok);
    free(buf);
    free(list);
    if (ds) ds_close(ds);
    dvae_free(m);
    return status;
}

/* ---------------------------------------------------------------- dispatch */

int cmd_tokens(int argc, char **argv)
{
    static const struct {
        const char *name;
        cmd_fn run;
    } subs[] = {{"encode", cmd_encode}, {"decode", cmd_decode}, {"stats", cmd_stats},
                {"atlas", cmd_atlas}};
    if (argc >= 2)
        for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
            if (strcmp(argv[1], subs[i].name) == 0) return subs[i].run(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(tokens_usage, stdout);
        return 0;
    }
    if (argc >= 2) fprintf(stderr, "dalle-c tokens: unknown subcommand '%s'\n", argv[1]);
    fputs(tokens_usage, stderr);
    return 2;
}
