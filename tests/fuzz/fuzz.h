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
#include <zlib.h>

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

/* Recomputes the CRC-32 of every whole chunk of a PNG in place (a fuzzer cannot), so that
 * damage reaches libpng's chunk parsers instead of stopping at its CRC check. */
static inline void fuzz_png_fix_crcs(uint8_t *p, size_t n)
{
    if (n < 8 || memcmp(p, "\x89PNG\r\n\x1a\n", 8) != 0) return;
    for (size_t at = 8; n - at >= 12;) {
        uint32_t len = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 |
                       (uint32_t)p[at + 2] << 8 | p[at + 3];
        if (len > n - at - 12) break;
        uint32_t crc = (uint32_t)crc32(0, p + at + 4, len + 4);
        for (int i = 0; i < 4; i++) p[at + 8 + len + i] = (uint8_t)(crc >> (24 - 8 * i));
        at += 12 + (size_t)len;
    }
}

/* A scratch directory for targets that must go through files, made once per process
 * ($TMPDIR or /tmp) and removed at exit. */
const char *fuzz_tmpdir(void);
/* Removes path: a file, or a folder and everything below it (symbolic links are removed,
 * not followed). */
void fuzz_remove_tree(const char *path);

#endif
