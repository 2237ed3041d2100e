// Selective scan (Mamba's S6 recurrence), forward and backward, float32 and float64.
//
//   dt_t = softplus(delta_t + bias) (or delta_t + bias)
//   x_t  = exp(dt_t A) * x_{t-1} + dt_t B_t u_t,   y_t = C_t . x_t + D u_t,   out_t = y_t silu(z_t)
//
// Backward by the reverse-time recurrence, h_t = dL/dx_t:
//   h_t = h_{t+1} exp(dt_{t+1} A) + dy_t C_t
//   ddt_t = sum_n h_t (A exp(dt_t A) x_{t-1} + B_t u_t),  dA += h_t dt_t exp(dt_t A) x_{t-1}
//   dB_t += h_t dt_t u_t,  dC_t += dy_t x_t,  du_t = dt_t (h_t . B_t) + D dy_t
//
// Layout (the Python adapter prepares it): u, delta, z, out (Bt, D, L); A (D, N); B and C either
// (D, N) (time-invariant) or (Bt, G, L, N) with the state index innermost so that the loop over n
// is contiguous and vectorises (exp included: simd_math.h's fexp). Channels (b, d) are
// independent: OpenMP over d, batch inside, so dA/dD/dbias rows belong to one thread; the
// input-dependent dB/dC are shared by all d of a group and go to per-thread buffers summed after.
// The backward recomputes the states of one channel into an L x N buffer (cache-resident) rather
// than storing (Bt, D, L, N) states in the forward.
#include "simd_math.h"

#include <vector>

#include "common.h"

