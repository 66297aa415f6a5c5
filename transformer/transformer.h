/* transformer: the decoder-only transformer over [text ; image] tokens (DESIGN.md,
 * "Transformer"): model, one training step, and KV-cache sampling.
 *
 * Sequence. A caption is T text ids (PAD-padded), an image G*G ids in [0, K) in
 * row-major order. The model reads
 *     position  0        1 .. T          T+1 .. T+G*G-1
 *     token     BOS      text[0..T-1]    image[0..G*G-2]
 * (L = T + G*G positions) and position p predicts the token at p+1: positions 0..T-1
 * predict text[0..T-1] through the text head, positions T..L-1 predict image[0..G*G-1]
 * through the image head.
 *
 * Embeddings. BOS and text ids share one table (V_text rows: the tokenizer's vocabulary,
 * PAD and BOS included); image ids have their own (K rows). Text positions 0..T (BOS
 * included) have a learned position table of T+1 rows; image token i (row i/G, column
 * i%G) adds row_table[i/G] + col_table[i%G] (axial), and no text position.
 *
 * Blocks (GPT-2, pre-LN): x += proj(attn(LN1(x))) with causal multi-head attention,
 * x += proj(gelu_tanh(fc(LN2(x)))) with fc 4d wide; a final LN; then the two heads.
 * Every linear has a bias, as GPT-2's. The heads are NOT tied to the embeddings and DO
 * have a bias (GPT-2's lm_head has neither): the image head's bias learns the codebook's
 * marginal token frequencies at once, which matters in short CPU runs, and tying an
 * input table that also carries no position to an output head buys nothing at this size.
 *
 * Loss = (w_t * CE_text + w_i * CE_image) / (w_t + w_i). CE_text is the mean over text
 * targets that are not PAD (PAD targets are ignored; 0 when a batch has none), CE_image
 * the mean over all B*G*G image targets.
 *
 * Caption dropout ("null caption") for classifier-free guidance: with probability p_null
 * a training caption is replaced by T PADs (gpt_drop_captions, applied by the training
 * loop to its batch before gpt_forward, so the forward stays a pure function of its
 * inputs). The sequence is then [BOS, PAD x T, image...]; BOS and the text positions are
 * kept, so the model learns p(image | no caption) at the very same positions. A null
 * caption has no text loss (all its text targets are PAD). Sampling's unconditional branch
 * feeds exactly this sequence, and guided logits are
 *     l = l_uncond + s * (l_cond - l_uncond).
 *
 * Memory layout (llm.c): one flat parameter block carved into named tensors in the order
 * of the tensor table (gpt_tensor_at), a gradient block and two AdamW moment blocks with
 * the same layout, and an activation block sized once for max_batch sequences. Nothing is
 * allocated by a step. Threads: nn's (nn_set_threads).
 *
 * Tensor names and shapes (PyTorch nn.Linear layout, weight [out, in]):
 *     gpt.wte_text [V_text, d]   gpt.wte_image [K, d]   gpt.wpe_text [T+1, d]
 *     gpt.wpe_row [G, d]         gpt.wpe_col [G, d]
 *     gpt.hN.ln1.w, gpt.hN.ln1.b [d]
 *     gpt.hN.attn.qkv.w [3d, d], gpt.hN.attn.qkv.b [3d]   (q | k | v, heads of d/H)
 *     gpt.hN.attn.proj.w [d, d], gpt.hN.attn.proj.b [d]
 *     gpt.hN.ln2.w, gpt.hN.ln2.b [d]
 *     gpt.hN.mlp.fc.w [4d, d], gpt.hN.mlp.fc.b [4d]
 *     gpt.hN.mlp.proj.w [d, 4d], gpt.hN.mlp.proj.b [d]      (N = 0 .. n_layer-1)
 *     gpt.ln_f.w, gpt.ln_f.b [d]
 *     gpt.head_text.w [V_text, d], gpt.head_text.b [V_text]
 *     gpt.head_image.w [K, d], gpt.head_image.b [K]
 *
 * Errors: functions that can fail return 0 on success and a negative value with a
 * message in err[GPT_ERR_SIZE] (when err is not NULL). Nothing here prints or exits.
 */
#ifndef DALLEC_TRANSFORMER_H
#define DALLEC_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

#define GPT_ERR_SIZE 256
#define GPT_NAME_MAX 48

/* ---------------------------------------------------------------- config */

typedef struct {
    int text_len;       /* T: text ids per caption (32) */
    int text_vocab;     /* V_text: text vocabulary, PAD and BOS included (2048) */
    int pad_id;         /* PAD id in the text vocabulary (0, the tokenizer's) */
    int bos_id;         /* BOS id in the text vocabulary (2, the tokenizer's) */
    int grid;           /* G: the image is G x G tokens (16) */
    int image_vocab;    /* K: dVAE codebook size (512) */
    int n_layer;        /* 8 */
    int n_head;         /* 8 */
    int n_embd;         /* d, a multiple of n_head (256) */
    float loss_w_text;  /* w_t (1) */
    float loss_w_image; /* w_i (7), as DALL-E */
    float p_null;       /* caption dropout probability (0.1) */
} gpt_config_t;

