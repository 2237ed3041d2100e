// Scaled dot-product attention, forward and backward, float32 and float64: the bindings over the
// tile kernels of csrc/attention_tiles.h (the math is written there).
//
//   attention_forward / attention_backward: q, k, v (B, H, T, D), C-contiguous, optional additive mask.
//   attention_packed_forward / attention_packed_backward: one (B, T, 3 H D) array holding q, k, v as
//     a fused projection writes them ((B, T, 3, H, D)); out and dout are (B, T, H D) and the gradient
//     comes back in the packed layout, so a transformer block needs no head transposes or copies.
//
// Work items are (batch*head, query tile) pairs for the forward and batch*head for the backward
// (which owns its head's dQ rows and dK/dV accumulators, so no two threads write the same row),
// handed out dynamically: causal tiles differ in cost. A causal forward checks each head's V for
// inf/NaN, which the skipped pairs need (attention_tiles.h): the first tile of a head to run does it
// (v_nonfinite), so the region has no pass of its own and no barrier between it and the tiles (with
// passive waiting, a barrier is a sleep and a wake-up of one thread).
#include "attention_tiles.h"  // first: sets fp-contract for this file

#include <pybind11/stl.h>

#include <optional>

namespace {

using namespace tinyml_attention;

// Whether head g's V (rows of t elements d wide, row stride ld) holds an inf or NaN, found by the
// first tile that asks and kept in state[g] (0: not known yet, 1: all finite, 2: not). Two threads
// that ask at once both compute it and store the same value.
template <typename T>
bool v_nonfinite(char* state, int64_t g, const T* v, int64_t ld, int t, int d) {
  char st = __atomic_load_n(state + g, __ATOMIC_ACQUIRE);
  if (st == 0) {
    st = any_nonfinite(v, ld, 0, t, d) ? 2 : 1;
    __atomic_store_n(state + g, st, __ATOMIC_RELEASE);
  }
  return st == 2;
}

// ---- validation and bindings -----------------------------------------------------------------

struct Dims {
  py::ssize_t b, h, tq, tk, d, dv;
};

template <typename T>
Dims check_qkv(const py::array& q, const py::array& k, const py::array& v) {
  tinyml::check_array<T>(q, "query");
  tinyml::check_array<T>(k, "key");
  tinyml::check_array<T>(v, "value");
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4)
    throw py::value_error("scaled_dot_product_attention: expected 4-d (B, H, T, D) query, key, value; got " +
                          tinyml::shape_str(q) + ", " + tinyml::shape_str(k) + ", " + tinyml::shape_str(v));
  Dims s{q.shape(0), q.shape(1), q.shape(2), k.shape(2), q.shape(3), v.shape(3)};
  if (k.shape(0) != s.b || v.shape(0) != s.b || k.shape(1) != s.h || v.shape(1) != s.h || k.shape(3) != s.d ||
      v.shape(2) != s.tk)
    throw py::value_error("scaled_dot_product_attention: query " + tinyml::shape_str(q) + ", key " +
                          tinyml::shape_str(k) + " and value " + tinyml::shape_str(v) +
                          " do not match (expected key (B, H, Tk, D) and value (B, H, Tk, Dv))");
  return s;
}

template <typename T>
Mask check_mask(const std::optional<py::array>& mask, const Dims& s) {
  Mask m;
  if (!mask) return m;
  const py::array& a = *mask;
  if (!tinyml::has_dtype<T>(a))
    throw py::type_error("scaled_dot_product_attention: attn_mask dtype " + std::string(py::str(a.dtype())) +
                         " must match the query dtype " + std::string(py::str(py::dtype::of<T>())));
  py::ssize_t want[4] = {s.b, s.h, s.tq, s.tk};
  bool ok = a.ndim() == 4;
  for (int i = 0; ok && i < 4; ++i) ok = a.shape(i) == want[i] && a.strides(i) >= 0 && a.strides(i) % sizeof(T) == 0;
  if (!ok)
    throw py::value_error("scaled_dot_product_attention: attn_mask has shape " + tinyml::shape_str(a) +
                          "; expected it broadcast to (" + std::to_string(s.b) + ", " + std::to_string(s.h) + ", " +
                          std::to_string(s.tq) + ", " + std::to_string(s.tk) + ") with non-negative strides");
  m.data = a.data();
  m.sb = a.strides(0) / sizeof(T);
  m.sh = a.strides(1) / sizeof(T);
  m.si = a.strides(2) / sizeof(T);
  m.sj = a.strides(3) / sizeof(T);
  return m;
}

