// Causal depthwise conv1d with a fused SiLU (Mamba's short convolution), forward, backward and the
// single-step update of generation; float32 and float64.
//
//   pre[b,d,t] = bias[d] + sum_{k: t-K+1+k >= 0} w[d,k] x[b,d,t-K+1+k]      y = silu(pre) or pre
//   dpre = dy silu'(pre) = dy s (1 + pre (1 - s)), s = sigmoid(pre)      (pre recomputed, not stored)
//   dx[b,d,j] = sum_{k: j+K-1-k < L} w[d,k] dpre[b,d,j+K-1-k]
//   dw[d,k] = sum_{b,t} dpre[b,d,t] x[b,d,t-K+1+k]                      db[d] = sum_{b,t} dpre[b,d,t]
//   update: window = last K of cat(state (B,D,S), x (B,D)); y = act(bias + w . window); state <- last S
//
// Layout: x, y, dy (B, D, L) C-contiguous, w (D, K). Rows (b, d) are independent: OpenMP over them,
// and each row is vectorised over time: the first K-1 outputs (where taps fall in the padding, and
// are skipped rather than multiplied by 0, as PyTorch's padded conv does) run scalar, the rest as K
// shifted multiply-adds over the whole row (K a compile-time constant for 2..4, Mamba's widths).
// float32 forward rows run sixteen steps per csrc/scan_vec.h vector with the SiLU fused in the same
// pass (conv_row_f32, compiled per ISA by target_clones; the SiLU used to run in a loop built for
// baseline x86-64, 25x the conv's own time).
// The backward parallelises over d with the batch inside, so dw/db rows belong to one thread.
// Usage: tinyml.causal_conv1d (tinyml/ops/causal_conv1d.py); tests: tests/ops/test_causal_conv1d.py.
#include "simd_math.h"  // first: sets fp-contract

#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "scan_vec.h"

