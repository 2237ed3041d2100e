// conv2d's forward read from the input slab in place: no im2col block (conv.cpp's conv_forward builds
// one per task and then streams it through the GEMM; at stride 2 that copy was a third of the time);
// and the input gradient at stride 1 as such a forward of dy with the flipped kernel.
//
//   y[o, j] = sum_k W[o, k] cols[k, j],   cols[k, j] = slab[pos(j) + off(k)]
//
// with the task's slab as the weight gradient fills it (conv_im2col.h, fill_slab: the input rows of R
// output rows, zero-padded, split by column phase so that a strided tap reads consecutive values):
// pos(j) = (i - i0) * sh * cols + jw places output position j = (i, jw) in it and off(k) is tap k =
// (c, p, q)'s (phase, channel, kernel row, column shift). The product is computed as y^T = cols^T W^T:
// a tile is MR output positions (broadcast from the slab, each row r at its own pos) x NR output
// channels (one vector of W^T, packed in NR-lane panels), or two panels at once where the AVX-512 clone
// runs (conv_gemm.h's wide_kernels). Every y[o, j] is the FMA chain over k = 0 .. K-1 from zero, then
// + bias: the operations of the im2col path, in the same order, so the same bits.
//
// The output channels sit in the vector lanes, so the path pays when Og fills them, and K = C/G kh kw
// is long enough to hide a tile's transposed store. slab_forward_pays picks it for kernels wider than
// 1 x 1 with K >= 64 and Og >= NR with at most an eighth of the lanes idle. Measured against the im2col
// path (2 threads, batch 16, float32; im2col time / slab time): 3x3 stride 2 K = 144-576 1.08-1.92, 3x3
// stride 1 on 4x4 maps 2.6-2.8, 28x28 1.21, K = 72 1.04; kept on im2col: 1 x 1 convolutions (there im2col
// is a plain copy of rows; 0.55-1.09), K = 9-27 (0.65-0.96), 24 channels in 32 lanes (0.88-1.00),
// depthwise and 8-channel groups.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "conv_gemm.h"
#include "conv_im2col.h"

namespace tinyml_conv {

// tile[r][lane] = sum_k a[r][off[k]] * W[k][lane] (r < MR, lane < NR): W one NR-wide panel (K x NR).
template <typename T>
TINYML_CLONES void micro_taps(ssize K, const T* const* a, const ssize* __restrict off, const T* __restrict W,
                              T* __restrict tile) {
  using V = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  const T* p[MR];
  for (int r = 0; r < MR; ++r) p[r] = a[r];
  V c[MR] = {};
  for (ssize k = 0; k < K; ++k) {
    V w;
    std::memcpy(&w, W + k * NR, sizeof w);
    const ssize o = off[k];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) c[r] += p[r][o] * w;
  }
  std::memcpy(tile, c, sizeof c);
}

// The same over two panels (tile[r][0 .. 2 NR)): one pass over the slab for 2 NR channels.
template <typename T>
TINYML_CLONES void micro_taps2(ssize K, const T* const* a, const ssize* __restrict off, const T* __restrict W0,
                               const T* __restrict W1, T* __restrict tile) {
  using V = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  const T* p[MR];
  for (int r = 0; r < MR; ++r) p[r] = a[r];
  V c0[MR] = {}, c1[MR] = {};
  for (ssize k = 0; k < K; ++k) {
    V w0, w1;
    std::memcpy(&w0, W0 + k * NR, sizeof w0);
    std::memcpy(&w1, W1 + k * NR, sizeof w1);
    const ssize o = off[k];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const T ar = p[r][o];
      c0[r] += ar * w0;
      c1[r] += ar * w1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    std::memcpy(tile + r * 2 * NR, &c0[r], sizeof c0[r]);
    std::memcpy(tile + r * 2 * NR + NR, &c1[r], sizeof c1[r]);
  }
}

// Whether the slab path runs (module comment): output channels per group fill the vector lanes.
template <typename T>
inline bool slab_forward_pays(const ConvGeo& g) {
  constexpr ssize NR = Vec<T>::NR;
  const ssize og = g.og(), lanes = (og + NR - 1) / NR * NR;
  return g.kh * g.kw > 1 && g.K() >= 64 && og >= NR && 8 * (lanes - og) <= lanes;
}

