// Winograd transforms for panels of consecutive tiles of the flattened tile grid, taken as runs along
// tile rows (a panel of NR tiles crosses at most MAX_RUNS - 1 tile-row ends; conv_winograd.h uses
// these when the tile rows are wide enough for that). Within a run, lane l is tile column
// tcf + l - la, so patch value (i, j) of its lanes is the strided slice
// x[row i][(tcf + l - la) * M + j - pl]: the run's input rows are first copied into a zero-padded
// row buffer (padding needs no tests after that), then transposed by constant-stride loops the
// compiler vectorises (a permute from two loads), and the runs' vectors merged by lane masks,
// instead of being gathered tile by tile into vector lanes (scalar stores and a vector reload that
// waits for them: ~4x slower at 56 x 56). The output transform writes each output row of a run as
// one interleaved stretch. Same arithmetic in the same order as the per-tile path, same results.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

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

// A^T m A + bias for one patch whose NR lanes are NR tiles, m's value xi read from Mb[xi][o][col ..] (rows of
// NT = 2 NR columns): out[i][j] is output (i, j) of every lane's tile. Both output transforms (per tile row
// here, per tile in conv_winograd.h) start with it.
template <typename T, int M>
__attribute__((always_inline)) inline void untransform_patch(const T* Mb, ssize orows, ssize o, ssize col, T bo,
                                                             typename Vec<T>::v (&out)[M][M]) {
  using W = Wino<M>;
  using Vt = typename Vec<T>::v;
  constexpr int A = W::A;
  constexpr ssize NT = 2 * Vec<T>::NR;
  Vt m[A][A], am[M][A];
#pragma GCC unroll 8
  for (int xi = 0; xi < A * A; ++xi) std::memcpy(&m[xi / A][xi % A], Mb + (xi * orows + o) * NT + col, sizeof(Vt));
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < A; ++j) {  // A^T m
      Vt s = {};
#pragma GCC unroll 8
      for (int k = 0; k < A; ++k)
        if (W::AT[i][k] != 0) s += T(W::AT[i][k]) * m[k][j];
      am[i][j] = s;
    }
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < M; ++j) {  // (A^T m) A + bias
      Vt s = {};
#pragma GCC unroll 8
      for (int k = 0; k < A; ++k)
        if (W::AT[j][k] != 0) s += am[i][k] * T(W::AT[j][k]);
      out[i][j] = s + bo;
    }
}

constexpr int MAX_RUNS = 3;

// Lanes [la, lb) of a panel lie in tile row tr, lane l at tile column tcf + l - la.
struct Run {
  ssize tr, tcf;
  int la, lb;
};

// The runs of the `count` tiles first, first + 1, ... (row-major tile grid, tw tiles a row); returns
// their number, or 0 if there would be more than MAX_RUNS.
inline int panel_runs(ssize first, ssize count, ssize tw, Run* runs) {
  int n = 0;
  for (ssize l = 0; l < count;) {
    if (n == MAX_RUNS) return 0;
    const ssize t = first + l, len = std::min(count - l, tw - t % tw);
    runs[n++] = {t / tw, t % tw, static_cast<int>(l), static_cast<int>(l + len)};
    l += len;
  }
  return n;
}

// Whether every panel of NR consecutive tiles fits in MAX_RUNS runs: it crosses at most
// ceil((NR - 1) / tw) tile-row ends.
inline bool runs_fit(ssize tw, int nr) { return 1 + (nr - 1 + tw - 1) / tw <= MAX_RUNS; }

// u = the NR values p[0], p[M], ..., p[(NR - 1) * M] (p has NR * M + A - 1 - j readable values
// from here on). For M = 2 two loads and a shuffle (vpermt2ps on AVX-512); otherwise lane by lane.
template <typename T, int M>
__attribute__((always_inline)) inline void strided_lanes(const T* p, typename Vec<T>::v& u) {
  using Vt = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  if constexpr (M == 2) {
    using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef I Vi __attribute__((vector_size(64)));
    Vi even;
    for (int l = 0; l < NR; ++l) even[l] = 2 * l;
    Vt a, b;
    std::memcpy(&a, p, sizeof a);
    std::memcpy(&b, p + NR, sizeof b);
    u = __builtin_shuffle(a, b, even);
  } else {
    T lane[NR];
    for (int l = 0; l < NR; ++l) lane[l] = p[l * M];
    std::memcpy(&u, lane, sizeof u);
  }
}

