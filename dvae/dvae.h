/* dvae: the discrete VAE that turns images into grids of codebook tokens and back.
 *
 *   encoder: L x [Conv2d k4 s2 p1 -> ReLU] (3->C, then C->C), R residual blocks
 *            x + Conv1x1(ReLU(Conv3x3(ReLU(Conv3x3(x))))), Conv1x1 C->K: logits over
 *            the K codebook entries at each of the G x G cells, G = S / 2^L
 *   quantiser: y = softmax((logits + g) / tau), g Gumbel noise; straight-through
 *            optionally (one-hot forward, soft gradient); z = y @ E, E [K, D]
 *   decoder: Conv1x1 D->C, R residual blocks, L x [ConvTranspose2d k4 s2 p1 -> ReLU],
 *            Conv1x1 C->3
 *   loss:    mean((x^ - x)^2) + beta * KL, KL = mean over cells of
 *            sum_k q_k log(K q_k), q = softmax(logits)
 *
 * Images are float NCHW in [-1, 1] at the API (what the data loader makes); inside,
 * activations are CNHW (see nn/nn.h). Parameters are one flat block in the order of
 * the tensor table (dvae_tensor), gradients and AdamW moments mirror it.
 */
#ifndef DALLEC_DVAE_H
#define DALLEC_DVAE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int image_size;       /* S: 8..1024, divisible by 2^L (DESIGN's sizes: 32 to 256) */
    int layers;           /* L: stride-2 stages; grid G = S / 2^L */
    int channels;         /* C */
    int res_blocks;       /* R, in the encoder and again in the decoder */
    int codebook_size;    /* K */
    int code_dim;         /* D */
    int straight_through; /* 1: hard one-hot forward, soft gradient */
    float tau_start;      /* tau = max(tau_min, tau_start * exp(-tau_decay * step)) */
    float tau_min;
    float tau_decay;
    float kl_weight;      /* beta */
} dvae_config_t;

/* S 64, L 3, C 64, R 2, K 512, D 256, soft, tau 1 -> 0.0625 at rate 1e-4, beta 1e-3
 * (dvae-train's bench config, with training defaults). */
dvae_config_t dvae_config_default(void);
/* 0 when the sizes make a model; else fills err. */
int dvae_config_check(const dvae_config_t *c, char err[256]);
int dvae_grid_size(const dvae_config_t *c);
float dvae_tau(const dvae_config_t *c, long step);

typedef struct dvae dvae_t;

/* A model able to run batches of up to max_batch images. */
int dvae_create(dvae_t **out, const dvae_config_t *c, int max_batch, char err[256]);
void dvae_free(dvae_t *m);
const dvae_config_t *dvae_config(const dvae_t *m);

/* The parameter tensors, in block order: name ("dvae.enc.conv0.w"), shape (PyTorch's
 * layout, unused trailing dims 1), and where the values and gradients live. */
typedef struct {
    const char *name;
    int ndim;
    int shape[4];
    size_t numel;
    float *data;
    float *grad;
} dvae_tensor_t;

int dvae_tensor_count(const dvae_t *m);
dvae_tensor_t dvae_tensor(const dvae_t *m, int i);
size_t dvae_param_count(const dvae_t *m);
float *dvae_params(dvae_t *m);
float *dvae_grads(dvae_t *m);

/* PyTorch's default initialisation (kaiming-uniform weights with a = sqrt(5), uniform
 * biases within 1/sqrt(fan_in)); the codebook N(0, 1). */
void dvae_init_params(dvae_t *m, uint64_t seed);

typedef struct {
    float loss, mse, kl;
    float perplexity;  /* exp(entropy of the batch's mean code distribution q) */
    int used_codes;    /* distinct argmax codes in the batch */
} dvae_stats_t;

/* Training forward of B images x [B, 3, S, S]. noise [B*G*G, K]: Gumbel noise (from
 * nn_rng_fill_gumbel), or NULL for none. Returns the loss and fills stats if given. */
float dvae_forward(dvae_t *m, const float *x, int B, const float *noise, float tau,
                   dvae_stats_t *stats);
void dvae_zero_grad(dvae_t *m);
/* Gradients of the last forward's loss, accumulated into the gradient block. */
void dvae_backward(dvae_t *m);

/* After a forward: the encoder logits [B*G*G, K] (cell order b, row, column) and the
 * reconstruction [B, 3, S, S] copied out. */
const float *dvae_logits(const dvae_t *m);
void dvae_get_reconstruction(const dvae_t *m, float *out);

/* ---------------------------------------------------------------- files */

/* Model files (weights/FORMAT.md): the config under "dvae.*" keys and the parameter
 * tensors by name, f32. */
typedef struct wf_config wf_config_t;
typedef struct wf_writer wf_writer_t;
typedef struct wf_reader wf_reader_t;
int dvae_config_store(const dvae_config_t *c, wf_config_t *cfg);
/* Reads the dvae.* keys; missing ones keep the defaults. 0 or -1 with err. */
int dvae_config_read(dvae_config_t *c, const wf_config_t *cfg, const char *path, char err[256]);
/* Adds every parameter tensor (prefix "dvae.") to an open writer. */
int dvae_write_tensors(const dvae_t *m, wf_writer_t *w, char err[256]);
/* Loads every parameter tensor, checking names and shapes. */
int dvae_read_tensors(dvae_t *m, wf_reader_t *r, char err[256]);
/* A whole dVAE-only model file, written atomically. */
int dvae_save(const dvae_t *m, const char *path, char err[256]);
/* A dVAE from any model file that holds one, sized for max_batch images. */
int dvae_load(dvae_t **out, const char *path, int max_batch, char err[256]);