// Where conv_forward_slab writes output (o, i, jw) of a sample's group: y + o * plane + i * row + jw * col +
// base (per sample: + (n * o_total) * plane). The default is y's own (Og x oh x ow) layout; the input
// gradient writes one phase of dx's rows and columns in place (conv_backward_input_slab).
struct OutMap {
  ssize plane, row, col, base;
};

template <typename T>
void conv_forward_slab(const ConvGeo& g, const T* x, const T* w, const T* bias, T* y, OutMap om = {0, 0, 0, 0}) {
  constexpr int NR = Vec<T>::NR;
  const ssize K = g.K(), L = g.L(), Og = g.og(), otiles = (Og + NR - 1) / NR;
  const ssize R = std::max<ssize>(1, 128 / g.ow), blocks = (g.oh + R - 1) / R;  // output rows per task
  const Slab sl = slab_geometry(g, R);
  std::vector<T> Wp(g.groups * otiles * K * NR, T(0));  // Wp[grp][ot][k][lane] = w[grp * Og + ot * NR + lane, k]
  for (ssize grp = 0; grp < g.groups; ++grp)
    for (ssize o = 0; o < Og; ++o)
      for (ssize k = 0; k < K; ++k) Wp[((grp * otiles + o / NR) * K + k) * NR + o % NR] = w[(grp * Og + o) * K + k];
  std::vector<ssize> off(K);
  for (ssize k = 0; k < K; ++k) off[k] = slab_tap_offset(g, sl, k);
  if (om.plane == 0) om = {L, g.ow, 1, 0};
  const ssize tasks = g.n * g.groups * blocks;
  const bool wide = wide_kernels();
#pragma omp parallel
  {
    std::vector<T> slab(g.sw * sl.plane), tile(MR * 2 * NR);
    ssize at[MR];  // the tile's output offsets
#pragma omp for schedule(dynamic, 1)
    for (ssize task = 0; task < tasks; ++task) {
      const ssize blk = task % blocks, grp = (task / blocks) % g.groups, n = task / (blocks * g.groups);
      const ssize i0 = blk * R, rows = std::min(R, g.oh - i0), nb = rows * g.ow;
      fill_slab(g, sl, x + (n * g.c + grp * g.cg()) * g.h * g.w, i0, (rows - 1) * g.sh + (g.kh - 1) * g.dh + 1,
                slab.data());
      T* yb = y + (n * g.o + grp * Og) * om.plane + om.base;
      for (ssize jt = 0; jt < nb; jt += MR) {
        const int m = static_cast<int>(std::min<ssize>(MR, nb - jt));
        const T* a[MR];
        for (int r = 0; r < MR; ++r) {  // rows past m repeat the last position (computed, not stored)
          const ssize j = jt + std::min(r, m - 1), i = j / g.ow, jw = j % g.ow;
          a[r] = slab.data() + i * g.sh * sl.cols + jw;
          at[r] = (i0 + i) * om.row + jw * om.col;
        }
        for (ssize ot = 0; ot < otiles;) {
          const bool two = wide && ot + 1 < otiles;
          const T* W0 = Wp.data() + (grp * otiles + ot) * K * NR;
          if (two) micro_taps2<T>(K, a, off.data(), W0, W0 + K * NR, tile.data());
          else micro_taps<T>(K, a, off.data(), W0, tile.data());
          const ssize width = two ? 2 * NR : NR, lanes = std::min(width, Og - ot * NR);
          for (ssize l = 0; l < lanes; ++l) {  // y[o, jt + r] for the tile's channels o = ot * NR + l
            const ssize o = ot * NR + l;
            T* out = yb + o * om.plane;
            if (bias) {
              const T b = bias[grp * Og + o];
              for (int r = 0; r < m; ++r) out[at[r]] = tile[r * width + l] + b;
            } else {
              for (int r = 0; r < m; ++r) out[at[r]] = tile[r * width + l];
            }
          }
          ot += two ? 2 : 1;
        }
      }
    }
  }
}

