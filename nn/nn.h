/* nn: the layers both models are made of, with forward and backward passes.
 *
 * Conventions (llm.c's):
 * - float32, row-major, contiguous. Every function writes its outputs and reads its
 *   inputs; no function allocates. Scratch buffers are passed in by the caller.
 * - Forward functions overwrite their output. Backward functions ACCUMULATE (+=) into
 *   every gradient they are given (zero them once per step), so residual branches need
 *   no special case. A gradient pointer may be NULL when it is not wanted.
 * - Parameters use PyTorch's layouts (nn.Linear weight is [out, in], Conv2d weight is
 *   [OC, C, K, K], ConvTranspose2d weight is [C, OC, K, K]) so fixtures and exported
 *   weights need no reshuffling.
 *
 * Convolution activations use the layout [C, B, H, W] ("CNHW": channel outermost, then
 * batch), not PyTorch's [B, C, H, W]. With channels outermost a whole batch is one
 * matrix [C, B*H*W], so a convolution is exactly one sgemm over the batch with no
 * transposes, and a 1x1 convolution is a plain matrix product. nn_nchw_to_cnhw()
 * converts at the edges (image input, fixtures).
 */
#ifndef DALLEC_NN_H
#define DALLEC_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- BLAS and threads */

/* Loops over fewer values than this run on one thread: below it a parallel region
 * costs more than it saves (and far more on a machine busy with other work). */
#define NN_PARALLEL_MIN 32768

/* The OpenBLAS core type this CPU should use, e.g. "SkylakeX", or NULL when the one
 * OpenBLAS picked (openblas_get_corename()) is already a good one. Debian's OpenBLAS
 * 0.3.21 detects some recent CPUs as old cores (Prescott: SSE3 kernels, 3-5x slower);
 * the core is chosen when the library loads, so the fix is OPENBLAS_CORETYPE in the
 * environment of a fresh exec (see pipeline/main.c). */
const char *nn_blas_better_core(void);
/* The core to ask for on this CPU whatever OpenBLAS picked: "SkylakeX" with AVX-512,
 * "Haswell" with AVX2 and FMA, else NULL. */
const char *nn_blas_preferred_core(void);
/* The core OpenBLAS is using, e.g. "Cooperlake". */
const char *nn_blas_core(void);
/* Threads used by OpenMP loops and BLAS alike (one libgomp pool). */
void nn_set_threads(int n);
int nn_threads(void);
/* Monotonic clock in seconds, for timing steps. */
double nn_now_seconds(void);

/* ---------------------------------------------------------------- RNG */

/* xoshiro256** seeded through SplitMix64 (algorithms by Vigna and Blackman, see
 * nn/rng.c). The integer, uniform and Gumbel streams are bit-identical on every machine
 * (Gumbel through nn/nn_math.h's logf); normal draws go through libm's logf and cosf. */
typedef struct {
    uint64_t s[4];
} nn_rng_t;

void nn_rng_seed(nn_rng_t *r, uint64_t seed);
/* A seed for one of a run's random streams, from the run's seed and two indices (step,
 * purpose, chunk...): the streams of a training run are functions of (seed, step), so a
 * resumed run draws exactly what an uninterrupted one would. */
uint64_t nn_seed_mix(uint64_t seed, uint64_t a, uint64_t b);
uint64_t nn_rng_u64(nn_rng_t *r);
uint32_t nn_rng_below(nn_rng_t *r, uint32_t n);   /* uniform in [0, n), unbiased */
float nn_rng_uniform(nn_rng_t *r);               /* [0, 1), 24 random bits */
float nn_rng_uniform_open(nn_rng_t *r);          /* (0, 1): never 0 nor 1 */
float nn_rng_normal(nn_rng_t *r);                /* N(0, 1), Box-Muller */
void nn_rng_fill_normal(nn_rng_t *r, float *x, size_t n, float mean, float std);
void nn_rng_fill_uniform(nn_rng_t *r, float *x, size_t n, float lo, float hi);
/* Gumbel(0, 1) noise -log(-log u), as used by the Gumbel-softmax. */
void nn_rng_fill_gumbel(nn_rng_t *r, float *x, size_t n);

