// Shared pieces of csrc/rnn.cpp: modes, a packed register-blocked GEMM, vectorisable sigmoid/tanh and the
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

constexpr int64_t kKc = 256;  // GEMM k-block: a kKc x NR panel of B (16 KiB float) stays in L1
constexpr int kMR = 6;        // GEMM rows per register tile: 6 x 2 vectors = 12 accumulators
constexpr int64_t kMc = 96;   // GEMM rows per packed block of A (a multiple of kMR)

template <typename T> struct vec;
template <> struct vec<float> {
  typedef float type __attribute__((vector_size(32), aligned(4), may_alias));
  static constexpr int W = 8;
};
template <> struct vec<double> {
  typedef double type __attribute__((vector_size(32), aligned(8), may_alias));
  static constexpr int W = 4;
};
template <typename T> constexpr int64_t kNR = 2 * vec<T>::W;  // GEMM columns per panel (two vectors)

// The GEMM's B operand (K x N, B[k][n] = B[k * sbk + n * sbn]) as panels of kNR columns, each panel
// K x kNR contiguous (zero-padded past N): the micro-kernel then streams one panel from L1 with unit
// stride, whatever B's layout was (W_hh^T, W_hh or h_prev), and no 4 KiB row stride can alias L1 sets.
template <typename T>
int64_t panels(int64_t N) { return (N + kNR<T> - 1) / kNR<T>; }

// Panels [p0, p1) only (default: all), so threads can pack disjoint panels side by side.
template <typename T>
void pack_b(const T* B, int64_t sbk, int64_t sbn, int64_t K, int64_t N, T* out, int64_t p0 = 0, int64_t p1 = -1) {
  constexpr int64_t R = kNR<T>;
  if (p1 < 0) p1 = panels<T>(N);
  for (int64_t p = p0; p < p1; ++p)
    if (sbk == 1)  // B^T in place (e.g. W_hh^T): walk each column of B along its contiguous k
      for (int64_t n = 0; n < R; ++n)
        for (int64_t k = 0; k < K; ++k)
          out[(p * K + k) * R + n] = p * R + n < N ? B[k + (p * R + n) * sbn] : T(0);
    else
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < R; ++n)
          out[(p * K + k) * R + n] = p * R + n < N ? B[k * sbk + (p * R + n) * sbn] : T(0);
}

// C[MR x ncols] (+)= Apack[kc x MR] Bpanel[kc x kNR]: MR rows x 2 vectors of accumulators in registers.
// Cloned per target itself: GCC does not inline a plain function into a target_clones caller, and the
// default-target copy of this loop runs 256-bit vectors as emulated SSE2 (70x slower, measured).
template <typename T, int MR>
TINYML_CLONES void micro(int64_t kc, const T* __restrict ap, const T* __restrict bp, T* __restrict c, int64_t ldc,
                  int64_t ncols, bool accumulate) {
  using V = typename vec<T>::type;
  constexpr int W = vec<T>::W;
  V x[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) x[r][0] = x[r][1] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V b0 = *(const V*)(bp + k * 2 * W), b1 = *(const V*)(bp + k * 2 * W + W);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      T s = ap[k * MR + r];
      x[r][0] += s * b0;
      x[r][1] += s * b1;
    }
  }
  if (ncols == 2 * W) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      V* cr = (V*)(c + r * ldc);
      if (accumulate) cr[0] += x[r][0], cr[1] += x[r][1];
      else cr[0] = x[r][0], cr[1] = x[r][1];
    }
  } else {  // a partial last panel: only ncols columns of C exist
    T tmp[MR][2 * W];
    for (int r = 0; r < MR; ++r) *(V*)tmp[r] = x[r][0], *(V*)(tmp[r] + W) = x[r][1];
    for (int r = 0; r < MR; ++r)
      for (int64_t n = 0; n < ncols; ++n) c[r * ldc + n] = (accumulate ? c[r * ldc + n] : T(0)) + tmp[r][n];
  }
}