template <typename T>
py::tuple forward(py::array q, py::array k, py::array v, std::optional<py::array> mask, bool causal, double scale) {
  Dims s = check_qkv<T>(q, k, v);
  Mask mk = check_mask<T>(mask, s);
  py::array_t<T> out(std::vector<py::ssize_t>{s.b, s.h, s.tq, s.dv});
  py::array_t<T> lse(std::vector<py::ssize_t>{s.b, s.h, s.tq});
  const T *qp = static_cast<const T*>(q.data()), *kp = static_cast<const T*>(k.data());
  const T *vp = static_cast<const T*>(v.data()), *mp = static_cast<const T*>(mk.data);
  T *op = out.mutable_data(), *lp = lse.mutable_data();
  {
    py::gil_scoped_release release;
    int64_t bh = s.b * s.h, nq = (s.tq + kBq - 1) / kBq;
    const Rows ld{s.d, s.d, s.dv, s.dv, s.dv, s.d, s.d, s.dv};
    std::vector<char> v_bad(bh, 0);  // causal: whether a head's V holds inf or NaN (v_nonfinite)
#pragma omp parallel if (bh * nq > 1)
    {
      std::vector<T> work(forward_work(int(s.d), int(s.dv)));
      std::vector<int> iwork(int_work(int(s.d), int(s.dv)));
#pragma omp for schedule(dynamic, 1) collapse(2)
      for (int64_t g = 0; g < bh; ++g)
        for (int64_t t = 0; t < nq; ++t) {
          int64_t b = g / s.h, h = g % s.h;
          const T* mbase = mp ? mp + b * mk.sb + h * mk.sh : nullptr;
          const T* vh = vp + g * s.tk * s.dv;
          const bool bad = causal && v_nonfinite(v_bad.data(), g, vh, ld.v, int(s.tk), int(s.dv));
          forward_tile<T>(qp + g * s.tq * s.d, kp + g * s.tk * s.d, vh, op + g * s.tq * s.dv, lp + g * s.tq, mbase,
                          mk, ld, int(s.tq), int(s.tk), int(s.d), int(s.dv), int(t * kBq), T(scale), causal, bad,
                          work.data(), iwork.data());
        }
    }
  }
  return py::make_tuple(out, lse);
}

template <typename T>
py::tuple backward(py::array q, py::array k, py::array v, py::array out, py::array lse, py::array dout,
                   std::optional<py::array> mask, bool causal, double scale) {
  Dims s = check_qkv<T>(q, k, v);
  tinyml::check_array<T>(out, "out");
  tinyml::check_array<T>(dout, "grad_out");
  tinyml::check_array<T>(lse, "lse");
  tinyml::check_same_shape(out, dout, "out", "grad_out");
  if (out.ndim() != 4 || out.shape(0) != s.b || out.shape(1) != s.h || out.shape(2) != s.tq || out.shape(3) != s.dv)
    throw py::value_error("scaled_dot_product_attention_backward: out has shape " + tinyml::shape_str(out) +
                          " but query " + tinyml::shape_str(q) + " and value " + tinyml::shape_str(v));
  if (lse.size() != s.b * s.h * s.tq)
    throw py::value_error("scaled_dot_product_attention_backward: lse has shape " + tinyml::shape_str(lse) +
                          " but query has shape " + tinyml::shape_str(q) + " (expected (B, H, Tq))");
  Mask mk = check_mask<T>(mask, s);
  py::array_t<T> dq(std::vector<py::ssize_t>{s.b, s.h, s.tq, s.d});
  py::array_t<T> dk(std::vector<py::ssize_t>{s.b, s.h, s.tk, s.d});
  py::array_t<T> dv(std::vector<py::ssize_t>{s.b, s.h, s.tk, s.dv});
  const T *qp = static_cast<const T*>(q.data()), *kp = static_cast<const T*>(k.data());
  const T *vp = static_cast<const T*>(v.data()), *mp = static_cast<const T*>(mk.data);
  const T *opp = static_cast<const T*>(out.data()), *lp = static_cast<const T*>(lse.data());
  const T* gp = static_cast<const T*>(dout.data());
  T *dqp = dq.mutable_data(), *dkp = dk.mutable_data(), *dvp = dv.mutable_data();
  {
    py::gil_scoped_release release;
    int64_t bh = s.b * s.h;
    const Rows ld{s.d, s.d, s.dv, s.dv, s.dv, s.d, s.d, s.dv};
#pragma omp parallel if (bh > 1)
    {
      std::vector<T> work(backward_work(int(s.d), int(s.dv), int(s.tq)));
      std::vector<int> iwork(int_work(int(s.d), int(s.dv)));
#pragma omp for schedule(dynamic, 1)
      for (int64_t g = 0; g < bh; ++g) {
        int64_t b = g / s.h, h = g % s.h;
        const T* mbase = mp ? mp + b * mk.sb + h * mk.sh : nullptr;
        backward_head<T>(qp + g * s.tq * s.d, kp + g * s.tk * s.d, vp + g * s.tk * s.dv, opp + g * s.tq * s.dv,
                         lp + g * s.tq, gp + g * s.tq * s.dv, mbase, mk, dqp + g * s.tq * s.d, dkp + g * s.tk * s.d,
                         dvp + g * s.tk * s.dv, ld, int(s.tq), int(s.tk), int(s.d), int(s.dv), T(scale), causal,
                         work.data(), iwork.data());
      }
    }
  }
  return py::make_tuple(dq, dk, dv);
}

