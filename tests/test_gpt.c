/* One whole transformer training step against PyTorch (tests/fixtures/gpt_step.bin, from
 * tests/fixtures_transformer.py: T=4 G=3 d=16, 2 layers, 2 heads, V_text=11, K=7, B=3 with
 * a short caption, a full one and a null one): loss and its parts, both logits, every
 * parameter gradient, the clipped gradient norm, the learning-rate schedule and every
 * parameter after one AdamW step; then finite differences of the loss on a few tensors,
 * and the table, init and caption-dropout conventions. */
#include "transformer/transformer.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Forward values go through ~25 float32 layers (sgemms, attention, LayerNorms, GELU),
 * gradients through the same chain reversed: the absolute errors are ~1e-7 of each
 * tensor's largest entry (logits_text: 9.5e-7 on logits of ~5), which check_close's
 * relative measure (floor 1e-3 of the largest entry) turns into up to ~2e-4 on the
 * entries a thousand times smaller than the largest (observed worst 1.7e-4, on
 * grad.gpt.h0.ln1.b: 3.62607e-4 vs 3.62547e-4, 6e-8 absolute). The 1e-5 aim holds for
 * the scalars (loss, CE parts, gradient norm) and the optimiser step on given gradients. */
#define TOL 5e-4
#define TOL_SCALAR 1e-5

static gpt_t *model_from_fixture(fx_file_t *f, gpt_opt_t *o)
{
    const int *cf = fx_i32(f, "config");
    const float *lw = fx_f32(f, "loss_weights"), *op = fx_f32(f, "opt");
    gpt_config_t c = gpt_config_default();
    c.text_len = cf[0]; c.text_vocab = cf[1]; c.pad_id = cf[2]; c.bos_id = cf[3];
    c.grid = cf[4]; c.image_vocab = cf[5]; c.n_layer = cf[6]; c.n_head = cf[7];
    c.n_embd = cf[8];
    c.loss_w_text = lw[0];
    c.loss_w_image = lw[1];
    *o = gpt_opt_default();
    o->lr = op[0]; o->lr_min = op[1]; o->warmup_steps = (long)op[2];
    o->total_steps = (long)op[3]; o->beta1 = op[4]; o->beta2 = op[5]; o->eps = op[6];
    o->weight_decay = op[7]; o->grad_clip = op[8];
    gpt_t *m;
    char err[GPT_ERR_SIZE];
    if (gpt_create(&m, &c, 3, err)) {
        printf("gpt_create: %s\n", err);
        exit(1);
    }
    return m;
}

static void load_params(gpt_t *m, fx_file_t *f, const char *prefix)
{
    for (int i = 0; i < gpt_tensor_count(m); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(m, i);
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        fx_tensor_t *x = fx_get(f, name);
        int same = x->ndim == t->ndim && x->numel == t->numel;
        for (int d = 0; same && d < t->ndim; d++) same = x->dims[d] == t->shape[d];
        if (!check(same, "%s: shape differs from the fixture's", t->name)) exit(1);
        memcpy(t->param, x->data, t->numel * sizeof(float));
    }
}

