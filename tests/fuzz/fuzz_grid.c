/* Token-grid text (`dalle-c tokens decode`, docs/TOKENS.md) through tokens_grid_read,
 * for a few model shapes and grid indices. The input is passed as is: not
 * NUL-terminated. */
#include "pipeline/token_grid.h"
#include "tests/fuzz/fuzz.h"

#define NAME "fuzz.grid"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int shapes[][2] = {{4, 16}, {8, 512}, {1, 1}, {32, 8192}};
    static int tok[32 * 32];
    for (int s = 0; s < 4; s++) {
        int G = shapes[s][0], K = shapes[s][1];
        for (int index = 0; index <= 2; index++) {
            char err[512] = "";
            if (tokens_grid_read((const char *)data, size, NAME, "model.dalle", G, K, index, tok, err)) {
                fuzz_check_message(err, NAME);
                continue;
            }
            for (int i = 0; i < G * G; i++)
                if (tok[i] < 0 || tok[i] >= K) fuzz_fail("token %d out of [0, %d) accepted", tok[i], K);
        }
    }
    return 0;
}