namespace {

using tinyml::vexp;

struct Dims {
  py::ssize_t bt, d, l, n;
  py::ssize_t gB, gC;  // groups of B/C, 0 when time-invariant (D, N)
};

template <typename T>
struct Scan {
  const T *u, *delta, *A, *B, *C, *D, *z, *bias;
  bool softplus;
};

// Pointer to B or C at (b, d, t = 0) and its stride over t.
template <typename T>
inline const T* bc_ptr(const T* M, py::ssize_t groups, const Dims& s, py::ssize_t b, py::ssize_t d, py::ssize_t& st) {
  if (groups == 0) {
    st = 0;
    return M + d * s.n;
  }
  st = s.n;
  return M + ((b * groups + d / (s.d / groups)) * s.l) * s.n;
}

// log(x) for x in [1, 2] (all this file needs), Cephes logf: x = m 2^e, a degree-8 polynomial in
// m - 1; plain arithmetic so loops over it vectorise. Relative error ~1e-7.
static inline float flog(float x) {
  int32_t i;
  std::memcpy(&i, &x, sizeof i);
  int32_t e = ((i >> 23) & 0xff) - 126;
  i = (i & 0x807fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  float m;
  std::memcpy(&m, &i, sizeof m);
  const bool lo = m < 0.707106781186547524f;
  e = lo ? e - 1 : e;
  m = lo ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const float fe = static_cast<float>(e);
  y += -2.12194440e-4f * fe - 0.5f * z;
  return m + y + 0.693359375f * fe;
}

// softplus(v) = max(v, 0) + log1p(exp(-|v|)); log1p(w) = log(1 + w) w / ((1 + w) - 1) keeps the
// relative accuracy for tiny w (Goldberg's trick). Equals v in float for v > ~17, like PyTorch.
template <typename T> inline T softplus(T v);
template <> inline float softplus<float>(float v) {
  // straight-line code (both sides of the select computed) so that loops over it vectorise
  const float a = std::fabs(v), w = tinyml::fexp(-a), u = 1.0f + w, um1 = u - 1.0f;
  const float ratio = flog(u) / (um1 == 0.0f ? 1.0f : um1);
  const float lp = um1 == 0.0f ? w : ratio * w;
  return std::fmax(v, 0.0f) + lp;
}
template <> inline double softplus<double>(double v) { return v > 20 ? v : std::log1p(std::exp(v)); }

template <typename T>
inline T sigmoid(T v) {
  return T(1) / (T(1) + vexp<T>(-v));
}

// dt_t for one channel (and, with softplus, dsoftplus/dv = sigmoid(v) into sig): one vector pass.
template <typename T>
inline void delta_row(const Scan<T>& p, py::ssize_t off, py::ssize_t l, T bias, T* dts, T* sig) {
  const T* dl = p.delta + off;
  if (!p.softplus) {
#pragma omp simd
    for (py::ssize_t t = 0; t < l; ++t) dts[t] = dl[t] + bias;
    return;
  }
#pragma omp simd
  for (py::ssize_t t = 0; t < l; ++t) dts[t] = softplus<T>(dl[t] + bias);
  if (sig) {
#pragma omp simd
    for (py::ssize_t t = 0; t < l; ++t) sig[t] = sigmoid<T>(dl[t] + bias);
  }
}

// NF > 0: the state size N is the compile-time constant NF (16 and 8 are Mamba's usual sizes), so
// the loop over n is fully unrolled into whole vectors with no per-step remainder or alias checks;
// that per-step overhead, not the arithmetic, is what limits a scan with a small N.
template <typename T, int NF>
TINYML_CLONES void forward_channel(const Scan<T>& p, const Dims& s, py::ssize_t b, py::ssize_t d, T* out, T* last,
                                   T* x, T* dts) {
  py::ssize_t sB, sC;
  const T* Bp = bc_ptr(p.B, s.gB, s, b, d, sB);
  const T* Cp = bc_ptr(p.C, s.gC, s, b, d, sC);
  const py::ssize_t off = (b * s.d + d) * s.l, n = NF ? NF : s.n, l = s.l;
  const T* A = p.A + d * n;
  const T* u = p.u + off;
  const T bias = p.bias ? p.bias[d] : T(0), Dd = p.D ? p.D[d] : T(0);
  delta_row(p, off, l, bias, dts, static_cast<T*>(nullptr));
  T* y = out + off;
  for (py::ssize_t i = 0; i < n; ++i) x[i] = 0;
  for (py::ssize_t t = 0; t < l; ++t) {
    const T dt = dts[t], du = dt * u[t];
    const T* Bt = Bp + t * sB;
    const T* Ct = Cp + t * sC;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (py::ssize_t i = 0; i < n; ++i) {
      T xi = vexp<T>(dt * A[i]) * x[i] + du * Bt[i];
      x[i] = xi;
      acc += Ct[i] * xi;
    }
    y[t] = acc;
  }
  if (p.z) {
    const T* z = p.z + off;
#pragma omp simd
    for (py::ssize_t t = 0; t < l; ++t) y[t] = (y[t] + Dd * u[t]) * z[t] * sigmoid<T>(z[t]);
  } else {
#pragma omp simd
    for (py::ssize_t t = 0; t < l; ++t) y[t] += Dd * u[t];
  }
  for (py::ssize_t i = 0; i < n; ++i) last[(b * s.d + d) * n + i] = x[i];
}

template <typename T>
struct Grads {
  T *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias;  // dB/dC: this thread's buffer or the output
};

// Per-thread scratch for one channel's backward: states and exp(dt A) (L x N), rows of L.
template <typename T>
struct Scratch {
  std::vector<T> xs, ea, dts, sig, dys, h;
  Scratch(py::ssize_t l, py::ssize_t n) : xs(l * n), ea(l * n), dts(l), sig(l), dys(l), h(n) {}
};

template <typename T, int NF>
TINYML_CLONES void backward_channel(const Scan<T>& p, const Dims& s, py::ssize_t b, py::ssize_t d, const T* dout,
                                    const T* dlast, const Grads<T>& g, Scratch<T>& w, T* dA_loc, T& dD_loc,
                                    T& dbias_loc) {
  py::ssize_t sB, sC;
  const T* Bp = bc_ptr(p.B, s.gB, s, b, d, sB);
  const T* Cp = bc_ptr(p.C, s.gC, s, b, d, sC);
  T* dBp = g.dB + (Bp - p.B);  // dB/dC share B/C's layout: the same offsets
  T* dCp = g.dC + (Cp - p.C);
  const py::ssize_t off = (b * s.d + d) * s.l, n = NF ? NF : s.n, l = s.l;
  const T* A = p.A + d * n;
  const T* u = p.u + off;
  const T bias = p.bias ? p.bias[d] : T(0), Dd = p.D ? p.D[d] : T(0);
  T *xs = w.xs.data(), *ea = w.ea.data(), *dts = w.dts.data(), *sig = w.sig.data(), *dys = w.dys.data();
  T* h = w.h.data();
  delta_row(p, off, l, bias, dts, sig);
  // 1. Recompute the states x_t and exp(dt_t A); with a gate, y_t too (dz needs it).
  for (py::ssize_t i = 0; i < n; ++i) h[i] = 0;
  for (py::ssize_t t = 0; t < l; ++t) {
    const T dt = dts[t], du = dt * u[t];
    const T* Bt = Bp + t * sB;
    const T* Ct = Cp + t * sC;
    const T* xprev = t ? xs + (t - 1) * n : h;  // h is all zeros here: x_{-1}
    T* xt = xs + t * n;
    T* et = ea + t * n;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (py::ssize_t i = 0; i < n; ++i) {
      T e = vexp<T>(dt * A[i]);
      T xi = e * xprev[i] + du * Bt[i];
      et[i] = e;
      xt[i] = xi;
      acc += Ct[i] * xi;
    }
    dys[t] = acc;
  }
  const T* go = dout + off;
  if (p.z) {
    const T* z = p.z + off;
    T* dz = g.dz + off;
#pragma omp simd
    for (py::ssize_t t = 0; t < l; ++t) {
      T sg = sigmoid<T>(z[t]), y = dys[t] + Dd * u[t];
      dz[t] = go[t] * y * sg * (T(1) + z[t] * (T(1) - sg));
      dys[t] = go[t] * z[t] * sg;
    }
  } else {
    for (py::ssize_t t = 0; t < l; ++t) dys[t] = go[t];
  }
  // 2. Reverse time.
  T* ddl = g.ddelta + off;
  T* dul = g.du + off;
  for (py::ssize_t i = 0; i < n; ++i) h[i] = dlast ? dlast[(b * s.d + d) * n + i] : T(0);
  for (py::ssize_t t = l - 1; t >= 0; --t) {
    const T ut = u[t], dt = dts[t], dy = dys[t], dtu = dt * ut;
    const T* Bt = Bp + t * sB;
    const T* Ct = Cp + t * sC;
    T* dBt = dBp + t * sB;
    T* dCt = dCp + t * sC;
    const T* xt = xs + t * n;
    const T* et = ea + t * n;
    const T* xprev = t ? xs + (t - 1) * n : nullptr;
    T ddt = 0, hb = 0;
    if (xprev) {
#pragma omp simd reduction(+ : ddt, hb)
      for (py::ssize_t i = 0; i < n; ++i) {
        T hi = h[i] + dy * Ct[i];
        T hx = hi * et[i] * xprev[i];
        dCt[i] += dy * xt[i];
        ddt += hx * A[i];
        dA_loc[i] += hx * dt;
        dBt[i] += hi * dtu;
        hb += hi * Bt[i];
        h[i] = hi * et[i];
      }
    } else {
#pragma omp simd reduction(+ : hb)
      for (py::ssize_t i = 0; i < n; ++i) {
        T hi = h[i] + dy * Ct[i];
        dCt[i] += dy * xt[i];
        dBt[i] += hi * dtu;
        hb += hi * Bt[i];
        h[i] = hi * et[i];
      }
    }
    ddl[t] = ddt + hb * ut;  // sum_n h B u  =  u (h . B)
    dul[t] = hb * dt + Dd * dy;
  }
  T sd = 0, sb = 0;
#pragma omp simd reduction(+ : sd, sb)
  for (py::ssize_t t = 0; t < l; ++t) {
    sd += dys[t] * u[t];
    T v = p.softplus ? ddl[t] * sig[t] : ddl[t];
    ddl[t] = v;
    sb += v;
  }
  dD_loc += sd;
  dbias_loc += sb;
}

// ---- bindings: every shape and dtype checked before a pointer is read --------------------------

std::string dims_str(const py::array& a) { return tinyml::shape_str(a); }

template <typename T>
const T* opt_ptr(const py::object& o, const char* what, const std::vector<py::ssize_t>& shape) {
  if (o.is_none()) return nullptr;
  py::array a = o.cast<py::array>();
  tinyml::check_array<T>(a, what);
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::ostringstream s;
    s << "selective_scan: " << what << " has shape " << dims_str(a) << ", expected (";
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << (shape.size() == 1 ? ",)" : ")");
    throw py::value_error(s.str());
  }
  return static_cast<const T*>(a.data());
}

template <typename T>
py::ssize_t check_bc(const py::array& M, const char* what, const Dims& s) {
  tinyml::check_array<T>(M, what);
  if (M.ndim() == 2 && M.shape(0) == s.d && M.shape(1) == s.n) return 0;
  if (M.ndim() == 4 && M.shape(0) == s.bt && M.shape(1) >= 1 && s.d % M.shape(1) == 0 && M.shape(2) == s.l &&
      M.shape(3) == s.n)
    return M.shape(1);
  throw py::value_error(std::string("selective_scan: ") + what + " has shape " + dims_str(M) + ", expected (" +
                        std::to_string(s.d) + ", " + std::to_string(s.n) + ") or (" + std::to_string(s.bt) +
                        ", G, " + std::to_string(s.l) + ", " + std::to_string(s.n) + ") with G dividing " +
                        std::to_string(s.d));
}

template <typename T>
Scan<T> prepare(const py::array& u, const py::array& delta, const py::array& A, const py::array& B, const py::array& C,
                const py::object& D, const py::object& z, const py::object& bias, bool softplus, Dims& s) {
  tinyml::check_array<T>(u, "selective_scan u");
  if (u.ndim() != 3) throw py::value_error("selective_scan: u must be (batch, D, L), got shape " + dims_str(u));
  tinyml::check_array<T>(delta, "selective_scan delta");
  tinyml::check_same_shape(u, delta, "selective_scan u", "delta");
  tinyml::check_array<T>(A, "selective_scan A");
  if (A.ndim() != 2 || A.shape(0) != u.shape(1))
    throw py::value_error("selective_scan: A has shape " + dims_str(A) + ", expected (" + std::to_string(u.shape(1)) +
                          ", N) for u of shape " + dims_str(u));
  s = Dims{u.shape(0), u.shape(1), u.shape(2), A.shape(1), 0, 0};
  s.gB = check_bc<T>(B, "B", s);
  s.gC = check_bc<T>(C, "C", s);
  Scan<T> p;
  p.u = static_cast<const T*>(u.data());
  p.delta = static_cast<const T*>(delta.data());
  p.A = static_cast<const T*>(A.data());
  p.B = static_cast<const T*>(B.data());
  p.C = static_cast<const T*>(C.data());
  p.D = opt_ptr<T>(D, "D", {s.d});
  p.z = opt_ptr<T>(z, "z", {s.bt, s.d, s.l});
  p.bias = opt_ptr<T>(bias, "delta_bias", {s.d});
  p.softplus = softplus;
  return p;
}

template <typename T>
py::tuple forward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D, py::object z,
                  py::object bias, bool softplus) {
  Dims s;
  Scan<T> p = prepare<T>(u, delta, A, B, C, D, z, bias, softplus, s);
  py::array_t<T> out({s.bt, s.d, s.l}), last({s.bt, s.d, s.n});
  T* op = out.mutable_data();
  T* lp = last.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel if (s.bt * s.d * s.l * s.n > 16384)
    {
      std::vector<T> x(s.n), dts(s.l);
#pragma omp for schedule(static) collapse(2)
      for (py::ssize_t b = 0; b < s.bt; ++b)
        for (py::ssize_t d = 0; d < s.d; ++d) {
          if (s.n == 16) forward_channel<T, 16>(p, s, b, d, op, lp, x.data(), dts.data());
          else if (s.n == 8) forward_channel<T, 8>(p, s, b, d, op, lp, x.data(), dts.data());
          else forward_channel<T, 0>(p, s, b, d, op, lp, x.data(), dts.data());
        }
    }
  }
  return py::make_tuple(out, last);
}

