// The small products of the attention tiles (csrc/attention_tiles.h): one register-blocked kernel
// C (+)= A B that can skip the part of C, or of the sum over k, that a causal mask throws away, a
// tile transpose, and the scan for non-finite values that the causal NaN rules need.
//
// gemm: C[M x N] (+)= A[M x K] B[K x N], A[m][k] = A[m*sam + k*sak] (any strides, so P^T and dS^T
// are read in place), B and C row-major (leading dims ldb, ldc). Rows go in blocks of 4; each block
// keeps 4 rows x 2 vectors of C in registers across its whole k loop (8 FMAs per 2 vector loads
// and 4 broadcasts, which runs at the FMA rate: ~110 GFLOP/s per core on an AVX-512 Zen 4 for
// 64 x 64 x 64). `need` says which part a causal tile needs, for the block of rows m0 .. m0+3:
//   kAll        everything
//   kColsUpto   row m needs columns n <= m + off   (S = Q K^T, dP = dO V^T: key n, query m)
//   kColsFrom   row m needs columns n >= m + off   (S^T = K Q^T: key m, query n)
//   kKUpto      row m sums k <= m + off            (out += P V, dQ += dS K: query m, key k)
//   kKFrom      row m sums k >= m + off            (dV += P^T dO, dK += dS^T Q: key m, query k)
// A block computes the union of its rows' needs (columns rounded out to whole vectors), so entries
// outside a row's need may be computed too: callers overwrite those of C (kCols*) and keep those
// of A at 0 (kK*), so the extra terms are the masked ones the full product would add (0 * B).
#pragma once
#include "simd_math.h"  // first: sets fp-contract for the including file
#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace tinyml_attention {

template <typename T> struct vec;
template <> struct vec<float> {
  typedef float type __attribute__((vector_size(64), aligned(4), may_alias));
  static constexpr int W = 16;
};
template <> struct vec<double> {
  typedef double type __attribute__((vector_size(64), aligned(8), may_alias));
  static constexpr int W = 8;
};

enum Need : int { kAll, kColsUpto, kColsFrom, kKUpto, kKFrom };

// The columns [nb, ne) and sum range [kb, ke) the rows m0 .. m0+rows-1 need (see above).
template <int W>
inline void block_need(int need, int off, int m0, int rows, int N, int K, int& nb, int& ne, int& kb, int& ke) {
  nb = 0, ne = N, kb = 0, ke = K;
  if (need == kColsUpto) ne = std::max(0, std::min(N, (m0 + rows + off + W - 1) / W * W));
  if (need == kColsFrom) nb = std::min(N, std::max(0, m0 + off) / W * W);
  if (need == kKUpto) ke = std::max(0, std::min(K, m0 + rows + off));
  if (need == kKFrom) kb = std::min(K, std::max(0, m0 + off));
}