namespace {

using tinyml::vexp_ieee;
namespace vec = tinyml::vec;

template <typename T>
inline T silu(T v) {  // PyTorch's v / (1 + e^-v): NaN at v = -inf
  return v / (T(1) + vexp_ieee<T>(-v));
}

template <typename T>
inline T silu_grad(T pre, T dy) {
  const T s = T(1) / (T(1) + vexp_ieee<T>(-pre));
  return dy * s * (T(1) + pre * (T(1) - s));
}

// pre-activation of one row: out[t] = bias + sum_k w[k] x[t-K+1+k] (taps before t = 0 absent).
template <typename T, int KF>
TINYML_CLONES void conv_row(const T* x, const T* w, T bias, py::ssize_t l, py::ssize_t kw_dyn, T* out) {
  const py::ssize_t kw = KF ? KF : kw_dyn, head = std::min<py::ssize_t>(kw - 1, l);
  for (py::ssize_t t = 0; t < head; ++t) {
    T acc = bias;
    for (py::ssize_t k = kw - 1 - t; k < kw; ++k) acc += w[k] * x[t - kw + 1 + k];
    out[t] = acc;
  }
  if (head == l) return;  // the whole row is within the padding's reach
#pragma omp simd
  for (py::ssize_t t = head; t < l; ++t) out[t] = bias;
  for (py::ssize_t k = 0; k < kw; ++k) {
    const T wk = w[k];
    const T* xs = x - (kw - 1 - k);  // xs[t] = x[t-K+1+k], in range for t >= K-1
#pragma omp simd
    for (py::ssize_t t = head; t < l; ++t) out[t] += wk * xs[t];
  }
}

struct Dims {
  py::ssize_t bt, d, l, k;
};

// float32 rows, pre-activation and SiLU in one pass: sixteen steps per vf16 (csrc/scan_vec.h), the K
// taps as shifted unaligned loads of x; the first K-1 steps (taps in the padding, skipped) and a
// tail shorter than sixteen run scalar. Same order of the sum as conv_row (bias, then k = 0..K-1).
template <int KF, bool ACT>
TINYML_CLONES void conv_row_f32(const float* x, const float* w, float bias, py::ssize_t l, py::ssize_t kw_dyn,
                                float* out) {
  const py::ssize_t kw = KF ? KF : kw_dyn, head = std::min<py::ssize_t>(kw - 1, l);
  auto scalar = [&](py::ssize_t t) {
    float acc = bias;
    for (py::ssize_t k = std::max<py::ssize_t>(kw - 1 - t, 0); k < kw; ++k) acc += w[k] * x[t - kw + 1 + k];
    out[t] = ACT ? silu<float>(acc) : acc;
  };
  for (py::ssize_t t = 0; t < head; ++t) scalar(t);
  py::ssize_t t = head;
  for (; t + vec::kLanes <= l; t += vec::kLanes) {
    vec::vf16 acc = vec::splat(bias);
    for (py::ssize_t k = 0; k < kw; ++k) acc += w[k] * vec::load(x + t - kw + 1 + k);
    vec::store(out + t, ACT ? vec::silu(acc) : acc);
  }
  for (; t < l; ++t) scalar(t);
}

template <bool ACT>
void conv_row_f32_any(const float* x, const float* w, float bias, py::ssize_t l, py::ssize_t kw, float* out) {
  if (kw == 4) conv_row_f32<4, ACT>(x, w, bias, l, kw, out);
  else if (kw == 3) conv_row_f32<3, ACT>(x, w, bias, l, kw, out);
  else if (kw == 2) conv_row_f32<2, ACT>(x, w, bias, l, kw, out);
  else conv_row_f32<0, ACT>(x, w, bias, l, kw, out);
}

template <typename T>
void conv_row_any(const T* x, const T* w, T bias, const Dims& s, T* out) {
  if (s.k == 4) conv_row<T, 4>(x, w, bias, s.l, s.k, out);
  else if (s.k == 3) conv_row<T, 3>(x, w, bias, s.l, s.k, out);
  else if (s.k == 2) conv_row<T, 2>(x, w, bias, s.l, s.k, out);
  else conv_row<T, 0>(x, w, bias, s.l, s.k, out);
}

Dims check_inputs(const py::array& x, const py::array& w, const py::object& bias, const char* fn) {
  if (x.ndim() != 3)
    throw py::value_error(std::string(fn) + ": x must be (batch, dim, seqlen), got shape " + tinyml::shape_str(x));
  if (w.ndim() != 2 || w.shape(0) != x.shape(1) || w.shape(1) < 1)
    throw py::value_error(std::string(fn) + ": weight has shape " + tinyml::shape_str(w) + ", expected (" +
                          std::to_string(x.shape(1)) + ", width) for x of shape " + tinyml::shape_str(x));
  if (!bias.is_none()) {
    py::array b = bias.cast<py::array>();
    if (b.ndim() != 1 || b.shape(0) != x.shape(1))
      throw py::value_error(std::string(fn) + ": bias has shape " + tinyml::shape_str(b) + ", expected (" +
                            std::to_string(x.shape(1)) + ",)");
  }
  return Dims{x.shape(0), x.shape(1), x.shape(2), w.shape(1)};
}

template <typename T>
const T* bias_ptr(const py::object& bias) {
  if (bias.is_none()) return nullptr;
  py::array b = bias.cast<py::array>();
  tinyml::check_array<T>(b, "causal_conv1d bias");
  return static_cast<const T*>(b.data());
}

template <typename T>
py::array_t<T> forward(py::array x, py::array w, py::object bias, bool act) {
  tinyml::check_array<T>(x, "causal_conv1d x");
  tinyml::check_array<T>(w, "causal_conv1d weight");
  const Dims s = check_inputs(x, w, bias, "causal_conv1d");
  const T* bp = bias_ptr<T>(bias);
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = static_cast<const T*>(w.data());
  py::array_t<T> y({s.bt, s.d, s.l});
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) collapse(2) if (s.bt * s.d * s.l > 32768)
    for (py::ssize_t b = 0; b < s.bt; ++b)
      for (py::ssize_t d = 0; d < s.d; ++d) {
        const py::ssize_t off = (b * s.d + d) * s.l;
        T* row = yp + off;
        if constexpr (std::is_same_v<T, float>) {
          if (act) conv_row_f32_any<true>(xp + off, wp + d * s.k, bp ? bp[d] : 0.0f, s.l, s.k, row);
          else conv_row_f32_any<false>(xp + off, wp + d * s.k, bp ? bp[d] : 0.0f, s.l, s.k, row);
          continue;
        }
        conv_row_any<T>(xp + off, wp + d * s.k, bp ? bp[d] : T(0), s, row);
        if (act) {
#pragma omp simd
          for (py::ssize_t t = 0; t < s.l; ++t) row[t] = silu<T>(row[t]);
        }
      }
  }
  return y;
}