// For each group g < G: C[:, g cg + p kNR ...] (+)= A (M x K) B_g[:, panels p0..p1), where A[m][k] =
// A[m * sam + k * sak] (so A^T is read in place) and Bp holds G groups of panels(N) packed panels (pack_b).
// Blocked as a BLAS GEMM: K in blocks of kKc, M in blocks of kMc rows whose 6-row tiles are packed once
// (apack: kKc * kMc scratch, 96 KiB float, stays in L2), then panels outer and row tiles inner, so each
// B panel (16 KiB) is read from L1 by every tile; B's panels need not fit L2 (an LSTM's 4 gates at
// H = 256 are 1 MiB: with tiles outer they streamed from L3 for every tile, 8 GFLOP/s instead of 80).
// Each C element is summed in one fixed order (independent of the thread count).
template <typename T>
TINYML_CLONES void gemm_packed(int64_t M, int64_t K, const T* __restrict A, int64_t sam, int64_t sak,
                               const T* __restrict Bp, int64_t G, int64_t N, int64_t p0, int64_t p1,
                               T* __restrict C, int64_t ldc, int64_t cg, bool accumulate, T* __restrict apack) {
  constexpr int64_t R = kNR<T>;
  const int64_t P = panels<T>(N);
  if (K == 0 && !accumulate)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t n = p0 * R; n < std::min(N, p1 * R); ++n) C[m * ldc + g * cg + n] = T(0);
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(K, k0 + kKc) - k0;
    const bool acc = accumulate || k0 > 0;
    for (int64_t mb0 = 0; mb0 < M; mb0 += kMc) {
      const int64_t mb1 = std::min(M, mb0 + kMc);
      if (sam == 1)  // A^T in place (dgh^T for dW): 8 rows of A^T (k) at a time, each row's run of
        // mb1 - mb0 values contiguous, written tile by tile (a tile's 8 k in one run: tiles are kc MR
        // apart, a multiple of 4 KiB at kc 256, so k-by-k writes across tiles hit the same L1 sets)
        for (int64_t kb = 0; kb < kc; kb += 8)
          for (int64_t m0 = mb0; m0 < mb1; m0 += kMR) {
            const int64_t mr = std::min<int64_t>(kMR, mb1 - m0);
            T* ap = apack + (m0 - mb0) * kc;
            for (int64_t k = kb; k < std::min(kc, kb + 8); ++k)
              for (int64_t r = 0; r < mr; ++r) ap[k * mr + r] = A[m0 + r + (k0 + k) * sak];
          }
      else
        for (int64_t m0 = mb0; m0 < mb1; m0 += kMR) {  // tile (m0 - mb0) / kMR at apack + (m0 - mb0) kc
          const int64_t mr = std::min<int64_t>(kMR, mb1 - m0);
          T* ap = apack + (m0 - mb0) * kc;
          for (int64_t k = 0; k < kc; ++k)
            for (int64_t r = 0; r < mr; ++r) ap[k * mr + r] = A[(m0 + r) * sam + (k0 + k) * sak];
        }
      for (int64_t g = 0; g < G; ++g)
        for (int64_t p = p0; p < p1; ++p) {
          const T* bp = Bp + ((g * P + p) * K + k0) * R;
          const int64_t nc = std::min(R, N - p * R);
          for (int64_t m0 = mb0; m0 < mb1; m0 += kMR) {
            const T* ap = apack + (m0 - mb0) * kc;
            T* c = C + m0 * ldc + g * cg + p * R;
            switch (std::min<int64_t>(kMR, mb1 - m0)) {
              case 6: micro<T, 6>(kc, ap, bp, c, ldc, nc, acc); break;
              case 5: micro<T, 5>(kc, ap, bp, c, ldc, nc, acc); break;
              case 4: micro<T, 4>(kc, ap, bp, c, ldc, nc, acc); break;
              case 3: micro<T, 3>(kc, ap, bp, c, ldc, nc, acc); break;
              case 2: micro<T, 2>(kc, ap, bp, c, ldc, nc, acc); break;
              default: micro<T, 1>(kc, ap, bp, c, ldc, nc, acc); break;
            }
          }
        }
    }
  }
}

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

// The unit slice [j0, j1) of thread `tid` of `nt`: contiguous, multiples of 16 units (whole GEMM panels).
inline void unit_slice(int64_t H, int tid, int nt, int64_t* j0, int64_t* j1) {
  int64_t per = ((H + nt - 1) / nt + 15) / 16 * 16;
  *j0 = std::min(H, per * tid);
  *j1 = std::min(H, *j0 + per);
}

// Threads for a GEMM of `rows` x k x n (the input projection): one per ~4 MFLOP, at most max_threads.
inline int threads_for_rows(int64_t rows, int64_t k, int64_t n) {
  return int(std::max<int64_t>(1, std::min<int64_t>(tinyml::max_threads(), 2 * rows * k * n / (1 << 22))));
}

inline int threads_for(const Dims& d) {
  // below ~64k multiply-adds per step a parallel region's barriers cost more than they save
  if (d.B * d.H * d.H * d.G < (1 << 16)) return 1;
  return std::max(1, std::min<int>(tinyml::max_threads(), int((d.H + 15) / 16)));
}

}  // namespace rnn_detail
