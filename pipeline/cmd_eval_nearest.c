/* dalle-c eval nearest: does a generated image look like a training image of what its
 * prompt names? Each image's nearest neighbours in pixel space among a captioned
 * training folder, and whether one of the top K has the prompt as its name. */
#include "data/data.h"
#include "pipeline/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "dalle-c eval nearest"
#define MAX_TOP 32

static const char *usage =
    "usage: dalle-c eval nearest IMAGE_DIR --train TRAIN_DIR [--top K] [--size S]\n"
    "\n"
    "For each image of IMAGE_DIR with a prompt (first line of the sidecar NAME.txt, as\n"
    "`dalle-c --prompts` writes), finds its K nearest images of TRAIN_DIR in pixel space\n"
    "(squared distance over RGB in [-1, 1], both resized and centre-cropped to S x S)\n"
    "and counts a hit when one of them shows what the prompt names. A training image's\n"
    "name is the first line of its caption file without a last clause ending in\n"
    "\" style\" (\"red apple, twitter style\" is named \"red apple\"); a neighbour shows\n"
    "what the prompt names when its file name (without folders) is that of an image\n"
    "named by the prompt: the emoji sets name files by code point, one folder a style,\n"
    "so any style of the same emoji counts, whatever name that set gives it. Prints a\n"
    "line per image (name, rank of the first hit or miss, prompt, the neighbours) and a\n"
    "machine-readable summary line:\n"
    "  nearest-eval images=N top1=0.2000 topK=0.5400 k=5 train=N unnamed=0\n"
    "\n"
    "  --train DIR   the training images (searched recursively; captions required)\n"
    "  --top K       neighbours looked at, 1..32 (default 5)\n"
    "  --size S      pixel grid compared, 8..256 (default 64; images of both folders\n"
    "                are resized to it)\n"
    "  --quiet       print only the summary\n"
    "  -t THREADS    threads\n"
    "Exit status: 0 ok, 1 runtime failure (unreadable folder, no image), 2 usage.\n";

/* The name an image is known by: its first caption line, without ", ... style". */
static void image_name(char *out, size_t n, const char *line)
{
    snprintf(out, n, "%s", line);
    char *comma = strrchr(out, ',');
    size_t len = strlen(out);
    if (comma && len >= 6 && strcmp(out + len - 6, " style") == 0) *comma = 0;
}

/* "twitter/1f34e.png" and "google/1f34e.png": the same emoji in two styles. */
static int same_file_name(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    return strcmp(sa ? sa + 1 : a, sb ? sb + 1 : b) == 0;
}

typedef struct {
    float dist[MAX_TOP];
    size_t index[MAX_TOP];
    int n;
} top_t;

static void top_insert(top_t *t, int k, float d, size_t index)
{
    if (t->n == k && d >= t->dist[k - 1]) return;
    int at = t->n < k ? t->n++ : k - 1;
    while (at > 0 && t->dist[at - 1] > d) {
        t->dist[at] = t->dist[at - 1], t->index[at] = t->index[at - 1];
        at--;
    }
    t->dist[at] = d, t->index[at] = index;
}

