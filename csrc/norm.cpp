// layer_norm and rms_norm over the last dimension, forward and backward, float32 and float64.
//
//   layer_norm:  mu = mean(x), rstd = 1/sqrt(var(x) + eps), xhat = (x - mu) rstd, y = xhat w + b
//     backward:  g = dy w;  dx = rstd (g - mean(g) - xhat mean(g xhat));
//                dw = sum_rows dy xhat;  db = sum_rows dy
//   rms_norm:    rstd = 1/sqrt(mean(x^2) + eps), xhat = x rstd, y = xhat w
//     backward:  dx = rstd (g - xhat mean(g xhat));  dw = sum_rows dy xhat
//   add_layer_norm (a pre-LN transformer's residual stream): s = x + residual, y = layer_norm(s)
//     in one pass over each row; backward: dx = dresidual = ds + layer_norm_backward(dy), the ds
//     added in a loop of its own after the row's dx is stored (never contracted into an FMA), so
//     both results are the bits of the separate add and layer_norm.
//
// Rows run in parallel when there are enough of them (csrc/team_size.h: a baby GPT's 768 x 128 runs on
// one thread, a wake-up of the other would cost more than half the pass), handed out in blocks of
// kRowBlock rows as the threads ask (add_layer_norm), so the calling thread starts at once and a late
// worker takes fewer. The plain forward hands them out guided instead (long contiguous runs, shrinking
// to kRowBlock), and writes y with ordinary stores: on the Zen 5 VM of session 11 (8192 x 768, 1 and 2
// threads, interleaved A/B in one process, docs/cpu_speed.md "Session 11") 16-row blocks alternating
// between the threads and the buffered streaming stores each cost 15-40% against the prefetchers'
// long sequential runs, and ordinary stores matched streaming ones (the backward keeps streaming: it
// measured faster there; through stream_store.h's AVX-512 stores since session 13). The weight/bias
// gradients are sums over all rows: each of nt contiguous row
// ranges (nt = max_threads() when the rows are many, else 1) is added into a private (N,) buffer (flushed every 32
// rows into double, so 10^4 rows lose no digits), and the buffers are summed column-parallel at the
// end: no atomics, no races, deterministic for a given max_threads(), and the same bits whether the
// team or one thread (a small input) runs the ranges. Row statistics use two passes over the row (it
// sits in L1), not the one-pass E[x^2] - E[x]^2 that cancels catastrophically, and the mean is
// summed about the row's first element k (mu = k + sum (x - k) / N): a constant row gets its exact mean, so a zero
// variance and y = b, as PyTorch's Welford mean does. A float32 row whose sum of squares
// overflows (|x| >= ~1e19) has its statistics and output recomputed in double, which stays finite
// up to FLT_MAX; NaN or inf in a row gives a NaN row, as in PyTorch (but rms_norm of a row with an
// inf is x * 0: NaN there, 0 elsewhere), which that recomputation finds again.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"
#include "stream_store.h"
#include "team_size.h"

#include <pybind11/stl.h>

#include <optional>

namespace {

// Mean (0 for rms_norm) and mean square about it of one row, summed in A.
template <typename A, typename T>
TINYML_CLONES void row_moments(const T* __restrict x, int64_t n, bool rms, A* mu_out, A* var_out) {
  if (n == 0) {  // PyTorch's statistics of an empty row: NaN (the output is empty anyway)
    *mu_out = rms ? A(0) : A(NAN);
    *var_out = A(NAN);
    return;
  }
  A mu = 0;
  if (!rms) {
    const A k = std::isfinite(x[0]) ? A(x[0]) : A(0);
    A s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += A(x[i]) - k;
    mu = k + s / A(n);
  }
  A ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < n; ++i) ss += (A(x[i]) - mu) * (A(x[i]) - mu);
  *mu_out = mu;
  *var_out = ss / A(n);
}

