/* The generator command's file inputs, through cmd_generate itself with a tiny model
 * (tests/fuzz/corpus/model_load/tiny.dalle) and fixed options, so only the file is
 * fuzzed:
 *   - a PNG (the input starts with the PNG signature): `dalle-c --from IN.png -o OUT.png`
 *     reads the prompt and settings back from its dalle-c:* text chunks (seed, n, image,
 *     temperature, top-k, top-p, guidance, init-image, init-rows, model) and generates
 *     (an input of even length has its chunk CRCs recomputed, so mutated values get
 *     through);
 *   - anything else: `dalle-c --prompts IN.txt -o OUT_DIR`, one prompt a line (at most
 *     the first 4 lines are kept, so a run stays short), each generated and written as
 *     NNNN.png with its prompt in NNNN.txt.
 * The command's messages go to /dev/null. Promises: the exit status is 0, 1 or 2; after
 * a --prompts run that succeeded 0000.txt holds a line of the input. */
#include "pipeline/commands.h"
#include "tests/fuzz/fuzz_util.h"

#include <fcntl.h>
#include <sys/stat.h>

#ifndef DALLEC_SOURCE_DIR
#define DALLEC_SOURCE_DIR "."
#endif
#define MODEL DALLEC_SOURCE_DIR "/tests/fuzz/corpus/model_load/tiny.dalle"
#define MAX_PROMPTS 4

/* 1 when needle[0..k) occurs in hay[0..n). */
static int contains(const uint8_t *hay, size_t n, const char *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return 1;
    return 0;
}

static int run(int argc, char **argv)
{
    fflush(stdout), fflush(stderr);
    int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1), dup2(null, 2);
    int rc = cmd_generate(argc, argv);
    fflush(stdout), fflush(stderr);
    if (out >= 0) dup2(out, 1), close(out);
    if (err >= 0) dup2(err, 2), close(err);
    if (null >= 0) close(null);
    if (rc < 0 || rc > 2) fuzz_fail("dalle-c exited with %d", rc);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[600], outp[600];
    const char *dir = fuzz_tmpdir();
    int png = size >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0;
    size_t n = size;
    if (!png) { /* keep the first MAX_PROMPTS lines */
        int lines = 0;
        for (n = 0; n < size && lines < MAX_PROMPTS; n++)
            if (data[n] == '\n') lines++;
    }
    snprintf(in, sizeof in, "%s/%s", dir, png ? "in.png" : "prompts.txt");
    uint8_t *bytes = malloc(n ? n : 1);
    if (!bytes) return 0;
    memcpy(bytes, data, n);
    if (png && n % 2 == 0) fuzz_png_fix_crcs(bytes, n); /* else the text chunks' CRCs decide */
    FILE *f = fopen(in, "wb");
    size_t wrote = f ? fwrite(bytes, 1, n, f) : 0;
    free(bytes);
    if (!f || fclose(f) || wrote != n) return 0;
    char model[] = MODEL, q[] = "-q", m[] = "-m", o[] = "-o", t[] = "-t", one[] = "1";
    if (png) {
        snprintf(outp, sizeof outp, "%s/out.png", dir);
        char from[] = "--from", name[] = "dalle-c";
        char *argv[] = {name, from, in, m, model, o, outp, t, one, q, NULL};
        run(10, argv);
        remove(outp);
        /* -n N > 1 from the chunks: OUT-1.png ... beside it */
        for (int i = 1; i <= 64; i++) {
            snprintf(outp, sizeof outp, "%s/out-%d.png", dir, i);
            if (remove(outp) != 0) break;
        }
    } else {
        snprintf(outp, sizeof outp, "%s/out", dir);
        char prompts[] = "--prompts", name[] = "dalle-c";
        char *argv[] = {name, prompts, in, m, model, o, outp, t, one, q, NULL};
        if (run(10, argv) == 0) {
            char txt[700], line[512];
            snprintf(txt, sizeof txt, "%s/0000.txt", outp);
            FILE *p = fopen(txt, "rb");
            if (!p) fuzz_fail("a --prompts run succeeded without writing %s", txt);
            size_t k = fread(line, 1, sizeof line - 1, p);
            fclose(p);
            line[k] = 0;
            if (k && line[k - 1] == '\n') line[--k] = 0;
            if (k < sizeof line - 1 && (!k || !contains(data, n, line, k)))
                fuzz_fail("0000.txt holds \"%s\", not a line of the input", line);
        }
        fuzz_remove_tree(outp);
    }
    return 0;
}
