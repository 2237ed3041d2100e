// conv2d's geometry and its im2col / col2im rows, walked as runs (conv.cpp's implicit GEMMs).
//
// Row k = (c, p, q) of the im2col matrix over output columns j = i * ow + jw is
//
//   cols[k][j] = x[c, i * sh - pt + p * dh, jw * sw - pl + q * dw]     (0 outside the input)
//
// so over one output row i it is a strided slice of one input row, with zeros where the taps fall
// into the padding; for stride 1 a plain copy. The helpers below walk a block of columns output
// row by output row and copy (or, for col2im, add) whole runs instead of testing every element.
#pragma once

#include <algorithm>
#include <cstring>

#include "common.h"
#include "conv_gemm.h"

namespace tinyml_conv {

using ssize = py::ssize_t;

struct ConvGeo {
  ssize n, c, h, w, o, groups, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow;
  ssize cg() const { return c / groups; }
  ssize og() const { return o / groups; }
  ssize K() const { return cg() * kh * kw; }
  ssize L() const { return oh * ow; }
};

// dst[j] = src[2 j], j < n: the stride-2 im2col rows (and the weight gradient's slab). Compiled per
// instruction set (TINYML_CLONES), where GCC turns it into wide loads and a permute.
template <typename T>
TINYML_CLONES void copy_every_other(T* __restrict dst, const T* __restrict src, ssize n) {
  for (ssize j = 0; j < n; ++j) dst[j] = src[2 * j];
}

// dst[2 j] += src[j], j < n: col2im at stride 2. A vector of src is interleaved with -0.0 and added to
// two vectors of dst, so the odd elements between get x + (-0.0), which is x for every x (-0.0 and NaN
// included): the same bits as the scalar loop, with whole-vector loads and stores. The odd elements
// written lie between even ones this call adds into (j + NR < n), so nothing past the row is touched.
template <typename T>
TINYML_CLONES void add_every_other(T* __restrict dst, const T* __restrict src, ssize n) {
  using V = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  V z;
  for (int l = 0; l < NR; ++l) z[l] = T(-0.0);
  ssize j = 0;
  for (; j + NR < n; j += NR) {
    V s, d0, d1;
    std::memcpy(&s, src + j, sizeof s);
    std::memcpy(&d0, dst + 2 * j, sizeof d0);
    std::memcpy(&d1, dst + 2 * j + NR, sizeof d1);
    if constexpr (NR == 16) {
      typedef int32_t M __attribute__((vector_size(64)));
      d0 += __builtin_shuffle(s, z, M{0, 16, 1, 16, 2, 16, 3, 16, 4, 16, 5, 16, 6, 16, 7, 16});
      d1 += __builtin_shuffle(s, z, M{8, 16, 9, 16, 10, 16, 11, 16, 12, 16, 13, 16, 14, 16, 15, 16});
    } else {
      typedef int64_t M __attribute__((vector_size(64)));
      d0 += __builtin_shuffle(s, z, M{0, 8, 1, 8, 2, 8, 3, 8});
      d1 += __builtin_shuffle(s, z, M{4, 8, 5, 8, 6, 8, 7, 8});
    }
    std::memcpy(dst + 2 * j, &d0, sizeof d0);
    std::memcpy(dst + 2 * j + NR, &d1, sizeof d1);
  }
  for (; j < n; ++j) dst[2 * j] += src[j];
}

// One im2col row's taps: input row offset p * dh - pt, column offset q * dw - pl, and the output
// columns [lo, hi) whose tap lands inside the input row (0 <= jw * sw + off < w).
struct RowTap {
  ssize hoff, off, lo, hi;
};

inline RowTap row_tap(const ConvGeo& g, ssize k) {
  const ssize p = (k / g.kw) % g.kh, q = k % g.kw;
  RowTap t{p * g.dh - g.pt, q * g.dw - g.pl, 0, 0};
  t.lo = std::min(g.ow, t.off >= 0 ? ssize(0) : (-t.off + g.sw - 1) / g.sw);
  t.hi = t.off > g.w - 1 ? ssize(0) : std::min(g.ow, (g.w - 1 - t.off) / g.sw + 1);
  t.hi = std::max(t.hi, t.lo);
  return t;
}

// f(i, jw0, jw1, d): output row i, its columns [jw0, jw1), which are block columns d + jw0 ...
template <typename F>
inline void for_row_runs(const ConvGeo& g, ssize j0, ssize nb, F f) {
  ssize i = j0 / g.ow, jw = j0 - i * g.ow, done = 0;
  while (done < nb) {
    const ssize end = std::min(g.ow, jw + (nb - done));
    f(i, jw, end, done - jw);
    done += end - jw;
    jw = 0;
    ++i;
  }
}

// dst[jj] = cols[k][j0 + jj] for jj < nb; xc is input channel c's plane (c = k / (kh * kw)).
template <typename T>
inline void im2col_row(const ConvGeo& g, const T* xc, const RowTap& t, ssize j0, ssize nb, T* dst) {
  for_row_runs(g, j0, nb, [&](ssize i, ssize a, ssize b, ssize d) {
    const ssize hin = i * g.sh + t.hoff;
    if (static_cast<size_t>(hin) >= static_cast<size_t>(g.h)) {
      std::fill(dst + d + a, dst + d + b, T(0));
      return;
    }
    const ssize lo = std::clamp(t.lo, a, b), hi = std::clamp(t.hi, lo, b);
    std::fill(dst + d + a, dst + d + lo, T(0));
    const T* xr = xc + hin * g.w;
    if (g.sw == 1) {
      if (hi > lo) std::memcpy(dst + d + lo, xr + lo + t.off, (hi - lo) * sizeof(T));
    } else if (g.sw == 2) {
      if (hi > lo) copy_every_other(dst + d + lo, xr + lo * 2 + t.off, hi - lo);
    } else {
      for (ssize jw = lo; jw < hi; ++jw) dst[d + jw] = xr[jw * g.sw + t.off];
    }
    std::fill(dst + d + hi, dst + d + b, T(0));
  });
}

// The adjoint: dxc[...] += src[jj] at every in-bounds tap of row k (padding taps are dropped).
template <typename T>
inline void col2im_row(const ConvGeo& g, T* dxc, const RowTap& t, ssize j0, ssize nb, const T* src) {
  for_row_runs(g, j0, nb, [&](ssize i, ssize a, ssize b, ssize d) {
    const ssize hin = i * g.sh + t.hoff;
    if (static_cast<size_t>(hin) >= static_cast<size_t>(g.h)) return;
    const ssize lo = std::clamp(t.lo, a, b), hi = std::clamp(t.hi, lo, b);
    T* xr = dxc + hin * g.w;
    if (g.sw == 1) {
      for (ssize jw = lo; jw < hi; ++jw) xr[jw + t.off] += src[d + jw];
    } else if (g.sw == 2) {
      if (hi > lo) add_every_other(xr + lo * 2 + t.off, src + d + lo, hi - lo);
    } else {
      for (ssize jw = lo; jw < hi; ++jw) xr[jw * g.sw + t.off] += src[d + jw];
    }
  });
}

// One task's zero-padded input slab (the weight gradient's and the slab forward's), split by column
// phase: phase ph, row sr, column u holds x[c, i0 * sh - pt + sr, u * sw + ph - pl] (zero outside the
// input). Im2col row (c, p, q) over output row ii is then the contiguous run slab[(q * dw) % sw][c]
// [ii * sh + p * dh][(q * dw) / sw + jw], jw < ow: the GEMMs read it in place, no im2col copy.
struct Slab {
  ssize rows, cols, plane;  // rows and columns of one channel, values per phase
};

inline Slab slab_geometry(const ConvGeo& g, ssize R) {
  const ssize rows = (R - 1) * g.sh + (g.kh - 1) * g.dh + 1, cols = g.ow + (g.kw - 1) * g.dw / g.sw;
  return {rows, cols, g.cg() * rows * cols};
}

// Where im2col row k = (c, p, q) starts in a task's slab: its output row 0, column 0 (the weight
// gradient's A rows and the slab forward's per-tap offsets).
inline ssize slab_tap_offset(const ConvGeo& g, const Slab& sl, ssize k) {
  const ssize c = k / (g.kh * g.kw), p = (k / g.kw) % g.kh, shift = (k % g.kw) * g.dw;
  return (shift % g.sw) * sl.plane + (c * sl.rows + p * g.dh) * sl.cols + shift / g.sw;
}

template <typename T>
void fill_slab(const ConvGeo& g, const Slab& sl, const T* xg, ssize i0, ssize rows, T* slab) {
  for (ssize ph = 0; ph < g.sw; ++ph) {
    // valid u: 0 <= u * sw + ph - pl < w
    const ssize off = ph - g.pl;
    const ssize lo = std::min(sl.cols, off >= 0 ? ssize(0) : (-off + g.sw - 1) / g.sw);
    const ssize hi = std::max(lo, off > g.w - 1 ? ssize(0) : std::min(sl.cols, (g.w - 1 - off) / g.sw + 1));
    for (ssize c = 0; c < g.cg(); ++c)
      for (ssize sr = 0; sr < rows; ++sr) {
        T* row = slab + ph * sl.plane + (c * sl.rows + sr) * sl.cols;
        const ssize hin = i0 * g.sh - g.pt + sr;
        if (static_cast<size_t>(hin) >= static_cast<size_t>(g.h)) {
          std::fill(row, row + sl.cols, T(0));
          continue;
        }
        const T* xr = xg + (c * g.h + hin) * g.w;
        std::fill(row, row + lo, T(0));
        if (g.sw == 1)  // a plain copy (a scalar loop with a runtime stride of 1 took ~5% of the backward)
          std::copy(xr + lo + off, xr + hi + off, row + lo);
        else if (g.sw == 2)
          copy_every_other(row + lo, xr + lo * 2 + off, hi - lo);
        else
          for (ssize u = lo; u < hi; ++u) row[u] = xr[u * g.sw + off];
        std::fill(row + hi, row + sl.cols, T(0));
      }
  }
}

}  // namespace tinyml_conv
