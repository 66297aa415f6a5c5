/* weights/: CRC-32, byte order, names, messages and the f16/bf16 conversions. */
#include "weights/wf_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- CRC-32 */

/* Slicing-by-8 (Intel's method): eight 256-entry tables let the loop consume eight
 * bytes per step, ~1.5-3 GB/s, so checking every frame costs little next to zstd.
 * The tables are computed once (pthread_once) and read-only afterwards. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

uint32_t wf_crc32(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ wf_rd32(p), hi = wf_rd32(p + 4);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
            crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* ---------------------------------------------------------------- small helpers */

void wf_byteswap(void *data, size_t n, size_t width)
{
    unsigned char *p = data;
    for (size_t i = 0; i < n; i++, p += width)
        for (size_t a = 0, b = width - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

int wf_valid_name(const char *name, size_t len, size_t max)
{
    if (len == 0 || len > max) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '.' || ch == ':' || ch == '/' || ch == '-';
        if (!ok) return 0;
    }
    return 1;
}

int wf_fail(char *err, int status, const char *path, const char *fmt, ...)
{
    if (!err) return status;
    int n = snprintf(err, WF_ERR_SIZE, "%s: ", path ? path : "(model)");
    if (n < 0 || n >= WF_ERR_SIZE) return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, WF_ERR_SIZE - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

const char *wf_status_name(int status)
{
    switch (status) {
    case WF_OK: return "ok";
    case WF_EIO: return "I/O error";
    case WF_ENOMEM: return "out of memory";
    case WF_EFOREIGN: return "not a dalle-c model file";
    case WF_EVERSION: return "unsupported format version";
    case WF_ETRUNC: return "truncated";
    case WF_ECORRUPT: return "corrupt";
    case WF_ENOTFOUND: return "not found";
    case WF_ESHAPE: return "wrong shape or type";
    case WF_EINVAL: return "invalid argument";
    }
    return "unknown error";
}

const char *wf_dtype_name(wf_dtype d)
{
    switch (d) {
    case WF_F32: return "f32";
    case WF_F16: return "f16";
    case WF_BF16: return "bf16";
    }
    return "?";
}

size_t wf_dtype_size(wf_dtype d) { return d == WF_F32 ? 4 : 2; }

/* ---------------------------------------------------------------- conversions */

/* Integer-only, so the result does not depend on the FPU's rounding mode or on
 * flush-to-zero settings; bit-identical to c10::Half(float) (the FP16 library's
 * fp16_ieee_from_fp32_value) and c10::BFloat16's round_to_nearest_even. */
uint16_t wf_f32_to_f16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFF;
    if (a > 0x7F800000) return sign | 0x7E00;         /* NaN */
    if (a >= 0x477FF000) return sign | 0x7C00;        /* >= 65520 (or inf): inf */
    if (a >= 0x38800000) {                             /* normal in f16: >= 2^-14 */
        a += 0xFFF + ((a >> 13) & 1);                  /* round the 13 dropped bits */
        return sign | (uint16_t)((a - 0x38000000) >> 13); /* rebias 127 -> 15 */
    }
    if (a <= 0x33000000) return sign;                  /* <= 2^-25: ties to even 0 */
    /* subnormal: the value in units of 2^-24 is mant >> (126 - exp) */
    uint32_t e = a >> 23, mant = (a & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;                          /* 14..24 */
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
}

uint16_t wf_f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return 0x7FC0;
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

float wf_f16_to_f32(uint16_t h) { return wf_h2f(h); }

float wf_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
