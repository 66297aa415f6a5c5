/* rerank: the contrastive text-image scorer (DESIGN.md, "Reranking"; docs/RERANK.md), a
 * CLIP-style dual encoder trained on the same captioned images as the generator. It
 * ranks a generator's candidates for a prompt and scores any image against any text.
 *
 * Image encoder over pixels ([B, 3, S, S] in [-1, 1], as the data loader makes them;
 * CNHW inside, nn/nn.h):
 *     L x [Conv2d k4 s2 p1 -> ReLU], channels C, 2C, 4C, ... (the last Cl = C 2^(L-1)),
 *     flatten the last (S/2^L)^2 map, Linear (no bias) -> E
 * The map is flattened rather than pooled so the embedding keeps where things are
 * ("at the top left", "above"): a global mean would average position away.
 *
 * Text encoder over SentencePiece ids, as CLIP's: T positions [BOS, caption ids, EOS,
 * PAD...] (rerank_encode_text), token + learned position embedding, pre-LN GPT-2 blocks
 * with causal attention (x += proj(attn(LN1 x)), x += proj(gelu_tanh(fc(LN2 x))), fc 4d
 * wide, every linear biased), then at the EOS position (the last non-PAD one, which has
 * attended to the whole caption; PADs after it are never seen by it) LN_f and a Linear
 * (no bias) d -> E.
 *
 * Both embeddings are L2-normalised; the score of an image and a text is their cosine
 * similarity. Training loss: nn_contrastive (CLIP's symmetric InfoNCE over the batch's
 * B x B pairs) with logits scaled by e^logit_scale, a learned parameter that starts at
 * ln(1/0.07) and is clamped to [0, ln 100] after every step, as CLIP's training code does.
 *
 * Memory layout (llm.c's, as the transformer's): one flat parameter block carved by the
 * tensor table, gradients and AdamW moments mirroring it, and activations sized once for
 * max_batch. Nothing is allocated by a step.
 *
 * Tensor names and shapes (PyTorch layouts):
 *     rerank.img.convI.w [C_I, C_I-1, 4, 4], rerank.img.convI.b [C_I]   (C_-1 = 3)
 *     rerank.img.proj.w [E, Cl (S/2^L)^2]   (flattened CHW order of one image's map)
 *     rerank.txt.wte [V, d]   rerank.txt.wpe [T, d]
 *     rerank.txt.hN.ln1.w, .ln1.b [d]   rerank.txt.hN.attn.qkv.w [3d, d], .qkv.b [3d]
 *     rerank.txt.hN.attn.proj.w [d, d], .proj.b [d]   rerank.txt.hN.ln2.w, .ln2.b [d]
 *     rerank.txt.hN.mlp.fc.w [4d, d], .fc.b [4d]   rerank.txt.hN.mlp.proj.w [d, 4d], .proj.b [d]
 *     rerank.txt.ln_f.w, .ln_f.b [d]   rerank.txt.proj.w [E, d]
 *     rerank.logit_scale [1]
 *
 * Errors: functions that can fail return 0 or -1 with a message in err[RERANK_ERR_SIZE].
 * Nothing here prints or exits.
 */
#ifndef DALLEC_RERANK_H
#define DALLEC_RERANK_H

#include <stddef.h>
#include <stdint.h>

#include "dvae/dvae.h"          /* dvae_comm_t: the processes of a data-parallel run */
#include "data/data.h"          /* ds_t */
#include "tokenizer/tokenizer.h"

#define RERANK_ERR_SIZE 256
#define RERANK_NAME_MAX 48

/* ---------------------------------------------------------------- config */

typedef struct {
    int image_size;     /* S: images are S x S (64) */
    int image_layers;   /* L: stride-2 conv stages; S divisible by 2^L (4) */
    int image_channels; /* C: the first stage's channels, doubled at each stage (32) */
    int text_len;       /* T: positions BOS .. EOS .. PAD; captions keep T-2 ids (32) */
    int text_vocab;     /* V: the tokenizer's vocabulary (1024) */
    int pad_id, bos_id, eos_id; /* the tokenizer's (0, 2, 3) */
    int text_layers;    /* 2 */
    int text_heads;     /* 4 */
    int text_width;     /* d, a multiple of text_heads (128) */
    int embed_dim;      /* E: the shared width of both embeddings (128) */
} rerank_config_t;

