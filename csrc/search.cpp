// Search family: searchsorted (binary search per value), bincount and histc (counting). The numpy
// reference (tinyml/backends/reference/search.py) is the oracle; the adapter is
// tinyml/backends/cpu/search.py.
//
//   searchsorted(seq (R or 1, n), values (R, m), right) -> int64 (R, m)
//       left: the first i with seq[i] >= v; right: the first i with seq[i] > v; PyTorch's loop
//       `if (!(seq[mid] >= v)) lo = mid + 1; else hi = mid`, so a NaN value goes past every
//       element. O(m log n) per row; OpenMP over all values.
//   bincount(x (n,) int64, weights (n,) float32/float64 or None, length) -> counts
//       unweighted: one int64 histogram per thread, then summed (exact); weighted: one serial
//       pass in index order (PyTorch's summation order, so float sums match it bit for bit).
//   histc(x, bins, low, high) -> counts in x's dtype
//       bin = int64((v - low) * bins / (high - low)) in x's dtype, v == high in the last bin;
//       NaN and values outside [low, high] skipped. Per-thread int64 histograms, summed.
// Every id is checked (0 <= x < length) before the first write.
#include "common.h"
#include "omp_threads.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using tinyml::thread_id;

template <typename T>
void search_rows(const T* seq, const T* values, int64_t* out, int64_t rows, int64_t seq_rows, int64_t n, int64_t m,
                 bool right) {
  py::gil_scoped_release release;
  int64_t total = rows * m;
#pragma omp parallel for schedule(static) if (total > 8192)
  for (int64_t t = 0; t < total; ++t) {
    int64_t r = t / m;
    const T* s = seq + (seq_rows == 1 ? 0 : r * n);
    T v = values[t];
    int64_t lo = 0, hi = n;
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      bool past = right ? !(s[mid] > v) : !(s[mid] >= v);
      if (past)
        lo = mid + 1;
      else
        hi = mid;
    }
    out[t] = lo;
  }
}

template <typename T>
py::array searchsorted_typed(py::array seq, py::array values, bool right) {
  py::array_t<int64_t> out({values.shape(0), values.shape(1)});
  if (values.size())
    search_rows<T>(static_cast<const T*>(seq.data()), static_cast<const T*>(values.data()), out.mutable_data(),
                   values.shape(0), seq.shape(0), seq.shape(1), values.shape(1), right);
  return out;
}

py::array searchsorted(py::array seq, py::array values, bool right) {
  if (seq.ndim() != 2 || values.ndim() != 2)
    throw py::value_error("searchsorted: expected 2-D seq (rows, n) and values (rows, m), got shapes " +
                          tinyml::shape_str(seq) + " and " + tinyml::shape_str(values));
  if (seq.shape(0) != 1 && seq.shape(0) != values.shape(0))
    throw py::value_error("searchsorted: seq has " + std::to_string(seq.shape(0)) + " rows but values have " +
                          std::to_string(values.shape(0)) + " (expected equal, or one shared row)");
  if (!(seq.flags() & py::array::c_style) || !(values.flags() & py::array::c_style))
    throw py::value_error("searchsorted: seq and values must be C-contiguous");
  if (!seq.dtype().is(values.dtype()) && !(seq.dtype().kind() == values.dtype().kind() &&
                                           seq.itemsize() == values.itemsize()))
    throw py::type_error("searchsorted: seq and values must share a dtype, got " + std::string(py::str(seq.dtype())) +
                         " and " + std::string(py::str(values.dtype())));
  if (tinyml::has_dtype<float>(seq)) return searchsorted_typed<float>(seq, values, right);
  if (tinyml::has_dtype<double>(seq)) return searchsorted_typed<double>(seq, values, right);
  if (tinyml::has_dtype<int64_t>(seq)) return searchsorted_typed<int64_t>(seq, values, right);
  if (tinyml::has_dtype<int32_t>(seq)) return searchsorted_typed<int32_t>(seq, values, right);
  throw py::type_error("searchsorted: expected float32, float64, int64 or int32, got " +
                       std::string(py::str(seq.dtype())));
}

// Sum of the per-thread histograms `parts` (threads x length) into out.
template <typename Out>
void sum_parts(const std::vector<int64_t>& parts, int threads, int64_t length, Out* out) {
  for (int64_t b = 0; b < length; ++b) {
    int64_t c = 0;
    for (int t = 0; t < threads; ++t) c += parts[size_t(t) * length + b];
    out[b] = Out(c);
  }
}

