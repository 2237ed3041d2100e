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
// is contiguous and vectorises (exp included: simd_math.h's vexp_ieee). Channels (b, d) are
// independent: OpenMP over d, batch inside, so dA/dD/dbias rows belong to one thread; the
// input-dependent dB/dC are shared by all d of a group and go to per-thread buffers summed after.
// The backward recomputes the states of one channel into an L x N buffer (cache-resident) rather
// than storing (Bt, D, L, N) states in the forward.
//
// NaN and +-inf come out where mamba's reference loop in PyTorch puts them: the exps have IEEE ends
// (a state that decays by exp(-inf) = 0 turns an inf into 0 * inf = NaN, not 1e-38 * inf = inf), the
// gate is y * silu(z) with silu(-inf) = NaN, and an absent D adds nothing (not 0 * u, NaN for an inf u).
//
// This file: the forward and both bindings; csrc/scan_backward.cpp: the backward;
// csrc/scan_common.h: what both share.
#include "scan_common.h"  // first: simd_math.h sets fp-contract

namespace {

using namespace tinyml::scan;

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
      T xi = vexp_ieee<T>(dt * A[i]) * x[i] + du * Bt[i];
      x[i] = xi;
      acc += Ct[i] * xi;
    }
    y[t] = acc;
  }
  if (p.D) {
#pragma omp simd
    for (py::ssize_t t = 0; t < l; ++t) y[t] += Dd * u[t];
  }
  if (p.z) {
    const T* z = p.z + off;
#pragma omp simd
    for (py::ssize_t t = 0; t < l; ++t) y[t] *= silu<T>(z[t]);
  }
  for (py::ssize_t i = 0; i < n; ++i) last[(b * s.d + d) * n + i] = x[i];
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

}  // namespace

py::tuple selective_scan_backward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D,
                                  py::object z, py::object bias, bool softplus, py::array dout,
                                  py::object dlast);  // csrc/scan_backward.cpp

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
  m.def("selective_scan_backward", &selective_scan_backward, py::arg("u"), py::arg("delta"), py::arg("A"),
        py::arg("B"), py::arg("C"), py::arg("D"), py::arg("z"), py::arg("delta_bias"), py::arg("delta_softplus"),
        py::arg("dout"), py::arg("dlast_state"),
        "(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias) by the reverse-time recurrence; B/C layout as forward.");
}
