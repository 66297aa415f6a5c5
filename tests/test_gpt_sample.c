/* KV-cache sampling (gpt_sample) against full recomputation: for every image token the
 * reference re-runs the training forward (gpt_forward) over whole sequences holding the
 * tokens drawn so far (zeros after them: causal attention keeps later positions out of
 * the logits read), takes the image logits of that position, and applies the same rule
 * (gpt_pick_token) with the same per-image RNGs (nn_rng seeded with seed + n). Both must
 * give exactly the same tokens. Their logits differ in the last float bits (other sgemm
 * shapes), so a draw landing within ~1e-6 of a CDF boundary could in principle split them;
 * with fixed seeds the outcome is fixed, and a split shows as a single differing token
 * followed by divergence.
 * Also: the same seed gives the same tokens, prefix rows are kept, the row callback sees
 * every row in order and can cancel, and the sampling rule's top-k / top-p / greedy cases. */
#include "transformer/transformer.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_MAX = 3 };

static gpt_config_t tiny(void)
{
    gpt_config_t c = gpt_config_default();
    c.text_len = 5; c.text_vocab = 13; c.pad_id = 0; c.bos_id = 1;
    c.grid = 4; c.image_vocab = 17;
    c.n_layer = 2; c.n_head = 4; c.n_embd = 32;
    return c;
}

/* Weights big enough that the distributions are far from uniform and differ per prompt. */
static void random_weights(gpt_t *m, uint64_t seed)
{
    gpt_init_params(m, seed);
    nn_rng_t rng;
    nn_rng_seed(&rng, seed ^ 0xabcdef);
    for (int i = 0; i < gpt_tensor_count(m); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(m, i);
        if (t->ndim == 2) nn_rng_fill_normal(&rng, t->param, t->numel, 0.0f, 0.3f);
        else if (!strstr(t->name, ".ln")) nn_rng_fill_normal(&rng, t->param, t->numel, 0.0f, 0.1f);
    }
}

/* Full recomputation, one gpt_forward over the N (+N null-caption) sequences per token. */
static void sample_reference(gpt_t *m, const int *text, int N, const gpt_sample_opts_t *o,
                             int *out)
{
    const gpt_config_t *c = gpt_config(m);
    const int T = c->text_len, G2 = c->grid * c->grid, K = c->image_vocab;
    const int guided = o->guidance != 1.0f, R = guided ? 2 * N : N, P = o->prefix_rows * c->grid;
    int tx[2 * N_MAX * 64], im[2 * N_MAX * 256];
    nn_rng_t rng[N_MAX];
    gpt_cand_t cand[256];
    memset(out, 0, (size_t)N * G2 * sizeof(int));
    for (int n = 0; n < N; n++) {
        nn_rng_seed(&rng[n], o->seed + (uint64_t)n);
        for (int i = 0; i < P; i++) out[n * G2 + i] = o->prefix[n * P + i];
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) tx[r * T + t] = r < N ? text[r * T + t] : c->pad_id;
    for (int i = P; i < G2; i++) {
        for (int r = 0; r < R; r++) memcpy(im + r * G2, out + (r % N) * G2, G2 * sizeof(int));
        gpt_forward(m, tx, im, R);
        const float *li = gpt_logits_image(m);
        for (int n = 0; n < N; n++)
            out[n * G2 + i] = gpt_pick_token(li + ((size_t)n * G2 + i) * K,
                                             guided ? li + ((size_t)(N + n) * G2 + i) * K : NULL,
                                             K, o, &rng[n], cand);
    }
}

typedef struct {
    int calls, cancel_at, rows[64];
} cb_state_t;

static int on_row(void *user, int row, const int *tokens, int n_images)
{
    cb_state_t *s = user;
    s->rows[s->calls++] = row;
    return row == s->cancel_at;
}

static int same(const int *a, const int *b, size_t n)
{
    return memcmp(a, b, n * sizeof(int)) == 0;
}

static void print_tokens(const char *label, const int *x, int N, int G2)
{
    printf("  %s:", label);
    for (int n = 0; n < N; n++) {
        printf(" [");
        for (int i = 0; i < G2; i++) printf("%s%d", i ? " " : "", x[n * G2 + i]);
        printf("]");
    }
    printf("\n");
}

