// matmul, linear and linear_backward on tinyml's OpenMP threads, each thread calling numpy's own BLAS
// (OpenBLAS, pinned to one thread) on its slice of the output:
//
//   matmul:           out[b] = a[b] @ b[b] (+ bias)   rows of out (over all batches) split across threads
//   linear_backward:  dx = g W,  dW = g^T x           on 2 threads side by side (one whole GEMM each),
//                                                     otherwise each split by rows over all threads
//
// Why not numpy's matmul on Python threads (the path this replaced): every slice was a Python thread
// hand-off with GIL wake-ups, about 34 fork-joins per baby GPT step, each costing tens of microseconds on
// a VM. Here one OpenMP region runs all the slices with the GIL released, on the same threads as every
// other C++ kernel, and a call too small to split never starts a region.
//
// BLAS is reached through a function pointer handed over by tinyml/backends/cpu/matmul.py:
// `scipy_cblas_sgemm64_` / `scipy_cblas_dgemm64_` of numpy's bundled OpenBLAS (ILP64: 64-bit ints). Each
// slice is the same cblas call numpy's matmul makes for the whole product (same transposes, leading
// dimensions and kernel), restricted to its rows, and each slice starts on the kernel's tile grid of rows
// (`row_align`, measured by the adapter: 8 for OpenBLAS's SkylakeX sgemm, 24 for its Haswell one), where
// OpenBLAS computes each output element with the same k order as in the whole product: the results
// equal numpy's bit for bit. The bias is added to a
// slice right after its GEMM, by the thread that wrote it, while the slice is in cache (out + b rounds
// once, as numpy's add does).
//
// Every binding checks dtypes, shapes, strides and alignment before it touches memory; operands must be
// "blasable" (one unit stride per matrix, the other at least the row length): the adapter copies any
// other view first.
#include "common.h"
#include "matmul_blas.h"

#include <cstdint>
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using namespace matmul_detail;

// out (..., M, N) = a (..., M, K) @ b (..., K, N) (+ bias (N,)): a and b already broadcast to one batch shape
// (stride 0 allowed along batch dims), out C-contiguous. Rows of all batches split over the threads.
template <typename T>
void matmul_impl(const py::array& a, const py::array& b, const py::array& out, const py::object& bias_obj,
                 double min_flops, int64_t row_align) {
  const py::ssize_t nd = a.ndim();
  if (nd < 2 || b.ndim() != nd)
    throw py::value_error("matmul: expected operands of one rank >= 2, got shapes " + shape_str(a) + " and " +
                          shape_str(b));
  std::vector<int64_t> out_shape;
  for (py::ssize_t i = 0; i < nd - 2; ++i) {
    if (a.shape(i) != b.shape(i))
      throw py::value_error("matmul: batch dims of " + shape_str(a) + " and " + shape_str(b) +
                            " differ (broadcast them first)");
    out_shape.push_back(a.shape(i));
  }
  if (a.shape(nd - 1) != b.shape(nd - 2))
    throw py::value_error("matmul: inner dims of " + shape_str(a) + " and " + shape_str(b) + " differ");
  out_shape.push_back(a.shape(nd - 2));
  out_shape.push_back(b.shape(nd - 1));
  check_dtype(b, a, "matmul: b");
  check_output(out, out_shape, a, "matmul: out");
  const T* bias = nullptr;
  if (!bias_obj.is_none()) {
    py::array bias_arr = as_array(bias_obj, "matmul: bias");
    check_dtype(bias_arr, a, "matmul: bias");
    if (bias_arr.ndim() != 1 || bias_arr.shape(0) != b.shape(nd - 1) || !(bias_arr.flags() & py::array::c_style))
      throw py::value_error("matmul: expected a C-contiguous bias of shape (" + std::to_string(b.shape(nd - 1)) +
                            ",), got " + shape_str(bias_arr));
    bias = static_cast<const T*>(bias_arr.data());
  }
  const auto sa = element_strides(a, "matmul: a"), sb = element_strides(b, "matmul: b");
  const Mat<T> A0 = matrix_of<T>(a, sa, "matmul: a"), B0 = matrix_of<T>(b, sb, "matmul: b");
  const int64_t M = A0.rows, K = A0.cols, N = B0.cols;
  int64_t batch = 1;
  for (py::ssize_t i = 0; i < nd - 2; ++i) batch *= a.shape(i);
  if (batch == 0 || M == 0 || N == 0) return;
  T* C = static_cast<T*>(const_cast<void*>(out.data()));  // checked writeable
  // element offsets of batch `bi` in a and b (row-major over the batch dims)
  std::vector<int64_t> bshape(out_shape.begin(), out_shape.end() - 2);
  auto offsets = [&](int64_t bi, int64_t* oa, int64_t* ob) {
    *oa = *ob = 0;
    for (int64_t d = int64_t(bshape.size()) - 1; d >= 0; --d) {
      const int64_t idx = bi % bshape[d];
      bi /= bshape[d];
      *oa += idx * sa[d];
      *ob += idx * sb[d];
    }
  };
  const int64_t total = batch * M;
  const int parts = slices_for(2.0 * double(total) * double(N) * double(K), total, min_flops, row_align, M);
  py::gil_scoped_release release;
  auto run_part = [&](int p) {
    const int64_t f0 = slice_start(total, parts, p, M, row_align);
    const int64_t f1 = slice_start(total, parts, p + 1, M, row_align);
    for (int64_t f = f0; f < f1;) {  // the part's rows, one batch at a time
      const int64_t bi = f / M, r0 = f % M, r1 = std::min<int64_t>(M, r0 + (f1 - f));
      int64_t oa, ob;
      offsets(bi, &oa, &ob);
      Mat<T> A = A0, B = B0;
      A.data += oa;
      B.data += ob;
      gemm_rows(A, B, C + bi * M * N, N, r0, r1, bias);
      f += r1 - r0;
    }
  };
  run_parts(parts, run_part);
}

