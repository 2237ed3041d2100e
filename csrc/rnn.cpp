// Recurrent layers (LSTM / GRU / RNN tanh|relu), one layer and one direction over a whole sequence,
// forward and backward, float32 and float64. rnn_forward / rnn_backward take the input projection
// xproj = x W_ih^T + b_ih for all T steps as given; rnn_layer_forward / rnn_layer_backward take x, W_ih
// and b_ih and run that projection's GEMMs themselves, so nn.LSTM's layer is one call on one team of
// threads. LSTM and RNN fuse it into the steps: step t's GEMM computes x_t W_ih^T + h W_hh^T (no xproj
// array goes through memory), the backward step's packed dgates_t gives dh_prev = dgates_t W_hh and
// dx_t = dgates_t W_ih together, and one GEMM after the loop gives dW_hh and dW_ih from the same packed
// dgates^T (db summed while it packs dgates^T). GRU, whose n gate needs x_t W_in^T apart from h W_hn^T,
// computes xproj before the steps and dx, dW_ih after them. x and dy may be the transposed view of a
// batch-first (B, T, n) array (read in place; dx then comes back in x's layout). The
// time loop runs the recurrent GEMM h W_hh^T inside, so a sequence is one call instead of a few
// framework ops per step. Math (torch's gate order):
//
//   LSTM:  a = xproj_t + h W_hh^T + b_hh;  i,f,o = sigmoid(a_i,a_f,a_o), g = tanh(a_g)
//          c' = f c + i g,  h' = o tanh(c')
//   GRU:   s = h W_hh^T + b_hh;  r = sigmoid(xproj_r + s_r), z = sigmoid(xproj_z + s_z),
//          n = tanh(xproj_n + r s_n),  h' = (1 - z) n + z h
//   RNN:   h' = tanh|relu(xproj_t + h W_hh^T + b_hh)
//   backward formulas: tinyml/ops/rnn.py.  batch_sizes[t] leading rows are active at step t (packed
//   sequences); other rows keep their state and output 0.
//
// The threads of one OpenMP region run the whole call (csrc/rnn_loops.h) as phases of chunks
// (csrc/rnn_memory.h Phases): the weights' packing, then one phase per time step, then the weight
// gradients. A step's chunk is a block of hidden units [j0, j1): its G gate columns by a register-blocked
// GEMM, then the pointwise update of exactly those units, so the only synchronisation is the end of a
// step (h is double-buffered in the forward: the next GEMM reads every unit). Each thread owns a
// contiguous share of the chunks (the same units every step, so their weights stay in its cache) and
// takes other threads' chunks once its own are done, so a thread that the machine deschedules does not
// stall the others. In the backward, a unit chunk first finishes dh_prev = dgates_prev W_hh for its
// units, then runs this step's pointwise part, which reads and writes only its units of dh/dc.
// dW_hh = sum_t dgates_t^T h_prev_t is one GEMM over all T*B rows at the end, in chunks of rows (h0 = 0,
// nn.LSTM's default: the first step's h0 W_hh^T and dW_hh's h0 term are left out unless W_hh or those
// dgates hold inf or NaN, csrc/rnn_common.h dw_hh_rows). Each
// (row, unit) is computed in a fixed order whichever thread takes its chunk: results do not depend on
// the thread count. The fused layers (LSTM, RNN) with at least 24 batch rows per thread split the rows
// instead (csrc/rnn_rows.h): each thread runs its rows' whole recurrence, with no synchronisation between
// steps, bit for bit the same results. Outputs and scratch are 64-byte aligned malloc
// blocks (csrc/rnn_memory.h), which tinyml's malloc settings keep mapped from one step to the next.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "rnn_common.h"
#include "rnn_loops.h"
#include "rnn_memory.h"
#include "rnn_rows.h"

