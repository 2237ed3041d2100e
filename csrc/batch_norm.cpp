// batch_norm over x of shape (N, C, *), seen as (N, C, L) with L the product of the trailing
// dims, forward and backward, float32 and float64.
//
//   forward:   mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M   (M = N * L; training)
//              y = (x - mean_c) invstd_c w_c + b_c,  invstd_c = 1 / sqrt(var_c + eps)
//              running_mean <- (1 - m) running_mean + m mean_c,  running_var likewise with
//              var_c M / (M - 1): in place, when given (training), as PyTorch's native_batch_norm
//   backward:  db_c = sum dy,  dw_c = sum dy xhat,  xhat = (x - mean_c) invstd_c
//              training: dx = w_c invstd_c (dy - db_c / M - xhat dw_c / M);  eval: dx = dy w_c invstd_c
//
// Channels outer: one channel is N rows of L contiguous values, and OpenMP splits the channels
// among threads, so each thread owns its channels' statistics and parameter gradients outright
// (no atomics, no reduction across threads, deterministic for any thread count). The statistics
// take two passes over the channel (a shifted sum for the mean, then the sum of squared deviations
// about it) rather than Welford's one: both are exact where E[x^2] - E[x]^2 cancels, but the
// two-pass loops vectorise (Welford divides per element and carries a dependency), and a channel
// of a CNN batch (32 x 32 x 32 floats = 128 KiB) is still in the 1-2 MiB L2 for the second pass
// and for the normalising pass that follows in the same call. Sums run per row in T (SIMD lanes)
// and are added into double per row, so millions of values per channel lose no digits. The mean
// is summed about the channel's first value: a constant channel gets its exact mean, zero variance
// and y = b, as PyTorch does; NaN or inf in a channel makes it NaN.
// With L = 1 (BatchNorm1d over (N, C)) a row would be one value, so that case runs channels inner
// instead: each thread takes a block of columns and walks the N rows, summing the block's columns
// in double (vectorised across channels; still no sums shared between threads), the moments in one
// pass of shifted sums (see columns_moments).
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"

#include <pybind11/stl.h>

#include <optional>
#include <vector>

namespace {

template <typename T>
const T* opt_ptr(const std::optional<py::array>& a) {
  return a ? static_cast<const T*>(a->data()) : nullptr;
}

// Mean and biased variance of channel c: rows x[(n C + c) L + l], n < N, l < L.
template <typename T>
TINYML_CLONES void channel_moments(const T* __restrict x, int64_t N, int64_t C, int64_t L, int64_t c, double* mean,
                                   double* var) {
  const int64_t M = N * L;
  if (M == 0) {
    *mean = *var = NAN;
    return;
  }
  const T first = x[c * L];
  const T k = std::isfinite(first) ? first : T(0);
  double s = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* row = x + (n * C + c) * L;
    T rs = 0;
#pragma omp simd reduction(+ : rs)
    for (int64_t l = 0; l < L; ++l) rs += row[l] - k;
    s += double(rs);
  }
  const double mu = double(k) + s / double(M);
  const T mu_t = T(mu);
  double ss = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* row = x + (n * C + c) * L;
    T rs = 0;
#pragma omp simd reduction(+ : rs)
    for (int64_t l = 0; l < L; ++l) rs += (row[l] - mu_t) * (row[l] - mu_t);
    ss += double(rs);
  }
  *mean = mu;
  *var = ss / double(M);
}

template <typename T>
TINYML_CLONES void channel_normalize(const T* __restrict x, T* __restrict y, int64_t N, int64_t C, int64_t L,
                                     int64_t c, T mean, T scale, T shift) {
  for (int64_t n = 0; n < N; ++n) {
    const T* row = x + (n * C + c) * L;
    T* out = y + (n * C + c) * L;
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) out[l] = (row[l] - mean) * scale + shift;
  }
}