// db[c0:c1] = the column sums of G's rows: 0 plus each row in order, as numpy's axis-0 sum of a
// C-contiguous array adds them (so the bits are numpy's: a column of -0.0 sums to +0.0 there too).
template <typename T>
void column_sums(const Mat<T>& G, T* db, int64_t c0, int64_t c1) {
  for (int64_t j = c0; j < c1; ++j) db[j] = T(0);
  for (int64_t i = 0; i < G.rows; ++i) {
    const T* row = G.data + i * G.rs;
    if (G.cs == 1) {
      for (int64_t j = c0; j < c1; ++j) db[j] += row[j];
    } else {
      for (int64_t j = c0; j < c1; ++j) db[j] += row[j * G.cs];
    }
  }
}

// dx (M, K) = g (M, N) @ w (N, K), dw (N, K) = g^T @ x (M, K) and db (N,) = the column sums of g; any
// output may be None. db is summed by the thread of dw (it reads g^T too), or split by columns.
template <typename T>
void linear_backward_impl(const py::array& g, const py::object& x_obj, const py::object& w_obj,
                          const py::object& dx_obj, const py::object& dw_obj, const py::object& db_obj,
                          bool side_by_side, double min_flops, int64_t row_align) {
  if (g.ndim() != 2) throw py::value_error("linear_backward: expected a 2-D g, got shape " + shape_str(g));
  const int64_t M = g.shape(0), N = g.shape(1);
  const auto sg = element_strides(g, "linear_backward: g");
  const Mat<T> G = matrix_of<T>(g, sg, "linear_backward: g");
  Mat<T> GT{G.data, N, M, sg[1], sg[0], {}};
  if (!blas_layout(N, M, GT.rs, GT.cs, &GT.layout))  // not expected: the transpose of a blasable matrix is
    throw py::value_error("linear_backward: g^T of g " + shape_str(g) + " is not readable by BLAS in place");
  bool need_dx = !dx_obj.is_none(), need_dw = !dw_obj.is_none();
  py::array w, x, dx, dw;
  Mat<T> W{}, X{};
  if (need_dx) {
    w = as_array(w_obj, "linear_backward: weight");
    dx = as_array(dx_obj, "linear_backward: dx");
    check_dtype(w, g, "linear_backward: weight");
    if (w.ndim() != 2 || w.shape(0) != N)
      throw py::value_error("linear_backward: weight of shape " + shape_str(w) + " does not match g of shape " +
                            shape_str(g));
    W = matrix_of<T>(w, element_strides(w, "linear_backward: weight"), "linear_backward: weight");
    check_output(dx, {M, w.shape(1)}, g, "linear_backward: dx");
  }
  if (need_dw) {
    x = as_array(x_obj, "linear_backward: x");
    dw = as_array(dw_obj, "linear_backward: dw");
    check_dtype(x, g, "linear_backward: x");
    if (x.ndim() != 2 || x.shape(0) != M)
      throw py::value_error("linear_backward: x of shape " + shape_str(x) + " does not match g of shape " +
                            shape_str(g));
    X = matrix_of<T>(x, element_strides(x, "linear_backward: x"), "linear_backward: x");
    check_output(dw, {N, x.shape(1)}, g, "linear_backward: dw");
  }
  const bool need_db = !db_obj.is_none();
  py::array db;
  if (need_db) {
    db = as_array(db_obj, "linear_backward: db");
    check_output(db, {N}, g, "linear_backward: db");
  }
  T* DX = need_dx ? static_cast<T*>(const_cast<void*>(dx.data())) : nullptr;  // checked writeable
  T* DW = need_dw ? static_cast<T*>(const_cast<void*>(dw.data())) : nullptr;
  T* DB = need_db ? static_cast<T*>(const_cast<void*>(db.data())) : nullptr;
  const int64_t K_dx = need_dx ? W.cols : 0, K_dw = need_dw ? X.cols : 0;
  const double flops = 2.0 * double(M) * double(N) * double((need_dx ? K_dx : 0) + (need_dw ? K_dw : 0));
  py::gil_scoped_release release;
  if (need_dx && need_dw && side_by_side && max_threads() >= 2 && flops >= 2 * min_flops) {
    // one whole GEMM per thread: each packs its B operand once, and the two have equal flops when K_dx = K_dw.
    // The calling thread (part 0) takes dW and db, the larger part: the worker starts a wake-up later, and
    // with passive waiting whichever thread reaches the region's end first sleeps until the other
    // wakes it, so the caller, whose wake-up is on the step's path, should be the one that arrives last.
    run_parts(2, [&](int p) {
      if (p == 1)
        gemm_rows(G, W, DX, K_dx, 0, M, static_cast<const T*>(nullptr));
      else
        gemm_rows(GT, X, DW, K_dw, 0, N, static_cast<const T*>(nullptr));
      if (p == 0 && need_db) column_sums(G, DB, 0, N);
    });
    return;
  }
  // otherwise each GEMM split by its output rows (each slice worth min_flops), in one region without a barrier
  const double mn = double(M) * double(N);
  const int parts_dx = need_dx ? slices_for(2.0 * mn * double(K_dx), M, min_flops, row_align, M) : 1;
  const int parts_dw = need_dw ? slices_for(2.0 * mn * double(K_dw), N, min_flops, row_align, N) : 1;
  auto run_part = [&](int p) {
    auto start = [&](int64_t rows, int parts, int q) { return slice_start(rows, parts, q, rows, row_align); };
    if (need_dx && p < parts_dx)
      gemm_rows(G, W, DX, K_dx, start(M, parts_dx, p), start(M, parts_dx, p + 1), (const T*)nullptr);
    if (p >= parts_dw) return;
    const int64_t n0 = start(N, parts_dw, p), n1 = start(N, parts_dw, p + 1);
    if (need_dw) gemm_rows(GT, X, DW, K_dw, n0, n1, (const T*)nullptr);
    if (need_db) column_sums(G, DB, n0, n1);
  };
  run_parts(std::max(parts_dx, parts_dw), run_part);
}

