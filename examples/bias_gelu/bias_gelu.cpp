// bias_gelu: y = gelu(x + b) fused in one pass, and its backward, on float32 (rows, n) arrays.
//
//   forward:   h = x + b,  y = h * Phi(h),  Phi(h) = (1 + erf(h / sqrt 2)) / 2
//   backward:  dh = dy * (Phi(h) + h * phi(h)),  phi(h) = exp(-h^2 / 2) / sqrt(2 pi)
//              dx = dh,  db = sum over rows of dh
//
// Build: tinyml.utils.cpp_extension.load("bias_gelu_ext", ["bias_gelu.cpp"])
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

namespace py = pybind11;
using Array = py::array_t<float, py::array::c_style>;

// Check before touching memory: a wrong shape raises ValueError in Python, never a crash.
static void check(const py::array& x, const py::array& b) {
  if (!x.dtype().is(py::dtype::of<float>()) || !b.dtype().is(py::dtype::of<float>()))
    throw py::type_error("bias_gelu: expected float32 arrays, got " + std::string(py::str(x.dtype())) + " and " +
                         std::string(py::str(b.dtype())));
  if (x.ndim() != 2 || b.ndim() != 1 || b.shape(0) != x.shape(1))
    throw py::value_error("bias_gelu: expected x (rows, n) and b (n,), got x with " + std::to_string(x.ndim()) +
                          " dims and b of " + std::to_string(b.ndim() ? b.shape(0) : 0) + " elements");
  if (!(x.flags() & py::array::c_style)) throw py::value_error("bias_gelu: x must be C-contiguous");
}

py::array forward(py::array x_in, py::array b_in) {
  check(x_in, b_in);
  Array x(x_in), b(b_in);
  const py::ssize_t rows = x.shape(0), n = x.shape(1);
  Array y({rows, n});
  const float* xp = x.data();
  const float* bp = b.data();
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static)
    for (py::ssize_t r = 0; r < rows; ++r)
      for (py::ssize_t i = 0; i < n; ++i) {
        float h = xp[r * n + i] + bp[i];
        yp[r * n + i] = 0.5f * h * (1.0f + std::erf(h * 0.70710678f));
      }
  }
  return y;
}

py::tuple backward(py::array x_in, py::array b_in, py::array dy_in) {
  check(x_in, b_in);
  Array x(x_in), b(b_in), dy(dy_in);
  if (dy.ndim() != 2 || dy.shape(0) != x.shape(0) || dy.shape(1) != x.shape(1))
    throw py::value_error("bias_gelu: grad_output must have x's shape");
  const py::ssize_t rows = x.shape(0), n = x.shape(1);
  Array dx({rows, n});
  std::vector<double> db(n, 0.0);
  const float *xp = x.data(), *bp = b.data(), *gp = dy.data();
  float* dp = dx.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel
    {
      std::vector<double> local(n, 0.0);  // per-thread partial sums: no race on db
#pragma omp for schedule(static)
      for (py::ssize_t r = 0; r < rows; ++r)
        for (py::ssize_t i = 0; i < n; ++i) {
          float h = xp[r * n + i] + bp[i];
          float cdf = 0.5f * (1.0f + std::erf(h * 0.70710678f));
          float pdf = 0.39894228f * std::exp(-0.5f * h * h);
          float g = gp[r * n + i] * (cdf + h * pdf);
          dp[r * n + i] = g;
          local[i] += g;
        }
#pragma omp critical
      for (py::ssize_t i = 0; i < n; ++i) db[i] += local[i];
    }
  }
  Array db_out(n);
  for (py::ssize_t i = 0; i < n; ++i) db_out.mutable_data()[i] = static_cast<float>(db[i]);
  return py::make_tuple(dx, db_out);
}

PYBIND11_MODULE(bias_gelu_ext, m) {
  m.def("bias_gelu_forward", &forward, py::arg("x"), py::arg("b"));
  m.def("bias_gelu_backward", &backward, py::arg("x"), py::arg("b"), py::arg("dy"));
}
