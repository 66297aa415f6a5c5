/* Linear layers for inference with few rows (sampling: one row per image and step).
 *
 * With 1..16 rows a product is bound by reading the weights, not by arithmetic, and
 * OpenBLAS's sgemm repacks the weight operand on every call (~21 GFLOP/s at 4 rows
 * here). So the weights are packed once, for every product the caller makes after, into
 * panels of NN_PANEL output columns: panel p holds, for c = 0..C-1 in turn, the NN_PANEL
 * weights w[p*NN_PANEL + j, c] (j = 0..NN_PANEL-1; the last panel zero-padded). A product
 * then reads every weight once, in address order, for all rows together: a tile of rows
 * x columns of the panel (4 x 64, 8 x 32 with AVX-512) lives in registers while the panel
 * streams past, so each weight loaded serves every row of the tile.
 *
 * Every output is b[o] + the sum over c, in order, of in[n, c] * w[o, c], one fused
 * multiply-add per term in a single chain: the AVX-512 and AVX2 paths give the same bits
 * whatever the number of rows or threads, so a row's result does not depend on the rows
 * sampled beside it. The scalar fallback (x86-64 without AVX2 and FMA, other CPUs)
 * rounds each product before adding it, so its last bits differ. */
#include "nn/nn.h"

#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NN_X86 1
#endif

enum { PANEL = NN_PANEL, TILE_ROWS = 4, ROW_BLOCK = 64 };

/* Products of fewer multiply-adds than this run on one thread: 2^18 of them take one
 * core 10-40 us (1 to 4 rows, weights streamed from memory), a few times what waking the
 * other threads costs; smaller ones would gain little or nothing from them. */
#define PARALLEL_MIN_MACS ((size_t)1 << 18)

size_t nn_linear_packed_size(int C, int OC)
{
    return (size_t)((OC + PANEL - 1) / PANEL) * PANEL * (size_t)C;
}

void nn_linear_pack(float *packed, const float *w, int C, int OC)
{
    const int panels = (OC + PANEL - 1) / PANEL;
#pragma omp parallel for schedule(static) if ((size_t)C * OC >= NN_PARALLEL_MIN)
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * PANEL * C;
        for (int j = 0; j < PANEL; j++) {
            const int o = p * PANEL + j;
            if (o < OC)
                for (int c = 0; c < C; c++) dst[(size_t)c * PANEL + j] = w[(size_t)o * C + c];
            else
                for (int c = 0; c < C; c++) dst[(size_t)c * PANEL + j] = 0.0f;
        }
    }
}

nn_simd_t nn_simd_best(void)
{
#ifdef NN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return NN_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return NN_SIMD_AVX2;
#endif
    return NN_SIMD_SCALAR;
}

const char *nn_simd_name(nn_simd_t s)
{
    return s == NN_SIMD_AVX512 ? "avx512" : s == NN_SIMD_AVX2 ? "avx2" : "scalar";
}

/* Each path computes rows [0, N) of one panel: out [N, ldo] at the panel's first column,
 * in [N, C], cols (1..PANEL) of the panel's columns are real, b at the panel's first
 * column or NULL. */

static void panel_scalar(float *out, int ldo, const float *in, const float *panel,
                         const float *b, int N, int C, int cols)
{
    for (int n = 0; n < N; n++) {
        float acc[PANEL] = {0};
        const float *x = in + (size_t)n * C;
        for (int c = 0; c < C; c++)
            for (int j = 0; j < PANEL; j++) acc[j] += x[c] * panel[(size_t)c * PANEL + j];
        for (int j = 0; j < cols; j++) out[(size_t)n * ldo + j] = acc[j] + (b ? b[j] : 0.0f);
    }
}

#ifdef NN_X86
/* out[0, 16) = v + b[0, 16), of which the first `valid` columns are real */
__attribute__((target("avx512f"), always_inline)) static inline void
store16_avx512(float *out, __m512 v, const float *b, int valid)
{
    const __mmask16 m = valid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << valid) - 1);
    if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b));
    _mm512_mask_storeu_ps(out, m, v);
}

