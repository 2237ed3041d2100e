// The AVX-512 (zmm, 16 floats / 8 doubles wide) micro-kernel of csrc/rnn_gemm.h's packed GEMM, for CPUs
// with x86-64-v4. One B panel row (kNR<T> values: 16 floats or 8 doubles) is exactly one zmm register, so
// a register tile covers two panels side by side (any two (group, panel) jobs of one target, which may sit
// in different gates; a lone last job has a tile of its own) and MR <= 8 rows: C[r, panel a] += sum_k
// A[r, k] Ba[k, :], 2 MR zmm accumulators, two B loads and MR broadcasts per k. The ymm kernel (rnn_gemm.h
// micro, 2 ymm per panel row) does half the work per instruction; on Zen 5 (two 512-bit FMA pipes) the zmm
// kernel has twice its FMA throughput.
//
// Each C element is summed exactly as the ymm kernel sums it: from 0, one fused multiply-add per k in
// ascending k, then added to (or stored into) C once per k block. So both kernels (and any row tiling)
// give the same bits, and which one runs is a speed choice only (zmm_enabled: the CPU's support, or
// set_zmm for tests; the v3 and default clones never reach this kernel on a CPU without AVX-512).
#pragma once
#include "simd_math.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(_WIN32)
#define TINYML_RNN_ZMM 1
#define TINYML_RNN_ZMM_TARGET __attribute__((target("arch=x86-64-v4")))
#else
#define TINYML_RNN_ZMM 0
#define TINYML_RNN_ZMM_TARGET
#endif

namespace rnn_detail {

// Rows of a zmm register tile (A read in place or packed): 8 rows x 2 zmm = 16 accumulators (FMA latency 4 x
// 2 pipes needs at least 8 in flight), 18 of the 32 zmm registers; a lone panel (an odd count) 8 x 1 zmm.
constexpr int kMRz = 8;

// Whether the zmm kernel runs: -1 undecided (then: the CPU supports x86-64-v4), 0 no, 1 yes.
inline std::atomic<int>& zmm_state() {
  static std::atomic<int> s{-1};
  return s;
}

inline bool cpu_has_zmm() {
#if TINYML_RNN_ZMM
  __builtin_cpu_init();  // x86-64-v4's features one by one (GCC 11 knows no "x86-64-v4" here)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi2");
#else
  return false;
#endif
}

inline bool zmm_enabled() {
  int s = zmm_state().load(std::memory_order_relaxed);
  if (s < 0) {
    s = cpu_has_zmm() ? 1 : 0;
    zmm_state().store(s, std::memory_order_relaxed);
  }
  return s == 1;
}

// Turns the zmm kernel on (when the CPU has it) or off; returns whether it is now on.
inline bool set_zmm(bool on) {
  zmm_state().store(on && cpu_has_zmm() ? 1 : 0, std::memory_order_relaxed);
  return zmm_enabled();
}

#if TINYML_RNN_ZMM
template <typename T> struct zvec;
template <> struct zvec<float> {
  typedef float type __attribute__((vector_size(64), aligned(4), may_alias));
};
template <> struct zvec<double> {
  typedef double type __attribute__((vector_size(64), aligned(8), may_alias));
};

// Stores (or adds) one accumulator row into the n <= W columns of C that exist. (V is not a template
// parameter: a template argument loses the typedef's aligned(sizeof(T)), and GCC then emits aligned stores.)
template <typename T>
TINYML_RNN_ZMM_TARGET inline void put_row(T* __restrict c, const typename zvec<T>::type& x, int64_t n,
                                          bool accumulate) {
  using V = typename zvec<T>::type;
  constexpr int W = 64 / sizeof(T);
  if (n == W) {
    V* cr = (V*)c;
    if (accumulate) *cr += x;
    else *cr = x;
  } else {  // a partial last panel
    T tmp[W];
    *(V*)tmp = x;
    for (int64_t j = 0; j < n; ++j) c[j] = (accumulate ? c[j] : T(0)) + tmp[j];
  }
}

// C0[MR x n0] (+)= A[MR x kc] B0[kc x W] and (NP = 2) C1[MR x n1] (+)= A B1 (B0, B1: packed panels, one zmm
// per k). A packed (kDirect false: a[k MR + r], csrc/rnn_gemm.h's layout) or in place (a[r lda + k]).
template <typename T, int MR, int NP, bool kDirect>
TINYML_RNN_ZMM_TARGET void micro_zmm(int64_t kc, const T* __restrict ap, int64_t lda, const T* __restrict b0p,
                                     const T* __restrict b1p, T* __restrict c0, T* __restrict c1, int64_t ldc,
                                     int64_t n0, int64_t n1, bool accumulate) {
  using V = typename zvec<T>::type;
  constexpr int W = 64 / sizeof(T);
  V x[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) x[r][q] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    const V b0 = *(const V*)(b0p + k * W), b1 = NP > 1 ? *(const V*)(b1p + k * W) : b0;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const T s = kDirect ? ap[r * lda + k] : ap[k * MR + r];
      x[r][0] += s * b0;
      if (NP > 1) x[r][NP - 1] += s * b1;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    put_row<T>(c0 + r * ldc, x[r][0], n0, accumulate);
    if (NP > 1) put_row<T>(c1 + r * ldc, x[r][NP - 1], n1, accumulate);
  }
}

// micro_zmm<T, mr, NP, kDirect> for a runtime mr in 1..kMRz; two panels (NP 2) when b1 is set, else one.
template <typename T, bool kDirect, int NP>
inline void micro_zmm_np(int64_t mr, int64_t kc, const T* ap, int64_t lda, const T* b0, const T* b1, T* c0, T* c1,
                         int64_t ldc, int64_t n0, int64_t n1, bool acc) {
  switch (mr) {
    case 8: micro_zmm<T, 8, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
    case 7: micro_zmm<T, 7, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
    case 6: micro_zmm<T, 6, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
    case 5: micro_zmm<T, 5, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
    case 4: micro_zmm<T, 4, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
    case 3: micro_zmm<T, 3, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
    case 2: micro_zmm<T, 2, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
    default: micro_zmm<T, 1, NP, kDirect>(kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc); break;
  }
}
template <typename T, bool kDirect>
inline void micro_zmm_rows(int64_t mr, int64_t kc, const T* ap, int64_t lda, const T* b0, const T* b1, T* c0,
                           T* c1, int64_t ldc, int64_t n0, int64_t n1, bool acc) {
  if (b1) micro_zmm_np<T, kDirect, 2>(mr, kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc);
  else micro_zmm_np<T, kDirect, 1>(mr, kc, ap, lda, b0, b1, c0, c1, ldc, n0, n1, acc);
}
#endif

}  // namespace rnn_detail