rerank_config_t rerank_config_default(void);
/* 0, or -1 with the first field out of range named in err. */
int rerank_config_check(const rerank_config_t *c, char err[RERANK_ERR_SIZE]);
size_t rerank_num_params(const rerank_config_t *c);
/* Multiply-adds of one forward of one (image, caption) pair, for timing. */
double rerank_pair_macs(const rerank_config_t *c);

/* ---------------------------------------------------------------- model */

typedef struct rerank rerank_t;

/* train = 1: gradients, AdamW moments and backward scratch besides the forward's
 * activations; 0: scoring only. Batches of 1..max_batch pairs (images and texts may also
 * be embedded on their own, up to max_batch at a time). Parameters start at zero: call
 * rerank_init_params or load them. */
int rerank_create(rerank_t **out, const rerank_config_t *c, int max_batch, int train,
                  char err[RERANK_ERR_SIZE]);
void rerank_free(rerank_t *m);
const rerank_config_t *rerank_config(const rerank_t *m);
int rerank_max_batch(const rerank_t *m);

/* Init from nn_rng seeded with seed: conv weights and biases as PyTorch's default
 * (uniform within 1/sqrt(fan_in)); the text encoder as GPT-2 (linear weights N(0, 0.02),
 * residual projections N(0, 0.02/sqrt(2 layers)), token table N(0, 0.02), position table
 * N(0, 0.01), LayerNorms 1 and 0, biases 0); both projections N(0, in^-1/2) as CLIP's;
 * logit_scale ln(1/0.07). Zeroes the AdamW state. */
void rerank_init_params(rerank_t *m, uint64_t seed);

/* The tensor table, in block order; grad and moments NULL for a scoring-only model. */
typedef struct {
    char name[RERANK_NAME_MAX];
    int ndim;               /* 1, 2 or 4 */
    int64_t shape[4];
    size_t numel;
    size_t offset;          /* of the tensor in each flat block */
    int decay;              /* 1: AdamW weight decay applies (conv and linear weights) */
    float *param, *grad, *adam_m, *adam_v;
} rerank_tensor_t;

int rerank_tensor_count(const rerank_t *m);
const rerank_tensor_t *rerank_tensor_at(const rerank_t *m, int i);
const rerank_tensor_t *rerank_tensor_find(const rerank_t *m, const char *name);
/* The flat blocks (n floats each): all-reducing gradients, checkpoints. */
float *rerank_param_block(rerank_t *m, size_t *n);
float *rerank_grad_block(rerank_t *m, size_t *n);

/* ---------------------------------------------------------------- text */

/* A caption as the text encoder reads it: ids [T] = BOS, the caption's ids cut to T-2,
 * EOS, then PAD. Returns the caption ids kept, or -1 with err (refused UTF-8, a tokenizer
 * whose vocabulary or special ids are not the config's). Cuts are counted by tok for
 * tok_warning. */
int rerank_encode_text(const rerank_config_t *c, tok_t *tok, const char *text, int *ids,
                       char err[RERANK_ERR_SIZE]);

/* ---------------------------------------------------------------- forward, backward */

/* Embeds B images [B, 3, S, S] (NCHW, [-1, 1]) and B captions ids [B, T] into the model's
 * unit embeddings (rerank_image_emb, rerank_text_emb [B, E]), keeping what the backward
 * needs. 0, or -1 when B is out of range or an id is outside the vocabulary or a row has
 * no BOS (message in rerank_errmsg). images or ids may be NULL to embed only the other
 * side (not for training). */
int rerank_encode(rerank_t *m, const float *images, const int *ids, int B);
const float *rerank_image_emb(const rerank_t *m);
const float *rerank_text_emb(const rerank_t *m);
const char *rerank_errmsg(const rerank_t *m);
/* ln of the logit scale (the parameter; after the clamp of rerank_adamw_step). */
float rerank_log_scale(const rerank_t *m);

void rerank_zero_grad(rerank_t *m);
/* Accumulates the gradients of the last rerank_encode given d(loss)/d(embeddings)
 * dimg, dtxt [B, E] (either may be NULL for a zero one) and d(loss)/d(logit_scale). */
