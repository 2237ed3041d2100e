// softmax / log_softmax over the last dimension, forward and backward, float32 and float64.
//
//   softmax:      y_i = exp(x_i - m) / sum_j exp(x_j - m),  m = max_j x_j
//   backward:     dx_i = y_i * (dy_i - sum_j dy_j y_j)
//   log_softmax:  y_i = (x_i - m) - log sum_j exp(x_j - m)
//   backward:     dx_i = dy_i - exp(y_i) * sum_j dy_j
//
// Rows are independent: OpenMP over rows, the GIL released for the whole call. Inputs are
// (rows, n) C-contiguous arrays (the Python adapter makes them so); sizes are checked first.
//
// Non-finite values follow PyTorch: the max skips NaN, but exp(NaN - m) is NaN, so a NaN anywhere
// in a row makes the whole row NaN; a +inf gives exp(inf - inf) = NaN too; a row of all -inf is
// 0/0 = NaN; a -inf among finite values gets probability 0. log_softmax subtracts the max before
// the log-sum (x - m is exact near the max), so large logits (1e8) keep full precision.
#include "simd_math.h"  // first: fp-contract, fexp, target_clones
#include "common.h"

#include <cmath>

namespace {

template <typename T>
TINYML_CLONES void softmax_row(const T* __restrict xr, T* __restrict yr, py::ssize_t n, bool log) {
  T m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (py::ssize_t i = 0; i < n; ++i) m = xr[i] > m ? xr[i] : m;
  if (std::isinf(m) && m < 0) m = 0;  // an all -inf row: exp(-inf - 0) = 0, so s = 0 and y = 0/0 = NaN
  T s = 0;
  if (log) {
#pragma omp simd reduction(+ : s)
    for (py::ssize_t i = 0; i < n; ++i) s += tinyml::vexp0<T>(xr[i] - m);
    T log_s = std::log(s);
#pragma omp simd
    for (py::ssize_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) - log_s;
  } else {
#pragma omp simd reduction(+ : s)
    for (py::ssize_t i = 0; i < n; ++i) {
      T e = tinyml::vexp0<T>(xr[i] - m);
      yr[i] = e;
      s += e;
    }
    T inv = T(1) / s;
#pragma omp simd
    for (py::ssize_t i = 0; i < n; ++i) yr[i] *= inv;
  }
}

template <typename T>
void softmax_rows(const T* x, T* y, py::ssize_t rows, py::ssize_t n, bool log) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (py::ssize_t r = 0; r < rows; ++r) softmax_row<T>(x + r * n, y + r * n, n, log);
}

template <typename T>
TINYML_CLONES void softmax_backward_row(const T* __restrict yr, const T* __restrict gr, T* __restrict dr,
                                        py::ssize_t n, bool log) {
  T s = 0;
  if (log) {
#pragma omp simd reduction(+ : s)
    for (py::ssize_t i = 0; i < n; ++i) s += gr[i];
#pragma omp simd
    for (py::ssize_t i = 0; i < n; ++i) dr[i] = gr[i] - tinyml::vexp0<T>(yr[i]) * s;
  } else {
#pragma omp simd reduction(+ : s)
    for (py::ssize_t i = 0; i < n; ++i) s += gr[i] * yr[i];
#pragma omp simd
    for (py::ssize_t i = 0; i < n; ++i) dr[i] = yr[i] * (gr[i] - s);
  }
}

template <typename T>
void softmax_backward_rows(const T* y, const T* dy, T* dx, py::ssize_t rows, py::ssize_t n, bool log) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (py::ssize_t r = 0; r < rows; ++r) softmax_backward_row<T>(y + r * n, dy + r * n, dx + r * n, n, log);
}

template <typename T>
py::array forward(py::array x, bool log) {
  tinyml::check_array<T>(x, "softmax input");
  py::ssize_t n = tinyml::last_dim(x, "softmax input");
  py::ssize_t rows = n ? x.size() / n : 0;
  py::array_t<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const T* xp = static_cast<const T*>(x.data());
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    softmax_rows<T>(xp, yp, rows, n, log);
  }
  return y;
}

template <typename T>
py::array backward(py::array y, py::array dy, bool log) {
  tinyml::check_array<T>(y, "softmax output");
  tinyml::check_array<T>(dy, "softmax grad_output");
  tinyml::check_same_shape(y, dy, "softmax output", "grad_output");
  py::ssize_t n = tinyml::last_dim(y, "softmax output");
  py::ssize_t rows = n ? y.size() / n : 0;
  py::array_t<T> dx(std::vector<py::ssize_t>(y.shape(), y.shape() + y.ndim()));
  const T* yp = static_cast<const T*>(y.data());
  const T* gp = static_cast<const T*>(dy.data());
  T* dp = dx.mutable_data();
  {
    py::gil_scoped_release release;
    softmax_backward_rows<T>(yp, gp, dp, rows, n, log);
  }
  return dx;
}

// Dispatch on dtype: float32 and float64 are supported; anything else is a TypeError naming it.
py::array forward_any(py::array x, bool log) {
  if (tinyml::has_dtype<float>(x)) return forward<float>(x, log);
  if (tinyml::has_dtype<double>(x)) return forward<double>(x, log);
  throw py::type_error("softmax: dtype " + std::string(py::str(x.dtype())) + " not supported (float32, float64)");
}

py::array backward_any(py::array y, py::array dy, bool log) {
  if (tinyml::has_dtype<float>(y)) return backward<float>(y, dy, log);
  if (tinyml::has_dtype<double>(y)) return backward<double>(y, dy, log);
  throw py::type_error("softmax: dtype " + std::string(py::str(y.dtype())) + " not supported (float32, float64)");
}

}  // namespace

void init_softmax(py::module_& m) {
  m.def("softmax_forward", [](py::array x) { return forward_any(x, false); }, py::arg("x"));
  m.def("softmax_backward", [](py::array y, py::array dy) { return backward_any(y, dy, false); }, py::arg("y"),
        py::arg("dy"));
  m.def("log_softmax_forward", [](py::array x) { return forward_any(x, true); }, py::arg("x"));
  m.def("log_softmax_backward", [](py::array y, py::array dy) { return backward_any(y, dy, true); },
        py::arg("y"), py::arg("dy"));
}
