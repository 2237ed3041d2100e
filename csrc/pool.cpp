// 2-d pooling and upsampling, float32 and float64 (conv2d is in conv.cpp).
//
//   max_pool2d: y = max over the window (a NaN takes over, the first max on ties), idx = h * W + w
//   avg_pool2d: y = window sum / divisor (PyTorch's count_include_pad / divisor_override rules)
//   upsample2d: y[i, j] = sum over two taps per axis, (i0, i1, 1 - lh, lh) x (j0, j1, 1 - lw, lw),
//               taps precomputed by the adapter (nearest: one tap); backward is its adjoint
//               (pool_upsample.h: bilinear separably, nearest with integer factors as a gather).
//
// Every kernel works on (planes, H, W) slices independently: OpenMP over planes (max pooling and
// upsampling hand them out dynamically, a few at a time, so that a thread descheduled on a busy
// machine does not hold up the rest), the GIL released, shapes and index ranges checked before
// any pointer is touched.
#include "simd_math.h"

#include <limits>

#include "common.h"
#include "pool_max.h"
#include "pool_upsample.h"

namespace {

using namespace tinyml_pool;

// dx from dy at idx, plane by plane: a plane whose indices all lie in their own 2x2 window (the
// output of a 2x2 stride-2 pooling) is gathered (pool_max.h), any other plane zero-filled and
// scattered. Returns the flat position of the first index outside [-1, h * w), or planes * ohw if
// there is none; a plane holding one is not scattered (the binding then raises).
template <typename T>
ssize max_pool_bwd(const T* dy, const int64_t* idx, T* dx, ssize planes, ssize h, ssize w, ssize oh, ssize ow) {
  const ssize hw = h * w, ohw = oh * ow;
  const bool try_2x2 = 2 * oh <= h && 2 * ow <= w && w < kMaxLaneWidth;
  // calls that move kPrefetchMinBytes (dx, dy, idx) ask for their lines ahead (stream_store.h Prefetch)
  const bool far = planes * (hw * ssize(sizeof(T)) + ohw * ssize(sizeof(T) + sizeof(int64_t))) >=
                   tinyml::kPrefetchMinBytes;
  ssize bad = planes * ohw;
#pragma omp parallel for schedule(dynamic, 4) reduction(min : bad) if (planes * ohw > 32768)
  for (ssize pl = 0; pl < planes; ++pl) {
    const int64_t* ip = idx + pl * ohw;
    T* d = dx + pl * hw;
    const ssize left = far ? std::min(planes, (pl / 4 + 1) * 4) - pl : 0;  // planes to the end of the chunk
    if (try_2x2 && max_pool_bwd_2x2(dy + pl * ohw, ip, d, h, w, oh, ow, left)) continue;
    ssize first = -1;
    for (ssize k = 0; k < ohw && first < 0; ++k)
      if (ip[k] < -1 || ip[k] >= hw) first = k;
    if (first >= 0) {
      bad = std::min(bad, pl * ohw + first);
      continue;
    }
    std::fill(d, d + hw, T(0));
    for (ssize k = 0; k < ohw; ++k)
      if (ip[k] >= 0) d[ip[k]] += dy[pl * ohw + k];  // -1: a window of padding only
  }
  return bad;
}

// PyTorch's avg_pool2d divisor for output (i, j).
inline double avg_divisor(const Geo& g, ssize i, ssize j, bool include_pad, ssize override_div) {
  if (override_div) return static_cast<double>(override_div);
  ssize hs = i * g.sh - g.pt, ws = j * g.sw - g.pl;
  ssize he = std::min(hs + g.kh, g.h + g.pt), we = std::min(ws + g.kw, g.w + g.pl);
  if (include_pad) return static_cast<double>((he - hs) * (we - ws));
  hs = std::max<ssize>(hs, 0), ws = std::max<ssize>(ws, 0), he = std::min(he, g.h), we = std::min(we, g.w);
  return static_cast<double>((he - hs) * (we - ws));
}

template <typename T>
void avg_pool_fwd(const T* x, T* y, ssize planes, const Geo& g, bool include_pad, ssize div) {
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow * g.kh * g.kw > 32768)
  for (ssize pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * g.h * g.w;
    for (ssize i = 0; i < g.oh; ++i)
      for (ssize j = 0; j < g.ow; ++j) {
        const ssize h0 = std::max<ssize>(i * g.sh - g.pt, 0), h1 = std::min(i * g.sh - g.pt + g.kh, g.h);
        const ssize w0 = std::max<ssize>(j * g.sw - g.pl, 0), w1 = std::min(j * g.sw - g.pl + g.kw, g.w);
        T s = 0;
        for (ssize a = h0; a < h1; ++a)
          for (ssize b = w0; b < w1; ++b) s += xp[a * g.w + b];
        y[(pl * g.oh + i) * g.ow + j] = s / static_cast<T>(avg_divisor(g, i, j, include_pad, div));
      }
  }
}