static void test_step(void)
{
    printf("one training step vs PyTorch\n");
    fx_file_t *f = fx_load("gpt_step");
    gpt_opt_t o;
    gpt_t *m = model_from_fixture(f, &o);
    const gpt_config_t *c = gpt_config(m);
    const int B = 3, T = c->text_len, G2 = c->grid * c->grid;
    printf("  T=%d G=%d d=%d layers=%d heads=%d V_text=%d K=%d B=%d, %zu params in %d tensors\n",
           T, c->grid, c->n_embd, c->n_layer, c->n_head, c->text_vocab, c->image_vocab, B,
           gpt_num_params(c), gpt_tensor_count(m));
    load_params(m, f, "");
    const int *text = fx_i32(f, "text"), *image = fx_i32(f, "image");

    float loss = gpt_forward(m, text, image, B), ce_t, ce_i;
    gpt_loss_parts(m, &ce_t, &ce_i);
    check_close("loss", &loss, fx_f32(f, "loss"), 1, TOL_SCALAR);
    check_close("ce_text", &ce_t, fx_f32(f, "ce_text"), 1, TOL_SCALAR);
    check_close("ce_image", &ce_i, fx_f32(f, "ce_image"), 1, TOL_SCALAR);
    check_close("logits_text", gpt_logits_text(m), fx_f32(f, "logits_text"),
                (size_t)B * T * c->text_vocab, TOL);
    check_close("logits_image", gpt_logits_image(m), fx_f32(f, "logits_image"),
                (size_t)B * G2 * c->image_vocab, TOL);

    gpt_zero_grad(m);
    gpt_backward(m);
    char name[128];
    for (int i = 0; i < gpt_tensor_count(m); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(m, i);
        snprintf(name, sizeof name, "grad.%s", t->name);
        check_close(name, t->grad, fx_f32(f, name), t->numel, TOL);
    }

    for (long s = 0; s < 12; s++) {
        float want = fx_f32(f, "lr_schedule")[s], got = gpt_lr_at(&o, s);
        check(fabsf(got - want) <= 1e-6f * want, "lr at step %ld: %g, want %g", s, got, want);
    }
    printf("  lr schedule: 12 steps compared\n");

    /* The whole chain: C gradients -> clip -> AdamW. A first AdamW step moves each
     * parameter by lr * g / (|g| + eps) (bias-corrected), about lr * sign(g): where the
     * exact gradient is ~0 (the key bias of attention, which softmax ignores: 2e-8 here
     * against 7e-18) float32 noise decides that sign. So the chain is held to a quarter
     * of lr in absolute terms, and the optimiser alone, fed the fixture's gradients, to
     * TOL below. */
    const float lr0 = gpt_lr_at(&o, 0);
    float norm = gpt_adamw_step(m, &o, lr0);
    check_close("grad norm (C gradients)", &norm, fx_f32(f, "grad_norm"), 1, TOL_SCALAR);
    check(gpt_opt_steps(m) == 1, "AdamW step count %ld", gpt_opt_steps(m));
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < gpt_tensor_count(m); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(m, i);
        snprintf(name, sizeof name, "after.%s", t->name);
        const float *want = fx_f32(f, name);
        for (size_t k = 0; k < t->numel; k++)
            if (fabs((double)t->param[k] - want[k]) > worst) {
                worst = fabs((double)t->param[k] - want[k]);
                worst_name = t->name;
            }
    }
    printf("  params after the step from C gradients: max abs err %.3g = %.3g lr (in %s)\n",
           worst, worst / lr0, worst_name);
    check(worst <= 0.25 * lr0, "chain step error %g > lr/4", worst);

    /* the optimiser alone, from the fixture's gradients */
    load_params(m, f, "");
    size_t n;
    float *adam_m = gpt_adam_m_block(m, &n), *adam_v = gpt_adam_v_block(m, NULL);
    memset(adam_m, 0, n * sizeof(float));
    memset(adam_v, 0, n * sizeof(float));
    gpt_set_opt_steps(m, 0);
    for (int i = 0; i < gpt_tensor_count(m); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(m, i);
        snprintf(name, sizeof name, "grad.%s", t->name);
        memcpy(t->grad, fx_f32(f, name), t->numel * sizeof(float));
    }
    norm = gpt_adamw_step(m, &o, lr0);
    check_close("grad norm", &norm, fx_f32(f, "grad_norm"), 1, TOL_SCALAR);
    for (int i = 0; i < gpt_tensor_count(m); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(m, i);
        snprintf(name, sizeof name, "after.%s", t->name);
        check_close(name, t->param, fx_f32(f, name), t->numel, TOL_SCALAR);
    }
    gpt_free(m);
    fx_free(f);
}

typedef struct {
    gpt_t *m;
    const int *text, *image;
    int B;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    return gpt_forward(c->m, c->text, c->image, c->B);
}

static void test_fd(void)
{
    printf("finite differences of the loss\n");
    fx_file_t *f = fx_load("gpt_step");
    gpt_opt_t o;
    gpt_t *m = model_from_fixture(f, &o);
    load_params(m, f, "");
    fd_ctx_t ctx = {m, fx_i32(f, "text"), fx_i32(f, "image"), 3};
    fd_loss(&ctx);
    gpt_zero_grad(m);
    gpt_backward(m);
    static const char *names[] = {"gpt.wte_text", "gpt.wte_image", "gpt.wpe_text",
                                  "gpt.wpe_row", "gpt.wpe_col", "gpt.h0.attn.qkv.w",
                                  "gpt.h1.ln1.w", "gpt.h1.mlp.fc.b", "gpt.ln_f.b",
                                  "gpt.head_text.w", "gpt.head_image.b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const gpt_tensor_t *t = gpt_tensor_find(m, names[i]);
        if (!check(t != NULL, "no tensor %s", names[i])) continue;
        /* float32 loss ~2.7 (rounding ~2e-7), h = 1e-2: truncation O(h^2) and rounding
         * 2e-7/h = 2e-5 against gradients down to 1% of the tensor's largest (~1e-5):
         * observed up to 1.8e-2 (wte_image, h = 1e-2; smaller h trades it for rounding) */
        check_grad_fd(names[i], fd_loss, &ctx, t->param, t->grad, t->numel, 12, 1e-2f, 5e-2);
    }
    gpt_free(m);
    fx_free(f);
}

