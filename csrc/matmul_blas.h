// The BLAS side of csrc/matmul.cpp: the function pointers to numpy's ILP64 OpenBLAS gemm, matrix
// layouts as BLAS reads them, one slice of rows as one gemm call (gemm_rows), the OpenMP team helpers
// that split a product into slices, and the checks every binding makes before it touches memory.
#pragma once
#include "common.h"
#include "omp_threads.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace matmul_detail {


using tinyml::shape_str;

using blas_int = int64_t;  // ILP64
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;  // CBLAS enum values

template <typename T>
using gemm_fn = void (*)(int, int, int, blas_int, blas_int, blas_int, T, const T*, blas_int, const T*, blas_int, T,
                         T*, blas_int);

inline gemm_fn<float> g_sgemm = nullptr;
inline gemm_fn<double> g_dgemm = nullptr;

template <typename T> gemm_fn<T> blas();
template <> inline gemm_fn<float> blas<float>() { return g_sgemm; }
template <> inline gemm_fn<double> blas<double>() { return g_dgemm; }

// One matrix operand as BLAS reads it: trans and leading dimension from the element strides.
struct MatLayout {
  int trans;
  blas_int ld;
};

// The layout of an (r, c) matrix with element strides (rs, cs), or false if BLAS cannot read it in place.
inline bool blas_layout(int64_t r, int64_t c, int64_t rs, int64_t cs, MatLayout* out) {
  const int64_t c1 = c > 1 ? c : 1, r1 = r > 1 ? r : 1;
  if (r == 0 || c == 0) {  // nothing is read
    *out = {kNoTrans, c1};
    return true;
  }
  if (cs == 1 && (r <= 1 || rs >= c1)) {
    *out = {kNoTrans, r <= 1 ? c1 : rs};
    return true;
  }
  if (rs == 1 && (c <= 1 || cs >= r1)) {
    *out = {kTrans, c <= 1 ? r1 : cs};
    return true;
  }
  return false;
}

// A matrix view: base pointer, element strides, layout. (rows, cols) are the matrix's own sizes.
template <typename T>
struct Mat {
  const T* data;
  int64_t rows, cols, rs, cs;
  MatLayout layout;
};

// C[r0:r1] = A[r0:r1] @ B (+ bias) for A (M, K), B (K, N), C (M, N) row-major with leading dimension ldc.
template <typename T>
void gemm_rows(const Mat<T>& A, const Mat<T>& B, T* C, int64_t ldc, int64_t r0, int64_t r1, const T* bias) {
  const int64_t m = r1 - r0, n = B.cols, k = A.cols;
  if (m <= 0 || n <= 0) return;
  T* c = C + r0 * ldc;
  if (k == 0) {  // an empty sum is 0; BLAS would reject the leading dimensions of empty operands
    for (int64_t i = 0; i < m; ++i) std::memset(c + i * ldc, 0, sizeof(T) * n);
  } else {
    blas<T>()(kRowMajor, A.layout.trans, B.layout.trans, m, n, k, T(1), A.data + r0 * A.rs, A.layout.ld, B.data,
              B.layout.ld, T(0), c, ldc);
  }
  if (bias)
    for (int64_t i = 0; i < m; ++i) {
      T* row = c + i * ldc;
      for (int64_t j = 0; j < n; ++j) row[j] = row[j] + bias[j];
    }
}

using tinyml::max_threads;  // csrc/omp_threads.h
using tinyml::thread_id;

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Run parts [0, parts) on an OpenMP team: part p on thread p, or round-robin if the team came out
// smaller (inside another parallel region, or under a thread limit).
template <typename F>
void run_parts(int parts, const F& run_part) {
  if (parts <= 1) {
    run_part(0);
    return;
  }
#pragma omp parallel num_threads(parts)
  for (int p = thread_id(); p < parts; p += team_size()) run_part(p);
}

