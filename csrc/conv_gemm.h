// The packed GEMM micro-kernel shared by conv2d's implicit-GEMM paths (conv.cpp) and its Winograd
// path (conv_winograd.h).
//
// Micro-kernel: C[MR x NR] (+)= A[MR x kc] B[kc x NR] with NR one 64-byte vector (16 floats / 8
// doubles), A packed as kc x MR (broadcast scalars), B as kc x NR; GCC vector extensions, compiled
// for AVX-512 / AVX2 / baseline through TINYML_CLONES. The AVX-512 clone holds a vector in one zmm
// register; there the callers run two B tiles at once (micro2, micro_rows2: MR x 2 NR, 16
// accumulators), which halves the loads per FMA (each k: 2 B loads + 8 broadcasts for 16 FMAs
// instead of 1 + 8 for 8) and gives 16 independent FMA chains for Zen 4/5's two 512-bit FMA pipes.
// Every output element is the same FMA chain over k in the same order either way: same bits.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "common.h"
#include "simd_math.h"

namespace tinyml_conv {

using ssize = py::ssize_t;
constexpr int MR = 8;  // 8 independent FMA chains: enough to cover the FMA latency

template <typename T>
struct Vec {
  typedef T v __attribute__((vector_size(64)));
  static constexpr int NR = 64 / sizeof(T);
};

// Writes the accumulators c[0..m) x [0..nr) to C (leading dim ldc), or adds them to it.
template <typename T>
inline void store_tile(const typename Vec<T>::v* c, T* __restrict C, ssize ldc, int m, int nr, bool accumulate) {
  using V = typename Vec<T>::v;
  if (nr == Vec<T>::NR) {  // a full tile: whole-vector stores (the common case)
    for (int r = 0; r < m; ++r) {
      T* row = C + r * ldc;
      V v = c[r];
      if (accumulate) {
        V old;
        std::memcpy(&old, row, sizeof old);
        v += old;
      }
      std::memcpy(row, &v, sizeof v);
    }
    return;
  }
  for (int r = 0; r < m; ++r) {
    T* row = C + r * ldc;
    if (accumulate)
      for (int j = 0; j < nr; ++j) row[j] += c[r][j];
    else
      for (int j = 0; j < nr; ++j) row[j] = c[r][j];
  }
}

// C (m x nr valid, leading dim ldc) = or += A panel (kc x MR) @ B (kc rows of NR, row k at Bp + k * ldb).
// B's rows may be rows of a wider row-major matrix (ldb > NR): the forward and the input gradient
// read im2col rows and dy rows in place, without packing.
template <typename T>
TINYML_CLONES void micro(ssize kc, const T* __restrict Ap, const T* __restrict Bp, ssize ldb, T* __restrict C,
                         ssize ldc, int m, int nr, bool accumulate) {
  using V = typename Vec<T>::v;
  V c[MR] = {};
  for (ssize k = 0; k < kc; ++k) {
    V b;
    std::memcpy(&b, Bp + k * ldb, sizeof b);
    const T* a = Ap + k * MR;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) c[r] += a[r] * b;
  }
  store_tile<T>(c, C, ldc, m, nr, accumulate);
}

// Whether the callers use the two-tile kernels: only where the AVX-512 clone runs (16 accumulators
// plus 2 B vectors are 18 zmm of 32; on AVX2 each 64-byte vector takes two of the 16 ymm registers
// and the two-tile kernel would spill). set_wide_kernels overrides it (tests compare both paths).
inline std::atomic<int>& wide_kernels_override() {
  static std::atomic<int> v{-1};  // -1: by CPU, 0 / 1: forced
  return v;
}

inline bool wide_kernels() {
  const int forced = wide_kernels_override().load(std::memory_order_relaxed);
  if (forced >= 0) return forced != 0;
#if defined(__x86_64__) && defined(__linux__) && !defined(TINYML_NO_CLONES)
  static const bool v4 = __builtin_cpu_supports("x86-64-v4");  // the clone target_clones picks
  return v4;
#else
  return false;
#endif
}

