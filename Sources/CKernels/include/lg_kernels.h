// luagan's own vector kernels, in C so that each can be compiled for several instruction sets
// (AVX-512, AVX2 + FMA, and the x86-64 baseline) and the best one the CPU supports chosen at
// start-up from CPUID, the way the BLAS core is (Sources/Tensor/Machine.swift). The bodies
// are plain loops (kernels_body.h) that the compiler vectorizes for each target.
#ifndef LUAGAN_KERNELS_H
#define LUAGAN_KERNELS_H
#include <stddef.h>

/// Chooses the variant for an ISA level (1: baseline, 3: AVX2 + FMA, 4: AVX-512) and returns
/// the level chosen. Call once, before the kernels (Tensor does).
int lg_kernels_select(int level);
/// The level in use.
int lg_kernels_level(void);

// Winograd F(2x2, 3x3) transforms, float32. A block holds tile-rows r0..r0+nr-1 of an image
// batch (tile-row tr is image tr / th, tile row tr % th), tw tiles per row; arrays indexed
// [xi][channel][tile] with tb = nr * tw tiles per (xi, channel).
// Each call covers channels [c0, c1): callers split channels across threads.
void lg_wino_input(const float *x, int C, int H, int W, int r0, int nr, int c0, int c1, float *v);
void lg_wino_output(const float *m, int K, int H, int W, int r0, int nr, int k0, int k1, float *y);
void lg_wino_output_adjoint(const float *dy, int K, int H, int W, int r0, int nr, int k0, int k1, float *mb);

// Winograd F(4x4, 3x3), float32: the same layout with 4x4-output tiles (th = ceil(H/4),
// tw = ceil(W/4)) and 36 transformed planes.
void lg_wino4_input(const float *x, int C, int H, int W, int r0, int nr, int c0, int c1, float *v);
void lg_wino4_output(const float *m, int K, int H, int W, int r0, int nr, int k0, int k1, float *y);
void lg_wino4_output_adjoint(const float *dy, int K, int H, int W, int r0, int nr, int k0, int k1, float *mb);
// U = G g Gᵀ, u[xi][o][i] for the pairs o * inner + i in [p0, p1) (outer, inner = K, C, or with
// flip C, K: the input gradient's kernel), and its adjoint dw = Gᵀ dU G for pairs [p0, p1) of
// planes of `plane` pairs; float64 inside, the same bits as the scalar definitions. stream:
// write U with non-temporal stores (for a U larger than the caches, which would otherwise read
// every line from memory before overwriting it).
void lg_wino4_weights(const float *w, int K, int C, int flip, int stream, long p0, long p1, float *u);
void lg_wino4_weights_adjoint(const float *du, long plane, long p0, long p1, float *dw);

// y = softmax of rows r0..r1-1 of x (rows of n floats, contiguous; y may be x).
void lg_softmax_rows(const float *x, float *y, long n, long r0, long r1);

// A spin-wait hint for the worker pool's waiting loops (x86 PAUSE; nothing elsewhere).
static inline void lg_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// A small float32 GEMM without packing, row-major, C overwritten: C (M×N) = A (M×K) · B (K×N),
// for the small-channel Winograd products (panels in L1); each element sums its K products in
// order (multiply-adds where the ISA has FMA), whatever the thread count. K at most
// LG_SGEMM_MAX_K (its edge tiles are padded on the stack); larger K does nothing.
#define LG_SGEMM_MAX_K 256
void lg_sgemm_nn(const float *A, long lda, const float *B, long ldb, float *C, long ldc, int M, int N, int K);

// Any float32 GEMM, row-major: C (M×N) = alpha·op(A)·op(B) + beta·C (C not read when beta is
// 0), with luagan's packed kernel; op(A) is A (M×K, lda) or its transpose (A: K×M), op(B) B
// (K×N, ldb) or its transpose. Each element sums its products in k order (blocks of 256 in
// order), whatever the thread count. Returns 0 when done, 1 when the caller should use the
// BLAS instead (a CPU without AVX-512, an empty product, or no memory for the packing buffers).
int lg_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, long lda, const float *B, long ldb,
             float beta, float *C, long ldc);

// Direct 3x3 convolution, stride 1, padding 1, float32, for layers with few input or output
// channels (an RGB or single-channel layer), where GEMMs are thin:
//   y[n][k] (=/+=) Σ_c Σ_ij w[k][c][i][j] x[n][c][h+i-1][w+j-1]   (flip: w read as the
// input-gradient kernel, w[c][k][2-i][2-j], for the adjoint convolution)
// Output planes (n, k) with n·K + k in [p0, p1).
void lg_conv3x3_direct(const float *x, const float *w, int N, int C, int K, int H, int W, int flip, long p0, long p1, float *y);
// dw[k][c][i][j] = Σ_n Σ_hw dy[n][k][h][w] x[n][c][h+i-1][w+j-1], for k·C + c in [p0, p1).
void lg_conv3x3_direct_weight(const float *x, const float *dy, int N, int C, int K, int H, int W, long p0, long p1, float *dw);

#endif
