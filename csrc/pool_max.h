// max_pool2d's forward kernel (csrc/pool.cpp binds it): y = max over the window, a NaN takes over,
// the first max on ties, idx = h * W + w of the winner (-1 for a window of padding only).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"
#include "simd_math.h"

namespace tinyml_pool {

using ssize = py::ssize_t;

struct Geo {
  ssize c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow;
};

// One output of max_pool2d with every tap bounds-checked (the border of a padded pooling).
template <typename T>
inline void max_pool_one(const T* xp, T* y, int64_t* idx, ssize i, ssize j, const Geo& g) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t bi = -1;
  for (ssize p = 0; p < g.kh; ++p) {
    const ssize hin = i * g.sh - g.pt + p * g.dh;
    if (hin < 0 || hin >= g.h) continue;
    for (ssize q = 0; q < g.kw; ++q) {
      const ssize win = j * g.sw - g.pl + q * g.dw;
      if (win < 0 || win >= g.w) continue;
      const T v = xp[hin * g.w + win];
      if (bi < 0 || v > best || std::isnan(v)) {  // PyTorch's rule: a NaN always takes over
        best = v;
        bi = hin * g.w + win;
      }
    }
  }
  *y = best;
  *idx = bi;
}

// Each row of outputs: the columns whose windows lie inside the row go tap by tap over the whole
// column range with branch-free selects (vectorised over outputs); rows and columns whose windows
// reach into the padding take the checked path. Same comparisons, same order, same results.
template <typename T>
TINYML_CLONES void max_pool_fwd(const T* x, T* y, int64_t* idx, ssize planes, const Geo& g) {
  // interior columns: j*sw - pl >= 0 and j*sw - pl + (kw-1)*dw < w
  const ssize j_lo = std::min(g.ow, (g.pl + g.sw - 1) / g.sw);
  const ssize reach = g.w - 1 - (g.kw - 1) * g.dw + g.pl;  // j*sw <= reach
  const ssize j_hi = reach < 0 ? j_lo : std::max(j_lo, std::min(g.ow, reach / g.sw + 1));
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow * g.kh * g.kw > 32768)
  for (ssize pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * g.h * g.w;
    for (ssize i = 0; i < g.oh; ++i) {
      T* yr = y + (pl * g.oh + i) * g.ow;
      int64_t* ir = idx + (pl * g.oh + i) * g.ow;
      const ssize h0 = i * g.sh - g.pt;
      if (h0 < 0 || h0 + (g.kh - 1) * g.dh >= g.h || j_lo >= j_hi) {
        for (ssize j = 0; j < g.ow; ++j) max_pool_one(xp, yr + j, ir + j, i, j, g);
        continue;
      }
      for (ssize j = 0; j < j_lo; ++j) max_pool_one(xp, yr + j, ir + j, i, j, g);
      for (ssize j = j_hi; j < g.ow; ++j) max_pool_one(xp, yr + j, ir + j, i, j, g);
      for (ssize p = 0; p < g.kh; ++p) {
        const ssize hin = h0 + p * g.dh;
        const T* xr = xp + hin * g.w;
        for (ssize q = 0; q < g.kw; ++q) {
          const ssize off = q * g.dw - g.pl;
          if (p == 0 && q == 0) {
            for (ssize j = j_lo; j < j_hi; ++j) {
              yr[j] = xr[j * g.sw + off];
              ir[j] = hin * g.w + j * g.sw + off;
            }
            continue;
          }
          for (ssize j = j_lo; j < j_hi; ++j) {
            const T v = xr[j * g.sw + off];
            const bool take = v > yr[j] || v != v;  // v != v: NaN takes over
            yr[j] = take ? v : yr[j];
            ir[j] = take ? hin * g.w + j * g.sw + off : ir[j];
          }
        }
      }
    }
  }
}

}  // namespace tinyml_pool
