/* dalle-c "PROMPT" [options] and dalle-c --prompts FILE -o DIR: generation through
 * dalle.h. Every PNG carries its prompt, seed, model and sampling settings as text chunks
 * ("dalle-c:prompt", ...) so --from IMG.png regenerates it byte for byte. */
#include "data/data.h"
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "pipeline/dalle.h"
#include "pipeline/progress.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "dalle-c"
#define SLUG_MAX 60
#define DEFAULT_MODEL_NAME "default.dalle"

static const char *const generate_usage =
    "usage: dalle-c \"PROMPT\" [options]\n"
    "       dalle-c --prompts PROMPTS.txt -o OUT_DIR [options]\n"
    "       dalle-c --from IMAGE.png [options]\n"
    "\n"
    "Generates images from a text prompt. Every PNG holds its prompt, seed, model name and\n"
    "sampling settings in text chunks (dalle-c:prompt, dalle-c:seed, ...), so --from\n"
    "IMAGE.png makes the same image again, byte for byte, on the same model.\n"
    "\n"
    "  -m, --model MODEL    model file (default: $DALLEC_MODEL, then\n"
    "                       ../share/dalle-c/default.dalle and ../weights/default.dalle\n"
    "                       beside the dalle-c executable)\n"
    "  -n N                 images (1..64; default 1). With N > 1, OUT-1.png .. OUT-N.png\n"
    "                       and a grid of all of them in OUT.png\n"
    "  -o OUT.png           output (default: named after the prompt, e.g. a-red-circle.png).\n"
    "                       Existing files are replaced (atomically: a complete PNG or the\n"
    "                       old file, never half of one)\n"
    "  --seed S             0..2^63-1 (default: random; always printed and stored)\n"
    "  --temperature T      0..100, 0 = greedy (default 1)\n"
    "  --top-k K            sample from the K most likely tokens, 0 = all (default 64)\n"
    "  --top-p P            nucleus sampling, (0, 1], 1 = off (default 1)\n"
    "  --guidance G         classifier-free guidance scale 0..100, 1 = none (default 3)\n"
    "                       These four default to the model's own where its file\n"
    "                       recommends them (sample.* keys: dalle-c info MODEL)\n"
    "  --candidates M       draw M samples per image and keep the one the model's scorer\n"
    "                       ranks best (needs a model with a scorer: docs/RERANK.md;\n"
    "                       N x M at most 64). Candidate j of image i uses seed S + j*N + i,\n"
    "                       so candidate 0 has the seed the image has without it (default 1).\n"
    "                       Above 1, the temperature defaults to the model's\n"
    "                       sample.candidate_temperature where it has one (with --from,\n"
    "                       to the PNG's, as every setting)\n"
    "  --init-image IMG     image completion: keep the top rows of IMG (PNG or JPEG) ...\n"
    "  --init-rows R        ... R token rows of it, 1..grid (default: half the grid)\n"
    "  -t, --threads N      (default: OMP_NUM_THREADS or all cores)\n"
    "  --prompts FILE       one prompt a line (blank lines skipped); -o names a folder that\n"
    "                       receives NNNN.png with NNNN.txt holding its prompt (the layout\n"
    "                       `dalle-c eval shapes` reads); prompt i uses seed S + i*N\n"
    "  --from IMAGE.png     take the prompt and every setting from a dalle-c PNG; options\n"
    "                       given as well override them (-n N makes a new batch)\n"
    "  -q, --quiet          no progress display\n"
    "\n"
    "Prompts longer than the model reads (T tokens) are cut, with a warning.\n"
    "Exit status: 0 ok, 1 runtime failure (model, files), 2 usage (options, prompt).\n";

typedef struct {
    const char *prompt, *prompts_file, *model, *out, *from, *init_image;
    char *from_prompt;        /* owned: the prompt read from --from */
    char *from_init;          /* owned */
    dalle_params_t p;
    int have_n, have_seed, have_init_rows, have_candidates;
    /* sampling settings given, or read from --from; the others are the model's */
    int have_temperature, have_top_k, have_top_p, have_guidance;
    int image;                /* --from: 0 = all, k = image k of the batch, -1 = the grid */
    int quiet;
} gen_opts_t;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---------------------------------------------------------------- settings <-> text */