// Whether the input gradient runs as a slab forward (conv_backward_input_slab): stride and dilation 1,
// and the transposed convolution (dy's Og channels in, C/G out, K = Og kh kw) passes slab_forward_pays'
// rule. Measured against the im2col path (1 thread, batch 8-16, float32; im2col / slab time): 3x3 stride
// 1 on 4x4 to 64x64 maps 1.08-3.4. At stride 2 its four phase convolutions (1x1, 1x2, 2x1, 2x2 taps)
// read dy four times and scatter their stores: 0.59-1.19, so strided convolutions keep the im2col path
// (algo=3 runs this one at any stride, for tests).
template <typename T>
inline bool slab_backward_pays(const ConvGeo& g) {
  ConvGeo transposed = g;
  std::swap(transposed.c, transposed.o);
  return g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && slab_forward_pays<T>(transposed);
}

// dx of conv2d (dilation 1) as stride-1 forward convolutions of dy, one per phase (ph, pw) of dx's rows
// and columns modulo the stride. The taps that reach row sh a + ph are p = p0, p0 + sh, ... < kh with
// p0 = (ph + pt) mod sh (nh of them), from dy row a + e0 - t for tap p0 + t sh, e0 = (ph + pt - p0) / sh;
// so, the columns alike,
//   dx[c, sh a + ph, sw b + pw] = sum_{o, u, v} dy[o, a - pad_h + u, b - pad_w + v] W'[c, o, u, v]
//   W'[c, o, u, v] = W[o, c, p0 + (nh - 1 - u) sh, q0 + (nw - 1 - v) sw],   pad_h = nh - 1 - e0
// (a pad may be negative: the slab reads zeros outside dy either way). conv_forward_slab writes each
// phase into dx in place (OutMap: rows sh apart, columns sw apart); a phase no tap reaches is zero. The
// sums run over (o, u, v) in that order: the im2col path's col2im adds its taps in another order, so the
// two agree to rounding, not bit for bit.
template <typename T>
void conv_backward_input_slab(const ConvGeo& g, const T* w, const T* dy, T* dx) {
  const ssize cg = g.cg(), Og = g.og(), khw = g.kh * g.kw;
  std::vector<T> sub;
  for (ssize ph = 0; ph < std::min(g.sh, g.h); ++ph)
    for (ssize pw = 0; pw < std::min(g.sw, g.w); ++pw) {
      const ssize rows = (g.h - ph + g.sh - 1) / g.sh, cols = (g.w - pw + g.sw - 1) / g.sw;
      const ssize p0 = (ph + g.pt) % g.sh, q0 = (pw + g.pl) % g.sw;
      const ssize nh = p0 < g.kh ? (g.kh - p0 + g.sh - 1) / g.sh : 0;
      const ssize nw = q0 < g.kw ? (g.kw - q0 + g.sw - 1) / g.sw : 0;
      if (!nh || !nw) {  // no tap reaches this phase: its dx is zero
        for (ssize nc = 0; nc < g.n * g.c; ++nc)
          for (ssize a = 0; a < rows; ++a)
            for (ssize b = 0; b < cols; ++b) dx[(nc * g.h + a * g.sh + ph) * g.w + b * g.sw + pw] = T(0);
        continue;
      }
      const ssize pad_h = nh - 1 - (ph + g.pt - p0) / g.sh, pad_w = nw - 1 - (pw + g.pl - q0) / g.sw;
      sub.assign(g.c * Og * nh * nw, T(0));  // W'[grp * cg + ci][oo][u][v]
      for (ssize grp = 0; grp < g.groups; ++grp)
        for (ssize ci = 0; ci < cg; ++ci)
          for (ssize oo = 0; oo < Og; ++oo)
            for (ssize u = 0; u < nh; ++u)
              for (ssize v = 0; v < nw; ++v)
                sub[(((grp * cg + ci) * Og + oo) * nh + u) * nw + v] =
                    w[((grp * Og + oo) * cg + ci) * khw + (p0 + (nh - 1 - u) * g.sh) * g.kw + q0 + (nw - 1 - v) * g.sw];
      const ConvGeo s{g.n, g.o, g.oh, g.ow, g.c, g.groups, nh, nw, 1, 1, pad_h, pad_w, 1, 1, rows, cols};
      conv_forward_slab<T>(s, dy, sub.data(), nullptr, dx, OutMap{g.h * g.w, g.sh * g.w, g.sw, ph * g.w + pw});
    }
}

}  // namespace tinyml_conv