void rerank_backward(rerank_t *m, const float *dimg, const float *dtxt, float dlog_scale);

/* One training forward on this process's B pairs: rerank_encode, then the contrastive
 * loss over the global batch. comm NULL (one process): the B pairs are the batch. Else
 * every rank's B pairs are gathered (the same B on every rank, rank k's rows after rank
 * k-1's), each rank computes the loss over all of them (the same number everywhere) and
 * keeps the gradient of its own rows; rank 0 alone keeps the logit scale's. Summing the
 * ranks' parameter gradients (not averaging) then gives exactly the whole batch's.
 * Returns the loss, or NAN (message in rerank_errmsg; a failed all-reduce says so). */
float rerank_forward(rerank_t *m, const float *images, const int *ids, int B,
                     const dvae_comm_t *comm);
/* The backward of the last rerank_forward (accumulates into the gradients). */
void rerank_backward_loss(rerank_t *m);
/* The last rerank_forward's logits [n, n] (n = the global batch): row i image i against
 * every caption, scaled. */
const float *rerank_logits(const rerank_t *m);

typedef struct {
    float lr;             /* peak learning rate (1e-3) */
    float lr_min;         /* cosine floor (1e-5) */
    long warmup_steps;    /* (200) */
    long total_steps;     /* end of the cosine decay */
    float beta1, beta2;   /* 0.9, 0.98 (CLIP's) */
    float eps;            /* 1e-6 (CLIP's) */
    float weight_decay;   /* 0.1, conv and linear weights only */
    float grad_clip;      /* max global gradient norm (1.0); <= 0: none */
} rerank_opt_t;

rerank_opt_t rerank_opt_default(void);
float rerank_lr_at(const rerank_opt_t *o, long step);
/* Clips, takes one AdamW step and clamps logit_scale to [0, ln 100]. Returns the gradient
 * norm before clipping. */
float rerank_adamw_step(rerank_t *m, const rerank_opt_t *o, float lr);
long rerank_opt_steps(const rerank_t *m);
void rerank_set_opt_steps(rerank_t *m, long t);

/* ---------------------------------------------------------------- scoring */

/* Cosine similarity of each of n images [n, 3, S, S] with one text (through the
 * scorer's tokenizer) into scores [n]; n may exceed max_batch (done in batches). */
int rerank_score(rerank_t *m, tok_t *tok, const char *text, const float *images, int n,
                 float *scores, char err[RERANK_ERR_SIZE]);

/* Text -> image retrieval among n pairs (caption i belongs to image i) from unit
 * embeddings txt, img [n, E]: for each caption, the images ranked by cosine similarity.
 * A hit at k when one of the k best images is its own or one whose caption is the very
 * same text (captions[] compared; NULL: own image only), so duplicate captions (the
 * shapes set repeats them) are not counted as misses. Fills hits1, hits5 (counts) and
 * the mean cosine similarity of the true pairs. */
typedef struct {
    int n, hits1, hits5;
    double mean_pair_score;
} rerank_retrieval_t;
void rerank_retrieval(const float *txt, const float *img, int n, int E,
                      const char *const *captions, rerank_retrieval_t *out);

/* ---------------------------------------------------------------- files */

/* The config as rerank.* keys, the parameters as f32 tensors named as above. A scorer
 * file (rerank_save) is a weights/ model file with model.kind = "dalle-c scorer", the
 * config, the tokenizer blob (TOK_BLOB_NAME) and the tensors; a generator's model file
 * may carry the same part beside its own, sharing its tokenizer (docs/RERANK.md). */
typedef struct wf_config wf_config_t;
typedef struct wf_writer wf_writer_t;
typedef struct wf_reader wf_reader_t;
int rerank_config_store(const rerank_config_t *c, wf_config_t *cfg);
/* Reads the rerank.* keys. Returns 1 when found, 0 when the file holds no scorer (no
 * rerank.* key: not an error), -1 with err when they are bad. */
int rerank_config_read(rerank_config_t *c, const wf_config_t *cfg, const char *path,
                       char err[RERANK_ERR_SIZE]);