static void test_cache_vs_full(void)
{
    printf("KV cache vs full recomputation\n");
    gpt_config_t c = tiny();
    gpt_t *m;
    gpt_sampler_t *s;
    char err[GPT_ERR_SIZE];
    if (!check(gpt_create(&m, &c, 2 * N_MAX, err) == 0, "create: %s", err)) return;
    random_weights(m, 11);
    if (!check(gpt_sampler_create(&s, m, N_MAX, err) == 0, "sampler: %s", err)) return;
    const int N = N_MAX, T = c.text_len, G = c.grid, G2 = G * G;
    int text[N_MAX * 5] = {5, 6, 7, 0, 0, 12, 3, 3, 4, 2, 8, 0, 0, 0, 0};
    int prefix[N_MAX * 2 * 4];
    for (int i = 0; i < N * 2 * G; i++) prefix[i] = (i * 7 + 3) % c.image_vocab;
    int got[N_MAX * 16], want[N_MAX * 16], again[N_MAX * 16];

    struct { const char *name; float temp, top_p, guidance; int top_k, prefix_rows; } cases[] = {
        {"plain (no guidance)", 1.0f, 1.0f, 1.0f, 0, 0},
        {"guidance 3", 1.0f, 1.0f, 3.0f, 0, 0},
        {"guidance 2.5, top-k 5, top-p 0.9, T 0.8", 0.8f, 0.9f, 2.5f, 5, 0},
        {"top-k 3 no guidance", 1.2f, 1.0f, 1.0f, 3, 0},
        {"top-p 0.7", 1.0f, 0.7f, 1.0f, 0, 0},
        {"greedy with guidance", 0.0f, 1.0f, 4.0f, 0, 0},
        {"prefix 2 rows, guidance 3, top-k 6", 1.0f, 1.0f, 3.0f, 6, 2},
        {"prefix 1 row, no guidance", 1.0f, 1.0f, 1.0f, 0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        gpt_sample_opts_t o = gpt_sample_opts_default();
        o.temperature = cases[k].temp;
        o.top_p = cases[k].top_p;
        o.top_k = cases[k].top_k;
        o.guidance = cases[k].guidance;
        o.prefix_rows = cases[k].prefix_rows;
        o.prefix = o.prefix_rows ? prefix : NULL;
        o.seed = 1000 + k;
        int rc = gpt_sample(s, text, N, &o, got, err);
        check(rc == 0, "%s: gpt_sample returned %d: %s", cases[k].name, rc, err);
        sample_reference(m, text, N, &o, want);
        int ok = check(same(got, want, (size_t)N * G2), "%s: cache and full recomputation differ",
                       cases[k].name);
        printf("  %-40s %s\n", cases[k].name, ok ? "same tokens" : "DIFFERENT");
        if (!ok || k == 2) {
            print_tokens("cache", got, N, G2);
            if (!ok) print_tokens("full ", want, N, G2);
        }
        for (int n = 0; n < N; n++)
            check(same(got + n * G2, prefix + n * o.prefix_rows * G, (size_t)o.prefix_rows * G),
                  "%s: prefix of image %d not kept", cases[k].name, n);
        gpt_sample(s, text, N, &o, again, err);
        check(same(got, again, (size_t)N * G2), "%s: same seed, other tokens", cases[k].name);
        /* image n depends on seed + n only: the last image alone, seeded to match */
        gpt_sample_opts_t o1 = o;
        o1.seed = o.seed + (uint64_t)(N - 1);
        if (o.prefix_rows) o1.prefix = prefix + (N - 1) * o.prefix_rows * G;
        gpt_sample(s, text + (N - 1) * T, 1, &o1, again, err);
        check(same(got + (N - 1) * G2, again, G2), "%s: image %d alone differs", cases[k].name,
              N - 1);
    }
    gpt_sample_opts_t o = gpt_sample_opts_default();
    o.seed = 1;
    gpt_sample(s, text, N, &o, got, err);
    o.seed = 2;
    gpt_sample(s, text, N, &o, again, err);
    check(!same(got, again, (size_t)N * G2), "seeds 1 and 2 gave the same tokens");

    /* row callback and cancel */
    cb_state_t st = {0, -1, {0}};
    o.on_row = on_row;
    o.user = &st;
    o.prefix_rows = 1;
    o.prefix = prefix;
    check(gpt_sample(s, text, N, &o, got, err) == 0, "callback run");
    int in_order = st.calls == G;
    for (int r = 0; r < st.calls && in_order; r++) in_order = st.rows[r] == r;
    check(in_order, "callback saw %d rows, want 0..%d in order", st.calls, G - 1);
    st = (cb_state_t){0, 1, {0}};
    int rc = gpt_sample(s, text, N, &o, got, err);
    check(rc == GPT_CANCELLED && st.calls == 2, "cancel at row 1: rc %d after %d calls", rc,
          st.calls);
    printf("  callback: %d rows in order; cancel at row 1 returned %d after 2 calls\n", G, rc);

    /* bad inputs */
    o = gpt_sample_opts_default();
    text[3] = 13;
    check(gpt_sample(s, text, N, &o, got, err) == -1 && strstr(err, "text id 13"),
          "bad text id: %s", err);
    text[3] = 0;
    check(gpt_sample(s, text, N + 1, &o, got, err) == -1, "too many images refused");
    o.top_p = 0;
    check(gpt_sample(s, text, N, &o, got, err) == -1, "top_p 0 refused");
    o = gpt_sample_opts_default();
    o.prefix_rows = 2;
    check(gpt_sample(s, text, N, &o, got, err) == -1, "prefix rows without prefix refused");
    gpt_sampler_free(s);
    gpt_free(m);
}

static void test_pick(void)
{
    printf("the sampling rule\n");
    enum { K = 6, DRAWS = 20000 };
    const float logits[K] = {2.0f, 1.0f, 0.5f, 3.0f, 3.0f, -1.0f};
    gpt_cand_t cand[K];
    gpt_sample_opts_t o = gpt_sample_opts_default();
    o.guidance = 1.0f;
    nn_rng_t rng;
    nn_rng_seed(&rng, 5);
    o.temperature = 0;
    check(gpt_pick_token(logits, NULL, K, &o, &rng, cand) == 3, "greedy: lowest id on ties");
    /* guided: u + 2 (c - u) */
    const float uncond[K] = {0.0f, 0.0f, 0.0f, 3.5f, 3.0f, 0.0f};
    o.guidance = 2.0f;
    check(gpt_pick_token(logits, uncond, K, &o, &rng, cand) == 0, "greedy guided");
    o.guidance = 1.0f;
    int count[K];
    struct { int top_k; float top_p; int allowed[K]; } cases[] = {
        {1, 1.0f, {0, 0, 0, 1, 1, 0}},  /* ties with the k-th are kept */
        {3, 1.0f, {1, 0, 0, 1, 1, 0}},
        {0, 0.5f, {0, 0, 0, 1, 0, 0}},  /* p(3) = 0.37 < 0.5, then id 4 joins */
        {0, 0.3f, {0, 0, 0, 1, 0, 0}},
    };
    cases[2].allowed[4] = 1;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        o.temperature = 1.0f;
        o.top_k = cases[k].top_k;
        o.top_p = cases[k].top_p;
        memset(count, 0, sizeof count);
        for (int i = 0; i < DRAWS; i++) count[gpt_pick_token(logits, NULL, K, &o, &rng, cand)]++;
        int ok = 1;
        for (int j = 0; j < K; j++) ok &= (count[j] > 0) == cases[k].allowed[j];
        check(ok, "top_k %d top_p %g: counts %d %d %d %d %d %d", cases[k].top_k, cases[k].top_p,
              count[0], count[1], count[2], count[3], count[4], count[5]);
    }
    /* plain sampling follows softmax */
    o.top_k = 0;
    o.top_p = 1.0f;
    memset(count, 0, sizeof count);
    for (int i = 0; i < DRAWS; i++) count[gpt_pick_token(logits, NULL, K, &o, &rng, cand)]++;
    double z = 0, worst = 0;
    for (int j = 0; j < K; j++) z += exp(logits[j]);
    for (int j = 0; j < K; j++)
        worst = fmax(worst, fabs(count[j] / (double)DRAWS - exp(logits[j]) / z));
    printf("  frequencies vs softmax over %d draws: max diff %.4f\n", DRAWS, worst);
    check(worst < 0.015, "sampling frequencies off by %g", worst);
}