// (sum dy, sum dy (x - mean)) over channel c.
template <typename T>
TINYML_CLONES void channel_grad_sums(const T* __restrict dy, const T* __restrict x, int64_t N, int64_t C, int64_t L,
                                     int64_t c, T mean, double* sum_dy, double* sum_dy_xc) {
  double a = 0, b = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t off = (n * C + c) * L;
    T ra = 0, rb = 0;
#pragma omp simd reduction(+ : ra, rb)
    for (int64_t l = 0; l < L; ++l) {
      ra += dy[off + l];
      rb += dy[off + l] * (x[off + l] - mean);
    }
    a += double(ra);
    b += double(rb);
  }
  *sum_dy = a;
  *sum_dy_xc = b;
}

// dx = a dy + k (x - mean) + d over channel c (training: k, d from the sums; eval: k = d = 0).
template <typename T>
TINYML_CLONES void channel_dx(const T* __restrict dy, const T* __restrict x, T* __restrict dx, int64_t N, int64_t C,
                              int64_t L, int64_t c, T mean, T a, T k, T d) {
  for (int64_t n = 0; n < N; ++n) {
    const int64_t off = (n * C + c) * L;
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) dx[off + l] = a * dy[off + l] + k * (x[off + l] - mean) + d;
  }
}

// ---- L = 1: x (N, C) row-major, thread blocks of columns [c0, c1) ----------------------------------

// One pass over the rows (the (N, C) forward is bound by memory: x is read twice, not three times):
// in double, s = sum d and ss = sum d^2 with d = x - k about the column's first value k, then
// var = (ss - s^2 / N) / N. Double sums of shifted values keep float data's digits unless a column's
// first value lies ~1e4 standard deviations from its mean; a constant column gives s = ss = 0 exactly.
template <typename T>
TINYML_CLONES void columns_moments(const T* __restrict x, int64_t N, int64_t C, int64_t c0, int64_t c1,
                                   double* __restrict mean, double* __restrict var) {
  const int64_t B = c1 - c0;
  std::vector<double> k(B), s(B, 0.0), ss(B, 0.0);
  for (int64_t j = 0; j < B; ++j) k[j] = std::isfinite(x[c0 + j]) ? double(x[c0 + j]) : 0.0;
  double *__restrict sp = s.data(), *__restrict ssp = ss.data();
  const double* __restrict kp = k.data();
  for (int64_t n = 0; n < N; ++n) {
    const T* row = x + n * C + c0;
#pragma omp simd
    for (int64_t j = 0; j < B; ++j) {
      const double d = double(row[j]) - kp[j];
      sp[j] += d;
      ssp[j] += d * d;
    }
  }
  for (int64_t j = 0; j < B; ++j) {
    mean[j] = k[j] + s[j] / double(N);
    const double v = (ss[j] - s[j] * s[j] / double(N)) / double(N);
    var[j] = v < 0 ? 0.0 : v;  // (rounding can leave -tiny; NaN falls through and stays NaN)
  }
}

// y[n, c] = (x[n, c] - mean[c]) scale[c] + shift[c] over the block's columns
template <typename T>
TINYML_CLONES void columns_affine(const T* __restrict x, T* __restrict y, int64_t N, int64_t C, int64_t c0,
                                  int64_t c1, const T* __restrict mean, const T* __restrict scale,
                                  const T* __restrict shift) {
  for (int64_t n = 0; n < N; ++n) {
    const T* row = x + n * C;
    T* out = y + n * C;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) out[c] = (row[c] - mean[c - c0]) * scale[c - c0] + shift[c - c0];
  }
}

template <typename T>
TINYML_CLONES void columns_grad_sums(const T* __restrict dy, const T* __restrict x, int64_t N, int64_t C, int64_t c0,
                                     int64_t c1, const T* __restrict mean, double* __restrict sum_dy,
                                     double* __restrict sum_dy_xc) {
  for (int64_t n = 0; n < N; ++n) {
    const T* g = dy + n * C;
    const T* row = x + n * C;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) {
      sum_dy[c - c0] += double(g[c]);
      sum_dy_xc[c - c0] += double(g[c]) * double(row[c] - mean[c - c0]);
    }
  }
}