// How many slices a product of `flops` over `rows` output rows (batch matrices of M rows) is worth: at
// least min_flops in each slice once its start has moved down to the BLAS kernel's tile grid of
// `row_align` rows (slice_start), and none if the rows cannot be split on such a grid (row_align <= 0).
// The minimum also keeps each slice in the kernel regime of the whole product: OpenBLAS computes a
// product of M*N*K <= 10^6 with another kernel (its "small matrix" path on SkylakeX), whose bits differ.
inline int64_t slice_start(int64_t total, int parts, int p, int64_t M, int64_t align);
inline int slices_for(double flops, int64_t rows, double min_flops, int64_t row_align, int64_t M) {
  if (row_align <= 0 || rows <= 0) return 1;
  int64_t parts = max_threads();
  if (parts > rows) parts = rows;
  const double by_work = min_flops > 0 ? flops / min_flops : double(parts);
  if (by_work < double(parts)) parts = int64_t(by_work);
  const double per_row = flops / double(rows);
  auto smallest = [&](int n) {
    int64_t least = rows;
    for (int p = 0; p < n; ++p) {
      const int64_t size = slice_start(rows, n, p + 1, M, row_align) - slice_start(rows, n, p, M, row_align);
      least = std::min(least, size);
    }
    return least;
  };
  while (parts > 1 && double(smallest(int(parts))) * per_row < min_flops) --parts;
  return parts < 1 ? 1 : int(parts);
}

// Row p's first row of `total` = batch * M rows (batch matrices of M rows each) in `parts` slices: a
// multiple of `align` rows into its matrix. A BLAS kernel computes its output in register tiles of rows
// and may sum a tile's tail rows in another order than a whole tile's (OpenBLAS's Haswell sgemm: tiles
// of 24 rows), so a slice gives the rows the whole matrix's GEMM gives only when it starts on the
// kernel's tile grid; the cpu adapter measures that grid once (load_blas: `row_align`). align <= 0:
// everything in slice 0.
inline int64_t slice_start(int64_t total, int parts, int p, int64_t M, int64_t align) {
  if (p <= 0) return 0;
  if (p >= parts || align <= 0) return total;
  const int64_t s = total * p / parts;
  return s - (s % M) % align;
}

inline std::string dtype_of(const py::array& a) { return std::string(py::str(a.dtype())); }

// `o` itself as an array: no converted copy, which would let go of its memory or drop what is written to it.
inline py::array as_array(const py::object& o, const char* what) {
  if (!py::isinstance<py::array>(o))
    throw py::type_error(std::string(what) + ": expected a numpy array, got " +
                         std::string(py::str(py::type::of(o).attr("__name__"))));
  return py::reinterpret_borrow<py::array>(o);
}

inline void check_dtype(const py::array& a, const py::array& like, const char* what) {
  if (!a.dtype().is(like.dtype()) && !a.dtype().equal(like.dtype()))
    throw py::type_error(std::string(what) + ": expected dtype " + dtype_of(like) + ", got " + dtype_of(a));
}

// Element strides of `a`, checking that its byte strides are whole elements and its data aligned.
inline std::vector<int64_t> element_strides(const py::array& a, const char* what) {
  const int64_t item = a.itemsize();
  if (reinterpret_cast<uintptr_t>(a.data()) % item != 0)
    throw py::value_error(std::string(what) + ": data is not aligned to its " + std::to_string(item) +
                          "-byte elements");
  std::vector<int64_t> s(a.ndim());
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.strides(i) % item != 0)
      throw py::value_error(std::string(what) + ": stride " + std::to_string(a.strides(i)) +
                            " bytes is not a multiple of the element size " + std::to_string(item));
    s[i] = a.strides(i) / item;
  }
  return s;
}

template <typename T>
Mat<T> matrix_of(const py::array& a, const std::vector<int64_t>& st, const char* what) {
  const py::ssize_t d = a.ndim();
  Mat<T> m{static_cast<const T*>(a.data()), a.shape(d - 2), a.shape(d - 1), st[d - 2], st[d - 1], {}};
  if (!blas_layout(m.rows, m.cols, m.rs, m.cs, &m.layout))
    throw py::value_error(std::string(what) + ": a matrix of shape " + shape_str(a) + " with element strides (" +
                          std::to_string(m.rs) + ", " + std::to_string(m.cs) +
                          ") is not readable by BLAS in place (copy it to a contiguous array first)");
  return m;
}

inline void check_output(const py::array& out, const std::vector<int64_t>& shape, const py::array& like, const char* what) {
  check_dtype(out, like, what);
  bool same = out.ndim() == py::ssize_t(shape.size());
  for (size_t i = 0; same && i < shape.size(); ++i) same = out.shape(i) == shape[i];
  if (!same) {
    std::string want = "(";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(std::string(what) + ": expected shape " + want + (shape.size() == 1 ? ",)" : ")") +
                          ", got " + shape_str(out));
  }
  if (!(out.flags() & py::array::c_style) || !out.writeable())
    throw py::value_error(std::string(what) + ": expected a writeable C-contiguous array of shape " + shape_str(out));
}

}  // namespace matmul_detail