// The zero-padded rows of one channel that input_transform_runs reads: row stride pad_stride(wd), the
// input row at column PAD_L, and PAD_L / PAD_R zeros either side, so that every lane (those outside
// a run too: they are masked off) of every patch column reads inside the buffer.
template <typename T, int M>
struct PadRows {
  static constexpr ssize L = Vec<T>::NR * M + M + 2, R = Vec<T>::NR * M + 2 * Wino<M>::A;
  static ssize stride(ssize wd) { return L + wd + R; }
  // input rows a task of NT consecutive tiles can touch: at most (NT - 1) / tw + 1 tile rows
  static ssize rows(ssize tw) { return ((2 * Vec<T>::NR - 1) / tw + 1) * M + Wino<M>::A; }
  // the values input_transform_runs's `buf` must hold (zero-initialised by the caller, once)
  static ssize size(ssize wd, ssize tw) { return (rows(tw) + 1) * stride(wd); }
};

// V[xi][c][pn * NR + lane] for the panels of tiles [t0, t0 + nt) (lanes past nt read zeros), with
// runs_fit(tw, NR). Per channel, the task's input rows are copied into `buf` (PadRows: its padding
// stays zero from the caller's initialisation, only the row interiors are written), so no patch
// read needs a bounds test. Returns false if some value is not finite.
template <typename T, int M>
TINYML_CLONES bool input_transform_runs(const T* xn, T* V, T* buf, ssize C, ssize h, ssize wd, ssize pt, ssize pl,
                                        ssize t0, ssize nt, ssize tw) {
  using W = Wino<M>;
  using Vt = typename Vec<T>::v;
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef I Vi __attribute__((vector_size(64)));
  using P = PadRows<T, M>;
  constexpr int A = W::A, NR = Vec<T>::NR;
  constexpr ssize NT = 2 * NR;
  Vi iota;
  for (int l = 0; l < NR; ++l) iota[l] = l;
  const int npanels = static_cast<int>((nt + NR - 1) / NR);
  Run runs[NT / NR][MAX_RUNS];
  int nruns[NT / NR];
  Vi mask[NT / NR][MAX_RUNS];
  bool full[NT / NR];
  for (int pn = 0; pn < npanels; ++pn) {
    nruns[pn] = panel_runs(t0 + pn * NR, std::min<ssize>(NR, nt - pn * NR), tw, runs[pn]);
    for (int r = 0; r < nruns[pn]; ++r) mask[pn][r] = (iota >= runs[pn][r].la) & (iota < runs[pn][r].lb);
    full[pn] = nruns[pn] == 1 && runs[pn][0].la == 0 && runs[pn][0].lb == NR;  // else lanes past nt read zeros
  }
  const ssize ws = P::stride(wd), r0 = (t0 / tw) * M - pt, r1 = ((t0 + nt - 1) / tw) * M - pt + A;
  const ssize lo = std::max<ssize>(r0, 0), hi = std::min(r1, h);
  const T* zrow = buf;  // a row above or below the input: all zeros
  T* rowbuf = buf + ws;
  Vt probe = {};
  for (ssize c = 0; c < C; ++c) {
    const T* xc = xn + c * h * wd;
    for (ssize hin = lo; hin < hi; ++hin) std::memcpy(rowbuf + (hin - r0) * ws + P::L, xc + hin * wd, wd * sizeof(T));
    for (int pn = 0; pn < npanels; ++pn) {
      const T* rows[MAX_RUNS][A];  // lane 0's patch row i of run r; lane l's patch column j at l * M + j
      for (int r = 0; r < nruns[pn]; ++r) {
        const ssize col0 = (runs[pn][r].tcf - runs[pn][r].la) * M - pl + P::L;  // lane 0's patch column 0
        for (int i = 0; i < A; ++i) {
          const ssize hin = runs[pn][r].tr * M - pt + i;
          rows[r][i] = (static_cast<size_t>(hin) < static_cast<size_t>(h) ? rowbuf + (hin - r0) * ws : zrow) + col0;
        }
      }
      Vt d[A][A];
      for (int i = 0; i < A; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < A; ++j) {
          Vt v = {};
          for (int r = 0; r < nruns[pn]; ++r) {
            Vt u;
            strided_lanes<T, M>(rows[r][i] + j, u);
            v = full[pn] ? u : (mask[pn][r] ? u : v);
          }
          d[i][j] = v;
        }
      transform_patch<T, M>(d, V + c * NT + pn * NR, C * NT, probe);
    }
  }
  for (int l = 0; l < NR; ++l)
    if (probe[l] != probe[l]) return false;
  return true;
}

