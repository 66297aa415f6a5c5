/* dalle.h: the dalle-c C API, prompt to pixels. The one header a program embedding the
 * generator includes (as whisper.h or stable-diffusion.h); the dalle-c command line and
 * server generate through it too. docs/API.md has an example program.
 *
 *   dalle_model_t  a loaded model file (tokenizer, transformer, dVAE). Read-only once
 *                  loaded: any number of contexts, in any number of threads, may use one
 *                  model at once. Free it after every context made from it.
 *   dalle_ctx_t    the working memory of one generation at a time (KV cache, the dVAE's
 *                  activations). One thread at a time per context: give each thread its
 *                  own. Contexts of one model share its weights (the dVAE's parameters,
 *                  small, are copied into each context).
 *
 * Errors: every function that can fail returns a dalle_status (DALLE_OK = 0, negative on
 * failure) and, when err is not NULL, writes one line naming the thing and the problem
 * into err[DALLE_ERR_SIZE]. Nothing here prints or exits.
 *
 * Determinism: the same model, prompt and params (seed included) give the same tokens and
 * the same pixels on a machine. The thread count does not enter (threads split rows and
 * heads, never a sum; tested at 1 and 2). Image i of a batch draws from a generator
 * seeded with seed + i; a batch is reproduced exactly by the same batch (same n_images),
 * as the command line's --from does.
 *
 * Threads: params.threads sets the OpenMP team size of the calling thread (and
 * OpenBLAS's thread count, which is process-wide); 0 leaves both as they are
 * (OMP_NUM_THREADS, else all cores). With several threads generating at once, leave it
 * 0 or give every thread the same value. tests/test_generate_api.c runs two threads, a
 * context each, on one model and checks their results equal a run alone.
 *
 * The *_free functions accept NULL.
 */
#ifndef DALLEC_DALLE_H
#define DALLEC_DALLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DALLE_ERR_SIZE 256

typedef enum {
    DALLE_OK = 0,
    DALLE_CANCELLED = 1,  /* the row callback asked to stop; no images */
    DALLE_EINVAL = -1,    /* a bad argument or a parameter out of range */
    DALLE_EPROMPT = -2,   /* the prompt is empty (or only spaces) or not valid UTF-8 */
    DALLE_EIO = -3,       /* a file cannot be opened or read */
    DALLE_EMODEL = -4,    /* not a model file, damaged, or missing a part (tokenizer,
                           * transformer, dVAE) or whose parts do not fit together */
    DALLE_EIMAGE = -5,    /* the init image cannot be used */
    DALLE_ENOMEM = -6,
} dalle_status;

/* "ok", "cancelled", "invalid argument", "bad prompt", "i/o error", "bad model",
 * "bad image", "out of memory"; "unknown" otherwise. */
const char *dalle_status_name(int status);

/* "0.1.0" */
const char *dalle_version(void);

/* An 8-bit RGB image: h rows of w pixels, 3 bytes each (R, G, B), no padding. */
typedef struct {
    int w, h;
    uint8_t *rgb;
} dalle_image_t;

/* ---------------------------------------------------------------- models */

typedef struct dalle_model dalle_model_t;

/* Loads a model file (weights/FORMAT.md) holding the tokenizer, the transformer and the
 * dVAE, and checks that they fit together (the transformer's text vocabulary is the
 * tokenizer's, its image vocabulary and grid are the dVAE's). */
int dalle_model_load(dalle_model_t **out, const char *path, char err[DALLE_ERR_SIZE]);
/* The same from the file's bytes in memory; nothing is written to disk. The bytes are
 * read during the call only. name stands for the file in messages and in
 * dalle_model_name (NULL: "(memory)"). */
int dalle_model_load_mem(dalle_model_t **out, const void *data, size_t size, const char *name,
                         char err[DALLE_ERR_SIZE]);
void dalle_model_free(dalle_model_t *m);

typedef struct {
    int image_size;   /* S: generated images are S x S */
    int grid;         /* G: token rows (and columns) of an image; callbacks come per row */
    int text_len;     /* T: prompt tokens read; longer prompts are cut */
    int text_vocab;   /* tokenizer vocabulary */
    int image_vocab;  /* K: dVAE codebook size */
    int n_layer, n_head, n_embd;
    size_t n_params;  /* transformer parameters */
    int has_scorer;   /* 1: the file holds a scorer (its rerank part): params.candidates > 1
                       * ranks samples, and results carry scores */
    /* The sampling settings the model recommends: its file's sample.* config keys
     * (docs/MODEL.md), dalle_params_default()'s for the keys it lacks (but see
     * candidate_temperature). */
    struct {
        float temperature;
        int top_k;
        float top_p;
        float guidance;
        float candidate_temperature;  /* for candidates > 1: sample.candidate_temperature,
                                       * or `temperature` when the file lacks it */
    } sample;
} dalle_model_info_t;

