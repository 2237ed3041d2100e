// Activations, forward and backward, float32 and float64, one pass over memory each:
//
//   gelu (erf):   y = x/2 erfc(-x/sqrt2)            dy/dx = erfc(-x/sqrt2)/2 + x phi(x)
//   gelu (tanh):  u = sqrt(2/pi)(x + 0.044715 x^3), y = x/2 (1 + tanh u) = x sigmoid(2u)
//                 dy/dx = s + 2 x s (1-s) u',  s = sigmoid(2u), u' = sqrt(2/pi)(1 + 3*0.044715 x^2)
//   silu:         y = x sigmoid(x)                  dy/dx = s (1 + x (1 - s))
//   swiglu:       y = silu(a) b                     da = dy b silu'(a),  db = dy silu(a)
//   softplus:     y = log(1 + e^{beta x})/beta (x where beta x > threshold)   dy/dx = sigmoid(beta x)
//
// The float paths use the polynomial exp of simd_math.h so the loops vectorize (gelu's erf through
// gelu_cdf below: one exp shared by Phi and phi); the sigmoid form of tanh-gelu keeps 1 + tanh(u)
// accurate for very negative x. OpenMP over contiguous chunks,
// the GIL released.
//
// NaN and +-inf give what PyTorch's formulas give in IEEE arithmetic (its float64 kernels; its float32
// gelu turns +inf into NaN through a vectorised erf, which is not followed): silu(-inf) = -inf / inf =
// NaN, gelu(-inf) = -inf * 0 = NaN, gelu(+inf) = +inf, and every derivative at +-inf is NaN (inf * 0)
// except softplus's. So the exps below overflow to a true inf and underflow to a true 0 (vexp_ieee,
// vexp0), where simd_math.h's fexp saturates at ~2.4e38 and ~1e-38 and would give -inf or a finite
// value instead.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"
#include "exp_nonpos.h"

#include <algorithm>
#include <limits>
#include <type_traits>

namespace {

using tinyml::vexp0;
using tinyml::verfc;

// exp(x) with IEEE ends for the denominators 1 + exp(-x) of the sigmoid forms (a true inf at the top):
// the values of simd_math.h's vexp_ieee, `x > 88.72.. ? inf : x < -87.33.. ? 0 : fexp(x)`, bit for bit,
// with fexp's selects moved into one chain after its arithmetic (exp_nonpos.h's fexp_core). GCC then
// blends three times instead of masking the whole polynomial: silu's forward 0.29 -> 0.23 ns per float
// in cache on Zen 5 (docs/cpu_speed.md "Session 11, late"). NaN fails every compare and stays NaN.
inline float fexp_ieee_chain(float x) {
  float y = tinyml::fexp_core(x);
  y = x > 88.3762626647949f ? 0x1.6a0948p+127f : y;  // fexp's top end, for x in (88.376, 88.723]
  y = x > 88.72283935546875f ? std::numeric_limits<float>::infinity() : y;
  return x < -87.33654475f ? 0.0f : y;
}
template <typename T> inline T vexp_ieee(T x) { return tinyml::vexp_ieee<T>(x); }
template <> inline float vexp_ieee<float>(float x) { return fexp_ieee_chain(x); }

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr int64_t kParallel = 1 << 15;  // elements below which one thread is faster

// Phi(x) = erfc(-x/sqrt2)/2 for float32 gelu (erf), and e = exp(-x^2/2), which the backward's
// phi(x) = e/sqrt(2 pi) reuses (one exp per element in both directions, no second erfc). With
// z = |x|/sqrt2 and t = 1/(1 + 0.3 z) in (0, 1]:
//   erfc(z) = exp(-z^2) t Q(t),   Q(t) = erfcx(z)/t (erfcx(z) = e^{z^2} erfc(z), smooth in t: Q(1) = 1,
//   Q(0) = 0.3/sqrt(pi)), a degree-8 polynomial fitted for relative error (Lawson-weighted least
//   squares on 4000 Chebyshev nodes of t for z in [0, 9.5]: 2e-8; 2e-7 in float32 Horner with the
//   coefficients below, which hold Q/2 so that h = e t Q(t)/2 = Phi(-|x|) directly).
// Phi(x) = h for x < 0, 1 - h for x >= 0. exp(-z^2) = exp(-x^2/2) is computed from x (x*x/2 rounds
// once; z = x/sqrt2 would add a rounding that z^2 doubles). Ends: x = +-inf gives e = 0, t = 0, h = 0,
// so Phi(+inf) = 1 and Phi(-inf) = 0 (gelu(-inf) = -inf * 0 = NaN, as documented above); NaN stays NaN.
// Past |x| = 13.2 e is a true 0 (fexp0_nonpos, csrc/exp_nonpos.h: fexp0's bits without its selects).
// Measured on 10M floats of [-14, 14] against float64
// (docs/cpu_speed.md "Session 11"): forward at most 9.1 ulp on [-4, 4] (the erfc(-x/sqrt2) form this
// replaces: 26.8), backward 7.7 ulp of its larger term (7.1).
inline float gelu_cdf(float x, float* e_out) {
  const float e = tinyml::fexp0_nonpos(-0.5f * x * x);
  const float z = x < 0 ? -x : x;
  const float t = 1.0f / (1.0f + 0.212132034f * z);  // 0.3 / sqrt(2)
  float q = -6.47170320e-02f;
  q = q * t + 2.42548198e-01f;
  q = q * t - 2.55613178e-01f;
  q = q * t + 2.73197472e-01f;
  q = q * t - 4.68155853e-02f;
  q = q * t + 1.07218124e-01f;
  q = q * t + 7.42412210e-02f;
  q = q * t + 8.53459686e-02f;
  q = q * t + 8.45948085e-02f;
  const float h = e * t * q;
  *e_out = e;
  return x < 0 ? h : 1.0f - h;
}

template <typename T>
TINYML_CLONES void gelu_fwd(const T* __restrict x, T* __restrict y, int64_t n, bool tanh_approx) {
  if (tanh_approx) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T v = x[i];
      T u = T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v);
      y[i] = v / (T(1) + vexp_ieee<T>(T(-2) * u));
    }
  } else if constexpr (std::is_same_v<T, float>) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      float e;
      y[i] = x[i] * gelu_cdf(x[i], &e);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = T(0.5) * x[i] * verfc<T>(-x[i] * T(kSqrt1_2));
  }
}