// line[l * M + j] = out[j][l]: M vectors interleaved (for M = 2 two shuffles, vpermt2ps on AVX-512).
template <typename T, int M>
__attribute__((always_inline)) inline void interleave(const typename Vec<T>::v (&out)[M], T* line) {
  using Vt = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  if constexpr (M == 2) {
    using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef I Vi __attribute__((vector_size(64)));
    Vi lo, hi;
    for (int l = 0; l < NR; ++l) {
      lo[l] = (l / 2) + (l % 2) * NR;
      hi[l] = NR / 2 + (l / 2) + (l % 2) * NR;
    }
    const Vt a = __builtin_shuffle(out[0], out[1], lo), b = __builtin_shuffle(out[0], out[1], hi);
    std::memcpy(line, &a, sizeof a);
    std::memcpy(line + NR, &b, sizeof b);
  } else {
    for (int l = 0; l < NR; ++l)
      for (int j = 0; j < M; ++j) line[l * M + j] = out[j][l];
  }
}

// y = A^T M A + bias for the tiles [t0, t0 + nt), from Mb[xi][o][lane] (rows of NT columns), with
// runs_fit(tw, NR): each output row of a run is written as one stretch.
template <typename T, int M>
TINYML_CLONES void output_transform_runs(const T* Mb, const T* bias, T* yn, ssize O, ssize orows, ssize oh,
                                         ssize ow, ssize t0, ssize nt, ssize tw) {
  using Vt = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  constexpr ssize NT = 2 * NR;
  Run runs[NT / NR][MAX_RUNS];
  int nruns[NT / NR];
  const int npanels = static_cast<int>((nt + NR - 1) / NR);
  for (int pn = 0; pn < npanels; ++pn) nruns[pn] = panel_runs(t0 + pn * NR, std::min<ssize>(NR, nt - pn * NR), tw, runs[pn]);
  for (ssize o = 0; o < O; ++o) {
    T* yo = yn + o * oh * ow;
    const T bo = bias ? bias[o] : T(0);
    for (int pn = 0; pn < npanels; ++pn) {
      Vt out[M][M];
      untransform_patch<T, M>(Mb, orows, o, pn * NR, bo, out);
      for (int i = 0; i < M; ++i) {
        T line[NR * M];  // output row i of all lanes' tiles, interleaved
        interleave<T, M>(out[i], line);
        for (int r = 0; r < nruns[pn]; ++r) {
          const Run& run = runs[pn][r];
          const ssize oi = run.tr * M + i, oc0 = run.tcf * M;
          if (oi >= oh) continue;
          const ssize cols = std::min<ssize>(ssize(run.lb - run.la) * M, ow - oc0);
          T* yr = yo + oi * ow + oc0;
          if (cols == NR * M) {  // the whole panel: fixed-size copy (vector stores)
            std::memcpy(yr, line, sizeof line);
            continue;
          }
          const T* src = line + run.la * M;
          for (ssize s = 0; s < cols; ++s) yr[s] = src[s];
        }
      }
    }
  }
}

}  // namespace tinyml_conv
