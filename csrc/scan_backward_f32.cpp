// Selective scan backward, float32: one block of sixteen channels (one per lane of a csrc/scan_vec.h
// vf16) of one batch row, time in chunks. The math is csrc/scan.cpp's; the driver (threads, the
// sums of dB/dC over threads) is csrc/scan_backward.cpp's, which runs this for float32.
//
// 1. dt = softplus(delta + bias) and its derivative sigmoid(delta + bias), lane-major, for the whole
//    row. The state entering each chunk of kStateEvery steps: the forward's (its states array,
//    kept when a gradient is needed, as mamba_ssm's CUDA kernel keeps its chunks' states), else
//    from a pass of the recurrence over the row.
// 2. The chunks in reverse: the chunk's states x_t and decays exp(dt_t A) again from the state at
//    its start (T x N vectors each, in L1/L2 instead of L x N for the whole row), y_t = C_t . x_t,
//    the gate (dz, and dy = dout silu(z)), then the adjoint h_t = h_{t+1} exp(dt_{t+1} A) + dy_t C_t
//    back through the chunk, every update a vertical operation over the lanes. Rows of dz, ddelta
//    and du go out per chunk through transposes.
// An input-dependent dB_t[n] / dC_t[n] is a sum over the block's lanes: the step stores its lane
// vector in the slot of the now dead x_t / exp(dt_t A), and after the chunk reduce16 sums them
// sixteen (t, n) at a time (30 shuffles and 15 adds per sixteen sums), off the recurrence's chain.
// Recomputing a chunk's states costs less than writing and reading L x N x 16 floats a block: the
// steps are arithmetic on registers and L1/L2, the stored states of a whole row were L2 traffic.
#include "scan_common.h"  // first: simd_math.h sets fp-contract
#include "scan_vec.h"