/* AVX-512 tiles are mr rows x (16 * nv) columns of zmm accumulators, mr x nv of them:
 * 8 x 32 for blocks of 8 rows, 4 x 64 (or fewer rows) for the rest. More rows a tile
 * means more multiply-adds per weight loaded (8 rows ran 1.2x faster than two tiles of 4
 * at 16 rows, 1.4x at 132); with fewer than 8 rows, 64 columns keep 4 independent chains
 * a row in flight. mr and nv are constants at every call, so the loops over them unroll
 * and the tile stays in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
tile_avx512(float *out, int ldo, const float *in, int ldi, const float *panel,
            const float *b, int C, int cols, const int mr, const int nv)
{
    __m512 acc[8][4];
    for (int i = 0; i < mr; i++)
        for (int k = 0; k < nv; k++) acc[i][k] = _mm512_setzero_ps();
    for (int c = 0; c < C; c++) {
        const float *wc = panel + (size_t)c * PANEL;
        __m512 w[4];
        for (int k = 0; k < nv; k++) w[k] = _mm512_loadu_ps(wc + 16 * k);
        for (int i = 0; i < mr; i++) {
            const __m512 x = _mm512_set1_ps(in[(size_t)i * ldi + c]);
            for (int k = 0; k < nv; k++) acc[i][k] = _mm512_fmadd_ps(x, w[k], acc[i][k]);
        }
    }
    for (int k = 0; k < nv && 16 * k < cols; k++)
        for (int i = 0; i < mr; i++)
            store16_avx512(out + (size_t)i * ldo + 16 * k, acc[i][k], b ? b + 16 * k : NULL,
                           cols - 16 * k);
}

/* One function per tile shape, each with the whole register file to itself. */
#define TILE_AVX512(mr, nv)                                                                 \
    __attribute__((target("avx512f"), noinline)) static void tile_avx512_##mr##x##nv(      \
        float *out, int ldo, const float *in, const float *panel, const float *b, int C,    \
        int cols)                                                                          \
    {                                                                                      \
        tile_avx512(out, ldo, in, C, panel, b, C, cols, mr, nv);                           \
    }
TILE_AVX512(8, 2)
TILE_AVX512(4, 4)
TILE_AVX512(3, 4)
TILE_AVX512(2, 4)
TILE_AVX512(1, 4)

static void panel_avx512(float *out, int ldo, const float *in, const float *panel,
                         const float *b, int N, int C, int cols)
{
    int n = 0;
    for (; n + 8 <= N; n += 8)
        for (int h = 0; h < PANEL && h < cols; h += 32)
            tile_avx512_8x2(out + (size_t)n * ldo + h, ldo, in + (size_t)n * C, panel + h,
                            b ? b + h : NULL, C, cols - h);
    for (; n + TILE_ROWS <= N; n += TILE_ROWS)
        tile_avx512_4x4(out + (size_t)n * ldo, ldo, in + (size_t)n * C, panel, b, C, cols);
    float *o = out + (size_t)n * ldo;
    const float *x = in + (size_t)n * C;
    switch (N - n) {
    case 3: tile_avx512_3x4(o, ldo, x, panel, b, C, cols); break;
    case 2: tile_avx512_2x4(o, ldo, x, panel, b, C, cols); break;
    case 1: tile_avx512_1x4(o, ldo, x, panel, b, C, cols); break;
    default: break;
    }
}