// C (m x (NR + nr2) valid) = or += A panel @ [B | B + NR]: two B tiles side by side (columns NR..NR+nr2
// of the second, 0 < nr2 <= NR), one pass over A. Same sums as two micro calls.
template <typename T>
TINYML_CLONES void micro2(ssize kc, const T* __restrict Ap, const T* __restrict Bp, ssize ldb, T* __restrict C,
                          ssize ldc, int m, int nr2, bool accumulate) {
  using V = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  V c0[MR] = {}, c1[MR] = {};
  for (ssize k = 0; k < kc; ++k) {
    V b0, b1;
    std::memcpy(&b0, Bp + k * ldb, sizeof b0);
    std::memcpy(&b1, Bp + k * ldb + NR, sizeof b1);
    const T* a = Ap + k * MR;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      c0[r] += a[r] * b0;
      c1[r] += a[r] * b1;
    }
  }
  store_tile<T>(c0, C, ldc, m, NR, accumulate);
  store_tile<T>(c1, C + NR, ldc, m, nr2, accumulate);
}

// The same product with A read in place: row r (r < m <= MR) is nseg segments of seglen values,
// segment s at arows[r] + s * astep; B is the packed (nseg * seglen) x NR panel. The broadcasts take
// any address, so the weight gradient's A (im2col rows as runs of a zero-padded input slab, one
// segment per output row) needs neither a transpose nor an im2col copy.
template <typename T>
TINYML_CLONES void micro_rows(const T* const* arows, int m, ssize nseg, ssize seglen, ssize astep,
                              const T* __restrict Bp, T* __restrict C, ssize ldc, int nr, bool accumulate) {
  using V = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  const T* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = arows[std::min(r, m - 1)];  // rows past m repeat the last one
  V c[MR] = {};
  for (ssize s = 0; s < nseg; ++s) {
    for (ssize k = 0; k < seglen; ++k) {
      V b;
      std::memcpy(&b, Bp + k * NR, sizeof b);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) c[r] += a[r][k] * b;
    }
    if (s + 1 == nseg) break;
    Bp += seglen * NR;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) a[r] += astep;
  }
  store_tile<T>(c, C, ldc, m, nr, accumulate);
}

// micro_rows for two packed B panels at once (Bp1: the second, nr2 valid columns of it).
template <typename T>
TINYML_CLONES void micro_rows2(const T* const* arows, int m, ssize nseg, ssize seglen, ssize astep,
                               const T* __restrict Bp0, const T* __restrict Bp1, T* __restrict C, ssize ldc, int nr2,
                               bool accumulate) {
  using V = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  const T* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = arows[std::min(r, m - 1)];
  V c0[MR] = {}, c1[MR] = {};
  for (ssize s = 0; s < nseg; ++s) {
    for (ssize k = 0; k < seglen; ++k) {
      V b0, b1;
      std::memcpy(&b0, Bp0 + k * NR, sizeof b0);
      std::memcpy(&b1, Bp1 + k * NR, sizeof b1);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const T ar = a[r][k];
        c0[r] += ar * b0;
        c1[r] += ar * b1;
      }
    }
    if (s + 1 == nseg) break;
    Bp0 += seglen * NR;
    Bp1 += seglen * NR;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) a[r] += astep;
  }
  store_tile<T>(c0, C, ldc, m, NR, accumulate);
  store_tile<T>(c1, C + NR, ldc, m, nr2, accumulate);
}

// Rows of an (rows x cols) row-major matrix M as MR-row panels: P[t][k][r] = M[t*MR + r][k]
// (transposed = false), or of M^T: P[t][k][r] = M[k][t*MR + r] (transposed = true). Zero-padded.
template <typename T>
std::vector<T> pack_a(const T* M, ssize rows, ssize cols, ssize ld, bool transposed) {
  // (rows, cols) are those of the operand A; with transposed, A = M^T and M is (cols x rows).
  const ssize tiles = (rows + MR - 1) / MR;
  std::vector<T> P(tiles * cols * MR, T(0));
  for (ssize t = 0; t < tiles; ++t)
    for (ssize k = 0; k < cols; ++k)
      for (int r = 0; r < MR; ++r) {
        const ssize i = t * MR + r;
        if (i < rows) P[(t * cols + k) * MR + r] = transposed ? M[k * ld + i] : M[i * ld + k];
      }
  return P;
}

}  // namespace tinyml_conv