/* ---------------------------------------------------------------- inference */

/* Inference: tokens [B, G*G] = argmax of the encoder's logits. */
void dvae_encode(dvae_t *m, const float *x, int B, int *tokens);
/* Inference: images [B, 3, S, S] from token grids (one-hot rows of the codebook).
 * Tokens must be in [0, K). */
void dvae_decode(dvae_t *m, const int *tokens, int B, float *images);

/* ---------------------------------------------------------------- training */

/* Everything that defines a run besides the model config. All randomness (data order,
 * Gumbel noise, initialisation) is a function of (seed, step), so a run resumed from a
 * checkpoint continues bit for bit. */
typedef struct {
    long steps;               /* optimizer steps in all */
    int batch;
    float lr, lr_min;         /* warmup, then cosine from lr to lr_min */
    long warmup;
    float weight_decay;
    float grad_clip;          /* max global gradient norm; 0: none */
    uint64_t seed;
    long eval_every;          /* held-out evaluation every N steps (and at the end) */
    int eval_images;          /* held-out images per evaluation (at most all of them) */
    long samples_every;       /* reconstruction preview every N steps; 0: none */
    long checkpoint_every;    /* steps; 0: by time */
    double checkpoint_seconds;/* when checkpoint_every is 0 */
} dvae_train_opts_t;

dvae_train_opts_t dvae_train_opts_default(void);

enum { DVAE_EV_STEP, DVAE_EV_EVAL, DVAE_EV_CHECKPOINT, DVAE_EV_PREVIEW, DVAE_EV_DONE };

typedef struct {
    int kind;
    long step, steps;          /* steps done, and in all */
    dvae_stats_t stats;        /* DVAE_EV_STEP: this step's training batch */
    float tau, lr;
    double step_seconds;       /* compute of this step */
    double wait_seconds;       /* time this step waited for its batch (0 when prefetched) */
    double eval_psnr;          /* DVAE_EV_EVAL: held-out PSNR (dB) through argmax tokens */
    double eval_mse;
    int eval_used_codes;       /* distinct tokens over the held-out images */
    double eval_perplexity;    /* of the held-out token histogram */
    int eval_images;
    int eval_heldout;          /* 1: held-out images; 0: none are held out, so training ones */
    const char *path;          /* DVAE_EV_CHECKPOINT, DVAE_EV_PREVIEW, DVAE_EV_DONE */
} dvae_train_event_t;

/* Called after each event; returning nonzero stops the run after a checkpoint (the
 * caller's SIGINT handling goes through here). */
typedef int (*dvae_train_fn)(const dvae_train_event_t *e, void *ctx);

typedef struct ds ds_t;

/* Data-parallel training (docs/DISTRIBUTED.md): the processes of one run, as the training
 * loops see them, so they need no MPI header. rank in [0, size); allreduce_sum replaces
 * buf [n] on every rank by the sum over all ranks (MPI_Allreduce in place, MPI_SUM) and
 * returns 0, or -1 (then every rank fails). A NULL communicator is one process. The
 * pipeline makes it from MPI_COMM_WORLD (pipeline/dist.h); transformer training uses it
 * too. */
typedef struct {
    int rank, size;
    int (*allreduce_sum)(float *buf, size_t n, void *ctx);
    void *ctx;
} dvae_comm_t;

/* What a caller needs from a checkpoint before resuming it: the image size and the
 * held-out fraction to open the dataset with, the batch, and where the run stands. */
typedef struct {
    int image_size, batch;
    double holdout;
    long step, steps;
} dvae_checkpoint_info_t;
int dvae_checkpoint_info(const char *path, dvae_checkpoint_info_t *info, char err[256]);

/* Data-parallel (comm with size N > 1, the same call on every rank): the global batch
 * opts->batch (or the checkpoint's) must be a multiple of N; rank k takes rows
 * [k B/N, (k+1) B/N) of every global batch (the order is the single process's) and the
 * matching Gumbel noise, the gradients are averaged over ranks with one all-reduce, and
 * every rank takes the same AdamW step. Rank 0 alone evaluates, writes previews,
 * checkpoints and out_path, and gets every event; the other ranks get DVAE_EV_STEP only
 * (with the same batch-wide loss), so that a stop asked for on any rank is seen: the ranks
 * agree on stopping after each step. Statistics other than loss, mse and kl (perplexity,
 * used codes) are rank 0's shard's. */
int dvae_train_dist(const dvae_config_t *cfg, const dvae_train_opts_t *opts, ds_t *ds,
                    const char *out_path, const char *resume_path, long steps_override,
                    const dvae_comm_t *comm, dvae_train_fn on_event, void *ctx, char err[256]);

/* Trains on ds (its images at the config's size) and writes out_path (the model),
 * out_path.ckpt (checkpoints: model, AdamW moments, step and options) and
 * out_path.preview.png. With resume_path, config and options come from that checkpoint
 * (steps_override > 0 changes the total) and the run continues from its step; ds must
 * then be opened with the checkpoint's size and held-out fraction (dvae_checkpoint_info),
 * and always at the config's image size.
 * Returns 0, or -1 with err (a NaN loss stops the run and keeps the last checkpoint). */
int dvae_train(const dvae_config_t *cfg, const dvae_train_opts_t *opts, ds_t *ds,
               const char *out_path, const char *resume_path, long steps_override,
               dvae_train_fn on_event, void *ctx, char err[256]);

#endif
