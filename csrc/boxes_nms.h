// Non-maximum suppression over (N, 4) xyxy boxes, float32 and float64, and the sweep index that merging
// (boxes_nmm.h) shares; no Python here (csrc/boxes.cpp binds both, tests/ops/boxes_nms_check.cpp drives
// them for the AVX-512 / AVX2 / baseline builds).
//
//   m(i, j) = inter / (area_i + area_j - inter)  (IoU)   or   inter / min(area_i, area_j)  (IoS),
//   inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)),  area = (x2 - x1) (y2 - y1),
//   a NaN side counting as 0. A match is m > t (exclusive, torchvision) or m >= t (inclusive, sahi,
//   where a denominator <= 0 gives m = 0). The reference is tinyml/backends/reference/boxes.py.
//
// t > 0 (the usual case): a match needs inter > 0, so only boxes with x2 > x1 and y2 > y1 can match;
// those are indexed by x1 (SweepIndex) and a kept box tests only the window of x1 that can overlap it,
// tightened for IoU by the bound below. t <= 0 matches disjoint boxes too: the dense path (nms_dense).
//
// Tightened IoU window. In exact arithmetic, IoU(p, q) >= t' implies w_i >= t' w_p and w_i >= t' w_q
// (w_i the intersection's width; union >= area_p = w_p h_p and h_i <= h_p, likewise for q), hence
//   x1_q <= x2_p - t' w_p   and   x1_q >= x1_p + t' w_p - min(max_w, w_p / t').
// The float IoU the kernels compute is within 16 ulp-sized relative errors of the exact one when p's
// area is a normal number (rounding of w, h, inter, the areas, the union and the quotient; the union
// has no cancellation as it is >= (area_p + area_q) / 2; a subnormal area_q or inter only adds an
// absolute error far below t area_p / union), so with t' = t (1 - 1e-4) the window holds
// every box a float m > t or m >= t can match. The bound is used only where it is safe: IoU, t >= 1e-3,
// p's area (in double) finite and above 1e8 times the smallest normal T; elsewhere the plain window
// [x1_p - max_w, x2_p) is used.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

// Each sweep driver is compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time, as the
// kernels with simd_math.h's TINYML_CLONES are. That header is not included on purpose: its
// fp-contract=fast pragma would fuse area_p + area_q - w * h into an FMA, and the results must stay
// equal to the reference's (the build's -std=c++17 keeps contraction off).
#if defined(__x86_64__) && defined(__linux__) && !defined(TINYML_NO_CLONES)
#define TINYML_BOX_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TINYML_BOX_CLONES
#endif

namespace tinyml {
namespace boxes {

using ssize = std::ptrdiff_t;

// min / max that return NaN when either operand is NaN, as numpy's np.minimum / np.maximum in the
// reference (std::min / std::max return their first operand when the second is NaN). Written as
// selects so that the loops still vectorise.
template <typename T>
inline T nan_min(T a, T b) {
  const T m = b < a ? b : a;
  return b != b ? b : m;
}
template <typename T>
inline T nan_max(T a, T b) {
  const T m = a < b ? b : a;
  return b != b ? b : m;
}

// Whether a pair matches, from its intersection and the metric's denominator: branch-free (integer
// masks), so the loops vectorise. zero_hits: what m = 0 gives (inclusive, den <= 0).
template <typename T, bool INCLUSIVE>
inline int32_t hit_of(T inter, T den, T t, int32_t zero_hits) {
  if (INCLUSIVE) {
    // the quotient where den <= 0 (inf, NaN) is masked off; dividing by the raw den keeps the loop free
    // of selects before the division, which baseline x86-64 (SSE2) does not vectorise
    const int32_t positive = den > 0;
    const int32_t quotient_hit = inter / den >= t;
    return (positive & quotient_hit) | ((1 - positive) & zero_hits);
  }
  return inter / den > t;
}

// The boxes as columns, in visiting order.
template <typename T>
struct Soa {
  std::vector<T> x1, y1, x2, y2, area;
  Soa(const T* b, const int64_t* order, ssize n) : x1(n), y1(n), x2(n), y2(n), area(n) {
    for (ssize k = 0; k < n; ++k) {
      const T* r = b + 4 * order[k];
      x1[k] = r[0], y1[k] = r[1], x2[k] = r[2], y2[k] = r[3];
      area[k] = (r[2] - r[0]) * (r[3] - r[1]);
    }
  }
  // Whether m(a, b) passes the threshold (positions in visiting order); NaN sides count as 0.
  bool match(ssize a, ssize b, T t, bool ios, bool inclusive) const {
    T w = nan_min(x2[a], x2[b]) - nan_max(x1[a], x1[b]);
    T h = nan_min(y2[a], y2[b]) - nan_max(y1[a], y1[b]);
    w = w > 0 ? w : T(0);
    h = h > 0 ? h : T(0);
    const T inter = w * h;
    const T den = ios ? nan_min(area[a], area[b]) : area[a] + area[b] - inter;
    const int32_t zero_hits = T(0) >= t;
    return inclusive ? hit_of<T, true>(inter, den, t, zero_hits) : hit_of<T, false>(inter, den, t, zero_hits);
  }
};

// The boxes that can intersect anything (x2 > x1 and y2 > y1: no NaN), sorted by x1, as their own
// columns, so a kept box's candidates are one contiguous, sequential range. The window's searches go
// through a table of m + 1 equal-width buckets over the keys (bucket b starts at e(b) = kmin + b step;
// table[b] = the first slot with key >= e(b)), then a branch-free binary search inside the bucket: a
// slot or two for spread boxes, log2 of the bucket for clustered ones (std::lower_bound's branches
// cost more than the candidate rows here).
template <typename T>
struct SweepIndex {
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<int32_t> pos;    // visiting position of each slot
  std::vector<double> key;     // x1 in double, for the window's searches
  std::vector<int32_t> slot;   // visiting position -> slot, -1: not indexed (intersects nothing)
  std::vector<int32_t> table;  // bucket -> first slot; table[nb + 1] = m
  double max_w = 0, kmin = 0, step = 0;
  int64_t nb = 0;  // buckets; 0: no table (search the whole index)

