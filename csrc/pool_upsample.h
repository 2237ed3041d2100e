// upsample2d's kernels (csrc/pool.cpp binds them), on (planes, H, W) slices, OpenMP over planes.
//
//   y[i, j] = a_i (c_j x[h0_i, w0_j] + d_j x[h0_i, w1_j]) + b_i (c_j x[h1_i, w0_j] + d_j x[h1_i, w1_j])
//
// with a = 1 - lh, b = lh, c = 1 - lw, d = lw (nearest: one tap per axis). Bilinear runs separably:
// the bracketed row interpolation R[h, j] once per input row (H x ow gathers instead of oh x ow x 4),
// then each output row as a_i R[h0_i] + b_i R[h1_i], vectorised over the row: the same products and
// sums in the same order as the per-output formula. Its backward is the adjoint the same way round:
// rows of dy folded into H rows (vectorised), then each input column gathered from its sources.
// Nearest with an integer factor on both axes (every output column j reads j / s) copies each
// input element s times along the row and the row s times; its backward sums each s x s block in
// the order the scatter would (row by row, left to right), as a gather, written once.
// Planes go to threads dynamically, a few at a time: on a busy machine a thread that is not
// scheduled does not hold up the others (each plane's result is the same whichever thread runs it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"
#include "simd_math.h"

