/* dalle-c: the command line. Dispatches to the subcommands of pipeline/commands.h. */
#include "nn/nn.h"
#include "pipeline/commands.h"
#include "pipeline/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const cmd_entry_t dallec_commands[] = {
    {"info", cmd_info, "configs, parameter counts and tensor table of a model file"},
    {"convert", cmd_convert_model, "rewrite a model file with f16 or bf16 tensors (half the size)"},
    {"dvae", cmd_dvae, "train the discrete VAE on an image folder"},
    {"tokens", cmd_tokens, "images to dVAE token grids and back; codebook stats and atlas"},
    {"tokenizer", cmd_tokenizer, "train a text tokenizer on captions; encode and decode text"},
    {"data", cmd_data, "make datasets: synthetic shapes scenes; convert images"},
    {"train", cmd_gpt_train, "train the transformer on captioned images (with a dVAE): the full model"},
    {"eval", cmd_eval, "judge images against their prompts (shapes: per-attribute fidelity)"},
    {"rerank", cmd_rerank, "the text-image scorer: train it, add it to a model, score images"},
    {"serve", cmd_serve, "a web page and an OpenAI-style images API over HTTP (docs/SERVER.md)"},
    {0, 0, 0},
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: dalle-c \"PROMPT\" [options]      generate an image from a prompt\n"
            "                                       (dalle-c \"PROMPT\" --help for the options)\n"
            "       dalle-c COMMAND [options]       (COMMAND --help for its options)\n"
            "       dalle-c --version | --help\n\ncommands:\n");
    for (const cmd_entry_t *c = dallec_commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\nexit status: 0 ok, 1 runtime failure, 2 usage error\n");
}

static int print_version(void)
{
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("dalle-c %s\nBLAS: OpenBLAS, core %s, %d threads\nOpenMP: wait policy %s\n",
           DALLEC_VERSION, nn_blas_core(), nn_threads(), wait ? wait : "default");
    return 0;
}

/* Two settings are read only when a library loads, so they are fixed by setting them in
 * the environment of a fresh exec of ourselves, once:
 * - OpenBLAS picks its kernels from the CPU it detects or from OPENBLAS_CORETYPE; where
 *   it detects this CPU as an older core (Debian's 0.3.21 calls some recent Xeons
 *   "Prescott" and runs SSE3 kernels) we set the right core.
 * - libgomp's threads spin at each barrier by default; on a machine doing anything else
 *   a spinning thread holds a core its partner needs, and a training step took 1.7x as
 *   long (bench-dvae under load). OMP_WAIT_POLICY=PASSIVE makes them sleep instead.
 * A variable the user set is kept. DALLEC_NO_REEXEC=1 keeps everything as it is;
 * DALLEC_TEST_SLOW_BLAS=1 makes any core count as slow, so tests can exercise the
 * re-exec on machines where OpenBLAS already picks well. */
static void reexec_with_tuned_env(char **argv)
{
    if (getenv("DALLEC_NO_REEXEC")) return;
    if (getenv("DALLEC_REEXECED")) {
        unsetenv("DALLEC_REEXECED"); /* not inherited by anything we start */
        return;
    }
    int change = 0;
    if (!getenv("OPENBLAS_CORETYPE")) {
        const char *core = getenv("DALLEC_TEST_SLOW_BLAS") ? nn_blas_preferred_core()
                                                           : nn_blas_better_core();
        if (core && setenv("OPENBLAS_CORETYPE", core, 1) == 0) change = 1;
    }
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT") &&
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
        change = 1;
    if (!change || setenv("DALLEC_REEXECED", "1", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on as we are */
    unsetenv("DALLEC_REEXECED");
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return print_version();
    for (const cmd_entry_t *c = dallec_commands; c->name; c++)
        if (strcmp(argv[1], c->name) == 0) return c->run(argc - 1, argv + 1);
    return cmd_generate(argc, argv); /* "PROMPT", --prompts, --from and their options */
}

int main(int argc, char **argv)
{
    /* Before MPI_Init: the exec keeps the pid and the environment, which is all mpirun's
     * daemon and MPI_Init go by (docs/DISTRIBUTED.md) */
    reexec_with_tuned_env(argv);
    if (dist_init(&argc, &argv)) return 1;
    return dist_finish(run(argc, argv));
}