int rerank_write_tensors(const rerank_t *m, wf_writer_t *w, char err[RERANK_ERR_SIZE]);
int rerank_read_tensors(rerank_t *m, wf_reader_t *r, char err[RERANK_ERR_SIZE]);
/* Checks that tok is the tokenizer the scorer was trained with (vocabulary and special
 * ids). 0 or -1 with err naming path. */
int rerank_check_tokenizer(const rerank_config_t *c, const tok_t *tok, const char *path,
                           char err[RERANK_ERR_SIZE]);
/* A scorer from any file that holds one (and its tokenizer when tok is not NULL),
 * sized as rerank_create. -1 with err "PATH: holds no scorer ..." when there is none. */
int rerank_load(rerank_t **out, tok_t **tok, const char *path, int max_batch, int train,
                char err[RERANK_ERR_SIZE]);
/* A scorer file with the tokenizer, written atomically; extra config keys (may be NULL)
 * are added; the writer is left open for more entries when w_out is not NULL (the
 * caller closes it), else closed. */
int rerank_save(const rerank_t *m, const tok_t *tok, const char *path, const wf_config_t *extra,
                int level, wf_writer_t **w_out, char err[RERANK_ERR_SIZE]);

/* ---------------------------------------------------------------- training */

typedef struct {
    long steps;               /* optimizer steps (3000) */
    int batch;                /* global batch: pairs per step, the contrastive negatives (128) */
    rerank_opt_t opt;         /* total_steps is set to steps */
    uint64_t seed;            /* (1) */
    long eval_every;          /* held-out retrieval every N steps and at the end (250) */
    int eval_images;          /* held-out images per evaluation, at most (500) */
    long checkpoint_every;    /* steps; 0: by time (checkpoint_seconds, 300) */
    double checkpoint_seconds;
} rerank_train_opts_t;

rerank_train_opts_t rerank_train_opts_default(void);

enum { RR_EV_START, RR_EV_STEP, RR_EV_EVAL, RR_EV_CHECKPOINT, RR_EV_DONE };

typedef struct {
    int kind;
    long step, steps;
    float loss, lr, grad_norm, logit_scale; /* RR_EV_STEP: logit_scale = e^param */
    float batch_acc;          /* share of the batch's images whose own caption scored best */
    double step_seconds, pairs_per_second;
    rerank_retrieval_t eval;  /* RR_EV_EVAL: text -> image among eval.n images */
    int eval_heldout;         /* 0: no held-out images, training ones were used */
    const char *path;         /* RR_EV_CHECKPOINT, RR_EV_DONE */
} rerank_event_t;

/* Returning nonzero stops the run after a checkpoint (SIGINT goes through here). */
typedef int (*rerank_train_fn)(const rerank_event_t *e, void *ctx);

typedef struct {
    int image_size, batch;
    double holdout;
    long step, steps;
} rerank_ckpt_info_t;
/* What resuming needs before the dataset is opened. */
int rerank_checkpoint_info(const char *path, rerank_ckpt_info_t *info, char err[RERANK_ERR_SIZE]);

/* Trains a scorer of config cfg (text_vocab and the special ids are set from tok) on ds,
 * opened with require_captions at cfg->image_size: each step draws the global batch from
 * a per-epoch permutation of the training images, each with its caption for that epoch
 * (ds_caption), and takes one AdamW step; all randomness is a function of (seed, step),
 * so a resumed run continues bit for bit. Writes out (the scorer file) and out.ckpt
 * (checkpoints: the scorer file plus train.* settings and opt.m.* / opt.v.* moments).
 * With resume_path the config, tokenizer and options come from that checkpoint (cfg and
 * tok unused; steps_override > 0 sets a new total) and ds must have its held-out
 * fraction. comm: as rerank_forward (the batch a multiple of the ranks; rank 0 alone
 * evaluates, checkpoints, writes out and gets every event, the others RR_EV_STEP only).
 * 0, or -1 with err (a NaN loss stops the run, keeping the last checkpoint). A run
 * stopped by the callback returns 0 without writing out. */
int rerank_train(const rerank_config_t *cfg, const rerank_train_opts_t *o, tok_t *tok, ds_t *ds,
                 const char *out, const char *resume_path, long steps_override,
                 const dvae_comm_t *comm, rerank_train_fn on_event, void *ctx,
                 char err[RERANK_ERR_SIZE]);

#endif
