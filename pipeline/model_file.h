/* The complete model file: everything generation needs in one weights/ file
 * (docs/MODEL.md). Internal to pipeline/: the training command writes it, the generation
 * command and the server read it.
 *
 *   config  dvae.*  (dvae_config_store)   gpt.*  (gpt_config_store)
 *           model.kind = "dalle-c", model.parts = "dvae,tokenizer,gpt"
 *   blob    tokenizer.model (TOK_BLOB_NAME): the SentencePiece .model bytes
 *   tensors dvae.*  (dvae_write_tensors), then gpt.* (gpt_write_tensors), f32
 *
 * Each part also loads on its own from the same path: dvae_load(path),
 * gpt_load(path), tok_load(path). A training checkpoint (MODEL.ckpt) is the same layout
 * plus train.* config keys and opt.m.* / opt.v.* tensors, so it loads here too. */
#ifndef DALLEC_MODEL_FILE_H
#define DALLEC_MODEL_FILE_H

#include "dvae/dvae.h"
#include "pipeline/dalle.h"
#include "tokenizer/tokenizer.h"
#include "transformer/transformer.h"
#include "weights/weights.h"

#define MF_KIND "dalle-c"
#define MF_PARTS "dvae,tokenizer,gpt"

/* Opens a writer on path (atomic: nothing appears at path until wf_writer_close) with
 * the config keys of all three parts plus extra (may be NULL: its keys are appended),
 * and adds the tokenizer blob, the dVAE tensors and the GPT tensors. The caller may add
 * more entries (checkpoint moments) and must then wf_writer_close or wf_writer_abort.
 * level: zstd level (0 = default). 0, or -1 with err. */
int mf_writer_open(wf_writer_t **out, const char *path, const dvae_t *dv, const tok_t *tok,
                   const gpt_t *gpt, const wf_config_t *extra, int level, char err[256]);
/* The whole model file, written atomically. */
int mf_save(const char *path, const dvae_t *dv, const tok_t *tok, const gpt_t *gpt,
            char err[256]);

/* All three parts from one file. Any of the out pointers may be NULL to skip that part;
 * the others are left NULL on failure. dvae_batch / gpt_batch as dvae_create and
 * gpt_create (gpt_batch 0: inference only). Also checks that the parts agree: the
 * transformer's grid and image vocabulary are the dVAE's, its text vocabulary, PAD and
 * BOS the tokenizer's. 0, or -1 with err. */
int mf_load(const char *path, dvae_t **dv, int dvae_batch, tok_t **tok, gpt_t **gpt,
            int gpt_batch, char err[256]);
/* The agreement check alone (NULL parts are skipped). */
int mf_check_parts(const char *path, const dvae_t *dv, const tok_t *tok, const gpt_t *gpt,
                   char err[256]);

/* Sampling settings a model recommends (docs/MODEL.md): optional config keys
 * sample.temperature [0, 100], sample.top_k (a whole number, 0..2^24), sample.top_p (0, 1],
 * sample.guidance [0, 100] (the ranges the command line takes) and
 * sample.candidate_temperature [0, 100], the temperature for reranked sampling (more than
 * one candidate per image). dalle_model_load reads them, dalle-c convert --sample writes them. */
#define MF_SAMPLE_PREFIX "sample."
#define MF_SAMPLE_NAMES "temperature, top_k, top_p, guidance or candidate_temperature"

typedef struct {
    dalle_params_t params;        /* temperature, top_k, top_p, guidance */
    float candidate_temperature;  /* < 0: none (candidates use params.temperature) */
} mf_sample_t;

/* The sample.* keys of cfg into s; a field whose key is absent keeps its value, other
 * sample.* keys are left to newer readers. 0, or -1 with err: 'PATH: config
 * "sample.top_p" = 1.5 is not in (0, 1]', or the wrong type. */
int mf_sample_read(const wf_config_t *cfg, mf_sample_t *s, const char *path, char err[256]);
/* Checks "NAME=VALUE" (NAME one of MF_SAMPLE_NAMES) as mf_sample_read would and sets
 * sample.NAME in cfg. 0, or -1 with err naming what is wrong. */
int mf_sample_set(wf_config_t *cfg, const char *assignment, char err[256]);

#endif