// dx[n, c] = a[c] dy + k[c] (x - mean[c]) + d[c] over the block's columns
template <typename T>
TINYML_CLONES void columns_dx(const T* __restrict dy, const T* __restrict x, T* __restrict dx, int64_t N, int64_t C,
                              int64_t c0, int64_t c1, const T* __restrict mean, const T* __restrict a,
                              const T* __restrict k, const T* __restrict d) {
  for (int64_t n = 0; n < N; ++n) {
    const T* g = dy + n * C;
    const T* row = x + n * C;
    T* out = dx + n * C;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c)
      out[c] = a[c - c0] * g[c] + k[c - c0] * (row[c] - mean[c - c0]) + d[c - c0];
  }
}

template <typename T>
void check_channel_vector(const std::optional<py::array>& p, py::ssize_t c, const char* what, const py::array& x) {
  if (!p) return;
  tinyml::check_array<T>(*p, what);
  if (p->ndim() != 1 || p->shape(0) != c)
    throw py::value_error(std::string(what) + " has shape " + tinyml::shape_str(*p) + " but input has shape " +
                          tinyml::shape_str(x) + " (expected (" + std::to_string(c) + ",))");
}

// L: the product of the dims after N and C.
int64_t check_batch_shape(const py::array& x, const char* what) {
  if (x.ndim() < 2)
    throw py::value_error(std::string(what) + ": expected an array of shape (N, C, *), got shape " +
                          tinyml::shape_str(x));
  int64_t L = 1;
  for (py::ssize_t i = 2; i < x.ndim(); ++i) L *= x.shape(i);
  return L;
}

template <typename T>
T* opt_mutable(std::optional<py::array>& a) {
  return a ? static_cast<T*>(a->mutable_data()) : nullptr;
}

// Parallel over channels only when there is work enough to pay for starting the team.
bool parallel(int64_t N, int64_t C, int64_t L) { return C > 1 && N * C * L > 32768; }