template <typename T>
void avg_pool_bwd(const T* dy, T* dx, ssize planes, const Geo& g, bool include_pad, ssize div) {
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow * g.kh * g.kw > 32768)
  for (ssize pl = 0; pl < planes; ++pl) {
    T* d = dx + pl * g.h * g.w;
    for (ssize k = 0; k < g.h * g.w; ++k) d[k] = 0;
    for (ssize i = 0; i < g.oh; ++i)
      for (ssize j = 0; j < g.ow; ++j) {
        const ssize h0 = std::max<ssize>(i * g.sh - g.pt, 0), h1 = std::min(i * g.sh - g.pt + g.kh, g.h);
        const ssize w0 = std::max<ssize>(j * g.sw - g.pl, 0), w1 = std::min(j * g.sw - g.pl + g.kw, g.w);
        const T v = dy[(pl * g.oh + i) * g.ow + j] / static_cast<T>(avg_divisor(g, i, j, include_pad, div));
        for (ssize a = h0; a < h1; ++a)
          for (ssize b = w0; b < w1; ++b) d[a * g.w + b] += v;
      }
  }
}

// ---- bindings -------------------------------------------------------------------------------------

bool f64(const py::array& a) { return tinyml::has_dtype<double>(a); }

void need_float(const py::array& a, const char* what) {
  if (!tinyml::has_dtype<float>(a) && !f64(a))
    throw py::type_error(std::string(what) + ": dtype " + std::string(py::str(a.dtype())) +
                         " not supported (float32, float64)");
}

void need_4d(const py::array& a, const char* what) {
  if (a.ndim() != 4) throw py::value_error(std::string(what) + ": expected a 4-D array, got shape " +
                                           tinyml::shape_str(a));
}

void need_shape(const py::array& a, std::vector<ssize> shape, const char* what) {
  bool ok = a.ndim() == static_cast<ssize>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::ostringstream s;
    s << what << ": has shape " << tinyml::shape_str(a) << ", expected (";
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << (shape.size() == 1 ? ",)" : ")");
    throw py::value_error(s.str());
  }
}

void check_geo(const Geo& g, const char* what) {
  if (g.kh < 1 || g.kw < 1 || g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.pt < 0 || g.pl < 0 || g.oh < 0 ||
      g.ow < 0 || g.h < 1 || g.w < 1) {
    std::ostringstream s;
    s << what << ": kernel (" << g.kh << ", " << g.kw << "), stride (" << g.sh << ", " << g.sw << "), dilation ("
      << g.dh << ", " << g.dw << ") and input size (" << g.h << ", " << g.w << ") must be positive, padding ("
      << g.pt << ", " << g.pl << ") and output size (" << g.oh << ", " << g.ow << ") non-negative";
    throw py::value_error(s.str());
  }
  // PyTorch's pooling_output_shape: the last window starts inside the input or its left padding
  if ((g.oh && (g.oh - 1) * g.sh >= g.h + g.pt) || (g.ow && (g.ow - 1) * g.sw >= g.w + g.pl)) {
    std::ostringstream s;
    s << what << ": output size (" << g.oh << ", " << g.ow << ") has windows that start past input (" << g.h
      << ", " << g.w << ") with stride (" << g.sh << ", " << g.sw << ") and padding (" << g.pt << ", " << g.pl
      << ")";
    throw py::value_error(s.str());
  }
}