// ---- the packed layout: q, k, v read from one (B, T, 3 H D) projection -------------------------

struct Packed {
  py::ssize_t b, t, h, d;
};

template <typename T>
Packed check_packed(const py::array& qkv, int64_t n_head) {
  tinyml::check_array<T>(qkv, "qkv");
  if (qkv.ndim() != 3)
    throw py::value_error("attention_packed: expected qkv of shape (B, T, 3 * n_head * head_dim), got " +
                          tinyml::shape_str(qkv));
  if (n_head < 1 || qkv.shape(2) % (3 * n_head))
    throw py::value_error("attention_packed: qkv of shape " + tinyml::shape_str(qkv) + " does not split into q, k, v of " +
                          std::to_string(n_head) + " heads (its last dim must be a multiple of 3 * n_head)");
  return Packed{qkv.shape(0), qkv.shape(1), n_head, qkv.shape(2) / (3 * n_head)};
}

template <typename T>
void check_rows(const py::array& a, const Packed& s, const char* what) {
  tinyml::check_array<T>(a, what);
  if (a.ndim() != 3 || a.shape(0) != s.b || a.shape(1) != s.t || a.shape(2) != s.h * s.d)
    throw py::value_error(std::string("attention_packed_backward: ") + what + " has shape " + tinyml::shape_str(a) +
                          "; expected (" + std::to_string(s.b) + ", " + std::to_string(s.t) + ", " +
                          std::to_string(s.h * s.d) + ")");
}

template <typename T>
py::tuple packed_forward(py::array qkv, int64_t n_head, bool causal, double scale) {
  Packed s = check_packed<T>(qkv, n_head);
  const int64_t C = s.h * s.d;
  py::array_t<T> out(std::vector<py::ssize_t>{s.b, s.t, C});
  py::array_t<T> lse(std::vector<py::ssize_t>{s.b, s.h, s.t});
  const T* xp = static_cast<const T*>(qkv.data());
  T *op = out.mutable_data(), *lp = lse.mutable_data();
  {
    py::gil_scoped_release release;
    int64_t bh = s.b * s.h, nq = (s.t + kBq - 1) / kBq;
    const Rows ld{3 * C, 3 * C, 3 * C, C, C, 3 * C, 3 * C, 3 * C};
    std::vector<char> v_bad(bh, 0);  // causal: whether a head's V holds inf or NaN (v_nonfinite)
#pragma omp parallel if (bh * nq > 1)
    {
      std::vector<T> work(forward_work(int(s.d), int(s.d)));
      std::vector<int> iwork(int_work(int(s.d), int(s.d)));
#pragma omp for schedule(dynamic, 1) collapse(2)
      for (int64_t g = 0; g < bh; ++g)
        for (int64_t t = 0; t < nq; ++t) {
          int64_t b = g / s.h, h = g % s.h;
          const T* q = xp + b * s.t * 3 * C + h * s.d;
          const bool bad = causal && v_nonfinite(v_bad.data(), g, q + 2 * C, ld.v, int(s.t), int(s.d));
          forward_tile<T>(q, q + C, q + 2 * C, op + b * s.t * C + h * s.d, lp + g * s.t, nullptr, Mask{}, ld,
                          int(s.t), int(s.t), int(s.d), int(s.d), int(t * kBq), T(scale), causal, bad,
                          work.data(), iwork.data());
        }
    }
  }
  return py::make_tuple(out, lse);
}