// y = (x - mu) rstd w + b for one row, computed in A.
template <typename A, typename T>
TINYML_CLONES void normalize_row(const T* __restrict x, const T* __restrict w, const T* __restrict b,
                                 T* __restrict y, int64_t n, A mu, A rstd) {
  if (w && b) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = T((A(x[i]) - mu) * rstd * A(w[i]) + A(b[i]));
  } else if (w) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = T((A(x[i]) - mu) * rstd * A(w[i]));
  } else if (b) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = T((A(x[i]) - mu) * rstd + A(b[i]));
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = T((A(x[i]) - mu) * rstd);
  }
}

template <typename T>
void ln_row_fwd(const T* __restrict x, const T* __restrict w, const T* __restrict b, T* __restrict y, int64_t n,
                T eps, bool rms, T* mean_out, T* rstd_out) {
  T mu, var;
  row_moments<T, T>(x, n, rms, &mu, &var);
  if (!std::isfinite(var) && n > 0 && sizeof(T) < sizeof(double)) {
    // the squares overflowed (or the row holds NaN/inf, which stays NaN): redo the row in double
    double mu_d, var_d;
    row_moments<double, T>(x, n, rms, &mu_d, &var_d);
    double rstd_d = 1.0 / std::sqrt(var_d + double(eps));
    normalize_row<double, T>(x, w, b, y, n, mu_d, rstd_d);
    if (mean_out) *mean_out = T(mu_d);
    *rstd_out = T(rstd_d);
    return;
  }
  T rstd = T(1) / std::sqrt(var + eps);
  normalize_row<T, T>(x, w, b, y, n, mu, rstd);
  if (mean_out) *mean_out = mu;
  *rstd_out = rstd;
}

// One row of the backward; adds dy*xhat into dw_acc and dy into db_acc when they are given
// (only with a weight: without one the contract returns no dweight/dbias).
template <typename T, typename A>
TINYML_CLONES void ln_row_bwd(const T* __restrict dy, const T* __restrict x, const T* __restrict w, T mu, T rstd,
                              T* __restrict dx, A* __restrict dw_acc, A* __restrict db_acc, int64_t n, bool rms) {
  T sg = 0, sgx = 0;
  if (w) {
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t i = 0; i < n; ++i) {
      T g = dy[i] * w[i];
      sg += g;
      sgx += g * (x[i] - mu) * rstd;
    }
  } else {
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t i = 0; i < n; ++i) {
      sg += dy[i];
      sgx += dy[i] * (x[i] - mu) * rstd;
    }
  }
  T mg = rms ? T(0) : sg / T(n), mgx = sgx / T(n);
  if (w && db_acc) {  // layer_norm with weight: dx, dweight and dbias partials in one pass
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T xh = (x[i] - mu) * rstd;
      dx[i] = rstd * (dy[i] * w[i] - mg - xh * mgx);
      dw_acc[i] += A(dy[i] * xh);
      db_acc[i] += A(dy[i]);
    }
  } else if (w && dw_acc) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T xh = (x[i] - mu) * rstd;
      dx[i] = rstd * (dy[i] * w[i] - mg - xh * mgx);
      dw_acc[i] += A(dy[i] * xh);
    }
  } else if (w) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = rstd * (dy[i] * w[i] - mg - (x[i] - mu) * rstd * mgx);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = rstd * (dy[i] - mg - (x[i] - mu) * rstd * mgx);
  }
}

constexpr int kRowBlock = 16;  // rows per hand-out of the row loops (schedule(dynamic))
constexpr int kFlush = 32;  // rows summed in the input dtype before flushing into the wide accumulator

template <typename T, typename A>
TINYML_CLONES void flush(T* __restrict part, A* __restrict acc, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    acc[i] += A(part[i]);
    part[i] = T(0);
  }
}

template <typename T>
const T* opt_ptr(const std::optional<py::array>& a) {
  return a ? static_cast<const T*>(a->data()) : nullptr;
}

template <typename T>
void check_param(const std::optional<py::array>& p, py::ssize_t n, const char* what, const py::array& x) {
  if (!p) return;
  tinyml::check_array<T>(*p, what);
  if (p->ndim() != 1 || p->shape(0) != n)
    throw py::value_error(std::string(what) + " has shape " + tinyml::shape_str(*p) + " but input has shape " +
                          tinyml::shape_str(x) + " (expected (" + std::to_string(n) + ",))");
}