  SweepIndex(const Soa<T>& s, ssize n) : slot(n, -1) {
    std::vector<int32_t> by_x1;  // visiting positions, ascending
    for (ssize k = 0; k < n; ++k)
      if (s.x2[k] > s.x1[k] && s.y2[k] > s.y1[k]) {
        by_x1.push_back(static_cast<int32_t>(k));
        max_w = std::max(max_w, static_cast<double>(s.x2[k]) - static_cast<double>(s.x1[k]));
      }
    sort_by_x1(s, by_x1);
    const size_t m = by_x1.size();
    x1.resize(m), y1.resize(m), x2.resize(m), y2.resize(m), area.resize(m), key.resize(m), pos.resize(m);
    for (size_t q = 0; q < m; ++q) {
      const int32_t k = by_x1[q];
      x1[q] = s.x1[k], y1[q] = s.y1[k], x2[q] = s.x2[k], y2[q] = s.y2[k], area[q] = s.area[k];
      key[q] = static_cast<double>(s.x1[k]), pos[q] = k, slot[k] = static_cast<int32_t>(q);
    }
    if (m < 2) return;
    kmin = key[0];
    step = (key[m - 1] - kmin) / static_cast<double>(m);
    if (!(step > 0) || !std::isfinite(step) || !std::isfinite(kmin)) return;
    nb = static_cast<int64_t>(m);
    table.resize(nb + 2);
    size_t q = 0;
    for (int64_t k = 0; k <= nb; ++k) {
      const double e = edge(k);
      while (q < m && key[q] < e) ++q;
      table[k] = static_cast<int32_t>(q);
    }
    table[nb + 1] = static_cast<int32_t>(m);
  }

  // Sorts the positions by x1 (no NaN here), ties in visiting order: a stable LSD radix sort on x1's
  // bits mapped to unsigned integers of the same order (-0 sorts before +0, which compare equal as keys).
  static void sort_by_x1(const Soa<T>& s, std::vector<int32_t>& idx) {
    using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
    const size_t m = idx.size();
    if (m < 2) return;
    std::vector<U> key(m), key2(m);
    std::vector<int32_t> idx2(m);
    for (size_t q = 0; q < m; ++q) {
      U u;
      std::memcpy(&u, &s.x1[idx[q]], sizeof(U));
      key[q] = (u >> (8 * sizeof(U) - 1)) ? ~u : (u | (U(1) << (8 * sizeof(U) - 1)));
    }
    for (unsigned shift = 0; shift < 8 * sizeof(U); shift += 8) {
      size_t count[257] = {0};
      for (size_t q = 0; q < m; ++q) ++count[((key[q] >> shift) & 255) + 1];
      if (count[((key[0] >> shift) & 255) + 1] == m) continue;  // one digit value: nothing moves
      for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
      for (size_t q = 0; q < m; ++q) {
        const size_t to = count[(key[q] >> shift) & 255]++;
        key2[to] = key[q], idx2[to] = idx[q];
      }
      key.swap(key2), idx.swap(idx2);
    }
  }

  double edge(int64_t k) const { return kmin + static_cast<double>(k) * step; }