/* The defaults above: DESIGN.md's gpt-train bench config. */
gpt_config_t gpt_config_default(void);
/* 0, or -1 with the first field that is out of range named in err. */
int gpt_config_check(const gpt_config_t *c, char err[GPT_ERR_SIZE]);
/* L = T + G*G, the sequence length. */
int gpt_seq_len(const gpt_config_t *c);
size_t gpt_num_params(const gpt_config_t *c);

/* ---------------------------------------------------------------- model */

typedef struct gpt gpt_t;

/* max_batch > 0: a trainable model with gradients, AdamW moments and activations for
 * max_batch sequences. max_batch = 0: parameters only (inference through a sampler).
 * Parameters start at zero: call gpt_init_params or load them (gpt_tensor_*). */
int gpt_create(gpt_t **out, const gpt_config_t *c, int max_batch, char err[GPT_ERR_SIZE]);
void gpt_free(gpt_t *m);
const gpt_config_t *gpt_config(const gpt_t *m);
int gpt_max_batch(const gpt_t *m);

/* GPT-2's init from nn_rng seeded with seed: every linear weight and embedding table
 * N(0, 0.02), the residual projections (attn.proj.w, mlp.proj.w) N(0, 0.02/sqrt(2*n_layer)),
 * biases 0, LayerNorm weights 1 and biases 0. Also zeroes the AdamW state. */
void gpt_init_params(gpt_t *m, uint64_t seed);

/* The tensor table: every parameter tensor in block order, with its gradient and AdamW
 * moments (NULL for a max_batch = 0 model). Save/load code walks it by name. */
typedef struct {
    char name[GPT_NAME_MAX];
    int ndim;               /* 1 or 2 */
    int64_t shape[2];
    size_t numel;
    size_t offset;          /* of the tensor in each flat block */
    int decay;              /* 1 for linear weights (AdamW weight decay applies), else 0 */
    float *param, *grad, *adam_m, *adam_v;
} gpt_tensor_t;

int gpt_tensor_count(const gpt_t *m);
const gpt_tensor_t *gpt_tensor_at(const gpt_t *m, int i);
const gpt_tensor_t *gpt_tensor_find(const gpt_t *m, const char *name); /* NULL: none */
/* The flat blocks (n floats each) for whole-model work: MPI all-reduce of the gradients,
 * checkpointing the moments. grad/adam_m/adam_v are NULL for an inference-only model. */
float *gpt_param_block(gpt_t *m, size_t *n);
float *gpt_grad_block(gpt_t *m, size_t *n);
float *gpt_adam_m_block(gpt_t *m, size_t *n);
float *gpt_adam_v_block(gpt_t *m, size_t *n);

/* ---------------------------------------------------------------- model file */

/* Through weights/weights.h, as the dVAE: the config as "gpt.*" keys (gpt.text_len,
 * gpt.text_vocab, gpt.pad_id, gpt.bos_id, gpt.grid, gpt.image_vocab, gpt.n_layer,
 * gpt.n_head, gpt.n_embd, gpt.loss_w_text, gpt.loss_w_image, gpt.p_null) and the
 * parameters as f32 tensors named as above. A file also holds the dVAE and the
 * tokenizer; the pipeline assembles it. */
typedef struct wf_config wf_config_t;
typedef struct wf_writer wf_writer_t;
typedef struct wf_reader wf_reader_t;
int gpt_config_store(const gpt_config_t *c, wf_config_t *cfg);
/* Reads the gpt.* keys; missing ones keep the defaults, none at all is an error
 * ("holds no transformer"). 0 or -1 with err. */
int gpt_config_read(gpt_config_t *c, const wf_config_t *cfg, const char *path,
                    char err[GPT_ERR_SIZE]);
/* Adds every parameter tensor to an open writer. */
int gpt_write_tensors(const gpt_t *m, wf_writer_t *w, char err[GPT_ERR_SIZE]);
/* Loads every parameter tensor, checking names and shapes. */
int gpt_read_tensors(gpt_t *m, wf_reader_t *r, char err[GPT_ERR_SIZE]);
/* A transformer from any model file that holds one (max_batch as gpt_create). */
int gpt_load(gpt_t **out, const char *path, int max_batch, char err[GPT_ERR_SIZE]);

/* ---------------------------------------------------------------- training step */

/* Applies caption dropout to text [B, T] in place: each caption becomes T PADs with
 * probability c->p_null (one nn_rng_uniform draw per caption, in order, so a seeded run
 * is reproducible). Returns how many were dropped. */
int gpt_drop_captions(const gpt_config_t *c, int *text, int B, nn_rng_t *rng);

/* Forward over text [B, T] and image [B, G*G], 1 <= B <= max_batch: returns the loss, or
 * NAN when the inputs are invalid (B out of range, an id out of its vocabulary; the
 * reason is in gpt_errmsg). Keeps what gpt_backward needs, the ids included. */
