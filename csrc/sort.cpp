// Sort family over the rows of a C-contiguous (rows, n) array: sort, topk, kthvalue, median.
// The Python adapter (tinyml/backends/cpu/sort.py) moves the sorted dim last; the numpy
// reference (backends/reference/sort.py) is the oracle.
//
// One total order for every kernel, so that the three backends return the same indices:
//   a before b  <=>  key(a) < key(b), or key(a) == key(b) and index(a) < index(b)
// key() maps a value to an unsigned integer whose order is the value order: floats by their bits
// (sign flipped, negatives' other bits inverted), every NaN to the largest key (NaN sorts last, as
// in PyTorch), -0.0 to the key of 0.0 (they are equal); signed ints by flipping the sign bit.
// Descending order inverts the key bits but keeps the index tie-break (a stable descending sort).
//
// Types up to 32 bits and rows shorter than 2^32 pack (key << 32 | index) into one uint64, so a
// row sorts as plain integers; 64-bit types sort (key, index) pairs. Results read the value back
// from the input at the index (NaN payloads and -0.0 survive).
//   sort       std::sort of the packed keys                              O(n log n) per row
//   topk       for k < n/4 one filtering pass (select_first_k), else nth_element; then std::sort of
//              the first k                                                O(n + k log k) expected
//   kthvalue   std::nth_element                                          O(n) on average
//   median     count NaNs, then nth_element at the lower median (or the first NaN)  O(n)
// OpenMP splits the rows (each thread keeps one scratch buffer); one long row runs on one thread.
#include "common.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

template <typename T>
struct KeyOf;

// Bit tests, not std::isnan / ==: they hold under TINYML_FAST_MATH (-ffast-math) too.
inline uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
inline uint64_t bits_of(double v) {
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return b;
}
inline bool nan_bits(uint32_t b) { return (b & 0x7FFFFFFFu) > 0x7F800000u; }
inline bool nan_bits(uint64_t b) { return (b & ~(uint64_t(1) << 63)) > 0x7FF0000000000000ull; }

// Branch-free (selects, not jumps: keys feed tight loops): negatives invert every bit, the rest
// set the sign bit; -0.0 becomes 0.0 first; every NaN becomes the largest key.
template <typename U>
U float_key(U b) {
  constexpr U sign = U(1) << (sizeof(U) * 8 - 1);
  const U magnitude = b & ~sign;
  b = magnitude == 0 ? U(0) : b;
  const U flip = U(U(0) - (b >> (sizeof(U) * 8 - 1))) | sign;  // all ones for negatives, else the sign bit
  const U key = b ^ flip;
  return nan_bits(b) ? U(~U(0)) : key;
}

template <>
struct KeyOf<float> {
  using U = uint32_t;
  static U get(float v) { return float_key(bits_of(v)); }
};

template <>
struct KeyOf<double> {
  using U = uint64_t;
  static U get(double v) { return float_key(bits_of(v)); }
};

template <typename S, typename UU>
struct SignedKey {
  using U = UU;
  static U get(S v) { return U(v) ^ (U(1) << (sizeof(U) * 8 - 1)); }
};
template <>
struct KeyOf<int64_t> : SignedKey<int64_t, uint64_t> {};
template <>
struct KeyOf<int32_t> : SignedKey<int32_t, uint32_t> {};
template <>
struct KeyOf<int16_t> {
  using U = uint32_t;
  static U get(int16_t v) { return uint32_t(int32_t(v)) ^ 0x80000000u; }
};
template <>
struct KeyOf<int8_t> {
  using U = uint32_t;
  static U get(int8_t v) { return uint32_t(int32_t(v)) ^ 0x80000000u; }
};
template <>
struct KeyOf<uint8_t> {
  using U = uint32_t;
  static U get(uint8_t v) { return v; }
};

// (key, index) entries of one row; Packed for 32-bit keys, Pair for 64-bit ones. Both compare by
// key, then index: a total order, so std::sort / nth_element give the stable order.
struct Pair {
  uint64_t key;
  int64_t index;
  bool operator<(const Pair& o) const { return key < o.key || (key == o.key && index < o.index); }
};