/* The sampling rule as first written, with a full sort of the K candidates: the partial
 * selection gpt_pick_token uses for top-k must pick exactly the same token for the same
 * draw (same kept set, same order, so the same sums and CDF). */
static int cand_desc_ref(const void *pa, const void *pb)
{
    const gpt_cand_t *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int pick_full_sort(const float *cond, const float *uncond, int K,
                          const gpt_sample_opts_t *o, nn_rng_t *rng, gpt_cand_t *cand)
{
    for (int j = 0; j < K; j++)
        cand[j] = (gpt_cand_t){uncond ? uncond[j] + o->guidance * (cond[j] - uncond[j]) : cond[j],
                               j};
    for (int j = 0; j < K; j++) cand[j].v *= 1.0f / o->temperature;
    qsort(cand, (size_t)K, sizeof *cand, cand_desc_ref);
    int n = K;
    if (o->top_k > 0 && o->top_k < K) {
        n = o->top_k;
        while (n < K && cand[n].v == cand[o->top_k - 1].v) n++;
    }
    const float mx = cand[0].v;
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        cand[j].v = expf(cand[j].v - mx);
        sum += cand[j].v;
    }
    if (o->top_p < 1.0f) {
        double cum = 0.0, limit = (double)o->top_p * sum;
        int keep = 0;
        while (keep < n && (keep == 0 || cum < limit)) cum += cand[keep++].v;
        n = keep;
        sum = cum;
    }
    double u = (double)nn_rng_uniform(rng) * sum, acc = 0.0;
    for (int j = 0; j < n; j++) {
        acc += cand[j].v;
        if (u < acc) return cand[j].id;
    }
    return cand[n - 1].id;
}