/* Settings from a PNG's chunks, for those not given on the command line. 0, or 1 (a
 * runtime failure: the file) after printing why. */
static int read_from(gen_opts_t *o)
{
    img_text_t *text = NULL;
    int n = 0;
    char err[256];
    if (img_load_text(o->from, &text, &n, err)) {
        fprintf(stderr, CMD ": --from %s\n", err);
        return 1;
    }
    const char *prompt = img_text_get(text, n, "dalle-c:prompt");
    const char *seed = img_text_get(text, n, "dalle-c:seed");
    if (!prompt || !seed) {
        fprintf(stderr, CMD ": %s: holds no dalle-c settings (dalle-c:prompt, dalle-c:seed)\n",
                o->from);
        free(text);
        return 1;
    }
    const char *bad = NULL;
    char *end;
    const char *v;
    if (!o->prompt && !o->prompts_file) {
        o->from_prompt = strdup(prompt);
        o->prompt = o->from_prompt;
    }
    if (!o->have_seed) {
        errno = 0;
        unsigned long long s = strtoull(seed, &end, 10);
        if (errno || *end || !isdigit((unsigned char)seed[0]) || s > INT64_MAX) bad = "seed";
        o->p.seed = (int64_t)s;
    }
    if (!o->have_n && (v = img_text_get(text, n, "dalle-c:n"))) {
        long x = strtol(v, &end, 10);
        if (*end || x < 1 || x > DALLE_MAX_IMAGES) bad = "n";
        o->p.n_images = (int)x;
        if ((v = img_text_get(text, n, "dalle-c:image"))) {
            x = strcmp(v, "grid") == 0 ? -1 : strtol(v, &end, 10);
            if (x != -1 && (*end || x < 1 || x > o->p.n_images)) bad = "image";
            o->image = o->p.n_images > 1 ? (int)x : 0;
        }
    }
#define FLOAT_KEY(key, field)                                        \
    if (!o->have_##field && (v = img_text_get(text, n, key))) {      \
        o->p.field = strtof(v, &end);                                \
        o->have_##field = 1;                                         \
        if (*end || end == v) bad = key;                             \
    }
    FLOAT_KEY("dalle-c:temperature", temperature)
    FLOAT_KEY("dalle-c:top-p", top_p)
    FLOAT_KEY("dalle-c:guidance", guidance)
#undef FLOAT_KEY
    if (!o->have_top_k && (v = img_text_get(text, n, "dalle-c:top-k"))) {
        long x = strtol(v, &end, 10);
        if (*end || end == v || x < 0 || x > INT_MAX) bad = "dalle-c:top-k";
        o->p.top_k = (int)x;
        o->have_top_k = 1;
    }
    if (!o->have_candidates && (v = img_text_get(text, n, "dalle-c:candidates"))) {
        long x = strtol(v, &end, 10);
        if (*end || end == v || x < 1 || x > DALLE_MAX_IMAGES) bad = "dalle-c:candidates";
        o->p.candidates = (int)x;
    }
    if (!o->init_image && (v = img_text_get(text, n, "dalle-c:init-image"))) {
        o->from_init = strdup(v);
        o->init_image = o->from_init;
        const char *r = img_text_get(text, n, "dalle-c:init-rows");
        if (r && !o->have_init_rows) {
            long x = strtol(r, &end, 10);
            if (*end || end == r || x < 1 || x > 4096) bad = "dalle-c:init-rows";
            o->p.init_rows = (int)x;
            o->have_init_rows = 1;
        }
    }
    const char *model = img_text_get(text, n, "dalle-c:model");
    if (model && o->model) {
        const char *slash = strrchr(o->model, '/');
        if (strcmp(model, slash ? slash + 1 : o->model) != 0)
            fprintf(stderr, CMD ": note: %s was made with model '%s'; using %s\n", o->from,
                    model, o->model);
    }
    if (bad) fprintf(stderr, CMD ": %s: bad setting %s in its text chunks\n", o->from, bad);
    free(text);
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- options */

/* 0, or the exit status (2) after printing why. */
static int parse(gen_opts_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->p = dalle_params_default();
    int opts_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (opts_done || a[0] != '-' || a[1] == 0) {
            if (o->prompt) {
                fprintf(stderr, CMD ": one prompt only, got '%s' too (quote the prompt)\n", a);
                return 2;
            }
            o->prompt = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        static const char *const with_value[] = {
            "-m", "--model", "-o", "--output", "--prompts", "--from", "--init-image", "-n",
            "--seed", "--temperature", "--top-k", "--top-p", "--guidance", "--init-rows", "-t",
            "--threads", "--candidates", NULL};
        int known = 0;
        for (int k = 0; with_value[k]; k++) known |= strcmp(a, with_value[k]) == 0;
        if (!known) {
            fprintf(stderr, CMD ": unknown option '%s' (see dalle-c \"PROMPT\" --help)\n", a);
            return 2;
        }
        if (!(v = arg_value(CMD, argc, argv, &i))) return 2;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) o->out = v;
        else if (strcmp(a, "--prompts") == 0) o->prompts_file = v;
        else if (strcmp(a, "--from") == 0) o->from = v;
        else if (strcmp(a, "--init-image") == 0) o->init_image = v;
        else if (strcmp(a, "-n") == 0) {
            if (arg_int(CMD, a, v, 1, DALLE_MAX_IMAGES, &o->p.n_images)) return 2;
            o->have_n = 1;
        } else if (strcmp(a, "--seed") == 0) {
            long s;
            if (!isdigit((unsigned char)v[0]) || arg_long(CMD, a, v, 0, LONG_MAX, &s)) {
                if (!isdigit((unsigned char)v[0]))
                    fprintf(stderr, CMD ": --seed wants a whole number from 0 to %ld, got '%s'\n",
                            LONG_MAX, v);
                return 2;
            }
            o->p.seed = (int64_t)s;
            o->have_seed = 1;
        } else if (strcmp(a, "--temperature") == 0) {
            if (arg_float(CMD, a, v, 0, 100, &o->p.temperature)) return 2;
            o->have_temperature = 1;
        } else if (strcmp(a, "--top-k") == 0) {
            if (arg_int(CMD, a, v, 0, 1 << 24, &o->p.top_k)) return 2;
            o->have_top_k = 1;
        } else if (strcmp(a, "--top-p") == 0) {
            if (arg_float(CMD, a, v, 0, 1, &o->p.top_p)) return 2;
            if (!(o->p.top_p > 0)) {
                fprintf(stderr, CMD ": --top-p wants a number above 0 and at most 1, got '%s'\n", v);
                return 2;
            }
            o->have_top_p = 1;
        } else if (strcmp(a, "--guidance") == 0) {
            if (arg_float(CMD, a, v, 0, 100, &o->p.guidance)) return 2;
            o->have_guidance = 1;
        } else if (strcmp(a, "--init-rows") == 0) {
            /* the upper bound is the model's grid, checked once it is loaded */
            if (arg_int(CMD, a, v, 1, 4096, &o->p.init_rows)) return 2;
            o->have_init_rows = 1;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (arg_int(CMD, a, v, 1, 1024, &o->p.threads)) return 2;
        } else if (strcmp(a, "--candidates") == 0) {
            if (arg_int(CMD, a, v, 1, DALLE_MAX_IMAGES, &o->p.candidates)) return 2;
            o->have_candidates = 1;
        } else {
            fprintf(stderr, CMD ": unknown option '%s' (see dalle-c \"PROMPT\" --help)\n", a);
            return 2;
        }
    }
    if (o->prompts_file && (o->prompt || o->from)) {
        fprintf(stderr, CMD ": --prompts takes its prompts from the file: no PROMPT or --from "
                        "with it\n");
        return 2;
    }
    if (o->prompts_file && !o->out) {
        fprintf(stderr, CMD ": --prompts needs -o OUT_DIR\n");
        return 2;
    }
    if (o->have_init_rows && !o->init_image && !o->from) {
        fprintf(stderr, CMD ": --init-rows needs --init-image\n");
        return 2;
    }
    if (o->from && read_from(o)) return 1;
    if (o->p.n_images * o->p.candidates > DALLE_MAX_IMAGES) {
        fprintf(stderr, CMD ": -n %d with --candidates %d is %d samples; at most %d\n",
                o->p.n_images, o->p.candidates, o->p.n_images * o->p.candidates, DALLE_MAX_IMAGES);
        return 2;
    }
    if (!o->prompt && !o->prompts_file) {
        fprintf(stderr, CMD ": no prompt given (dalle-c \"PROMPT\", --prompts FILE or --from "
                        "IMAGE.png; see --help)\n");
        return 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- the model */

/* The sampling settings neither given nor read from --from: those the model recommends
 * (its sample.* keys, else the built-in defaults parse started from). */
static void take_model_settings(gen_opts_t *o, const dalle_model_t *m)
{
    const dalle_params_t rec = dalle_model_params(m);
    if (!o->have_temperature) o->p.temperature = dalle_model_temperature(m, o->p.candidates);
    if (!o->have_top_k) o->p.top_k = rec.top_k;
    if (!o->have_top_p) o->p.top_p = rec.top_p;
    if (!o->have_guidance) o->p.guidance = rec.guidance;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* -m, else $DALLEC_MODEL, else the installed and the source-tree default beside the
 * executable. NULL after printing where it looked. buf receives a found default. */
const char *cmd_find_model(const char *given, char *buf, size_t n)
{
    if (given) return given;
    const char *env = getenv("DALLEC_MODEL");
    if (env && *env) return env;
    char exe[4096], a[4200] = "", b[4200] = "";
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        char up[4200], prefix[PATH_MAX];
        snprintf(up, sizeof up, "%s/..", exe);
        if (!realpath(up, prefix)) snprintf(prefix, sizeof prefix, "%.4000s", up);
        snprintf(a, sizeof a, "%s/share/dalle-c/" DEFAULT_MODEL_NAME, prefix);
        snprintf(b, sizeof b, "%s/weights/" DEFAULT_MODEL_NAME, prefix);
        if (file_exists(a)) return snprintf(buf, n, "%s", a) < (int)n ? buf : NULL;
        if (file_exists(b)) return snprintf(buf, n, "%s", b) < (int)n ? buf : NULL;
    }
    fprintf(stderr,
            CMD ": no model found (looked at $DALLEC_MODEL (unset), %s and %s); train one with "
                "`dalle-c train DATASET_DIR --dvae DVAE_FILE -o MODEL`, then pass -m MODEL or "
                "set DALLEC_MODEL\n",
            *a ? a : "../share/dalle-c/" DEFAULT_MODEL_NAME,
            *b ? b : "../weights/" DEFAULT_MODEL_NAME);
    return NULL;
}

/* ---------------------------------------------------------------- outputs */

/* A file name from the prompt: lowercase ASCII letters and digits, runs of anything else
 * as one '-', at most SLUG_MAX characters (cut at a '-' when there is one late enough). */
static void slug(char *out, size_t n, const char *prompt)
{
    size_t k = 0;
    int dash = 0;
    for (const unsigned char *p = (const unsigned char *)prompt; *p && k + 1 < n && k < SLUG_MAX; p++) {
        if (*p < 0x80 && isalnum(*p)) {
            if (dash && k) out[k++] = '-';
            dash = 0;
            if (k + 1 < n) out[k++] = (char)tolower(*p);
        } else {
            dash = 1;
        }
    }
    out[k] = 0;
    if (k >= SLUG_MAX) {
        char *cut = strrchr(out, '-');
        if (cut && cut - out > SLUG_MAX / 2) *cut = 0;
    }
    if (!out[0]) snprintf(out, n, "image");
}

/* path without a trailing ".png" (any case) */
static void strip_png(char *out, size_t n, const char *path)
{
    snprintf(out, n, "%s", path);
    size_t len = strlen(out);
    if (len > 4 && strcasecmp(out + len - 4, ".png") == 0) out[len - 4] = 0;
}

/* 0 when a file can be created at path (its folder exists and is writable, and path is
 * not a folder), else 1 after printing why. */
static int check_writable(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, CMD ": cannot write %s: it is a folder\n", path);
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, CMD ": cannot write %s: no folder %s\n", path, dir);
        return 1;
    }
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, CMD ": cannot write %s: folder %s: %s\n", path, dir, strerror(errno));
        return 1;
    }
    return 0;
}

