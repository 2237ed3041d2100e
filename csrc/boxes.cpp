// Box kernels, float32 and float64: non-maximum suppression and merging over (N, 4) xyxy boxes, the
// Python bindings (the kernels are in boxes_nms.h and boxes_nmm.h).
//
//   box_aspect_atan(w, h)  atan(w / h) elementwise (CIoU's aspect term)
//   nms_forward            greedy NMS over boxes visited in a given order (the op sorts by score):
//                          the kept indices. m(i, j) is IoU or IoS; suppression when m > t
//                          (torchvision) or m >= t (inclusive, sahi; a zero denominator gives m = 0).
//   nmm_forward            sahi's greedy / transitive non-maximum merging: owner and claim order.
// The reference is tinyml/backends/reference/boxes.py.
#include <algorithm>
#include <cmath>

#include "boxes_nmm.h"
#include "boxes_nms.h"
#include "common.h"

namespace {

using ssize = py::ssize_t;
using tinyml::boxes::nmm_dispatch;
using tinyml::boxes::nms_dispatch;

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
    nmm_dispatch<T>(static_cast<const T*>(boxes.data()), static_cast<const T*>(scores.data()), order.data(), n,
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
