/* xoshiro256** 1.0 (Blackman and Vigna, 2018), state seeded by SplitMix64 from one
 * 64-bit seed: the reference algorithms from prng.di.unimi.it, restated here so any
 * implementation can reproduce our streams.
 *   splitmix64: z = (x += 0x9e3779b97f4a7c15); z = (z ^ z>>30) * 0xbf58476d1ce4e5b9;
 *               z = (z ^ z>>27) * 0x94d049bb133111eb; return z ^ z>>31
 *   xoshiro256**: r = rotl(s1 * 5, 7) * 9; t = s1 << 17; s2 ^= s0; s3 ^= s1;
 *               s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 45); return r
 * Floats take the top bits: uniform = (u64 >> 40) * 2^-24 in [0, 1), and
 * uniform_open = ((u64 >> 41) + 0.5) * 2^-23 in (0, 1). */
#include "nn/nn.h"
#include "nn/nn_math.h"

#include <math.h>

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t nn_rng_u64(nn_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t nn_rng_below(nn_rng_t *r, uint32_t n)
{
    /* Lemire's multiply-and-reject on the top 32 bits: unbiased. */
    if (n == 0) return 0;
    uint64_t m = (nn_rng_u64(r) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (nn_rng_u64(r) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float nn_rng_uniform(nn_rng_t *r)
{
    return (float)(nn_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float nn_rng_uniform_open(nn_rng_t *r)
{
    /* 23 bits so that k + 0.5 is exact in a float and the result stays below 1. */
    return ((float)(nn_rng_u64(r) >> 41) + 0.5f) * (1.0f / 8388608.0f);
}

float nn_rng_normal(nn_rng_t *r)
{
    float u1 = nn_rng_uniform_open(r), u2 = nn_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

void nn_rng_fill_normal(nn_rng_t *r, float *x, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = mean + std * nn_rng_normal(r);
}

void nn_rng_fill_uniform(nn_rng_t *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * nn_rng_uniform(r);
}

void nn_rng_fill_gumbel(nn_rng_t *r, float *x, size_t n)
{
    /* the stream first, then the transform in a loop the compiler vectorises */
    for (size_t i = 0; i < n; i++) x[i] = nn_rng_uniform_open(r);
    for (size_t i = 0; i < n; i++) x[i] = -nn_logf(-nn_logf(x[i]));
}

uint64_t nn_seed_mix(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t h = seed * 0x9e3779b97f4a7c15ULL ^ (a + 0x632be59bd9b4e019ULL);
    h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ULL ^ (b * 0x94d049bb133111ebULL);
    return h ^ (h >> 29);
}