static int save_png(const dalle_image_t *im, const char *path, const dalle_settings_text_t *c)
{
    char err[DALLE_ERR_SIZE];
    if (dalle_image_save_png(im, path, c->text, c->n_text, err)) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    return 0;
}

/* text + "\n" to path atomically (temporary file, fsync, rename) */
static int save_text(const char *path, const char *text)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%.4200s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, CMD ": cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- generating */

typedef struct {
    progress_t bar;
    int show;
    long base;     /* rows done before this prompt */
    int grid;
} run_t;

static int on_row(const dalle_row_t *r, void *user)
{
    run_t *run = user;
    if (run->show) progress_update(&run->bar, run->base + r->row + 1, NULL);
    return interrupted;
}

/* One batch; 0, or the exit status after printing why. */
static int generate(dalle_ctx_t *ctx, const char *prompt, const dalle_params_t *p, run_t *run,
                    dalle_result_t *res, int *warned)
{
    char err[DALLE_ERR_SIZE];
    int st = dalle_generate(ctx, prompt, p, on_row, run, res, err);
    if (st == DALLE_CANCELLED) {
        if (run->show) progress_finish(&run->bar, "interrupted");
        fprintf(stderr, CMD ": interrupted\n");
        return 1;
    }
    if (st) {
        if (run->show) progress_finish(&run->bar, "failed");
        fprintf(stderr, CMD ": %s\n", err);
        return st == DALLE_EPROMPT || st == DALLE_EINVAL ? 2 : 1;
    }
    if (res->prompt_kept < res->prompt_tokens && !*warned) {
        if (run->show) progress_log(&run->bar, CMD ": warning: the prompt is %d tokens; the model "
                                    "reads the first %d, the rest is ignored",
                                    res->prompt_tokens, res->prompt_kept);
        else fprintf(stderr, CMD ": warning: the prompt is %d tokens; the model reads the first "
                     "%d, the rest is ignored\n", res->prompt_tokens, res->prompt_kept);
        *warned = 1;
    }
    return 0;
}