namespace {

using namespace rnn_detail;
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

// Checks a (T, B, n) array that the loops read row by row: C-contiguous, or the (T, B, n) transposed view of
// a C-contiguous (B, T, n) array (a batch-first layer's input or gradient, read in place). Row (t, b)
// is then at t *st + b *sb elements.
template <typename T>
void check_rows(const py::array& a, std::vector<int64_t> shape, const char* what, int64_t* st, int64_t* sb) {
  if (!tinyml::has_dtype<T>(a))
    throw py::type_error(std::string(what) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                         ", got " + std::string(py::str(a.dtype())));
  if (a.flags() & py::array::c_style) {
    check<T>(a, shape, what);
    *st = shape[1] * shape[2], *sb = shape[2];
    return;
  }
  const int64_t isz = sizeof(T);
  bool ok = a.ndim() == 3 && a.shape(0) == shape[0] && a.shape(1) == shape[1] && a.shape(2) == shape[2];
  ok = ok && a.strides(2) == isz && a.strides(0) == shape[2] * isz && a.strides(1) == shape[0] * shape[2] * isz;
  if (!ok)
    throw py::value_error(std::string("rnn: ") + what + " of shape " + tinyml::shape_str(a) + " must be C-contiguous " +
                          "with shape (" + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) + ", " +
                          std::to_string(shape[2]) + "), or that view of a C-contiguous (B, T, n) array");
  *st = shape[2], *sb = shape[0] * shape[2];
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

// Checks x (T, B, I) against h0 (B, H), and W_ih (G H, I), b_ih against the mode: the layer's input part.
template <typename T>
Input<T> input(Mode mode, const py::array& x, const py::array& w_ih, const O& b_ih, const py::array& h0, Dims* d) {
  check<T>(h0, {h0.ndim() == 2 ? h0.shape(0) : -1, h0.ndim() == 2 ? h0.shape(1) : -1}, "h0");
  *d = Dims{x.ndim() == 3 ? x.shape(0) : -1, h0.shape(0), h0.shape(1), n_gates(mode)};
  const int64_t I = x.ndim() == 3 ? x.shape(2) : -1;
  Input<T> in;
  check_rows<T>(x, {d->T, d->B, I}, "x", &in.st, &in.sb);
  check<T>(w_ih, {d->G * d->H, I}, "w_ih");
  if (b_ih) check<T>(*b_ih, {d->G * d->H}, "b_ih");
  in.x = static_cast<const T*>(x.data());
  in.w = static_cast<const T*>(w_ih.data());
  in.b = ptr<T>(b_ih);
  in.I = I;
  return in;
}

// The forward of one layer: xproj given (T, B, G H), or computed from in (xproj then points at scratch).
template <typename T>
py::tuple forward(Mode mode, const Dims& d, const Input<T>& in, T* xproj, py::array h0, O c0, py::array w, O b,
                  const std::optional<std::vector<int64_t>>& given, bool reverse) {
  if (c0) check<T>(*c0, {d.B, d.H}, "c0");
  if ((mode == Mode::LSTM) != bool(c0)) throw py::value_error("rnn: c0 is required for LSTM and only for LSTM");
  check<T>(w, {d.G * d.H, d.H}, "w_hh");
  if (b) check<T>(*b, {d.G * d.H}, "b_hh");
  auto sizes = batch_sizes(given, d.T, d.B);
  py::array_t<T> y = aligned_array<T>({d.T, d.B, d.H}), hn({d.B, d.H});
  py::array_t<T> saved = aligned_array<T>({d.T, d.B, n_saved(mode) * d.H});
  py::object cn = py::none();
  T* cp = nullptr;
  if (c0) {
    py::array_t<T> c({d.B, d.H});
    cp = c.mutable_data();
    cn = c;
  }
  zero_inactive(y.mutable_data(), d, d.H, sizes);  // inactive rows: zero output and state
  zero_inactive(saved.mutable_data(), d, n_saved(mode) * d.H, sizes);
  {
    py::gil_scoped_release nogil;
    const int nt = threads_for(d, in.I + d.H);  // (forward_loop's count for the fused case)
    if (in.x && mode != Mode::GRU && by_rows(d, nt))
      forward_rows<T>(mode, d, in, static_cast<const T*>(h0.data()), ptr<T>(c0), static_cast<const T*>(w.data()),
                      ptr<T>(b), sizes, reverse, y.mutable_data(), hn.mutable_data(), cp, saved.mutable_data(), nt);
    else
      forward_loop<T>(mode, d, in, xproj, static_cast<const T*>(h0.data()), ptr<T>(c0), static_cast<const T*>(w.data()),
                      ptr<T>(b), sizes, reverse, y.mutable_data(), hn.mutable_data(), cp, saved.mutable_data());
  }
  return py::make_tuple(y, hn, cn, saved);
}

template <typename T>
py::tuple forward_given(Mode mode, py::array xproj, py::array h0, O c0, py::array w, O b,
                        const std::optional<std::vector<int64_t>>& given, bool reverse) {
  Dims d = dims<T>(mode, xproj, h0);
  // the loop only reads xproj when no Input is given
  return forward<T>(mode, d, Input<T>{}, static_cast<T*>(const_cast<void*>(xproj.data())), h0, c0, w, b, given,
                    reverse);
}

template <typename T>
py::tuple forward_layer(Mode mode, py::array x, py::array w_ih, O b_ih, py::array h0, O c0, py::array w, O b,
                        const std::optional<std::vector<int64_t>>& given, bool reverse) {
  Dims d;
  Input<T> in = input<T>(mode, x, w_ih, b_ih, h0, &d);
  Scratch<T> xproj(mode == Mode::GRU ? d.T * d.B * d.G * d.H : 0);  // LSTM / RNN: x_t W_ih^T inside each step
  return forward<T>(mode, d, in, mode == Mode::GRU ? xproj.data() : nullptr, h0, c0, w, b, given, reverse);
}

// The backward of one layer: dxproj into dgx (T, B, G H), and with in.x set, dx / dW_ih / db_ih into in.
template <typename T>
std::tuple<py::array_t<T>, py::object, py::array_t<T>, py::object> backward(
    Mode mode, const Dims& d, const Input<T>& in, T* dgx, py::array dy, py::array dhn, O dcn, py::array h0, O c0,
    py::array w, O b, const std::optional<std::vector<int64_t>>& given, bool reverse, py::array y, py::array saved) {
  const int64_t GH = d.G * d.H;
  int64_t dyt, dyb;
  check_rows<T>(dy, {d.T, d.B, d.H}, "dy", &dyt, &dyb);
  check<T>(y, {d.T, d.B, d.H}, "y");
  check<T>(dhn, {d.B, d.H}, "dh_n");
  check<T>(saved, {d.T, d.B, n_saved(mode) * d.H}, "saved");
  check<T>(w, {GH, d.H}, "w_hh");
  if (b) check<T>(*b, {GH}, "b_hh");
  if ((mode == Mode::LSTM) != bool(c0)) throw py::value_error("rnn: c0 is required for LSTM and only for LSTM");
  if (c0) check<T>(*c0, {d.B, d.H}, "c0");
  if (dcn) check<T>(*dcn, {d.B, d.H}, "dc_n");
  auto sizes = batch_sizes(given, d.T, d.B);
  // weight gradients in numpy's own memory (base None): a leaf then takes them without a copy (_leaf_grad.py)
  py::array_t<T> dh0({d.B, d.H}), dw({GH, d.H}), db({GH});
  const int64_t R = kNR<T>, P = panels<T>(d.H);
  std::vector<T> dc(mode == Mode::LSTM ? d.B * d.H : 0, T(0));
  Scratch<T> hp(P * d.T * d.B * R), dgh_own(mode == Mode::GRU ? d.T * d.B * GH : 0);
  zero_inactive(dgx, d, GH, sizes);
  if (mode == Mode::GRU) zero_inactive(dgh_own.data(), d, GH, sizes);
  for (int64_t p = 0; p < P; ++p)  // hp: panel p holds (row, R) blocks; inactive rows and pad columns 0
    for (int64_t t = 0; t < d.T; ++t) {
      T* blk = hp.data() + (p * d.T * d.B + t * d.B) * R;
      std::fill(blk + sizes[t] * R, blk + d.B * R, T(0));
      if ((p + 1) * R > d.H)
        for (int64_t b = 0; b < sizes[t]; ++b) std::fill(blk + b * R + (d.H - p * R), blk + (b + 1) * R, T(0));
    }
  std::copy(static_cast<const T*>(dhn.data()), static_cast<const T*>(dhn.data()) + d.B * d.H, dh0.mutable_data());
  if (dcn) std::copy(ptr<T>(dcn), ptr<T>(dcn) + d.B * d.H, dc.begin());
  {
    py::gil_scoped_release nogil;
    // (backward_loop's thread count when in.x is set)
    const int nt = std::max(threads_for(d), threads_for_rows(d.T * d.B, GH, in.I));
    if (in.x && mode != Mode::GRU && by_rows(d, nt))
      backward_rows<T>(mode, d, in, static_cast<const T*>(dy.data()), dyt, dyb, static_cast<const T*>(h0.data()),
                       ptr<T>(c0), static_cast<const T*>(w.data()), sizes, reverse, static_cast<const T*>(y.data()),
                       static_cast<const T*>(saved.data()), dh0.mutable_data(), dc.data(), dgx, hp.data(),
                       dw.mutable_data(), db.mutable_data(), nt);
    else
      backward_loop<T>(mode, d, in, static_cast<const T*>(dy.data()), dyt, dyb, static_cast<const T*>(h0.data()),
                       ptr<T>(c0), static_cast<const T*>(w.data()), sizes, reverse, static_cast<const T*>(y.data()),
                       static_cast<const T*>(saved.data()), dh0.mutable_data(), dc.data(), dgx,
                       mode == Mode::GRU ? dgh_own.data() : dgx, hp.data(), dw.mutable_data(), db.mutable_data());
  }
  py::object dc0 = py::none();
  if (mode == Mode::LSTM) {
    py::array_t<T> out({d.B, d.H});
    std::copy(dc.begin(), dc.end(), out.mutable_data());
    dc0 = out;
  }
  return {dh0, dc0, dw, b ? py::object(db) : py::object(py::none())};
}

template <typename T>
py::tuple backward_given(Mode mode, py::array dy, py::array dhn, O dcn, py::array h0, O c0, py::array w, O b,
                         const std::optional<std::vector<int64_t>>& given, bool reverse, py::array y,
                         py::array saved) {
  check<T>(h0, {h0.ndim() == 2 ? h0.shape(0) : -1, h0.ndim() == 2 ? h0.shape(1) : -1}, "h0");
  Dims d{dy.ndim() == 3 ? dy.shape(0) : -1, h0.shape(0), h0.shape(1), n_gates(mode)};
  int64_t dyt, dyb;
  check_rows<T>(dy, {d.T, d.B, d.H}, "dy", &dyt, &dyb);  // before d sizes an allocation
  py::array_t<T> dx = aligned_array<T>({d.T, d.B, d.G * d.H});
  auto [dh0, dc0, dw, db] = backward<T>(mode, d, Input<T>{}, dx.mutable_data(), dy, dhn, dcn, h0, c0, w, b, given,
                                        reverse, y, saved);
  return py::make_tuple(dx, dh0, dc0, dw, db);
}

template <typename T>
py::tuple backward_layer(Mode mode, py::array dy, py::array dhn, O dcn, py::array x, py::array w_ih, O b_ih,
                         py::array h0, O c0, py::array w, O b, const std::optional<std::vector<int64_t>>& given,
                         bool reverse, py::array y, py::array saved) {
  Dims d;
  Input<T> in = input<T>(mode, x, w_ih, b_ih, h0, &d);
  const int64_t GH = d.G * d.H;
  // dx in x's layout where the loop writes it step by step (LSTM, RNN), else C-contiguous (GRU's one GEMM)
  const bool batch_first = !(x.flags() & py::array::c_style) && mode != Mode::GRU;
  py::array_t<T> dxbuf = batch_first ? py::array_t<T>({d.B, d.T, in.I}) : py::array_t<T>({d.T, d.B, in.I});
  py::array_t<T> dx = dxbuf;
  if (batch_first) {
    const py::ssize_t isz = sizeof(T);
    dx = py::array_t<T>({d.T, d.B, in.I}, {in.I * isz, d.T * in.I * isz, isz}, dxbuf.mutable_data(), dxbuf);
  }
  py::array_t<T> dw_ih({GH, in.I}), db_ih({GH});
  in.dx = dxbuf.mutable_data();
  in.dxt = batch_first ? in.I : d.B * in.I;
  in.dxb = batch_first ? d.T * in.I : in.I;
  in.dw = dw_ih.mutable_data();
  in.db = b_ih ? db_ih.mutable_data() : nullptr;
  Scratch<T> dgx(d.T * d.B * GH);
  auto [dh0, dc0, dw, db] = backward<T>(mode, d, in, dgx.data(), dy, dhn, dcn, h0, c0, w, b, given, reverse, y,
                                        saved);
  return py::make_tuple(dx, dw_ih, b_ih ? py::object(db_ih) : py::object(py::none()), dh0, dc0, dw, db);
}

bool is_double(const py::array& a, const char* what) {
  if (tinyml::has_dtype<double>(a)) return true;
  if (tinyml::has_dtype<float>(a)) return false;
  throw py::type_error(std::string(what) + ": expected float32 or float64, got " + std::string(py::str(a.dtype())));
}

}  // namespace