template <typename T>
py::tuple forward(py::array x, std::optional<py::array> w, std::optional<py::array> b, std::optional<py::array> mean,
                  std::optional<py::array> var, double eps, std::optional<py::array> running_mean,
                  std::optional<py::array> running_var, double momentum) {
  tinyml::check_array<T>(x, "batch_norm_forward input");
  const int64_t L = check_batch_shape(x, "batch_norm_forward input");
  const int64_t N = x.shape(0), C = x.shape(1), M = N * L;
  check_channel_vector<T>(w, C, "weight", x);
  check_channel_vector<T>(b, C, "bias", x);
  check_channel_vector<T>(mean, C, "mean", x);
  check_channel_vector<T>(var, C, "var", x);
  check_channel_vector<T>(running_mean, C, "running_mean", x);
  check_channel_vector<T>(running_var, C, "running_var", x);
  if (bool(mean) != bool(var)) throw py::value_error("batch_norm_forward: give both mean and var, or neither");
  if (running_mean && !running_mean->writeable()) throw py::value_error("running_mean: the array is read-only");
  if (running_var && !running_var->writeable()) throw py::value_error("running_var: the array is read-only");
  py::array_t<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  py::array_t<T> mean_out(std::vector<py::ssize_t>{C}), var_out(std::vector<py::ssize_t>{C});
  T *rm = opt_mutable<T>(running_mean), *rv = opt_mutable<T>(running_var);
  const bool update = !mean && M > 0;  // an empty batch leaves the running statistics, as PyTorch
  const double unbias = M > 1 ? double(M) / double(M - 1) : 1.0;
  const T *xp = static_cast<const T*>(x.data()), *wp = opt_ptr<T>(w), *bp = opt_ptr<T>(b);
  const T *mp = opt_ptr<T>(mean), *vp = opt_ptr<T>(var);
  T *yp = y.mutable_data(), *mo = mean_out.mutable_data(), *vo = var_out.mutable_data();
  // the per-channel tail: saved statistics, running statistics, and y = (x - mean) scale + shift
  auto finish = [&](int64_t c, double mu, double v, T* mean_t, T* scale_t, T* shift_t) {
    const double invstd = 1.0 / std::sqrt(v + eps);
    *mean_t = T(mu);
    *scale_t = T(wp ? invstd * double(wp[c]) : invstd);
    *shift_t = bp ? bp[c] : T(0);
    mo[c] = T(mu);
    vo[c] = T(v);
    if (update && rm) rm[c] = T((1.0 - momentum) * double(rm[c]) + momentum * mu);
    if (update && rv) rv[c] = T((1.0 - momentum) * double(rv[c]) + momentum * v * unbias);
  };
  {
    py::gil_scoped_release release;
    if (L == 1 && N > 1) {
      tinyml::parallel_ranges(C, N * C > 32768 ? 1 : C + 1, [&](int64_t c0, int64_t c1) {
        const int64_t B = c1 - c0;
        std::vector<double> mu(B), v(B);
        std::vector<T> mt(B), sc(B), sh(B);
        if (mp) {
          for (int64_t j = 0; j < B; ++j) mu[j] = double(mp[c0 + j]), v[j] = double(vp[c0 + j]);
        } else {
          columns_moments<T>(xp, N, C, c0, c1, mu.data(), v.data());
        }
        for (int64_t j = 0; j < B; ++j) finish(c0 + j, mu[j], v[j], &mt[j], &sc[j], &sh[j]);
        columns_affine<T>(xp, yp, N, C, c0, c1, mt.data(), sc.data(), sh.data());
      });
    } else {
#pragma omp parallel for schedule(static) if (parallel(N, C, L))
      for (int64_t c = 0; c < C; ++c) {
        double mu, v;
        if (mp) {
          mu = double(mp[c]);
          v = double(vp[c]);
        } else {
          channel_moments<T>(xp, N, C, L, c, &mu, &v);
        }
        T mt, sc, sh;
        finish(c, mu, v, &mt, &sc, &sh);
        channel_normalize<T>(xp, yp, N, C, L, c, mt, sc, sh);
      }
    }
  }
  return py::make_tuple(y, mean_out, var_out);
}