/* The path of output k (1-based; -1: the grid) of a single prompt's run. */
static void output_path(char *path, size_t n, const gen_opts_t *o, int N, int k)
{
    char base[4096], name[SLUG_MAX + 8];
    if (o->out) strip_png(base, sizeof base, o->out);
    else {
        slug(name, sizeof name, o->prompt);
        snprintf(base, sizeof base, "%s", name);
    }
    int single = N == 1 || o->image != 0; /* one file: OUT as given */
    if ((single || k < 0) && o->out) snprintf(path, n, "%s", o->out);
    else if (k < 0 || N == 1) snprintf(path, n, "%s.png", base);
    else snprintf(path, n, "%s-%d.png", base, k);
}

/* "wrote PATH", with image k's score (0-based; -1: the grid) when the model has a scorer */
static void print_wrote(const char *path, const dalle_result_t *r, int k)
{
    if (k >= 0 && r->scores && r->params.candidates > 1)
        printf("wrote %s (score %.4f, candidate %d of %d)\n", path, (double)r->scores[k],
               r->candidate[k] + 1, r->params.candidates);
    else if (k >= 0 && r->scores)
        printf("wrote %s (score %.4f)\n", path, (double)r->scores[k]);
    else
        printf("wrote %s\n", path);
}

/* Writes a single prompt's batch: one image, or each image and a grid, or (from --from)
 * the one image or grid asked for. */
