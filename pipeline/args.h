/* Strict parsing of option values for the subcommands: the whole string must be a
 * number within range, else a one-line message naming the command and the option goes
 * to stderr and the call returns -1 (the command then exits 2). Internal to pipeline/. */
#ifndef DALLEC_ARGS_H
#define DALLEC_ARGS_H

#include <stdint.h>

int arg_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int arg_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out);
int arg_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
int arg_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out);
int arg_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
/* The value after option argv[*i]; advances *i. Prints "OPT needs a value" when there
 * is none and returns NULL. */
const char *arg_value(const char *cmd, int argc, char **argv, int *i);

#endif
