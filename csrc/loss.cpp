// Fused cross-entropy over class logits (N, C) with int64 targets, float32 and float64.
//
//   forward:  lse_i = log sum_j exp(x_ij)   (one pass: a running max m and sum s, rescaled by
//             exp(m_old - m_new) whenever a chunk of the row raises the max)
//             loss_i = (1-ls)(lse_i - x_i[t_i]) + ls (lse_i - mean_j x_ij),  0 where t_i == ignore_index
//   backward: dx_ij = dloss_i (exp(x_ij - lse_i) - (1-ls)[j == t_i] - ls/C),  0 for ignored rows
//
// The forward reads the logits once and writes two (N,) vectors; the backward reads the logits
// once and writes dlogits directly (no softmax temporary), so peak memory is logits + dlogits.
// Targets are checked before any work: an out-of-range target raises IndexError as PyTorch does.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"

namespace {

using tinyml::vexp;
constexpr int64_t kChunk = 512;  // elements per online-softmax step: stays in L1 between the max and sum

template <typename T>
TINYML_CLONES void ce_row_fwd(const T* __restrict x, int64_t c, T* lse_out, T* sum_out, bool want_sum) {
  T m = -INFINITY, s = 0, sx = 0;
  for (int64_t c0 = 0; c0 < c; c0 += kChunk) {
    int64_t len = c - c0 < kChunk ? c - c0 : kChunk;
    const T* xc = x + c0;
    T cm = -INFINITY;
#pragma omp simd reduction(max : cm)
    for (int64_t j = 0; j < len; ++j) cm = xc[j] > cm ? xc[j] : cm;
    if (cm > m) {
      s = m == -INFINITY ? T(0) : s * vexp<T>(m - cm);
      m = cm;
    }
    if (m == -INFINITY) continue;  // every logit so far is -inf
    T cs = 0;
#pragma omp simd reduction(+ : cs)
    for (int64_t j = 0; j < len; ++j) cs += vexp<T>(xc[j] - m);
    s += cs;
    if (want_sum) {
      T t = 0;
#pragma omp simd reduction(+ : t)
      for (int64_t j = 0; j < len; ++j) t += xc[j];
      sx += t;
    }
  }
  *lse_out = m == -INFINITY ? m : m + std::log(s);
  *sum_out = sx;
}

template <typename T>
TINYML_CLONES void ce_row_bwd(const T* __restrict x, T* __restrict dx, int64_t c, T lse, T g, T off) {
  // dx_j = g exp(x_j - lse) - off, off = g ls / C
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) dx[j] = g * vexp<T>(x[j] - lse) - off;
}

void check_targets(const py::array& target, py::ssize_t n, py::ssize_t c, int64_t ignore_index,
                   const py::array& logits) {
  if (!tinyml::has_dtype<int64_t>(target))
    throw py::type_error("cross_entropy: target must be int64, got " + std::string(py::str(target.dtype())));
  if (!(target.flags() & py::array::c_style))
    throw py::value_error("cross_entropy: target must be C-contiguous");
  if (target.ndim() != 1 || target.shape(0) != n)
    throw py::value_error("cross_entropy: target has shape " + tinyml::shape_str(target) + " but input has shape " +
                          tinyml::shape_str(logits) + " (expected (" + std::to_string(n) + ",))");
  const int64_t* t = static_cast<const int64_t*>(target.data());
  for (py::ssize_t i = 0; i < n; ++i)
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= c))
      throw py::index_error("Target " + std::to_string(t[i]) + " is out of bounds (expected 0 <= target < " +
                            std::to_string(c) + " or ignore_index " + std::to_string(ignore_index) + ")");
}

py::ssize_t check_logits(const py::array& x) {
  if (x.ndim() != 2)
    throw py::value_error("cross_entropy: expected logits of shape (N, C), got " + tinyml::shape_str(x));
  return x.shape(1);
}