static int write_batch(const gen_opts_t *o, const char *model_name, const dalle_result_t *r)
{
    char path[4200];
    const int N = r->n_images;
    dalle_settings_text_t c;
    int rc;
    for (int k = 1; k <= N; k++) {
        if (o->image == -1 || (o->image > 0 && o->image != k)) continue;
        output_path(path, sizeof path, o, N, k);
        dalle_settings_text(&c, r, k, o->prompt, model_name, o->init_image);
        if ((rc = save_png(&r->images[k - 1], path, &c))) return rc;
        print_wrote(path, r, k - 1);
    }
    if (N > 1 && o->image <= 0) {
        img_t tiles[DALLE_MAX_IMAGES], grid = {0};
        char err[256];
        for (int k = 0; k < N; k++)
            tiles[k] = (img_t){r->images[k].w, r->images[k].h, r->images[k].rgb};
        if (img_grid(&grid, tiles, N, 0, 2, err)) {
            fprintf(stderr, CMD ": grid: %s\n", err);
            return 1;
        }
        output_path(path, sizeof path, o, N, -1);
        dalle_settings_text(&c, r, 0, o->prompt, model_name, o->init_image);
        dalle_image_t g = {grid.w, grid.h, grid.rgb};
        rc = save_png(&g, path, &c);
        img_deinit(&grid);
        if (rc) return rc;
        printf("wrote %s\n", path);
    }
    return 0;
}