namespace tinyml_pool {

using ssize = py::ssize_t;

// Two taps per output row/column: (i0, i1, weight of i1); nearest passes i1 = i0, weight 0.
template <typename T>
struct Taps {
  const int64_t *h0, *h1, *w0, *w1;
  const T *lh, *lw;
  // One tap per axis (the nearest modes), a plain gather / scatter. Bilinear keeps both taps even
  // where a weight is 0, as PyTorch's formula does: 0 * inf is NaN there.
  bool nearest;
};

// The integer factor s of a nearest axis whose taps are i / s for every output i (0 if not).
inline ssize nearest_factor(const int64_t* t, ssize out, ssize in) {
  if (out % in) return 0;
  const ssize s = out / in;
  for (ssize i = 0; i < out; ++i)
    if (t[i] != i / s) return 0;
  return s;
}

template <typename T>
TINYML_CLONES void nearest_fwd_plane(const T* __restrict xp, T* __restrict yp, ssize h, ssize w, ssize sh, ssize sw) {
  const ssize ow = w * sw;
  for (ssize r = 0; r < h; ++r) {
    T* y0 = yp + r * sh * ow;
    const T* xr = xp + r * w;
    if (sw == 2) {
      for (ssize q = 0; q < w; ++q) y0[2 * q] = y0[2 * q + 1] = xr[q];
    } else {
      for (ssize q = 0; q < w; ++q)
        for (ssize s = 0; s < sw; ++s) y0[q * sw + s] = xr[q];
    }
    for (ssize s = 1; s < sh; ++s) std::copy(y0, y0 + ow, y0 + s * ow);
  }
}

template <typename T>
TINYML_CLONES void nearest_bwd_plane(const T* __restrict gp, T* __restrict dp, ssize h, ssize w, ssize sh, ssize sw) {
  const ssize ow = w * sw;
  for (ssize r = 0; r < h; ++r) {
    T* d = dp + r * w;
    const T* g0 = gp + r * sh * ow;
    for (ssize q = 0; q < w; ++q) d[q] = T(0);
    for (ssize s = 0; s < sh; ++s) {  // output rows in order, each left to right: the scatter's order
      const T* g = g0 + s * ow;
      if (sw == 2) {
        for (ssize q = 0; q < w; ++q) d[q] = (d[q] + g[2 * q]) + g[2 * q + 1];
      } else {
        for (ssize q = 0; q < w; ++q)
          for (ssize t = 0; t < sw; ++t) d[q] += g[q * sw + t];
      }
    }
  }
}

template <typename T>
TINYML_CLONES void bilinear_rows_fwd(const T* __restrict xp, T* __restrict yp, T* __restrict R, ssize h, ssize w,
                                     ssize oh, ssize ow, const Taps<T>& k) {
  for (ssize r = 0; r < h; ++r) {  // R[r, j] = c_j x[r, w0_j] + d_j x[r, w1_j]
    const T* xr = xp + r * w;
    T* rr = R + r * ow;
    for (ssize j = 0; j < ow; ++j) {
      const T d = k.lw[j], c = T(1) - d;
      rr[j] = c * xr[k.w0[j]] + d * xr[k.w1[j]];
    }
  }
  for (ssize i = 0; i < oh; ++i) {
    const T* r0 = R + k.h0[i] * ow;
    const T* r1 = R + k.h1[i] * ow;
    const T b = k.lh[i], a = T(1) - b;
    T* yr = yp + i * ow;
    for (ssize j = 0; j < ow; ++j) yr[j] = a * r0[j] + b * r1[j];
  }
}

// The column taps inverted: input column q receives weight wt[e] * R[row, col[e]] for e in
// [first[q], first[q + 1]), listed in the order the scatter adds them (j ascending, w0 before w1), so
// the row pass of the backward can sum in registers instead of through a chain of stores.
template <typename T>
struct ColumnSources {
  std::vector<ssize> first, col;
  std::vector<T> wt;
  ColumnSources(const Taps<T>& k, ssize w, ssize ow) : first(w + 1, 0), col(2 * ow), wt(2 * ow) {
    for (ssize j = 0; j < ow; ++j) ++first[k.w0[j] + 1], ++first[k.w1[j] + 1];
    for (ssize q = 0; q < w; ++q) first[q + 1] += first[q];
    std::vector<ssize> at(first.begin(), first.end() - 1);
    for (ssize j = 0; j < ow; ++j) {
      col[at[k.w0[j]]] = j, wt[at[k.w0[j]]++] = T(1) - k.lw[j];
      col[at[k.w1[j]]] = j, wt[at[k.w1[j]]++] = k.lw[j];
    }
  }
};

template <typename T>
TINYML_CLONES void bilinear_rows_bwd(const T* __restrict gp, T* __restrict dp, T* __restrict R, ssize h, ssize w,
                                     ssize oh, ssize ow, const Taps<T>& k, const ColumnSources<T>& cs) {
  std::fill(R, R + h * ow, T(0));
  for (ssize i = 0; i < oh; ++i) {  // R[h0_i] += a_i dy[i], R[h1_i] += b_i dy[i]
    T* r0 = R + k.h0[i] * ow;
    T* r1 = R + k.h1[i] * ow;
    const T b = k.lh[i], a = T(1) - b;
    const T* g = gp + i * ow;
    for (ssize j = 0; j < ow; ++j) r0[j] += a * g[j];
    for (ssize j = 0; j < ow; ++j) r1[j] += b * g[j];
  }
  for (ssize r = 0; r < h; ++r) {  // dx[r, w0_j] += c_j R[r, j], dx[r, w1_j] += d_j R[r, j], gathered
    T* d = dp + r * w;
    const T* rr = R + r * ow;
    for (ssize q = 0; q < w; ++q) {
      T s = 0;
      for (ssize e = cs.first[q]; e < cs.first[q + 1]; ++e) s += cs.wt[e] * rr[cs.col[e]];
      d[q] = s;
    }
  }
}

template <typename T>
void upsample_fwd(const T* x, T* y, ssize planes, ssize h, ssize w, ssize oh, ssize ow, const Taps<T>& k) {
  const ssize sh = k.nearest ? nearest_factor(k.h0, oh, h) : 0, sw = k.nearest ? nearest_factor(k.w0, ow, w) : 0;
#pragma omp parallel if (planes * oh * ow > 32768)
  {
    std::vector<T> R(k.nearest ? 0 : h * ow);
#pragma omp for schedule(dynamic, 4)
    for (ssize pl = 0; pl < planes; ++pl) {
      const T* xp = x + pl * h * w;
      T* yp = y + pl * oh * ow;
      if (!k.nearest) {
        bilinear_rows_fwd(xp, yp, R.data(), h, w, oh, ow, k);
      } else if (sh && sw) {
        nearest_fwd_plane(xp, yp, h, w, sh, sw);
      } else {
        for (ssize i = 0; i < oh; ++i) {
          const T* r0 = xp + k.h0[i] * w;
          for (ssize j = 0; j < ow; ++j) yp[i * ow + j] = r0[k.w0[j]];
        }
      }
    }
  }
}

template <typename T>
void upsample_bwd(const T* dy, T* dx, ssize planes, ssize h, ssize w, ssize oh, ssize ow, const Taps<T>& k) {
  const ssize sh = k.nearest ? nearest_factor(k.h0, oh, h) : 0, sw = k.nearest ? nearest_factor(k.w0, ow, w) : 0;
  const ColumnSources<T> cs(k, k.nearest ? 0 : w, k.nearest ? 0 : ow);
#pragma omp parallel if (planes * oh * ow > 32768)
  {
    std::vector<T> R(k.nearest ? 0 : h * ow);
#pragma omp for schedule(dynamic, 4)
    for (ssize pl = 0; pl < planes; ++pl) {
      T* xp = dx + pl * h * w;
      const T* gp = dy + pl * oh * ow;
      if (!k.nearest) {
        bilinear_rows_bwd(gp, xp, R.data(), h, w, oh, ow, k, cs);
      } else if (sh && sw) {
        nearest_bwd_plane(gp, xp, h, w, sh, sw);
      } else {
        std::fill(xp, xp + h * w, T(0));
        for (ssize i = 0; i < oh; ++i) {
          T* r0 = xp + k.h0[i] * w;
          for (ssize j = 0; j < ow; ++j) r0[k.w0[j]] += gp[i * ow + j];
        }
      }
    }
  }
}

}  // namespace tinyml_pool
