/* nn_rng: the exact streams (expected values computed independently in Python from the
 * SplitMix64 + xoshiro256** definitions restated in nn/rng.c), the ranges of the uniform
 * draws including the extreme u64 values, Lemire's bounded draw, and the moments of the
 * normal and Gumbel samplers. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void test_streams(void)
{
    printf("u64 streams\n");
    static const uint64_t want0[5] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL,
                                      0x1a5f849d4933e6e0ULL, 0x6aa594f1262d2d2cULL,
                                      0xbba5ad4a1f842e59ULL};
    static const uint64_t want42[5] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
                                       0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL,
                                       0xfde6dc7fe2ec5e64ULL};
    /* SplitMix64 from 0: its published first output is 0xe220a8397b1dcdaf */
    nn_rng_t r;
    nn_rng_seed(&r, 0);
    check(r.s[0] == 0xe220a8397b1dcdafULL, "seed 0: s[0] = splitmix64's first output");
    for (int i = 0; i < 5; i++) {
        uint64_t got = nn_rng_u64(&r);
        check(got == want0[i], "seed 0 draw %d: got 0x%016llx want 0x%016llx", i,
              (unsigned long long)got, (unsigned long long)want0[i]);
    }
    nn_rng_seed(&r, 42);
    for (int i = 0; i < 5; i++) {
        uint64_t got = nn_rng_u64(&r);
        check(got == want42[i], "seed 42 draw %d: got 0x%016llx want 0x%016llx", i,
              (unsigned long long)got, (unsigned long long)want42[i]);
    }
    /* uniform = (u64 >> 40) * 2^-24, uniform_open = ((u64 >> 41) + 0.5) * 2^-23 */
    static const uint32_t top24[4] = {1406987, 6358233, 11409235, 15513773};
    static const uint32_t top23[4] = {703493, 3179116, 5704617, 7756886};
    nn_rng_seed(&r, 42);
    for (int i = 0; i < 4; i++) {
        float got = nn_rng_uniform(&r), want = (float)top24[i] / 16777216.0f;
        check(got == want, "seed 42 uniform %d: got %.9g want %.9g", i, got, want);
    }
    nn_rng_seed(&r, 42);
    for (int i = 0; i < 4; i++) {
        float got = nn_rng_uniform_open(&r), want = ((float)top23[i] + 0.5f) / 8388608.0f;
        check(got == want, "seed 42 uniform_open %d: got %.9g want %.9g", i, got, want);
    }
    nn_rng_t a, b;
    nn_rng_seed(&a, 7);
    nn_rng_seed(&b, 8);
    check(nn_rng_u64(&a) != nn_rng_u64(&b), "seeds 7 and 8 give different streams");
}

static void test_uniform_extremes(void)
{
    printf("uniform at the extreme u64 values\n");
    /* xoshiro256** returns rotl(s1 * 5, 7) * 9: s1 = 0 gives 0, and this s1 gives
     * 2^64 - 1 (solved in Python with the inverses of 9 and 5 mod 2^64). */
    nn_rng_t lo = {{1, 0, 0, 0}}, hi = {{1, 0x4fc71c71c71c71c7ULL, 0, 0}};
    nn_rng_t r = lo;
    check(nn_rng_u64(&r) == 0, "crafted state gives u64 0");
    r = hi;
    check(nn_rng_u64(&r) == UINT64_MAX, "crafted state gives u64 2^64-1");
    r = lo;
    float u = nn_rng_uniform(&r);
    check(u == 0.0f, "uniform(0) = 0 (got %.9g)", u);
    r = hi;
    u = nn_rng_uniform(&r);
    check(u < 1.0f && u == 1.0f - 1.0f / 16777216.0f, "uniform(max) = 1 - 2^-24 (got %.9g)", u);
    r = lo;
    u = nn_rng_uniform_open(&r);
    check(u > 0.0f && u == 0.5f / 8388608.0f, "uniform_open(0) = 2^-24 > 0 (got %.9g)", u);
    r = hi;
    u = nn_rng_uniform_open(&r);
    check(u < 1.0f && u == 1.0f - 0.5f / 8388608.0f, "uniform_open(max) = 1 - 2^-24 (got %.9g)", u);
    r = lo;
    float g;
    nn_rng_fill_gumbel(&r, &g, 1);
    check(isfinite(g), "gumbel at u64 0 is finite (got %g)", g);
    r = hi;
    nn_rng_fill_gumbel(&r, &g, 1);
    check(isfinite(g), "gumbel at u64 max is finite (got %g)", g);
    r = lo;
    float z = nn_rng_normal(&r);
    check(isfinite(z), "normal at u64 0 is finite (got %g)", z);
}

