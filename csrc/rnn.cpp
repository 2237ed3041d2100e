// Recurrent layers (LSTM / GRU / RNN tanh|relu), one layer and one direction over a whole sequence,
// forward and backward, float32 and float64. The op precomputes xproj = x W_ih^T + b_ih for all T
// steps (one big matmul); this file runs the time loop with the recurrent GEMM h W_hh^T inside, so a
// sequence is one call instead of a few framework ops per step. Math (torch's gate order):
//
//   LSTM:  a = xproj_t + h W_hh^T + b_hh;  i,f,o = sigmoid(a_i,a_f,a_o), g = tanh(a_g)
//          c' = f c + i g,  h' = o tanh(c')
//   GRU:   s = h W_hh^T + b_hh;  r = sigmoid(xproj_r + s_r), z = sigmoid(xproj_z + s_z),
//          n = tanh(xproj_n + r s_n),  h' = (1 - z) n + z h
//   RNN:   h' = tanh|relu(xproj_t + h W_hh^T + b_hh)
//   backward formulas: tinyml/ops/rnn.py.  batch_sizes[t] leading rows are active at step t (packed
//   sequences); other rows keep their state and output 0.
//
// Threads own slices of the hidden units [j0, j1) for the whole call (one OpenMP region around the
// time loop): a thread computes the G gate columns of its units by a register-blocked GEMM, then the
// pointwise update of exactly those units, so the only synchronisation is one barrier per step (h
// is double-buffered in the forward: the next GEMM reads every unit). In the backward a thread's
// pointwise step reads and writes only its units of dh/dc; after a barrier it computes its units of
// dh_prev = dgates W_hh. dW_hh = sum_t dgates_t^T h_prev_t is one GEMM over all T*B rows at the end.
// Each (row, unit) is computed by one thread in a fixed order: results do not depend on thread count.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "rnn_common.h"

namespace {

using namespace rnn_detail;

template <typename T>
TINYML_CLONES void forward_units(Mode mode, const Dims& d, int64_t t, int64_t n, int64_t j0, int64_t j1,
                                 const T* __restrict x, const T* __restrict gb, const T* __restrict bias,
                                 const T* __restrict hc, T* __restrict hx, T* __restrict c, T* __restrict y,
                                 T* __restrict saved) {
  const int64_t H = d.H, GH = d.G * d.H, S = n_saved(mode) * H;
  for (int64_t b = 0; b < n; ++b) {  // bias is never null here (zeros when the layer has none)
    const T* xr = x + (t * d.B + b) * GH;
    const T* g = gb + b * GH;
    T* yr = y + (t * d.B + b) * H;
    T* sv = saved + (t * d.B + b) * S;
    if (mode == Mode::LSTM) {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T ai = xr[j] + g[j] + bias[j], af = xr[H + j] + g[H + j] + bias[H + j];
        T ag = xr[2 * H + j] + g[2 * H + j] + bias[2 * H + j], ao = xr[3 * H + j] + g[3 * H + j] + bias[3 * H + j];
        T i = sigm(ai), f = sigm(af), gg = tanh_(ag), o = sigm(ao);
        T cn = f * c[b * H + j] + i * gg;
        T h = o * tanh_(cn);
        c[b * H + j] = cn, hx[b * H + j] = h, yr[j] = h;
        sv[j] = i, sv[H + j] = f, sv[2 * H + j] = gg, sv[3 * H + j] = o, sv[4 * H + j] = cn;
      }
    } else if (mode == Mode::GRU) {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T sr = g[j] + bias[j], sz = g[H + j] + bias[H + j], sn = g[2 * H + j] + bias[2 * H + j];
        T r = sigm(xr[j] + sr), z = sigm(xr[H + j] + sz);
        T nn = tanh_(xr[2 * H + j] + r * sn);
        T h = (T(1) - z) * nn + z * hc[b * H + j];
        hx[b * H + j] = h, yr[j] = h;
        sv[j] = r, sv[H + j] = z, sv[2 * H + j] = nn, sv[3 * H + j] = sn;
      }
    } else {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T a = xr[j] + g[j] + bias[j];
        T h = mode == Mode::TANH ? tanh_(a) : (a > T(0) ? a : (a != a ? a : T(0)));
        hx[b * H + j] = h, yr[j] = h;
      }
    }
  }
  for (int64_t b = n; b < d.B; ++b)  // inactive rows keep their state
    for (int64_t j = j0; j < j1; ++j) hx[b * H + j] = hc[b * H + j];
}

