/* Transformer training on a captioned dataset (`dalle-c train`, docs/TRAIN.md). Internal
 * to pipeline/ but library-style: it reports through a callback and never prints.
 *
 * A run: the dVAE (from its file, or from the checkpoint when resuming) encodes the
 * dataset once into the token cache (pipeline/token_cache.h); a tokenizer is loaded or
 * trained on the training captions; then each step draws B training items in a
 * per-epoch permutation, each with its caption for that epoch (ds_caption), applies
 * caption dropout, and takes one AdamW step. All randomness is a function of
 * (seed, step) or (seed, epoch), so a run resumed from its checkpoint continues bit for
 * bit. Writes OUT (the model file, pipeline/model_file.h), OUT.ckpt (checkpoints:
 * the model file's parts, AdamW moments, train.* options) and OUT.samples.png. */
#ifndef DALLEC_TRAIN_GPT_H
#define DALLEC_TRAIN_GPT_H

#include "data/data.h"
#include "dvae/dvae.h"
#include "tokenizer/tokenizer.h"
#include "transformer/transformer.h"

#include <stdint.h>

typedef struct {
    /* the transformer; vocabularies, PAD/BOS and the grid come from the tokenizer and
     * the dVAE */
    int text_len;             /* T (32) */
    int n_layer, n_head, n_embd; /* 4, 4, 128 */
    float loss_w_text, loss_w_image, p_null; /* 1, 7, 0.1 */
    int vocab;                /* max vocabulary of a tokenizer trained on the captions (1024) */
    /* training */
    long steps;               /* optimizer steps in all (2000) */
    int batch;                /* 16 */
    gpt_opt_t opt;            /* lr, warmup, clipping, AdamW; total_steps is set to steps */
    uint64_t seed;            /* 1 */
    long eval_every;          /* held-out losses every N steps and at the end (200) */
    int eval_images;          /* items per evaluation (256) */
    long samples_every;       /* sample grid every N steps and at the end; 0: none (500) */
    int samples_n;            /* images in the grid (8) */
    long checkpoint_every;    /* steps; 0: by time (checkpoint_seconds, 300) */
    double checkpoint_seconds;
} tg_opts_t;

tg_opts_t tg_opts_default(void);

typedef struct {
    const char *dvae;         /* dVAE model file (fresh runs) */
    const char *tokenizer;    /* .model or model file; NULL: train one on the captions */
    const char *out;          /* MODEL */
    const char *cache;        /* token cache; NULL: MODEL.tokens */
    const char *resume;       /* checkpoint to continue, or NULL */
    const char *init;         /* fine-tuning: a complete model file whose dVAE, tokenizer
                               * and transformer (shape, loss weights, p_null and weights)
                               * a fresh run starts from; dvae and tokenizer stay NULL */
    long steps_override;      /* > 0: with resume, a new total */
} tg_paths_t;

enum {
    TG_EV_INFO,           /* msg: a one-line note (tokenizer trained, cache used, ...) */
    TG_EV_WARNING,        /* msg: tokenizer warnings (truncation, invalid UTF-8), once each */
    TG_EV_CACHE_PROGRESS, /* done, total: images encoded */
    TG_EV_START,          /* step, steps: the loop begins (step > 0 when resumed) */
    TG_EV_STEP,
    TG_EV_EVAL,
    TG_EV_SAMPLES,        /* path */
    TG_EV_CHECKPOINT,     /* path */
    TG_EV_DONE,           /* path: the model file */
};

typedef struct {
    int kind;
    long step, steps;
    float loss, ce_text, ce_image, lr, grad_norm; /* TG_EV_STEP */
    int dropped;              /* captions dropped this step */
    double step_seconds, tokens_per_second;
    /* TG_EV_EVAL: mean losses over eval_items items; bits per image token = CE / ln 2 */
    double eval_ce_text, eval_ce_image, eval_bits_per_token, eval_loss;
    int eval_items, eval_heldout; /* eval_heldout 0: no held-out items, training ones used */
    long done, total;         /* TG_EV_CACHE_PROGRESS */
    const char *path;
    const char *msg;
} tg_event_t;

/* Returning nonzero stops the run after a checkpoint (SIGINT goes through here). */
typedef int (*tg_event_fn)(const tg_event_t *e, void *ctx);

/* What a caller needs before opening the dataset for a run: the image size (the
 * dVAE's), and for a checkpoint the held-out fraction, batch and progress. */
typedef struct {
    int image_size;
    double holdout;           /* checkpoints only */
    int batch;
    long step, steps;
} tg_info_t;
/* From a dVAE (or any model file holding one). */
int tg_dvae_info(const char *path, tg_info_t *info, char err[256]);
/* From a complete model file (--init): all three parts load and agree. */
int tg_model_info(const char *path, tg_info_t *info, char err[256]);
/* From a checkpoint written by tg_train. */
int tg_checkpoint_info(const char *path, tg_info_t *info, char err[256]);

/* A tokenizer trained on every caption line of ds's training split (SentencePiece, at
 * most vocab ids; the same captions and seed give the same tokenizer): what `dalle-c
 * train` and `dalle-c rerank train` use when given none. *n_lines (may be NULL) receives
 * the caption lines it read. NULL with err on failure. */
tok_t *tg_train_tokenizer(const ds_t *ds, int vocab, uint64_t seed, size_t *n_lines,
                          char err[256]);

/* Trains on ds (opened with require_captions at the dVAE's image size; when resuming,
 * with the checkpoint's held-out fraction). With p->resume, options come from the
 * checkpoint (o is ignored but for nothing). 0, or -1 with err: a NaN or infinite loss
 * or gradient stops the run keeping the last checkpoint. A run stopped by the callback
 * returns 0 without writing OUT. */
int tg_train(const tg_opts_t *o, const tg_paths_t *p, ds_t *ds, tg_event_fn on_event, void *ctx,
             char err[256]);
/* Data-parallel (comm with size N > 1, the same call on every rank; dvae_train_dist in
 * dvae/dvae.h has the scheme): the batch must be a multiple of N, rank k trains on rows
 * [k B/N, (k+1) B/N) of every global batch, gradients are averaged with one all-reduce.
 * Rank 0 encodes the token cache first (the others then reuse it), and alone evaluates,
 * writes samples, checkpoints and OUT and gets every event; the others get TG_EV_STEP
 * only, so that a stop asked for on any rank is seen. The dVAE and tokenizer are loaded
 * (or the tokenizer trained, deterministically) by every rank. */
int tg_train_dist(const tg_opts_t *o, const tg_paths_t *p, ds_t *ds, const dvae_comm_t *comm,
                  tg_event_fn on_event, void *ctx, char err[256]);

#endif