/* The folder of a single prompt's outputs, checked before any work. */
static int check_outputs(const gen_opts_t *o)
{
    char path[4200];
    output_path(path, sizeof path, o, o->p.n_images, o->p.n_images > 1 && o->image == 0 ? -1 : 1);
    return check_writable(path);
}

/* Prompts of a file, one a line, blank lines skipped. NULL after printing why. */
static char **read_prompts(const char *path, int *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, CMD ": cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char **list = NULL, *line = NULL;
    size_t cap = 0;
    int n = 0, lineno = 0, ok = 1;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if ((size_t)len != strlen(line)) {
            fprintf(stderr, CMD ": %s:%d: holds a NUL byte\n", path, lineno);
            ok = 0;
            break;
        }
        char err[DALLE_ERR_SIZE];
        int st = dalle_prompt_check(line, err);
        if (st && strstr(err, "empty")) continue;
        if (st) {
            fprintf(stderr, CMD ": %s:%d: %s\n", path, lineno, err);
            ok = 0;
            break;
        }
        char **bigger = realloc(list, (size_t)(n + 1) * sizeof *list);
        if (!bigger || !(bigger[n] = strdup(line))) {
            list = bigger ? bigger : list;
            fprintf(stderr, CMD ": out of memory\n");
            ok = 0;
            break;
        }
        list = bigger;
        n++;
    }
    if (ok && ferror(f)) {
        fprintf(stderr, CMD ": cannot read %s: %s\n", path, strerror(errno));
        ok = 0;
    }
    free(line);
    fclose(f);
    if (ok && n == 0) {
        fprintf(stderr, CMD ": %s holds no prompt\n", path);
        ok = 0;
    }
    if (!ok) {
        for (int i = 0; i < n; i++) free(list[i]);
        free(list);
        return NULL;
    }
    *count = n;
    return list;
}