template <typename T>
py::tuple backward(py::array dy, py::array x, std::optional<py::array> w, py::array mean, py::array var, double eps,
                   bool training, bool need_dx, bool need_dw, bool need_db) {
  tinyml::check_array<T>(x, "batch_norm_backward input");
  tinyml::check_array<T>(dy, "batch_norm_backward grad_output");
  const int64_t L = check_batch_shape(x, "batch_norm_backward input");
  tinyml::check_same_shape(dy, x, "grad_output", "input");
  const int64_t N = x.shape(0), C = x.shape(1), M = N * L;
  check_channel_vector<T>(w, C, "weight", x);
  check_channel_vector<T>(std::optional<py::array>(mean), C, "mean", x);
  check_channel_vector<T>(std::optional<py::array>(var), C, "var", x);
  std::vector<py::ssize_t> dx_shape(x.shape(), x.shape() + x.ndim());
  if (!need_dx) dx_shape = {0};
  py::array_t<T> dx(dx_shape);
  py::array_t<T> dw(std::vector<py::ssize_t>{C}), db(std::vector<py::ssize_t>{C});
  const T *gp = static_cast<const T*>(dy.data()), *xp = static_cast<const T*>(x.data()), *wp = opt_ptr<T>(w);
  const T *mp = static_cast<const T*>(mean.data()), *vp = static_cast<const T*>(var.data());
  T *dxp = dx.mutable_data(), *dwp = dw.mutable_data(), *dbp = db.mutable_data();
  // the per-channel tail from the two sums: dw, db and dx = a dy + k (x - mean) + d
  auto finish = [&](int64_t c, double sum_dy, double sum_dy_xc, T* a, T* k, T* d) {
    const double invstd = 1.0 / std::sqrt(double(vp[c]) + eps);
    const double scale = wp ? invstd * double(wp[c]) : invstd;
    dwp[c] = T(sum_dy_xc * invstd);
    dbp[c] = T(sum_dy);
    *a = T(scale);
    // training: dx = scale (dy - db / M - (x - mean) invstd^2 sum_dy_xc / M); eval: dx = scale dy
    *k = training ? T(-scale * invstd * invstd * sum_dy_xc / double(M)) : T(0);
    *d = training ? T(-scale * sum_dy / double(M)) : T(0);
  };
  const bool sums = training || need_dw || need_db;
  {
    py::gil_scoped_release release;
    if (L == 1 && N > 1) {
      tinyml::parallel_ranges(C, N * C > 32768 ? 1 : C + 1, [&](int64_t c0, int64_t c1) {
        const int64_t B = c1 - c0;
        std::vector<double> s_dy(B, 0.0), s_dyx(B, 0.0);
        std::vector<T> a(B), k(B), d(B);
        if (sums) columns_grad_sums<T>(gp, xp, N, C, c0, c1, mp + c0, s_dy.data(), s_dyx.data());
        for (int64_t j = 0; j < B; ++j) finish(c0 + j, s_dy[j], s_dyx[j], &a[j], &k[j], &d[j]);
        if (need_dx) columns_dx<T>(gp, xp, dxp, N, C, c0, c1, mp + c0, a.data(), k.data(), d.data());
      });
    } else {
#pragma omp parallel for schedule(static) if (parallel(N, C, L))
      for (int64_t c = 0; c < C; ++c) {
        double sum_dy = 0, sum_dy_xc = 0;
        if (sums) channel_grad_sums<T>(gp, xp, N, C, L, c, mp[c], &sum_dy, &sum_dy_xc);
        T a, k, d;
        finish(c, sum_dy, sum_dy_xc, &a, &k, &d);
        if (need_dx) channel_dx<T>(gp, xp, dxp, N, C, L, c, mp[c], a, k, d);
      }
    }
  }
  py::object dxo = need_dx ? py::object(dx) : py::object(py::none());
  py::object dwo = need_dw ? py::object(dw) : py::object(py::none());
  py::object dbo = need_db ? py::object(db) : py::object(py::none());
  return py::make_tuple(dxo, dwo, dbo);
}

bool is_double(const py::array& x, const char* op) {
  if (tinyml::has_dtype<double>(x)) return true;
  if (tinyml::has_dtype<float>(x)) return false;
  throw py::type_error(std::string(op) + ": dtype " + std::string(py::str(x.dtype())) +
                       " not supported (float32, float64)");
}

}  // namespace

void init_batch_norm(py::module_& m) {
  using O = std::optional<py::array>;
  m.def("batch_norm_forward", [](py::array x, O w, O b, O mean, O var, double eps, O running_mean,
                                 O running_var, double momentum) {
    return is_double(x, "batch_norm_forward")
               ? forward<double>(x, w, b, mean, var, eps, running_mean, running_var, momentum)
               : forward<float>(x, w, b, mean, var, eps, running_mean, running_var, momentum);
  }, py::arg("x"), py::arg("weight").none(true), py::arg("bias").none(true), py::arg("mean").none(true),
        py::arg("var").none(true), py::arg("eps"), py::arg("running_mean").none(true) = py::none(),
        py::arg("running_var").none(true) = py::none(), py::arg("momentum") = 0.0);
  m.def("batch_norm_backward", [](py::array dy, py::array x, O w, py::array mean, py::array var, double eps,
                                  bool training, bool need_dx, bool need_dw, bool need_db) {
    return is_double(x, "batch_norm_backward")
               ? backward<double>(dy, x, w, mean, var, eps, training, need_dx, need_dw, need_db)
               : backward<float>(dy, x, w, mean, var, eps, training, need_dx, need_dw, need_db);
  }, py::arg("dy"), py::arg("x"), py::arg("weight").none(true), py::arg("mean"), py::arg("var"), py::arg("eps"),
        py::arg("training"), py::arg("need_dx"), py::arg("need_dw"), py::arg("need_db"));
}