template <typename T>
void forward_loop(Mode mode, const Dims& d, const T* x, const T* h0, const T* c0, const T* w, const T* bias,
                  const std::vector<int64_t>& sizes, bool reverse, T* y, T* hn, T* cn, T* saved) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, P = panels<T>(H);
  std::vector<T> wt(d.G * P * H * kNR<T>), hbuf(2 * B * H), gbuf(B * GH), zeros(bias ? 0 : GH, T(0));
  if (!bias) bias = zeros.data();
  for (int64_t g = 0; g < d.G; ++g)  // gate g's W_hh^T (H, H) as GEMM panels: B[k][n] = w[(g H + n) H + k]
    pack_b(w + g * H * H, 1, H, H, H, wt.data() + g * P * H * kNR<T>);
  std::copy(h0, h0 + B * H, hbuf.begin());
  if (cn) std::copy(c0, c0 + B * H, cn);
  const int nt = threads_for(d);
  int final_buf = int(d.T % 2);
#pragma omp parallel num_threads(nt)
  {
    int64_t j0, j1;
    unit_slice(H, tinyml::thread_id(), nt, &j0, &j1);
    std::vector<T> apack(kKc * kMc);
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = reverse ? d.T - 1 - s : s, n = sizes[t];
      const T* hc = hbuf.data() + (s % 2) * B * H;
      T* hx = hbuf.data() + ((s + 1) % 2) * B * H;
      if (j1 > j0) {  // gates[:, g H + j0 : g H + j1] = h W_hh^T for every gate g, in one pass over h
        gemm_packed<T>(n, H, hc, H, 1, wt.data(), d.G, H, j0 / kNR<T>, panels<T>(j1), gbuf.data(), GH, H, false,
                       apack.data());
        forward_units<T>(mode, d, t, n, j0, j1, x, gbuf.data(), bias, hc, hx, cn, y, saved);
      }
#pragma omp barrier
    }
  }
  std::copy(hbuf.data() + final_buf * B * H, hbuf.data() + (final_buf + 1) * B * H, hn);
}

// One backward step's pointwise part for units [j0, j1) of the n active rows: the gates' gradients
// (dgx for xproj, dgh for the recurrent pre-activation; the same array except for GRU), h_prev into
// hp (for dW_hh, stored as the GEMM's packed panels: (j / NR, row, j % NR)), and the part of dh_prev that bypasses W_hh (GRU: dh z; else 0) into dh, in place.
template <typename T>
TINYML_CLONES void backward_units(Mode mode, const Dims& d, int64_t t, int64_t p, int64_t n, int64_t np,
                                  int64_t j0, int64_t j1, const T* __restrict dy, const T* __restrict h0,
                                  const T* __restrict c0, const T* __restrict y, const T* __restrict saved,
                                  T* __restrict dh, T* __restrict dc, T* __restrict dgx, T* __restrict dgh,
                                  T* __restrict hp) {
  const int64_t H = d.H, GH = d.G * d.H, S = n_saved(mode) * H;
  for (int64_t b = 0; b < n; ++b) {
    const int64_t row = t * d.B + b;
    const bool from_prev = b < np;  // active at the previous step: its state came from there
    const T* hsrc = from_prev ? y + (p * d.B + b) * H : h0 + b * H;
    const T* sv = saved + row * S;
    const T* dyr = dy + row * H;
    T* gx = dgx + row * GH;
    T* gh = dgh + row * GH;
    const int64_t rows = d.T * d.B;
    constexpr int64_t R = kNR<T>;
    if (mode == Mode::LSTM) {
      const T* csrc = from_prev ? saved + (p * d.B + b) * S + 4 * H : c0 + b * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T dd = dh[b * H + j] + dyr[j];
        T i = sv[j], f = sv[H + j], g = sv[2 * H + j], o = sv[3 * H + j], tc = tanh_(sv[4 * H + j]);
        T dct = dc[b * H + j] + dd * o * (T(1) - tc * tc);
        gx[j] = dct * g * i * (T(1) - i);
        gx[H + j] = dct * csrc[j] * f * (T(1) - f);
        gx[2 * H + j] = dct * i * (T(1) - g * g);
        gx[3 * H + j] = dd * tc * o * (T(1) - o);
        dc[b * H + j] = dct * f;
        dh[b * H + j] = T(0);
        hp[((j / R) * rows + row) * R + j % R] = hsrc[j];
      }
    } else if (mode == Mode::GRU) {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T dd = dh[b * H + j] + dyr[j];
        T r = sv[j], z = sv[H + j], nn = sv[2 * H + j], sn = sv[3 * H + j], h = hsrc[j];
        T dn = dd * (T(1) - z) * (T(1) - nn * nn);
        T dr = dn * sn * r * (T(1) - r);
        T dz = dd * (h - nn) * z * (T(1) - z);
        gx[j] = gh[j] = dr;
        gx[H + j] = gh[H + j] = dz;
        gx[2 * H + j] = dn;
        gh[2 * H + j] = dn * r;
        dh[b * H + j] = dd * z;
        hp[((j / R) * rows + row) * R + j % R] = h;
      }
    } else {
      const T* yr = y + row * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T dd = dh[b * H + j] + dyr[j], h = yr[j];
        gx[j] = mode == Mode::TANH ? dd * (T(1) - h * h) : (h > T(0) ? dd : T(0));
        dh[b * H + j] = T(0);
        hp[((j / R) * rows + row) * R + j % R] = hsrc[j];
      }
    }
  }
}

