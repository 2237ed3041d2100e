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
#include <cmath>
#include <string>
#include <vector>

#include "conv_gemm.h"
#include "conv_im2col.h"
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

// V[xi][c][panel * NR + lane] = (B^T d B)[xi] for the NR tiles of each panel at once (a vector lane per
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
      transform_patch<T, M>(d, V + c * NT + pn * NR, C * NT, probe);
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
  using Vt = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  for (ssize o = 0; o < O; ++o) {
    T* yo = yn + o * oh * ow;
    const T bo = bias ? bias[o] : T(0);
    for (ssize pn = 0; pn * NR < nt; ++pn) {
      Vt out[M][M];
      untransform_patch<T, M>(Mb, orows, o, pn * NR, bo, out);
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
  // Tasks of NT consecutive tiles of the flattened tile grid (no idle lanes but the last task's).
  // Where a panel of NR of them crosses at most MAX_RUNS - 1 tile-row ends (tw >= 8 for float32),
  // the transforms work by runs along tile rows (conv_winograd_rows.h); narrower images gather tile
  // by tile.
  const bool by_runs = runs_fit(tw, NR);
  const ssize tasks = N * blocks;
  const bool wide = wide_kernels();
#pragma omp parallel
  {
    std::vector<T> V(XI * C * NT), Mb(XI * otiles * MR * NT), buf(by_runs ? PadRows<T, M>::size(wd, tw) : 0);
#pragma omp for schedule(dynamic, 1)
    for (ssize task = 0; task < tasks; ++task) {
      const ssize n = task / blocks, t0 = (task % blocks) * NT, nt = std::min(NT, P - t0);
      const ssize npanels = (nt + NR - 1) / NR;
      const T* xn = x + n * C * h * wd;
      const bool finite = by_runs ? input_transform_runs<T, M>(xn, V.data(), buf.data(), C, h, wd, pt, pl, t0, nt, tw)
                                  : input_transform<T, M>(xn, V.data(), C, h, wd, pt, pl, t0, nt, tw);
      if (!finite) {  // inf/NaN in these patches: the transforms would smear them over whole tiles
        direct_tiles(x, w, bias, y, C, h, wd, O, pt, pl, oh, ow, n, t0, nt, tw, M);
        continue;
      }
      // the XI GEMMs: Mb[xi](O x NT, row stride NT) = U[xi] @ V[xi]
      for (int xi = 0; xi < XI; ++xi)
        for (ssize mt = 0; mt < otiles; ++mt) {
          const T* Ap = Up.data() + (xi * otiles + mt) * C * MR;
          const T* Bp = V.data() + xi * C * NT;
          T* Cp = Mb.data() + (xi * otiles * MR + mt * MR) * NT;
          if (wide && npanels == 2)
            micro2<T>(C, Ap, Bp, NT, Cp, NT, MR, NR, false);
          else
            for (ssize pn = 0; pn < npanels; ++pn) micro<T>(C, Ap, Bp + pn * NR, NT, Cp + pn * NR, NT, MR, NR, false);
        }
      T* yn = y + n * O * oh * ow;
      if (by_runs)
        output_transform_runs<T, M>(Mb.data(), bias, yn, O, otiles * MR, oh, ow, t0, nt, tw);
      else
        output_transform<T, M>(Mb.data(), bias, yn, O, otiles * MR, oh, ow, t0, nt, tw);
    }
  }
}

// ---- dispatch (conv.cpp's bindings) ------------------------------------------------------------------

// algo: 0 chooses, 1 forces the implicit GEMM, 2 / 4 force Winograd F(2x2, 3x3) / F(4x4, 3x3).
// `cin`/`cout` are the channel counts of the convolution actually run (swapped for the input gradient).
inline int winograd_tile(const ConvGeo& g, ssize cin, ssize cout, int algo) {
  const bool fits = g.groups == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 &&
                    g.pt >= 0 && g.pt <= 2 && g.pl >= 0 && g.pl <= 2;
  if (algo == 2 || algo == 4) {
    if (!fits)
      throw py::value_error("conv2d: algo=" + std::to_string(algo) +
                            " (Winograd) needs a 3x3 kernel, stride 1, dilation 1, groups 1 and top/left pads in "
                            "0..2; got kernel " + std::to_string(g.kh) + "x" + std::to_string(g.kw) + ", groups " +
                            std::to_string(g.groups) + ", pads (" + std::to_string(g.pt) + ", " +
                            std::to_string(g.pl) + ")");
    return algo;
  }
  if (algo != 0 && algo != 1 && algo != 3)
    throw py::value_error("conv2d: algo must be 0, 1, 2, 3 or 4, got " + std::to_string(algo));
  // Winograd pays once the GEMMs dominate its transforms: enough channels on both sides, and maps of
  // at least 7x7 outputs: its cost per image is that of an 8x8 map down to 2x2 (the transforms work
  // on whole tile strips), so on the 4x4 maps of a detector's deep levels the GEMM is 2-2.5x faster
  // (measured, 1 thread, batch 16, 16-256 channels: GEMM / Winograd time 0.34-0.68 at 2x2-4x4,
  // 0.54-0.85 at 5x5-6x6, 0.91-1.19 at 7x7-8x8, 1.19-1.37 at 10x10). F(2x2, 3x3) by default: it
  // rounds like direct summation; F(4x4, 3x3) (algo=4) is ~1.3x faster again but about 10x less
  // exact in float32 (tests/ops/test_conv_winograd.py measures both).
  return algo == 0 && fits && cin >= 16 && cout >= 16 && g.oh * g.ow >= 49 ? 2 : 0;
}

template <typename T>
bool all_finite(const T* a, ssize n) {
  for (ssize i = 0; i < n; ++i)
    if (!std::isfinite(a[i])) return false;
  return true;
}

template <typename T>
void run_winograd(int m, const T* x, const T* w, const T* bias, T* y, ssize N, ssize C, ssize h, ssize wd, ssize O,
                  ssize pt, ssize pl, ssize oh, ssize ow) {
  if (m == 2) winograd_conv<T, 2>(x, w, bias, y, N, C, h, wd, O, pt, pl, oh, ow);
  else winograd_conv<T, 4>(x, w, bias, y, N, C, h, wd, O, pt, pl, oh, ow);
}

// dx = full correlation of dy (N, O, oh, ow) with w^T flipped: wf[c, o, p, q] = w[o, c, 2 - p, 2 - q]
template <typename T>
void winograd_backward_input(int m, const ConvGeo& g, const T* w, const T* dy, T* dx) {
  std::vector<T> wf(g.c * g.o * 9);
  for (ssize o = 0; o < g.o; ++o)
    for (ssize c = 0; c < g.c; ++c)
      for (int p = 0; p < 9; ++p) wf[(c * g.o + o) * 9 + p] = w[(o * g.c + c) * 9 + 8 - p];
  run_winograd<T>(m, dy, wf.data(), nullptr, dx, g.n, g.o, g.oh, g.ow, g.c, 2 - g.pt, 2 - g.pl, g.h, g.w);
}

}  // namespace tinyml_conv
