/* The token-grid text reader of `dalle-c tokens decode` (pipeline/cmd_tokens_grid.c; the
 * format is docs/TOKENS.md), exposed so tests/fuzz/fuzz_grid.c can drive it without a
 * model. Internal to pipeline/. */
#ifndef DALLEC_TOKEN_GRID_H
#define DALLEC_TOKEN_GRID_H

#include <stddef.h>

/* Parses size bytes of grid text (need not be NUL-terminated) and copies grid number
 * index (from 1; 0: the text must hold exactly one) into tok[G*G], after checking it
 * against a model with grid side G and K codes (a header, when present, must agree;
 * every row G whole numbers in [0, K); G rows). Returns 0, or -1 with a one-line
 * message "NAME: problem" in err (model names the model file in messages). */
int tokens_grid_read(const char *text, size_t size, const char *name, const char *model, int G,
                     int K, int index, int *tok, char err[512]);

#endif