void dalle_model_info(const dalle_model_t *m, dalle_model_info_t *info);
/* The file name the model was loaded from, without its directories ("default.dalle"). */
const char *dalle_model_name(const dalle_model_t *m);

/* ---------------------------------------------------------------- parameters */

typedef struct {
    int n_images;          /* images from one prompt, 1..DALLE_MAX_IMAGES (1) */
    int64_t seed;          /* -1 (default): drawn at random (dalle_random_seed); else
                            * 0..INT64_MAX. The seed used is in dalle_result_t. */
    float temperature;     /* (1.0) 0: greedy; else (0, 100] */
    int top_k;             /* keep the k most likely tokens; 0: all (64) */
    float top_p;           /* nucleus: the most likely tokens up to this mass, (0, 1] (1.0) */
    float guidance;        /* classifier-free guidance scale s, [0, 100]; 1: none (3.0) */
    int threads;           /* 0: leave as is (0) */
    /* Image completion: the top init_rows token rows of every image are those of
     * init_image (any size: resized and centre-cropped to S, then encoded by the dVAE),
     * the rest is sampled. init_rows in [0, G]; 0 and init_image NULL by default. */
    const dalle_image_t *init_image;
    int init_rows;
    /* 1: the row callback also gets the images decoded so far (one dVAE decode per row:
     * costs about G decodes more). 0 (default): tokens only. */
    int partial_images;
    /* Reranking (docs/RERANK.md): draw this many samples for every image asked for and
     * keep the one the model's scorer ranks best. 1..DALLE_MAX_IMAGES, with n_images *
     * candidates at most DALLE_MAX_IMAGES (1). Above 1 it needs a model with a scorer
     * (DALLE_EMODEL otherwise). Candidate j of image i is sample j*n_images + i of one
     * batch, drawn from seed + j*n_images + i: candidate 0 has image i's usual seed. */
    int candidates;
} dalle_params_t;

#define DALLE_MAX_IMAGES 64

/* The built-in defaults, the same for every model (values in brackets above). */
dalle_params_t dalle_params_default(void);
/* dalle_params_default() with m's recommended temperature, top_k, top_p and guidance
 * (info.sample): what to start from to draw from m as its maker meant. */
dalle_params_t dalle_model_params(const dalle_model_t *m);
/* The temperature m recommends for drawing `candidates` samples per image: above 1, its
 * reranking temperature (info.sample.candidate_temperature: reranking gains most from
 * candidates that differ), else info.sample.temperature. What the command line and the
 * server use when no temperature is given. */
float dalle_model_temperature(const dalle_model_t *m, int candidates);
/* 0, or DALLE_EINVAL with the first setting out of range named in err. Grid-dependent
 * limits (init_rows <= G) are checked by dalle_generate. */
int dalle_params_check(const dalle_params_t *p, char err[DALLE_ERR_SIZE]);
/* A seed from /dev/urandom (or the clock when that fails), in 0..INT64_MAX. */
int64_t dalle_random_seed(void);

/* ---------------------------------------------------------------- generation */

/* DALLE_EPROMPT when prompt is empty, only white space, or not valid UTF-8 (the byte
 * offset is in err); else DALLE_OK. dalle_generate checks the same; this lets a caller
 * refuse a prompt before loading anything. */
int dalle_prompt_check(const char *prompt, char err[DALLE_ERR_SIZE]);

typedef struct dalle_ctx dalle_ctx_t;

/* A context for generating from m (which must outlive it). Memory for the KV cache and
 * the decoder grows to the largest n_images asked for. */
int dalle_ctx_create(dalle_ctx_t **out, const dalle_model_t *m, char err[DALLE_ERR_SIZE]);
void dalle_ctx_free(dalle_ctx_t *c);