// dgx, dgh, hp must be zero-filled (inactive rows stay zero); dh/dc hold dh_n/dc_n and end as dh0/dc0.
template <typename T>
void backward_loop(Mode mode, const Dims& d, const T* dy, const T* h0, const T* c0, const T* w,
                   const std::vector<int64_t>& sizes, bool reverse, const T* y, const T* saved, T* dh, T* dc,
                   T* dgx, T* dgh, T* hp, T* dw, T* db) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, rows = d.T * d.B;
  std::vector<T> wp(panels<T>(H) * GH * kNR<T>);  // W_hh (GH, H) as GEMM panels
  pack_b(w, H, 1, GH, H, wp.data());
  const int nt = threads_for(d);
#pragma omp parallel num_threads(nt)
  {
    int64_t j0, j1;
    unit_slice(H, tinyml::thread_id(), nt, &j0, &j1);
    std::vector<T> apack(kKc * kMc);
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = reverse ? d.T - 1 - s : s, p = reverse ? t + 1 : t - 1, n = sizes[t];
      const int64_t np = (p >= 0 && p < d.T) ? sizes[p] : 0;
      if (j1 > j0) backward_units<T>(mode, d, t, p, n, np, j0, j1, dy, h0, c0, y, saved, dh, dc, dgx, dgh, hp);
#pragma omp barrier
      if (j1 > j0)  // dh_prev[:, j0:j1] += dgh_t (n, GH) W_hh[:, j0:j1]
        gemm_packed<T>(n, GH, dgh + t * B * GH, GH, 1, wp.data(), 1, H, j0 / kNR<T>, panels<T>(j1), dh, H, 0, true,
                       apack.data());
    }  // (no barrier: the next step's phase 1 reads only this thread's units; the last barrier also
       // orders every dgh and hp write before the dW GEMM below)
    // dW_hh = dgh^T (GH, T B) h_prev (T B, H): this thread's slice of W_hh's rows (hp is packed already)
    int64_t per = (GH + nt - 1) / nt, r0 = std::min(GH, per * tinyml::thread_id()), r1 = std::min(GH, r0 + per);
    if (r1 > r0)
      gemm_packed<T>(r1 - r0, rows, dgh + r0, 1, GH, hp, 1, H, 0, panels<T>(H), dw + r0 * H, H, 0, false,
                     apack.data());
    for (int64_t g = r0; g < r1; ++g) db[g] = T(0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = r0; g < r1; ++g) db[g] += dgh[r * GH + g];
  }
}

}  // namespace


