// Fused cross-entropy over class logits (N, C) with int64 targets, float32 and float64.
//
//   forward:  m_i = max_j x_ij,  log_sum_i = log sum_j exp(x_ij - m_i)   (one pass: a running max and
//             sum, the sum rescaled by exp(m_old - m_new) whenever a chunk of the row raises the max)
//             loss_i = (1-ls)((m_i - x_i[t_i]) + log_sum_i) + ls (log_sum_i - mean_j (x_ij - m_i)),
//             0 where t_i == ignore_index
//   backward: dx_ij = dloss_i (exp((x_ij - m_i) - log_sum_i) - (1-ls)[j == t_i] - ls/C);
//             an ignored row has dloss_i = 0 (so 0, or NaN where its log-softmax is NaN, as PyTorch)
//
// The row statistics are kept as (m, log_sum), not lse = m + log_sum: with logits of 1e8 in float32
// the sum m + log_sum rounds away log_sum (ulp 8), while x - m is exact near the max; PyTorch's
// log_softmax computes (x - m) - log_sum the same way. mean_j (x_ij - m_i) is summed about the
// row's first logit k (sum (x - k), then + (k - m)), so that it too stays exact at large offsets.
// NaN and inf follow PyTorch's log_softmax: a NaN or +inf logit makes its row NaN; a -inf logit
// has probability 0 (an infinite loss if it is the target); a row of all -inf is NaN.
//
// The forward reads the logits once and writes three (N,) vectors; the backward reads the logits
// once and writes dlogits directly (no softmax temporary), so peak memory is logits + dlogits.
// Targets are checked before any work: an out-of-range target raises IndexError as PyTorch does.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"
#include "exp_nonpos.h"
#include "team_size.h"

namespace {

using tinyml::vexp0;
using tinyml::vexp_nonpos;  // fexp's bits for the arguments <= 0 of both passes (csrc/exp_nonpos.h)
constexpr int64_t kChunk = 512;  // elements per online-softmax step: stays in L1 between the max and sum
// Rows go over the threads only when each thread gets at least this many logits (csrc/team_size.h: an exp
// and a log per logit make a row about twice a norm's work per element; a baby GPT's 768 x 65 logits,
// 60 us forward on one thread, stay on one), handed out kRowBlock at a time as the threads ask.
constexpr int64_t kMinLogitsPerThread = tinyml::kMinElementsPerThread / 2;
constexpr int kRowBlock = 4;

template <typename T>
TINYML_CLONES void ce_row_fwd(const T* __restrict x, int64_t c, bool want_mean, T* m_out, T* log_sum_out,
                              T* mean_out) {
  T m = -INFINITY, s = 0, sx = 0;
  const T k = c > 0 && std::isfinite(x[0]) ? x[0] : T(0);  // shift of the mean's sum
  for (int64_t c0 = 0; c0 < c; c0 += kChunk) {
    int64_t len = c - c0 < kChunk ? c - c0 : kChunk;
    const T* xc = x + c0;
    T cm = -INFINITY;
#pragma omp simd reduction(max : cm)
    for (int64_t j = 0; j < len; ++j) cm = xc[j] > cm ? xc[j] : cm;
    if (cm > m) {
      s *= vexp0<T>(m - cm);  // exp(-inf) = 0 from an all -inf start, but a NaN in s stays NaN
      m = cm;
    }
    // while m is -inf the chunk holds only -inf (exp 0) and NaN (NaN): shift by 0 to keep the NaN
    const T ms = m == -INFINITY ? T(0) : m;
    T cs = 0;
    // x - max <= 0 (-inf: ~1e-38, nothing next to s >= 1)
#pragma omp simd reduction(+ : cs)
    for (int64_t j = 0; j < len; ++j) cs += vexp_nonpos<T>(xc[j] - ms);
    s += cs;
    if (want_mean) {
      T t = 0;
#pragma omp simd reduction(+ : t)
      for (int64_t j = 0; j < len; ++j) t += xc[j] - k;
      sx += t;
    }
  }
  *m_out = m;
  *log_sum_out = std::log(s);  // (an all -inf row keeps m = -inf: its loss is -inf - -inf = NaN)
  *mean_out = want_mean ? sx / T(c) + (k - m) : T(0);
}

template <typename T>
TINYML_CLONES void ce_row_bwd(const T* __restrict x, T* __restrict dx, int64_t c, T m, T log_sum, T g, T off) {
  // dx_j = g exp((x_j - m) - log_sum) - off, off = g ls / C
  // the argument is <= 0: x <= m, and log_sum >= 0 (the row's sum holds exp(0) = 1 for its max)
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) dx[j] = g * vexp_nonpos<T>((x[j] - m) - log_sum) - off;
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
      throw py::index_error("Target " + std::to_string(t[i]) +
                            " is out of bounds (expected class indices in [0, " + std::to_string(c - 1) +
                            "] or ignore_index=" + std::to_string(ignore_index) + ")");
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
  py::array_t<T> loss(std::vector<py::ssize_t>{n}), row_max(std::vector<py::ssize_t>{n});
  py::array_t<T> log_sum(std::vector<py::ssize_t>{n});
  const T* xp = static_cast<const T*>(logits.data());
  const int64_t* tp = static_cast<const int64_t*>(target.data());
  T *lp = loss.mutable_data(), *mp = row_max.mutable_data(), *sp = log_sum.mutable_data();
  {
    py::gil_scoped_release release;
    const bool split = tinyml::worth_threads(n * c, n, kMinLogitsPerThread);
#pragma omp parallel for schedule(dynamic, kRowBlock) if (split)
    for (py::ssize_t i = 0; i < n; ++i) {
      const T* xr = xp + i * c;
      T mean_shifted;
      ce_row_fwd<T>(xr, c, ls != 0.0, mp + i, sp + i, &mean_shifted);
      if (tp[i] == ignore_index) {
        lp[i] = 0;
        continue;
      }
      T l = (mp[i] - xr[tp[i]]) + sp[i];
      if (ls != 0.0) l = T(1 - ls) * l + T(ls) * (sp[i] - mean_shifted);
      lp[i] = l;
    }
  }
  return py::make_tuple(loss, row_max, log_sum);
}

