// Unary elementwise kernels whose numpy reference takes several ufunc calls: the fused backward
// kernels of tanh and sigmoid, and the tail of sigmoid (tinyml/backends/reference/unary.py).
//
//   tanh_backward(y, g)       g (1 - y y)        y = tanh(x), the saved output
//   sigmoid_backward(y, g)    (g y) (1 - y)      y = sigmoid(x), the saved output
//   sigmoid_from_exp_(e)      e <- 1 / (1 + e)   e = exp(-x), computed by numpy (its exp's bits)
//
// Each runs the reference's float operations in the reference's order, one rounding per
// operation in the arrays' dtype (float32 or float64), so the result is the same bits: numpy's
// `g * (1 - y * y)` rounds y*y, then 1 - that, then the product, and so does this loop (no
// fused multiply-add: fp-contract is off below, even in a -march=native build).
// One call here costs less than numpy's ufunc calls: the backward kernels 4-6x less on 64 to 4096
// elements and 2.5x on 2^20 (one pass over memory instead of three); sigmoid's tail wins on small
// arrays (fewer calls) and ties on large ones (issue 16's report has the figures).
//
// A binding takes what it can: C-contiguous arrays of one shape and one dtype, float32 or
// float64. For anything else (float16, bfloat16, a broadcast view, mixed dtypes or shapes) it
// returns NotImplemented without touching memory, and the dispatcher runs the numpy reference
// (tinyml/backends/cpu/unary.py).
#include <cstdint>

#include "common.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace {

// One thread: the loops are bound by memory traffic on large arrays, as numpy's single-threaded ufuncs
// are, and an OpenMP team on a loaded machine cost up to 100x (bench: 17 ms for 2^18 elements).
constexpr int64_t kReleaseGil = 1 << 16;  // elements above which other Python threads may run meanwhile

template <typename T>
void tanh_bwd(const T* y, const T* g, T* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T yy = y[i] * y[i];
    T d = T(1) - yy;
    out[i] = g[i] * d;
  }
}

template <typename T>
void sigmoid_tail(T* e, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) e[i] = T(1) / (T(1) + e[i]);
}

template <typename T>
void sigmoid_bwd(const T* y, const T* g, T* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T gy = g[i] * y[i];
    T d = T(1) - y[i];
    out[i] = gy * d;
  }
}

// 0: the binding does not take these arrays; 1: float32; 2: float64. Reads only the array headers.
int taken(const py::handle& a_obj, const py::handle& b_obj) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(a_obj.ptr()) || !api.PyArray_Check_(b_obj.ptr())) return 0;
  auto *a = py::detail::array_proxy(a_obj.ptr()), *b = py::detail::array_proxy(b_obj.ptr());
  constexpr int layout = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((a->flags & layout) != layout || (b->flags & layout) != layout || a->nd != b->nd) return 0;
  for (int i = 0; i < a->nd; ++i)
    if (a->dimensions[i] != b->dimensions[i]) return 0;
  // numpy's dtype equivalence for the two types taken: the type number, in native byte order
  auto *da = py::detail::array_descriptor_proxy(a->descr), *db = py::detail::array_descriptor_proxy(b->descr);
  if (da->type_num != db->type_num || da->byteorder == '>' || db->byteorder == '>') return 0;
  return da->type_num == py::detail::npy_api::NPY_FLOAT_ ? 1 : da->type_num == py::detail::npy_api::NPY_DOUBLE_ ? 2 : 0;
}

template <typename T, void (*kernel)(const T*, const T*, T*, int64_t)>
py::object run_binary(const py::array& y, const py::array& g) {
  py::array_t<T> out(std::vector<py::ssize_t>(y.shape(), y.shape() + y.ndim()));
  const T* yp = static_cast<const T*>(y.data());
  const T* gp = static_cast<const T*>(g.data());
  T* op = out.mutable_data();
  int64_t n = y.size();
  if (n < kReleaseGil) {
    kernel(yp, gp, op, n);
  } else {
    py::gil_scoped_release release;
    kernel(yp, gp, op, n);
  }
  return std::move(out);
}

template <void (*k32)(const float*, const float*, float*, int64_t),
          void (*k64)(const double*, const double*, double*, int64_t)>
py::object dispatch_binary(py::handle y, py::handle g) {
  switch (taken(y, g)) {
    case 1: return run_binary<float, k32>(py::reinterpret_borrow<py::array>(y), py::reinterpret_borrow<py::array>(g));
    case 2: return run_binary<double, k64>(py::reinterpret_borrow<py::array>(y), py::reinterpret_borrow<py::array>(g));
    default: return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  }
}

// e <- 1 / (1 + e) in place, for a C-contiguous float32/float64 array e; NotImplemented otherwise.
py::object sigmoid_from_exp(py::handle e_obj) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(e_obj.ptr())) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  auto e = py::reinterpret_borrow<py::array>(e_obj);
  constexpr int c_contig = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
  constexpr int writeable = py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  if ((e.flags() & (c_contig | writeable)) != (c_contig | writeable))
    return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  bool f32 = tinyml::has_dtype<float>(e);
  if (!f32 && !tinyml::has_dtype<double>(e)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  int64_t n = e.size();
  void* p = e.mutable_data();
  auto tail = [&](int64_t b, int64_t f) {
    if (f32) sigmoid_tail<float>(static_cast<float*>(p) + b, f - b);
    else sigmoid_tail<double>(static_cast<double*>(p) + b, f - b);
  };
  if (n < kReleaseGil) {
    tail(0, n);
  } else {
    py::gil_scoped_release release;
    tail(0, n);
  }
  return py::reinterpret_borrow<py::object>(e_obj);
}

}  // namespace

#pragma GCC pop_options

void init_unary(py::module_& m) {
  m.def("tanh_backward", &dispatch_binary<tanh_bwd<float>, tanh_bwd<double>>, py::arg("y"), py::arg("g"),
        "g (1 - y^2) for y = tanh(x); NotImplemented unless y and g are C-contiguous float32 or float64 "
        "arrays of one shape and dtype");
  m.def("sigmoid_backward", &dispatch_binary<sigmoid_bwd<float>, sigmoid_bwd<double>>, py::arg("y"),
        py::arg("g"),
        "(g y) (1 - y) for y = sigmoid(x); NotImplemented unless y and g are C-contiguous float32 or "
        "float64 arrays of one shape and dtype");
  m.def("sigmoid_from_exp_", &sigmoid_from_exp, py::arg("e"),
        "e <- 1 / (1 + e) in place and return e (sigmoid's tail, given e = exp(-x)); NotImplemented unless e "
        "is a writeable C-contiguous float32 or float64 array");
}