template <typename T>
TINYML_CLONES void gelu_bwd(const T* __restrict x, const T* __restrict dy, T* __restrict dx, int64_t n,
                            bool tanh_approx) {
  if (tanh_approx) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T v = x[i];
      T u = T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v);
      T du = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * v * v);
      // simd_math.h's form here: the select chain measured 5% slower in this loop (same values)
      T s = T(1) / (T(1) + tinyml::vexp_ieee<T>(T(-2) * u));
      dx[i] = dy[i] * (s + T(2) * v * s * (T(1) - s) * du);
    }
  } else if constexpr (std::is_same_v<T, float>) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      float e, v = x[i];
      float cdf = gelu_cdf(v, &e);
      dx[i] = dy[i] * (cdf + v * (float(kInvSqrt2Pi) * e));  // e = exp(-x^2/2): phi(x) sqrt(2 pi)
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T v = x[i];
      T cdf = T(0.5) * verfc<T>(-v * T(kSqrt1_2));
      T pdf = T(kInvSqrt2Pi) * vexp0<T>(T(-0.5) * v * v);  // a true 0: +-inf * pdf is NaN
      dx[i] = dy[i] * (cdf + v * pdf);
    }
  }
}

template <typename T>
TINYML_CLONES void silu_fwd(const T* __restrict x, T* __restrict y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (T(1) + vexp_ieee<T>(-x[i]));
}

template <typename T>
TINYML_CLONES void silu_bwd(const T* __restrict x, const T* __restrict dy, T* __restrict dx, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T s = T(1) / (T(1) + vexp_ieee<T>(-x[i]));
    dx[i] = dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <typename T>
TINYML_CLONES void swiglu_fwd(const T* __restrict a, const T* __restrict b, T* __restrict y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] / (T(1) + vexp_ieee<T>(-a[i])) * b[i];
}

template <typename T>
TINYML_CLONES void swiglu_bwd(const T* __restrict a, const T* __restrict b, const T* __restrict dy,
                              T* __restrict da, T* __restrict db, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T s = T(1) / (T(1) + vexp_ieee<T>(-a[i]));
    T silu = a[i] * s;
    da[i] = dy[i] * b[i] * s * (T(1) + a[i] * (T(1) - s));
    db[i] = dy[i] * silu;
  }
}