template <typename T>
py::array backward(py::array logits, py::array target, py::array row_max, py::array log_sum, py::array dloss,
                   int64_t ignore_index, double ls) {
  tinyml::check_array<T>(logits, "cross_entropy input");
  tinyml::check_array<T>(row_max, "row_max");
  tinyml::check_array<T>(log_sum, "log_sum");
  tinyml::check_array<T>(dloss, "grad_output");
  py::ssize_t c = check_logits(logits), n = logits.shape(0);
  check_targets(target, n, c, ignore_index, logits);
  if (row_max.size() != n || log_sum.size() != n || dloss.size() != n)
    throw py::value_error("cross_entropy_backward: row_max has shape " + tinyml::shape_str(row_max) +
                          ", log_sum " + tinyml::shape_str(log_sum) + " and grad_output " +
                          tinyml::shape_str(dloss) + " but input has shape " + tinyml::shape_str(logits) +
                          " (expected (" + std::to_string(n) + ",) each)");
  py::array_t<T> dx(std::vector<py::ssize_t>{n, c});
  const T *xp = static_cast<const T*>(logits.data()), *mp = static_cast<const T*>(row_max.data());
  const T *sp = static_cast<const T*>(log_sum.data()), *gp = static_cast<const T*>(dloss.data());
  const int64_t* tp = static_cast<const int64_t*>(target.data());
  T* dp = dx.mutable_data();
  {
    py::gil_scoped_release release;
    const bool split = tinyml::worth_threads(n * c, n, kMinLogitsPerThread);
#pragma omp parallel for schedule(dynamic, kRowBlock) if (split)
    for (py::ssize_t i = 0; i < n; ++i) {
      bool ignored = tp[i] == ignore_index;
      T g = ignored ? T(0) : gp[i];  // 0 * exp(y): an ignored row stays NaN where its log-softmax is
      ce_row_bwd<T>(xp + i * c, dp + i * c, c, mp[i], sp[i], g, g * T(ls / double(c)));
      if (!ignored) dp[i * c + tp[i]] -= g * T(1 - ls);
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
        [](py::array x, py::array t, py::array row_max, py::array log_sum, py::array dloss, int64_t ignore_index,
           double ls) {
          return is_double(x, "cross_entropy_backward")
                     ? backward<double>(x, t, row_max, log_sum, dloss, ignore_index, ls)
                     : backward<float>(x, t, row_max, log_sum, dloss, ignore_index, ls);
        },
        py::arg("logits"), py::arg("target"), py::arg("row_max"), py::arg("log_sum"), py::arg("dloss"),
        py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0);
}
