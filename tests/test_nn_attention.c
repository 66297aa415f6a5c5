/* Causal multi-head attention against PyTorch (tests/fixtures/nn_attention.bin: B=2
 * T=5 C=8 NH=2; nn_attention_long.bin: B=1 T=150 C=16 NH=2, over three of the causal
 * row blocks, the last partial; llm.c's qkv [B, T, 3C] layout, att [B, NH, T, T]
 * probabilities with zeros above the diagonal), accumulation, scratch independence and
 * finite differences.
 * The forward's att and the backward's datt scratch are filled with NaN first: the
 * forward must write every att entry (masked ones as 0) and the backward must not read
 * datt before writing it. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* scores are float32 dot products over hs, then exp and a float32 row sum, then a
 * second dot product with v (and the same chain reversed in the backward): ~1e-7 of the
 * tensor's scale, which check_close's floor of 1e-3 * max turns into up to ~1e-4 on
 * entries that cancel to near zero (observed worst 1.04e-5 on dqkv: 3.76554998e-03 vs
 * 3.76558932e-03, 4e-8 absolute against a max of ~3.8). */
#define TOL 1e-4

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

static void test_fixture(const char *name)
{
    printf("attention vs PyTorch (%s)\n", name);
    fx_file_t *f = fx_load(name);
    const int *dims = fx_i32(f, "dims");
    int B = dims[0], T = dims[1], C = dims[2], NH = dims[3];
    printf("  B=%d T=%d C=%d NH=%d\n", B, T, C, NH);
    size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
    size_t n_att = (size_t)B * NH * T * T;
    const float *qkv = fx_f32(f, "qkv"), *dout = fx_f32(f, "dout");
    float *out = zeros(n_out), *att = zeros(n_att), *datt = zeros(n_att);
    float *dqkv = zeros(n_qkv), *want2 = zeros(n_qkv);
    fill_nan(att, n_att);
    nn_attention_forward(out, att, qkv, B, T, C, NH);
    check_close("out", out, fx_f32(f, "out"), n_out, TOL);
    check_close("att (masked entries 0)", att, fx_f32(f, "att"), n_att, TOL);
    fill_nan(datt, n_att);
    nn_attention_backward(dqkv, datt, dout, qkv, att, B, T, C, NH);
    check_close("dqkv", dqkv, fx_f32(f, "dqkv"), n_qkv, TOL);
    fill_nan(datt, n_att);
    nn_attention_backward(dqkv, datt, dout, qkv, att, B, T, C, NH);
    for (size_t i = 0; i < n_qkv; i++) want2[i] = 2 * fx_f32(f, "dqkv")[i];
    check_close("dqkv accumulated twice", dqkv, want2, n_qkv, TOL);
    free(out); free(att); free(datt); free(dqkv); free(want2);
    fx_free(f);
}

typedef struct {
    float *qkv, *out, *att, *r;
    int B, T, C, NH;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    nn_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
    double s = 0;
    for (int i = 0; i < c->B * c->T * c->C; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void test_fd(void)
{
    int B = 2, T = 4, C = 6, NH = 3;
    printf("attention finite differences (B=%d T=%d C=%d NH=%d)\n", B, T, C, NH);
    size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
    size_t n_att = (size_t)B * NH * T * T;
    nn_rng_t rng;
    nn_rng_seed(&rng, 1001);
    fd_ctx_t c = {zeros(n_qkv), zeros(n_out), zeros(n_att), zeros(n_out), B, T, C, NH};
    nn_rng_fill_normal(&rng, c.qkv, n_qkv, 0, 1);
    nn_rng_fill_uniform(&rng, c.r, n_out, -1, 1);
    float *g = zeros(n_qkv), *datt = zeros(n_att);
    fd_loss(&c);
    nn_attention_backward(g, datt, c.r, c.qkv, c.att, B, T, C, NH);
    /* float32 forward, h = 1e-2: O(h^2) truncation plus rounding ~1e-7/h. */
    check_grad_fd("dqkv", fd_loss, &c, c.qkv, g, n_qkv, (int)n_qkv, 1e-2f, 1e-2);
    free(c.qkv); free(c.out); free(c.att); free(c.r); free(g); free(datt);
}

int main(void)
{
    test_fixture("nn_attention");
    test_fixture("nn_attention_long");
    test_fd();
    return test_summary("test_nn_attention");
}
