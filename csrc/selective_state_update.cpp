// One step of the selective scan (mamba_ssm's selective_state_update), float32 and float64: the
// generation step of a Mamba layer as one call instead of ~10 small ops.
//
//   dt' = softplus(dt + bias) (or dt + bias)
//   state = exp(dt' A) * state + dt' B x   (in place),   y = C . state + D x,   out = y silu(z)
//
// Layout (contiguous; the Python adapter prepares it): state (Bt, D, N); x, dt, z, out (Bt, D);
// A (D, N); B and C (Bt, G, N), channel d reading group d / (D / G); D_skip and bias (D,).
// Per batch row, three vector passes: dt' of every channel (softplus across channels), the states
// of each channel (N lanes, N = 16 fixed at compile time: one or two whole vectors; C . state the
// only horizontal sum), then D skip and gate across channels. A decode step at d_inner 256, N 16
// went from 40 us (one scalar-ish loop per row, softplus and silu inside) to 8.5 us on this box.
// OpenMP splits the rows when a step is large enough to pay for the fork (over 32768 states).
// NaN and inf follow the scan's rules (csrc/scan.cpp): IEEE exps, silu(-inf) = NaN, no 0 * x for an
// absent D.
#include "scan_common.h"  // first: simd_math.h sets fp-contract

namespace {

using tinyml::scan::silu;
using tinyml::scan::softplus;
using tinyml::vexp_ieee;

template <typename T>
const T* opt_vec(const py::object& o, const char* what, const std::vector<py::ssize_t>& shape) {
  if (o.is_none()) return nullptr;
  py::array a = o.cast<py::array>();
  tinyml::check_array<T>(a, what);
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want = "(";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    want += shape.size() == 1 ? ",)" : ")";
    throw py::value_error(std::string("selective_state_update: ") + what + " has shape " + tinyml::shape_str(a) +
                          ", expected " + want);
  }
  return static_cast<const T*>(a.data());
}

template <typename T>
py::ssize_t check_bc(const py::array& M, const char* what, py::ssize_t bt, py::ssize_t d, py::ssize_t n) {
  tinyml::check_array<T>(M, what);
  if (M.ndim() == 3 && M.shape(0) == bt && M.shape(1) >= 1 && d % M.shape(1) == 0 && M.shape(2) == n)
    return M.shape(1);
  throw py::value_error(std::string("selective_state_update: ") + what + " has shape " + tinyml::shape_str(M) +
                        ", expected (" + std::to_string(bt) + ", G, " + std::to_string(n) + ") with G dividing " +
                        std::to_string(d));
}

template <typename T>
struct Step {
  T* state;
  const T *x, *dt, *A, *B, *C, *D, *z, *bias;
  py::ssize_t d, n, gB, per_gB, gC, per_gC;
  bool softplus;
  T* out;
};

// The states of one row: s = exp(step A) s + sx B, acc = C . s; NN > 0 fixes N at compile time
// (a Mamba row of 16 states is then one or two whole vectors, no loop prologue or remainder).
template <typename T, int NN>
inline T row_update(T* __restrict s, const T* __restrict a, const T* __restrict Bv, const T* __restrict Cv, T step,
                    T sx, py::ssize_t n_dyn) {
  const py::ssize_t n = NN > 0 ? NN : n_dyn;
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (py::ssize_t i = 0; i < n; ++i) {
    const T si = vexp_ieee<T>(step * a[i]) * s[i] + sx * Bv[i];
    s[i] = si;
    acc += Cv[i] * si;
  }
  return acc;
}

// Rows r0 .. r1 - 1 of batch b (row r = b * D + c, channels c0 .. c1 - 1). Three passes, each a
// vector loop: dt' for every channel (softplus across channels), the states row by row (across N),
// then the D skip and the gate (across channels). buf holds 2 (c1 - c0) values.
template <typename T, int NN>
TINYML_CLONES void step_rows(const Step<T>& k, py::ssize_t b, py::ssize_t c0, py::ssize_t c1, T* buf) {
  const py::ssize_t n = k.n, m = c1 - c0, r0 = b * k.d + c0;
  T* __restrict step = buf;
  T* __restrict acc = buf + m;
  const T* dt = k.dt + r0;
#pragma omp simd
  for (py::ssize_t j = 0; j < m; ++j) {
    const T pre = dt[j] + (k.bias ? k.bias[c0 + j] : T(0));
    step[j] = k.softplus ? softplus<T>(pre) : pre;
  }
  for (py::ssize_t j = 0; j < m; ++j) {
    const py::ssize_t c = c0 + j;
    const T* Bv = k.B + (b * k.gB + c / k.per_gB) * n;
    const T* Cv = k.C + (b * k.gC + c / k.per_gC) * n;
    acc[j] = row_update<T, NN>(k.state + (r0 + j) * n, k.A + c * n, Bv, Cv, step[j], step[j] * k.x[r0 + j], n);
  }
  const T* x = k.x + r0;
  T* out = k.out + r0;
  if (k.D) {
#pragma omp simd
    for (py::ssize_t j = 0; j < m; ++j) acc[j] += k.D[c0 + j] * x[j];
  }
  if (k.z) {
    const T* z = k.z + r0;
#pragma omp simd
    for (py::ssize_t j = 0; j < m; ++j) out[j] = acc[j] * silu<T>(z[j]);
  } else {
    for (py::ssize_t j = 0; j < m; ++j) out[j] = acc[j];
  }
}