static int run_prompts(const gen_opts_t *o, dalle_ctx_t *ctx, const char *model_name,
                       char **prompts, int count, run_t *run)
{
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, CMD ": cannot make folder %s: %s\n", o->out, strerror(errno));
        return 1;
    }
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/0000.png", o->out);
    if (check_writable(probe)) return 1;
    int warned = 0, rc = 0;
    const uint64_t seed0 = (uint64_t)o->p.seed;
    for (int i = 0; i < count && !rc; i++) {
        dalle_params_t p = o->p;
        p.seed = (int64_t)((seed0 + (uint64_t)i * (uint64_t)p.n_images) & INT64_MAX);
        dalle_result_t r;
        run->base = (long)i * run->grid;
        if ((rc = generate(ctx, prompts[i], &p, run, &r, &warned))) break;
        for (int k = 0; k < r.n_images && !rc; k++) {
            int idx = i * r.n_images + k;
            char png[4200], txt[4200];
            snprintf(png, sizeof png, "%s/%04d.png", o->out, idx);
            snprintf(txt, sizeof txt, "%s/%04d.txt", o->out, idx);
            dalle_settings_text_t c;
            dalle_settings_text(&c, &r, k + 1, prompts[i], model_name, o->init_image);
            rc = save_png(&r.images[k], png, &c);
            if (!rc) rc = save_text(txt, prompts[i]);
            if (!rc && r.scores) print_wrote(png, &r, k);
        }
        dalle_result_free(&r);
    }
    if (!rc) {
        if (run->show) progress_finish(&run->bar, NULL);
        printf("wrote %d images to %s\n", count * o->p.n_images, o->out);
    }
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(generate_usage, stdout);
        return 0;
    }
    gen_opts_t o;
    int rc = parse(&o, argc, argv);
    char **prompts = NULL;
    int count = 0;
    dalle_model_t *model = NULL;
    dalle_ctx_t *ctx = NULL;
    img_t init = {0};
    char err[DALLE_ERR_SIZE], model_buf[4200];
    const char *model_path = NULL;
    if (rc) goto done;

    /* everything that can be refused without the model, first */
    if (o.prompt && dalle_prompt_check(o.prompt, err)) {
        fprintf(stderr, CMD ": %s\n", err);
        rc = 2;
        goto done;
    }
    if (o.prompts_file && !(prompts = read_prompts(o.prompts_file, &count))) {
        rc = 1;
        goto done;
    }
    if (!o.prompts_file && check_outputs(&o)) {
        rc = 1;
        goto done;
    }
    if (o.init_image && img_load(&init, o.init_image, err)) {
        fprintf(stderr, CMD ": --init-image %s\n", err);
        rc = 1;
        goto done;
    }
    if (!(model_path = cmd_find_model(o.model, model_buf, sizeof model_buf))) {
        rc = 1;
        goto done;
    }
    if ((rc = dalle_model_load(&model, model_path, err) ? 1 : 0) ||
        (rc = dalle_ctx_create(&ctx, model, err) ? 1 : 0)) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    take_model_settings(&o, model);
    dalle_model_info_t info;
    dalle_model_info(model, &info);
    dalle_image_t init_im = {init.w, init.h, init.rgb};
    if (o.p.candidates > 1 && !info.has_scorer) {
        fprintf(stderr, CMD ": %s holds no scorer, so --candidates %d has nothing to rank the "
                "samples by; train one and add it (dalle-c rerank train DATASET_DIR -o SCORER "
                "-m MODEL --into OUT; docs/RERANK.md)\n", model_path, o.p.candidates);
        rc = 1;
        goto done;
    }
    if (o.init_image) {
        if (!o.have_init_rows) o.p.init_rows = info.grid / 2 > 0 ? info.grid / 2 : 1;
        if (o.p.init_rows > info.grid) {
            fprintf(stderr, CMD ": --init-rows wants a whole number from 1 to %d (the model's "
                            "grid), got %d\n", info.grid, o.p.init_rows);
            rc = 2;
            goto done;
        }
        o.p.init_image = &init_im;
    }
    if (o.p.seed < 0) o.p.seed = dalle_random_seed();
    printf("seed %lld\n", (long long)o.p.seed);
    fflush(stdout);

    run_t run = {.show = !o.quiet, .grid = info.grid};
    signal(SIGINT, on_sigint);
    if (run.show) progress_start(&run.bar, stderr, "generating", (long)info.grid * (count ? count : 1));
    if (o.prompts_file) {
        rc = run_prompts(&o, ctx, dalle_model_name(model), prompts, count, &run);
    } else {
        dalle_result_t r;
        int warned = 0;
        if (!(rc = generate(ctx, o.prompt, &o.p, &run, &r, &warned))) {
            if (run.show) progress_finish(&run.bar, NULL);
            rc = write_batch(&o, dalle_model_name(model), &r);
            dalle_result_free(&r);
        }
    }
    signal(SIGINT, SIG_DFL);

done:
    dalle_ctx_free(ctx);
    dalle_model_free(model);
    img_deinit(&init);
    for (int i = 0; i < count; i++) free(prompts[i]);
    free(prompts);
    free(o.from_prompt);
    free(o.from_init);
    return rc;
}