template <typename T>
void check_stat(const py::array& s, py::ssize_t rows, const char* what, const py::array& x) {
  tinyml::check_array<T>(s, what);
  if (s.size() != rows)
    throw py::value_error(std::string(what) + " has shape " + tinyml::shape_str(s) + " but input has shape " +
                          tinyml::shape_str(x) + " (expected " + std::to_string(rows) + " row statistics)");
}

// The number of rows: the product of every dim but the last (1 for a 1-d array), also when N = 0.
py::ssize_t leading_size(const py::array& x) {
  py::ssize_t rows = 1;
  for (py::ssize_t i = 0; i + 1 < x.ndim(); ++i) rows *= x.shape(i);
  return rows;
}

std::vector<py::ssize_t> rows_shape(const py::array& x) {
  return std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim() - 1);
}

// Whether a (rows, n) output is large enough to be streamed out row by row (stream_store.h), through
// a row buffer of kStreamBlock elements.
template <typename T>
bool streamed(py::ssize_t rows, py::ssize_t n) {
  return tinyml::stream_worth(rows * n * py::ssize_t(sizeof(T))) && n <= tinyml::kStreamBlock;
}

template <typename T>
py::tuple forward(py::array x, std::optional<py::array> w, std::optional<py::array> b, double eps, bool rms) {
  const char* op = rms ? "rms_norm_forward" : "layer_norm_forward";
  tinyml::check_array<T>(x, (std::string(op) + " input").c_str());
  py::ssize_t n = tinyml::last_dim(x, op);
  py::ssize_t rows = leading_size(x);
  check_param<T>(w, n, "weight", x);
  check_param<T>(b, n, "bias", x);
  py::array_t<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  py::array_t<T> mean(rows_shape(x)), rstd(rows_shape(x));
  const T *xp = static_cast<const T*>(x.data()), *wp = opt_ptr<T>(w), *bp = opt_ptr<T>(b);
  T *yp = y.mutable_data(), *mp = mean.mutable_data(), *rp = rstd.mutable_data();
  {
    py::gil_scoped_release release;
    // guided: each thread first takes a long contiguous run of rows (half, then a quarter, ...), so
    // its reads and writes are a few sequential streams, and a late worker still takes fewer rows;
    // plain stores (the output stays in cache for the next op; see the header)
#pragma omp parallel for schedule(guided, kRowBlock) if (tinyml::worth_threads(rows * n, rows))
    for (py::ssize_t r = 0; r < rows; ++r)
      ln_row_fwd<T>(xp + r * n, wp, bp, yp + r * n, n, T(eps), rms, rms ? nullptr : mp + r, rp + r);
  }
  if (rms) return py::make_tuple(y, rstd);
  return py::make_tuple(y, mean, rstd);
}

template <typename T>
TINYML_CLONES void add_rows(T* __restrict out, const T* __restrict a, const T* __restrict b, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
TINYML_CLONES void add_into(T* __restrict out, const T* __restrict b, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] += b[i];
}