template <typename W>
void weighted(const int64_t* x, const W* w, int64_t n, W* out) {
  py::gil_scoped_release release;
  for (int64_t i = 0; i < n; ++i) out[x[i]] += w[i];
}

py::array bincount(py::array x, py::object weights, int64_t length) {
  tinyml::check_array<int64_t>(x, "bincount: input");
  if (x.ndim() != 1) throw py::value_error("bincount: input must be 1-D, got shape " + tinyml::shape_str(x));
  if (length < 0) throw py::value_error("bincount: length must be >= 0, got " + std::to_string(length));
  const int64_t* xp = static_cast<const int64_t*>(x.data());
  int64_t n = x.shape(0);
  for (int64_t i = 0; i < n; ++i)
    if (xp[i] < 0 || xp[i] >= length)
      throw py::index_error("bincount: value " + std::to_string(xp[i]) + " at position " + std::to_string(i) +
                            " is out of range for " + std::to_string(length) + " bins");
  if (!weights.is_none()) {
    py::array w = weights.cast<py::array>();
    if (w.ndim() != 1 || w.shape(0) != n)
      throw py::value_error("bincount: weights of shape " + tinyml::shape_str(w) + " do not match input of shape " +
                            tinyml::shape_str(x));
    if (tinyml::has_dtype<float>(w)) {
      tinyml::check_array<float>(w, "bincount: weights");
      py::array_t<float> out(length);
      std::fill(out.mutable_data(), out.mutable_data() + length, 0.0f);
      weighted<float>(xp, static_cast<const float*>(w.data()), n, out.mutable_data());
      return out;
    }
    tinyml::check_array<double>(w, "bincount: weights");
    py::array_t<double> out(length);
    std::fill(out.mutable_data(), out.mutable_data() + length, 0.0);
    weighted<double>(xp, static_cast<const double*>(w.data()), n, out.mutable_data());
    return out;
  }
  py::array_t<int64_t> out(length);
  int threads = (n > 65536 && length <= 65536) ? tinyml::max_threads() : 1;
  std::vector<int64_t> parts(size_t(threads) * size_t(length), 0);
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < n; ++i) parts[size_t(thread_id()) * length + xp[i]] += 1;
  }
  sum_parts(parts, threads, length, out.mutable_data());
  return out;
}

template <typename T>
py::array histc_typed(py::array x, int64_t bins, double low, double high) {
  const T* xp = static_cast<const T*>(x.data());
  int64_t n = x.size();
  const T lo = T(low), hi = T(high), width = T(hi - lo), scale = T(bins);
  int threads = (n > 65536 && bins <= 65536) ? tinyml::max_threads() : 1;
  std::vector<int64_t> parts(size_t(threads) * size_t(bins), 0);
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < n; ++i) {
      T v = xp[i];
      if (!(v >= lo && v <= hi)) continue;  // NaN fails both
      int64_t b = int64_t((v - lo) * scale / width);
      if (b >= bins) b = bins - 1;
      parts[size_t(thread_id()) * bins + b] += 1;
    }
  }
  py::array_t<T> out(bins);
  sum_parts(parts, threads, bins, out.mutable_data());
  return out;
}

py::array histc(py::array x, int64_t bins, double low, double high) {
  if (bins <= 0) throw py::value_error("histc: bins must be > 0, got " + std::to_string(bins));
  if (!(low < high)) throw py::value_error("histc: expected low < high, got [" + std::to_string(low) + ", " +
                                           std::to_string(high) + "]");
  if (tinyml::has_dtype<float>(x)) {
    tinyml::check_array<float>(x, "histc: input");
    return histc_typed<float>(x, bins, low, high);
  }
  tinyml::check_array<double>(x, "histc: input");
  return histc_typed<double>(x, bins, low, high);
}

}  // namespace

void init_search(py::module_& m) {
  m.def("searchsorted_rows", &searchsorted, py::arg("seq"), py::arg("values"), py::arg("right"),
        "Insertion points (int64) of values (R, m) into the sorted rows of seq (R or 1, n).");
  m.def("bincount", &bincount, py::arg("x"), py::arg("weights"), py::arg("length"),
        "Counts (int64) or weight sums of the int64 values of x over [0, length).");
  m.def("histc", &histc, py::arg("x"), py::arg("bins"), py::arg("low"), py::arg("high"),
        "Histogram of x over [low, high] in `bins` equal bins, in x's dtype.");
}
