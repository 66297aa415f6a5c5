/* Elementwise math that the compiler can vectorise. glibc's expf and tanhf are calls
 * that keep a loop scalar (GELU's tanhf was a fifth of a transformer training step);
 * these are plain arithmetic, so a loop over them becomes SIMD, and being IEEE
 * operations only (no libm, no contraction: we build with -std=c11) they give the same
 * bits on every machine. Internal to nn/ (and the models built on it). */
#ifndef DALLEC_NN_MATH_H
#define DALLEC_NN_MATH_H

#include <stdint.h>
#include <string.h>

/* e^x within 1 ulp for x in [-87.3, 88.7] (measured against double exp over the whole
 * range); below it returns e^-87.3 (about 1.2e-38) rather than underflowing to
 * subnormals and 0, above it +inf or FLT_MAX. Cody-Waite reduction
 * x = k ln2 + r, |r| <= ln2/2, then a degree-6 Taylor-minimax polynomial for e^r. */
static inline float nn_expf(float x)
{
    x = x < -87.3365447f ? -87.3365447f : x;
    x = x > 88.7228391f ? 88.7228391f : x;
    float kf = x * 1.44269504088896341f;
    /* round to nearest without libm: add and subtract 1.5 * 2^23 */
    kf = (kf + 12582912.0f) - 12582912.0f;
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* NaN goes on through p (the result is NaN) but not into the int conversion, where
     * it is undefined (a model file's NaN weights reached it: tests/fuzz) */
    int32_t k = kf == kf ? (int32_t)kf : 0;
    /* 2^k in two halves so that k = 128 (x near 88.7) and k = -127 stay finite */
    int32_t k1 = k / 2, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

/* ln x for positive normal x (what the Gumbel noise and the KL terms need), within
 * 2 ulp: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln x = e ln2 + ln m, ln m by Cephes'
 * logf polynomial in m - 1. Not for 0, subnormals, negatives, inf or NaN. */
static inline float nn_logf(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, 4);
    float e = (float)((int32_t)(bits >> 23) - 126);
    bits = (bits & 0x807fffffu) | 0x3f000000u; /* mantissa in [0.5, 1) */
    float m;
    memcpy(&m, &bits, 4);
    int small = m < 0.707106781186547524f;
    e = small ? e - 1.0f : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    return m + y + 0.693359375f * e;
}

/* 1 / (1 + e^-x) */
static inline float nn_sigmoidf(float x)
{
    return 1.0f / (1.0f + nn_expf(-x));
}

#endif