template <typename U>
struct Entry {  // 32-bit keys: one packed uint64
  using type = uint64_t;
  static type make(U key, int64_t i) { return (uint64_t(key) << 32) | uint64_t(i); }
  static int64_t index(type e) { return int64_t(e & 0xFFFFFFFFu); }
};
template <>
struct Entry<uint64_t> {
  using type = Pair;
  static type make(uint64_t key, int64_t i) { return Pair{key, i}; }
  static int64_t index(type e) { return e.index; }
};

template <typename T>
using EntryOf = Entry<typename KeyOf<T>::U>;

template <typename T>
void fill_row(const T* row, int64_t n, bool descending, std::vector<typename EntryOf<T>::type>& buf) {
  using U = typename KeyOf<T>::U;
  buf.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    U k = KeyOf<T>::get(row[i]);
    buf[i] = EntryOf<T>::make(descending ? U(~k) : k, i);
  }
}

// topk with k much smaller than n: one pass over the row keeping candidates in a buffer of 2k + 64
// entries; when it fills, nth_element keeps its first k and the k-th becomes the threshold that later
// entries must beat (most are rejected by one compare). Leaves a superset of the first k in `buf`.
// O(n + k log k) per refill, and refills grow rare as the threshold tightens.
template <typename T>
void select_first_k(const T* row, int64_t n, int64_t k, bool descending,
                    std::vector<typename EntryOf<T>::type>& buf) {
  using U = typename KeyOf<T>::U;
  using E = typename EntryOf<T>::type;
  const size_t cap = size_t(2 * k + 64);
  buf.clear();
  buf.reserve(cap);
  bool have_threshold = false;
  E threshold{};
  T threshold_value{};
  for (int64_t i = 0; i < n; ++i) {
    const T v = row[i];
    if (have_threshold) {
      // A plain compare first: strictly worse by value (false whenever a NaN is involved) can
      // never enter; what passes is decided by the exact (key, index) order.
      if (descending ? v < threshold_value : v > threshold_value) continue;
    }
    U key = KeyOf<T>::get(v);
    E e = EntryOf<T>::make(descending ? U(~key) : key, i);
    if (have_threshold && !(e < threshold)) continue;
    buf.push_back(e);
    if (buf.size() == cap) {
      std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end());
      buf.resize(size_t(k));
      threshold = buf[size_t(k - 1)];
      threshold_value = row[EntryOf<T>::index(threshold)];
      have_threshold = true;
    }
  }
}

enum class Mode { kSort, kTopk, kKth, kMedian, kNanMedian };

template <typename T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return nan_bits(bits_of(v));
  return false;
}

// Rows of x (rows, n) -> values/indices (rows, m). `k`: topk's count, kthvalue's 1-based rank.
template <typename T>
void run_rows(const T* x, T* values, int64_t* indices, int64_t rows, int64_t n, int64_t m, Mode mode, int64_t k,
              bool descending) {
  py::gil_scoped_release release;
#pragma omp parallel if (rows > 1 && rows * n > 16384)
  {
    std::vector<typename EntryOf<T>::type> buf;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = x + r * n;
      T* vout = values + r * m;
      int64_t* iout = indices + r * m;
      int64_t first = 0, count = m;  // which entries of the ordered row to emit
      if (mode == Mode::kTopk && k > 0 && 4 * k < n) {
        select_first_k<T>(row, n, k, descending, buf);
      } else {
        fill_row(row, n, descending, buf);
      }
      if (mode == Mode::kSort) {
        std::sort(buf.begin(), buf.end());
      } else if (mode == Mode::kTopk) {
        if (k > 0 && k < int64_t(buf.size())) std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end());
        std::sort(buf.begin(), buf.begin() + k);
      } else {
        int64_t pos = k - 1;
        if (mode != Mode::kKth) {
          int64_t nans = 0;
          for (int64_t i = 0; i < n; ++i) nans += is_nan(row[i]);
          int64_t valid = n - nans;  // NaNs order last, by index: the first NaN is at `valid`
          pos = (mode == Mode::kMedian && nans) ? valid : std::max<int64_t>((valid - 1) / 2, 0);
        }
        std::nth_element(buf.begin(), buf.begin() + pos, buf.end());
        first = pos;
      }
      for (int64_t j = 0; j < count; ++j) {
        int64_t i = EntryOf<T>::index(buf[first + j]);
        iout[j] = i;
        vout[j] = row[i];
      }
    }
  }
}