template <typename T>
py::tuple backward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D, py::object z,
                   py::object bias, bool softplus, py::array dout, py::object dlast_o) {
  Dims s;
  Scan<T> p = prepare<T>(u, delta, A, B, C, D, z, bias, softplus, s);
  tinyml::check_array<T>(dout, "selective_scan dout");
  tinyml::check_same_shape(u, dout, "selective_scan u", "dout");
  const T* dlast = opt_ptr<T>(dlast_o, "dlast_state", {s.bt, s.d, s.n});
  auto shape_of = [](const py::array& a) { return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()); };
  py::array_t<T> du(shape_of(u)), ddelta(shape_of(u)), dA(shape_of(A)), dB(shape_of(B)), dC(shape_of(C));
  py::array_t<T> dD(std::vector<py::ssize_t>{s.d}), dbias(std::vector<py::ssize_t>{s.d});
  py::array_t<T> dz(p.z ? shape_of(u) : std::vector<py::ssize_t>{0});
  const T* gout = static_cast<const T*>(dout.data());
  Grads<T> g{du.mutable_data(), ddelta.mutable_data(), dA.mutable_data(), dB.mutable_data(),
             dC.mutable_data(), dD.mutable_data(),     dz.mutable_data(), dbias.mutable_data()};
  const py::ssize_t nB = B.size(), nC = C.size();
  {
    py::gil_scoped_release release;
    const int nt = (s.bt * s.d * s.l * s.n > 16384) ? tinyml::max_threads() : 1;
    // Time-invariant B/C rows belong to one d (one thread): accumulate in place. Input-dependent
    // ones are shared across d: one zeroed buffer per thread, summed below.
    std::vector<std::vector<T>> bufB(s.gB ? nt : 0), bufC(s.gC ? nt : 0);
    if (!s.gB) std::fill(g.dB, g.dB + nB, T(0));
    if (!s.gC) std::fill(g.dC, g.dC + nC, T(0));
#pragma omp parallel num_threads(nt)
    {
      const int tid = tinyml::thread_id();
      Scratch<T> scratch(s.l, s.n);
      std::vector<T> dA_loc(s.n);
      Grads<T> mine = g;
      if (s.gB) {
        bufB[tid].assign(nB, T(0));
        mine.dB = bufB[tid].data();
      }
      if (s.gC) {
        bufC[tid].assign(nC, T(0));
        mine.dC = bufC[tid].data();
      }
#pragma omp for schedule(static)
      for (py::ssize_t d = 0; d < s.d; ++d) {
        std::fill(dA_loc.begin(), dA_loc.end(), T(0));
        T dD_loc = 0, dbias_loc = 0;
        for (py::ssize_t b = 0; b < s.bt; ++b)
          if (s.n == 16) backward_channel<T, 16>(p, s, b, d, gout, dlast, mine, scratch, dA_loc.data(), dD_loc, dbias_loc);
          else if (s.n == 8) backward_channel<T, 8>(p, s, b, d, gout, dlast, mine, scratch, dA_loc.data(), dD_loc, dbias_loc);
          else backward_channel<T, 0>(p, s, b, d, gout, dlast, mine, scratch, dA_loc.data(), dD_loc, dbias_loc);
        for (py::ssize_t i = 0; i < s.n; ++i) g.dA[d * s.n + i] = dA_loc[i];
        g.dD[d] = dD_loc;
        g.dbias[d] = dbias_loc;
      }
      // Sum the per-thread dB/dC buffers, each thread a slice of the elements.
#pragma omp barrier
      if (s.gB) {
#pragma omp for schedule(static)
        for (py::ssize_t i = 0; i < nB; ++i) {
          T acc = 0;
          for (int k = 0; k < nt; ++k) acc += bufB[k][i];
          g.dB[i] = acc;
        }
      }
      if (s.gC) {
#pragma omp for schedule(static)
        for (py::ssize_t i = 0; i < nC; ++i) {
          T acc = 0;
          for (int k = 0; k < nt; ++k) acc += bufC[k][i];
          g.dC[i] = acc;
        }
      }
    }
  }
  py::object none = py::none();
  return py::make_tuple(du, ddelta, dA, dB, dC, p.D ? py::object(dD) : none, p.z ? py::object(dz) : none,
                        p.bias ? py::object(dbias) : none);
}