bool is_f32(const py::array& a) { return tinyml::has_dtype<float>(a); }
bool is_f64(const py::array& a) { return tinyml::has_dtype<double>(a); }

void need_blas(bool f32) {
  if (f32 ? g_sgemm == nullptr : g_dgemm == nullptr)
    throw py::value_error(std::string("matmul: no BLAS ") + (f32 ? "sgemm" : "dgemm") +
                          " was set (tinyml._C.matmul_set_blas)");
}

}  // namespace

void init_matmul(py::module_& m) {
  m.def(
      "matmul_set_blas",
      [](uintptr_t sgemm, uintptr_t dgemm) {
        g_sgemm = reinterpret_cast<gemm_fn<float>>(sgemm);
        g_dgemm = reinterpret_cast<gemm_fn<double>>(dgemm);
      },
      py::arg("sgemm"), py::arg("dgemm"),
      "Set the addresses of cblas_sgemm / cblas_dgemm with 64-bit integers (ILP64, row-major CBLAS "
      "signature); 0 unsets one. The caller vouches for the signature.");
  m.def("matmul_has_blas", []() { return py::make_tuple(g_sgemm != nullptr, g_dgemm != nullptr); });
  m.def(
      "matmul",
      [](const py::object& a_obj, const py::object& b_obj, const py::object& out_obj, const py::object& bias,
         double min_flops, int64_t row_align) {
        const py::array a = as_array(a_obj, "matmul: a"), b = as_array(b_obj, "matmul: b");
        const py::array out = as_array(out_obj, "matmul: out");
        if (is_f32(a)) {
          need_blas(true);
          matmul_impl<float>(a, b, out, bias, min_flops, row_align);
        } else if (is_f64(a)) {
          need_blas(false);
          matmul_impl<double>(a, b, out, bias, min_flops, row_align);
        } else {
          throw py::type_error("matmul: expected float32 or float64, got " + dtype_of(a));
        }
      },
      py::arg("a"), py::arg("b"), py::arg("out"), py::arg("bias"), py::arg("min_flops"), py::arg("row_align"));
  m.def(
      "linear_backward",
      [](const py::object& g_obj, const py::object& x, const py::object& w, const py::object& dx,
         const py::object& dw, const py::object& db, bool side_by_side, double min_flops,
         int64_t row_align) {
        const py::array g = as_array(g_obj, "linear_backward: g");
        if (is_f32(g)) {
          need_blas(true);
          linear_backward_impl<float>(g, x, w, dx, dw, db, side_by_side, min_flops, row_align);
        } else if (is_f64(g)) {
          need_blas(false);
          linear_backward_impl<double>(g, x, w, dx, dw, db, side_by_side, min_flops, row_align);
        } else {
          throw py::type_error("linear_backward: expected float32 or float64, got " + dtype_of(g));
        }
      },
      py::arg("g"), py::arg("x"), py::arg("weight"), py::arg("dx"), py::arg("dw"), py::arg("db"),
      py::arg("side_by_side"), py::arg("min_flops"), py::arg("row_align"));
}
