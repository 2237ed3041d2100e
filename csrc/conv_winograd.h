// conv2d 3x3, stride 1, dilation 1, groups 1 as Winograd F(m x m, 3 x 3) (Lavin & Gray 2016):
// each m x m output tile is
//
//   Y = A^T [ sum_c (G g[o, c] G^T) .* (B^T d[c] B) ] A        d[c]: the (m+2) x (m+2) input patch
//
// so the (m+2)^2 products over channels are (m+2)^2 independent GEMMs
// M[xi](O x tiles) = U[xi](O x C) @ V[xi](C x tiles): 9 m^2 multiplies per output become (m+2)^2,
// 2.25x fewer for F(2, 3), 4x fewer for F(4, 3). Transforms and GEMMs are fused per task (one
// sample, NT tiles): the input transform writes V straight into the micro-kernel's packed B
// panels, the GEMM result M stays in cache, and the output transform writes y, so nothing of
// size (m+2)^2 x C x tiles ever reaches memory.
//
// Rounding: F(2, 3)'s transforms only add and halve, and its float32 error matches direct
// summation's; F(4, 3)'s weigh patch values by up to 5 and 1/24, and its error is about 10x larger
// (~1e-5 of the largest output at C = 64; tests/ops/test_conv_winograd.py). The weight transform
// runs in double.
//
// The input gradient of such a convolution is one too (full correlation of dy with the flipped,
// transposed weight, top/left pad 2 - p), so conv.cpp runs both through winograd_conv.
#pragma once

#include <algorithm>
#include <vector>

#include "conv_gemm.h"
#include "conv_winograd_rows.h"

