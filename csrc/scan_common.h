// Shared pieces of the selective scan kernels (csrc/scan.cpp: forward, csrc/scan_backward.cpp:
// backward): the layout structs, the vectorisable math (exp with IEEE ends, log, softplus, sigmoid,
// silu) and the argument checks of both bindings. See csrc/scan.cpp for the recurrence and layout.
#pragma once
#include "simd_math.h"  // first: sets fp-contract

#include <algorithm>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common.h"

namespace tinyml::scan {


// exp(x) with IEEE ends (+inf and 0 where fexp saturates), shared with the activations: the decay
// exp(dt A) must reach a true 0 and inf so that 0 * inf stays NaN, as in PyTorch.
using tinyml::vexp_ieee;

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
inline float flog(float x) {
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
  const float a = std::fabs(v), w = vexp_ieee(-a), u = 1.0f + w, um1 = u - 1.0f;  // softplus(-inf) = 0
  const float ratio = flog(u) / (um1 == 0.0f ? 1.0f : um1);
  const float lp = um1 == 0.0f ? w : ratio * w;
  return std::fmax(v, 0.0f) + lp;
}
template <> inline double softplus<double>(double v) { return v > 20 ? v : std::log1p(std::exp(v)); }

template <typename T>
inline T sigmoid(T v) {
  return T(1) / (T(1) + vexp_ieee<T>(-v));
}

// PyTorch's silu, z / (1 + e^-z): NaN at z = -inf
template <typename T>
inline T silu(T z) {
  return z / (T(1) + vexp_ieee<T>(-z));
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

// ---- channel blocks: the kernels run V channels side by side, one per SIMD lane ----------------

// Lanes per block: one 64-byte vector (16 floats or 8 doubles; two AVX2 vectors or one AVX-512).
template <typename T>
constexpr int lanes() {
  return static_cast<int>(64 / sizeof(T));
}

struct Block {
  py::ssize_t d0, nv;  // channels d0 .. d0 + nv - 1, nv <= lanes
};

// Blocks of at most V channels that never straddle a group of an input-dependent B or C, so that
// every lane of a block reads the same B_t and C_t (a broadcast scalar per state, not a gather).
inline std::vector<Block> plan_blocks(const Dims& s, py::ssize_t V) {
  std::vector<Block> blocks;
  const py::ssize_t gsB = s.gB ? s.d / s.gB : s.d, gsC = s.gC ? s.d / s.gC : s.d;
  for (py::ssize_t d0 = 0; d0 < s.d;) {
    py::ssize_t end = std::min(d0 + V, s.d);
    end = std::min(end, (d0 / gsB + 1) * gsB);
    end = std::min(end, (d0 / gsC + 1) * gsC);
    blocks.push_back(Block{d0, end - d0});
    d0 = end;
  }
  return blocks;
}

// Lane-major copies of a block's rows: dst[t * V + v] = row(d0 + v)[t]; padding lanes get 0.
template <typename T, int V>
inline void gather_rows(const T* src, py::ssize_t row0, py::ssize_t nv, py::ssize_t l, T* dst) {
  for (py::ssize_t v = 0; v < V; ++v) {
    if (v < nv) {
      const T* r = src + (row0 + v) * l;
      for (py::ssize_t t = 0; t < l; ++t) dst[t * V + v] = r[t];
    } else {
      for (py::ssize_t t = 0; t < l; ++t) dst[t * V + v] = T(0);
    }
  }
}

// A (D, N) matrix's rows d0 .. d0+nv-1 as dst[n * V + v]; padding lanes get 0.
template <typename T, int V>
inline void gather_dn(const T* M, py::ssize_t d0, py::ssize_t nv, py::ssize_t n, T* dst) {
  for (py::ssize_t i = 0; i < n; ++i)
    for (py::ssize_t v = 0; v < V; ++v) dst[i * V + v] = v < nv ? M[(d0 + v) * n + i] : T(0);
}

// The float32 forward keeps, for the backward, the state entering every kStateEvery steps (the
// states array, (batch, D, ceil(L / kStateEvery), N)); the backward's chunk of recomputed steps.
constexpr py::ssize_t kStateEvery = 32;

inline py::ssize_t state_chunks(py::ssize_t l) { return (l + kStateEvery - 1) / kStateEvery; }

// The gradients a backward writes: dB/dC are a thread's own buffer when input-dependent (shared by
// the blocks of a group), else the outputs.
template <typename T>
struct Grads {
  T *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias;
};

// The float32 backward (csrc/scan_backward_f32.cpp): one thread's buffers, and the backward of one
// block of channels over every batch row (its rows of dA, time-invariant dB/dC, dD, ddelta_bias
// belong to the caller's thread and are written, resp. accumulated into the zeroed dD, dbias).
struct BackwardWorkF32;
struct FreeBackwardWorkF32 {
  void operator()(BackwardWorkF32* w) const;
};
std::unique_ptr<BackwardWorkF32, FreeBackwardWorkF32> backward_work_f32(const Dims& s);
void backward_channels_f32(const Scan<float>& p, const Dims& s, const Block& blk, const float* dout,
                           const float* dlast, const float* states, const Grads<float>& g, BackwardWorkF32& work);

// ---- bindings: every shape and dtype checked before a pointer is read --------------------------

inline std::string dims_str(const py::array& a) { return tinyml::shape_str(a); }

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
  if (M.ndim() == 4 && M.shape(0) == s.bt && M.shape(1) >= 1 && s.d % M.shape(1) == 0 && M.shape(2) == s.n &&
      M.shape(3) == s.l)
    return M.shape(1);
  throw py::value_error(std::string("selective_scan: ") + what + " has shape " + dims_str(M) + ", expected (" +
                        std::to_string(s.d) + ", " + std::to_string(s.n) + ") or (" + std::to_string(s.bt) +
                        ", G, " + std::to_string(s.n) + ", " + std::to_string(s.l) + ") with G dividing " +
                        std::to_string(s.d));
}

// Input-dependent B and C arrive as (batch, G, N, L), the op's layout; the kernels read a step's N
// values together, so they run on a (batch, G, L, N) copy (groups 0: time-invariant, no copy).
// Here it is one pass in C++; numpy's transposing copy took ~20 us an array, in and out.
template <typename T>
std::vector<T> time_major(const T* M, py::ssize_t groups, const Dims& s) {
  std::vector<T> out(groups ? s.bt * groups * s.l * s.n : 0);
  for (py::ssize_t bg = 0; bg < s.bt * groups; ++bg) {
    const T* src = M + bg * s.n * s.l;
    T* dst = out.data() + bg * s.l * s.n;
    for (py::ssize_t i = 0; i < s.n; ++i)
      for (py::ssize_t t = 0; t < s.l; ++t) dst[t * s.n + i] = src[i * s.l + t];
  }
  return out;
}

// The inverse, for dB and dC: out (batch, G, N, L) from a (batch, G, L, N) sum.
template <typename T>
void state_major(const T* M, py::ssize_t groups, const Dims& s, T* out) {
  for (py::ssize_t bg = 0; bg < s.bt * groups; ++bg) {
    const T* src = M + bg * s.l * s.n;
    T* dst = out + bg * s.n * s.l;
    for (py::ssize_t i = 0; i < s.n; ++i)
      for (py::ssize_t t = 0; t < s.l; ++t) dst[i * s.l + t] = src[t * s.n + i];
  }
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

inline bool is_f64(const py::array& u) { return tinyml::has_dtype<double>(u); }

inline void check_float(const py::array& u) {
  if (!tinyml::has_dtype<float>(u) && !is_f64(u))
    throw py::type_error("selective_scan: dtype " + std::string(py::str(u.dtype())) +
                         " not supported (float32, float64)");
}

}  // namespace tinyml::scan
