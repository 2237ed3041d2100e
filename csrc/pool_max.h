// max_pool2d's kernels (csrc/pool.cpp binds them): y = max over the window, a NaN takes over, the
// first max on ties, idx = h * W + w of the winner (-1 for a window of padding only); the backward
// adds dy at idx. The common 2x2 stride-2 window without padding has a path of its own both ways.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "common.h"
#include "simd_math.h"
#include "stream_store.h"  // Prefetch

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

// Eight outputs at a time of the 2x2 stride-2 paths below: x/dx rows as 16-element vectors, y, dy
// and the window offsets as 8-element ones. The offsets (0, 1, w, w + 1 inside the window) live in
// integers of T's width (I), so that a comparison of T lanes and a select on offsets share one mask
// layout; they are widened to the int64 indices only when stored, and the backward narrows them
// only after checking they lie in [0, w + 1] (so the narrowing is exact).
template <typename T>
struct Lanes8 {
  typedef T v __attribute__((vector_size(8 * sizeof(T))));
  typedef T v16 __attribute__((vector_size(16 * sizeof(T))));
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef I vi __attribute__((vector_size(8 * sizeof(T))));
};
typedef int64_t i64x8 __attribute__((vector_size(64)));
typedef uint64_t u64x8 __attribute__((vector_size(64)));
constexpr i64x8 kEvenOffsets = {0, 2, 4, 6, 8, 10, 12, 14};
// Widest plane row the 2x2 paths take: offsets up to w + 1 must fit the int32 lanes.
constexpr ssize kMaxLaneWidth = ssize(1) << 30;

// 2x2 windows, stride 2, no padding or dilation, every window inside the plane: one pass that reads
// each input once and writes y and idx once, the same comparisons in the same order as below.
//
// left: planes from this one to the end of the thread's chunk (0: a small call), whose x, y and idx
// are asked for kPrefetchAhead bytes ahead of the rows being done (stream_store.h Prefetch; y and idx
// for writing). Streaming stores for y and idx (stream_store.h) were measured too and not kept:
// docs/cpu_speed.md "Session 13".
template <typename T>
TINYML_CLONES void max_pool_fwd_2x2(const T* __restrict xp, T* __restrict y, int64_t* __restrict idx, ssize w,
                                    ssize oh, ssize ow, ssize left) {
  using V = typename Lanes8<T>::v;
  using V16 = typename Lanes8<T>::v16;
  using Vi = typename Lanes8<T>::vi;
  using I = typename Lanes8<T>::I;
  // x's rows in use: 2 oh of the plane's h >= 2 oh (the prefetch stops short of an odd last row)
  const ssize x_plane = 2 * oh * w * ssize(sizeof(T)), x_row = 2 * w * ssize(sizeof(T));
  tinyml::Prefetch<0> px(xp, left * x_plane);
  tinyml::Prefetch<1> py(y, left * oh * ow * ssize(sizeof(T)));
  tinyml::Prefetch<1> pi(idx, left * oh * ow * ssize(sizeof(int64_t)));
  for (ssize i = 0; i < oh; ++i) {
    if (left) {
      px.ahead((i + 1) * x_row + tinyml::kPrefetchAhead);
      py.ahead((i + 1) * ow * ssize(sizeof(T)) + tinyml::kPrefetchAhead / 2);
      pi.ahead((i + 1) * ow * ssize(sizeof(int64_t)) + tinyml::kPrefetchAhead);
    }
    const T* r0 = xp + 2 * i * w;
    const T* r1 = r0 + w;
    T* yr = y + i * ow;
    int64_t* ir = idx + i * ow;
    const int64_t base = 2 * i * w;
    // whole vectors, the last one overlapping the one before (it rewrites the same values)
    for (ssize j8 = 0; ow >= 8 && j8 < ow; j8 += 8) {
      const ssize j = std::min(j8, ow - 8);
      V16 a, b;
      std::memcpy(&a, r0 + 2 * j, sizeof a);
      std::memcpy(&b, r1 + 2 * j, sizeof b);
      const V v1 = __builtin_shufflevector(a, a, 1, 3, 5, 7, 9, 11, 13, 15);
      const V v2 = __builtin_shufflevector(b, b, 0, 2, 4, 6, 8, 10, 12, 14);
      const V v3 = __builtin_shufflevector(b, b, 1, 3, 5, 7, 9, 11, 13, 15);
      V best = __builtin_shufflevector(a, a, 0, 2, 4, 6, 8, 10, 12, 14);
      Vi c = {};
      auto t = (v1 > best) | (v1 != v1);  // v != v: NaN takes over
      best = t ? v1 : best;
      c = t ? Vi{} + 1 : c;
      t = (v2 > best) | (v2 != v2);
      best = t ? v2 : best;
      c = t ? Vi{} + static_cast<I>(w) : c;
      t = (v3 > best) | (v3 != v3);
      best = t ? v3 : best;
      c = t ? Vi{} + static_cast<I>(w + 1) : c;
      const i64x8 at = __builtin_convertvector(c, i64x8) + kEvenOffsets + (base + 2 * j);
      std::memcpy(yr + j, &best, sizeof best);
      std::memcpy(ir + j, &at, sizeof at);
    }
    for (ssize j = 0; ow < 8 && j < ow; ++j) {
      const T v0 = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];
      T b = v0;
      int64_t c = 0;
      bool t = v1 > b || v1 != v1;
      b = t ? v1 : b, c = t ? 1 : c;
      t = v2 > b || v2 != v2;
      b = t ? v2 : b, c = t ? w : c;
      t = v3 > b || v3 != v3;
      b = t ? v3 : b, c = t ? w + 1 : c;
      yr[j] = b;
      ir[j] = base + 2 * j + c;
    }
  }
}