void init_rnn(py::module_& m) {
  using S = std::optional<std::vector<int64_t>>;
  m.def("rnn_zmm", [](std::optional<bool> on) { return on ? set_zmm(*on) : zmm_enabled(); },
        py::arg("on") = py::none(),
        "Whether the recurrent layers' GEMMs use the AVX-512 (zmm) micro-kernel (csrc/rnn_zmm.h); on=True/False "
        "turns it on (where the CPU supports x86-64-v4) or off. Results are the same bits either way.");
  m.def("rnn_forward", [](const std::string& mode, py::array xproj, py::array h0, O c0, py::array w, O b,
                          S batch_sizes, bool reverse) {
    Mode md = parse_mode(mode);
    return is_double(xproj, "rnn_forward") ? forward_given<double>(md, xproj, h0, c0, w, b, batch_sizes, reverse)
                                           : forward_given<float>(md, xproj, h0, c0, w, b, batch_sizes, reverse);
  }, py::arg("mode"), py::arg("xproj"), py::arg("h0"), py::arg("c0").none(true), py::arg("w_hh"),
        py::arg("b_hh").none(true), py::arg("batch_sizes").none(true), py::arg("reverse"));
  m.def("rnn_backward", [](const std::string& mode, py::array dy, py::array dhn, O dcn, py::array h0, O c0,
                           py::array w, O b, S batch_sizes, bool reverse, py::array y, py::array saved) {
    Mode md = parse_mode(mode);
    return is_double(dy, "rnn_backward")
               ? backward_given<double>(md, dy, dhn, dcn, h0, c0, w, b, batch_sizes, reverse, y, saved)
               : backward_given<float>(md, dy, dhn, dcn, h0, c0, w, b, batch_sizes, reverse, y, saved);
  }, py::arg("mode"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n").none(true), py::arg("h0"),
        py::arg("c0").none(true), py::arg("w_hh"), py::arg("b_hh").none(true), py::arg("batch_sizes").none(true),
        py::arg("reverse"), py::arg("y"), py::arg("saved"));
  m.def("rnn_layer_forward", [](const std::string& mode, py::array x, py::array w_ih, O b_ih, py::array h0, O c0,
                                py::array w, O b, S batch_sizes, bool reverse) {
    Mode md = parse_mode(mode);
    return is_double(x, "rnn_layer_forward")
               ? forward_layer<double>(md, x, w_ih, b_ih, h0, c0, w, b, batch_sizes, reverse)
               : forward_layer<float>(md, x, w_ih, b_ih, h0, c0, w, b, batch_sizes, reverse);
  }, py::arg("mode"), py::arg("x"), py::arg("w_ih"), py::arg("b_ih").none(true), py::arg("h0"),
        py::arg("c0").none(true), py::arg("w_hh"), py::arg("b_hh").none(true), py::arg("batch_sizes").none(true),
        py::arg("reverse"));
  m.def("rnn_layer_backward", [](const std::string& mode, py::array dy, py::array dhn, O dcn, py::array x,
                                 py::array w_ih, O b_ih, py::array h0, O c0, py::array w, O b, S batch_sizes,
                                 bool reverse, py::array y, py::array saved) {
    Mode md = parse_mode(mode);
    return is_double(dy, "rnn_layer_backward")
               ? backward_layer<double>(md, dy, dhn, dcn, x, w_ih, b_ih, h0, c0, w, b, batch_sizes, reverse, y, saved)
               : backward_layer<float>(md, dy, dhn, dcn, x, w_ih, b_ih, h0, c0, w, b, batch_sizes, reverse, y, saved);
  }, py::arg("mode"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n").none(true), py::arg("x"), py::arg("w_ih"),
        py::arg("b_ih").none(true), py::arg("h0"), py::arg("c0").none(true), py::arg("w_hh"),
        py::arg("b_hh").none(true), py::arg("batch_sizes").none(true), py::arg("reverse"), py::arg("y"),
        py::arg("saved"));
}