// Rows of batch b, channels [c0, c1), in chunks of at most 256 channels (the buffers' size).
template <typename T>
void step_range(const Step<T>& k, py::ssize_t b, py::ssize_t c0, py::ssize_t c1) {
  constexpr py::ssize_t kChunk = 256;
  T buf[2 * kChunk];
  for (py::ssize_t c = c0; c < c1; c += kChunk) {
    const py::ssize_t e = std::min(c1, c + kChunk);
    if (k.n == 16) step_rows<T, 16>(k, b, c, e, buf);
    else step_rows<T, 0>(k, b, c, e, buf);
  }
}

template <typename T>
py::array_t<T> update(py::array state, py::array x, py::array dt, py::array A, py::array B, py::array C,
                      py::object D, py::object z, py::object bias, bool dt_softplus) {
  tinyml::check_array<T>(x, "selective_state_update x");
  if (x.ndim() != 2)
    throw py::value_error("selective_state_update: x must be (batch, dim), got shape " + tinyml::shape_str(x));
  const py::ssize_t bt = x.shape(0), d = x.shape(1);
  tinyml::check_array<T>(state, "selective_state_update state");
  if (state.ndim() != 3 || state.shape(0) != bt || state.shape(1) != d)
    throw py::value_error("selective_state_update: state has shape " + tinyml::shape_str(state) + ", expected (" +
                          std::to_string(bt) + ", " + std::to_string(d) + ", dstate)");
  if (!state.writeable()) throw py::value_error("selective_state_update: state is read-only");
  const py::ssize_t n = state.shape(2);
  tinyml::check_array<T>(dt, "selective_state_update dt");
  tinyml::check_same_shape(x, dt, "selective_state_update: x", "dt");
  tinyml::check_array<T>(A, "selective_state_update A");
  if (A.ndim() != 2 || A.shape(0) != d || A.shape(1) != n)
    throw py::value_error("selective_state_update: A has shape " + tinyml::shape_str(A) + ", expected (" +
                          std::to_string(d) + ", " + std::to_string(n) + ")");
  const py::ssize_t gB = check_bc<T>(B, "B", bt, d, n), gC = check_bc<T>(C, "C", bt, d, n);
  const T* Dp = opt_vec<T>(D, "D", {d});
  const T* zp = opt_vec<T>(z, "z", {bt, d});
  const T* bp = opt_vec<T>(bias, "dt_bias", {d});
  T* sp = static_cast<T*>(state.mutable_data());
  const T *xp = static_cast<const T*>(x.data()), *dp = static_cast<const T*>(dt.data());
  const T *Ap = static_cast<const T*>(A.data()), *Bp = static_cast<const T*>(B.data());
  const T* Cp = static_cast<const T*>(C.data());
  py::array_t<T> out({bt, d});
  T* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    const Step<T> k{sp, xp, dp, Ap, Bp, Cp, Dp, zp, bp, d, n, gB, d / gB, gC, d / gC, dt_softplus, op};
    // threads split the rows (b, c) evenly; each thread's rows are cut at batch boundaries
    const py::ssize_t rows = bt * d;
    const int nt = bt * d * n > 32768 ? tinyml::max_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      const int id = nt > 1 ? tinyml::thread_id() : 0;
      const py::ssize_t per = (rows + nt - 1) / nt;
      const py::ssize_t r1 = std::min(rows, (id + 1) * per);
      for (py::ssize_t r = std::min(rows, id * per); r < r1;) {
        const py::ssize_t b = r / d, c = r % d, e = std::min(d, c + (r1 - r));
        step_range<T>(k, b, c, e);
        r += e - c;
      }
    }
  }
  return out;
}

}  // namespace

void init_selective_state_update(py::module_& m) {
  m.def(
      "selective_state_update",
      [](py::array state, py::array x, py::array dt, py::array A, py::array B, py::array C, py::object D,
         py::object z, py::object bias, bool dt_softplus) -> py::object {
        if (!tinyml::has_dtype<float>(x) && !tinyml::has_dtype<double>(x))
          throw py::type_error("selective_state_update: dtype " + std::string(py::str(x.dtype())) +
                               " not supported (float32, float64)");
        if (tinyml::has_dtype<double>(x)) return update<double>(state, x, dt, A, B, C, D, z, bias, dt_softplus);
        return update<float>(state, x, dt, A, B, C, D, z, bias, dt_softplus);
      },
      py::arg("state"), py::arg("x"), py::arg("dt"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("D"),
      py::arg("z"), py::arg("dt_bias"), py::arg("dt_softplus"),
      "out (batch, D) of one selective-scan step; state (batch, D, N) updated in place; B/C (batch, G, N).");
}