/* What a row callback sees, valid during the call only. */
typedef struct {
    int row;                      /* the token row just completed, 0..grid-1 (init rows
                                   * included: they come first, at once) */
    int grid;                     /* G */
    int n_images;                 /* with candidates: n_images * candidates samples */
    const int *tokens;            /* [n_images, G*G]: rows 0..row of each image are final */
    /* With params.partial_images: each image decoded from rows 0..row, pixel rows below
     * (row+1)*S/G painted grey. Approximate near the edge: the dVAE decoder's receptive
     * field reaches a few tokens down, into rows not yet sampled (filled with copies of
     * the last sampled row for this decode). NULL otherwise. */
    const dalle_image_t *images;
} dalle_row_t;

/* Called after every token row; return non-zero to cancel (dalle_generate then returns
 * DALLE_CANCELLED). Runs in the generating thread. */
typedef int (*dalle_row_fn)(const dalle_row_t *row, void *user);

typedef struct {
    int n_images;
    dalle_image_t *images;        /* [n_images], S x S each */
    int *tokens;                  /* [n_images, G*G] the sampled token grids */
    dalle_params_t params;        /* the settings used: the seed resolved; init_image NULL */
    uint64_t seed;                /* the seed used; image i drew from seed + i */
    int prompt_tokens;            /* tokens of the whole prompt */
    int prompt_kept;              /* of them read by the model: min(prompt_tokens, T) */
    double seconds;               /* sampling, decoding and scoring, wall clock */
    /* With a scorer in the model (else NULL): each image's score against the prompt, the
     * cosine similarity of the scorer's embeddings (-1..1, higher fits better), and which
     * of its candidates (0..candidates-1) it is. */
    float *scores;                /* [n_images] */
    int *candidate;               /* [n_images] */
} dalle_result_t;

/* Samples params->n_images images for prompt (UTF-8; longer than T tokens is cut: see
 * prompt_kept) and decodes them. On DALLE_OK *out holds them (free with
 * dalle_result_free); on anything else *out is zeroed. on_row may be NULL. */
int dalle_generate(dalle_ctx_t *c, const char *prompt, const dalle_params_t *params,
                   dalle_row_fn on_row, void *user, dalle_result_t *out,
                   char err[DALLE_ERR_SIZE]);
void dalle_result_free(dalle_result_t *r);

/* The dVAE's tokens [G*G] of an image (resized and centre-cropped to S): what init_image
 * becomes. */
int dalle_encode_image(dalle_ctx_t *c, const dalle_image_t *img, int *tokens,
                       char err[DALLE_ERR_SIZE]);

/* ---------------------------------------------------------------- PNG files */

/* A PNG text chunk: key (1-79 printable ASCII characters, no leading, trailing or double
 * spaces, as PNG requires) and a UTF-8 value. */
typedef struct {
    const char *key;
    const char *value;
} dalle_text_t;

/* img as an 8-bit RGB PNG in memory, with n_text text chunks (text may be NULL when
 * n_text is 0; ASCII values go into tEXt, others into iTXt, long ones compressed).
 * *png is malloc'ed: free() it. DALLE_EINVAL for a bad image, key or non-UTF-8 value. */
int dalle_image_encode_png(const dalle_image_t *img, const dalle_text_t *text, int n_text,
                           uint8_t **png, size_t *size, char err[DALLE_ERR_SIZE]);
/* The same written to path atomically (a temporary file beside it, fsync'ed, renamed
 * over path): a complete PNG or, on any failure, path as it was. */
int dalle_image_save_png(const dalle_image_t *img, const char *path, const dalle_text_t *text,
                         int n_text, char err[DALLE_ERR_SIZE]);

/* The settings of one image of a result as the text chunks every dalle-c PNG carries:
 * dalle-c:prompt, :seed, :n, :image, :temperature, :top-k, :top-p, :guidance, :model,
 * (:init-image, :init-rows,) (:candidates when above 1; :score, the image's, with a
 * scorer,) :version. With them `dalle-c --from IMAGE.png` makes the same image again on
 * the same model. image: 1..r->n_images, or 0 for a grid of the
 * whole batch. model: dalle_model_name(); init_image: the init image's file name, or
 * NULL. prompt, model and init_image are pointed to, not copied. */
#define DALLE_SETTINGS_MAX 14
typedef struct {
    dalle_text_t text[DALLE_SETTINGS_MAX];
    int n_text;
    char numbers[DALLE_SETTINGS_MAX][32];  /* where the formatted numbers live */
} dalle_settings_text_t;

void dalle_settings_text(dalle_settings_text_t *t, const dalle_result_t *r, int image,
                         const char *prompt, const char *model, const char *init_image);

#ifdef __cplusplus
}
#endif

#endif
