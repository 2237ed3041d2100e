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
// Layout: u, delta, z, out (Bt, D, L); A (D, N); B and C either (D, N) (time-invariant) or
// (Bt, G, N, L), the op's layout, which the bindings copy to (Bt, G, L, N) (time_major), state index
// innermost, and dB/dC back.
// Vectorised across channels: a block of V channels (16 floats or 8 doubles, one 64-byte vector)
// runs side by side, one channel per SIMD lane, with its rows of dt, dt u and y copied lane-major
// (t * V + v) and its states as N vectors (n * V + v). A step is then vertical operations only,
// x[n] = exp(dt A[n]) x[n] + dt u B_t[n] and y += C_t[n] x[n] over the lanes: no horizontal sum over
// N per step (a kernel over one channel reduces C_t . x_t across a vector every step). Blocks
// never straddle a group of B or C, so an input-dependent B_t[n] is one broadcast scalar for the
// block. OpenMP over (batch, block) in the forward, over blocks (batch inside) in the backward, so
// dA/dD/dbias and time-invariant dB/dC rows belong to one thread; input-dependent dB/dC are shared
// by the blocks of a group and go to per-thread buffers summed after (their sums over a block's
// lanes are the only horizontal sums, off the recurrence's dependency chain). The backward
// recomputes the states rather than reading (Bt, D, L, N) of them stored by the forward: float32
// chunk by chunk, from the state entering every kStateEvery (32) steps, which the forward keeps
// when asked (keep_states: a gradient will be needed), as mamba_ssm's CUDA kernel keeps its
// chunks' states (csrc/scan_backward_f32.cpp); float64 a block's whole row into L x N x V buffers.
//
// The float32 forward (forward_block_f32) is written on sixteen-float vectors (csrc/scan_vec.h,
// compiled per ISA by target_clones): time runs in chunks of 64 steps whose lane-major rows
// (16 x 16 register transposes in and out) stay in L1, softplus, D u and the silu gate are vector
// passes over a chunk, and the decay is exp2(dt (A log2 e)) with A log2 e formed once per block.
// Each chunk first checks |dt| <= 125 / max|A log2 e| over its lanes (false for NaN); then the
// inner loop runs the exp without its range clamps (per state and 16 channels a step is then the
// exp2's rounding, degree-5 polynomial and scaling, dt u B, and two multiply-adds), else with them.
// Per-call profile, 1 thread: see docs/ssm_scan.md.
//
// NaN and +-inf come out where mamba's reference loop in PyTorch puts them: the exps have IEEE ends
// (a state that decays by exp(-inf) = 0 turns an inf into 0 * inf = NaN, not 1e-38 * inf = inf), the
// gate is y * silu(z) with silu(-inf) = NaN, and an absent D adds nothing (not 0 * u, NaN for an inf u).
//
// This file: the forward and both bindings; csrc/scan_backward.cpp: the backward;
// csrc/scan_common.h: what both share.
#include "scan_common.h"  // first: simd_math.h sets fp-contract
#include "scan_vec.h"