float gpt_forward(gpt_t *m, const int *text, const int *image, int B);
const char *gpt_errmsg(const gpt_t *m);
/* The last forward's loss parts and logits: text [B, T, V_text], image [B, G*G, K]. */
void gpt_loss_parts(const gpt_t *m, float *ce_text, float *ce_image);
const float *gpt_logits_text(const gpt_t *m);
const float *gpt_logits_image(const gpt_t *m);

void gpt_zero_grad(gpt_t *m);
/* Accumulates (+=) d(loss)/d(params) of the last forward into the gradient block. */
void gpt_backward(gpt_t *m);
/* The same for (text_scale w_t CE_text + image_scale w_i CE_image) / (w_t + w_i): data-
 * parallel training weights each rank's text part by its share of the batch's non-PAD
 * text targets, so that the ranks' gradients average to the whole batch's. */
void gpt_backward_scaled(gpt_t *m, float text_scale, float image_scale);

typedef struct {
    float lr;             /* peak learning rate (3e-4) */
    float lr_min;         /* cosine floor (3e-5) */
    long warmup_steps;    /* linear warmup from lr/warmup to lr (100) */
    long total_steps;     /* end of the cosine decay (10000); lr_min after */
    float beta1, beta2;   /* 0.9, 0.95 */
    float eps;            /* 1e-8 */
    float weight_decay;   /* 0.1, on linear weights only (gpt_tensor_t.decay) */
    float grad_clip;      /* max global gradient norm (1.0); <= 0: no clipping */
} gpt_opt_t;

gpt_opt_t gpt_opt_default(void);
/* The learning rate of step (0-based): lr * (step+1)/warmup during warmup, then cosine
 * from lr to lr_min over the remaining steps up to total_steps, then lr_min. */
float gpt_lr_at(const gpt_opt_t *o, long step);
/* Clips the gradient block to o->grad_clip (nn_clip_grad_norm), then one AdamW step at
 * learning rate lr. Returns the gradient norm before clipping. */
float gpt_adamw_step(gpt_t *m, const gpt_opt_t *o, float lr);
/* AdamW steps taken so far (the t of the bias corrections); set it when resuming. */
long gpt_opt_steps(const gpt_t *m);
void gpt_set_opt_steps(gpt_t *m, long t);

/* Matmul flops of one training step (forward + backward) of B sequences, for GFLOP/s. */
double gpt_train_flops(const gpt_config_t *c, int B);

/* ---------------------------------------------------------------- sampling */

/* Called after each image row is complete (row = 0 .. G-1; prefix rows included, right
 * after the prefix is read). tokens [n_images, G*G] holds rows 0..row of every image.
 * Return non-zero to cancel: gpt_sample then returns GPT_CANCELLED. */
typedef int (*gpt_row_fn)(void *user, int row, const int *tokens, int n_images);

#define GPT_CANCELLED 1

typedef struct {
    float temperature;  /* 1.0; <= 0: greedy (argmax, lowest id on ties) */
    int top_k;          /* 0 = off; else keep the k largest logits (and ties with the k-th) */
    float top_p;        /* 1.0 = off; else keep the most probable tokens, in order, while the
                         * probability mass before each is < top_p (at least one) */
    float guidance;     /* s (3.0); 1: no unconditional branch (plain conditional) */
    uint64_t seed;      /* image n draws from nn_rng seeded with seed + n (0) */
    int prefix_rows;    /* image completion: rows forced from prefix (0) */
    const int *prefix;  /* [n_images, prefix_rows * G] tokens, or NULL when prefix_rows = 0 */
    gpt_row_fn on_row;  /* NULL: none */
    void *user;
} gpt_sample_opts_t;

gpt_sample_opts_t gpt_sample_opts_default(void);

typedef struct gpt_sampler gpt_sampler_t;

/* A KV cache and step buffers for up to max_images images (2*max_images sequences, for
 * guidance), reading m's parameters. Several samplers may share one model and run at
 * once (in different threads); the model must outlive them and not change while they run. */
int gpt_sampler_create(gpt_sampler_t **out, const gpt_t *m, int max_images,
                       char err[GPT_ERR_SIZE]);
void gpt_sampler_free(gpt_sampler_t *s);

/* Samples n_images images conditioned on text [n_images, T] into out [n_images, G*G].
 * The same seed and inputs give the same tokens. Returns 0, GPT_CANCELLED, or -1 with err. */
int gpt_sample(gpt_sampler_t *s, const int *text, int n_images, const gpt_sample_opts_t *o,
               int *out, char err[GPT_ERR_SIZE]);

/* The sampling rule gpt_sample applies to one image's next-token logits cond [K]
 * (uncond [K] too when o->guidance != 1, else NULL): guidance, temperature, top-k, top-p,
 * one nn_rng_uniform draw (none when greedy). scratch: K entries. Exposed so tests can
 * check the KV cache against full recomputation with the very same rule. */
typedef struct {
    float v;
    int id;
} gpt_cand_t;
int gpt_pick_token(const float *cond, const float *uncond, int K, const gpt_sample_opts_t *o,
                   nn_rng_t *rng, gpt_cand_t *scratch);

#endif