static void test_conventions(void)
{
    printf("table, init, caption dropout, input checks\n");
    gpt_config_t c = gpt_config_default();
    c.n_layer = 2;
    gpt_t *m;
    char err[GPT_ERR_SIZE];
    if (!check(gpt_create(&m, &c, 0, err) == 0, "inference-only create: %s", err)) return;
    size_t total = 0;
    for (int i = 0; i < gpt_tensor_count(m); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(m, i);
        check(t->offset == total, "%s: offset %zu, want %zu", t->name, t->offset, total);
        check(t->grad == NULL, "%s: inference-only model has a gradient", t->name);
        total += t->numel;
    }
    check(total == gpt_num_params(&c), "table covers %zu of %zu params", total,
          gpt_num_params(&c));
    check(gpt_tensor_count(m) == 5 + 12 * 2 + 6, "%d tensors", gpt_tensor_count(m));
    gpt_init_params(m, 7);
    const gpt_tensor_t *w = gpt_tensor_find(m, "gpt.h1.mlp.fc.w");
    const gpt_tensor_t *pw = gpt_tensor_find(m, "gpt.h1.mlp.proj.w");
    const gpt_tensor_t *ln = gpt_tensor_find(m, "gpt.h0.ln2.w");
    const gpt_tensor_t *b = gpt_tensor_find(m, "gpt.h0.attn.qkv.b");
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < w->numel; i++) s1 += (double)w->param[i] * w->param[i];
    for (size_t i = 0; i < pw->numel; i++) s2 += (double)pw->param[i] * pw->param[i];
    s1 = sqrt(s1 / w->numel);
    s2 = sqrt(s2 / pw->numel);
    printf("  init std: mlp.fc.w %.4f (0.02), mlp.proj.w %.4f (%.4f)\n", s1, s2, 0.02 / 2.0);
    check(fabs(s1 - 0.02) < 0.001 && fabs(s2 - 0.01) < 0.0005, "init std %g %g", s1, s2);
    check(ln->param[3] == 1.0f && b->param[5] == 0.0f, "LN weight 1, bias 0");
    check(w->decay && pw->decay && !ln->decay && !b->decay &&
          !gpt_tensor_find(m, "gpt.wte_image")->decay &&
          gpt_tensor_find(m, "gpt.head_image.w")->decay, "decay flags");
    gpt_free(m);

    c = gpt_config_default();
    c.p_null = 0.25f;
    enum { B = 4000 };
    int *text = malloc((size_t)B * c.text_len * sizeof(int));
    for (int i = 0; i < B * c.text_len; i++) text[i] = 5;
    nn_rng_t rng;
    nn_rng_seed(&rng, 3);
    int dropped = gpt_drop_captions(&c, text, B, &rng), counted = 0;
    for (int i = 0; i < B; i++) {
        int all_pad = 1, none = 1;
        for (int t = 0; t < c.text_len; t++) {
            all_pad &= text[i * c.text_len + t] == c.pad_id;
            none &= text[i * c.text_len + t] == 5;
        }
        check(all_pad || none, "caption %d partly dropped", i);
        counted += all_pad;
    }
    printf("  caption dropout p=0.25: %d of %d dropped\n", dropped, B);
    check(dropped == counted && fabs(dropped / (double)B - 0.25) < 0.03, "dropped %d", dropped);
    free(text);

    c.grid = 2; c.n_layer = 1; c.n_embd = 8; c.n_head = 2; c.text_len = 2;
    c.text_vocab = 6; c.image_vocab = 5; c.bos_id = 1;
    check(gpt_create(&m, &c, 2, err) == 0, "small create: %s", err);
    int tx[4] = {3, 4, 5, 0}, im[8] = {0, 1, 2, 3, 4, 0, 1, 2};
    check(!isnan(gpt_forward(m, tx, im, 2)), "valid forward");
    im[5] = 5;
    check(isnan(gpt_forward(m, tx, im, 2)) && strstr(gpt_errmsg(m), "image id 5"),
          "bad image id refused: %s", gpt_errmsg(m));
    im[5] = 0;
    tx[1] = -1;
    check(isnan(gpt_forward(m, tx, im, 2)), "bad text id refused");
    check(isnan(gpt_forward(m, tx, im, 3)), "batch over max refused");
    gpt_free(m);
    c.n_head = 3;
    check(gpt_create(&m, &c, 1, err) != 0 && strstr(err, "n_head"), "bad config: %s", err);
}

int main(void)
{
    test_step();
    test_fd();
    test_conventions();
    return test_summary("test_gpt");
}
