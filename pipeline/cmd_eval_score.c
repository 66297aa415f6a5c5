/* dalle-c eval score DIR -m MODEL: how well a folder's images fit their sidecar prompts by
 * the model's scorer (rerank/rerank.h): the mean score of each image with its prompt, and
 * text -> image retrieval among the folder's images. */
#include "data/data.h"
#include "nn/nn.h"
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "rerank/rerank.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "dalle-c eval score"
#define BATCH 32

static const char *const usage =
    "usage: dalle-c eval score IMAGE_DIR [-m MODEL] [--quiet] [-t THREADS]\n"
    "\n"
    "Scores each image of IMAGE_DIR (searched recursively) against its prompt, the first\n"
    "line of the sidecar NAME.txt (the layout `dalle-c --prompts` writes), with the\n"
    "scorer of MODEL (a model file holding one, or a scorer file from `dalle-c rerank\n"
    "train`; default: as generation finds its model). The score is the cosine similarity\n"
    "of the scorer's image and text embeddings (-1..1, higher fits better). Also ranks\n"
    "every image for every prompt (text -> image retrieval among the folder's images; an\n"
    "image whose prompt is the very same text counts as a match). Prints a line per image\n"
    "(name, score, prompt) unless --quiet, and last a machine-readable summary line:\n"
    "  score-eval images=N mean_score=0.2512 top1=0.4100 top5=0.7800 unreadable=0\n"
    "Images without a prompt are left out; unreadable ones are counted and skipped.\n"
    "Exit status: 0 ok, 1 runtime failure (model without a scorer, no image), 2 usage.\n";

int cmd_eval_score(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *dir = NULL, *given = NULL, *v;
    int quiet = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (!(given = arg_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (!(v = arg_value(CMD, argc, argv, &i)) || arg_int(CMD, a, v, 1, 1024, &threads)) return 2;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, CMD ": unknown option '%s'\n%s", a, usage);
            return 2;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, CMD ": one IMAGE_DIR only (got '%s' and '%s')\n", dir, a);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, CMD ": needs IMAGE_DIR\n%s", usage);
        return 2;
    }
    if (threads) nn_set_threads(threads);
    char buf[4200], err[256];
    const char *model = cmd_find_model(given, buf, sizeof buf);
    if (!model) return 1;
    rerank_t *m = NULL;
    tok_t *tok = NULL;
    ds_t *ds = NULL;
    float *pix = NULL, *img = NULL, *txt = NULL;
    const char **caps = NULL;
    int *ids = NULL, rc = 1;
    if (rerank_load(&m, &tok, model, BATCH, 0, err)) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    const rerank_config_t *c = rerank_config(m);
    ds_config_t dc = ds_config_default();
    dc.size = c->image_size;
    dc.holdout = 0;
    dc.require_captions = 1;
    if (ds_open(&ds, dir, &dc, err)) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    const size_t bad = ds_verify(ds, NULL, NULL), n = ds_count(ds, DS_TRAIN);
    if (n == 0) {
        fprintf(stderr, CMD ": %s: no readable image with a prompt\n", dir);
        goto done;
    }
    const size_t E = (size_t)c->embed_dim, per = (size_t)3 * c->image_size * c->image_size;
    pix = malloc(BATCH * per * sizeof(float));
    img = malloc(n * E * sizeof(float));
    txt = malloc(n * E * sizeof(float));
    caps = malloc(n * sizeof *caps);
    ids = malloc((size_t)BATCH * c->text_len * sizeof(int));
    if (!pix || !img || !txt || !caps || !ids) {
        fprintf(stderr, CMD ": out of memory for %zu images\n", n);
        goto done;
    }
    size_t idx[BATCH];
    double sum = 0;
    for (size_t i0 = 0; i0 < n; i0 += BATCH) {
        const int nb = n - i0 < BATCH ? (int)(n - i0) : BATCH;
        for (int j = 0; j < nb; j++) {
            idx[j] = i0 + (size_t)j;
            caps[i0 + j] = ds_caption_line(ds, DS_TRAIN, i0 + (size_t)j, 0);
            if (rerank_encode_text(c, tok, caps[i0 + j], ids + (size_t)j * c->text_len, err) < 0) {
                fprintf(stderr, CMD ": %s: %s\n", ds_name(ds, DS_TRAIN, i0 + (size_t)j), err);
                goto done;
            }
        }
        if (ds_batch_fill(ds, DS_TRAIN, idx, nb, pix, DS_NCHW, NULL, 0, err)) {
            fprintf(stderr, CMD ": %s\n", err);
            goto done;
        }
        if (rerank_encode(m, pix, ids, nb)) {
            fprintf(stderr, CMD ": %s\n", rerank_errmsg(m));
            goto done;
        }
        memcpy(img + i0 * E, rerank_image_emb(m), (size_t)nb * E * sizeof(float));
        memcpy(txt + i0 * E, rerank_text_emb(m), (size_t)nb * E * sizeof(float));
        for (int j = 0; j < nb; j++) {
            const float *a = img + (i0 + (size_t)j) * E, *b = txt + (i0 + (size_t)j) * E;
            float s = 0;
            for (size_t k = 0; k < E; k++) s += a[k] * b[k];
            sum += s;
            if (!quiet) printf("%s\t%.4f\t%s\n", ds_name(ds, DS_TRAIN, i0 + (size_t)j), s, caps[i0 + j]);
        }
    }
    rerank_retrieval_t r;
    rerank_retrieval(txt, img, (int)n, (int)E, caps, &r);
    if (!quiet)
        printf("\n%zu images: mean score %.4f; text->image retrieval among them: top-1 %.2f%%, "
               "top-5 %.2f%%\n", n, sum / (double)n, 100.0 * r.hits1 / (double)n,
               100.0 * r.hits5 / (double)n);
    printf("score-eval images=%zu mean_score=%.4f top1=%.4f top5=%.4f unreadable=%zu\n", n,
           sum / (double)n, (double)r.hits1 / (double)n, (double)r.hits5 / (double)n, bad);
    rc = 0;
done:
    rerank_free(m);
    tok_free(tok);
    ds_close(ds);
    free(pix), free(img), free(txt), free(caps), free(ids);
    return rc;
}
