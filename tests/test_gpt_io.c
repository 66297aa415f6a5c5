/* The transformer in a model file: config keys and tensors round-trip bit for bit, an
 * inference-only model loaded from the file samples exactly what the original does, and
 * files with another shape or no transformer are refused with a message. */
#include "transformer/transformer.h"
#include "weights/weights.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <string.h>

static gpt_config_t small(void)
{
    gpt_config_t c = gpt_config_default();
    c.text_len = 6; c.text_vocab = 20; c.grid = 4; c.image_vocab = 9;
    c.n_layer = 2; c.n_head = 2; c.n_embd = 16; c.p_null = 0.2f; c.loss_w_image = 5.0f;
    return c;
}

/* Writes a model file holding config cfg_of's keys and m's tensors. */
static int write_file(const char *path, const gpt_config_t *cfg_of, const gpt_t *m, char *err)
{
    wf_config_t *cfg = wf_config_create();
    if (cfg_of) gpt_config_store(cfg_of, cfg);
    else wf_config_set_int(cfg, "dvae.layers", 3);
    wf_writer_t *w;
    int rc = wf_writer_open(&w, path, cfg, 0, err);
    wf_config_free(cfg);
    if (rc) return -1;
    if (gpt_write_tensors(m, w, err)) {
        wf_writer_abort(w);
        return -1;
    }
    return wf_writer_close(w, err) ? -1 : 0;
}

int main(void)
{
    printf("transformer model file round trip\n");
    char path[512], err[GPT_ERR_SIZE];
    snprintf(path, sizeof path, "%s/gpt.dalle", test_tmpdir());
    gpt_config_t c = small();
    gpt_t *m, *back = NULL;
    check(gpt_create(&m, &c, 1, err) == 0, "create: %s", err);
    gpt_init_params(m, 42);
    check(write_file(path, &c, m, err) == 0, "write: %s", err);
    check(gpt_load(&back, path, 0, err) == 0, "load: %s", err);
    if (back) {
        check(memcmp(gpt_config(back), &c, sizeof c) == 0, "config differs after the round trip");
        int same = gpt_tensor_count(back) == gpt_tensor_count(m);
        for (int i = 0; same && i < gpt_tensor_count(m); i++) {
            const gpt_tensor_t *a = gpt_tensor_at(m, i), *b = gpt_tensor_at(back, i);
            same = strcmp(a->name, b->name) == 0 &&
                   memcmp(a->param, b->param, a->numel * sizeof(float)) == 0;
        }
        check(same, "tensors differ after the round trip");
        printf("  %d tensors, %zu params: identical\n", gpt_tensor_count(m), gpt_num_params(&c));

        gpt_sampler_t *s1, *s2;
        gpt_sampler_create(&s1, m, 2, err);
        gpt_sampler_create(&s2, back, 2, err);
        int text[12] = {5, 6, 7, 0, 0, 0, 9, 9, 0, 0, 0, 0}, t1[32], t2[32];
        gpt_sample_opts_t o = gpt_sample_opts_default();
        o.seed = 9;
        check(gpt_sample(s1, text, 2, &o, t1, err) == 0 && gpt_sample(s2, text, 2, &o, t2, err) == 0,
              "sample: %s", err);
        check(memcmp(t1, t2, sizeof t1) == 0, "loaded inference-only model samples differently");
        printf("  inference-only model from the file samples the same tokens\n");
        gpt_sampler_free(s1);
        gpt_sampler_free(s2);
        gpt_free(back);
    }

    /* the config says d = 32, the tensors are d = 16 */
    gpt_config_t wide = c;
    wide.n_embd = 32;
    write_file(path, &wide, m, err);
    check(gpt_load(&back, path, 0, err) != 0 && back == NULL && strstr(err, "gpt.wte_text"),
          "shape mismatch refused: %s", err);
    printf("  other shape: %s\n", err);
    write_file(path, NULL, m, err);
    check(gpt_load(&back, path, 0, err) != 0 && strstr(err, "holds no transformer"),
          "no transformer refused: %s", err);
    printf("  no gpt config: %s\n", err);
    gpt_config_t bad = c;
    bad.n_head = 3;
    write_file(path, &bad, m, err);
    check(gpt_load(&back, path, 0, err) != 0 && strstr(err, "n_head"), "bad config refused: %s",
          err);
    printf("  bad config: %s\n", err);
    remove(path);
    gpt_free(m);
    return test_summary("test_gpt_io");
}