/* ---------------------------------------------------------------- linear */

/* out[N, OC] = in[N, C] @ w[OC, C]^T + b[OC]   (b may be NULL) */
void nn_linear_forward(float *out, const float *in, const float *w, const float *b,
                       int N, int C, int OC);
void nn_linear_backward(float *din, float *dw, float *db, const float *dout,
                        const float *in, const float *w, int N, int C, int OC);

/* Inference with few rows (sampling: one row per image and step): nn_linear_forward's
 * product with w [OC, C] packed once by nn_linear_pack into panels of NN_PANEL output
 * columns (nn_linear_packed_size(C, OC) floats), so that every product after reads the
 * weights once for all rows, where sgemm repacks them on every call. Any N works; the
 * gain is at N up to a few dozen rows. A row's outputs do not depend on the other rows,
 * nor on the number of threads, nor on AVX-512 against AVX2 (the same fused multiply-add
 * chain over c in order); the scalar path rounds differently. */
#define NN_PANEL 64
size_t nn_linear_packed_size(int C, int OC);
void nn_linear_pack(float *packed, const float *w, int C, int OC);
void nn_linear_packed_forward(float *out, const float *in, const float *packed,
                              const float *b, int N, int C, int OC);

/* The code paths of the packed product, widest last. nn_linear_packed_forward takes the
 * widest this CPU runs; the _simd variant a given one (tests and benches compare them;
 * one wider than the CPU runs falls back to nn_simd_best()). */
typedef enum { NN_SIMD_SCALAR, NN_SIMD_AVX2, NN_SIMD_AVX512 } nn_simd_t;
nn_simd_t nn_simd_best(void);
const char *nn_simd_name(nn_simd_t s);
void nn_linear_packed_forward_simd(float *out, const float *in, const float *packed,
                                   const float *b, int N, int C, int OC, nn_simd_t simd);

/* ---------------------------------------------------------------- convolution */

typedef struct {
    int B;        /* batch */
    int C, H, W;  /* input channels and size */
    int OC;       /* output channels */
    int K;        /* square kernel size */
    int stride, pad;
} nn_conv_dims_t;

int nn_conv2d_out_size(int in, int K, int stride, int pad);
int nn_convt2d_out_size(int in, int K, int stride, int pad);

/* Conv2d, activations in CNHW: in [C, B, H, W] -> out [OC, B, OH, OW].
 * cols, dcols: scratch of nn_conv2d_cols_size(d) floats each, for the im2col of a chunk
 * of the batch (chunks keep it in cache); nothing in them needs to survive between the
 * forward and the backward. Both are unused, and may be NULL, for 1x1 stride-1
 * unpadded convolutions; dcols may be NULL when din is. */
size_t nn_conv2d_cols_size(const nn_conv_dims_t *d);
void nn_conv2d_forward(float *out, float *cols, const float *in, const float *w,
                       const float *b, const nn_conv_dims_t *d);
void nn_conv2d_backward(float *din, float *dw, float *db, float *dcols, const float *dout,
                        float *cols, const float *in, const float *w,
                        const nn_conv_dims_t *d);

/* ConvTranspose2d (the adjoint of Conv2d), CNHW: in [C, B, H, W] -> out
 * [OC, B, OH, OW], OH = (H-1)*stride - 2*pad + K. w is [C, OC, K, K] as in PyTorch.
 * cols: scratch of nn_convt2d_cols_size(d) floats, used by forward and backward alike;
 * nothing in it needs to survive between them. */
size_t nn_convt2d_cols_size(const nn_conv_dims_t *d);
void nn_convt2d_forward(float *out, float *cols, const float *in, const float *w,
                        const float *b, const nn_conv_dims_t *d);
void nn_convt2d_backward(float *din, float *dw, float *db, float *cols, const float *dout,
                         const float *in, const float *w, const nn_conv_dims_t *d);

/* [B, C, H*W] <-> [C, B, H*W] */
void nn_nchw_to_cnhw(float *out, const float *in, int B, int C, int HW);
void nn_cnhw_to_nchw(float *out, const float *in, int B, int C, int HW);

/* ---------------------------------------------------------------- elementwise */