  // The first slot whose key is >= v (STRICT: > v).
  template <bool STRICT>
  size_t search(double v) const {
    size_t lo = 0, n = key.size();
    if (nb > 0) {  // the bucket with e(b) <= v < e(b + 1) (b = 0 below kmin, nb at the top) holds the answer
      const double f = (v - kmin) / step;
      int64_t k = f >= 0 ? (f < static_cast<double>(nb) ? static_cast<int64_t>(f) : nb) : 0;
      while (k > 0 && edge(k) > v) --k;  // rounding of f: at most a step off
      while (k < nb && edge(k + 1) <= v) ++k;
      lo = static_cast<size_t>(table[k]);
      n = static_cast<size_t>(table[k + 1]) - lo;
    }
    const double* base = key.data() + lo;
    if (n == 0) return lo;
    while (n > 1) {  // branch-free: the answer stays in [base, base + n]
      const size_t half = n / 2;
      base = (STRICT ? base[half] <= v : base[half] < v) ? base + half : base;
      n -= half;
    }
    return static_cast<size_t>(base - key.data()) + (STRICT ? *base <= v : *base < v);
  }

  // The slots [first, last) whose boxes can match the box at visiting position p (indexed).
  std::pair<size_t, size_t> window(const Soa<T>& s, ssize p, T t, bool ios) const {
    const double x1p = s.x1[p], x2p = s.x2[p], w = x2p - x1p;
    // the slack covers the rounding of the double arithmetic (exact for float32 coordinates)
    const double slack = 1e-9 * (std::fabs(x1p) + std::fabs(x2p) + max_w);
    double lo = x1p - max_w - slack;
    double hi = x2p;  // x1_q < x2_p
    bool strict = false;
    const double area_p = w * (static_cast<double>(s.y2[p]) - static_cast<double>(s.y1[p]));
    if (!ios && t >= T(1e-3) && std::isfinite(area_p) && area_p > 1e8 * std::numeric_limits<T>::min()) {
      const double tt = static_cast<double>(t) * (1 - 1e-4);
      const double lo_t = x1p + tt * w - std::min(max_w, w / tt) - slack, hi_t = x2p - tt * w + slack;
      if (std::isfinite(lo_t) && std::isfinite(hi_t)) {
        lo = std::max(lo, lo_t);
        if (hi_t < x2p) hi = hi_t, strict = true;  // x1_q <= hi_t
      }
    }
    const size_t first = search<false>(lo), last = strict ? search<true>(hi) : search<false>(hi);
    return {first, std::max(first, last)};
  }
};

// Whether indexed box q matches box p: Soa::match's arithmetic with plain selects for nan_min / nan_max
// (indexed boxes carry no NaN), so the results equal the reference's; t > 0, so m = 0 never matches.
template <typename T, bool IOS, bool INCLUSIVE>
inline int32_t sweep_hit(T px1, T py1, T px2, T py2, T pa, T qx1, T qy1, T qx2, T qy2, T qa, T t) {
  T w = (qx2 < px2 ? qx2 : px2) - (px1 < qx1 ? qx1 : px1);
  T h = (qy2 < py2 ? qy2 : py2) - (py1 < qy1 ? qy1 : py1);
  w = w > 0 ? w : T(0);
  h = h > 0 ? h : T(0);
  const T inter = w * h;
  const T den = IOS ? (qa < pa ? qa : pa) : pa + qa - inter;
  return hit_of<T, INCLUSIVE>(inter, den, t, 0);
}

// hits[q - first] = m(p, q) passes, for the slots [first, last) (inlined into the cloned drivers, where
// it vectorises).
template <typename T, bool IOS, bool INCLUSIVE>
inline void match_row(const SweepIndex<T>& ix, const Soa<T>& s, ssize p, size_t first, size_t last, T t,
                      int32_t* __restrict hits) {
  const T px1 = s.x1[p], py1 = s.y1[p], px2 = s.x2[p], py2 = s.y2[p], pa = s.area[p];
  const T *__restrict x1 = ix.x1.data(), *__restrict y1 = ix.y1.data(), *__restrict x2 = ix.x2.data();
  const T *__restrict y2 = ix.y2.data(), *__restrict ar = ix.area.data();
  for (size_t q = first; q < last; ++q)
    hits[q - first] = sweep_hit<T, IOS, INCLUSIVE>(px1, py1, px2, py2, pa, x1[q], y1[q], x2[q], y2[q], ar[q], t);
}

// Greedy NMS with t > 0 (see the top of the file): the kept indices in visiting order. A kept box at
// position p removes the matching candidates that come after it in visiting order.
template <typename T, bool IOS, bool INCLUSIVE>
TINYML_BOX_CLONES std::vector<int64_t> nms_sweep(const T* b, const int64_t* order, ssize n, T t) {
  const Soa<T> s(b, order, n);
  const SweepIndex<T> ix(s, n);
  std::vector<int32_t> removed(ix.pos.size(), 0);
  std::vector<int64_t> keep;
  const T *__restrict x1 = ix.x1.data(), *__restrict y1 = ix.y1.data(), *__restrict x2 = ix.x2.data();
  const T *__restrict y2 = ix.y2.data(), *__restrict ar = ix.area.data();
  const int32_t* __restrict pos = ix.pos.data();
  int32_t* __restrict rm = removed.data();
  for (ssize p = 0; p < n; ++p) {
    const int32_t sp = ix.slot[p];
    if (sp < 0) {  // intersects nothing: neither suppresses nor is suppressed
      keep.push_back(order[p]);
      continue;
    }
    if (rm[sp]) continue;
    keep.push_back(order[p]);
    const auto win = ix.window(s, p, t, IOS);
    const T px1 = s.x1[p], py1 = s.y1[p], px2 = s.x2[p], py2 = s.y2[p], pa = s.area[p];
    const int32_t pp = static_cast<int32_t>(p);
    for (size_t q = win.first; q < win.second; ++q)
      rm[q] |= sweep_hit<T, IOS, INCLUSIVE>(px1, py1, px2, py2, pa, x1[q], y1[q], x2[q], y2[q], ar[q], t) &
               (pos[q] > pp);
  }
  return keep;
}

// removed[j] |= m(k, j) passes, for j in [j0, j1) (positions in visiting order), any t.
template <typename T, bool IOS, bool INCLUSIVE>
inline void suppress_by(const Soa<T>& s, ssize k, ssize j0, ssize j1, T t, int32_t* removed) {
  const T ax1 = s.x1[k], ay1 = s.y1[k], ax2 = s.x2[k], ay2 = s.y2[k], aa = s.area[k];
  const int32_t zero_hits = T(0) >= t;
  const T *x1 = s.x1.data(), *y1 = s.y1.data(), *x2 = s.x2.data(), *y2 = s.y2.data(), *ar = s.area.data();
  for (ssize j = j0; j < j1; ++j) {
    T w = nan_min(ax2, x2[j]) - nan_max(ax1, x1[j]);
    T h = nan_min(ay2, y2[j]) - nan_max(ay1, y1[j]);
    w = w > 0 ? w : T(0);
    h = h > 0 ? h : T(0);
    const T inter = w * h;
    const T den = IOS ? nan_min(aa, ar[j]) : aa + ar[j] - inter;
    removed[j] |= hit_of<T, INCLUSIVE>(inter, den, t, zero_hits);
  }
}

// The dense path, any t: blocks of kBlock boxes in visiting order; the block is resolved sequentially,
// then every later box is tested against the block's kept boxes, OpenMP over chunks of those later
// boxes (each thread writes only its own `removed` flags).
template <typename T, bool IOS, bool INCLUSIVE>
TINYML_BOX_CLONES std::vector<int64_t> nms_dense(const T* b, const int64_t* order, ssize n, T t) {
  constexpr ssize kBlock = 64, kChunk = 1024;
  const Soa<T> s(b, order, n);
  std::vector<int32_t> removed(n, 0);
  std::vector<int64_t> keep;
  std::vector<ssize> kept_block;
  for (ssize start = 0; start < n; start += kBlock) {
    const ssize end = std::min(start + kBlock, n);
    kept_block.clear();
    for (ssize i = start; i < end; ++i) {
      if (removed[i]) continue;
      keep.push_back(order[i]);
      kept_block.push_back(i);
      suppress_by<T, IOS, INCLUSIVE>(s, i, i + 1, end, t, removed.data());
    }
    const ssize nk = static_cast<ssize>(kept_block.size());
    const ssize chunks = (n - end + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if ((n - end) * nk > 32768)
    for (ssize c = 0; c < chunks; ++c) {
      const ssize j0 = end + c * kChunk, j1 = std::min(j0 + kChunk, n);
      for (ssize k = 0; k < nk; ++k) suppress_by<T, IOS, INCLUSIVE>(s, kept_block[k], j0, j1, t, removed.data());
    }
  }
  return keep;
}

template <typename T>
std::vector<int64_t> nms_dispatch(const T* b, const int64_t* order, ssize n, T t, bool ios, bool inclusive) {
  if (t > 0 && n < (ssize(1) << 31)) {
    if (ios) return inclusive ? nms_sweep<T, true, true>(b, order, n, t) : nms_sweep<T, true, false>(b, order, n, t);
    return inclusive ? nms_sweep<T, false, true>(b, order, n, t) : nms_sweep<T, false, false>(b, order, n, t);
  }
  if (ios) return inclusive ? nms_dense<T, true, true>(b, order, n, t) : nms_dense<T, true, false>(b, order, n, t);
  return inclusive ? nms_dense<T, false, true>(b, order, n, t) : nms_dense<T, false, false>(b, order, n, t);
}

}  // namespace boxes
}  // namespace tinyml