namespace {

using O = std::optional<py::array>;

template <typename T>
const T* ptr(const O& a) {
  return a ? static_cast<const T*>(a->data()) : nullptr;
}

// Checks every array against (T, B, H, G) before any pointer is read.
template <typename T>
void check(const py::array& a, std::vector<int64_t> shape, const char* what) {
  tinyml::check_array<T>(a, what);
  bool ok = a.ndim() == py::ssize_t(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want = "(";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(std::string("rnn: ") + what + " has shape " + tinyml::shape_str(a) + ", expected " +
                          want + ")");
  }
}

std::vector<int64_t> batch_sizes(const std::optional<std::vector<int64_t>>& given, int64_t T, int64_t B) {
  if (!given) return std::vector<int64_t>(T, B);
  if (int64_t(given->size()) != T)
    throw py::value_error("rnn: batch_sizes has " + std::to_string(given->size()) + " entries for " +
                          std::to_string(T) + " steps");
  for (int64_t t = 0; t < T; ++t)
    if ((*given)[t] < 0 || (*given)[t] > B || (t && (*given)[t] > (*given)[t - 1]))
      throw py::value_error("rnn: batch_sizes must be non-increasing counts in [0, " + std::to_string(B) + "]");
  return *given;
}

template <typename T>
Dims dims(Mode mode, const py::array& xproj, const py::array& h0) {
  check<T>(h0, {h0.ndim() == 2 ? h0.shape(0) : -1, h0.ndim() == 2 ? h0.shape(1) : -1}, "h0");
  Dims d{0, h0.shape(0), h0.shape(1), n_gates(mode)};
  d.T = xproj.ndim() == 3 ? xproj.shape(0) : -1;
  check<T>(xproj, {d.T, d.B, d.G * d.H}, "xproj");
  return d;
}

template <typename T>
py::tuple forward(Mode mode, py::array xproj, py::array h0, O c0, py::array w, O b,
                  const std::optional<std::vector<int64_t>>& given, bool reverse) {
  Dims d = dims<T>(mode, xproj, h0);
  if (c0) check<T>(*c0, {d.B, d.H}, "c0");
  if ((mode == Mode::LSTM) != bool(c0)) throw py::value_error("rnn: c0 is required for LSTM and only for LSTM");
  check<T>(w, {d.G * d.H, d.H}, "w_hh");
  if (b) check<T>(*b, {d.G * d.H}, "b_hh");
  auto sizes = batch_sizes(given, d.T, d.B);
  py::array_t<T> y({d.T, d.B, d.H}), hn({d.B, d.H}), saved({d.T, d.B, n_saved(mode) * d.H});
  py::object cn = py::none();
  T* cp = nullptr;
  if (c0) {
    py::array_t<T> c({d.B, d.H});
    cp = c.mutable_data();
    cn = c;
  }
  std::fill(y.mutable_data(), y.mutable_data() + y.size(), T(0));  // inactive rows: zero output and state
  std::fill(saved.mutable_data(), saved.mutable_data() + saved.size(), T(0));
  {
    py::gil_scoped_release nogil;
    forward_loop<T>(mode, d, static_cast<const T*>(xproj.data()), static_cast<const T*>(h0.data()), ptr<T>(c0),
                    static_cast<const T*>(w.data()), ptr<T>(b), sizes, reverse, y.mutable_data(),
                    hn.mutable_data(), cp, saved.mutable_data());
  }
  return py::make_tuple(y, hn, cn, saved);
}

template <typename T>
py::tuple backward(Mode mode, py::array dy, py::array dhn, O dcn, py::array h0, O c0, py::array w, O b,
                   const std::optional<std::vector<int64_t>>& given, bool reverse, py::array y, py::array saved) {
  check<T>(h0, {h0.ndim() == 2 ? h0.shape(0) : -1, h0.ndim() == 2 ? h0.shape(1) : -1}, "h0");
  Dims d{dy.ndim() == 3 ? dy.shape(0) : -1, h0.shape(0), h0.shape(1), n_gates(mode)};
  const int64_t GH = d.G * d.H;
  check<T>(dy, {d.T, d.B, d.H}, "dy");
  check<T>(y, {d.T, d.B, d.H}, "y");
  check<T>(dhn, {d.B, d.H}, "dh_n");
  check<T>(saved, {d.T, d.B, n_saved(mode) * d.H}, "saved");
  check<T>(w, {GH, d.H}, "w_hh");
  if (b) check<T>(*b, {GH}, "b_hh");
  if ((mode == Mode::LSTM) != bool(c0)) throw py::value_error("rnn: c0 is required for LSTM and only for LSTM");
  if (c0) check<T>(*c0, {d.B, d.H}, "c0");
  if (dcn) check<T>(*dcn, {d.B, d.H}, "dc_n");
  auto sizes = batch_sizes(given, d.T, d.B);
  py::array_t<T> dx({d.T, d.B, GH}), dh0({d.B, d.H}), dw({GH, d.H}), db({GH});
  std::vector<T> dc(mode == Mode::LSTM ? d.B * d.H : 0, T(0)), hp(panels<T>(d.H) * d.T * d.B * kNR<T>, T(0));
  std::vector<T> dgh_own(mode == Mode::GRU ? d.T * d.B * GH : 0, T(0));
  T* dxp = dx.mutable_data();
  std::fill(dxp, dxp + dx.size(), T(0));
  std::copy(static_cast<const T*>(dhn.data()), static_cast<const T*>(dhn.data()) + d.B * d.H, dh0.mutable_data());
  if (dcn) std::copy(ptr<T>(dcn), ptr<T>(dcn) + d.B * d.H, dc.begin());
  {
    py::gil_scoped_release nogil;
    backward_loop<T>(mode, d, static_cast<const T*>(dy.data()), static_cast<const T*>(h0.data()), ptr<T>(c0),
                     static_cast<const T*>(w.data()), sizes, reverse, static_cast<const T*>(y.data()),
                     static_cast<const T*>(saved.data()), dh0.mutable_data(), dc.data(), dxp,
                     mode == Mode::GRU ? dgh_own.data() : dxp, hp.data(), dw.mutable_data(), db.mutable_data());
  }
  py::object dc0 = py::none();
  if (mode == Mode::LSTM) {
    py::array_t<T> out({d.B, d.H});
    std::copy(dc.begin(), dc.end(), out.mutable_data());
    dc0 = out;
  }
  return py::make_tuple(dx, dh0, dc0, dw, b ? py::object(db) : py::object(py::none()));
}

bool is_double(const py::array& a, const char* what) {
  if (tinyml::has_dtype<double>(a)) return true;
  if (tinyml::has_dtype<float>(a)) return false;
  throw py::type_error(std::string(what) + ": expected float32 or float64, got " + std::string(py::str(a.dtype())));
}

}  // namespace

