/* Embedding against PyTorch (tests/fixtures/nn_embedding.bin: V=6 C=4, ids with
 * repeats, so dtable rows sum several dout rows), accumulation and finite differences. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

typedef struct {
    float *table, *out, *r;
    const int *ids;
    int N, C;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    nn_embedding_forward(c->out, c->ids, c->table, c->N, c->C);
    double s = 0;
    for (int i = 0; i < c->N * c->C; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

int main(void)
{
    printf("embedding vs PyTorch\n");
    fx_file_t *f = fx_load("nn_embedding");
    fx_tensor_t *tt = fx_get(f, "table");
    int V = (int)tt->dims[0], C = (int)tt->dims[1], N = (int)fx_get(f, "ids")->numel;
    const int *ids = fx_i32(f, "ids");
    float *out = zeros((size_t)N * C), *dt = zeros((size_t)V * C), *want2 = zeros((size_t)V * C);
    nn_embedding_forward(out, ids, fx_f32(f, "table"), N, C);
    check_close("out", out, fx_f32(f, "out"), (size_t)N * C, 0);
    nn_embedding_backward(dt, fx_f32(f, "dout"), ids, N, C);
    /* rows hit by several ids sum up to 3 float32 values in whatever order */
    check_close("dtable", dt, fx_f32(f, "dtable"), (size_t)V * C, 1e-6);
    nn_embedding_backward(dt, fx_f32(f, "dout"), ids, N, C);
    for (int i = 0; i < V * C; i++) want2[i] = 2 * fx_f32(f, "dtable")[i];
    check_close("dtable accumulated twice", dt, want2, (size_t)V * C, 1e-6);

    printf("embedding finite differences\n");
    nn_rng_t rng;
    nn_rng_seed(&rng, 909);
    fd_ctx_t c = {zeros((size_t)V * C), out, zeros((size_t)N * C), ids, N, C};
    nn_rng_fill_normal(&rng, c.table, (size_t)V * C, 0, 1);
    nn_rng_fill_uniform(&rng, c.r, (size_t)N * C, -1, 1);
    float *g = zeros((size_t)V * C);
    nn_embedding_backward(g, c.r, ids, N, C);
    /* the loss is linear in the table: only float32 rounding of the loss over 2h */
    check_grad_fd("dtable", fd_loss, &c, c.table, g, (size_t)V * C, V * C, 1e-2f, 1e-3);

    /* wider than the layer's 32-column blocks (C = 70: 3 blocks, the last partial) */
    printf("embedding vs loops (V=5 C=70, ids repeat)\n");
    enum { WV = 5, WC = 70, WN = 9 };
    static const int wids[WN] = {4, 0, 4, 2, 4, 1, 0, 3, 2};
    float *wt = zeros(WV * WC), *wd = zeros(WN * WC), *wo = zeros(WN * WC);
    float *gdt = zeros(WV * WC), *wantd = zeros(WV * WC);
    nn_rng_fill_normal(&rng, wt, WV * WC, 0, 1);
    nn_rng_fill_normal(&rng, wd, WN * WC, 0, 1);
    nn_embedding_forward(wo, wids, wt, WN, WC);
    int same = 1;
    for (int i = 0; i < WN; i++)
        for (int k = 0; k < WC; k++) same &= wo[i * WC + k] == wt[wids[i] * WC + k];
    check(same, "out rows are the table rows of the ids");
    for (int i = 0; i < WN; i++)
        for (int k = 0; k < WC; k++) wantd[wids[i] * WC + k] += wd[i * WC + k];
    nn_embedding_backward(gdt, wd, wids, WN, WC);
    check_close("dtable", gdt, wantd, WV * WC, 1e-6);
    free(wt); free(wd); free(wo); free(gdt); free(wantd);
    free(out); free(dt); free(want2); free(c.table); free(c.r); free(g);
    fx_free(f);
    return test_summary("test_nn_embedding");
}