// The backward of that pooling as a gather: each input element lies in at most one window, so
// dx is written once, 0 + dy where the window's index points at it (0 + dy: the bits of the
// scatter's sum, -0 included) and 0 elsewhere, with no zero-fill pass before. Returns false, with
// the plane partly written, if some index is not inside its own window (a pooling of another
// geometry with the same output size): the caller then scatters.
// left: as the forward's, for dy, idx and dx.
template <typename T>
TINYML_CLONES bool max_pool_bwd_2x2(const T* __restrict dy, const int64_t* __restrict idx, T* __restrict dx, ssize h,
                                    ssize w, ssize oh, ssize ow, ssize left) {
  using V = typename Lanes8<T>::v;
  using V16 = typename Lanes8<T>::v16;
  using Vi = typename Lanes8<T>::vi;
  using I = typename Lanes8<T>::I;
  const I wi = static_cast<I>(w);
  tinyml::Prefetch<0> pg(dy, left * oh * ow * ssize(sizeof(T)));
  tinyml::Prefetch<0> pi(idx, left * oh * ow * ssize(sizeof(int64_t)));
  tinyml::Prefetch<1> pd(dx, left * h * w * ssize(sizeof(T)));
  for (ssize i = 0; i < oh; ++i) {
    if (left) {
      pg.ahead((i + 1) * ow * ssize(sizeof(T)) + tinyml::kPrefetchAhead / 2);
      pi.ahead((i + 1) * ow * ssize(sizeof(int64_t)) + tinyml::kPrefetchAhead);
      pd.ahead((i + 1) * 2 * w * ssize(sizeof(T)) + tinyml::kPrefetchAhead);
    }
    const T* g = dy + i * ow;
    const int64_t* ir = idx + i * ow;
    T* r0 = dx + 2 * i * w;
    T* r1 = r0 + w;
    const int64_t base = 2 * i * w;
    u64x8 far = {};  // offsets outside [0, w + 1]
    Vi missed = {};   // offsets inside it but not one of the window's four
    for (ssize j8 = 0; ow >= 8 && j8 < ow; j8 += 8) {  // the last vector overlaps, as in the forward
      const ssize j = std::min(j8, ow - 8);
      V gv;
      i64x8 at;
      std::memcpy(&gv, g + j, sizeof gv);
      std::memcpy(&at, ir + j, sizeof at);
      const i64x8 c64 = at - kEvenOffsets - (base + 2 * j);
      u64x8 cu;
      std::memcpy(&cu, &c64, sizeof cu);
      far |= cu > static_cast<uint64_t>(w + 1);
      const Vi c = __builtin_convertvector(c64, Vi);  // exact where far is not set
      const Vi m0 = c == 0, m1 = c == 1, m2 = c == wi, m3 = c == wi + 1;
      missed |= ~(m0 | m1 | m2 | m3);
      const V v = T(0) + gv, z = {};
      const V o0 = m0 ? v : z, o1 = m1 ? v : z, o2 = m2 ? v : z, o3 = m3 ? v : z;
      const V16 top = __builtin_shufflevector(o0, o1, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
      const V16 bottom = __builtin_shufflevector(o2, o3, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
      std::memcpy(r0 + 2 * j, &top, sizeof top);
      std::memcpy(r1 + 2 * j, &bottom, sizeof bottom);
    }
    bool fits = true;
    for (int l = 0; l < 8; ++l) fits &= far[l] == 0 && missed[l] == 0;
    for (ssize j = 0; ow < 8 && j < ow; ++j) {
      const int64_t c = ir[j] - (base + 2 * j);
      const T v = T(0) + g[j];
      r0[2 * j] = c == 0 ? v : T(0);
      r0[2 * j + 1] = c == 1 ? v : T(0);
      r1[2 * j] = c == w ? v : T(0);
      r1[2 * j + 1] = c == w + 1 ? v : T(0);
      fits &= (c == 0) | (c == 1) | (c == w) | (c == w + 1);
    }
    if (!fits) return false;
    for (ssize q = 2 * ow; q < w; ++q) r0[q] = r1[q] = T(0);  // a last odd column: in no window
  }
  std::fill(dx + 2 * oh * w, dx + h * w, T(0));  // a last odd row
  return true;
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
  const bool two_by_two = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.pt == 0 && g.pl == 0 && g.dh == 1 &&
                          g.dw == 1 && 2 * g.oh <= g.h && 2 * g.ow <= g.w && g.w < kMaxLaneWidth;
  const ssize moved = planes * (g.h * g.w * static_cast<ssize>(sizeof(T)) +
                                g.oh * g.ow * static_cast<ssize>(sizeof(T) + sizeof(int64_t)));
  const bool far = moved >= tinyml::kPrefetchMinBytes;  // x, y, idx: ask for the lines ahead
#pragma omp parallel for schedule(dynamic, 4) if (planes * g.oh * g.ow * g.kh * g.kw > 32768)
  for (ssize pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * g.h * g.w;
    if (two_by_two) {
      const ssize left = far ? std::min(planes, (pl / 4 + 1) * 4) - pl : 0;  // to the end of the chunk
      max_pool_fwd_2x2(xp, y + pl * g.oh * g.ow, idx + pl * g.oh * g.ow, g.w, g.oh, g.ow, left);
      continue;
    }
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
