// The packed, register-blocked GEMM of csrc/rnn.cpp's loops: B operands packed once as panels of kNR
// columns, A packed per block of rows, a 6 x 2-vector micro-kernel cloned per target (AVX-512, AVX2+FMA,
// baseline; its vectors are 8 floats wide), an 8-row x 2-panel zmm micro-kernel where the CPU has AVX-512
// (csrc/rnn_zmm.h), and several B operands (targets) sharing one packed A.
#pragma once
#include "simd_math.h"
#include "common.h"
#include "rnn_zmm.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace rnn_detail {

constexpr int64_t kKc = 256;  // GEMM k-block: a kKc x NR panel of B (16 KiB float) stays in L1
constexpr int kMR = 6;        // GEMM rows per register tile: 6 x 2 vectors = 12 accumulators
constexpr int64_t kMc = 192;  // GEMM rows per packed block of A (a multiple of kMR; 192 KiB float, in L2)

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

// C[MR x ncols] (+)= A[MR x kc] Bpanel[kc x kNR]: MR rows x 2 vectors of accumulators in registers. A is
// packed (kDirect false: a[k MR + r]) or read in place (a[r lda + k]: the per-step GEMMs' few rows, which
// every thread would otherwise pack alike each step). One k loop per instantiation: with both loops in one
// function GCC kept the accumulators on the stack between them (36 stack moves per call).
// Cloned per target itself: GCC does not inline a plain function into a target_clones caller, and the
// default-target copy of this loop runs 256-bit vectors as emulated SSE2 (70x slower, measured).
template <typename T, int MR, bool kDirect>
TINYML_CLONES void micro(int64_t kc, const T* __restrict ap, int64_t lda, const T* __restrict bp, T* __restrict c,
                         int64_t ldc, int64_t ncols, bool accumulate) {
  using V = typename vec<T>::type;
  constexpr int W = vec<T>::W;
  V x[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) x[r][0] = x[r][1] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V b0 = *(const V*)(bp + k * 2 * W), b1 = *(const V*)(bp + k * 2 * W + W);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      T s = kDirect ? ap[r * lda + k] : ap[k * MR + r];
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
    for (int r = 0; r < MR; ++r) {
      T tmp[2 * W];
      *(V*)tmp = x[r][0], *(V*)(tmp + W) = x[r][1];
      for (int64_t n = 0; n < ncols; ++n) c[r * ldc + n] = (accumulate ? c[r * ldc + n] : T(0)) + tmp[n];
    }
  }
}

// micro<T, mr, kDirect> for a runtime mr in 1..kMR.
template <typename T, bool kDirect>
inline void micro_rows(int64_t mr, int64_t kc, const T* ap, int64_t lda, const T* bp, T* c, int64_t ldc,
                       int64_t ncols, bool acc) {
  switch (mr) {
    case 6: micro<T, 6, kDirect>(kc, ap, lda, bp, c, ldc, ncols, acc); break;
    case 5: micro<T, 5, kDirect>(kc, ap, lda, bp, c, ldc, ncols, acc); break;
    case 4: micro<T, 4, kDirect>(kc, ap, lda, bp, c, ldc, ncols, acc); break;
    case 3: micro<T, 3, kDirect>(kc, ap, lda, bp, c, ldc, ncols, acc); break;
    case 2: micro<T, 2, kDirect>(kc, ap, lda, bp, c, ldc, ncols, acc); break;
    default: micro<T, 1, kDirect>(kc, ap, lda, bp, c, ldc, ncols, acc); break;
  }
}

// Rows of the register tile that starts at row m0 of a block ending at m1: kMR, except that 1-3 rows left
// after whole tiles share the last two tiles with the tile before them (32 rows: 6 6 6 6 4 4, not
// 6 6 6 6 6 2). A tile of under 4 rows has under 8 accumulators, too few to hide the FMA latency: the
// 2-row tile of a thread's 32 rows per step (B64 split in two) took 5.5% of an LSTM's time for 6% of its
// rows at half the 6-row tiles' rate (perf, 2 threads). Each C element's sum does not depend on its tile.
inline int64_t tile_rows(int64_t m0, int64_t m1, int64_t mr = kMR) {
  const int64_t rem = m1 - m0;
  return rem <= mr ? rem : rem < mr + 4 ? rem - 4 : mr;
}

// One B operand of a GEMM and where its product goes: for each group g < G, C[:, g cg + p kNR ...] (+)=
// A[:, k_lo:k_hi] B_g[k_lo:k_hi, panels p0..p1), where Bp holds G groups of panels(N) packed panels
// (pack_b, K rows each). [k_lo, k_hi) (default all of K) leaves out rows of B that are zero (the
// backward's h_prev of the first step when h0 is 0): those products are not computed.
template <typename T>
struct Target {
  const T* Bp;
  int64_t G, N, p0, p1;
  T* C;
  int64_t ldc, cg;
  bool accumulate;
  int64_t k_lo = 0, k_hi = INT64_MAX;
};

