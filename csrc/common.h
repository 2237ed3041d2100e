// Shared helpers for tinyml's C++ kernels: argument validation before any pointer is touched,
// and the OpenMP thread count. Every binding checks dtype, contiguity and sizes here and raises a
// Python ValueError/TypeError naming the values, so a bad call never reads out of bounds.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <sstream>
#include <string>
#include <vector>

namespace py = pybind11;

namespace tinyml {

inline std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  if (a.ndim() == 1) s << ",";
  s << ")";
  return s.str();
}

// Whether `a` holds T: numpy's dtype equivalence (PyArray_EquivTypes), not object identity, so an
// equal dtype built another way (e.g. '<f4' or from a byte-order change) still counts.
template <typename T>
inline bool has_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T>>(a);
}

// A float array of dtype T, C-contiguous; `what` names the argument in the error.
template <typename T>
inline void check_array(const py::array& a, const char* what) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(what) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                         ", got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(what) + ": expected a C-contiguous array of shape " + shape_str(a));
}

inline void check_same_shape(const py::array& a, const py::array& b, const char* what_a, const char* what_b) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same)
    throw py::value_error(std::string(what_a) + " has shape " + shape_str(a) + " but " + what_b + " has shape " +
                          shape_str(b));
}

inline py::ssize_t last_dim(const py::array& a, const char* what) {
  if (a.ndim() < 1) throw py::value_error(std::string(what) + ": expected at least 1 dimension, got a 0-d array");
  return a.shape(a.ndim() - 1);
}

}  // namespace tinyml