static int open_folder(ds_t **ds, const char *dir, int size)
{
    ds_config_t dc = ds_config_default();
    dc.size = size;
    dc.holdout = 0;
    dc.require_captions = 1;
    char err[256];
    if (ds_open(ds, dir, &dc, err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    return 0;
}

/* Every image of ds as planar floats, one after another; NULL on failure (message
 * printed). Undecodable images are an error: a silent gap would skew the figure. */
static float *load_all(ds_t *ds, size_t per_image)
{
    size_t n = ds_count(ds, DS_TRAIN);
    float *px = malloc(n * per_image * sizeof *px);
    if (!px) {
        fprintf(stderr, CMD ": out of memory for %zu images of %s\n", n, ds_root(ds));
        return NULL;
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = 0; i < n; i++) {
        char err[256];
        if (ds_load(ds, DS_TRAIN, i, px + i * per_image, per_image / 3, err) != 0) {
#pragma omp critical
            {
                if (!failed) fprintf(stderr, CMD ": %s/%s: %s\n", ds_root(ds), ds_name(ds, DS_TRAIN, i), err);
                failed = 1;
            }
        }
    }
    if (failed) {
        free(px);
        return NULL;
    }
    return px;
}

int eval_nearest(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *dir = NULL, *train_dir = NULL;
    int k = 5, size = 64, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--train") == 0 && has_value) train_dir = argv[++i];
        else if (strcmp(a, "--top") == 0 && has_value) k = atoi(argv[++i]);
        else if (strcmp(a, "--size") == 0 && has_value) size = atoi(argv[++i]);
        else if (strcmp(a, "--quiet") == 0) quiet = 1;
        else if ((strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) && has_value && atoi(argv[i + 1]) > 0)
            nn_set_threads(atoi(argv[++i]));
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, CMD ": unknown option or missing value '%s'\n%s", a, usage);
            return 2;
        } else if (dir) {
            fprintf(stderr, CMD ": one IMAGE_DIR only\n%s", usage);
            return 2;
        } else {
            dir = a;
        }
    }
    if (!dir || !train_dir) {
        fprintf(stderr, CMD ": %s\n%s", dir ? "missing --train TRAIN_DIR" : "missing IMAGE_DIR", usage);
        return 2;
    }
    if (k < 1 || k > MAX_TOP || size < 8 || size > 256) {
        fprintf(stderr, CMD ": %s out of range\n%s", k < 1 || k > MAX_TOP ? "--top" : "--size", usage);
        return 2;
    }

    ds_t *gen = NULL, *train = NULL;
    if (open_folder(&gen, dir, size) || open_folder(&train, train_dir, size)) {
        ds_close(gen);
        return 1;
    }
    size_t per_image = (size_t)3 * size * size;
    size_t n_gen = ds_count(gen, DS_TRAIN), n_train = ds_count(train, DS_TRAIN);
    float *gen_px = load_all(gen, per_image);
    float *train_px = gen_px ? load_all(train, per_image) : NULL;
    top_t *top = calloc(n_gen, sizeof *top);
    if (!train_px || !top) {
        if (train_px && !top) fprintf(stderr, CMD ": out of memory\n");
        free(gen_px), free(train_px), free(top), ds_close(gen), ds_close(train);
        return 1;
    }

    /* One generated image a task: its distances to every training image, keeping the K
     * smallest (ties go to the earlier training image, so the result is deterministic). */
#pragma omp parallel for schedule(dynamic)
    for (size_t g = 0; g < n_gen; g++) {
        const float *a = gen_px + g * per_image;
        for (size_t t = 0; t < n_train; t++) {
            const float *b = train_px + t * per_image;
            float d = 0;
            for (size_t j = 0; j < per_image; j++) d += (a[j] - b[j]) * (a[j] - b[j]);
            top_insert(&top[g], k, d, t);
        }
    }

    long hits_top1 = 0, hits = 0, unnamed = 0;
    char name[1024];
    for (size_t g = 0; g < n_gen; g++) {
        const char *prompt = ds_caption_line(gen, DS_TRAIN, g, 0);
        int rank = 0, named = 0;
        for (size_t t = 0; t < n_train; t++) {
            image_name(name, sizeof name, ds_caption_line(train, DS_TRAIN, t, 0));
            if (strcmp(name, prompt) != 0) continue;
            named = 1;
            for (int r = 0; r < top[g].n; r++)
                if (same_file_name(ds_name(train, DS_TRAIN, t), ds_name(train, DS_TRAIN, top[g].index[r])) &&
                    (!rank || r + 1 < rank))
                    rank = r + 1;
        }
        unnamed += !named;
        hits += rank > 0, hits_top1 += rank == 1;
        if (quiet) continue;
        printf("%s\t%s\t%s\t", ds_name(gen, DS_TRAIN, g), rank ? "hit" : "miss", prompt);
        for (int r = 0; r < top[g].n; r++) {
            image_name(name, sizeof name, ds_caption_line(train, DS_TRAIN, top[g].index[r], 0));
            printf("%s%s (%s)", r ? "; " : "", name, ds_name(train, DS_TRAIN, top[g].index[r]));
        }
        if (rank) printf("\trank %d", rank);
        putchar('\n');
    }
    if (unnamed)
        fprintf(stderr, CMD ": %ld prompt%s name%s no training image (counted as misses)\n", unnamed,
                unnamed == 1 ? "" : "s", unnamed == 1 ? "s" : "");
    printf("nearest-eval images=%zu top1=%.4f topK=%.4f k=%d train=%zu unnamed=%ld\n", n_gen,
           n_gen ? (double)hits_top1 / (double)n_gen : 0.0, n_gen ? (double)hits / (double)n_gen : 0.0, k,
           n_train, unnamed);
    free(gen_px), free(train_px), free(top);
    ds_close(gen), ds_close(train);
    return 0;
}
