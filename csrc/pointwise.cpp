// The gradient of maximum / minimum, whose numpy reference (tinyml/backends/reference/pointwise.py)
// takes six ufunc calls (a comparison, an equality, two selections, a product, a difference):
//
//   minmax_backward(a, b, g, is_max) -> (ga, gb)
//       share = 1 where a wins (a > b for max, a < b for min), 1/2 where a == b, else 0
//       ga = g share,  gb = g - ga
//
// One loop with the reference's operations in its order and dtype (float32 or float64): ga is the
// same product g * share (g * 1, g * 0.5 and g * 0 round alike everywhere, -0 and NaN included), gb
// the same difference, so the results are the same bits. A NaN in a or b compares false both ways,
// as numpy's greater/less/equal do: share 0, ga = g * 0, gb = g - ga.
// The binding declines (returns NotImplemented: the reference runs) anything but three C-contiguous
// arrays of one shape and one dtype, float32 or float64 (a Python number for b included).
#include <cstdint>

#include "common.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace {

// One thread: the loops are bound by memory traffic on large arrays, as numpy's single-threaded ufuncs
// are, and an OpenMP team on a loaded machine cost up to 100x (bench: 17 ms for 2^18 elements).
constexpr int64_t kReleaseGil = 1 << 16;  // elements above which other Python threads may run meanwhile

template <typename T>
void minmax_bwd(const T* a, const T* b, const T* g, T* ga, T* gb, int64_t n, bool is_max) {
  for (int64_t i = 0; i < n; ++i) {
    bool win = is_max ? a[i] > b[i] : a[i] < b[i];
    T share = win ? T(1) : (a[i] == b[i] ? T(0.5) : T(0));
    T d = g[i] * share;
    ga[i] = d;
    gb[i] = g[i] - d;
  }
}

bool same_layout(const py::array& x, const py::array& y) {
  constexpr int c_contig = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
  if (!(y.flags() & c_contig) || x.ndim() != y.ndim()) return false;
  for (py::ssize_t i = 0; i < x.ndim(); ++i)
    if (x.shape(i) != y.shape(i)) return false;
  return true;
}

template <typename T>
py::object minmax_backward_t(const py::array& a, const py::array& b, const py::array& g, bool is_max) {
  if (!tinyml::has_dtype<T>(b) || !tinyml::has_dtype<T>(g))
    return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
  py::array_t<T> ga(shape), gb(shape);
  const T *ap = static_cast<const T*>(a.data()), *bp = static_cast<const T*>(b.data()),
          *gp = static_cast<const T*>(g.data());
  T *gap = ga.mutable_data(), *gbp = gb.mutable_data();
  int64_t n = a.size();
  auto body = [&](int64_t s, int64_t e) { minmax_bwd<T>(ap + s, bp + s, gp + s, gap + s, gbp + s, e - s, is_max); };
  if (n < kReleaseGil) {
    body(0, n);
  } else {
    py::gil_scoped_release release;
    body(0, n);
  }
  return py::make_tuple(ga, gb);
}

py::object minmax_backward(py::handle a_obj, py::handle b_obj, py::handle g_obj, bool is_max) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(a_obj.ptr()) || !api.PyArray_Check_(b_obj.ptr()) || !api.PyArray_Check_(g_obj.ptr()))
    return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  auto a = py::reinterpret_borrow<py::array>(a_obj), b = py::reinterpret_borrow<py::array>(b_obj),
       g = py::reinterpret_borrow<py::array>(g_obj);
  if (!same_layout(a, a) || !same_layout(a, b) || !same_layout(a, g))
    return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  if (tinyml::has_dtype<float>(a)) return minmax_backward_t<float>(a, b, g, is_max);
  if (tinyml::has_dtype<double>(a)) return minmax_backward_t<double>(a, b, g, is_max);
  return py::reinterpret_borrow<py::object>(Py_NotImplemented);
}

}  // namespace

#pragma GCC pop_options

void init_pointwise(py::module_& m) {
  m.def("minmax_backward", &minmax_backward, py::arg("a"), py::arg("b"), py::arg("g"), py::arg("is_max"),
        "(g share, g - g share), share = 1 where a wins, 1/2 at ties, else 0; NotImplemented unless a, b "
        "and g are C-contiguous float32 or float64 arrays of one shape and dtype");
}
