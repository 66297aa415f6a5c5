/* dalle-c: the command line. Dispatches to the subcommands of pipeline/commands.h. */
#include "nn/nn.h"
#include "pipeline/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const cmd_entry_t dallec_commands[] = {
    {"info", cmd_info, "configs, parameter counts and tensor table of a model file"},
    {"dvae", cmd_dvae, "train the discrete VAE on an image folder"},
    {"tokens", cmd_tokens, "images to dVAE token grids and back; codebook stats and atlas"},
    {"tokenizer", cmd_tokenizer, "train a text tokenizer on captions; encode and decode text"},
    {"data", cmd_data, "make datasets: synthetic shapes scenes; convert images"},
    {"eval", cmd_eval, "judge images against their prompts (shapes: per-attribute fidelity)"},
    {0, 0, 0},
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: dalle-c \"PROMPT\" [options]      generate an image from a prompt\n"
            "       dalle-c COMMAND [options]       (COMMAND --help for its options)\n"
            "       dalle-c --version | --help\n\ncommands:\n");
    for (const cmd_entry_t *c = dallec_commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\nexit status: 0 ok, 1 runtime failure, 2 usage error\n");
}

static int print_version(void)
{
    printf("dalle-c %s\nBLAS: OpenBLAS, core %s, %d threads\n", DALLEC_VERSION, nn_blas_core(),
           nn_threads());
    return 0;
}

/* OpenBLAS picks its kernels when it loads, from the CPU it detects or from
 * OPENBLAS_CORETYPE. Where it detects this CPU as an older core (Debian's 0.3.21 calls
 * some recent Xeons "Prescott" and runs SSE3 kernels), re-exec once with the right core
 * set. The variable, once set, keeps this from looping; DALLEC_NO_REEXEC=1 opts out.
 * DALLEC_TEST_SLOW_BLAS=1 makes any core count as slow, so tests can exercise the
 * re-exec on machines where OpenBLAS already picks well. */
static void reexec_for_fast_blas(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("DALLEC_NO_REEXEC")) return;
    const char *core = getenv("DALLEC_TEST_SLOW_BLAS") ? nn_blas_preferred_core()
                                                       : nn_blas_better_core();
    if (!core) return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with the slower kernels */
}

int cmd_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    reexec_for_fast_blas(argv);
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
    if (argv[1][0] == '-') {
        fprintf(stderr, "dalle-c: unknown option '%s' (see dalle-c --help)\n", argv[1]);
        return 2;
    }
    fprintf(stderr, "dalle-c: generation from a prompt is not built yet; see dalle-c --help\n");
    return 1;
}