// softplus needs log1p, which has no vectorizable form here; it is not a hot kernel.
template <typename T>
void softplus_fwd(const T* x, T* y, int64_t n, double beta, double threshold) {
  for (int64_t i = 0; i < n; ++i) {
    T bx = T(beta) * x[i];
    y[i] = bx > T(threshold) ? x[i] : std::log1p(std::exp(bx)) / T(beta);
  }
}

template <typename T>
void softplus_bwd(const T* x, const T* dy, T* dx, int64_t n, double beta, double threshold) {
  for (int64_t i = 0; i < n; ++i) {
    T bx = T(beta) * x[i];
    dx[i] = bx > T(threshold) ? dy[i] : dy[i] / (T(1) + std::exp(-bx));
  }
}

// ---- bindings --------------------------------------------------------------------------------

py::array like(const py::array& x) {
  return py::array(x.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
}

template <typename T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// Validate that every array has x's dtype (float32/float64), is C-contiguous and has x's shape.
bool is_double(const char* op, std::initializer_list<std::pair<const py::array*, const char*>> args) {
  const py::array& x = *args.begin()->first;
  bool dbl = tinyml::has_dtype<double>(x);
  if (!dbl && !tinyml::has_dtype<float>(x))
    throw py::type_error(std::string(op) + ": dtype " + std::string(py::str(x.dtype())) +
                         " not supported (float32, float64)");
  for (auto& [a, name] : args) {
    if (dbl) tinyml::check_array<double>(*a, name); else tinyml::check_array<float>(*a, name);
    tinyml::check_same_shape(x, *a, args.begin()->second, name);
  }
  return dbl;
}

template <typename F>
void run_chunks(int64_t n, F f) {
  py::gil_scoped_release release;
  tinyml::parallel_ranges(n, kParallel, f);
}

// run_chunks for a kernel with one output: f(b, e, dst) writes elements [b, e) to dst, with plain
// stores. The outputs used to go through an L1 buffer and 128-bit streaming stores (a copy loop since
// removed from simd_math.h) once they reached 16 MiB; with large arrays reused from malloc's heap
// (tinyml/_host_malloc.py) plain stores measured faster for silu and gelu, forward and backward, on
// 1 and 2 threads, than that and than AVX-512 streaming stores (docs/cpu_speed.md "Session 11, late").
template <typename T, typename F>
void run_direct(int64_t n, T* out, F f) {
  run_chunks(n, [&](int64_t b, int64_t e) { f(b, e, out + b); });
}

bool parse_approximate(const std::string& approximate) {
  if (approximate == "tanh") return true;
  if (approximate == "none") return false;
  throw py::value_error("gelu: approximate must be 'none' or 'tanh', got '" + approximate + "'");
}

template <typename T>
py::array gelu_forward_t(py::array x, bool tanh_approx) {
  py::array y = like(x);
  const T* xp = cptr<T>(x);
  T* yp = mptr<T>(y);
  run_direct<T>(x.size(), yp, [&](int64_t b, int64_t e, T* out) { gelu_fwd<T>(xp + b, out, e - b, tanh_approx); });
  return y;
}

py::array gelu_forward(py::array x, const std::string& approximate) {
  bool t = parse_approximate(approximate);
  return is_double("gelu_forward", {{&x, "x"}}) ? gelu_forward_t<double>(x, t) : gelu_forward_t<float>(x, t);
}

template <typename T>
py::array gelu_backward_t(py::array x, py::array dy, bool tanh_approx) {
  py::array dx = like(x);
  const T *xp = cptr<T>(x), *gp = cptr<T>(dy);
  T* dp = mptr<T>(dx);
  run_direct<T>(x.size(), dp, [&](int64_t b, int64_t e, T* out) {
    gelu_bwd<T>(xp + b, gp + b, out, e - b, tanh_approx);
  });
  return dx;
}

py::array gelu_backward(py::array x, py::array dy, const std::string& approximate) {
  bool t = parse_approximate(approximate);
  return is_double("gelu_backward", {{&x, "x"}, {&dy, "dy"}}) ? gelu_backward_t<double>(x, dy, t)
                                                             : gelu_backward_t<float>(x, dy, t);
}

template <typename T>
py::array silu_forward_t(py::array x) {
  py::array y = like(x);
  const T* xp = cptr<T>(x);
  T* yp = mptr<T>(y);
  run_direct<T>(x.size(), yp, [&](int64_t b, int64_t e, T* out) { silu_fwd<T>(xp + b, out, e - b); });
  return y;
}

template <typename T>
py::array silu_backward_t(py::array x, py::array dy) {
  py::array dx = like(x);
  const T *xp = cptr<T>(x), *gp = cptr<T>(dy);
  T* dp = mptr<T>(dx);
  run_direct<T>(x.size(), dp, [&](int64_t b, int64_t e, T* out) { silu_bwd<T>(xp + b, gp + b, out, e - b); });
  return dx;
}

template <typename T>
py::array swiglu_forward_t(py::array a, py::array b) {
  py::array y = like(a);
  const T *ap = cptr<T>(a), *bp = cptr<T>(b);
  T* yp = mptr<T>(y);
  run_chunks(a.size(), [&](int64_t s, int64_t e) { swiglu_fwd<T>(ap + s, bp + s, yp + s, e - s); });
  return y;
}

template <typename T>
py::tuple swiglu_backward_t(py::array a, py::array b, py::array dy) {
  py::array da = like(a), db = like(a);
  const T *ap = cptr<T>(a), *bp = cptr<T>(b), *gp = cptr<T>(dy);
  T *dap = mptr<T>(da), *dbp = mptr<T>(db);
  run_chunks(a.size(), [&](int64_t s, int64_t e) {
    swiglu_bwd<T>(ap + s, bp + s, gp + s, dap + s, dbp + s, e - s);
  });
  return py::make_tuple(da, db);
}

template <typename T>
py::array softplus_forward_t(py::array x, double beta, double threshold) {
  py::array y = like(x);
  const T* xp = cptr<T>(x);
  T* yp = mptr<T>(y);
  run_chunks(x.size(), [&](int64_t b, int64_t e) { softplus_fwd<T>(xp + b, yp + b, e - b, beta, threshold); });
  return y;
}

template <typename T>
py::array softplus_backward_t(py::array x, py::array dy, double beta, double threshold) {
  py::array dx = like(x);
  const T *xp = cptr<T>(x), *gp = cptr<T>(dy);
  T* dp = mptr<T>(dx);
  run_chunks(x.size(), [&](int64_t b, int64_t e) {
    softplus_bwd<T>(xp + b, gp + b, dp + b, e - b, beta, threshold);
  });
  return dx;
}

}  // namespace

