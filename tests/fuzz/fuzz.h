/* The libFuzzer entry point every tests/fuzz/fuzz_*.c defines, and the helpers they
 * share. Each target is built two ways (tests/fuzz/CMakeLists.txt): with clang's
 * -fsanitize=fuzzer (libFuzzer supplies main) and with tests/fuzz/driver.c (any
 * compiler; replays a corpus and deterministic mutations of it, for ctest).
 *
 * A target returns 0 for any input; a bug is a crash, a sanitizer report, or
 * fuzz_fail() when an input breaks a documented promise (e.g. an error message that is
 * not one line starting with the file's name). */
#ifndef DALLEC_FUZZ_H
#define DALLEC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints why and aborts, so both libFuzzer and the driver report the input. */
#define fuzz_fail(...)                                                                        \
    do {                                                                                      \
        fprintf(stderr, "fuzz: broken promise at %s:%d: ", __FILE__, __LINE__);               \
        fprintf(stderr, __VA_ARGS__);                                                         \
        fputc('\n', stderr);                                                                  \
        abort();                                                                              \
    } while (0)

/* A refusal message must be one line that starts with "NAME: ". */
static inline void fuzz_check_message(const char *err, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(err, name, n) != 0 || err[n] != ':' || strchr(err, '\n'))
        fuzz_fail("message \"%s\" is not one line starting with \"%s: \"", err, name);
}

/* A scratch directory for targets that must go through files, made once per process
 * ($TMPDIR or /tmp) and removed at exit. */
const char *fuzz_tmpdir(void);

#endif
