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

namespace tinyml_conv {

using ssize = py::ssize_t;

struct ConvGeo {
  ssize n, c, h, w, o, groups, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow;
  ssize cg() const { return c / groups; }
  ssize og() const { return o / groups; }
  ssize K() const { return cg() * kh * kw; }
  ssize L() const { return oh * ow; }
};

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
    } else if (g.sw == 2) {  // a constant stride: the compiler vectorises it (loads and a permute)
      for (ssize jw = lo; jw < hi; ++jw) dst[d + jw] = xr[jw * 2 + t.off];
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
    } else {
      for (ssize jw = lo; jw < hi; ++jw) xr[jw * g.sw + t.off] += src[d + jw];
    }
  });
}

}  // namespace tinyml_conv