namespace tinyml_conv {

template <int M>
struct Wino;

template <>
struct Wino<2> {  // points 0, 1, -1, inf
  static constexpr int A = 4;
  static constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};

template <>
struct Wino<4> {  // points 0, 1, -1, 2, -2, inf
  static constexpr int A = 6;
  static constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                      {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                     {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                     {0, 0, 1}};
  static constexpr double AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// Tiles [t0, t0 + nt) of sample n by direct summation, PyTorch's order of NaN/inf propagation:
// an output is non-finite only where its own 3 x 3 window (or weight) is.
template <typename T>
void direct_tiles(const T* x, const T* w, const T* bias, T* y, ssize C, ssize h, ssize wd, ssize O, ssize pt,
                  ssize pl, ssize oh, ssize ow, ssize n, ssize t0, ssize nt, ssize tw, int m) {
  for (ssize o = 0; o < O; ++o)
    for (ssize t = t0; t < t0 + nt; ++t)
      for (ssize i = (t / tw) * m; i < std::min(oh, (t / tw) * m + m); ++i)
        for (ssize j = (t % tw) * m; j < std::min(ow, (t % tw) * m + m); ++j) {
          T s = 0;
          for (ssize c = 0; c < C; ++c)
            for (int p = 0; p < 3; ++p)
              for (int q = 0; q < 3; ++q) {
                const ssize hi = i + p - pt, wi = j + q - pl;
                if (static_cast<size_t>(hi) < static_cast<size_t>(h) && static_cast<size_t>(wi) < static_cast<size_t>(wd))
                  s += w[((o * C + c) * 3 + p) * 3 + q] * x[((n * C + c) * h + hi) * wd + wi];
              }
          y[((n * O + o) * oh + i) * ow + j] = s + (bias ? bias[o] : T(0));
        }
}

// V[xi][panel][c][lane] = (B^T d B)[xi] for the NR tiles of each panel at once (a vector lane per
// tile): the patch is gathered lane by lane, the transform is vector arithmetic, the stores whole
// vectors. Returns false if some patch value is not finite.
template <typename T, int M>
TINYML_CLONES bool input_transform(const T* xn, T* V, ssize C, ssize h, ssize wd, ssize pt, ssize pl, ssize t0,
                                   ssize nt, ssize tw) {
  using W = Wino<M>;
  using Vt = typename Vec<T>::v;
  constexpr int A = W::A, NR = Vec<T>::NR;
  constexpr ssize NT = 2 * NR;
  Vt probe = {};
  for (ssize pn = 0; pn < NT / NR; ++pn) {
    ssize hi0[NR], wi0[NR];
    bool inner[NR];
    for (int l = 0; l < NR; ++l) {
      const ssize t = t0 + pn * NR + l;
      hi0[l] = (t / tw) * M - pt, wi0[l] = (t % tw) * M - pl;
      inner[l] = pn * NR + l < nt && hi0[l] >= 0 && wi0[l] >= 0 && hi0[l] + A <= h && wi0[l] + A <= wd;
    }
    for (ssize c = 0; c < C; ++c) {
      const T* xc = xn + c * h * wd;
      Vt d[A][A];
      for (int l = 0; l < NR; ++l) {
        if (inner[l]) {
          const T* src = xc + hi0[l] * wd + wi0[l];
          for (int i = 0; i < A; ++i)
            for (int j = 0; j < A; ++j) d[i][j][l] = src[i * wd + j];
        } else {
          const bool valid = pn * NR + l < nt;
          for (int i = 0; i < A; ++i)
            for (int j = 0; j < A; ++j) {
              const ssize hi = hi0[l] + i, wi = wi0[l] + j;
              d[i][j][l] = valid && static_cast<size_t>(hi) < static_cast<size_t>(h) &&
                                   static_cast<size_t>(wi) < static_cast<size_t>(wd)
                               ? xc[hi * wd + wi]
                               : T(0);
            }
        }
      }
      transform_patch<T, M>(d, V + (pn * C + c) * NR, C * NT, probe);
    }
  }
  for (int l = 0; l < NR; ++l)
    if (probe[l] != probe[l]) return false;
  return true;
}

// y tile = A^T M A + bias for NR tiles at once, from Mb[xi][o][t] (rows of ldm = NT columns).
template <typename T, int M>
TINYML_CLONES void output_transform(const T* Mb, const T* bias, T* yn, ssize O, ssize orows, ssize oh, ssize ow,
                                    ssize t0, ssize nt, ssize tw) {
  using W = Wino<M>;
  using Vt = typename Vec<T>::v;
  constexpr int A = W::A, NR = Vec<T>::NR;
  constexpr ssize NT = 2 * NR;
  for (ssize o = 0; o < O; ++o) {
    T* yo = yn + o * oh * ow;
    const T bo = bias ? bias[o] : T(0);
    for (ssize pn = 0; pn * NR < nt; ++pn) {
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
      Vt out[M][M];
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < M; ++j) {
          Vt s = {};
#pragma GCC unroll 8
          for (int k = 0; k < A; ++k)
            if (W::AT[j][k] != 0) s += am[i][k] * T(W::AT[j][k]);
          out[i][j] = s + bo;
        }
      const int lanes = static_cast<int>(std::min<ssize>(NR, nt - pn * NR));
      for (int l = 0; l < lanes; ++l) {
        const ssize t = t0 + pn * NR + l, oi0 = (t / tw) * M, oj0 = (t % tw) * M;
        if (oi0 + M <= oh && oj0 + M <= ow) {
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < M; ++j) yo[(oi0 + i) * ow + oj0 + j] = out[i][j][l];
        } else {
          for (int i = 0; i < M && oi0 + i < oh; ++i)
            for (int j = 0; j < M && oj0 + j < ow; ++j) yo[(oi0 + i) * ow + oj0 + j] = out[i][j][l];
        }
      }
    }
  }
}

// y (N, O, oh, ow) = conv(x (N, C, h, w), w (O, C, 3, 3)) + bias, top/left pads pt, pl (0..2);
// rows/columns outside x read as zero, so the bottom/right pads follow from oh, ow.
template <typename T, int M>
void winograd_conv(const T* x, const T* w, const T* bias, T* y, ssize N, ssize C, ssize h, ssize wd, ssize O,
                   ssize pt, ssize pl, ssize oh, ssize ow) {
  using W = Wino<M>;
  constexpr int A = W::A, XI = A * A, NR = Vec<T>::NR;
  constexpr ssize NT = 2 * NR;  // tiles per task: two B panels share every A panel
  const ssize th = (oh + M - 1) / M, tw = (ow + M - 1) / M, P = th * tw, blocks = (P + NT - 1) / NT;
  const ssize otiles = (O + MR - 1) / MR;
  // U[xi] = (G g G^T)[xi] as (O x C) matrices, packed as MR-row panels (C x MR)
  std::vector<T> Up(XI * otiles * C * MR);
  {
    std::vector<T> U(static_cast<size_t>(O) * C);
    for (int xi = 0; xi < XI; ++xi) {
      const int a = xi / A, b = xi % A;
      for (ssize o = 0; o < O; ++o)
        for (ssize c = 0; c < C; ++c) {
          const T* g = w + (o * C + c) * 9;
          double u = 0;
          for (int p = 0; p < 3; ++p)
            for (int q = 0; q < 3; ++q) u += W::G[a][p] * double(g[p * 3 + q]) * W::G[b][q];
          U[o * C + c] = T(u);
        }
      std::vector<T> packed = pack_a(U.data(), O, C, C, false);
      std::copy(packed.begin(), packed.end(), Up.begin() + xi * otiles * C * MR);
    }
  }
  // Row panels (conv_winograd_rows.h) when a tile row fills at least 90% of its panels' lanes (the
  // idle lanes cost GEMM time: measured slower than the tile-by-tile gather at 28 of 32 lanes, faster
  // at 32 of 32); otherwise NT consecutive tiles of the flattened tile grid, gathered tile by tile.
  const ssize row_panels = (tw + NR - 1) / NR, pairs = (tw + NT - 1) / NT;
  const bool by_rows = tw * 10 >= row_panels * NR * 9;
  const ssize tasks = N * (by_rows ? th * pairs : blocks);
#pragma omp parallel
  {
    std::vector<T> V(XI * C * NT), Mb(XI * otiles * MR * NT), buf(A * (NR * M + A));
#pragma omp for schedule(dynamic, 1)
    for (ssize task = 0; task < tasks; ++task) {
      ssize n, t0, nt, tr = 0, tc0 = 0;
      int npanels = NT / NR;
      bool finite;
      if (by_rows) {
        n = task / (th * pairs), tr = (task / pairs) % th, tc0 = (task % pairs) * NT;
        nt = std::min(NT, tw - tc0), t0 = tr * tw + tc0, npanels = static_cast<int>((nt + NR - 1) / NR);
        finite = input_transform_row<T, M>(x + n * C * h * wd, V.data(), buf.data(), C, h, wd, pt, pl, tr, tc0,
                                           npanels);
      } else {
        n = task / blocks, t0 = (task % blocks) * NT, nt = std::min(NT, P - t0);
        finite = input_transform<T, M>(x + n * C * h * wd, V.data(), C, h, wd, pt, pl, t0, nt, tw);
      }
      if (!finite) {  // inf/NaN in these patches: the transforms would smear them over whole tiles
        direct_tiles(x, w, bias, y, C, h, wd, O, pt, pl, oh, ow, n, t0, nt, tw, M);
        continue;
      }
      // the XI GEMMs: Mb[xi](O x NT, row stride NT) = U[xi] @ V[xi]
      for (int xi = 0; xi < XI; ++xi)
        for (ssize mt = 0; mt < otiles; ++mt)
          for (ssize pn = 0; pn < npanels; ++pn)
            micro<T>(C, Up.data() + (xi * otiles + mt) * C * MR, V.data() + (xi * C * NT) + pn * C * NR, NR,
                     Mb.data() + (xi * otiles * MR + mt * MR) * NT + pn * NR, NT, MR, NR, false);
      if (by_rows)
        output_transform_row<T, M>(Mb.data(), bias, y + n * O * oh * ow, O, otiles * MR, oh, ow, tr, tc0, npanels,
                                   tw);
      else
        output_transform<T, M>(Mb.data(), bias, y + n * O * oh * ow, O, otiles * MR, oh, ow, t0, nt, tw);
    }
  }
}

}  // namespace tinyml_conv