namespace tinyml::scan {
namespace {

namespace vec = tinyml::vec;
using vec::vf16;

constexpr py::ssize_t kSteps = kStateEvery;  // steps per chunk: x_t and exp(dt_t A), 2 x 32 KB at N 16

// One thread's buffers, vf16-aligned by hand (std::vector<vf16> would not over-align its storage),
// not zero-filled: every slot is written before it is read.
struct Work {
  std::unique_ptr<float[]> storage;
  vf16 *dt, *u, *sig;         // lane-major rows of the whole length (t)
  vf16 *go, *zc, *y, *dy, *ddt, *du;  // one chunk's rows
  vf16 *xs, *ea;              // one chunk's states and decays (t * N + n)
  vf16 *start;                // the state entering each chunk (c * N + n)
  vf16 *a, *a2, *bl, *cl, *x, *h;  // A, A log2 e, time-invariant B and C, the state, the adjoint (n)
  vf16 *dA, *dBl, *dCl;  // the lanes of dA and of time-invariant dB, dC: sums over the batch (n)
  std::vector<char> fast;     // per chunk: every |dt A log2 e| <= 125 (the exps skip their clamps)
  Work(py::ssize_t l, py::ssize_t n) {
    const py::ssize_t chunks = (l + kSteps - 1) / kSteps;
    const py::ssize_t count = 3 * l + 6 * kSteps + 2 * kSteps * n + chunks * n + 9 * n + 1;
    storage.reset(new float[count * vec::kLanes]);
    const auto addr = reinterpret_cast<std::uintptr_t>(storage.get());
    vf16* p = reinterpret_cast<vf16*>((addr + sizeof(vf16) - 1) / sizeof(vf16) * sizeof(vf16));
    for (vf16** buf : {&dt, &u, &sig}) *buf = p, p += l;
    for (vf16** buf : {&go, &zc, &y, &dy, &ddt, &du}) *buf = p, p += kSteps;
    for (vf16** buf : {&xs, &ea}) *buf = p, p += kSteps * n;
    start = p, p += chunks * n;
    for (vf16** buf : {&a, &a2, &bl, &cl, &x, &h, &dA, &dBl, &dCl}) *buf = p, p += n;
    fast.resize(chunks);
  }
};

// x through the tc steps from t0 on: the decay e = exp2(dt A log2 e), x = e x + dt u B_t. KEEP:
// every x_t and e_t into w.xs / w.ea and y_t = C_t . x_t into w.y (two partial sums: half the chain
// of multiply-adds); else x alone.
template <bool BVAR, bool CVAR, bool CLAMP, bool KEEP>
TINYML_VEC void steps(Work& w, vf16* x, py::ssize_t t0, const float* Bp, py::ssize_t sB, const float* Cp,
                      py::ssize_t sC, py::ssize_t n, py::ssize_t tc) {
  for (py::ssize_t t = 0; t < tc; ++t) {
    const vf16 dt = w.dt[t0 + t], du = dt * w.u[t0 + t];
    const float* Bt = Bp + (t0 + t) * sB;
    const float* Ct = Cp + (t0 + t) * sC;
    vf16 acc0 = vec::splat(0.0f), acc1 = vec::splat(0.0f);
    auto state = [&](py::ssize_t i, vf16& acc) {
      const vf16 x2 = dt * w.a2[i];
      const vf16 e = CLAMP ? vec::exp2(x2) : vec::exp2_in_range(x2);
      vf16 xi = e * x[i];
      if constexpr (BVAR) xi += du * Bt[i];
      else xi += du * w.bl[i];
      x[i] = xi;
      if constexpr (KEEP) {
        if constexpr (CVAR) acc += Ct[i] * xi;
        else acc += w.cl[i] * xi;
        w.xs[t * n + i] = xi;
        w.ea[t * n + i] = e;
      }
    };
    py::ssize_t i = 0;
    for (; i + 1 < n; i += 2) {
      state(i, acc0);
      state(i + 1, acc1);
    }
    if (i < n) state(i, acc0);
    if constexpr (KEEP) w.y[t] = acc0 + acc1;
  }
}

// The chunk's steps in reverse (t0 + tc - 1 down to t0), from the adjoint in w.h. Per state, with
// hi = h + dy C_t: the products keep the per-state order of PyTorch's autograd through mamba's
// reference loop, and the two paths into dt (through exp(dt A) and through dt B u) are summed apart,
// so that infs of opposite signs meet, and make NaN, as they do there. x_{-1} = 0 takes part like
// any state (its terms are 0, or NaN where they meet an inf).
template <bool BVAR, bool CVAR>
TINYML_VEC void reverse_steps(Work& w, const vf16* xstart, py::ssize_t t0, const float* Bp, py::ssize_t sB,
                              const float* Cp, py::ssize_t sC, py::ssize_t n, py::ssize_t tc) {
  vf16 *h = w.h, *dA = w.dA, *dBl = w.dBl, *dCl = w.dCl;
  for (py::ssize_t t = tc - 1; t >= 0; --t) {
    const vf16 dt = w.dt[t0 + t], u = w.u[t0 + t], dy = w.dy[t], dtu = dt * u;
    const float* Bt = Bp + (t0 + t) * sB;
    const float* Ct = Cp + (t0 + t) * sC;
    vf16* xt = w.xs + t * n;
    vf16* et = w.ea + t * n;
    const vf16* xprev = t ? xt - n : xstart;
    vf16 decay = vec::splat(0.0f), input = decay, dus = decay;
    for (py::ssize_t i = 0; i < n; ++i) {
      // (a scalar B_t[i] / C_t[i] is broadcast by the vector operation itself: vec::splat adds 0)
      const vf16 e = et[i];
      vf16 hi, hB;
      if constexpr (CVAR) hi = h[i] + dy * Ct[i];
      else hi = h[i] + dy * w.cl[i];
      const vf16 hx = hi * xprev[i] * e;  // dL/d exp(dt A) times exp(dt A)
      if constexpr (BVAR) hB = hi * Bt[i];
      else hB = hi * w.bl[i];
      const vf16 dc = dy * xt[i], db = hi * dtu;
      if constexpr (CVAR) xt[i] = dc;  // x_t and e_t are dead after this step: their slots
      else dCl[i] += dc;               // keep the lanes of dC_t and dB_t for reduce16
      if constexpr (BVAR) et[i] = db;
      else dBl[i] += db;
      decay += hx * w.a[i];
      input += hB * u;
      dA[i] += hx * dt;
      dus += hB * dt;
      h[i] = hi * e;
    }
    w.ddt[t] = decay + input;
    w.du[t] = dus;
  }
}

// dM[j] += the lane sum of lanes[j] for j < count (lanes past nv masked to 0: padding channels may
// hold NaN from a NaN B_t or C_t, which must not reach the real channels' sums).
TINYML_VEC void lane_sums_into(const vf16* lanes, py::ssize_t count, py::ssize_t nv, float* dM) {
  float mask_lanes[vec::kLanes];
  for (int v = 0; v < vec::kLanes; ++v) mask_lanes[v] = v < nv ? 1.0f : 0.0f;
  const vf16 keep = vec::load(mask_lanes);
  for (py::ssize_t j0 = 0; j0 < count; j0 += vec::kLanes) {
    const py::ssize_t m = std::min<py::ssize_t>(vec::kLanes, count - j0);
    vf16 r[vec::kLanes];
    for (py::ssize_t j = 0; j < vec::kLanes; ++j) {
      r[j] = j < m ? lanes[j0 + j] : vec::splat(0.0f);
      if (nv < vec::kLanes) r[j] = keep != 0.0f ? r[j] : vec::splat(0.0f);
    }
    const vf16 sum = vec::reduce16(r);
    if (m == vec::kLanes) {
      vec::store(dM + j0, vec::load(dM + j0) + sum);
    } else {
      for (py::ssize_t j = 0; j < m; ++j) dM[j0 + j] += sum[j];
    }
  }
}

// The rows (16 channels) of a chunk at t0 into L2 ahead of their transposes: 16 row pieces are more
// streams than the hardware prefetcher follows (as in the forward kernel).
TINYML_VEC void prefetch_rows(const float* rows, py::ssize_t l, py::ssize_t nv, py::ssize_t t0) {
  if (!rows || t0 < 0 || t0 >= l) return;
  for (py::ssize_t v = 0; v < nv; ++v)
    for (py::ssize_t k = t0; k < std::min(t0 + kSteps, l); k += 64 / sizeof(float))
      __builtin_prefetch(rows + v * l + k, 0, 2);
}

template <bool BVAR, bool CVAR>
TINYML_CLONES void block(const Scan<float>& p, const Dims& s, py::ssize_t b, const Block& blk, const float* dout,
                         const float* dlast, const float* states, const Grads<float>& g, Work& w) {
  const py::ssize_t n = s.n, l = s.l, d0 = blk.d0, nv = blk.nv, row0 = (b * s.d + d0) * l;
  float lane[vec::kLanes];
  auto per_lane = [&](const float* M, py::ssize_t stride, py::ssize_t i) {  // M[(d0 + v) stride + i]
    for (py::ssize_t v = 0; v < vec::kLanes; ++v) lane[v] = M && v < nv ? M[(d0 + v) * stride + i] : 0.0f;
    return vec::load(lane);
  };
  const vf16 bias = per_lane(p.bias, 1, 0), Dv = per_lane(p.D, 1, 0);
  vf16* xr = w.x;
  for (py::ssize_t i = 0; i < n; ++i) {
    w.a[i] = per_lane(p.A, n, i);
    w.a2[i] = w.a[i] * vec::kLog2e;
    if (!BVAR) w.bl[i] = per_lane(p.B, n, i);
    if (!CVAR) w.cl[i] = per_lane(p.C, n, i);
    xr[i] = vec::splat(0.0f);
    w.h[i] = per_lane(dlast, n, i + b * s.d * n);  // dlast[(b, d0 + v, i)]
  }
  const float dt_limit = vec::dt_limit(w.a2, n);  // |dt| <= dt_limit: |dt A log2 e| <= 125
  py::ssize_t sB, sC;
  const float* Bp = bc_ptr(p.B, s.gB, s, b, d0, sB);
  const float* Cp = bc_ptr(p.C, s.gC, s, b, d0, sC);
  const py::ssize_t chunks = (l + kSteps - 1) / kSteps;
  // 1. dt and sigmoid(delta + bias) (1 without softplus); the states entering the chunks.
  for (const float* rows : {p.delta, p.u}) prefetch_rows(rows + row0, l, nv, 0);
  for (py::ssize_t c = 0; c < chunks; ++c) {
    const py::ssize_t t0 = c * kSteps, tc = std::min(kSteps, l - t0);
    for (const float* rows : {p.delta, p.u}) prefetch_rows(rows + row0, l, nv, t0 + kSteps);
    vec::rows_to_lanes(p.delta + row0 + t0, l, nv, tc, reinterpret_cast<float*>(w.dt + t0));
    vec::rows_to_lanes(p.u + row0 + t0, l, nv, tc, reinterpret_cast<float*>(w.u + t0));
    vf16 in_range = vec::splat(1.0f);
    for (py::ssize_t t = t0; t < t0 + tc; ++t) {
      const vf16 pre = w.dt[t] + bias;
      vf16 dt = pre, sig = vec::splat(1.0f);
      if (p.softplus) dt = vec::softplus_and_sigmoid(pre, sig);
      const vf16 dt_abs = dt < 0 ? -dt : dt;
      w.sig[t] = sig;
      w.dt[t] = dt;
      in_range = dt_abs <= dt_limit ? in_range : vec::splat(0.0f);  // false for NaN
    }
    bool fast = true;
    for (int v = 0; v < vec::kLanes; ++v) fast = fast && in_range[v] != 0.0f;
    w.fast[c] = fast;
    if (states) {  // the forward's: states[b, d0 + v, c, i], rows of N over v, through transposes
      const float* at = states + ((b * s.d + d0) * chunks + c) * n;
      vec::rows_to_lanes(at, chunks * n, nv, n, reinterpret_cast<float*>(w.start + c * n));
    } else {
      for (py::ssize_t i = 0; i < n; ++i) w.start[c * n + i] = xr[i];
      if (fast) steps<BVAR, CVAR, false, false>(w, xr, t0, Bp, sB, Cp, sC, n, tc);
      else steps<BVAR, CVAR, true, false>(w, xr, t0, Bp, sB, Cp, sC, n, tc);
    }
  }
  // 2. The chunks in reverse: their states again, y and the gate, then the adjoint back through them.
  vf16 sd = vec::splat(0.0f), sb = sd;
  for (const float* rows : {dout, p.z}) prefetch_rows(rows ? rows + row0 : rows, l, nv, (chunks - 1) * kSteps);
  for (py::ssize_t c = chunks - 1; c >= 0; --c) {
    const py::ssize_t t0 = c * kSteps, tc = std::min(kSteps, l - t0);
    for (const float* rows : {dout, p.z}) prefetch_rows(rows ? rows + row0 : rows, l, nv, t0 - kSteps);
    const vf16* xstart = w.start + c * n;
    for (py::ssize_t i = 0; i < n; ++i) xr[i] = xstart[i];
    if (w.fast[c]) steps<BVAR, CVAR, false, true>(w, xr, t0, Bp, sB, Cp, sC, n, tc);
    else steps<BVAR, CVAR, true, true>(w, xr, t0, Bp, sB, Cp, sC, n, tc);
    vec::rows_to_lanes(dout + row0 + t0, l, nv, tc, reinterpret_cast<float*>(w.go));
    if (p.z) {
      vec::rows_to_lanes(p.z + row0 + t0, l, nv, tc, reinterpret_cast<float*>(w.zc));
      for (py::ssize_t t = 0; t < tc; ++t) {
        const vf16 z = w.zc[t], go = w.go[t], sg = vec::sigmoid(z);
        vf16 y = w.y[t];
        if (p.D) y += Dv * w.u[t0 + t];  // an absent D adds nothing (not 0 * u)
        w.zc[t] = go * y * sg * (1.0f + z * (1.0f - sg));  // dz
        w.dy[t] = go * (z * sg);  // silu(z) = z sigmoid(z): NaN at z = -inf (-inf * 0), as PyTorch's
      }
      vec::lanes_to_rows(reinterpret_cast<const float*>(w.zc), l, nv, tc, g.dz + row0 + t0);
    } else {
      for (py::ssize_t t = 0; t < tc; ++t) w.dy[t] = w.go[t];
    }
    reverse_steps<BVAR, CVAR>(w, xstart, t0, Bp, sB, Cp, sC, n, tc);
    for (py::ssize_t t = 0; t < tc; ++t) {
      const vf16 dy = w.dy[t], u = w.u[t0 + t], val = w.ddt[t] * w.sig[t0 + t];
      w.ddt[t] = val;  // ddelta = ddt softplus'(delta + bias) (sig is 1 without softplus)
      if (p.D) w.du[t] += Dv * dy;  // an absent D adds nothing (not 0 * dy)
      sd += dy * u;
      sb += val;
    }
    vec::lanes_to_rows(reinterpret_cast<const float*>(w.ddt), l, nv, tc, g.ddelta + row0 + t0);
    vec::lanes_to_rows(reinterpret_cast<const float*>(w.du), l, nv, tc, g.du + row0 + t0);
    // dB_t / dC_t of the chunk are (tc, N) rows (t * N + n), the order of the slots
    if (BVAR) lane_sums_into(w.ea, tc * n, nv, g.dB + (Bp - p.B) + t0 * sB);
    if (CVAR) lane_sums_into(w.xs, tc * n, nv, g.dC + (Cp - p.C) + t0 * sC);
  }
  for (py::ssize_t v = 0; v < nv; ++v) {
    g.dD[d0 + v] += sd[v];
    g.dbias[d0 + v] += sb[v];
  }
}

}  // namespace

struct BackwardWorkF32 {
  Work w;
  BackwardWorkF32(py::ssize_t l, py::ssize_t n) : w(l, n) {}
};

void FreeBackwardWorkF32::operator()(BackwardWorkF32* w) const { delete w; }

std::unique_ptr<BackwardWorkF32, FreeBackwardWorkF32> backward_work_f32(const Dims& s) {
  return std::unique_ptr<BackwardWorkF32, FreeBackwardWorkF32>(new BackwardWorkF32(s.l, s.n));
}

void backward_channels_f32(const Scan<float>& p, const Dims& s, const Block& blk, const float* dout,
                           const float* dlast, const float* states, const Grads<float>& g, BackwardWorkF32& work) {
  Work& w = work.w;
  for (py::ssize_t i = 0; i < s.n; ++i) w.dA[i] = w.dBl[i] = w.dCl[i] = vec::splat(0.0f);
  for (py::ssize_t b = 0; b < s.bt; ++b) {
    if (s.gB && s.gC) block<true, true>(p, s, b, blk, dout, dlast, states, g, w);
    else if (s.gB) block<true, false>(p, s, b, blk, dout, dlast, states, g, w);
    else if (s.gC) block<false, true>(p, s, b, blk, dout, dlast, states, g, w);
    else block<false, false>(p, s, b, blk, dout, dlast, states, g, w);
  }
  for (py::ssize_t v = 0; v < blk.nv; ++v)
    for (py::ssize_t i = 0; i < s.n; ++i) {
      const py::ssize_t at = (blk.d0 + v) * s.n + i;
      g.dA[at] = w.dA[i][v];
      if (!s.gB) g.dB[at] = w.dBl[i][v];
      if (!s.gC) g.dC[at] = w.dCl[i][v];
    }
}

}  // namespace tinyml::scan