template <typename T>
py::tuple typed(py::array x, int64_t m, Mode mode, int64_t k, bool descending) {
  int64_t rows = x.shape(0), n = x.shape(1);
  py::array_t<T> values({rows, m});
  py::array_t<int64_t> indices({rows, m});
  if (rows && m)
    run_rows<T>(static_cast<const T*>(x.data()), values.mutable_data(), indices.mutable_data(), rows, n, m, mode, k,
                descending);
  return py::make_tuple(values, indices);
}

py::tuple dispatch(py::array x, int64_t m, Mode mode, int64_t k, bool descending, const char* name) {
  if (x.ndim() != 2)
    throw py::value_error(std::string(name) + ": expected a 2-D (rows, n) array, got shape " + tinyml::shape_str(x));
  if (!(x.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array, got shape " + tinyml::shape_str(x));
  int64_t n = x.shape(1);
  if (n >= (int64_t(1) << 32))
    throw py::value_error(std::string(name) + ": rows of 2^32 or more elements are not supported (n=" +
                          std::to_string(n) + ")");
  bool bad_k = (mode == Mode::kTopk && (k < 0 || k > n)) || (mode == Mode::kKth && (k < 1 || k > n)) ||
               ((mode == Mode::kKth || mode == Mode::kMedian || mode == Mode::kNanMedian) && n == 0);
  if (bad_k)
    throw py::value_error(std::string(name) + ": k=" + std::to_string(k) + " is out of range for rows of " +
                          std::to_string(n) + " elements");
  if (tinyml::has_dtype<float>(x)) return typed<float>(x, m, mode, k, descending);
  if (tinyml::has_dtype<double>(x)) return typed<double>(x, m, mode, k, descending);
  if (tinyml::has_dtype<int64_t>(x)) return typed<int64_t>(x, m, mode, k, descending);
  if (tinyml::has_dtype<int32_t>(x)) return typed<int32_t>(x, m, mode, k, descending);
  if (tinyml::has_dtype<int16_t>(x)) return typed<int16_t>(x, m, mode, k, descending);
  if (tinyml::has_dtype<int8_t>(x)) return typed<int8_t>(x, m, mode, k, descending);
  if (tinyml::has_dtype<uint8_t>(x)) return typed<uint8_t>(x, m, mode, k, descending);
  throw py::type_error(std::string(name) + ": expected float32, float64, int64, int32, int16, int8 or uint8, got " +
                       std::string(py::str(x.dtype())));
}

}  // namespace

void init_sort(py::module_& m) {
  m.def(
      "sort_rows",
      [](py::array x, bool descending) {
        return dispatch(x, x.ndim() == 2 ? x.shape(1) : 0, Mode::kSort, 0, descending, "sort_rows");
      },
      py::arg("x"), py::arg("descending"), "Each row of x (rows, n) sorted: (values, int64 indices), stable.");
  m.def(
      "topk_rows", [](py::array x, int64_t k, bool largest) { return dispatch(x, k, Mode::kTopk, k, largest, "topk_rows"); },
      py::arg("x"), py::arg("k"), py::arg("largest"), "The first k of each row in sorted order: (values, indices).");
  m.def(
      "kthvalue_rows", [](py::array x, int64_t k) { return dispatch(x, 1, Mode::kKth, k, false, "kthvalue_rows"); },
      py::arg("x"), py::arg("k"), "The k-th smallest (1-based) of each row: (values (rows, 1), indices (rows, 1)).");
  m.def(
      "median_rows",
      [](py::array x, bool ignore_nan) {
        return dispatch(x, 1, ignore_nan ? Mode::kNanMedian : Mode::kMedian, 0, false, "median_rows");
      },
      py::arg("x"), py::arg("ignore_nan"), "The lower median of each row (NaN rule of torch.median / nanmedian).");
}