// One channel d of the backward, every batch row (so dw[d], db[d] belong to one thread); compiled
// per ISA (TINYML_CLONES) so the SiLU gradient's exp and the shifted multiply-adds vectorise.
template <typename T>
TINYML_CLONES void backward_channel(const T* xp, const T* wp, const T* bp, const T* gp, const Dims& s, bool act,
                                    py::ssize_t d, T* dpre_buf, T* dxp, T* dwp, T* dbp) {
  const T* wd = wp + d * s.k;
  T* dwd = dwp + d * s.k;
  for (py::ssize_t k = 0; k < s.k; ++k) dwd[k] = 0;
  T dbias = 0;
  for (py::ssize_t b = 0; b < s.bt; ++b) {
    const py::ssize_t off = (b * s.d + d) * s.l;
    const T* xr = xp + off;
    const T* dpre = gp + off;
    if (act) {
      T* buf = dpre_buf;
      conv_row_any<T>(xr, wd, bp ? bp[d] : T(0), s, buf);
#pragma omp simd
      for (py::ssize_t t = 0; t < s.l; ++t) buf[t] = silu_grad<T>(buf[t], dpre[t]);
      dpre = buf;
    }
    // dx[j] = sum_k w[k] dpre[j+K-1-k]: the last K-1 positions lose the taps past L (scalar)
    T* dxr = dxp + off;
    const py::ssize_t body = std::max<py::ssize_t>(s.l - (s.k - 1), 0);
#pragma omp simd
    for (py::ssize_t j = 0; j < body; ++j) dxr[j] = 0;
    for (py::ssize_t k = 0; k < s.k; ++k) {
      const T wk = wd[k];
      const T* gs = dpre + (s.k - 1 - k);
#pragma omp simd
      for (py::ssize_t j = 0; j < body; ++j) dxr[j] += wk * gs[j];
    }
    for (py::ssize_t j = body; j < s.l; ++j) {
      T acc = 0;
      for (py::ssize_t k = 0; k < s.k; ++k)
        if (j + s.k - 1 - k < s.l) acc += wd[k] * dpre[j + s.k - 1 - k];
      dxr[j] = acc;
    }
    // dw[k] = sum_t dpre[t] x[t-K+1+k] over t >= K-1-k
    for (py::ssize_t k = 0; k < s.k; ++k) {
      const py::ssize_t shift = s.k - 1 - k;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (py::ssize_t t = shift; t < s.l; ++t) acc += dpre[t] * xr[t - shift];
      dwd[k] += acc;
    }
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (py::ssize_t t = 0; t < s.l; ++t) acc += dpre[t];
    dbias += acc;
  }
  dbp[d] = dbias;
}

template <typename T>
py::tuple backward(py::array x, py::array w, py::object bias, py::array dy, bool act) {
  tinyml::check_array<T>(x, "causal_conv1d x");
  tinyml::check_array<T>(w, "causal_conv1d weight");
  tinyml::check_array<T>(dy, "causal_conv1d grad_output");
  const Dims s = check_inputs(x, w, bias, "causal_conv1d_backward");
  tinyml::check_same_shape(x, dy, "causal_conv1d_backward: x", "grad_output");
  const T* bp = bias_ptr<T>(bias);
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = static_cast<const T*>(w.data());
  const T* gp = static_cast<const T*>(dy.data());
  py::array_t<T> dx({s.bt, s.d, s.l}), dw({s.d, s.k}), db(std::vector<py::ssize_t>{s.d});
  T *dxp = dx.mutable_data(), *dwp = dw.mutable_data(), *dbp = db.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel if (s.bt * s.d * s.l > 32768)
    {
      std::vector<T> dpre_buf(act ? s.l : 0);
#pragma omp for schedule(static)
      for (py::ssize_t d = 0; d < s.d; ++d)
        backward_channel<T>(xp, wp, bp, gp, s, act, d, dpre_buf.data(), dxp, dwp, dbp);
    }
  }
  return py::make_tuple(dx, dw, bias.is_none() ? py::object(py::none()) : py::object(db));
}

