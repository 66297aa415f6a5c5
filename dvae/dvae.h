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
    int image_size;       /* S: 32, 64, 128 or 256 */
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

/* Inference: tokens [B, G*G] = argmax of the encoder's logits. */
void dvae_encode(dvae_t *m, const float *x, int B, int *tokens);
/* Inference: images [B, 3, S, S] from token grids (one-hot rows of the codebook).
 * Tokens must be in [0, K). */
void dvae_decode(dvae_t *m, const int *tokens, int B, float *images);

#endif