/* AVX2 has 16 registers: tiles of 8 ymm accumulators, the weights read as memory
 * operands, 2 rows x 32 columns (and 1 x 64 for an odd last row). Taller tiles need
 * narrower column groups, which read each weight line in a separate strided pass:
 * 4 x 16 ran at half the speed of 2 x 32 at 4 rows. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tile_avx2(float *out, int ldo, const float *in, const float *panel, const float *b, int C,
          int cols, const int mr, const int nv)
{
    __m256 acc[2][8];
    for (int i = 0; i < mr; i++)
        for (int k = 0; k < nv; k++) acc[i][k] = _mm256_setzero_ps();
    for (int c = 0; c < C; c++) {
        const float *wc = panel + (size_t)c * PANEL;
        for (int i = 0; i < mr; i++) {
            const __m256 x = _mm256_set1_ps(in[(size_t)i * C + c]);
            for (int k = 0; k < nv; k++)
                acc[i][k] = _mm256_fmadd_ps(x, _mm256_loadu_ps(wc + 8 * k), acc[i][k]);
        }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int k = 0; k < nv && 8 * k < cols; k++) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8 * k), lane);
        const __m256 bias = b ? _mm256_maskload_ps(b + 8 * k, m) : _mm256_setzero_ps();
        for (int i = 0; i < mr; i++)
            _mm256_maskstore_ps(out + (size_t)i * ldo + 8 * k, m, _mm256_add_ps(acc[i][k], bias));
    }
}

/* Rows [0, mr) of a panel in column groups of 8 * nv. */
#define PANEL_AVX2(mr, nv)                                                                  \
    __attribute__((target("avx2,fma"), noinline)) static void panel_avx2_##mr##x##nv(      \
        float *out, int ldo, const float *in, const float *panel, const float *b, int C,    \
        int cols)                                                                          \
    {                                                                                      \
        for (int j = 0; j < cols; j += 8 * nv)                                             \
            tile_avx2(out + j, ldo, in, panel + j, b ? b + j : NULL, C, cols - j, mr, nv);  \
    }
PANEL_AVX2(2, 4)
PANEL_AVX2(1, 8)

static void panel_avx2(float *out, int ldo, const float *in, const float *panel,
                       const float *b, int N, int C, int cols)
{
    int n = 0;
    for (; n + 2 <= N; n += 2)
        panel_avx2_2x4(out + (size_t)n * ldo, ldo, in + (size_t)n * C, panel, b, C, cols);
    if (n < N) panel_avx2_1x8(out + (size_t)n * ldo, ldo, in + (size_t)n * C, panel, b, C, cols);
}
#endif

void nn_linear_packed_forward_simd(float *out, const float *in, const float *packed,
                                   const float *b, int N, int C, int OC, nn_simd_t simd)
{
    const nn_simd_t best = nn_simd_best();
    if (simd > best) simd = best;
    const int panels = (OC + PANEL - 1) / PANEL, blocks = (N + ROW_BLOCK - 1) / ROW_BLOCK;
    /* Work items are (block of up to 64 rows, panel): with few rows, one item per panel,
     * so the weights are read once in all. */
#pragma omp parallel for collapse(2) schedule(static) \
    if ((size_t)N * C * OC >= PARALLEL_MIN_MACS)
    for (int rb = 0; rb < blocks; rb++)
        for (int p = 0; p < panels; p++) {
            const int n0 = rb * ROW_BLOCK, rows = N - n0 < ROW_BLOCK ? N - n0 : ROW_BLOCK;
            const int o0 = p * PANEL, cols = OC - o0 < PANEL ? OC - o0 : PANEL;
            float *o = out + (size_t)n0 * OC + o0;
            const float *x = in + (size_t)n0 * C, *w = packed + (size_t)p * PANEL * C;
            const float *bp = b ? b + o0 : NULL;
#ifdef NN_X86
            if (simd == NN_SIMD_AVX512) {
                panel_avx512(o, OC, x, w, bp, rows, C, cols);
                continue;
            }
            if (simd == NN_SIMD_AVX2) {
                panel_avx2(o, OC, x, w, bp, rows, C, cols);
                continue;
            }
#endif
            panel_scalar(o, OC, x, w, bp, rows, C, cols);
        }
}

void nn_linear_packed_forward(float *out, const float *in, const float *packed,
                              const float *b, int N, int C, int OC)
{
    nn_linear_packed_forward_simd(out, in, packed, b, N, C, OC, NN_SIMD_AVX512);
}
