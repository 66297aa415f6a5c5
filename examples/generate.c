/* examples/generate.c: libdallec seen from outside the project. Loads a model, draws N
 * images for a prompt while the row callback reports each token row (Ctrl-C cancels
 * through the same callback), and writes PNGs that carry their settings, so
 * `dalle-c --from OUT-1.png` draws the same picture again.
 *
 *   make -C examples    (examples/README.md: the one-line builds, shared and static)
 *   ./generate MODEL "a red circle on a blue background" [N [OUT]]
 *        writes OUT-1.png .. OUT-N.png (OUT: "image")
 */
#include <dalle.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Called in the generating thread after every token row, for all N images at once.
 * Returning non-zero cancels: dalle_generate then returns DALLE_CANCELLED. */
static int on_row(const dalle_row_t *row, void *user)
{
    (void)user;
    fprintf(stderr, "\rrow %d/%d of %d image(s)", row->row + 1, row->grid, row->n_images);
    if (row->row + 1 == row->grid) fputc('\n', stderr);
    return interrupted;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL \"PROMPT\" [N [OUT]]\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[2], *out = argc > 4 ? argv[4] : "image";
    char err[DALLE_ERR_SIZE];
    dalle_model_t *model = NULL;
    dalle_ctx_t *ctx = NULL;
    dalle_result_t res = {0};

    int st = dalle_model_load(&model, argv[1], err);
    if (st == DALLE_OK) st = dalle_ctx_create(&ctx, model, err);
    if (st == DALLE_OK) {
        /* 1 image, a random seed and the sampling settings the model recommends */
        dalle_params_t params = dalle_model_params(model);
        params.n_images = argc > 3 ? atoi(argv[3]) : 1;
        signal(SIGINT, on_sigint);
        st = dalle_generate(ctx, prompt, &params, on_row, NULL, &res, err);
        signal(SIGINT, SIG_DFL);
    }
    if (st == DALLE_CANCELLED) fprintf(stderr, "\ncancelled\n");
    else if (st != DALLE_OK) fprintf(stderr, "%s: %s\n", dalle_status_name(st), err);
    else {
        printf("seed %llu, %.2f s\n", (unsigned long long)res.seed, res.seconds);
        if (res.prompt_kept < res.prompt_tokens)
            fprintf(stderr, "warning: the model read %d of the prompt's %d tokens\n",
                    res.prompt_kept, res.prompt_tokens);
        for (int i = 0; i < res.n_images && st == DALLE_OK; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s-%d.png", out, i + 1);
            dalle_settings_text_t chunks; /* prompt, seed, settings, model as PNG text */
            dalle_settings_text(&chunks, &res, i + 1, prompt, dalle_model_name(model), NULL);
            st = dalle_image_save_png(&res.images[i], path, chunks.text, chunks.n_text, err);
            if (st == DALLE_OK) printf("wrote %s (%dx%d)\n", path, res.images[i].w, res.images[i].h);
            else fprintf(stderr, "%s\n", err);
        }
        dalle_result_free(&res);
    }
    dalle_ctx_free(ctx); /* both accept NULL */
    dalle_model_free(model);
    return st == DALLE_OK ? 0 : 1;
}