namespace {

using namespace tinyml::scan;
namespace vec = tinyml::vec;

// Per-thread buffers of the forward: lane-major rows (t * V + v) of dt, dt u and y for one block,
// its states and A, B, C (n * V + v), and one row of dt.
template <typename T>
struct FwdWork {
  std::vector<T> dt, du, y, x, a, bl, cl, row;
  FwdWork(py::ssize_t l, py::ssize_t n, py::ssize_t V)
      : dt(l * V), du(l * V), y(l * V), x(n * V), a(n * V), bl(n * V), cl(n * V), row(l) {}
};

// One block of V channels (lanes) of batch b through time. Each step updates the N x V states with
// vertical vector operations only: x[n][v] = exp(dt[v] A[n][v]) x[n][v] + dtu[v] B[n],
// y[v] += C[n] x[n][v]; an input-dependent B_t/C_t is one scalar per state for the whole block.
template <typename T, int V, bool BVAR, bool CVAR>
TINYML_CLONES void forward_block(const Scan<T>& p, const Dims& s, py::ssize_t b, const Block& blk, T* out,
                                 T* last, FwdWork<T>& w) {
  const py::ssize_t n = s.n, l = s.l, d0 = blk.d0, nv = blk.nv;
  T *dt = w.dt.data(), *du = w.du.data(), *y = w.y.data(), *x = w.x.data(), *a = w.a.data();
  for (py::ssize_t v = 0; v < V; ++v) {
    if (v < nv) {
      const py::ssize_t off = (b * s.d + d0 + v) * l;
      delta_row(p, off, l, p.bias ? p.bias[d0 + v] : T(0), w.row.data(), static_cast<T*>(nullptr));
      for (py::ssize_t t = 0; t < l; ++t) {
        dt[t * V + v] = w.row[t];
        du[t * V + v] = w.row[t] * p.u[off + t];
      }
    } else {
      for (py::ssize_t t = 0; t < l; ++t) dt[t * V + v] = du[t * V + v] = T(0);
    }
  }
  gather_dn<T, V>(p.A, d0, nv, n, a);
  if (!BVAR) gather_dn<T, V>(p.B, d0, nv, n, w.bl.data());
  if (!CVAR) gather_dn<T, V>(p.C, d0, nv, n, w.cl.data());
  py::ssize_t sB, sC;
  const T* Bp = bc_ptr(p.B, s.gB, s, b, d0, sB);
  const T* Cp = bc_ptr(p.C, s.gC, s, b, d0, sC);
  for (py::ssize_t i = 0; i < n * V; ++i) x[i] = 0;
  for (py::ssize_t t = 0; t < l; ++t) {
    const T* dtv = dt + t * V;
    const T* duv = du + t * V;
    const T* Bt = Bp + t * sB;
    const T* Ct = Cp + t * sC;
    T acc[V];
#pragma omp simd
    for (int v = 0; v < V; ++v) acc[v] = 0;
    for (py::ssize_t i = 0; i < n; ++i) {
      T* xi = x + i * V;
      const T* ai = a + i * V;
      const T* bv = w.bl.data() + i * V;
      const T* cv = w.cl.data() + i * V;
      const T bs = BVAR ? Bt[i] : T(0), cs = CVAR ? Ct[i] : T(0);
#pragma omp simd
      for (int v = 0; v < V; ++v) {
        const T xn = vexp_ieee<T>(dtv[v] * ai[v]) * xi[v] + duv[v] * (BVAR ? bs : bv[v]);
        xi[v] = xn;
        acc[v] += (CVAR ? cs : cv[v]) * xn;
      }
    }
#pragma omp simd
    for (int v = 0; v < V; ++v) y[t * V + v] = acc[v];
  }
  for (py::ssize_t v = 0; v < nv; ++v) {
    const py::ssize_t d = d0 + v, off = (b * s.d + d) * l;
    T* yr = out + off;
    for (py::ssize_t t = 0; t < l; ++t) yr[t] = y[t * V + v];
    if (p.D) {
      const T Dd = p.D[d];
      const T* u = p.u + off;
#pragma omp simd
      for (py::ssize_t t = 0; t < l; ++t) yr[t] += Dd * u[t];
    }
    if (p.z) {
      const T* z = p.z + off;
#pragma omp simd
      for (py::ssize_t t = 0; t < l; ++t) yr[t] *= silu<T>(z[t]);
    }
    for (py::ssize_t i = 0; i < n; ++i) last[(b * s.d + d) * n + i] = x[i * V + v];
  }
}

template <typename T>
void forward_block_any(const Scan<T>& p, const Dims& s, py::ssize_t b, const Block& blk, T* out, T* last,
                       FwdWork<T>& w) {
  constexpr int V = lanes<T>();
  if (s.gB && s.gC) forward_block<T, V, true, true>(p, s, b, blk, out, last, w);
  else if (s.gB) forward_block<T, V, true, false>(p, s, b, blk, out, last, w);
  else if (s.gC) forward_block<T, V, false, true>(p, s, b, blk, out, last, w);
  else forward_block<T, V, false, false>(p, s, b, blk, out, last, w);
}

// ---- float32: sixteen channels as one vf16 (csrc/scan_vec.h), time in chunks --------------------
// The chunk's lane-major rows (dt, dt u, u, z, y: kChunk x 16 floats each, 20 KB) stay in L1; a
// step costs, per state and per sixteen channels, one multiply and one exp2 (the decay
// exp(dt A) = exp2(dt (A log2 e)), with A log2 e formed once per block), one multiply-add for the
// state and one for y: no horizontal sums, no division.
constexpr py::ssize_t kChunk = 64;

// One thread's buffers, vf16-aligned by hand: std::vector<vf16> would not over-align its storage.
struct FwdWorkF32 {
  std::vector<float> storage;
  vec::vf16 *dt, *du, *u, *z, *y, *x, *a2, *bl, *cl;
  explicit FwdWorkF32(py::ssize_t n) : storage((5 * kChunk + 4 * n + 1) * vec::kLanes) {
    const auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
    vec::vf16* p = reinterpret_cast<vec::vf16*>((addr + sizeof(vec::vf16) - 1) / sizeof(vec::vf16) * sizeof(vec::vf16));
    for (vec::vf16** buf : {&dt, &du, &u, &z, &y}) *buf = p, p += kChunk;
    for (vec::vf16** buf : {&x, &a2, &bl, &cl}) *buf = p, p += n;
  }
};

// Steps t1 .. t2-1 of a chunk of one block: per state, the decay exp2(dt A log2 e),
// x = decay x + dt u B_t, y += C_t x. Two partial sums for y, so its chain of multiply-adds is half
// as long as the loop over states.
template <bool BVAR, bool CVAR, bool CLAMP>
TINYML_VEC void scan_steps(FwdWorkF32& w, vec::vf16* x, const vec::vf16* a2, const float* Bp, py::ssize_t sB,
                           const float* Cp, py::ssize_t sC, py::ssize_t n, py::ssize_t t1, py::ssize_t t2) {
  using vec::vf16;
  for (py::ssize_t t = t1; t < t2; ++t) {
    const vf16 dt = w.dt[t], du = w.du[t];
    const float* Bt = Bp + t * sB;
    const float* Ct = Cp + t * sC;
    vf16 acc0 = vec::splat(0.0f), acc1 = vec::splat(0.0f);
    auto state = [&](py::ssize_t i, vf16& acc) {
      const vf16 x2 = dt * a2[i];
      vf16 xi = (CLAMP ? vec::exp2(x2) : vec::exp2_in_range(x2)) * x[i];
      if constexpr (BVAR) xi += du * Bt[i];
      else xi += du * w.bl[i];
      x[i] = xi;
      if constexpr (CVAR) acc += Ct[i] * xi;
      else acc += w.cl[i] * xi;
    };
    py::ssize_t i = 0;
    for (; i + 1 < n; i += 2) {
      state(i, acc0);
      state(i + 1, acc1);
    }
    if (i < n) state(i, acc0);
    w.y[t] = acc0 + acc1;
  }
}

template <bool BVAR, bool CVAR>
TINYML_CLONES void forward_block_f32(const Scan<float>& p, const Dims& s, py::ssize_t b, const Block& blk,
                                     float* out, float* last, float* states, FwdWorkF32& w) {
  using vec::vf16;
  const py::ssize_t n = s.n, l = s.l, d0 = blk.d0, nv = blk.nv, row0 = (b * s.d + d0) * l;
  float lane[vec::kLanes];
  auto per_lane = [&](const float* M, py::ssize_t stride, py::ssize_t i) {  // M[(d0 + v) stride + i]
    for (py::ssize_t v = 0; v < vec::kLanes; ++v) lane[v] = M && v < nv ? M[(d0 + v) * stride + i] : 0.0f;
    return vec::load(lane);
  };
  const vf16 bias = per_lane(p.bias, 1, 0), Dv = per_lane(p.D, 1, 0);
  for (py::ssize_t i = 0; i < n; ++i) {
    w.a2[i] = per_lane(p.A, n, i) * vec::kLog2e;
    if (!BVAR) w.bl[i] = per_lane(p.B, n, i);
    if (!CVAR) w.cl[i] = per_lane(p.C, n, i);
    w.x[i] = vec::splat(0.0f);
  }
  const float dt_limit = vec::dt_limit(w.a2, n);  // |dt| <= dt_limit: |dt A log2 e| <= 125
  py::ssize_t sB, sC;
  const float* Bp = bc_ptr(p.B, s.gB, s, b, d0, sB);
  const float* Cp = bc_ptr(p.C, s.gC, s, b, d0, sC);
  vf16 *x = w.x, *a2 = w.a2;
  // Rows of delta, u and z for the chunk at t into L2, two chunks ahead: 3 x 16 row pieces are
  // more streams than the hardware prefetcher follows, and a cold call otherwise waits on DRAM.
  // Past the rows' end (t >= l), the next 16 rows' chunk at t - l: the block after this one (this
  // thread's next in the static schedule), whose first chunks would otherwise start cold.
  const py::ssize_t rows_after = s.bt * s.d - (b * s.d + d0 + nv);
  auto prefetch_chunk = [&](py::ssize_t t) {
    const bool next = t >= l;
    const py::ssize_t start = next ? row0 + nv * l : row0, rows = next ? std::min<py::ssize_t>(16, rows_after) : nv;
    t = next ? t - l : t;
    for (py::ssize_t v = 0; v < rows; ++v)
      for (py::ssize_t k = t; k < std::min(t + kChunk, l); k += 64 / sizeof(float)) {
        const py::ssize_t at = start + v * l + k;
        __builtin_prefetch(p.delta + at, 0, 2);
        __builtin_prefetch(p.u + at, 0, 2);
        if (p.z) __builtin_prefetch(p.z + at, 0, 2);
      }
  };
  prefetch_chunk(0);
  prefetch_chunk(kChunk);
  for (py::ssize_t t0 = 0; t0 < l; t0 += kChunk) {
    const py::ssize_t tc = std::min(kChunk, l - t0);
    prefetch_chunk(t0 + 2 * kChunk);
    vec::rows_to_lanes(p.delta + row0 + t0, l, nv, tc, reinterpret_cast<float*>(w.dt));
    vec::rows_to_lanes(p.u + row0 + t0, l, nv, tc, reinterpret_cast<float*>(w.u));
    for (py::ssize_t t = 0; t < tc; ++t) {
      const vf16 dt = p.softplus ? vec::softplus(w.dt[t] + bias) : w.dt[t] + bias;
      w.dt[t] = dt;
      w.du[t] = dt * w.u[t];
    }
    // every dt A log2 e of the chunk in [-125, 125] (false for NaN): the exps can skip their clamps
    vf16 in_range = vec::splat(1.0f);
    for (py::ssize_t t = 0; t < tc; ++t) {
      const vf16 dt = w.dt[t], dt_abs = dt < 0 ? -dt : dt;
      in_range = dt_abs <= dt_limit ? in_range : vec::splat(0.0f);
    }
    bool fast = true;
    for (int v = 0; v < vec::kLanes; ++v) fast = fast && in_range[v] != 0.0f;
    // the backward's checkpoints: the state entering every kStateEvery steps (kChunk is a multiple)
    for (py::ssize_t t1 = 0; t1 < tc; t1 += kStateEvery) {
      const py::ssize_t t2 = std::min(tc, t1 + kStateEvery);
      if (states) {  // states[b, d0 + v, c, i]: rows of N over v, through transposes
        const py::ssize_t chunks = state_chunks(l);
        float* at = states + ((b * s.d + d0) * chunks + (t0 + t1) / kStateEvery) * n;
        vec::lanes_to_rows(reinterpret_cast<const float*>(x), chunks * n, nv, n, at);
      }
      if (fast) scan_steps<BVAR, CVAR, false>(w, x, a2, Bp + t0 * sB, sB, Cp + t0 * sC, sC, n, t1, t2);
      else scan_steps<BVAR, CVAR, true>(w, x, a2, Bp + t0 * sB, sB, Cp + t0 * sC, sC, n, t1, t2);
    }
    if (p.D) {  // absent, D adds nothing (not 0 * u: NaN for an infinite u)
      for (py::ssize_t t = 0; t < tc; ++t) w.y[t] += Dv * w.u[t];
    }
    if (p.z) {
      vec::rows_to_lanes(p.z + row0 + t0, l, nv, tc, reinterpret_cast<float*>(w.z));
      for (py::ssize_t t = 0; t < tc; ++t) w.y[t] *= vec::silu(w.z[t]);
    }
    vec::lanes_to_rows(reinterpret_cast<const float*>(w.y), l, nv, tc, out + row0 + t0);
  }
  for (py::ssize_t v = 0; v < nv; ++v)
    for (py::ssize_t i = 0; i < n; ++i) last[(b * s.d + d0 + v) * n + i] = x[i][v];
}

void forward_block_f32_any(const Scan<float>& p, const Dims& s, py::ssize_t b, const Block& blk, float* out,
                           float* last, float* states, FwdWorkF32& w) {
  if (s.gB && s.gC) forward_block_f32<true, true>(p, s, b, blk, out, last, states, w);
  else if (s.gB) forward_block_f32<true, false>(p, s, b, blk, out, last, states, w);
  else if (s.gC) forward_block_f32<false, true>(p, s, b, blk, out, last, states, w);
  else forward_block_f32<false, false>(p, s, b, blk, out, last, states, w);
}

// keep_states: float32 also returns the state entering every kStateEvery steps for the backward
// (float64's backward recomputes them: None).
template <typename T>
py::tuple forward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D, py::object z,
                  py::object bias, bool softplus, bool keep_states) {
  Dims s;
  Scan<T> p = prepare<T>(u, delta, A, B, C, D, z, bias, softplus, s);
  py::array_t<T> out({s.bt, s.d, s.l}), last({s.bt, s.d, s.n});
  T* op = out.mutable_data();
  T* lp = last.mutable_data();
  keep_states = keep_states && std::is_same_v<T, float>;
  py::array_t<T> states(keep_states ? std::vector<py::ssize_t>{s.bt, s.d, state_chunks(s.l), s.n}
                                    : std::vector<py::ssize_t>{0});
  T* sp = keep_states ? states.mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    const std::vector<T> Bt = time_major(p.B, s.gB, s), Ct = time_major(p.C, s.gC, s);
    if (s.gB) p.B = Bt.data();
    if (s.gC) p.C = Ct.data();
    const std::vector<Block> blocks = plan_blocks(s, lanes<T>());
    const py::ssize_t nb = static_cast<py::ssize_t>(blocks.size());
#pragma omp parallel if (s.bt * s.d * s.l * s.n > 16384)
    {
      if constexpr (std::is_same_v<T, float>) {
        FwdWorkF32 work(s.n);
#pragma omp for schedule(static) collapse(2)
        for (py::ssize_t b = 0; b < s.bt; ++b)
          for (py::ssize_t k = 0; k < nb; ++k) forward_block_f32_any(p, s, b, blocks[k], op, lp, sp, work);
      } else {
        FwdWork<T> work(s.l, s.n, lanes<T>());
#pragma omp for schedule(static) collapse(2)
        for (py::ssize_t b = 0; b < s.bt; ++b)
          for (py::ssize_t k = 0; k < nb; ++k) forward_block_any<T>(p, s, b, blocks[k], op, lp, work);
      }
    }
  }
  return py::make_tuple(out, last, keep_states ? py::object(states) : py::none());
}

}  // namespace