// C_i (+)= A (M x K) B_i for each target i < n_targets, where A[m][k] = A[m * sam + k * sak] (so A^T is
// read in place): every target shares each packed block of A (the backward's dgates feed dh_prev and dx
// per step, and dW_hh and dW_ih at the end). With row_sums set (A packed: sak != 1), row_sums[m] +=
// A[m][k] for every k in ascending order, while A is packed (db from dgates^T: no pass of its own).
// Blocked as a BLAS GEMM: K in blocks of kKc, M in blocks of kMc rows whose tiles (tile_rows) are packed
// once (apack: kKc * kMc scratch, 192 KiB float, stays in L2), then panels outer and row tiles inner, so
// each B panel (16 KiB) is read from L1 by every tile; B's panels need not fit L2 (an LSTM's 4 gates at
// H = 256 are 1 MiB: with tiles outer they streamed from L3 for every tile, 8 GFLOP/s instead of 80).
// Each C element is summed in one fixed order (independent of the thread count).
template <typename T>
TINYML_CLONES void gemm_multi(int64_t M, int64_t K, const T* __restrict A, int64_t sam, int64_t sak,
                              const Target<T>* targets, int n_targets, T* __restrict apack,
                              T* __restrict row_sums = nullptr) {
  constexpr int64_t R = kNR<T>;
  // rows of unit stride (the per-step GEMMs' rows, or a chunk of at most kMc rows): the micro-kernel reads A
  // in place (a chunk of a few panels would spend as long packing A as multiplying)
  const bool direct = sak == 1;
  // the zmm kernel (csrc/rnn_zmm.h) takes every job, one or two panels per register tile of up to kMRz rows;
  // the ymm kernel's tiles have up to kMR rows (packed A is laid out tile by tile: mrt rows per whole tile)
  const bool zmm = TINYML_RNN_ZMM && zmm_enabled();
  const int64_t mrt = zmm ? kMRz : kMR;
  for (int i = 0; i < n_targets; ++i) {
    const Target<T>& o = targets[i];
    if (std::max<int64_t>(0, o.k_lo) >= std::min(K, o.k_hi) && !o.accumulate)  // no products: C = 0
      for (int64_t m = 0; m < M; ++m)
        for (int64_t g = 0; g < o.G; ++g)
          for (int64_t n = o.p0 * R; n < std::min(o.N, o.p1 * R); ++n) o.C[m * o.ldc + g * o.cg + n] = T(0);
  }
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(K, k0 + kKc) - k0;
    for (int64_t mb0 = 0; mb0 < M; mb0 += kMc) {
      const int64_t mb1 = std::min(M, mb0 + kMc);
      if (!direct && sam == 1)  // A^T in place (dgh^T for dW): 8 rows of A^T (k) at a time, each row's run of
        // mb1 - mb0 values contiguous, written tile by tile (a tile's 8 k in one run: tiles are kc MR
        // apart, a multiple of 4 KiB at kc 256, so k-by-k writes across tiles hit the same L1 sets)
        for (int64_t kb = 0; kb < kc; kb += 8) {
          // the rows two blocks ahead: runs of a few cache lines one row stride (4 KiB at G H 1024) apart, which
          // no hardware prefetcher follows (gemm_multi's own time, mostly this copy waiting on L3, went from 8%
          // to 4.5% of an LSTM layer's, B64 H256, 2 threads, perf)
          for (int64_t k = k0 + kb + 16; k < std::min(K, k0 + kb + 24); ++k)
            for (int64_t m = mb0; m < mb1; m += 64 / int64_t(sizeof(T))) __builtin_prefetch(A + m + k * sak);
          for (int64_t m0 = mb0, mr; m0 < mb1; m0 += mr) {
            mr = tile_rows(m0, mb1, mrt);
            T* ap = apack + (m0 - mb0) * kc;
            const T* src = A + m0 + k0 * sak;
            T* sums = row_sums ? row_sums + m0 : nullptr;
            const int64_t ke = std::min(kc, kb + 8);
            auto whole = [&](auto rows) {  // a whole tile: a copy of fixed length per k
              constexpr int n = decltype(rows)::value;
              if (sums)
                for (int64_t k = kb; k < ke; ++k)
                  for (int r = 0; r < n; ++r) ap[k * n + r] = src[k * sak + r], sums[r] += src[k * sak + r];
              else
                for (int64_t k = kb; k < ke; ++k)
                  for (int r = 0; r < n; ++r) ap[k * n + r] = src[k * sak + r];
            };
            if (mr == kMR) whole(std::integral_constant<int, int(kMR)>{});
            else if (mr == kMRz) whole(std::integral_constant<int, kMRz>{});
            else
              for (int64_t k = kb; k < ke; ++k)
                for (int64_t r = 0; r < mr; ++r) {
                  ap[k * mr + r] = src[k * sak + r];
                  if (sums) sums[r] += src[k * sak + r];
                }
          }
        }
      else if (!direct)
        for (int64_t m0 = mb0, mr; m0 < mb1; m0 += mr) {  // tile at apack + (m0 - mb0) kc
          mr = tile_rows(m0, mb1, mrt);
          T* ap = apack + (m0 - mb0) * kc;
          for (int64_t k = 0; k < kc; ++k)
            for (int64_t r = 0; r < mr; ++r) {
              ap[k * mr + r] = A[(m0 + r) * sam + (k0 + k) * sak];
              if (row_sums) row_sums[m0 + r] += A[(m0 + r) * sam + (k0 + k) * sak];
            }
        }
      for (int i = 0; i < n_targets; ++i) {
        const Target<T>& o = targets[i];
        // this target's k in this block: [kb0, kb1); its first block (kb0 == its k_lo) starts C afresh
        const int64_t k_lo = std::max<int64_t>(0, o.k_lo), kb0 = std::max(k0, k_lo);
        const int64_t kb1 = std::min({k0 + kc, K, o.k_hi});
        if (kb0 >= kb1) continue;
        const bool acc = o.accumulate || kb0 > k_lo;
        const int64_t P = panels<T>(o.N), np = std::max<int64_t>(0, o.p1 - o.p0), jobs = o.G * np;
        // the (group, panel) jobs in order: panel p of group g is C[:, g cg + p R ...] += A B_g[:, panel p]
        auto job = [&](int64_t q, const T** bp, T** c, int64_t* nc) {
          const int64_t g = q / np, p = o.p0 + q % np;
          *bp = o.Bp + ((g * P + p) * K + kb0) * R;
          *c = o.C + g * o.cg + p * R;
          *nc = std::min(R, o.N - p * R);
        };
        for (int64_t q = 0; q < jobs;) {
          const T* bp;
          T* c;
          int64_t nc;
          job(q, &bp, &c, &nc);
#if TINYML_RNN_ZMM
          if (zmm) {  // this job and the next side by side in one register tile (a lone last job: alone)
            const T* bp2 = nullptr;
            T* c2 = c;
            int64_t nc2 = 0;
            if (q + 1 < jobs) job(q + 1, &bp2, &c2, &nc2);
            for (int64_t m0 = mb0, mr; m0 < mb1; m0 += mr) {
              mr = tile_rows(m0, mb1, kMRz);
              T *cr = c + m0 * o.ldc, *cr2 = c2 + m0 * o.ldc;
              if (direct)
                micro_zmm_rows<T, true>(mr, kb1 - kb0, A + m0 * sam + kb0, sam, bp, bp2, cr, cr2, o.ldc, nc, nc2, acc);
              else
                micro_zmm_rows<T, false>(mr, kb1 - kb0, apack + (m0 - mb0) * kc + (kb0 - k0) * mr, 0, bp, bp2, cr, cr2,
                                         o.ldc, nc, nc2, acc);
            }
            q += 2;
            continue;
          }
#endif
          for (int64_t m0 = mb0, mr; m0 < mb1; m0 += mr) {
            mr = tile_rows(m0, mb1);
            T* cr = c + m0 * o.ldc;
            if (direct) micro_rows<T, true>(mr, kb1 - kb0, A + m0 * sam + kb0, sam, bp, cr, o.ldc, nc, acc);
            else
              micro_rows<T, false>(mr, kb1 - kb0, apack + (m0 - mb0) * kc + (kb0 - k0) * mr, 0, bp, cr, o.ldc, nc,
                                   acc);
          }
          ++q;
        }
      }
    }
  }
}

// One target: for each group g < G, C[:, g cg + p kNR ...] (+)= A (M x K) B_g[:, panels p0..p1).
template <typename T>
void gemm_packed(int64_t M, int64_t K, const T* A, int64_t sam, int64_t sak, const T* Bp, int64_t G, int64_t N,
                 int64_t p0, int64_t p1, T* C, int64_t ldc, int64_t cg, bool accumulate, T* apack,
                 T* row_sums = nullptr) {
  const Target<T> t{Bp, G, N, p0, p1, C, ldc, cg, accumulate};
  gemm_multi<T>(M, K, A, sam, sak, &t, 1, apack, row_sums);
}

}  // namespace rnn_detail