static void test_ranges(void)
{
    printf("ranges and moments over many draws\n");
    nn_rng_t r;
    nn_rng_seed(&r, 2024);
    int n = 1000000, bad_u = 0, bad_o = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float u = nn_rng_uniform(&r), o = nn_rng_uniform_open(&r);
        if (!(u >= 0.0f && u < 1.0f)) bad_u++;
        if (!(o > 0.0f && o < 1.0f)) bad_o++;
        sum += u;
    }
    check(bad_u == 0, "uniform in [0, 1) (%d of %d outside)", bad_u, n);
    check(bad_o == 0, "uniform_open in (0, 1) (%d of %d outside)", bad_o, n);
    check(fabs(sum / n - 0.5) < 2e-3, "uniform mean %.5f ~ 0.5", sum / n);

    /* 1e5 samples: the standard error of the mean is 3.2e-3 and of the variance 4.5e-3;
     * the bounds are ~6 standard errors. */
    int m = 100000;
    double s1 = 0, s2 = 0, g1 = 0, g2 = 0;
    int finite = 1;
    for (int i = 0; i < m; i++) {
        double z = nn_rng_normal(&r);
        finite &= isfinite(z);
        s1 += z;
        s2 += z * z;
    }
    double mean = s1 / m, var = s2 / m - mean * mean;
    printf("  normal: mean %.4f var %.4f\n", mean, var);
    check(finite, "normal draws are finite");
    check(fabs(mean) < 0.02 && fabs(var - 1) < 0.03, "normal mean %.4f ~ 0, var %.4f ~ 1",
          mean, var);
    float *x = malloc((size_t)m * sizeof(float));
    if (!x) { fprintf(stderr, "out of memory\n"); exit(1); }
    nn_rng_fill_normal(&r, x, (size_t)m, 3.0f, 2.0f);
    s1 = s2 = 0;
    for (int i = 0; i < m; i++) { s1 += x[i]; s2 += (double)x[i] * x[i]; }
    mean = s1 / m;
    var = s2 / m - mean * mean;
    check(fabs(mean - 3) < 0.04 && fabs(var - 4) < 0.12, "fill_normal(3, 2): mean %.4f var %.4f",
          mean, var);
    nn_rng_fill_uniform(&r, x, (size_t)m, -2.0f, 5.0f);
    int bad = 0;
    s1 = 0;
    for (int i = 0; i < m; i++) { bad += !(x[i] >= -2.0f && x[i] < 5.0f); s1 += x[i]; }
    check(bad == 0 && fabs(s1 / m - 1.5) < 0.04, "fill_uniform(-2, 5): %d outside, mean %.4f",
          bad, s1 / m);
    /* Gumbel(0, 1): mean Euler-Mascheroni 0.5772, variance pi^2/6 = 1.6449 */
    nn_rng_fill_gumbel(&r, x, (size_t)m);
    for (int i = 0; i < m; i++) {
        finite &= isfinite(x[i]);
        g1 += x[i];
        g2 += (double)x[i] * x[i];
    }
    mean = g1 / m;
    var = g2 / m - mean * mean;
    printf("  gumbel: mean %.4f var %.4f\n", mean, var);
    check(finite, "gumbel draws are finite");
    check(fabs(mean - 0.5772) < 0.03 && fabs(var - 1.6449) < 0.08,
          "gumbel mean %.4f ~ 0.5772, var %.4f ~ 1.6449", mean, var);
    free(x);
}

static void test_below(void)
{
    printf("nn_rng_below\n");
    nn_rng_t r;
    /* Lemire's method on the top 32 bits, computed in Python */
    static const uint32_t want10[8] = {7, 2, 8, 9, 9, 8, 0, 1};
    static const uint32_t want3e9[4] = {2101729446u, 2943293174u, 2618321815u, 313307367u};
    static const uint32_t want7[12] = {5, 0, 6, 0, 3, 0, 1, 2, 2, 6, 5, 3};
    nn_rng_seed(&r, 7);
    for (int i = 0; i < 8; i++) {
        uint32_t got = nn_rng_below(&r, 10);
        check(got == want10[i], "seed 7 below(10) draw %d: got %u want %u", i, got, want10[i]);
    }
    nn_rng_seed(&r, 7);
    for (int i = 0; i < 4; i++) {
        uint32_t got = nn_rng_below(&r, 3000000000u);
        check(got == want3e9[i], "seed 7 below(3e9) draw %d: got %u want %u", i, got,
              want3e9[i]);
    }
    nn_rng_seed(&r, 12345);
    for (int i = 0; i < 12; i++) {
        uint32_t got = nn_rng_below(&r, 7);
        check(got == want7[i], "seed 12345 below(7) draw %d: got %u want %u", i, got, want7[i]);
    }
    static const uint32_t ns[6] = {1, 2, 7, 1000, 3000000000u, UINT32_MAX};
    for (int k = 0; k < 6; k++) {
        int bad = 0;
        for (int i = 0; i < 100000; i++) bad += nn_rng_below(&r, ns[k]) >= ns[k];
        check(bad == 0, "below(%u) never >= n (%d of 100000)", ns[k], bad);
    }
    int count[7] = {0};
    for (int i = 0; i < 70000; i++) count[nn_rng_below(&r, 7)]++;
    int spread = 1;
    for (int i = 0; i < 7; i++) spread &= count[i] > 9400 && count[i] < 10600;
    check(spread, "below(7) hits each value ~10000 times (%d %d %d %d %d %d %d)", count[0],
          count[1], count[2], count[3], count[4], count[5], count[6]);
}

int main(void)
{
    test_streams();
    test_uniform_extremes();
    test_ranges();
    test_below();
    return test_summary("test_nn_rng");
}