py::tuple selective_scan_backward(py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D,
                                  py::object z, py::object bias, bool softplus, py::array dout, py::object dlast,
                                  py::object states);  // csrc/scan_backward.cpp

void init_scan(py::module_& m) {
  m.def(
      "selective_scan_forward",
      [](py::array u, py::array delta, py::array A, py::array B, py::array C, py::object D, py::object z,
         py::object bias, bool softplus, bool keep_states) {
        check_float(u);
        return is_f64(u) ? forward<double>(u, delta, A, B, C, D, z, bias, softplus, keep_states)
                         : forward<float>(u, delta, A, B, C, D, z, bias, softplus, keep_states);
      },
      py::arg("u"), py::arg("delta"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("D"), py::arg("z"),
      py::arg("delta_bias"), py::arg("delta_softplus"), py::arg("keep_states") = false,
      "(out, last_state, states) of the selective scan; B/C are (D, N) or (batch, G, N, L), contiguous. "
      "states: with keep_states and float32, the state entering every 32 steps (batch, D, ceil(L / 32), N), "
      "for the backward; else None.");
  m.def("selective_scan_backward", &selective_scan_backward, py::arg("u"), py::arg("delta"), py::arg("A"),
        py::arg("B"), py::arg("C"), py::arg("D"), py::arg("z"), py::arg("delta_bias"), py::arg("delta_softplus"),
        py::arg("dout"), py::arg("dlast_state"), py::arg("states") = py::none(),
        "(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias) by the reverse-time recurrence; B/C layout as forward; "
        "states: the forward's (float32), or None (recomputed).");
}
