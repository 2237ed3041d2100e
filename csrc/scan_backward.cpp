// Selective scan backward by the reverse-time recurrence (the math and layout: csrc/scan.cpp).
#include "scan_common.h"  // first: simd_math.h sets fp-contract

namespace {

using namespace tinyml::scan;

template <typename T>
struct Grads {
  T *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias;  // dB/dC: this thread's buffer or the output
};

// Per-thread scratch for one channel's backward: states and exp(dt A) (L x N), rows of L.
template <typename T>
struct Scratch {
  std::vector<T> xs, ea, dts, sig, dys, h, zeros;  // zeros: the state before the first step
  Scratch(py::ssize_t l, py::ssize_t n) : xs(l * n), ea(l * n), dts(l), sig(l), dys(l), h(n), zeros(n) {}
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
      T e = vexp_ieee<T>(dt * A[i]);
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
      T sg = sigmoid<T>(z[t]), y = p.D ? dys[t] + Dd * u[t] : dys[t];
      dz[t] = go[t] * y * sg * (T(1) + z[t] * (T(1) - sg));
      dys[t] = go[t] * silu<T>(z[t]);
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
    // x_{-1} = 0 takes part like any state: its terms are 0, or NaN where they meet an inf
    const T* xprev = t ? xs + (t - 1) * n : w.zeros.data();
    // The products keep the per-state order of PyTorch's autograd through the reference loop, and
    // the two paths into dt (through exp(dt A) and through dt B u) are summed apart, so that infs
    // of opposite signs meet, and make NaN, as they do there: sum_n (h B)_n u, not u (h . B).
    T ddt_decay = 0, ddt_input = 0, du_sum = 0;
#pragma omp simd reduction(+ : ddt_decay, ddt_input, du_sum)
    for (py::ssize_t i = 0; i < n; ++i) {
      const T hi = h[i] + dy * Ct[i];
      const T hx = hi * xprev[i] * et[i];  // dL/d exp(dt A) times exp(dt A)
      const T hB = hi * Bt[i];
      dCt[i] += dy * xt[i];
      ddt_decay += hx * A[i];
      ddt_input += hB * ut;
      dA_loc[i] += hx * dt;
      dBt[i] += hi * dtu;
      du_sum += hB * dt;
      h[i] = hi * et[i];
    }
    ddl[t] = ddt_decay + ddt_input;
    dul[t] = p.D ? du_sum + Dd * dy : du_sum;
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

}  // namespace

// The body of the selective_scan_backward binding (registered in csrc/scan.cpp, beside the forward).
py::tuple selective_scan_backward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D,
                                  py::object z, py::object bias, bool softplus, py::array dout, py::object dlast) {
  check_float(u);
  return is_f64(u) ? backward<double>(u, delta, A, B, C, D, z, bias, softplus, dout, dlast)
                   : backward<float>(u, delta, A, B, C, D, z, bias, softplus, dout, dlast);
}