template <typename T>
TINYML_CLONES void gemm(int M, int N, int K, const T* __restrict A, int64_t sam, int64_t sak, const T* __restrict B,
                        int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate, int need = kAll, int off = 0) {
  using V = typename vec<T>::type;
  constexpr int W = vec<T>::W;
  int m0 = 0;
  for (; m0 + 4 <= M; m0 += 4) {
    int nb, ne, kb, ke;
    block_need<W>(need, off, m0, 4, N, K, nb, ne, kb, ke);
    T* c0 = C + (m0 + 0) * ldc;
    T* c1 = C + (m0 + 1) * ldc;
    T* c2 = C + (m0 + 2) * ldc;
    T* c3 = C + (m0 + 3) * ldc;
    const T* a0 = A + (m0 + 0) * sam;
    const T* a1 = A + (m0 + 1) * sam;
    const T* a2 = A + (m0 + 2) * sam;
    const T* a3 = A + (m0 + 3) * sam;
    int n0 = nb;
    for (; n0 + 2 * W <= ne; n0 += 2 * W) {
      V x00 = {}, x01 = {}, x10 = {}, x11 = {}, x20 = {}, x21 = {}, x30 = {}, x31 = {};
      if (accumulate) {
        x00 = *(V*)(c0 + n0), x01 = *(V*)(c0 + n0 + W), x10 = *(V*)(c1 + n0), x11 = *(V*)(c1 + n0 + W);
        x20 = *(V*)(c2 + n0), x21 = *(V*)(c2 + n0 + W), x30 = *(V*)(c3 + n0), x31 = *(V*)(c3 + n0 + W);
      }
      for (int k = kb; k < ke; ++k) {
        const T* b = B + k * ldb + n0;
        V b0 = *(const V*)b, b1 = *(const V*)(b + W);
        T s0 = a0[k * sak], s1 = a1[k * sak], s2 = a2[k * sak], s3 = a3[k * sak];
        x00 += s0 * b0; x01 += s0 * b1;
        x10 += s1 * b0; x11 += s1 * b1;
        x20 += s2 * b0; x21 += s2 * b1;
        x30 += s3 * b0; x31 += s3 * b1;
      }
      *(V*)(c0 + n0) = x00; *(V*)(c0 + n0 + W) = x01; *(V*)(c1 + n0) = x10; *(V*)(c1 + n0 + W) = x11;
      *(V*)(c2 + n0) = x20; *(V*)(c2 + n0 + W) = x21; *(V*)(c3 + n0) = x30; *(V*)(c3 + n0 + W) = x31;
    }
    for (; n0 + W <= ne; n0 += W) {
      V x0 = {}, x1 = {}, x2 = {}, x3 = {};
      if (accumulate) x0 = *(V*)(c0 + n0), x1 = *(V*)(c1 + n0), x2 = *(V*)(c2 + n0), x3 = *(V*)(c3 + n0);
      for (int k = kb; k < ke; ++k) {
        V b0 = *(const V*)(B + k * ldb + n0);
        x0 += a0[k * sak] * b0; x1 += a1[k * sak] * b0; x2 += a2[k * sak] * b0; x3 += a3[k * sak] * b0;
      }
      *(V*)(c0 + n0) = x0; *(V*)(c1 + n0) = x1; *(V*)(c2 + n0) = x2; *(V*)(c3 + n0) = x3;
    }
    if (n0 < ne) {
      if (!accumulate)
        for (T* c : {c0, c1, c2, c3}) std::fill(c + n0, c + ne, T(0));
      for (int k = kb; k < ke; ++k) {
        const T* b = B + k * ldb;
        T s0 = a0[k * sak], s1 = a1[k * sak], s2 = a2[k * sak], s3 = a3[k * sak];
        for (int n = n0; n < ne; ++n) {
          c0[n] += s0 * b[n]; c1[n] += s1 * b[n]; c2[n] += s2 * b[n]; c3[n] += s3 * b[n];
        }
      }
    }
  }
  for (; m0 < M; ++m0) {
    int nb, ne, kb, ke;
    block_need<W>(need, off, m0, 1, N, K, nb, ne, kb, ke);
    T* c = C + m0 * ldc;
    if (!accumulate) std::fill(c + nb, c + ne, T(0));
    for (int k = kb; k < ke; ++k) {
      T s = A[m0 * sam + k * sak];
      const T* b = B + k * ldb;
#pragma omp simd
      for (int n = nb; n < ne; ++n) c[n] += s * b[n];
    }
  }
}

