// Shared pieces of csrc/rnn.cpp: modes, a register-blocked GEMM, vectorisable sigmoid/tanh and the
// per-thread unit slices (see rnn.cpp's header for the scheme).
#pragma once
#include "simd_math.h"
#include "common.h"

#include <algorithm>
#include <string>
#include <vector>

namespace rnn_detail {

enum class Mode { LSTM, GRU, TANH, RELU };

inline Mode parse_mode(const std::string& s) {
  if (s == "LSTM") return Mode::LSTM;
  if (s == "GRU") return Mode::GRU;
  if (s == "RNN_TANH") return Mode::TANH;
  if (s == "RNN_RELU") return Mode::RELU;
  throw py::value_error("rnn: unknown mode '" + s + "'; expected LSTM, GRU, RNN_TANH or RNN_RELU");
}

inline int64_t n_gates(Mode m) { return m == Mode::LSTM ? 4 : m == Mode::GRU ? 3 : 1; }
inline int64_t n_saved(Mode m) { return m == Mode::LSTM ? 5 : m == Mode::GRU ? 4 : 0; }

constexpr int64_t kKc = 128;  // GEMM k-block

template <typename T> struct vec;
template <> struct vec<float> {
  typedef float type __attribute__((vector_size(32), aligned(4), may_alias));
  static constexpr int W = 8;
};
template <> struct vec<double> {
  typedef double type __attribute__((vector_size(32), aligned(8), may_alias));
  static constexpr int W = 4;
};

// C[M x N] (+)= A[M x K] B[K x N]; A[m][k] = A[m*sam + k*sak] (so A^T is read in place), B and C
// row-major with leading dims ldb, ldc. 4 rows x 2 vectors of C stay in registers over the k loop.
template <typename T>
TINYML_CLONES void gemm(int64_t M, int64_t N, int64_t K, const T* __restrict A, int64_t sam, int64_t sak,
                        const T* __restrict B, int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate) {
  using V = typename vec<T>::type;
  constexpr int W = vec<T>::W;
  if (!accumulate)
    for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
  // K in blocks, then column panels outer and row tiles inner: a kKc x 2W panel of B (4-8 KiB) stays
  // in L1 while every row tile of A streams past it from L2.
  const int64_t M4 = M / 4 * 4, N2 = N / (2 * W) * (2 * W);
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t k1 = std::min(K, k0 + kKc);
    for (int64_t n0 = 0; n0 < N2; n0 += 2 * W)
      for (int64_t m0 = 0; m0 < M4; m0 += 4) {
        T *c0 = C + m0 * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        const T *a0 = A + m0 * sam, *a1 = a0 + sam, *a2 = a1 + sam, *a3 = a2 + sam;
        V x00 = *(V*)(c0 + n0), x01 = *(V*)(c0 + n0 + W), x10 = *(V*)(c1 + n0), x11 = *(V*)(c1 + n0 + W);
        V x20 = *(V*)(c2 + n0), x21 = *(V*)(c2 + n0 + W), x30 = *(V*)(c3 + n0), x31 = *(V*)(c3 + n0 + W);
        for (int64_t k = k0; k < k1; ++k) {
          const T* b = B + k * ldb + n0;
          V b0 = *(const V*)b, b1 = *(const V*)(b + W);
          T s0 = a0[k * sak], s1 = a1[k * sak], s2 = a2[k * sak], s3 = a3[k * sak];
          x00 += s0 * b0; x01 += s0 * b1; x10 += s1 * b0; x11 += s1 * b1;
          x20 += s2 * b0; x21 += s2 * b1; x30 += s3 * b0; x31 += s3 * b1;
        }
        *(V*)(c0 + n0) = x00; *(V*)(c0 + n0 + W) = x01; *(V*)(c1 + n0) = x10; *(V*)(c1 + n0 + W) = x11;
        *(V*)(c2 + n0) = x20; *(V*)(c2 + n0 + W) = x21; *(V*)(c3 + n0) = x30; *(V*)(c3 + n0 + W) = x31;
      }
    for (int64_t m0 = 0; m0 < M4; m0 += 4) {  // the last N % 2W columns of the full row tiles
      T *c0 = C + m0 * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
      const T *a0 = A + m0 * sam, *a1 = a0 + sam, *a2 = a1 + sam, *a3 = a2 + sam;
      for (int64_t n = N2; n < N; ++n) {
        T x0 = c0[n], x1 = c1[n], x2 = c2[n], x3 = c3[n];
        for (int64_t k = k0; k < k1; ++k) {
          T b = B[k * ldb + n];
          x0 += a0[k * sak] * b; x1 += a1[k * sak] * b; x2 += a2[k * sak] * b; x3 += a3[k * sak] * b;
        }
        c0[n] = x0; c1[n] = x1; c2[n] = x2; c3[n] = x3;
      }
    }
    for (int64_t m0 = M4; m0 < M; ++m0) {  // the last M % 4 rows
      T* c = C + m0 * ldc;
      for (int64_t k = k0; k < k1; ++k) {
        T s = A[m0 * sam + k * sak];
        const T* b = B + k * ldb;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) c[n] += s * b[n];
      }
    }
  }
}

// Leading dim of a GEMM's B operand copy: n + 16 elements, so that its rows are not a power-of-two
// bytes apart (a 2-4 KiB stride maps a K x 2W panel onto a few L1 sets, which then thrash).
inline int64_t padded_ld(int64_t n) { return n + 16; }

// sigmoid and tanh as plain arithmetic so the pointwise loops vectorise (float); libm for double.
// tanh: Cephes tanhf, an odd polynomial for |x| < 0.625, 1 - 2 / (exp(2|x|) + 1) beyond; both are
// computed and one selected, and NaN takes the polynomial branch, so it stays NaN.
inline float sigm(float x) { return 1.0f / (1.0f + tinyml::fexp_ieee(-x)); }
inline double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline float tanh_(float x) {
  float z = x < 0 ? -x : x;
  float big = 1.0f - 2.0f / (tinyml::fexp_ieee(2.0f * z) + 1.0f);
  big = x < 0 ? -big : big;
  float s = x * x;
  float p = ((((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s + 1.33314422036e-1f) * s -
             3.33332819422e-1f) * s * x + x;
  return z > 0.625f ? big : p;
}
inline double tanh_(double x) { return std::tanh(x); }

struct Dims {
  int64_t T, B, H, G;
};

// The unit slice [j0, j1) of thread `tid` of `nt`: contiguous, multiples of 8 units.
inline void unit_slice(int64_t H, int tid, int nt, int64_t* j0, int64_t* j1) {
  int64_t per = ((H + nt - 1) / nt + 7) / 8 * 8;
  *j0 = std::min(H, per * tid);
  *j1 = std::min(H, *j0 + per);
}

inline int threads_for(const Dims& d) {
  // below ~64k multiply-adds per step a parallel region's barriers cost more than they save
  if (d.B * d.H * d.H * d.G < (1 << 16)) return 1;
  return std::max(1, std::min<int>(tinyml::max_threads(), int((d.H + 7) / 8)));
}

}  // namespace rnn_detail