void init_rnn(py::module_& m) {
  using S = std::optional<std::vector<int64_t>>;
  m.def("rnn_forward", [](const std::string& mode, py::array xproj, py::array h0, O c0, py::array w, O b,
                          S batch_sizes, bool reverse) {
    Mode md = parse_mode(mode);
    return is_double(xproj, "rnn_forward") ? forward<double>(md, xproj, h0, c0, w, b, batch_sizes, reverse)
                                           : forward<float>(md, xproj, h0, c0, w, b, batch_sizes, reverse);
  }, py::arg("mode"), py::arg("xproj"), py::arg("h0"), py::arg("c0").none(true), py::arg("w_hh"),
        py::arg("b_hh").none(true), py::arg("batch_sizes").none(true), py::arg("reverse"));
  m.def("rnn_backward", [](const std::string& mode, py::array dy, py::array dhn, O dcn, py::array h0, O c0,
                           py::array w, O b, S batch_sizes, bool reverse, py::array y, py::array saved) {
    Mode md = parse_mode(mode);
    return is_double(dy, "rnn_backward")
               ? backward<double>(md, dy, dhn, dcn, h0, c0, w, b, batch_sizes, reverse, y, saved)
               : backward<float>(md, dy, dhn, dcn, h0, c0, w, b, batch_sizes, reverse, y, saved);
  }, py::arg("mode"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n").none(true), py::arg("h0"),
        py::arg("c0").none(true), py::arg("w_hh"), py::arg("b_hh").none(true), py::arg("batch_sizes").none(true),
        py::arg("reverse"), py::arg("y"), py::arg("saved"));
}
