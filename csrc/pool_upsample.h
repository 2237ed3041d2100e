// upsample2d's kernels (csrc/pool.cpp binds them), on (planes, H, W) slices, OpenMP over planes.
//
//   y[i, j] = a_i (c_j x[h0_i, w0_j] + d_j x[h0_i, w1_j]) + b_i (c_j x[h1_i, w0_j] + d_j x[h1_i, w1_j])
//
// with a = 1 - lh, b = lh, c = 1 - lw, d = lw (nearest: one tap per axis). Bilinear runs separably:
// the bracketed row interpolation R[h, j] once per input row (H x ow gathers instead of oh x ow x 4),
// then each output row as a_i R[h0_i] + b_i R[h1_i], vectorised over the row: the same products and
// sums in the same order as the per-output formula. Its backward is the adjoint the same way round:
// each input row gathered from its source rows of dy (four vectors of columns at a time, the sums in
// registers, in the order the scatter adds them), then each input column from its sources. Both ask
// for the lines they will read or write a few KiB ahead (Prefetch).
// Nearest with an integer factor on both axes (every output column j reads j / s) copies each
// input element s times along the row and the row s times; its backward sums each s x s block in
// the order the scatter would (row by row, left to right), as a gather, written once. Both ask for
// their input (and the forward for y) ahead, and the forward streams y out of an L1 buffer when the
// call writes at least stream_min_bytes() (stream_store.h).
// Planes go to threads dynamically, kChunk at a time: on a busy machine a thread that is not
// scheduled does not hold up the others (each plane's result is the same whichever thread runs it).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "simd_math.h"
#include "stream_store.h"