bool is_f64(const py::array& u) { return tinyml::has_dtype<double>(u); }

void check_float(const py::array& u) {
  if (!tinyml::has_dtype<float>(u) && !is_f64(u))
    throw py::type_error("selective_scan: dtype " + std::string(py::str(u.dtype())) +
                         " not supported (float32, float64)");
}

}  // namespace

void init_scan(py::module_& m) {
  m.def(
      "selective_scan_forward",
      [](py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D, py::object z,
         py::object bias, bool softplus) {
        check_float(u);
        return is_f64(u) ? forward<double>(u, delta, A, B, C, D, z, bias, softplus)
                         : forward<float>(u, delta, A, B, C, D, z, bias, softplus);
      },
      py::arg("u"), py::arg("delta"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("D"), py::arg("z"),
      py::arg("delta_bias"), py::arg("delta_softplus"),
      "(out, last_state) of the selective scan; B/C are (D, N) or (batch, G, L, N), contiguous.");
  m.def(
      "selective_scan_backward",
      [](py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D, py::object z,
         py::object bias, bool softplus, py::array dout, py::object dlast) {
        check_float(u);
        return is_f64(u) ? backward<double>(u, delta, A, B, C, D, z, bias, softplus, dout, dlast)
                         : backward<float>(u, delta, A, B, C, D, z, bias, softplus, dout, dlast);
      },
      py::arg("u"), py::arg("delta"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("D"), py::arg("z"),
      py::arg("delta_bias"), py::arg("delta_softplus"), py::arg("dout"), py::arg("dlast_state"),
      "(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias) by the reverse-time recurrence; B/C layout as forward.");
}