Geo geo_from(const py::array& x, ssize kh, ssize kw, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh, ssize dw,
             ssize oh, ssize ow, const char* what) {
  need_4d(x, what);
  Geo g{x.shape(1), x.shape(2), x.shape(3), kh, kw, sh, sw, pt, pl, dh, dw, oh, ow};
  check_geo(g, what);
  return g;
}

// nearest: the mode's flag (True for nearest / nearest-exact, False for bilinear), or None to infer
// it from the taps (second taps equal to the first and every weight 0, which is what the nearest
// modes pass; a bilinear resize to the input's own size, or of a 1 x 1 input, passes the same taps
// and needs the flag to keep PyTorch's inf * 0 = NaN).
template <typename T>
Taps<T> taps_from(const std::vector<py::array>& t, ssize h, ssize w, ssize oh, ssize ow, const py::object& mode) {
  const char* names[6] = {"h0", "h1", "w0", "w1", "lh", "lw"};
  const ssize lens[6] = {oh, oh, ow, ow, oh, ow};
  const ssize lim[4] = {h, h, w, w};
  for (int i = 0; i < 6; ++i) {
    if (i < 4) tinyml::check_array<int64_t>(t[i], names[i]);
    else tinyml::check_array<T>(t[i], names[i]);
    need_shape(t[i], {lens[i]}, names[i]);
    if (i < 4) {
      const int64_t* p = static_cast<const int64_t*>(t[i].data());
      for (ssize k = 0; k < lens[i]; ++k)
        if (p[k] < 0 || p[k] >= lim[i])
          throw py::value_error(std::string("upsample2d: tap ") + names[i] + "[" + std::to_string(k) + "] = " +
                                std::to_string(p[k]) + " is outside [0, " + std::to_string(lim[i]) + ")");
    }
  }
  Taps<T> k{static_cast<const int64_t*>(t[0].data()), static_cast<const int64_t*>(t[1].data()),
            static_cast<const int64_t*>(t[2].data()), static_cast<const int64_t*>(t[3].data()),
            static_cast<const T*>(t[4].data()), static_cast<const T*>(t[5].data()), true};
  if (!mode.is_none()) {
    if (!py::isinstance<py::bool_>(mode))
      throw py::type_error("upsample2d: nearest must be True, False or None, got " + std::string(py::repr(mode)));
    k.nearest = mode.cast<bool>();
    return k;
  }
  for (ssize i = 0; i < oh && k.nearest; ++i) k.nearest = k.lh[i] == T(0) && k.h1[i] == k.h0[i];
  for (ssize j = 0; j < ow && k.nearest; ++j) k.nearest = k.lw[j] == T(0) && k.w1[j] == k.w0[j];
  return k;
}

template <typename T>
py::array upsample_any(py::array x, ssize oh_or_h, ssize ow_or_w, const std::vector<py::array>& taps, bool backward,
                       const py::object& nearest) {
  tinyml::check_array<T>(x, backward ? "upsample2d_backward dy" : "upsample2d x");
  need_4d(x, "upsample2d");
  const ssize planes = x.shape(0) * x.shape(1);
  // forward: x (.., h, w) -> (.., oh, ow); backward: dy (.., oh, ow) -> (.., h, w)
  const ssize h = backward ? oh_or_h : x.shape(2), w = backward ? ow_or_w : x.shape(3);
  const ssize oh = backward ? x.shape(2) : oh_or_h, ow = backward ? x.shape(3) : ow_or_w;
  if (h < 1 || w < 1 || oh < 1 || ow < 1) throw py::value_error("upsample2d: sizes must be positive");
  Taps<T> k = taps_from<T>(taps, h, w, oh, ow, nearest);
  py::array_t<T> out({x.shape(0), x.shape(1), backward ? h : oh, backward ? w : ow});
  const T* xp = static_cast<const T*>(x.data());
  T* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    if (backward) upsample_bwd<T>(xp, op, planes, h, w, oh, ow, k);
    else upsample_fwd<T>(xp, op, planes, h, w, oh, ow, k);
  }
  return out;
}

}  // namespace