template <typename T>
py::tuple backward(py::array dy, py::array x, std::optional<py::array> w, std::optional<py::array> mean,
                   py::array rstd, bool rms, std::optional<py::array> ds = std::nullopt) {
  using A = typename tinyml::acc_type<T>::type;
  tinyml::check_array<T>(x, "input");
  tinyml::check_array<T>(dy, "grad_output");
  tinyml::check_same_shape(dy, x, "grad_output", "input");
  if (ds) {
    tinyml::check_array<T>(*ds, "grad_sum");
    tinyml::check_same_shape(*ds, x, "grad_sum", "input");
  }
  const T* dsp = opt_ptr<T>(ds);
  py::ssize_t n = tinyml::last_dim(x, "input");
  py::ssize_t rows = leading_size(x);
  check_param<T>(w, n, "weight", x);
  if (mean) check_stat<T>(*mean, rows, "mean", x);
  check_stat<T>(rstd, rows, "rstd", x);
  py::array_t<T> dx(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  bool want_w = bool(w);
  bool want_b = bool(w) && !rms;  // the contract: dbias is returned with dweight (None without weight)
  py::array_t<T> dw(std::vector<py::ssize_t>{want_w ? n : 0}), db(std::vector<py::ssize_t>{want_b ? n : 0});
  const T *gp = static_cast<const T*>(dy.data()), *xp = static_cast<const T*>(x.data()), *wp = opt_ptr<T>(w);
  const T *mp = opt_ptr<T>(mean), *rp = static_cast<const T*>(rstd.data());
  T *dxp = dx.mutable_data(), *dwp = dw.mutable_data(), *dbp = db.mutable_data();
  {
    py::gil_scoped_release release;
    // the row ranges whose sums are added last (the bits of dw and db depend on them), and the
    // threads that run them: the partition of a team of max_threads(), run by one thread if small
    const int nt = (rows * n > 32768 && rows > 1) ? tinyml::max_threads() : 1;
    const int team = tinyml::worth_threads(rows * n, rows) ? nt : 1;
    const bool stream = streamed<T>(rows, n);
    // Per part: T partial sums over a block of kFlush rows (fast, vectorized), flushed into A
    // (double for float32) totals, so long row counts keep full precision at little cost.
    size_t per = want_w ? size_t(n) * (want_b ? 2 : 1) : 0;
    std::vector<A> acc(per * nt, A(0));
    std::vector<T> part(per * nt, T(0));
#pragma omp parallel num_threads(team) if (team > 1)
    {
      int k = 1;
#ifdef _OPENMP
      k = omp_get_num_threads();
#endif
      alignas(64) T buf[tinyml::kStreamBlock];
      for (int t = tinyml::thread_id(); t < nt; t += k) {
        T* pw = want_w ? part.data() + per * t : nullptr;
        T* pb = want_b ? pw + n : nullptr;
        A* aw = want_w ? acc.data() + per * t : nullptr;
        py::ssize_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
        for (py::ssize_t r = r0; r < r1; ++r) {
          T* out = stream ? buf : dxp + r * n;
          ln_row_bwd<T, T>(gp + r * n, xp + r * n, wp, mp ? mp[r] : T(0), rp[r], out, pw, pb, n, rms);
          if (dsp) add_into<T>(out, dsp + r * n, n);
          if (stream) tinyml::stream_out(dxp + r * n, buf, n);
          if (want_w && ((r - r0) % kFlush == kFlush - 1 || r == r1 - 1)) flush<T, A>(pw, aw, per);
        }
      }
      if (stream) tinyml::stream_sfence();
      if (want_w) {
        // the column sums over the parts' totals, in the same parallel region (one fork/join)
#pragma omp barrier
#pragma omp for schedule(static)
        for (py::ssize_t i = 0; i < n; ++i) {
          A sw = 0, sb = 0;
          for (int u = 0; u < nt; ++u) {
            sw += acc[u * per + i];
            if (want_b) sb += acc[u * per + n + i];
          }
          dwp[i] = T(sw);
          if (want_b) dbp[i] = T(sb);
        }
      }
    }
  }
  py::object dwo = want_w ? py::object(dw) : py::object(py::none());
  if (rms) return py::make_tuple(dx, dwo);
  py::object dbo = want_b ? py::object(db) : py::object(py::none());
  return py::make_tuple(dx, dwo, dbo);
}

template <typename T>
py::tuple add_forward(py::array x, py::array res, std::optional<py::array> w, std::optional<py::array> b,
                      double eps) {
  tinyml::check_array<T>(x, "add_layer_norm_forward input");
  tinyml::check_array<T>(res, "add_layer_norm_forward residual");
  tinyml::check_same_shape(x, res, "input", "residual");
  py::ssize_t n = tinyml::last_dim(x, "add_layer_norm_forward");
  py::ssize_t rows = leading_size(x);
  check_param<T>(w, n, "weight", x);
  check_param<T>(b, n, "bias", x);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  py::array_t<T> sum(shape), y(shape), mean(rows_shape(x)), rstd(rows_shape(x));
  const T *xp = static_cast<const T*>(x.data()), *qp = static_cast<const T*>(res.data());
  const T *wp = opt_ptr<T>(w), *bp = opt_ptr<T>(b);
  T *sp = sum.mutable_data(), *yp = y.mutable_data(), *mp = mean.mutable_data(), *rp = rstd.mutable_data();
  {
    py::gil_scoped_release release;
    const bool stream = streamed<T>(rows, n);
#pragma omp parallel if (tinyml::worth_threads(rows * n, rows))
    {
      alignas(64) T buf[tinyml::kStreamBlock];
#pragma omp for schedule(dynamic, kRowBlock)
      for (py::ssize_t r = 0; r < rows; ++r) {
        add_rows<T>(sp + r * n, xp + r * n, qp + r * n, n);
        T* out = stream ? buf : yp + r * n;
        ln_row_fwd<T>(sp + r * n, wp, bp, out, n, T(eps), false, mp + r, rp + r);
        if (stream) tinyml::stream_out(yp + r * n, buf, n);
      }
      if (stream) tinyml::stream_sfence();
    }
  }
  return py::make_tuple(sum, y, mean, rstd);
}

bool is_double(const py::array& x, const char* op) {
  if (tinyml::has_dtype<double>(x)) return true;
  if (tinyml::has_dtype<float>(x)) return false;
  throw py::type_error(std::string(op) + ": dtype " + std::string(py::str(x.dtype())) +
                       " not supported (float32, float64)");
}

}  // namespace

