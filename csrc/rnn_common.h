// Shared pieces of csrc/rnn.cpp: modes, vectorisable sigmoid/tanh and the per-thread unit slices (see
// rnn.cpp's header for the scheme); the packed GEMM is in rnn_gemm.h.
#pragma once
#include "simd_math.h"
#include "common.h"
#include "rnn_gemm.h"

#include <algorithm>
#include <string>
#include <utility>
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

// Whether every value of a[0, n) is finite (x * 0 is 0 for a finite x, NaN for inf and NaN), and zero.
template <typename T>
bool all_finite(const T* a, int64_t n) {
  T s = T(0);
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * T(0);
  return s == T(0);
}
template <typename T>
bool all_zero(const T* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (a[i] != T(0)) return false;  // (NaN too)
  return true;
}

// h0 = 0 (nn.LSTM's default state) makes the first step's h W_hh^T and its term dgates^T h0 of dW_hh zero,
// unless W_hh (forward) or those dgates (backward) hold inf or NaN: 0 * inf is NaN, as in torch's GEMMs.
// The loops then leave those products out (forward: when every W_hh value is finite, checked as it is
// packed). dw_hh_rows gives the rows k = t B + b of dW_hh's GEMM over all T B rows to compute for the dgates
// columns [q0, q1) (dg row k at dg + k ldg): all of them, or without the first step's (the last step's
// when reverse: the step whose every active row starts from h0) when h0 is zero and those dgates finite.
template <typename T>
std::pair<int64_t, int64_t> dw_hh_rows(const Dims& d, bool h0_zero, bool reverse, const T* dg, int64_t ldg,
                                       int64_t q0, int64_t q1) {
  const int64_t K = d.T * d.B, t = reverse ? d.T - 1 : 0;
  if (!h0_zero || d.T == 0) return {0, K};
  for (int64_t b = 0; b < d.B; ++b)
    if (!all_finite(dg + (t * d.B + b) * ldg + q0, q1 - q0)) return {0, K};
  return reverse ? std::pair<int64_t, int64_t>{0, t * d.B} : std::pair<int64_t, int64_t>{d.B, K};
}

// Hidden units per chunk of a time step (csrc/rnn_memory.h Phases) for nt threads: whole GEMM panels,
// about kChunksPerThread per thread (all units for one thread), fewer than 2^16 chunks. A thread runs
// the pointwise step once over all the chunks it took in a row (Phases::run), so fine chunks cost their
// pointwise step nothing in a balanced step and let threads share out a descheduled thread's work.
// With the zmm kernel a chunk has at least two panels: one register tile covers two (csrc/rnn_zmm.h), and a
// chunk's one-panel GEMMs (the backward's dh_prev) would run on the ymm kernel at half its rate.
constexpr int64_t kChunksPerThread = 8;
template <typename T>
int64_t unit_chunk(int64_t H, int nt) {
  const int64_t P = panels<T>(H), least = zmm_enabled() ? 2 : 1;
  return kNR<T> * std::max<int64_t>({least, (P + 4095) / 4096, nt <= 1 ? P : P / (kChunksPerThread * nt)});
}

// Rows of dW (G H of them) per chunk of the weight-gradient phase on nt threads: whole tiles, about
// kDwChunksPerThread chunks per thread, at most kMc (one packed block of dgates^T), under 2^16 chunks. Each
// chunk streams all of the packed h_prev and x (T B (H + I) values) through the cache once, so fewer,
// larger chunks read them fewer times (B64 T32 H256: 2.6 MB per chunk, 16 chunks of 64 rows before).
constexpr int64_t kDwChunksPerThread = 4;
inline int64_t dw_chunk(int64_t GH, int nt) {
  const int64_t per = kDwChunksPerThread * nt;
  const int64_t tile = zmm_enabled() ? kMRz : kMR;  // (a row tile of the GEMM's kernel)
  const int64_t rows = std::min(kMc, std::max<int64_t>({tile, (GH + per - 1) / per, (GH + 4095) / 4096}));
  return (rows + tile - 1) / tile * tile;
}

// Rows per chunk of a GEMM over `rows` rows: at most kMc (a chunk's A is read in place), under 2^16 chunks.
inline int64_t row_chunk(int64_t rows) {
  return std::max<int64_t>({1, std::min<int64_t>(kMc, rows), (rows + 4095) / 4096});
}

// Threads for a GEMM of `rows` x k x n (the input projection): one per ~4 MFLOP, at most max_threads.
inline int threads_for_rows(int64_t rows, int64_t k, int64_t n) {
  return int(std::max<int64_t>(1, std::min<int64_t>(tinyml::max_threads(), 2 * rows * k * n / (1 << 22))));
}

// Threads for the time loop: k is the recurrent GEMM's depth (H, or I + H when x_t W_ih^T runs in each step).
inline int threads_for(const Dims& d, int64_t k = -1) {
  // below ~64k multiply-adds per step a parallel region's synchronisation costs more than it saves
  if (d.B * (k < 0 ? d.H : k) * d.H * d.G < (1 << 16)) return 1;
  return std::max(1, std::min<int>(tinyml::max_threads(), int((d.H + 15) / 16)));
}

}  // namespace rnn_detail