template <typename T>
py::array packed_backward(py::array qkv, py::array out, py::array lse, py::array dout, int64_t n_head, bool causal,
                          double scale) {
  Packed s = check_packed<T>(qkv, n_head);
  check_rows<T>(out, s, "out");
  check_rows<T>(dout, s, "grad_out");
  tinyml::check_array<T>(lse, "lse");
  if (lse.size() != s.b * s.h * s.t)
    throw py::value_error("attention_packed_backward: lse has shape " + tinyml::shape_str(lse) + " but qkv " +
                          tinyml::shape_str(qkv) + " holds (B, H, T) = (" + std::to_string(s.b) + ", " +
                          std::to_string(s.h) + ", " + std::to_string(s.t) + ")");
  const int64_t C = s.h * s.d;
  py::array_t<T> dqkv(std::vector<py::ssize_t>{s.b, s.t, 3 * C});
  const T *xp = static_cast<const T*>(qkv.data()), *opp = static_cast<const T*>(out.data());
  const T *lp = static_cast<const T*>(lse.data()), *gp = static_cast<const T*>(dout.data());
  T* dp = dqkv.mutable_data();
  {
    py::gil_scoped_release release;
    int64_t bh = s.b * s.h;
    const Rows ld{3 * C, 3 * C, 3 * C, C, C, 3 * C, 3 * C, 3 * C};
#pragma omp parallel if (bh > 1)
    {
      std::vector<T> work(backward_work(int(s.d), int(s.d), int(s.t)));
      std::vector<int> iwork(int_work(int(s.d), int(s.d)));
#pragma omp for schedule(dynamic, 1)
      for (int64_t g = 0; g < bh; ++g) {
        int64_t b = g / s.h, h = g % s.h;
        int64_t in = b * s.t * 3 * C + h * s.d, rows = b * s.t * C + h * s.d;
        const T* q = xp + in;
        T* dq = dp + in;
        backward_head<T>(q, q + C, q + 2 * C, opp + rows, lp + g * s.t, gp + rows, nullptr, Mask{}, dq, dq + C,
                         dq + 2 * C, ld, int(s.t), int(s.t), int(s.d), int(s.d), T(scale), causal, work.data(),
                         iwork.data());
      }
    }
  }
  return dqkv;
}

bool is_double(const py::array& x) {
  if (tinyml::has_dtype<double>(x)) return true;
  if (tinyml::has_dtype<float>(x)) return false;
  throw py::type_error("scaled_dot_product_attention: dtype " + std::string(py::str(x.dtype())) +
                       " not supported (float32, float64)");
}

}  // namespace

void init_attention(py::module_& m) {
  using O = std::optional<py::array>;
  m.def("attention_forward", [](py::array q, py::array k, py::array v, O mask, bool causal, double scale) {
    return is_double(q) ? forward<double>(q, k, v, mask, causal, scale) : forward<float>(q, k, v, mask, causal, scale);
  }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask").none(true), py::arg("is_causal"), py::arg("scale"));
  m.def("attention_backward", [](py::array q, py::array k, py::array v, py::array out, py::array lse, py::array dout,
                                 O mask, bool causal, double scale) {
    return is_double(q) ? backward<double>(q, k, v, out, lse, dout, mask, causal, scale)
                        : backward<float>(q, k, v, out, lse, dout, mask, causal, scale);
  }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("dout"),
        py::arg("mask").none(true), py::arg("is_causal"), py::arg("scale"));
  m.def("attention_packed_forward", [](py::array qkv, int64_t n_head, bool causal, double scale) {
    return is_double(qkv) ? packed_forward<double>(qkv, n_head, causal, scale)
                          : packed_forward<float>(qkv, n_head, causal, scale);
  }, py::arg("qkv"), py::arg("n_head"), py::arg("is_causal"), py::arg("scale"));
  m.def("attention_packed_backward", [](py::array qkv, py::array out, py::array lse, py::array dout, int64_t n_head,
                                        bool causal, double scale) {
    return is_double(qkv) ? packed_backward<double>(qkv, out, lse, dout, n_head, causal, scale)
                          : packed_backward<float>(qkv, out, lse, dout, n_head, causal, scale);
  }, py::arg("qkv"), py::arg("out"), py::arg("lse"), py::arg("dout"), py::arg("n_head"), py::arg("is_causal"),
        py::arg("scale"));
}