void init_norm(py::module_& m) {
  using O = std::optional<py::array>;
  m.def("layer_norm_forward", [](py::array x, O w, O b, double eps) {
    return is_double(x, "layer_norm_forward") ? forward<double>(x, w, b, eps, false)
                                              : forward<float>(x, w, b, eps, false);
  }, py::arg("x"), py::arg("weight").none(true), py::arg("bias").none(true), py::arg("eps"));
  m.def("layer_norm_backward", [](py::array dy, py::array x, O w, py::array mean, py::array rstd) {
    return is_double(x, "layer_norm_backward") ? backward<double>(dy, x, w, mean, rstd, false)
                                               : backward<float>(dy, x, w, mean, rstd, false);
  }, py::arg("dy"), py::arg("x"), py::arg("weight").none(true), py::arg("mean"), py::arg("rstd"));
  m.def("add_layer_norm_forward", [](py::array x, py::array residual, O w, O b, double eps) {
    return is_double(x, "add_layer_norm_forward") ? add_forward<double>(x, residual, w, b, eps)
                                                  : add_forward<float>(x, residual, w, b, eps);
  }, py::arg("x"), py::arg("residual"), py::arg("weight").none(true), py::arg("bias").none(true), py::arg("eps"));
  m.def("add_layer_norm_backward", [](py::array dy, O ds, py::array s, O w, py::array mean, py::array rstd) {
    return is_double(s, "add_layer_norm_backward") ? backward<double>(dy, s, w, mean, rstd, false, ds)
                                                   : backward<float>(dy, s, w, mean, rstd, false, ds);
  }, py::arg("dy"), py::arg("ds").none(true), py::arg("s"), py::arg("weight").none(true), py::arg("mean"),
        py::arg("rstd"));
  m.def("rms_norm_forward", [](py::array x, O w, double eps) {
    return is_double(x, "rms_norm_forward") ? forward<double>(x, w, std::nullopt, eps, true)
                                            : forward<float>(x, w, std::nullopt, eps, true);
  }, py::arg("x"), py::arg("weight").none(true), py::arg("eps"));
  m.def("rms_norm_backward", [](py::array dy, py::array x, O w, py::array rstd) {
    return is_double(x, "rms_norm_backward") ? backward<double>(dy, x, w, std::nullopt, rstd, true)
                                             : backward<float>(dy, x, w, std::nullopt, rstd, true);
  }, py::arg("dy"), py::arg("x"), py::arg("weight").none(true), py::arg("rstd"));
}
