/* Internal to weights/: byte order, CRC-32, name checks and the file layout constants
 * shared by the writer and the reader (weights/FORMAT.md describes the same layout). */
#ifndef DALLEC_WF_INTERNAL_H
#define DALLEC_WF_INTERNAL_H

#include "weights/weights.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WF_MAGIC "\x89" "DLC\r\n\x1a\n"
#define WF_HEADER_SIZE 72        /* version 1.0 */
#define WF_ENTRY_FIXED 40        /* entry bytes before dims and name */
#define WF_MAX_CONFIG (16u << 20)
#define WF_MAX_DIRECTORY (256u << 20)
#define WF_MAX_BLOB ((uint64_t)1 << 31)

/* header field offsets */
enum {
    WF_H_MAJOR = 8, WF_H_MINOR = 10, WF_H_SIZE = 12, WF_H_CRC = 16, WF_H_CONFIG_CRC = 20,
    WF_H_DIR_CRC = 24, WF_H_FLAGS = 28, WF_H_FILE_SIZE = 32, WF_H_CONFIG_OFF = 40,
    WF_H_CONFIG_SIZE = 48, WF_H_DIR_OFF = 56, WF_H_DIR_SIZE = 64,
};

static inline uint16_t wf_rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t wf_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t wf_rd64(const unsigned char *p)
{
    return (uint64_t)wf_rd32(p) | (uint64_t)wf_rd32(p + 4) << 32;
}
static inline void wf_wr16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static inline void wf_wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void wf_wr64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline int wf_host_is_le(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}
/* Swaps n elements of width bytes in place (only called on big-endian hosts). */
void wf_byteswap(void *data, size_t n, size_t width);

/* Exact for every input, branch-free so loops over it vectorise (the FP16 library's
 * fp16_ieee_to_fp32_value, as c10::Half uses): normals and inf/NaN by shifting the bits
 * into place and rescaling the exponent by 2^-112; subnormals with the magic-bias trick,
 * whose float arithmetic is exact (every f16 subnormal is a normal f32). */
static inline float wf_h2f(uint16_t h)
{
    uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w, u;
    uint32_t nb = (two_w >> 4) + (0xE0u << 23), db = (two_w >> 17) | (126u << 23);
    float norm, denorm;
    memcpy(&norm, &nb, 4);
    memcpy(&denorm, &db, 4);
    norm *= 0x1.0p-112f;
    denorm -= 0.5f;
    uint32_t nbits, dbits;
    memcpy(&nbits, &norm, 4);
    memcpy(&dbits, &denorm, 4);
    u = sign | (two_w < (1u << 27) ? dbits : nbits);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float wf_b2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* CRC-32 (IEEE 802.3, as zlib's crc32 and PNG): start with crc = 0. */
uint32_t wf_crc32(uint32_t crc, const void *data, size_t n);

/* 1 when name is 1..max chars of [A-Za-z0-9_.:/-]. */
int wf_valid_name(const char *name, size_t len, size_t max);

/* err = "PATH: message" (err may be NULL). Returns status. */
int wf_fail(char *err, int status, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Config text (de)serialisation, in wf_config.c. */
char *wf_config_serialize(const wf_config_t *c, size_t *len);
/* Parses text[len]; on failure returns WF_ECORRUPT with "line N: problem" in msg. */
int wf_config_parse(wf_config_t **out, const char *text, size_t len, char *msg, size_t msg_size);

#endif