template <typename T>
py::tuple forward(py::array logits, py::array target, int64_t ignore_index, double ls) {
  tinyml::check_array<T>(logits, "cross_entropy input");
  py::ssize_t c = check_logits(logits), n = logits.shape(0);
  check_targets(target, n, c, ignore_index, logits);
  py::array_t<T> loss(std::vector<py::ssize_t>{n}), lse(std::vector<py::ssize_t>{n});
  const T* xp = static_cast<const T*>(logits.data());
  const int64_t* tp = static_cast<const int64_t*>(target.data());
  T *lp = loss.mutable_data(), *sp = lse.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) if (n * c > 32768 && n > 1)
    for (py::ssize_t i = 0; i < n; ++i) {
      const T* xr = xp + i * c;
      T sx;
      ce_row_fwd<T>(xr, c, sp + i, &sx, ls != 0.0);
      if (tp[i] == ignore_index) {
        lp[i] = 0;
        continue;
      }
      T l = sp[i] - xr[tp[i]];
      if (ls != 0.0) l = T(1 - ls) * l + T(ls) * (sp[i] - sx / T(c));
      lp[i] = l;
    }
  }
  return py::make_tuple(loss, lse);
}

template <typename T>
py::array backward(py::array logits, py::array target, py::array lse, py::array dloss, int64_t ignore_index,
                   double ls) {
  tinyml::check_array<T>(logits, "cross_entropy input");
  tinyml::check_array<T>(lse, "lse");
  tinyml::check_array<T>(dloss, "grad_output");
  py::ssize_t c = check_logits(logits), n = logits.shape(0);
  check_targets(target, n, c, ignore_index, logits);
  if (lse.size() != n || dloss.size() != n)
    throw py::value_error("cross_entropy_backward: lse has shape " + tinyml::shape_str(lse) + " and grad_output " +
                          tinyml::shape_str(dloss) + " but input has shape " + tinyml::shape_str(logits) +
                          " (expected (" + std::to_string(n) + ",))");
  py::array_t<T> dx(std::vector<py::ssize_t>{n, c});
  const T *xp = static_cast<const T*>(logits.data()), *sp = static_cast<const T*>(lse.data());
  const T* gp = static_cast<const T*>(dloss.data());
  const int64_t* tp = static_cast<const int64_t*>(target.data());
  T* dp = dx.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) if (n * c > 32768 && n > 1)
    for (py::ssize_t i = 0; i < n; ++i) {
      T* dr = dp + i * c;
      if (tp[i] == ignore_index) {
        std::memset(dr, 0, sizeof(T) * c);
        continue;
      }
      T g = gp[i];
      ce_row_bwd<T>(xp + i * c, dr, c, sp[i], g, g * T(ls / double(c)));
      dr[tp[i]] -= g * T(1 - ls);
    }
  }
  return dx;
}

bool is_double(const py::array& x, const char* op) {
  if (tinyml::has_dtype<double>(x)) return true;
  if (tinyml::has_dtype<float>(x)) return false;
  throw py::type_error(std::string(op) + ": dtype " + std::string(py::str(x.dtype())) +
                       " not supported (float32, float64)");
}

}  // namespace

void init_loss(py::module_& m) {
  m.def("cross_entropy_forward", [](py::array x, py::array t, int64_t ignore_index, double ls) {
    return is_double(x, "cross_entropy_forward") ? forward<double>(x, t, ignore_index, ls)
                                                 : forward<float>(x, t, ignore_index, ls);
  }, py::arg("logits"), py::arg("target"), py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0);
  m.def("cross_entropy_backward",
        [](py::array x, py::array t, py::array lse, py::array dloss, int64_t ignore_index, double ls) {
          return is_double(x, "cross_entropy_backward") ? backward<double>(x, t, lse, dloss, ignore_index, ls)
                                                        : backward<float>(x, t, lse, dloss, ignore_index, ls);
        },
        py::arg("logits"), py::arg("target"), py::arg("lse"), py::arg("dloss"), py::arg("ignore_index") = -100,
        py::arg("label_smoothing") = 0.0);
}