// The W x W block of rows x[0..W) transposed in registers: log2(W) rounds (b = W/2, ..., 1), each
// swapping the off-diagonal b x b blocks of every 2b x 2b block with one two-source shuffle per row.
template <typename T, int b>
inline void transpose_block(typename vec<T>::type* x) {
  if constexpr (b >= 1) {
    using V = typename vec<T>::type;
    constexpr int W = vec<T>::W;
    using I = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;
    typedef I IV __attribute__((vector_size(64)));
    IV lo, hi;  // lanes of the new rows r and r + b: 0..W-1 pick from row r, W..2W-1 from row r + b
#pragma GCC unroll 16
    for (int l = 0; l < W; ++l) {
      lo[l] = (l & b) ? W + l - b : l;
      hi[l] = (l & b) ? W + l : l + b;
    }
#pragma GCC unroll 16
    for (int r = 0; r < W; ++r)
      if (!(r & b)) {
        V u = x[r], w = x[r + b];
#if defined(__clang__)  // no __builtin_shuffle with a mask vector: lane by lane (correct, slower)
        for (int l = 0; l < W; ++l) {
          x[r][l] = lo[l] < W ? u[lo[l]] : w[lo[l] - W];
          x[r + b][l] = hi[l] < W ? u[hi[l]] : w[hi[l] - W];
        }
#else
        x[r] = __builtin_shuffle(u, w, lo);
        x[r + b] = __builtin_shuffle(u, w, hi);
#endif
      }
    transpose_block<T, b / 2>(x);
  }
}

// dst[c * ldd + j] = src[j * lds + c] * mul for j < n, c < d (a tile of rows turned into columns),
// and zeros in columns n .. npad-1, so whole vectors can be read there. Whole W x W blocks go
// through registers; the edges element by element.
template <typename T>
TINYML_CLONES void transpose_tile(const T* __restrict src, int64_t lds, int n, int d, T* __restrict dst, int ldd,
                                  T mul, int npad) {
  using V = typename vec<T>::type;
  constexpr int W = vec<T>::W;
  int j0 = 0;
  for (; j0 + W <= n; j0 += W) {
    int c0 = 0;
    for (; c0 + W <= d; c0 += W) {
      V x[W];
#pragma GCC unroll 16
      for (int r = 0; r < W; ++r) x[r] = *(const V*)(src + (j0 + r) * lds + c0);
      transpose_block<T, W / 2>(x);
#pragma GCC unroll 16
      for (int r = 0; r < W; ++r) *(V*)(dst + (c0 + r) * ldd + j0) = x[r] * mul;
    }
    for (int c = c0; c < d; ++c)
      for (int j = j0; j < j0 + W; ++j) dst[c * ldd + j] = src[j * lds + c] * mul;
  }
  for (int c = 0; c < d; ++c) {
    for (int j = j0; j < n; ++j) dst[c * ldd + j] = src[j * lds + c] * mul;
    for (int j = n; j < npad; ++j) dst[c * ldd + j] = T(0);
  }
}

// Whether rows [r0, r1) of a (rows, w) matrix with row stride ld hold an inf or NaN: x * 0 is NaN
// exactly for those, and a NaN sum stays NaN, so one vectorized pass answers.
template <typename T>
TINYML_CLONES bool any_nonfinite(const T* x, int64_t ld, int r0, int r1, int w) {
  using V = typename vec<T>::type;
  constexpr int W = vec<T>::W;
  V s0 = {}, s1 = {};
  T s = 0;
  for (int r = r0; r < r1; ++r) {
    const T* row = x + r * ld;
    int c = 0;
    for (; c + 2 * W <= w; c += 2 * W) {
      s0 += *(const V*)(row + c) * T(0);
      s1 += *(const V*)(row + c + W) * T(0);
    }
    for (; c + W <= w; c += W) s0 += *(const V*)(row + c) * T(0);
    for (; c < w; ++c) s += row[c] * T(0);
  }
  s0 += s1;
  for (int l = 0; l < W; ++l) s += s0[l];
  return s != s;
}

// For each column c of rows [0, rows): the first (first = true) or last row holding an inf or NaN
// in column c, or -1 / rows when there is none (the slow path, run only after any_nonfinite).
template <typename T>
void nonfinite_rows(const T* x, int64_t ld, int rows, int w, bool first, int* at) {
  for (int c = 0; c < w; ++c) at[c] = first ? rows : -1;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < w; ++c)
      if (!std::isfinite(x[r * ld + c]) && (!first || at[c] == rows)) at[c] = r;
}

}  // namespace tinyml_attention