template <typename T>
py::array_t<T> update(py::array x, py::array state, py::array w, py::object bias, bool act) {
  tinyml::check_array<T>(x, "causal_conv1d_update x");
  tinyml::check_array<T>(state, "causal_conv1d_update conv_state");
  tinyml::check_array<T>(w, "causal_conv1d_update weight");
  if (x.ndim() != 2)
    throw py::value_error("causal_conv1d_update: x must be (batch, dim), got shape " + tinyml::shape_str(x));
  const py::ssize_t bt = x.shape(0), dim = x.shape(1);
  if (w.ndim() != 2 || w.shape(0) != dim || w.shape(1) < 1)
    throw py::value_error("causal_conv1d_update: weight has shape " + tinyml::shape_str(w) + ", expected (" +
                          std::to_string(dim) + ", width)");
  const py::ssize_t kw = w.shape(1);
  if (state.ndim() != 3 || state.shape(0) != bt || state.shape(1) != dim || state.shape(2) < kw - 1)
    throw py::value_error("causal_conv1d_update: conv_state has shape " + tinyml::shape_str(state) + ", expected (" +
                          std::to_string(bt) + ", " + std::to_string(dim) + ", S) with S >= " +
                          std::to_string(kw - 1));
  if (!state.writeable()) throw py::value_error("causal_conv1d_update: conv_state is read-only");
  if (!bias.is_none()) {
    py::array b = bias.cast<py::array>();
    if (b.ndim() != 1 || b.shape(0) != dim)
      throw py::value_error("causal_conv1d_update: bias has shape " + tinyml::shape_str(b) + ", expected (" +
                            std::to_string(dim) + ",)");
  }
  const T* bp = bias_ptr<T>(bias);
  const py::ssize_t sl = state.shape(2);
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = static_cast<const T*>(w.data());
  T* sp = static_cast<T*>(state.mutable_data());
  py::array_t<T> y({bt, dim});
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) if (bt * dim * (sl + kw) > 65536)
    for (py::ssize_t r = 0; r < bt * dim; ++r) {
      T* st = sp + r * sl;
      const T* wd = wp + (r % dim) * kw;
      const T xv = xp[r];
      // taps 0..K-2 read the state's last K-1 entries, tap K-1 reads x
      T acc = bp ? bp[r % dim] : T(0);
      for (py::ssize_t k = 0; k + 1 < kw; ++k) acc += wd[k] * st[sl - (kw - 1) + k];
      acc += wd[kw - 1] * xv;
      if (sl > 0) {
        std::memmove(st, st + 1, (sl - 1) * sizeof(T));
        st[sl - 1] = xv;
      }
      yp[r] = act ? silu<T>(acc) : acc;
    }
  }
  return y;
}

bool is_f64(const py::array& a) { return tinyml::has_dtype<double>(a); }

void check_float(const py::array& x, const char* fn) {
  if (!tinyml::has_dtype<float>(x) && !is_f64(x))
    throw py::type_error(std::string(fn) + ": dtype " + std::string(py::str(x.dtype())) +
                         " not supported (float32, float64)");
}

}  // namespace

void init_causal_conv1d(py::module_& m) {
  m.def(
      "causal_conv1d_forward",
      [](py::array x, py::array w, py::object bias, bool silu) -> py::object {
        check_float(x, "causal_conv1d");
        if (is_f64(x)) return forward<double>(x, w, bias, silu);
        return forward<float>(x, w, bias, silu);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("silu"),
      "y (B, D, L) of the causal depthwise conv1d (zero left padding), SiLU fused when silu; contiguous inputs.");
  m.def(
      "causal_conv1d_backward",
      [](py::array x, py::array w, py::object bias, py::array dy, bool silu) {
        check_float(x, "causal_conv1d_backward");
        return is_f64(x) ? backward<double>(x, w, bias, dy, silu) : backward<float>(x, w, bias, dy, silu);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("grad_output"), py::arg("silu"),
      "(dx, dweight, dbias or None); the pre-activation is recomputed.");
  m.def(
      "causal_conv1d_update",
      [](py::array x, py::array state, py::array w, py::object bias, bool silu) -> py::object {
        check_float(x, "causal_conv1d_update");
        if (is_f64(x)) return update<double>(x, state, w, bias, silu);
        return update<float>(x, state, w, bias, silu);
      },
      py::arg("x"), py::arg("conv_state"), py::arg("weight"), py::arg("bias"), py::arg("silu"),
      "y (B, D) of one generation step; conv_state (B, D, S), S >= K-1, shifted in place and x written last.");
}