void nn_relu_forward(float *out, const float *in, size_t n);
/* din += dout where out > 0 (out may alias in for in-place ReLU) */
void nn_relu_backward(float *din, const float *dout, const float *out, size_t n);

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void nn_gelu_forward(float *out, const float *in, size_t n);
void nn_gelu_backward(float *din, const float *dout, const float *in, size_t n);

/* out = a + b */
void nn_add(float *out, const float *a, const float *b, size_t n);

/* ---------------------------------------------------------------- normalisation */

/* LayerNorm over the last dimension C of in [N, C], eps 1e-5 as PyTorch.
 * mean, rstd [N]: saved by the forward for the backward. */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                          const float *w, const float *b, int N, int C);
void nn_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                           const float *in, const float *w, const float *mean,
                           const float *rstd, int N, int C);

/* ---------------------------------------------------------------- softmax family */

/* Row softmax over the last dimension of in [N, C]. */
void nn_softmax_forward(float *out, const float *in, int N, int C);
/* din += out * (dout - sum(dout * out)) */
void nn_softmax_backward(float *din, const float *dout, const float *out, int N, int C);

/* Cross-entropy as torch.nn.functional.cross_entropy(logits, target, weight,
 * ignore_index, reduction="mean"): returns
 *   sum_i weight[t_i] * -log softmax(logits_i)[t_i] / sum_i weight[t_i]
 * over rows whose target is not ignore_index (weight NULL: all ones). Returns 0 when
 * every row is ignored. probs [N, C] receives the softmax (kept for the backward). */
float nn_cross_entropy_forward(float *probs, const float *logits, const int *target,
                               const float *weight, int ignore_index, int N, int C);
/* dlogits += dloss * d(loss)/d(logits) */
void nn_cross_entropy_backward(float *dlogits, const float *probs, const int *target,
                               const float *weight, int ignore_index, float dloss,
                               int N, int C);

/* Gumbel-softmax over rows of logits [N, K]:
 *   y_soft = softmax((logits + g) / tau), g = Gumbel noise [N, K] given by the caller
 *   (nn_rng_fill_gumbel, or NULL for no noise as at inference).
 * hard = 0: out = y_soft. hard = 1 (straight-through): out = one_hot(argmax y_soft)
 * in the forward, and the gradient flows as if out were y_soft.
 * y_soft [N, K] is kept for the backward; out may be y_soft itself when hard = 0. */
void nn_gumbel_softmax_forward(float *out, float *y_soft, const float *logits,
                               const float *noise, float tau, int hard, int N, int K);
void nn_gumbel_softmax_backward(float *dlogits, const float *dout, const float *y_soft,
                                float tau, int N, int K);

/* ---------------------------------------------------------------- embedding */

/* out[i, :] = table[ids[i], :] for ids [N], table [V, C]. Ids must be in [0, V). */
void nn_embedding_forward(float *out, const int *ids, const float *table, int N, int C);
void nn_embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C);

/* ---------------------------------------------------------------- attention */

/* Causal multi-head self-attention as in GPT-2 (llm.c's layout):
 *   qkv [B, T, 3C] holds q | k | v, each split into NH heads of C/NH columns;
 *   out [B, T, C] = concat_h softmax(q_h k_h^T / sqrt(hs) + causal mask) v_h.
 * att [B, NH, T, T] keeps the attention probabilities for the backward (0 above the
 * diagonal). The products run on causal row blocks and skip most of the masked square. */
void nn_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                          int NH);
/* How many (row, column) scores of one head's T x T square the products compute (for
 * FLOP counts: each costs hs multiply-adds in each of the four backward products). */
double nn_attention_pairs(int T);
/* datt: scratch [B, NH, T, T] (its entries above the diagonal are left as they are). */
void nn_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, int B, int T, int C, int NH);

/* ---------------------------------------------------------------- optimisation */

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} nn_adamw_t;

/* PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2. */
nn_adamw_t nn_adamw_default(void);

/* One torch.optim.AdamW step (t counts from 1) over n parameters, with first and
 * second moments m, v of the same length (zero before the first step). */
void nn_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                   const nn_adamw_t *opt, long t);