void init_activation(py::module_& m) {
  m.def("gelu_forward", &gelu_forward, py::arg("x"), py::arg("approximate") = "none");
  m.def("gelu_backward", &gelu_backward, py::arg("x"), py::arg("dy"), py::arg("approximate") = "none");
  m.def("silu_forward", [](py::array x) {
    return is_double("silu_forward", {{&x, "x"}}) ? silu_forward_t<double>(x) : silu_forward_t<float>(x);
  }, py::arg("x"));
  m.def("silu_backward", [](py::array x, py::array dy) {
    return is_double("silu_backward", {{&x, "x"}, {&dy, "dy"}}) ? silu_backward_t<double>(x, dy)
                                                               : silu_backward_t<float>(x, dy);
  }, py::arg("x"), py::arg("dy"));
  m.def("swiglu_forward", [](py::array a, py::array b) {
    return is_double("swiglu_forward", {{&a, "a"}, {&b, "b"}}) ? swiglu_forward_t<double>(a, b)
                                                              : swiglu_forward_t<float>(a, b);
  }, py::arg("a"), py::arg("b"));
  m.def("swiglu_backward", [](py::array a, py::array b, py::array dy) {
    return is_double("swiglu_backward", {{&a, "a"}, {&b, "b"}, {&dy, "dy"}}) ? swiglu_backward_t<double>(a, b, dy)
                                                                            : swiglu_backward_t<float>(a, b, dy);
  }, py::arg("a"), py::arg("b"), py::arg("dy"));
  m.def("softplus_forward", [](py::array x, double beta, double threshold) {
    return is_double("softplus_forward", {{&x, "x"}}) ? softplus_forward_t<double>(x, beta, threshold)
                                                     : softplus_forward_t<float>(x, beta, threshold);
  }, py::arg("x"), py::arg("beta") = 1.0, py::arg("threshold") = 20.0);
  m.def("softplus_backward", [](py::array x, py::array dy, double beta, double threshold) {
    return is_double("softplus_backward", {{&x, "x"}, {&dy, "dy"}})
               ? softplus_backward_t<double>(x, dy, beta, threshold)
               : softplus_backward_t<float>(x, dy, beta, threshold);
  }, py::arg("x"), py::arg("dy"), py::arg("beta") = 1.0, py::arg("threshold") = 20.0);
}
