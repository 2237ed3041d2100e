// Box kernels, float32 and float64: non-maximum suppression and merging over (N, 4) xyxy boxes.
//
//   box_aspect_atan(w, h)  atan(w / h) elementwise (CIoU's aspect term)
//   nms_forward            greedy NMS over boxes visited in a given order (the op sorts by score):
//                          the kept indices. m(i, j) is IoU or IoS; suppression when m > t
//                          (torchvision) or m >= t (inclusive, sahi; a zero denominator gives m = 0).
//   nmm_forward            sahi's greedy / transitive non-maximum merging: owner and claim order.
//
// With t > 0 (the usual case) NMS sweeps: see nms_sweep. Otherwise (t <= 0 matches disjoint boxes
// too) it goes dense:
// blocks of kBlock boxes in visiting order: the block is resolved sequentially (each
// kept box suppresses the later ones in the block), then every later box is tested against the
// block's kept boxes, OpenMP over chunks of those later boxes (each thread writes only its own
// `removed` flags, so no races) with a branch-free, vectorised inner loop. m is computed only for
// kept boxes, as torchvision's CPU loop does, but on every thread and SIMD lane.
// The reference is tinyml/backends/reference/boxes.py.
#include <algorithm>
#include <cmath>

#include "common.h"

namespace {

using ssize = py::ssize_t;
constexpr ssize kBlock = 64;

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

template <typename T>
struct Soa {
  std::vector<T> x1, y1, x2, y2, area;
  explicit Soa(const T* b, const int64_t* order, ssize n) : x1(n), y1(n), x2(n), y2(n), area(n) {
    for (ssize k = 0; k < n; ++k) {
      const T* r = b + 4 * order[k];
      x1[k] = r[0], y1[k] = r[1], x2[k] = r[2], y2[k] = r[3];
      area[k] = (r[2] - r[0]) * (r[3] - r[1]);
    }
  }
  // Whether m(a, b) passes the threshold (positions in visiting order). A NaN side counts as 0;
  // comparisons with NaN are false, so a NaN metric never matches.
  bool match(ssize a, ssize b, T t, bool ios, bool inclusive) const {
    T w = nan_min(x2[a], x2[b]) - nan_max(x1[a], x1[b]);
    T h = nan_min(y2[a], y2[b]) - nan_max(y1[a], y1[b]);
    w = w > 0 ? w : T(0);
    h = h > 0 ? h : T(0);
    const T inter = w * h;
    const T den = ios ? nan_min(area[a], area[b]) : area[a] + area[b] - inter;
    if (inclusive) {
      const T m = den > 0 ? inter / den : T(0);
      return m >= t;
    }
    return inter / den > t;
  }
};

// removed[j] |= m(k, j) passes, for j in [j0, j1): one branch-free loop over the SoA columns, so
// the compiler vectorises it (division included: the exact quotient keeps results equal to the reference).
template <typename T, bool IOS, bool INCLUSIVE>
void suppress_by(const Soa<T>& s, ssize k, ssize j0, ssize j1, T t, int32_t* removed) {
  const T ax1 = s.x1[k], ay1 = s.y1[k], ax2 = s.x2[k], ay2 = s.y2[k], aa = s.area[k];
  const int32_t zero_hits = T(0) >= t;  // what m = 0 gives
  const T *x1 = s.x1.data(), *y1 = s.y1.data(), *x2 = s.x2.data(), *y2 = s.y2.data(), *ar = s.area.data();
  for (ssize j = j0; j < j1; ++j) {
    T w = nan_min(ax2, x2[j]) - nan_max(ax1, x1[j]);
    T h = nan_min(ay2, y2[j]) - nan_max(ay1, y1[j]);
    w = w > 0 ? w : T(0);
    h = h > 0 ? h : T(0);
    const T inter = w * h;
    const T den = IOS ? nan_min(aa, ar[j]) : aa + ar[j] - inter;
    int32_t hit;
    if (INCLUSIVE) {  // m = 0 where den <= 0; written with integer masks so that the loop vectorises
      const int32_t positive = den > 0;
      const int32_t quotient_hit = inter / (positive ? den : T(1)) >= t;
      hit = (positive & quotient_hit) | ((1 - positive) & zero_hits);
    } else {
      hit = inter / den > t;
    }
    removed[j] |= hit;
  }
}

template <typename T, bool IOS, bool INCLUSIVE>
std::vector<int64_t> nms_impl(const T* b, const int64_t* order, ssize n, T t) {
  Soa<T> s(b, order, n);
  std::vector<int32_t> removed(n, 0);
  std::vector<int64_t> keep;
  std::vector<ssize> kept_block;
  constexpr ssize kChunk = 1024;
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

// NMS with t > 0, where a match needs a positive intersection, so only boxes whose x-ranges overlap
// can match: the boxes with x2 > x1 are sorted by x1 once, and a kept box tests only those with
// x1 in [x1_k - max width, x2_k) (found by binary search), in visiting order as the dense loop does.
// Boxes with NaN or inverted x sides intersect nothing and are left out of the index.
// One kept box against the candidates [first, last) of the x index: removed[q] |= hit, for the
// candidates after position p in visiting order. Branch-free, so the compiler vectorises it; the
// arithmetic is Soa::match's, so the results equal the dense path's and the reference's.
template <typename T, bool IOS, bool INCLUSIVE>
void sweep_row(const T* sx1, const T* sy1, const T* sx2, const T* sy2, const T* sarea, const int32_t* spos,
               int32_t* removed, size_t first, size_t last, const Soa<T>& s, int32_t p, T t) {
  const T px1 = s.x1[p], py1 = s.y1[p], px2 = s.x2[p], py2 = s.y2[p], pa = s.area[p];
  const int32_t zero_hits = T(0) >= t;  // what m = 0 gives
  for (size_t q = first; q < last; ++q) {
    T w = nan_min(px2, sx2[q]) - nan_max(px1, sx1[q]);
    T h = nan_min(py2, sy2[q]) - nan_max(py1, sy1[q]);
    w = w > 0 ? w : T(0);
    h = h > 0 ? h : T(0);
    const T inter = w * h;
    const T den = IOS ? nan_min(pa, sarea[q]) : pa + sarea[q] - inter;
    int32_t hit;
    if (INCLUSIVE) {  // m = 0 where den <= 0; written with integer masks so that the loop vectorises
      const int32_t positive = den > 0;
      const int32_t quotient_hit = inter / (positive ? den : T(1)) >= t;
      hit = (positive & quotient_hit) | ((1 - positive) & zero_hits);
    } else {
      hit = inter / den > t;
    }
    removed[q] |= hit & (spos[q] > p);
  }
}

template <typename T, bool IOS, bool INCLUSIVE>
std::vector<int64_t> nms_sweep(const T* b, const int64_t* order, ssize n, T t) {
  Soa<T> s(b, order, n);
  std::vector<int32_t> xs;  // positions (visiting order) of the boxes with x2 > x1, sorted by x1
  double max_w = 0;
  for (ssize k = 0; k < n; ++k)
    if (s.x2[k] > s.x1[k]) {
      xs.push_back(static_cast<int32_t>(k));
      max_w = std::max(max_w, static_cast<double>(s.x2[k]) - static_cast<double>(s.x1[k]));
    }
  std::sort(xs.begin(), xs.end(),
            [&](int32_t a, int32_t c) { return s.x1[a] < s.x1[c] || (s.x1[a] == s.x1[c] && a < c); });
  // The index as its own columns (read sequentially), `removed` kept in index order too.
  const size_t m = xs.size();
  std::vector<T> sx1(m), sy1(m), sx2(m), sy2(m), sarea(m);
  std::vector<double> key(m);
  std::vector<int32_t> removed(m, 0);
  std::vector<ssize> slot(n, -1);  // position -> index slot (-1: not indexed, intersects nothing)
  for (size_t q = 0; q < m; ++q) {
    const int32_t k = xs[q];
    sx1[q] = s.x1[k], sy1[q] = s.y1[k], sx2[q] = s.x2[k], sy2[q] = s.y2[k], sarea[q] = s.area[k];
    key[q] = static_cast<double>(s.x1[k]);
    slot[k] = static_cast<ssize>(q);
  }
  std::vector<int64_t> keep;
  for (ssize p = 0; p < n; ++p) {
    if (slot[p] < 0) {  // with t > 0 it can neither suppress nor be suppressed
      keep.push_back(order[p]);
      continue;
    }
    if (removed[slot[p]]) continue;
    keep.push_back(order[p]);
    const double x1 = s.x1[p];
    // the slack covers the rounding of max_w (exact for float32, one ulp for float64)
    const double lo = x1 - max_w - 1e-9 * (std::fabs(x1) + max_w);
    const size_t first = std::lower_bound(key.begin(), key.end(), lo) - key.begin();
    const size_t last = std::lower_bound(key.begin(), key.end(), static_cast<double>(s.x2[p])) - key.begin();
    sweep_row<T, IOS, INCLUSIVE>(sx1.data(), sy1.data(), sx2.data(), sy2.data(), sarea.data(), xs.data(),
                                 removed.data(), first, last, s, static_cast<int32_t>(p), t);
  }
  return keep;
}

template <typename T>
std::vector<int64_t> nms_dispatch(const T* b, const int64_t* order, ssize n, T t, bool ios, bool inclusive) {
  if (t > 0 && n < (ssize(1) << 31)) {
    if (ios) return inclusive ? nms_sweep<T, true, true>(b, order, n, t) : nms_sweep<T, true, false>(b, order, n, t);
    return inclusive ? nms_sweep<T, false, true>(b, order, n, t) : nms_sweep<T, false, false>(b, order, n, t);
  }
  if (ios) return inclusive ? nms_impl<T, true, true>(b, order, n, t) : nms_impl<T, true, false>(b, order, n, t);
  return inclusive ? nms_impl<T, false, true>(b, order, n, t) : nms_impl<T, false, false>(b, order, n, t);
}

// Whether box a may claim box b in sahi's nmm (original indices): b scores lower, or equal and its
// coordinates do not sort after a's (x1, y1, x2, y2 lexicographically).
template <typename T>
bool dominates(const T* b, const T* sc, int64_t a, int64_t c) {
  if (a == c) return false;
  if (sc[c] < sc[a]) return true;
  if (!(sc[c] == sc[a])) return false;
  for (int k = 0; k < 4; ++k) {
    if (b[4 * c + k] > b[4 * a + k]) return false;
    if (b[4 * c + k] < b[4 * a + k]) return true;
  }
  return true;
}

template <typename T>
void nmm_impl(const T* b, const T* sc, const int64_t* order, ssize n, T t, bool ios, bool greedy, int64_t* owner,
              int64_t* claim) {
  // Positions in visiting order for the metric; pos_of maps an original index to its position.
  Soa<T> s(b, order, n);
  std::vector<ssize> pos_of(n);
  for (ssize k = 0; k < n; ++k) pos_of[order[k]] = k;
  for (ssize k = 0; k < n; ++k) owner[k] = claim[k] = -1;
  int64_t seq = 0;
  for (ssize p = 0; p < n; ++p) {
    const int64_t i = order[p];
    if (owner[i] < 0) {
      owner[i] = i;
      claim[i] = seq++;
    } else if (greedy) {
      continue;
    }
    const int64_t keeper = owner[i];
    if (greedy) {
      for (ssize q = p + 1; q < n; ++q) {
        const int64_t j = order[q];
        if (owner[j] < 0 && s.match(p, q, t, ios, true)) owner[j] = keeper, claim[j] = seq++;
      }
    } else {
      for (int64_t j = 0; j < n; ++j)
        if (owner[j] < 0 && dominates(b, sc, i, j) && s.match(p, pos_of[j], t, ios, true))
          owner[j] = keeper, claim[j] = seq++;
    }
  }
}

bool metric_is_ios(const std::string& metric) {
  if (metric == "iou") return false;
  if (metric == "ios") return true;
  throw py::value_error("boxes: metric must be 'iou' or 'ios', got '" + metric + "'");
}

// Checks boxes (N, 4) of dtype T and order (N,) int64, a permutation of 0..N-1.
template <typename T>
ssize check_boxes(const py::array& boxes, const py::array_t<int64_t>& order, const char* fn) {
  tinyml::check_array<T>(boxes, fn);
  if (boxes.ndim() != 2 || boxes.shape(1) != 4)
    throw py::value_error(std::string(fn) + ": expected boxes of shape (N, 4), got " + tinyml::shape_str(boxes));
  const ssize n = boxes.shape(0);
  if (order.ndim() != 1 || order.shape(0) != n)
    throw py::value_error(std::string(fn) + ": order has shape " + tinyml::shape_str(order) + " but boxes have " +
                          std::to_string(n) + " rows");
  std::vector<unsigned char> seen(n, 0);
  const int64_t* o = order.data();
  for (ssize k = 0; k < n; ++k) {
    if (o[k] < 0 || o[k] >= n || seen[o[k]])
      throw py::value_error(std::string(fn) + ": order must be a permutation of 0.." + std::to_string(n - 1) +
                            ", got " + std::to_string(o[k]) + " at position " + std::to_string(k));
    seen[o[k]] = 1;
  }
  return n;
}

template <typename T>
py::array_t<int64_t> nms_forward(py::array boxes, py::array_t<int64_t, py::array::c_style | py::array::forcecast> order,
                                 double threshold, const std::string& metric, bool inclusive) {
  const ssize n = check_boxes<T>(boxes, order, "nms_forward");
  const bool ios = metric_is_ios(metric);
  std::vector<int64_t> keep;
  {
    py::gil_scoped_release nogil;
    keep = nms_dispatch<T>(static_cast<const T*>(boxes.data()), order.data(), n, static_cast<T>(threshold), ios,
                           inclusive);
  }
  py::array_t<int64_t> out(static_cast<ssize>(keep.size()));
  std::copy(keep.begin(), keep.end(), out.mutable_data());
  return out;
}

template <typename T>
py::tuple nmm_forward(py::array boxes, py::array scores,
                      py::array_t<int64_t, py::array::c_style | py::array::forcecast> order, double threshold,
                      const std::string& metric, bool greedy) {
  const ssize n = check_boxes<T>(boxes, order, "nmm_forward");
  tinyml::check_array<T>(scores, "nmm_forward scores");
  if (scores.ndim() != 1 || scores.shape(0) != n)
    throw py::value_error("nmm_forward: scores have shape " + tinyml::shape_str(scores) + " but boxes have " +
                          std::to_string(n) + " rows");
  const bool ios = metric_is_ios(metric);
  py::array_t<int64_t> owner(n), claim(n);
  int64_t* po = owner.mutable_data();
  int64_t* pc = claim.mutable_data();
  {
    py::gil_scoped_release nogil;
    nmm_impl<T>(static_cast<const T*>(boxes.data()), static_cast<const T*>(scores.data()), order.data(), n,
                static_cast<T>(threshold), ios, greedy, po, pc);
  }
  return py::make_tuple(owner, claim);
}

template <typename T>
py::array box_aspect_atan(py::array w, py::array h) {
  tinyml::check_array<T>(w, "box_aspect_atan w");
  tinyml::check_array<T>(h, "box_aspect_atan h");
  tinyml::check_same_shape(w, h, "box_aspect_atan w", "box_aspect_atan h");
  std::vector<ssize> shape(w.shape(), w.shape() + w.ndim());
  py::array_t<T> out(shape);
  const T* pw = static_cast<const T*>(w.data());
  const T* ph = static_cast<const T*>(h.data());
  T* po = out.mutable_data();
  const ssize n = w.size();
  {
    py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (ssize k = 0; k < n; ++k) po[k] = std::atan(pw[k] / ph[k]);
  }
  return out;
}

}  // namespace

void init_boxes(py::module_& m) {
  m.def("nms_forward_f32", &nms_forward<float>);
  m.def("nms_forward_f64", &nms_forward<double>);
  m.def("nmm_forward_f32", &nmm_forward<float>);
  m.def("nmm_forward_f64", &nmm_forward<double>);
  m.def("box_aspect_atan_f32", &box_aspect_atan<float>);
  m.def("box_aspect_atan_f64", &box_aspect_atan<double>);
}