/* Learning rate at step t (counting from 0): linear warmup from 0 over `warmup` steps,
 * then cosine decay from lr to lr_min at step `total`. */
float nn_lr_schedule(long t, long warmup, long total, float lr, float lr_min);

/* Global L2 norm of grad, as torch.nn.utils.clip_grad_norm_: when it exceeds
 * max_norm, every gradient is scaled by max_norm / (norm + 1e-6). Returns the norm
 * before clipping. */
float nn_clip_grad_norm(float *grad, size_t n, float max_norm);

/* ---------------------------------------------------------------- transformer block */

/* GPT-2's pre-LN block over B sequences of T rows of width C (the transformer's and the
 * scorer's text encoder's):
 *   res2 = x + proj(attn(LN1(x))),   res3 = res2 + proj(gelu_tanh(fc(LN2(res2))))
 * with causal NH-head attention (nn_attention) and fc 4C wide; every linear is biased
 * (nn.Linear layouts). The same struct names a block's parameters and its gradients. */
typedef struct {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attn_proj_w, *attn_proj_b;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *mlp_proj_w, *mlp_proj_b;
} nn_block_t;

/* What the forward keeps for the backward, N = B*T rows. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* [N, C], [N], [N] */
    float *qkv;                       /* [N, 3C] */
    float *atty;                      /* [N, C] attention output before proj */
    float *att;                       /* [B, NH, T, T] probabilities */
    float *res2;                      /* [N, C] x after the attention branch */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;            /* [N, 4C] */
    float *res3;                      /* [N, C] the block's output */
} nn_block_acts_t;

/* Backward scratch, reusable by every block: dln, datty [N, C], dqkv [N, 3C],
 * datt [B, NH, T, T], dfch, dgelu [N, 4C]. */
typedef struct {
    float *dln, *datty, *dqkv, *datt, *dfch, *dgelu;
} nn_block_scratch_t;

/* x [N, C] -> h->res3. tmp: scratch [N, C]. */
void nn_block_forward(nn_block_acts_t *h, float *tmp, const float *x, const nn_block_t *w, int B,
                      int T, int C, int NH);
/* dx [N, C]: d(loss)/d(res3) on entry, d(loss)/d(x) on return (in place: the residual
 * passes it through and both branches add to it). Accumulates into g. */
void nn_block_backward(float *dx, const nn_block_t *g, const nn_block_acts_t *h, const float *x,
                       const nn_block_t *w, const nn_block_scratch_t *s, int B, int T, int C,
                       int NH);

/* ---------------------------------------------------------------- contrastive (CLIP) */

/* Rows of in [N, C] scaled to unit length, as torch.nn.functional.normalize(x, dim=1):
 * out = x / max(|x|, 1e-12). norm [N] keeps |x| for the backward; out may be in. */
void nn_l2norm_forward(float *out, float *norm, const float *in, int N, int C);
/* din += (dout - out <dout, out>) / |x|   (out: the forward's output) */
void nn_l2norm_backward(float *din, const float *dout, const float *out, const float *norm,
                        int N, int C);

/* CLIP's symmetric contrastive loss over n pairs of embeddings img [n, E], txt [n, E]
 * (pair i is image i with caption i):
 *   logits = e^log_scale img @ txt^T   [n, n], row i: image i against every caption
 *   loss = (CE(logits, diag) + CE(logits^T, diag)) / 2, each CE a mean over n rows.
 * p_img [n, n] receives the row softmax (image -> captions), p_txt [n, n] the column
 * softmax stored by rows (row j: caption j -> images); both are kept for the backward. */
float nn_contrastive_forward(float *logits, float *p_img, float *p_txt, const float *img,
                             const float *txt, float log_scale, int n, int E);
/* dimg, dtxt [n, E] and *dlog_scale += dloss * the loss's gradients (any may be NULL);
 * dlogits: scratch [n, n]. */
void nn_contrastive_backward(float *dimg, float *dtxt, float *dlog_scale, float *dlogits,
                             const float *logits, const float *p_img, const float *p_txt,
                             const float *img, const float *txt, float log_scale, float dloss,
                             int n, int E);

#endif
