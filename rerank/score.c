/* Scoring images against a text, and text -> image retrieval accuracy. */
#include "rerank/rerank_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

int rerank_score(rerank_t *m, tok_t *tok, const char *text, const float *images, int n,
                 float *scores, char err[RERANK_ERR_SIZE])
{
    const rerank_config_t *c = &m->c;
    const int E = c->embed_dim;
    const size_t per = (size_t)3 * c->image_size * c->image_size;
    int *ids = malloc((size_t)c->text_len * sizeof(int));
    float *txt = malloc((size_t)E * sizeof(float));
    int rc = -1;
    if (!ids || !txt) {
        rr_fail(err, "rerank: out of memory");
        goto done;
    }
    if (rerank_encode_text(c, tok, text, ids, err) < 0) goto done;
    if (rerank_encode(m, NULL, ids, 1)) {
        rr_fail(err, "%s", m->err);
        goto done;
    }
    memcpy(txt, m->a.txt_emb, (size_t)E * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += m->max_batch) {
        const int nb = n - i0 < m->max_batch ? n - i0 : m->max_batch;
        if (rerank_encode(m, images + (size_t)i0 * per, NULL, nb)) {
            rr_fail(err, "%s", m->err);
            goto done;
        }
        for (int i = 0; i < nb; i++) {
            const float *e = m->a.img_emb + (size_t)i * E;
            float dot = 0.0f;
            for (int k = 0; k < E; k++) dot += e[k] * txt[k];
            scores[i0 + i] = dot;
        }
    }
    rc = 0;
done:
    free(ids);
    free(txt);
    return rc;
}

void rerank_retrieval(const float *txt, const float *img, int n, int E,
                      const char *const *captions, rerank_retrieval_t *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n < 1) return;
    /* one row of similarities at a time: caption i against every image */
    float *row = malloc((size_t)n * sizeof(float));
    if (!row) {
        out->n = 0;
        return;
    }
    double pair = 0.0;
    for (int i = 0; i < n; i++) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, E, 1.0f, img, E, txt + (size_t)i * E, 1, 0.0f,
                    row, 1);
        pair += row[i];
        /* the best score among the caption's matches, then how many images beat it */
        float best = row[i];
        for (int j = 0; captions && j < n; j++)
            if (j != i && row[j] > best && strcmp(captions[j], captions[i]) == 0) best = row[j];
        int above = 0;
        for (int j = 0; j < n && above < 5; j++) above += row[j] > best;
        out->hits1 += above < 1;
        out->hits5 += above < 5;
    }
    out->mean_pair_score = pair / n;
    free(row);
}
