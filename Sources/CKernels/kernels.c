#include "lg_kernels.h"
#include <math.h>
#include <stdlib.h>

// The packed GEMM's blocks: PACK_KC of K (a B sliver, PACK_KC·GEMM_NR floats, stays in L1),
// PACK_MC rows of A (PACK_MC·PACK_KC floats, in L2) and PACK_NC columns of B per packed panel.
#define PACK_KC 256
#define PACK_MC 128
#define PACK_NC 512

// The small GEMM's register tile per ISA: GEMM_MR x GEMM_NR accumulators (16 of 32 zmm, 12 of
// 16 ymm, 8 of 16 xmm).

// Orders non-temporal (streaming) stores before the caller's hand-off to other threads.
#if defined(__x86_64__) || defined(__i386__)
#define LG_STORE_FENCE() __builtin_ia32_sfence()
#else
#define LG_STORE_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

#define SUFFIX avx512
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2"), noinline))
#define GEMM_MR 8
#define GEMM_NR 32
#define PACK_TRANSPOSE16
#define PACK_MR 8
#define PACK_VEC 16
#define PACK_NV 2
#define PACK_NR 32
#include "kernels_body.h"
#undef SUFFIX
#undef TARGET
#undef GEMM_MR
#undef GEMM_NR
#undef PACK_MR
#undef PACK_VEC
#undef PACK_NV
#undef PACK_NR
#undef PACK_TRANSPOSE16

#define SUFFIX avx2
#define TARGET __attribute__((target("avx2,fma,bmi2"), noinline))
#define GEMM_MR 6
#define GEMM_NR 16
#define PACK_MR 6
#define PACK_VEC 8
#define PACK_NV 2
#define PACK_NR 16
#include "kernels_body.h"
#undef SUFFIX
#undef TARGET
#undef GEMM_MR
#undef GEMM_NR
#undef PACK_MR
#undef PACK_VEC
#undef PACK_NV
#undef PACK_NR

#define SUFFIX base
#define TARGET __attribute__((noinline))
#define GEMM_MR 4
#define GEMM_NR 8
#define PACK_MR 4
#define PACK_VEC 4
#define PACK_NV 2
#define PACK_NR 8
#include "kernels_body.h"
#undef SUFFIX
#undef TARGET
#undef GEMM_MR
#undef GEMM_NR
#undef PACK_MR
#undef PACK_VEC
#undef PACK_NV
#undef PACK_NR

typedef struct {
  void (*wino_input)(const float *, int, int, int, int, int, int, int, float *);
  void (*wino_output)(const float *, int, int, int, int, int, int, int, float *);
  void (*wino_output_adjoint)(const float *, int, int, int, int, int, int, int, float *);
  void (*wino4_input)(const float *, int, int, int, int, int, int, int, float *);
  void (*wino4_output)(const float *, int, int, int, int, int, int, int, float *);
  void (*wino4_output_adjoint)(const float *, int, int, int, int, int, int, int, float *);
  void (*conv3x3_direct)(const float *, const float *, int, int, int, int, int, int, long, long, float *);
  void (*conv3x3_direct_weight)(const float *, const float *, int, int, int, int, int, long, long, float *);
  void (*wino4_weights)(const float *, int, int, int, int, long, long, float *);
  void (*wino4_weights_adjoint)(const float *, long, long, long, float *);
  void (*softmax_rows)(const float *, float *, long, long, long);
  void (*sgemm_nn)(const float *, long, const float *, long, float *, long, int, int, int);
  void (*sgemm_packed)(int, int, int, int, int, float, const float *, long, const float *, long, float, float *, long, float *);
} lg_kernel_table;

#define TABLE(s) { wino_input_##s, wino_output_##s, wino_output_adjoint_##s, wino4_input_##s, wino4_output_##s, \
                   wino4_output_adjoint_##s, conv3x3_direct_##s, conv3x3_direct_weight_##s, wino4_weights_##s, \
                   wino4_weights_adjoint_##s, softmax_rows_##s, sgemm_nn_##s, sgemm_packed_##s }
static const lg_kernel_table tables[3] = { TABLE(base), TABLE(avx2), TABLE(avx512) };
static const lg_kernel_table *current = &tables[0];
static int currentLevel = 1;

int lg_kernels_select(int level) {
  if (level >= 4) { current = &tables[2]; currentLevel = 4; }
  else if (level >= 3) { current = &tables[1]; currentLevel = 3; }
  else { current = &tables[0]; currentLevel = 1; }
  return currentLevel;
}
int lg_kernels_level(void) { return currentLevel; }

void lg_wino_input(const float *x, int C, int H, int W, int r0, int nr, int c0, int c1, float *v) {
  current->wino_input(x, C, H, W, r0, nr, c0, c1, v);
}
void lg_wino_output(const float *m, int K, int H, int W, int r0, int nr, int k0, int k1, float *y) {
  current->wino_output(m, K, H, W, r0, nr, k0, k1, y);
}
void lg_wino_output_adjoint(const float *dy, int K, int H, int W, int r0, int nr, int k0, int k1, float *mb) {
  current->wino_output_adjoint(dy, K, H, W, r0, nr, k0, k1, mb);
}
void lg_wino4_input(const float *x, int C, int H, int W, int r0, int nr, int c0, int c1, float *v) {
  current->wino4_input(x, C, H, W, r0, nr, c0, c1, v);
}
void lg_wino4_output(const float *m, int K, int H, int W, int r0, int nr, int k0, int k1, float *y) {
  current->wino4_output(m, K, H, W, r0, nr, k0, k1, y);
}
void lg_wino4_output_adjoint(const float *dy, int K, int H, int W, int r0, int nr, int k0, int k1, float *mb) {
  current->wino4_output_adjoint(dy, K, H, W, r0, nr, k0, k1, mb);
}
void lg_conv3x3_direct(const float *x, const float *w, int N, int C, int K, int H, int W, int flip, long p0, long p1, float *y) {
  current->conv3x3_direct(x, w, N, C, K, H, W, flip, p0, p1, y);
}
void lg_conv3x3_direct_weight(const float *x, const float *dy, int N, int C, int K, int H, int W, long p0, long p1, float *dw) {
  current->conv3x3_direct_weight(x, dy, N, C, K, H, W, p0, p1, dw);
}
void lg_wino4_weights(const float *w, int K, int C, int flip, int stream, long p0, long p1, float *u) {
  current->wino4_weights(w, K, C, flip, stream, p0, p1, u);
}
void lg_wino4_weights_adjoint(const float *du, long plane, long p0, long p1, float *dw) {
  current->wino4_weights_adjoint(du, plane, p0, p1, dw);
}
void lg_softmax_rows(const float *x, float *y, long n, long r0, long r1) {
  current->softmax_rows(x, y, n, r0, r1);
}
void lg_sgemm_nn(const float *A, long lda, const float *B, long ldb, float *C, long ldc, int M, int N, int K) {
  current->sgemm_nn(A, lda, B, ldb, C, ldc, M, N, K);
}

// Each thread's packing buffers, allocated on its first packed GEMM and kept (a few hundred KiB
// per thread; the threads are the caller and the worker pool's).
static _Thread_local float *packBuffer = 0;

int lg_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, long lda, const float *B, long ldb,
             float beta, float *C, long ldc) {
  if (currentLevel < 4 || M <= 0 || N <= 0 || K <= 0) return 1;
  if (!packBuffer) {
    void *p = 0;
    if (posix_memalign(&p, 64, sizeof(float) * PACK_KC * PACK_NC)) return 1;
    packBuffer = p;
  }
  current->sgemm_packed(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, packBuffer);
  return 0;
}