void init_pool(py::module_& m) {
  m.def("max_pool2d_forward", [](py::array x, ssize kh, ssize kw, ssize sh, ssize sw, ssize ph, ssize pw, ssize dh,
                                 ssize dw, ssize oh, ssize ow) {
    need_float(x, "max_pool2d");
    Geo g = geo_from(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, "max_pool2d");
    py::array y = py::array(x.dtype(), std::vector<ssize>{x.shape(0), g.c, oh, ow});
    py::array_t<int64_t> idx({x.shape(0), g.c, oh, ow});
    const ssize planes = x.shape(0) * g.c;
    if (f64(x)) {
      tinyml::check_array<double>(x, "max_pool2d x");
      py::gil_scoped_release r;
      max_pool_fwd<double>(static_cast<const double*>(x.data()), static_cast<double*>(y.mutable_data()),
                           idx.mutable_data(), planes, g);
    } else {
      tinyml::check_array<float>(x, "max_pool2d x");
      py::gil_scoped_release r;
      max_pool_fwd<float>(static_cast<const float*>(x.data()), static_cast<float*>(y.mutable_data()),
                          idx.mutable_data(), planes, g);
    }
    return py::make_tuple(y, idx);
  });
  m.def("max_pool2d_backward", [](py::array dy, py::array idx, ssize h, ssize w) {
    need_float(dy, "max_pool2d_backward");
    need_4d(dy, "max_pool2d_backward dy");
    tinyml::check_array<int64_t>(idx, "max_pool2d_backward indices");
    tinyml::check_same_shape(dy, idx, "max_pool2d_backward dy", "indices");
    if (h < 1 || w < 1)
      throw py::value_error("max_pool2d_backward: input size (" + std::to_string(h) + ", " + std::to_string(w) +
                            ") must be positive");
    py::array dx = py::array(dy.dtype(), std::vector<ssize>{dy.shape(0), dy.shape(1), h, w});
    const ssize planes = dy.shape(0) * dy.shape(1), ohw = dy.shape(2) * dy.shape(3);
    const int64_t* ip = static_cast<const int64_t*>(idx.data());
    // -1 marks a window of padding only (no input element, no gradient); anything else outside the
    // plane is not an index the forward gave: refused, and the partly written dx is dropped
    ssize bad;
    if (f64(dy)) {
      tinyml::check_array<double>(dy, "max_pool2d_backward dy");
      py::gil_scoped_release r;
      bad = max_pool_bwd<double>(static_cast<const double*>(dy.data()), ip, static_cast<double*>(dx.mutable_data()),
                                 planes, h, w, dy.shape(2), dy.shape(3));
    } else {
      tinyml::check_array<float>(dy, "max_pool2d_backward dy");
      py::gil_scoped_release r;
      bad = max_pool_bwd<float>(static_cast<const float*>(dy.data()), ip, static_cast<float*>(dx.mutable_data()),
                                planes, h, w, dy.shape(2), dy.shape(3));
    }
    if (bad < planes * ohw)
      throw py::value_error("max_pool2d_backward: index " + std::to_string(ip[bad]) + " at flat position " +
                            std::to_string(bad) + " is outside [-1, " + std::to_string(h * w) + ") for input (" +
                            std::to_string(h) + ", " + std::to_string(w) + ")");
    return dx;
  });
  m.def("avg_pool2d_forward", [](py::array x, ssize kh, ssize kw, ssize sh, ssize sw, ssize ph, ssize pw, ssize oh,
                                 ssize ow, bool include_pad, ssize div) {
    need_float(x, "avg_pool2d");
    Geo g = geo_from(x, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow, "avg_pool2d");
    py::array y = py::array(x.dtype(), std::vector<ssize>{x.shape(0), g.c, oh, ow});
    const ssize planes = x.shape(0) * g.c;
    if (f64(x)) {
      tinyml::check_array<double>(x, "avg_pool2d x");
      py::gil_scoped_release r;
      avg_pool_fwd<double>(static_cast<const double*>(x.data()), static_cast<double*>(y.mutable_data()), planes, g,
                           include_pad, div);
    } else {
      tinyml::check_array<float>(x, "avg_pool2d x");
      py::gil_scoped_release r;
      avg_pool_fwd<float>(static_cast<const float*>(x.data()), static_cast<float*>(y.mutable_data()), planes, g,
                          include_pad, div);
    }
    return y;
  });
  m.def("avg_pool2d_backward", [](py::array dy, ssize h, ssize w, ssize kh, ssize kw, ssize sh, ssize sw, ssize ph,
                                  ssize pw, bool include_pad, ssize div) {
    need_float(dy, "avg_pool2d_backward");
    need_4d(dy, "avg_pool2d_backward dy");
    Geo g{dy.shape(1), h, w, kh, kw, sh, sw, ph, pw, 1, 1, dy.shape(2), dy.shape(3)};
    check_geo(g, "avg_pool2d_backward");
    py::array dx = py::array(dy.dtype(), std::vector<ssize>{dy.shape(0), g.c, h, w});
    const ssize planes = dy.shape(0) * g.c;
    if (f64(dy)) {
      tinyml::check_array<double>(dy, "avg_pool2d_backward dy");
      py::gil_scoped_release r;
      avg_pool_bwd<double>(static_cast<const double*>(dy.data()), static_cast<double*>(dx.mutable_data()), planes, g,
                           include_pad, div);
    } else {
      tinyml::check_array<float>(dy, "avg_pool2d_backward dy");
      py::gil_scoped_release r;
      avg_pool_bwd<float>(static_cast<const float*>(dy.data()), static_cast<float*>(dx.mutable_data()), planes, g,
                          include_pad, div);
    }
    return dx;
  });
  m.def("upsample2d_forward", [](py::array x, ssize oh, ssize ow, py::array h0, py::array h1, py::array w0, py::array w1,
                                 py::array lh, py::array lw, py::object nearest) {
    std::vector<py::array> taps{h0, h1, w0, w1, lh, lw};
    need_float(x, "upsample2d");
    return f64(x) ? upsample_any<double>(x, oh, ow, taps, false, nearest)
                  : upsample_any<float>(x, oh, ow, taps, false, nearest);
  }, "y (N, C, oh, ow) from x (N, C, H, W) and the taps (h0, h1, w0, w1, lh, lw); nearest: one tap per axis "
     "(None: inferred from the taps)", py::arg("x"), py::arg("oh"), py::arg("ow"), py::arg("h0"), py::arg("h1"),
     py::arg("w0"), py::arg("w1"), py::arg("lh"), py::arg("lw"), py::arg("nearest") = py::none());
  m.def("upsample2d_backward", [](py::array dy, ssize h, ssize w, py::array h0, py::array h1, py::array w0, py::array w1,
                                 py::array lh, py::array lw, py::object nearest) {
    std::vector<py::array> taps{h0, h1, w0, w1, lh, lw};
    need_float(dy, "upsample2d_backward");
    return f64(dy) ? upsample_any<double>(dy, h, w, taps, true, nearest)
                   : upsample_any<float>(dy, h, w, taps, true, nearest);
  }, "dx (N, C, H, W) from dy (N, C, oh, ow): the adjoint of upsample2d_forward with the same taps",
     py::arg("dy"), py::arg("h"), py::arg("w"), py::arg("h0"), py::arg("h1"), py::arg("w0"), py::arg("w1"),
     py::arg("lh"), py::arg("lw"), py::arg("nearest") = py::none());
}
