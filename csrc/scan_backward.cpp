// Selective scan backward by the reverse-time recurrence (the math and layout: csrc/scan.cpp): the
// binding, the threads, and the float64 kernel; float32 runs csrc/scan_backward_f32.cpp per block
// (time in chunks, on csrc/scan_vec.h vectors; docs/ssm_scan.md).
#include "scan_common.h"  // first: simd_math.h sets fp-contract

namespace {

using namespace tinyml::scan;

// Per-thread buffers of one block's backward: lane-major rows (t * V + v) of dt, u, softplus'
// (sigmoid), y then dy, ddt and du; the states x_t and exp(dt_t A) (t * N * V + n * V + v); the
// adjoint h, A, time-invariant B/C and the lane sums of dA and time-invariant dB/dC (n * V + v).
template <typename T>
struct BwdWork {
  std::vector<T> dt, u, sig, dy, ddt, du, xs, ea, h, a, bl, cl, dA, dBl, dCl, zeros, row, rsig;
  BwdWork(py::ssize_t l, py::ssize_t n, py::ssize_t V)
      : dt(l * V), u(l * V), sig(l * V), dy(l * V), ddt(l * V), du(l * V), xs(l * n * V), ea(l * n * V), h(n * V),
        a(n * V), bl(n * V), cl(n * V), dA(n * V), dBl(n * V), dCl(n * V), zeros(n * V), row(l), rsig(l) {}
};

// One block of V channels of batch b (float64; float32: csrc/scan_backward_f32.cpp): recompute the
// states forward, then run the adjoint h_t = h_{t+1} exp(dt_{t+1} A) + dy_t C_t backward in time, every update a vertical vector
// operation over the lanes. The input-dependent dB_t/dC_t are sums over the block's channels: one
// lane sum per state and step, off the recurrence's dependency chain.
template <typename T, int V, bool BVAR, bool CVAR>
TINYML_CLONES void backward_block(const Scan<T>& p, const Dims& s, py::ssize_t b, const Block& blk, const T* dout,
                                  const T* dlast, const Grads<T>& g, BwdWork<T>& w) {
  const py::ssize_t n = s.n, l = s.l, d0 = blk.d0, nv = blk.nv, nV = n * V;
  T *dt = w.dt.data(), *uu = w.u.data(), *sig = w.sig.data(), *dy = w.dy.data(), *xs = w.xs.data();
  T *ea = w.ea.data(), *h = w.h.data(), *a = w.a.data();
  for (py::ssize_t v = 0; v < V; ++v) {
    if (v < nv) {
      const py::ssize_t off = (b * s.d + d0 + v) * l;
      delta_row(p, off, l, p.bias ? p.bias[d0 + v] : T(0), w.row.data(), w.rsig.data());
      for (py::ssize_t t = 0; t < l; ++t) {
        dt[t * V + v] = w.row[t];
        sig[t * V + v] = w.rsig[t];
        uu[t * V + v] = p.u[off + t];
      }
    } else {
      for (py::ssize_t t = 0; t < l; ++t) dt[t * V + v] = sig[t * V + v] = uu[t * V + v] = T(0);
    }
  }
  py::ssize_t sB, sC;
  const T* Bp = bc_ptr(p.B, s.gB, s, b, d0, sB);
  const T* Cp = bc_ptr(p.C, s.gC, s, b, d0, sC);
  T* dBp = g.dB + (Bp - p.B);  // dB/dC share B/C's layout: the same offsets
  T* dCp = g.dC + (Cp - p.C);
  gather_dn<T, V>(p.A, d0, nv, n, a);
  if (!BVAR) gather_dn<T, V>(p.B, d0, nv, n, w.bl.data());
  if (!CVAR) gather_dn<T, V>(p.C, d0, nv, n, w.cl.data());
  const T *bl = w.bl.data(), *cl = w.cl.data();
  // 1. Recompute the states x_t and exp(dt_t A), and y_t = C_t . x_t (dz needs it).
  for (py::ssize_t i = 0; i < nV; ++i) h[i] = 0;  // x_{-1}
  for (py::ssize_t t = 0; t < l; ++t) {
    const T* xprev = t ? xs + (t - 1) * nV : h;
    T* xt = xs + t * nV;
    T* et = ea + t * nV;
    const T* dtv = dt + t * V;
    const T* uv = uu + t * V;
    const T* Bt = Bp + t * sB;
    const T* Ct = Cp + t * sC;
    T acc[V], duv[V];
#pragma omp simd
    for (int v = 0; v < V; ++v) {
      acc[v] = 0;
      duv[v] = dtv[v] * uv[v];
    }
    for (py::ssize_t i = 0; i < n; ++i) {
      const T bs = BVAR ? Bt[i] : T(0), cs = CVAR ? Ct[i] : T(0);
#pragma omp simd
      for (int v = 0; v < V; ++v) {
        const T e = vexp_ieee<T>(dtv[v] * a[i * V + v]);
        const T xn = e * xprev[i * V + v] + duv[v] * (BVAR ? bs : bl[i * V + v]);
        et[i * V + v] = e;
        xt[i * V + v] = xn;
        acc[v] += (CVAR ? cs : cl[i * V + v]) * xn;
      }
    }
#pragma omp simd
    for (int v = 0; v < V; ++v) dy[t * V + v] = acc[v];  // y for now; dy below
  }
  // 2. The gate: dz, and dy = dout silu(z) (row by row: dout and z are rows).
  for (py::ssize_t v = 0; v < V; ++v) {
    if (v >= nv) {
      for (py::ssize_t t = 0; t < l; ++t) dy[t * V + v] = 0;
      continue;
    }
    const py::ssize_t d = d0 + v, off = (b * s.d + d) * l;
    const T* go = dout + off;
    if (p.z) {
      const T* z = p.z + off;
      const T* u = p.u + off;
      T* dz = g.dz + off;
      const T Dd = p.D ? p.D[d] : T(0);
      for (py::ssize_t t = 0; t < l; ++t) {
        const T sg = sigmoid<T>(z[t]), y = p.D ? dy[t * V + v] + Dd * u[t] : dy[t * V + v];
        dz[t] = go[t] * y * sg * (T(1) + z[t] * (T(1) - sg));
        dy[t * V + v] = go[t] * silu<T>(z[t]);
      }
    } else {
      for (py::ssize_t t = 0; t < l; ++t) dy[t * V + v] = go[t];
    }
  }
  // 3. Reverse time.
  T *dAl = w.dA.data(), *dBl = w.dBl.data(), *dCl = w.dCl.data(), *ddt = w.ddt.data(), *dul = w.du.data();
  T Dl[V];
  for (int v = 0; v < V; ++v) Dl[v] = p.D && v < nv ? p.D[d0 + v] : T(0);
  for (py::ssize_t i = 0; i < n; ++i)
    for (int v = 0; v < V; ++v) h[i * V + v] = dlast && v < nv ? dlast[(b * s.d + d0 + v) * n + i] : T(0);
  for (py::ssize_t t = l - 1; t >= 0; --t) {
    const T* dtv = dt + t * V;
    const T* uv = uu + t * V;
    const T* dyv = dy + t * V;
    T* xt = xs + t * nV;
    T* et = ea + t * nV;
    // x_{-1} = 0 takes part like any state: its terms are 0, or NaN where they meet an inf
    const T* xprev = t ? xs + (t - 1) * nV : w.zeros.data();
    const T* Bt = Bp + t * sB;
    const T* Ct = Cp + t * sC;
    T* dBt = dBp + t * sB;
    T* dCt = dCp + t * sC;
    // The products keep the per-state order of PyTorch's autograd through the reference loop, and
    // the two paths into dt (through exp(dt A) and through dt B u) are summed apart, so that infs
    // of opposite signs meet, and make NaN, as they do there.
    T decay[V], input[V], dus[V], dtu[V];
#pragma omp simd
    for (int v = 0; v < V; ++v) {
      decay[v] = input[v] = dus[v] = 0;
      dtu[v] = dtv[v] * uv[v];
    }
    for (py::ssize_t i = 0; i < n; ++i) {
      const T bs = BVAR ? Bt[i] : T(0), cs = CVAR ? Ct[i] : T(0);
      T sumB = 0, sumC = 0;
#pragma omp simd reduction(+ : sumB, sumC)
      for (int v = 0; v < V; ++v) {
        const py::ssize_t k = i * V + v;
        const T bv = BVAR ? bs : bl[k], cv = CVAR ? cs : cl[k];
        const T hi = h[k] + dyv[v] * cv;
        const T hx = hi * xprev[k] * et[k];  // dL/d exp(dt A) times exp(dt A)
        const T hB = hi * bv;
        const T dc = dyv[v] * xt[k], db = hi * dtu[v];
        const T e = et[k];
        if (CVAR) sumC += v < nv ? dc : T(0);
        else dCl[k] += dc;
        if (BVAR) sumB += v < nv ? db : T(0);
        else dBl[k] += db;
        decay[v] += hx * a[k];
        input[v] += hB * uv[v];
        dAl[k] += hx * dtv[v];
        dus[v] += hB * dtv[v];
        h[k] = hi * e;
      }
      if (BVAR) dBt[i] += sumB;
      if (CVAR) dCt[i] += sumC;
    }
#pragma omp simd
    for (int v = 0; v < V; ++v) {
      ddt[t * V + v] = decay[v] + input[v];
      dul[t * V + v] = p.D ? dus[v] + Dl[v] * dyv[v] : dus[v];  // an absent D adds nothing (not 0 * dy)
    }
  }
  // 4. Rows back: ddelta (through softplus), du, and the sums for dD and ddelta_bias.
  for (py::ssize_t v = 0; v < nv; ++v) {
    const py::ssize_t d = d0 + v, off = (b * s.d + d) * l;
    T* ddl = g.ddelta + off;
    T* dur = g.du + off;
    const T* u = p.u + off;
    T sd = 0, sb = 0;
    for (py::ssize_t t = 0; t < l; ++t) {
      const T dyt = dy[t * V + v];
      sd += dyt * u[t];
      const T val = p.softplus ? ddt[t * V + v] * sig[t * V + v] : ddt[t * V + v];
      ddl[t] = val;
      sb += val;
      dur[t] = dul[t * V + v];
    }
    g.dD[d] += sd;
    g.dbias[d] += sb;
  }
}

template <typename T>
void backward_block_any(const Scan<T>& p, const Dims& s, py::ssize_t b, const Block& blk, const T* dout,
                        const T* dlast, const Grads<T>& g, BwdWork<T>& w) {
  constexpr int V = lanes<T>();
  if (s.gB && s.gC) backward_block<T, V, true, true>(p, s, b, blk, dout, dlast, g, w);
  else if (s.gB) backward_block<T, V, true, false>(p, s, b, blk, dout, dlast, g, w);
  else if (s.gC) backward_block<T, V, false, true>(p, s, b, blk, dout, dlast, g, w);
  else backward_block<T, V, false, false>(p, s, b, blk, dout, dlast, g, w);
}

template <typename T>
py::tuple backward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D, py::object z,
                   py::object bias, bool softplus, py::array dout, py::object dlast_o, py::object states_o) {
  Dims s;
  Scan<T> p = prepare<T>(u, delta, A, B, C, D, z, bias, softplus, s);
  tinyml::check_array<T>(dout, "selective_scan dout");
  tinyml::check_same_shape(u, dout, "selective_scan u", "dout");
  const T* dlast = opt_ptr<T>(dlast_o, "dlast_state", {s.bt, s.d, s.n});
  // the forward's states (float32 with keep_states; float64 recomputes them and ignores these)
  const T* states = opt_ptr<T>(states_o, "states", {s.bt, s.d, state_chunks(s.l), s.n});
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
    const std::vector<T> Bt = time_major(p.B, s.gB, s), Ct = time_major(p.C, s.gC, s);
    if (s.gB) p.B = Bt.data();
    if (s.gC) p.C = Ct.data();
    constexpr int V = lanes<T>();
    const std::vector<Block> blocks = plan_blocks(s, V);
    const py::ssize_t nb = static_cast<py::ssize_t>(blocks.size());
    const int nt = (s.bt * s.d * s.l * s.n > 16384) ? tinyml::max_threads() : 1;
    // A block's channels (rows of dA, dD, ddelta_bias and of a time-invariant dB/dC) belong to one
    // thread: accumulated in its lanes over the batch, written once. Input-dependent dB/dC are
    // shared by all blocks of a group: one zeroed buffer per thread, summed below.
    std::vector<std::vector<T>> bufB(s.gB ? nt : 0), bufC(s.gC ? nt : 0);
    std::fill(g.dD, g.dD + s.d, T(0));
    std::fill(g.dbias, g.dbias + s.d, T(0));
#pragma omp parallel num_threads(nt)
    {
      const int tid = tinyml::thread_id();
      Grads<T> mine = g;
      if (s.gB) {
        bufB[tid].assign(nB, T(0));
        mine.dB = bufB[tid].data();
      }
      if (s.gC) {
        bufC[tid].assign(nC, T(0));
        mine.dC = bufC[tid].data();
      }
      if constexpr (std::is_same_v<T, float>) {
        auto work = backward_work_f32(s);
#pragma omp for schedule(static)
        for (py::ssize_t k = 0; k < nb; ++k)
          backward_channels_f32(p, s, blocks[k], gout, dlast, states, mine, *work);
      } else {
        BwdWork<T> work(s.l, s.n, V);
#pragma omp for schedule(static)
        for (py::ssize_t k = 0; k < nb; ++k) {
          const Block& blk = blocks[k];
          std::fill(work.dA.begin(), work.dA.end(), T(0));
          std::fill(work.dBl.begin(), work.dBl.end(), T(0));
          std::fill(work.dCl.begin(), work.dCl.end(), T(0));
          for (py::ssize_t b = 0; b < s.bt; ++b) backward_block_any<T>(p, s, b, blk, gout, dlast, mine, work);
          for (py::ssize_t v = 0; v < blk.nv; ++v)
            for (py::ssize_t i = 0; i < s.n; ++i) {
              const py::ssize_t at = (blk.d0 + v) * s.n + i;
              g.dA[at] = work.dA[i * V + v];
              if (!s.gB) g.dB[at] = work.dBl[i * V + v];
              if (!s.gC) g.dC[at] = work.dCl[i * V + v];
            }
        }
      }
      // Sum the per-thread dB/dC buffers ((batch, G, L, N)) into the (batch, G, N, L) outputs, each
      // thread a slice of the output rows (batch, group, state).
#pragma omp barrier
      auto sum_rows = [&](const std::vector<std::vector<T>>& bufs, py::ssize_t groups, T* out) {
#pragma omp for schedule(static)
        for (py::ssize_t row = 0; row < s.bt * groups * s.n; ++row) {
          const py::ssize_t bg = row / s.n, i = row % s.n;
          for (py::ssize_t t = 0; t < s.l; ++t) {
            const py::ssize_t at = (bg * s.l + t) * s.n + i;
            T acc = 0;
            for (int k = 0; k < nt; ++k) acc += bufs[k][at];
            out[row * s.l + t] = acc;
          }
        }
      };
      if (s.gB) sum_rows(bufB, s.gB, g.dB);
      if (s.gC) sum_rows(bufC, s.gC, g.dC);
    }
  }
  py::object none = py::none();
  return py::make_tuple(du, ddelta, dA, dB, dC, p.D ? py::object(dD) : none, p.z ? py::object(dz) : none,
                        p.bias ? py::object(dbias) : none);
}

}  // namespace

// The body of the selective_scan_backward binding (registered in csrc/scan.cpp, beside the forward).
py::tuple selective_scan_backward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D,
                                  py::object z, py::object bias, bool softplus, py::array dout, py::object dlast,
                                  py::object states) {
  check_float(u);
  return is_f64(u) ? backward<double>(u, delta, A, B, C, D, z, bias, softplus, dout, dlast, states)
                   : backward<float>(u, delta, A, B, C, D, z, bias, softplus, dout, dlast, states);
}