namespace tinyml_pool {

// py::ssize_t's type (pool_max.h, pool.cpp), named without pybind11 so that tests/ops/upsample_check.cpp
// can compile these kernels for each instruction set without Python
using ssize = std::ptrdiff_t;

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

// Software prefetch (Prefetch, stream_store.h): on this VM (Zen 5) the bilinear kernels ran as their
// compute time plus their memory time, not the larger of the two, until they asked for their lines a
// few KiB ahead (docs/cpu_speed.md, session 12).
using tinyml::Prefetch;
constexpr ssize kAhead = tinyml::kPrefetchAhead;  // dy in the backward, y in the forward
constexpr ssize kChunk = 4;  // planes per OpenMP chunk; the prefetches stay inside a thread's chunk
constexpr ssize kPrefetchMin = tinyml::kPrefetchMinBytes;  // calls that move less ask for nothing

// Elements of nearest_fwd_plane's stack buffer for a streamed y: the sh output rows of input rows
// are built there until they hold kStreamChunkBytes (stream_store.h), then streamed out together;
// calls whose sh * ow exceeds it keep plain stores.
constexpr ssize kStreamRows = 2048;

// stream: y goes out with streaming stores (stream_store.h; the caller's call writes >=
// stream_min_bytes() and sh * ow <= kStreamRows), the same values. left: planes from this one to the end
// of the thread's chunk (0: a small call), whose x (and y, when not streamed) are asked for ahead.
template <typename T>
TINYML_CLONES void nearest_fwd_plane(const T* __restrict xp, T* __restrict yp, ssize h, ssize w, ssize sh, ssize sw,
                                     bool stream, ssize left) {
  const ssize ow = w * sw, x_row = w * static_cast<ssize>(sizeof(T)), y_rows = sh * ow * static_cast<ssize>(sizeof(T));
  alignas(64) T buf[kStreamRows];
  ssize r0 = 0;  // the first input row whose output rows are in buf
  Prefetch<0> px(xp, left * h * x_row);
  Prefetch<1> py(yp, stream ? 0 : left * h * y_rows);
  for (ssize r = 0; r < h; ++r) {
    if (left) {
      px.ahead((r + 1) * x_row + kAhead / 2);
      py.ahead((r + 1) * y_rows + kAhead);
    }
    T* y0 = stream ? buf + (r - r0) * sh * ow : yp + r * sh * ow;
    const T* xr = xp + r * w;
    if (sw == 2) {
      for (ssize q = 0; q < w; ++q) y0[2 * q] = y0[2 * q + 1] = xr[q];
    } else {
      for (ssize q = 0; q < w; ++q)
        for (ssize s = 0; s < sw; ++s) y0[q * sw + s] = xr[q];
    }
    for (ssize s = 1; s < sh; ++s) std::copy(y0, y0 + ow, y0 + s * ow);
    if (stream && (r + 1 == h || (r + 2 - r0) * sh * ow > kStreamRows ||
                   (r + 1 - r0) * sh * ow * static_cast<ssize>(sizeof(T)) >= tinyml::kStreamChunkBytes)) {
      tinyml::stream_out(yp + r0 * sh * ow, buf, (r + 1 - r0) * sh * ow);
      r0 = r + 1;
    }
  }
  if (stream) tinyml::stream_sfence();
}

// left: as nearest_fwd_plane's, for dy.
template <typename T>
TINYML_CLONES void nearest_bwd_plane(const T* __restrict gp, T* __restrict dp, ssize h, ssize w, ssize sh, ssize sw,
                                     ssize left) {
  const ssize ow = w * sw, g_rows = sh * ow * static_cast<ssize>(sizeof(T));
  Prefetch<0> pg(gp, left * h * g_rows);
  for (ssize r = 0; r < h; ++r) {
    if (left) pg.ahead((r + 1) * g_rows + kAhead);
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

// Whether the column taps are the 2x upscale's (align_corners=False): w0_j = (j - 1) / 2 and
// w1_j = w0_j + 1 for 0 < j < ow - 1. Then lanes j .. j + NR - 1 (j odd) read x[(j - 1) / 2 + l / 2]
// and the next column: a load and a lane-doubling shuffle each, not a gather per output.
template <typename T>
bool stencil_columns(const Taps<T>& k, ssize w, ssize ow) {
  if (k.nearest || ow != 2 * w || w < 4) return false;
  for (ssize j = 1; j + 1 < ow; ++j)
    if (k.w0[j] != (j - 1) / 2 || k.w1[j] != k.w0[j] + 1) return false;
  return true;
}

template <typename T>
TINYML_CLONES void bilinear_rows_fwd(const T* __restrict xp, T* __restrict yp, T* __restrict R, ssize h, ssize w,
                                     ssize oh, ssize ow, const Taps<T>& k, bool stencil, ssize x_left, ssize y_left) {
  typedef T V __attribute__((vector_size(64)));
  typedef T H __attribute__((vector_size(32)));  // half a V: the columns one V of outputs reads
  constexpr int NR = 64 / sizeof(T);
  for (ssize r = 0; r < h; ++r) {  // R[r, j] = c_j x[r, w0_j] + d_j x[r, w1_j]
    const T* xr = xp + r * w;
    T* rr = R + r * ow;
    ssize j = 0;
    if (stencil) {
      // lanes j .. j + NR - 1 (j odd, j + NR <= ow - 1) read x[(j - 1) / 2 + l / 2] and the next
      // column: NR / 2 + 1 columns from (j - 1) / 2, inside the row (ow = 2 w); the last vector
      // ends at ow - 2, overlapping the one before (it rewrites the same values)
      auto lanes = [&](ssize j0) {
        H x0, x1;
        V d, u0, u1;
        std::memcpy(&x0, xr + (j0 - 1) / 2, sizeof x0);
        std::memcpy(&x1, xr + (j0 - 1) / 2 + 1, sizeof x1);
        std::memcpy(&d, k.lw + j0, sizeof d);
        if constexpr (sizeof(T) == 4) {  // lane l of u is x[l / 2]
          u0 = __builtin_shufflevector(x0, x0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
          u1 = __builtin_shufflevector(x1, x1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        } else {
          u0 = __builtin_shufflevector(x0, x0, 0, 0, 1, 1, 2, 2, 3, 3);
          u1 = __builtin_shufflevector(x1, x1, 0, 0, 1, 1, 2, 2, 3, 3);
        }
        const V c = T(1) - d;
        const V v = c * u0 + d * u1;
        std::memcpy(rr + j0, &v, sizeof v);
      };
      rr[0] = (T(1) - k.lw[0]) * xr[k.w0[0]] + k.lw[0] * xr[k.w1[0]];
      for (j = 1; j + NR <= ow - 1; j += NR) lanes(j);
      if (j > 1 && j < ow - 1) lanes(ow - 1 - NR), j = ow - 1;
    }
    for (; j < ow; ++j) {
      const T d = k.lw[j], c = T(1) - d;
      rr[j] = c * xr[k.w0[j]] + d * xr[k.w1[j]];
    }
  }
  auto out_row = [&](ssize i) {  // y[i] = a_i R[h0_i] + b_i R[h1_i]
    const T* r0 = R + k.h0[i] * ow;
    const T* r1 = R + k.h1[i] * ow;
    const T b = k.lh[i], a = T(1) - b;
    T* yr = yp + i * ow;
    for (ssize j = 0; j < ow; ++j) yr[j] = a * r0[j] + b * r1[j];
  };
  if (x_left == 0) {  // nothing to ask for (upsample_fwd: a small call)
    for (ssize i = 0; i < oh; ++i) out_row(i);
    return;
  }
  // x_left, y_left: elements from xp, yp to the end of this thread's chunk of planes. While the output
  // rows are written, the next plane's x is asked for (a share per row) and y's lines kAhead ahead.
  const ssize x_plane = h * w * static_cast<ssize>(sizeof(T)), y_row = ow * static_cast<ssize>(sizeof(T));
  Prefetch<0> next_x(xp, x_left * static_cast<ssize>(sizeof(T)), x_plane);
  Prefetch<1> next_y(yp, y_left * static_cast<ssize>(sizeof(T)));
  for (ssize i = 0; i < oh; ++i) {
    next_x.ahead(x_plane + (i + 1) * x_plane / oh);
    next_y.ahead((i + 1) * y_row + kAhead);
    out_row(i);
  }
}

// One axis's taps inverted: input position q receives weight wt[e] times output position col[e]
// for e in [first[q], first[q + 1]), listed in the order the scatter adds them (output position
// ascending, the first tap before the second), so that the backward can sum in registers instead of
// through a chain of stores: built from the column taps (w0, w1, lw) for the column pass and from
// the row taps (h0, h1, lh) for the row pass.
//
// The 2x upscale (align_corners=False) has a fixed stencil: every input column q but the first two
// and the last receives exactly the output columns 2q - 1, 2q, 2q + 1, 2q + 2, in that order (column
// 1 also gets output column 0, with weight 0). Where the
// lists show that (`stencil`, asked for on the columns only), w4[e * w + q] holds the weight of
// source e, and the interior columns are summed a vector of columns at a time, in the same order
// (bilinear_rows_bwd; float32).
template <typename T>
struct ColumnSources {
  std::vector<ssize> first, col;
  std::vector<T> wt, w4;
  bool stencil = false;
  ColumnSources(const int64_t* t0, const int64_t* t1, const T* l, ssize w, ssize ow, bool want_stencil)
      : first(w + 1, 0), col(2 * ow), wt(2 * ow) {
    for (ssize j = 0; j < ow; ++j) ++first[t0[j] + 1], ++first[t1[j] + 1];
    for (ssize q = 0; q < w; ++q) first[q + 1] += first[q];
    std::vector<ssize> at(first.begin(), first.end() - 1);
    for (ssize j = 0; j < ow; ++j) {
      col[at[t0[j]]] = j, wt[at[t0[j]]++] = T(1) - l[j];
      col[at[t1[j]]] = j, wt[at[t1[j]]++] = l[j];
    }
    // float32 only: the float64 build of the list loop below sums without FMA contraction (measured:
    // its bits match an unfused multiply-add chain), and the vector form would change its rounding
    stencil = want_stencil && sizeof(T) == 4 && w >= 4 && ow == 2 * w;
    for (ssize q = 2; stencil && q + 1 < w; ++q) {
      stencil = first[q + 1] - first[q] == 4;
      for (int e = 0; stencil && e < 4; ++e) stencil = col[first[q] + e] == 2 * q - 1 + e;
    }
    if (stencil) {
      w4.assign(4 * w, T(0));
      for (ssize q = 2; q + 1 < w; ++q)
        for (int e = 0; e < 4; ++e) w4[e * w + q] = wt[first[q] + e];
    }
  }
};

// dx[q] for q in [q0, q1) of one row from the sources' lists: 0 + the products in list order.
template <typename T>
inline void gather_columns(const ColumnSources<T>& cs, const T* __restrict rr, T* __restrict d, ssize q0, ssize q1) {
  for (ssize q = q0; q < q1; ++q) {
    T s = 0;
    for (ssize e = cs.first[q]; e < cs.first[q + 1]; ++e) s += cs.wt[e] * rr[cs.col[e]];
    d[q] = s;
  }
}

template <typename T>
TINYML_CLONES void bilinear_rows_bwd(const T* __restrict gp, T* __restrict dp, T* __restrict R, ssize h, ssize w,
                                     ssize oh, ssize ow, const Taps<T>& k, const ColumnSources<T>& rs,
                                     const ColumnSources<T>& cs, ssize g_left) {
  typedef T V __attribute__((vector_size(64)));
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef I Vi __attribute__((vector_size(64)));
  constexpr int NR = 64 / sizeof(T);
  Vi even;
  for (int l = 0; l < NR; ++l) even[l] = 2 * l;
  Prefetch<0> next_g(gp, g_left * static_cast<ssize>(sizeof(T)));  // g_left: to the end of the chunk
  if (ow < NR) {  // rows shorter than a vector: scattered into all h rows of R (h x ow), as before
    std::fill(R, R + h * ow, T(0));
    for (ssize i = 0; i < oh; ++i) {  // R[h0_i] += a_i dy[i], R[h1_i] += b_i dy[i]
      T* r0 = R + k.h0[i] * ow;
      T* r1 = R + k.h1[i] * ow;
      const T b = k.lh[i], a = T(1) - b;
      const T* g = gp + i * ow;
      for (ssize j = 0; j < ow; ++j) r0[j] += a * g[j];
      for (ssize j = 0; j < ow; ++j) r1[j] += b * g[j];
    }
  }
  for (ssize r = 0; r < h; ++r) {
    T* rr = ow < NR ? R + r * ow : R;
    const ssize e0 = rs.first[r], e1 = rs.first[r + 1];
    if (e1 > e0) next_g.ahead((rs.col[e1 - 1] + 1) * ow * static_cast<ssize>(sizeof(T)) + kAhead);
    // NB vectors of columns from j0, the sums in registers: the sources outer, so that each source
    // row's pointer and weight are read once per NB vectors and the NB sums are independent chains
    auto sum_rows = [&](ssize j0, auto nb) {
      constexpr int NB = decltype(nb)::value;
      V s[NB] = {};
      for (ssize e = e0; e < e1; ++e) {
        const T* g = gp + rs.col[e] * ow + j0;
        const T wt = rs.wt[e];
#pragma GCC unroll 8
        for (int b = 0; b < NB; ++b) {
          V v;
          std::memcpy(&v, g + b * NR, sizeof v);
          s[b] += wt * v;
        }
      }
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) std::memcpy(rr + j0 + b * NR, &s[b], sizeof s[b]);
    };
    // rows of a vector or more: R[r] = 0 + the a_i dy[i] (h0_i = r) and b_i dy[i] (h1_i = r) in the
    // scatter's order (i ascending, the h0 tap first), gathered from the rows' sources into one row
    if (ow >= NR) {
      ssize j = 0;
      for (; j + 4 * NR <= ow; j += 4 * NR) sum_rows(j, std::integral_constant<int, 4>());
      for (; j + NR <= ow; j += NR) sum_rows(j, std::integral_constant<int, 1>());
      if (j < ow) sum_rows(ow - NR, std::integral_constant<int, 1>());  // the last vector overlaps
    }
    // dx[r, w0_j] += c_j R[r, j], dx[r, w1_j] += d_j R[r, j], gathered
    T* d = dp + r * w;
    if (!cs.stencil) {
      gather_columns(cs, rr, d, 0, w);
      continue;
    }
    // lanes q .. q + NR - 1 read R[2q - 1 + e + 2l]: two loads and an even-lane shuffle per source e;
    // the last lane's reads end at 2q + 2 NR - 2 + e <= ow - 1 while q + NR <= w - 1
    gather_columns(cs, rr, d, 0, 2);
    auto sum_columns = [&](ssize q0) {
      V s = {};
#pragma GCC unroll 4
      for (int e = 0; e < 4; ++e) {
        V lo, hi, wt;
        std::memcpy(&lo, rr + 2 * q0 - 1 + e, sizeof lo);
        std::memcpy(&hi, rr + 2 * q0 - 1 + e + NR, sizeof hi);
        std::memcpy(&wt, cs.w4.data() + e * w + q0, sizeof wt);
        s += wt * __builtin_shuffle(lo, hi, even);
      }
      std::memcpy(d + q0, &s, sizeof s);
    };
    ssize q = 2;
    for (; q + NR <= w - 1; q += NR) sum_columns(q);
    if (q > 2 && q < w - 1) sum_columns(w - 1 - NR), q = w - 1;  // the last vector overlaps
    gather_columns(cs, rr, d, q, w);
  }
}

template <typename T>
void upsample_fwd(const T* x, T* y, ssize planes, ssize h, ssize w, ssize oh, ssize ow, const Taps<T>& k) {
  const ssize sh = k.nearest ? nearest_factor(k.h0, oh, h) : 0, sw = k.nearest ? nearest_factor(k.w0, ow, w) : 0;
  const bool stencil = stencil_columns(k, w, ow);
  const bool far = planes * (h * w + oh * ow) * static_cast<ssize>(sizeof(T)) >= kPrefetchMin;
  const bool stream = sh * ow <= kStreamRows && tinyml::stream_worth(planes * oh * ow * static_cast<ssize>(sizeof(T)));
#pragma omp parallel if (planes * oh * ow > 32768)
  {
    std::vector<T> R(k.nearest ? 0 : h * ow);
#pragma omp for schedule(dynamic, kChunk)
    for (ssize pl = 0; pl < planes; ++pl) {
      const T* xp = x + pl * h * w;
      T* yp = y + pl * oh * ow;
      const ssize left = far ? std::min(planes, (pl / kChunk + 1) * kChunk) - pl : 0;  // to the chunk's end
      if (!k.nearest) {
        bilinear_rows_fwd(xp, yp, R.data(), h, w, oh, ow, k, stencil, left * h * w, left * oh * ow);
      } else if (sh && sw) {
        nearest_fwd_plane(xp, yp, h, w, sh, sw, stream, left);
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
  const ColumnSources<T> cs(k.w0, k.w1, k.lw, k.nearest ? 0 : w, k.nearest ? 0 : ow, true);
  const ColumnSources<T> rs(k.h0, k.h1, k.lh, k.nearest ? 0 : h, k.nearest ? 0 : oh, false);
  const bool far = planes * (h * w + oh * ow) * static_cast<ssize>(sizeof(T)) >= kPrefetchMin;
#pragma omp parallel if (planes * oh * ow > 32768)
  {
    std::vector<T> R(k.nearest ? 0 : ow < 64 / static_cast<ssize>(sizeof(T)) ? h * ow : ow);
#pragma omp for schedule(dynamic, kChunk)
    for (ssize pl = 0; pl < planes; ++pl) {
      T* xp = dx + pl * h * w;
      const T* gp = dy + pl * oh * ow;
      const ssize left = far ? std::min(planes, (pl / kChunk + 1) * kChunk) - pl : 0;  // to the chunk's end
      if (!k.nearest) {
        bilinear_rows_bwd(gp, xp, R.data(), h, w, oh, ow, k, rs, cs, left * oh * ow);
      } else if (sh && sw) {
        nearest_bwd_plane(gp, xp, h, w, sh, sw, left);
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