static void test_pick_vs_full_sort(void)
{
    enum { CASES = 3000, K_MAX = 600 };
    printf("the top-k selection vs a full sort (%d random cases, many ties)\n", CASES);
    static float cond[K_MAX], uncond[K_MAX];
    static gpt_cand_t cand[K_MAX], cand_ref[K_MAX];
    nn_rng_t gen;
    nn_rng_seed(&gen, 77);
    int differ = 0, with_ties = 0;
    for (int c = 0; c < CASES; c++) {
        const int K = 2 + (int)nn_rng_below(&gen, K_MAX - 1);
        /* values on a coarse grid, so that the k-th value is often tied */
        const float grid = c % 3 == 0 ? 0.5f : c % 3 == 1 ? 0.05f : 1e-4f;
        for (int j = 0; j < K; j++) {
            cond[j] = grid * (float)(int)(nn_rng_normal(&gen) * 3.0f / grid);
            uncond[j] = grid * (float)(int)(nn_rng_normal(&gen) * 3.0f / grid);
        }
        gpt_sample_opts_t o = gpt_sample_opts_default();
        const int ks[] = {0, 1, 2, 5, 64, K - 1, K, K + 3};
        o.top_k = ks[nn_rng_below(&gen, 8)];
        if (o.top_k < 0) o.top_k = 0;
        const float ps[] = {1.0f, 0.95f, 0.5f, 0.1f};
        o.top_p = ps[nn_rng_below(&gen, 4)];
        const float ts[] = {1.0f, 0.7f, 1.3f};
        o.temperature = ts[nn_rng_below(&gen, 3)];
        o.guidance = c % 2 ? 3.0f : 1.0f;
        const float *u = c % 2 ? uncond : NULL;
        nn_rng_t r1, r2;
        nn_rng_seed(&r1, 1000 + (uint64_t)c);
        r2 = r1;
        int got = gpt_pick_token(cond, u, K, &o, &r1, cand);
        int want = pick_full_sort(cond, u, K, &o, &r2, cand_ref);
        if (o.top_k > 0 && o.top_k < K && cand_ref[o.top_k].v == cand_ref[o.top_k - 1].v)
            with_ties++;
        if (got != want || memcmp(&r1, &r2, sizeof r1) != 0) {
            if (differ++ < 5)
                printf("  case %d: K %d top_k %d top_p %g T %g: token %d, full sort %d\n", c, K,
                       o.top_k, o.top_p, o.temperature, got, want);
        }
    }
    printf("  %d of %d differ (%d cases had ties at the k-th value)\n", differ, CASES, with_ties);
    check(differ == 0, "top-k selection and full sort picked different tokens");
    check(with_ties > 50, "too few tied cases (%d) to test the ties", with_ties);
}

int main(void)
{
    test_pick();
    test_pick_vs_full_sort();
    test_cache_vs_full();
    return test_summary("test_gpt_sample");
}
