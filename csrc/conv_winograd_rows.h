// Winograd transforms for panels of tiles that lie along one tile row (conv_winograd.h picks them
// when the rows are wide enough to fill the panels). Lane l of a panel is tile column tc0 + l, so
// patch value (i, j) of all lanes is the strided slice x[row i][(tc0 + l) * M + j - pl], l = 0..NR-1:
// the input rows are first copied into a zero-padded row buffer (padding needs no tests after
// that), then transposed by constant-stride loops the compiler vectorises, instead of being
// gathered tile by tile into vector lanes. The output transform writes each output row of a panel
// as one interleaved run. Same arithmetic in the same order as the per-tile path, same results.
#pragma once

#include <algorithm>
#include <cstring>

#include "conv_gemm.h"

namespace tinyml_conv {

template <int M>
struct Wino;

// (B^T d) B for one patch whose NR lanes are NR tiles: value xi = (i, j) goes to dst + xi * stride (a
// whole vector), and probe gains value * 0, so it turns NaN iff some transformed value (so some patch
// value) is not finite. Both input transforms (per tile row here, per tile in conv_winograd.h) end with it.
template <typename T, int M>
__attribute__((always_inline)) inline void transform_patch(const typename Vec<T>::v (&d)[Wino<M>::A][Wino<M>::A],
                                                           T* dst, ssize stride, typename Vec<T>::v& probe) {
  using W = Wino<M>;
  using Vt = typename Vec<T>::v;
  constexpr int A = W::A;
  Vt bd[A][A];  // B^T d
#pragma GCC unroll 8
  for (int i = 0; i < A; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < A; ++j) {
      Vt s = {};
#pragma GCC unroll 8
      for (int k = 0; k < A; ++k)
        if (W::BT[i][k] != 0) s += T(W::BT[i][k]) * d[k][j];
      bd[i][j] = s;
    }
#pragma GCC unroll 8
  for (int i = 0; i < A; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < A; ++j) {  // (B^T d) B
      Vt s = {};
#pragma GCC unroll 8
      for (int k = 0; k < A; ++k)
        if (W::BT[j][k] != 0) s += bd[i][k] * T(W::BT[j][k]);
      probe += s * T(0);
      std::memcpy(dst + (i * A + j) * stride, &s, sizeof s);
    }
}

// V[xi][pn][c][lane] for panels pn < npanels of tile row tr (tile columns tc0 + pn * NR + lane); lanes
// past the row read zeros. `buf` holds A * (NR * M + A) values. Returns false if some value is not finite.
template <typename T, int M>
TINYML_CLONES bool input_transform_row(const T* xn, T* V, T* buf, ssize C, ssize h, ssize wd, ssize pt, ssize pl,
                                       ssize tr, ssize tc0, int npanels) {
  using W = Wino<M>;
  using Vt = typename Vec<T>::v;
  constexpr int A = W::A, NR = Vec<T>::NR, SPAN = NR * M + A;
  constexpr ssize NT = 2 * NR;
  Vt probe = {};
  for (ssize c = 0; c < C; ++c) {
    const T* xc = xn + c * h * wd;
    for (int pn = 0; pn < npanels; ++pn) {
      const ssize col0 = (tc0 + pn * NR) * M - pl;  // input column of lane 0's patch column 0
      const ssize lo = std::clamp<ssize>(-col0, 0, SPAN), hi = std::clamp<ssize>(wd - col0, lo, SPAN);
      for (int i = 0; i < A; ++i) {
        T* row = buf + i * SPAN;
        const ssize hin = tr * M - pt + i;
        if (static_cast<size_t>(hin) >= static_cast<size_t>(h)) {
          const T zeros[SPAN] = {};
          std::memcpy(row, zeros, sizeof zeros);
          continue;
        }
        const T* src = xc + hin * wd;
        if (lo == 0 && hi == SPAN) {  // inside the row: a fixed-size copy (whole vectors, no library call)
          std::memcpy(row, src + col0, SPAN * sizeof(T));
          continue;
        }
        T span[SPAN] = {};  // fixed-size zeroing, then the part inside the row
        for (ssize s = lo; s < hi; ++s) span[s] = src[col0 + s];
        std::memcpy(row, span, sizeof span);
      }
      Vt d[A][A];
      for (int i = 0; i < A; ++i)
        for (int j = 0; j < A; ++j) {
          T lane[NR];
          for (int l = 0; l < NR; ++l) lane[l] = buf[i * SPAN + l * M + j];
          std::memcpy(&d[i][j], lane, sizeof(Vt));
        }
      transform_patch<T, M>(d, V + (pn * C + c) * NR, C * NT, probe);
    }
  }
  for (int l = 0; l < NR; ++l)
    if (probe[l] != probe[l]) return false;
  return true;
}

// y = A^T M A + bias for the panels of tile row tr, from Mb[xi][o][lane] (rows of NT columns);
// tile columns past tw are not written.
template <typename T, int M>
TINYML_CLONES void output_transform_row(const T* Mb, const T* bias, T* yn, ssize O, ssize orows, ssize oh, ssize ow,
                                        ssize tr, ssize tc0, int npanels, ssize tw) {
  using W = Wino<M>;
  using Vt = typename Vec<T>::v;
  constexpr int A = W::A, NR = Vec<T>::NR;
  constexpr ssize NT = 2 * NR;
  const ssize rows = std::min<ssize>(M, oh - tr * M);
  for (ssize o = 0; o < O; ++o) {
    T* yo = yn + o * oh * ow;
    const T bo = bias ? bias[o] : T(0);
    for (int pn = 0; pn < npanels; ++pn) {
      Vt m[A][A], am[M][A];
#pragma GCC unroll 8
      for (int xi = 0; xi < A * A; ++xi) std::memcpy(&m[xi / A][xi % A], Mb + (xi * orows + o) * NT + pn * NR, sizeof(Vt));
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < A; ++j) {
          Vt s = {};
#pragma GCC unroll 8
          for (int k = 0; k < A; ++k)
            if (W::AT[i][k] != 0) s += T(W::AT[i][k]) * m[k][j];
          am[i][j] = s;
        }
      const ssize oc0 = (tc0 + pn * NR) * M, cols = std::min<ssize>(NR * M, ow - oc0);
      for (int i = 0; i < rows; ++i) {
        T out[M][NR];
#pragma GCC unroll 8
        for (int j = 0; j < M; ++j) {
          Vt s = {};
#pragma GCC unroll 8
          for (int k = 0; k < A; ++k)
            if (W::AT[j][k] != 0) s += am[i][k] * T(W::AT[j][k]);
          s += bo;
          std::memcpy(out[j], &s, sizeof s);
        }
        T run[NR * M];  // the output row, tiles interleaved
        for (int l = 0; l < NR; ++l)
          for (int j = 0; j < M; ++j) run[l * M + j] = out[j][l];
        T* yr = yo + (tr * M + i) * ow + oc0;
        for (ssize s = 0; s < cols; ++s) yr[s] = run[s];
      }
    }
  }
}

}  // namespace tinyml_conv
