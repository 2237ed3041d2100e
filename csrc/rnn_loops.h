// The time loops of csrc/rnn.cpp (see its header for the scheme): the pointwise step of a block of
// hidden units, forward and backward, and the parallel loops over the T steps around them. With an
// Input (x, W_ih, b_ih), the loops also run the input projection's GEMMs on the same threads:
// xproj = x W_ih^T before the forward steps, and dx = dxproj W_ih, dW_ih = dxproj^T x after the
// backward steps (in chunks of rows; each sum in one fixed order).
#pragma once
#include "simd_math.h"
#include "common.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "rnn_common.h"
#include "rnn_memory.h"

namespace rnn_detail {

// The input projection a loop runs itself when x is set: x (T B, I) row-major, w (G H, I), b (G H) or
// null; the backward writes dx (T B, I), dw (G H, I) and db (G H; when b is set).
template <typename T>
struct Input {
  const T* x = nullptr;
  const T* w = nullptr;
  const T* b = nullptr;
  int64_t I = 0;
  int64_t st = 0, sb = 0;    // row (t, b) of x at x + t st + b sb (its I values contiguous)
  int64_t dxt = 0, dxb = 0;  // and of dx at dx + t dxt + b dxb
  T* dx = nullptr;
  T* dw = nullptr;
  T* db = nullptr;
};

// The (T B, N) matrix whose row t B + b is x + t st + b sb (N values) as GEMM panels, panels [p0, p1).
template <typename T>
void pack_rows(const T* x, int64_t st, int64_t sb, int64_t T_, int64_t B, int64_t N, T* out, int64_t p0,
               int64_t p1) {
  constexpr int64_t R = kNR<T>;
  const int64_t K = T_ * B;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t t = 0; t < T_; ++t)
      for (int64_t b = 0; b < B; ++b) {
        const T* row = x + t * st + b * sb + p * R;
        T* o = out + (p * K + t * B + b) * R;
        for (int64_t n = 0; n < R; ++n) o[n] = p * R + n < N ? row[n] : T(0);
      }
}

// CW > 0: j1 - j0 == CW, a whole chunk (csrc/rnn_common.h unit_chunk), whose loops then have a known
// trip count (no vector remainder code per row: a 16-unit chunk's loops took twice as long without).
template <typename T, int64_t CW = 0>
TINYML_CLONES void forward_units(Mode mode, const Dims& d, int64_t t, int64_t n, int64_t j0, int64_t j1,
                                 const T* __restrict x, const T* __restrict xb, const T* __restrict gb,
                                 const T* __restrict bias,
                                 const T* __restrict hc, T* __restrict hx, T* __restrict c, T* __restrict y,
                                 T* __restrict saved, int64_t b0 = 0, int64_t b1 = -1) {  // rows [b0, b1)
  if (CW) j1 = j0 + CW;
  const int64_t H = d.H, GH = d.G * d.H, S = n_saved(mode) * H;
  if (b1 < 0) b1 = d.B;
  for (int64_t b = b0; b < std::min(n, b1); ++b) {  // bias is never null here (zeros when the layer has none)
    const T* xr = x ? x + (t * d.B + b) * GH : nullptr;
    const T* g = gb + b * GH;
    T* yr = y + (t * d.B + b) * H;
    T* sv = saved + (t * d.B + b) * S;
    if (mode == Mode::LSTM && !x) {  // fused: g = x_t W_ih^T + h W_hh^T, bias = b_ih + b_hh
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T i = sigm(g[j] + bias[j]), f = sigm(g[H + j] + bias[H + j]);
        T gg = tanh_(g[2 * H + j] + bias[2 * H + j]), o = sigm(g[3 * H + j] + bias[3 * H + j]);
        T cn = f * c[b * H + j] + i * gg;
        T h = o * tanh_(cn);
        c[b * H + j] = cn, hx[b * H + j] = h, yr[j] = h;
        sv[j] = i, sv[H + j] = f, sv[2 * H + j] = gg, sv[3 * H + j] = o, sv[4 * H + j] = cn;
      }
    } else if (mode == Mode::LSTM) {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T ai = xr[j] + xb[j] + g[j] + bias[j], af = xr[H + j] + xb[H + j] + g[H + j] + bias[H + j];
        T ag = xr[2 * H + j] + xb[2 * H + j] + g[2 * H + j] + bias[2 * H + j];
        T ao = xr[3 * H + j] + xb[3 * H + j] + g[3 * H + j] + bias[3 * H + j];
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
        T r = sigm(xr[j] + xb[j] + sr), z = sigm(xr[H + j] + xb[H + j] + sz);
        T nn = tanh_(xr[2 * H + j] + xb[2 * H + j] + r * sn);
        T h = (T(1) - z) * nn + z * hc[b * H + j];
        hx[b * H + j] = h, yr[j] = h;
        sv[j] = r, sv[H + j] = z, sv[2 * H + j] = nn, sv[3 * H + j] = sn;
      }
    } else {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T a = (x ? xr[j] + xb[j] : T(0)) + g[j] + bias[j];
        T h = mode == Mode::TANH ? tanh_(a) : (a > T(0) ? a : (a != a ? a : T(0)));
        hx[b * H + j] = h, yr[j] = h;
      }
    }
  }
  for (int64_t b = std::max(n, b0); b < b1; ++b)  // inactive rows keep their state
    for (int64_t j = j0; j < j1; ++j) hx[b * H + j] = hc[b * H + j];
}

// x is xproj (T, B, G H), or with in.x set for GRU, scratch of that size that the loop fills first. For
// LSTM and RNN with in.x set (x may be null), each step's GEMM also runs x_t W_ih^T (fused: K = I + H, two
// passes over the gate columns) and b_ih joins b_hh, so no xproj array goes through memory.
// Phases (csrc/rnn_memory.h): the weights packed as GEMM panels (a chunk per unit chunk, and for GRU
// per panel of W_ih^T); for GRU xproj = x W_ih^T (a chunk per few steps); then one phase per step, a
// chunk per unit chunk [j0, j1): the G gate columns of those units by GEMM, then (per run of chunks that
// one thread took, Phases::run) their pointwise update.
template <typename T>
void forward_loop(Mode mode, const Dims& d, const Input<T>& in, T* x, const T* h0, const T* c0, const T* w,
                  const T* bias, const std::vector<int64_t>& sizes, bool reverse, T* y, T* hn, T* cn, T* saved) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, P = panels<T>(H), R = kNR<T>;
  const bool fused = in.x && mode != Mode::GRU, project = in.x && !fused;
  const int nt = fused ? threads_for(d, in.I + H)
                       : project ? std::max(threads_for(d), threads_for_rows(d.T * B, GH, in.I)) : threads_for(d);
  const int64_t U = unit_chunk<T>(H, nt), n_units = (H + U - 1) / U, n_wi = project ? panels<T>(GH) : 0;
  // GRU's xproj: chunks of whole steps (batch-first x is strided by step), about kMc rows each
  const int64_t steps_per = std::max({int64_t(1), kMc / std::max<int64_t>(B, 1), (d.T + 4095) / 4096});
  const int64_t first_step = project ? 2 : 1;
  std::vector<int64_t> counts(first_step + d.T, n_units);
  counts[0] = n_units + n_wi;
  if (project) counts[1] = (d.T + steps_per - 1) / steps_per;
  Phases phases(nt, std::move(counts));  // (throws here, before any thread starts, on absurd sizes)
  Scratch<T> wt(d.G * P * H * R), hbuf(2 * B * H), gbuf(B * GH), zeros(GH), bsum(GH), apack(nt * kKc * kMc);
  Scratch<T> wi(fused ? d.G * P * in.I * R : project ? panels<T>(GH) * in.I * R : 0);
  std::fill_n(zeros.data(), GH, T(0));
  const T* xb = in.b ? in.b : zeros.data();
  for (int64_t k = 0; k < GH; ++k) bsum.data()[k] = (bias ? bias[k] : T(0)) + (fused ? xb[k] : T(0));
  std::copy(h0, h0 + B * H, hbuf.data());
  if (cn) std::copy(c0, c0 + B * H, cn);
  const bool h0_zero = fused && all_zero(h0, B * H);  // fused: h0 W_hh^T is left out when 0 (rnn_common.h)
  std::atomic<bool> w_finite{true};
#pragma omp parallel num_threads(nt)
  {
    const int tid = tinyml::thread_id();
    T* ap = apack.data() + std::min(tid, nt - 1) * kKc * kMc;
    auto work = [&](int64_t phase, int64_t c) {
      if (phase == 0 && c >= n_units) {  // GRU: panel c - n_units of W_ih^T (I, G H)
        pack_b(in.w, 1, in.I, in.I, GH, wi.data(), c - n_units, c - n_units + 1);
        return;
      }
      const int64_t j0 = c * U, j1 = std::min(H, j0 + U);
      if (phase == 0) {  // gate g's W_hh^T (H, H) panels of units [j0, j1): B[k][n] = w[(g H + n) H + k]
        for (int64_t g = 0; g < d.G; ++g) {
          pack_b(w + g * H * H, 1, H, H, H, wt.data() + g * P * H * R, j0 / R, panels<T>(j1));
          if (fused)  // and gate g's W_ih^T (I, H) alike
            pack_b(in.w + g * H * in.I, 1, in.I, in.I, H, wi.data() + g * P * in.I * R, j0 / R, panels<T>(j1));
          if (h0_zero && !all_finite(w + (g * H + j0) * H, (j1 - j0) * H)) w_finite.store(false);
        }
      } else if (phase < first_step) {  // GRU: xproj rows of steps [t0, t1) = x W_ih^T
        const int64_t t0 = c * steps_per, t1 = std::min(d.T, t0 + steps_per);
        if (in.st == B * in.sb)  // x's rows one stride apart: one GEMM over these steps
          gemm_packed<T>((t1 - t0) * B, in.I, in.x + t0 * in.st, in.sb, 1, wi.data(), 1, GH, 0, panels<T>(GH),
                         x + t0 * B * GH, GH, 0, false, ap);
        else  // a strided x (batch-first): step by step
          for (int64_t t = t0; t < t1; ++t)
            gemm_packed<T>(B, in.I, in.x + t * in.st, in.sb, 1, wi.data(), 1, GH, 0, panels<T>(GH), x + t * B * GH,
                           GH, 0, false, ap);
      } else {  // gates[:, g H + j0 : g H + j1] = h W_hh^T for every gate g, in one pass over h
        const int64_t s = phase - first_step, t = reverse ? d.T - 1 - s : s, n = sizes[t];
        const T* hc = hbuf.data() + (s % 2) * B * H;
        if (fused)  // (+ x_t W_ih^T first)
          gemm_packed<T>(n, in.I, in.x + t * in.st, in.sb, 1, wi.data(), d.G, H, j0 / R, panels<T>(j1), gbuf.data(),
                         GH, H, false, ap);
        if (s > 0 || !h0_zero || !w_finite.load())
          gemm_packed<T>(n, H, hc, H, 1, wt.data(), d.G, H, j0 / R, panels<T>(j1), gbuf.data(), GH, H, fused, ap);
      }
    };
    auto finish = [&](int64_t phase, int64_t i0, int64_t i1) {  // a step's pointwise update of units [j0, j1)
      if (phase < first_step) return;
      const int64_t s = phase - first_step, t = reverse ? d.T - 1 - s : s, n = sizes[t];
      const int64_t j0 = i0 * U, j1 = std::min(H, i1 * U);
      const T* hc = hbuf.data() + (s % 2) * B * H;
      T* hx = hbuf.data() + ((s + 1) % 2) * B * H;
      auto units = j1 - j0 == R ? forward_units<T, R> : forward_units<T>;
      units(mode, d, t, n, j0, j1, fused ? nullptr : x, fused ? nullptr : xb, gbuf.data(), bsum.data(), hc, hx, cn, y,
            saved, 0, B);
    };
    phases.run(tid, work, finish);
  }
  const int64_t final_buf = d.T % 2;
  std::copy(hbuf.data() + final_buf * B * H, hbuf.data() + (final_buf + 1) * B * H, hn);
}

// One backward step's pointwise part for units [j0, j1) of the n active rows: the gates' gradients
// (dgx for xproj, dgh for the recurrent pre-activation; the same array except for GRU), h_prev into
// hp (for dW_hh, stored as the GEMM's packed panels: (j / NR, row, j % NR)), for GRU the part of dh_prev
// that bypasses W_hh (dh z) into dh, in place (LSTM, RNN: the step's GEMM overwrites dh's active rows).
template <typename T, int64_t CW = 0>
TINYML_CLONES void backward_units(Mode mode, const Dims& d, int64_t t, int64_t p, int64_t n, int64_t np,
                                  int64_t j0, int64_t j1, const T* __restrict dy, int64_t dyt, int64_t dyb,
                                  const T* __restrict h0,
                                  const T* __restrict c0, const T* __restrict y, const T* __restrict saved,
                                  T* __restrict dh, T* __restrict dc, T* __restrict dgx, T* __restrict dgh,
                                  T* __restrict hp, int64_t b0 = 0, int64_t b1 = -1) {
  if (CW) j1 = j0 + CW;  // (as in forward_units; rows [b0, b1) alike)
  const int64_t H = d.H, GH = d.G * d.H, S = n_saved(mode) * H;
  for (int64_t b = b0; b < (b1 < 0 ? n : std::min(n, b1)); ++b) {
    const int64_t row = t * d.B + b;
    const bool from_prev = b < np;  // active at the previous step: its state came from there
    const T* hsrc = from_prev ? y + (p * d.B + b) * H : h0 + b * H;
    const T* sv = saved + row * S;
    const T* dyr = dy + t * dyt + b * dyb;
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
      }
    } else {
      const T* yr = y + row * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        T dd = dh[b * H + j] + dyr[j], h = yr[j];
        gx[j] = mode == Mode::TANH ? dd * (T(1) - h * h) : (h > T(0) ? dd : T(0));
      }
    }
    // h_prev into hp's panels in runs of R (j0 is a multiple of R; per element it became a scatter), whole
    // runs by a fixed-length loop (std::copy's runtime length made a memmove call per run)
    for (int64_t j = j0; j < j1; j += R) {
      T* out = hp + ((j / R) * rows + row) * R;
      if (j + R <= j1)
        for (int64_t k = 0; k < R; ++k) out[k] = hsrc[j + k];
      else
        for (int64_t k = 0; k < j1 - j; ++k) out[k] = hsrc[j + k];
    }
  }
}

// GEMM panels of dx per chunk of a backward step: two, one zmm register tile (csrc/rnn_zmm.h).
constexpr int64_t kDxPanels = 2;

// The chunks of a backward step phase for nt owners (csrc/rnn_memory.h Phases): owner o's range holds its
// share of the n_units unit chunks, then its share of the n_dx chunks of dx, so that each thread gets
// both kinds alike and its unit chunks side by side (one pointwise run). items[c] below n_units is unit
// chunk items[c], n_units + q is dx chunk q (panels kDxPanels q ...); start[o] is where owner o's range begins.
struct StepItems {
  std::vector<int64_t> items, start;
  StepItems(int64_t n_units, int64_t n_dx, int nt) {
    for (int o = 0; o < nt; ++o) {
      start.push_back(int64_t(items.size()));
      for (int64_t k = n_units * o / nt; k < n_units * (o + 1) / nt; ++k) items.push_back(k);
      for (int64_t q = n_dx * o / nt; q < n_dx * (o + 1) / nt; ++q) items.push_back(n_units + q);
    }
    start.push_back(int64_t(items.size()));
  }
};

// dgx, dgh, hp must be zero in inactive rows; dh/dc hold dh_n/dc_n and end as dh0/dc0. With in.x set, the
// loop also writes in.dx, in.dw and in.db from dgx (= dxproj).
// Phases (csrc/rnn_memory.h): W_hh (and W_ih, x) packed as GEMM panels; then one phase per step, whose
// unit chunk [j0, j1) first finishes dh_prev[:, j0:j1] (+)= dgates_prev W_hh[:, j0:j1] of the step
// before (in backward order), then (per run of chunks one thread took) runs this step's pointwise part for
// those units, and whose dx chunks
// (LSTM, RNN with in.x) give dx_prev = dgates_prev W_ih panel by panel; a last phase does both for the
// last step; then dW_hh = dgh^T h_prev (and dW_ih) by chunks of rows; for GRU, dx = dgx W_ih by rows.
template <typename T>
void backward_loop(Mode mode, const Dims& d, const Input<T>& in, const T* dy, int64_t dyt, int64_t dyb, const T* h0,
                   const T* c0, const T* w,
                   const std::vector<int64_t>& sizes, bool reverse, const T* y, const T* saved, T* dh, T* dc,
                   T* dgx, T* dgh, T* hp, T* dw, T* db) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, rows = d.T * d.B, I = in.I, R = kNR<T>;
  const bool fused = in.x && mode != Mode::GRU;  // dx_t inside the steps, dW_ih beside dW_hh (dgx == dgh)
  const int nt = in.x ? std::max(threads_for(d), threads_for_rows(rows, GH, I)) : threads_for(d);
  const int64_t U = unit_chunk<T>(H, nt), n_units = (H + U - 1) / U, n_ip = in.x ? panels<T>(I) : 0;
  const int64_t n_dx = fused ? (n_ip + kDxPanels - 1) / kDxPanels : 0;  // dx chunks of kDxPanels panels
  const int64_t dw_per = dw_chunk(GH, nt), x_per = row_chunk(rows);  // dW's rows (G H) in chunks
  const int64_t step0 = 1, last = step0 + d.T, dw_phase = last + 1, dx_phase = dw_phase + 1;
  std::vector<int64_t> counts(dx_phase + 1, n_units + n_dx);
  counts[0] = n_units + n_ip;
  counts[step0] = n_units;  // the first step has no step before it
  if (d.T == 0) counts[last] = 0;
  counts[dw_phase] = (GH + dw_per - 1) / dw_per;
  counts[dx_phase] = in.x && !fused ? (rows + x_per - 1) / x_per : 0;
  const StepItems steps(n_units, n_dx, nt);
  Phases phases(nt, std::move(counts), [&](int64_t q, int o) { return q > step0 && q <= last ? steps.start[o] : -1; });
  Scratch<T> wp(panels<T>(H) * GH * R), apack(nt * kKc * kMc);  // W_hh (GH, H) as GEMM panels
  Scratch<T> wip(in.x ? n_ip * GH * R : 0), xp(in.x ? n_ip * rows * R : 0);
  // the step that phase `phase` (step0 .. last - 1) runs, in backward order
  auto step_of = [&](int64_t phase) { const int64_t s = d.T - 1 - (phase - step0); return reverse ? d.T - 1 - s : s; };
  const bool h0_zero = all_zero(h0, B * H);
#pragma omp parallel num_threads(nt)
  {
    const int tid = tinyml::thread_id();
    T* ap = apack.data() + std::min(tid, nt - 1) * kKc * kMc;
    auto work = [&](int64_t phase, int64_t c) {
      if (phase == 0) {
        if (c < n_units) {  // W_hh (GH, H) panels of units [c U, (c + 1) U)
          pack_b(w, H, 1, GH, H, wp.data(), c * U / R, panels<T>(std::min(H, (c + 1) * U)));
        } else {  // W_ih (G H, I) and x (T B, I) panel c - n_units, for dx and dW_ih
          pack_b(in.w, I, 1, GH, I, wip.data(), c - n_units, c - n_units + 1);
          pack_rows(in.x, in.st, in.sb, d.T, B, I, xp.data(), c - n_units, c - n_units + 1);
        }
      } else if (phase <= last) {
        if (phase == step0) return;  // the first step has no step before it: only the pointwise part
        // dgates of the step before (in backward order): dh_prev's and dx's rows of it
        const int64_t item = steps.items[c], tp = step_of(phase - 1), np = sizes[tp];
        const T* dgp = dgh + tp * B * GH;
        if (item >= n_units) {  // dx_tp[:, panels q0..q1) = dgates_tp W_ih[:, those panels] (inactive rows zero)
          const int64_t q0 = (item - n_units) * kDxPanels, q1 = std::min(n_ip, q0 + kDxPanels);
          const int64_t i1 = std::min(I, q1 * R);
          T* dxt = in.dx + tp * in.dxt;
          gemm_packed<T>(np, GH, dgp, GH, 1, wip.data(), 1, I, q0, q1, dxt, in.dxb, 0, false, ap);
          for (int64_t b = np; b < B; ++b) std::fill(dxt + b * in.dxb + q0 * R, dxt + b * in.dxb + i1, T(0));
        } else {  // dh_prev[:, j0:j1] (+)= dgh_tp W_hh[:, j0:j1] (GRU adds to dh z; LSTM and RNN overwrite, so
          // their pointwise step need not zero dh)
          const int64_t j0 = item * U, j1 = std::min(H, j0 + U);
          gemm_packed<T>(np, GH, dgp, GH, 1, wp.data(), 1, H, j0 / R, panels<T>(j1), dh, H, 0, mode == Mode::GRU, ap);
        }
      } else if (phase == dw_phase) {
        // dW_hh rows [r0, r1) = dgh^T (GH, T B) h_prev (T B, H) (hp is packed already); fused, dW_ih = dgh^T x
        // for the same rows from the same packed blocks of dgh^T
        const int64_t r0 = c * dw_per, r1 = std::min(GH, r0 + dw_per);
        const auto [k_lo, k_hi] = dw_hh_rows(d, h0_zero, reverse, dgh, GH, r0, r1);
        Target<T> tg[2] = {{hp, 1, H, 0, panels<T>(H), dw + r0 * H, H, 0, false, k_lo, k_hi},
                           {xp.data(), 1, I, 0, n_ip, fused ? in.dw + r0 * I : nullptr, I, 0, false}};
        std::fill(db + r0, db + r1, T(0));  // db_hh: dgh's column sums, while gemm_multi packs dgh^T
        gemm_multi<T>(r1 - r0, rows, dgh + r0, 1, GH, tg, fused ? 2 : 1, ap, db + r0);
        if (in.x && !fused) {  // GRU: dW_ih = dgx^T x, the same rows of W_ih, and db_ih
          if (in.db) std::fill(in.db + r0, in.db + r1, T(0));
          gemm_packed<T>(r1 - r0, rows, dgx + r0, 1, GH, xp.data(), 1, I, 0, n_ip, in.dw + r0 * I, I, 0, false, ap,
                         in.db ? in.db + r0 : nullptr);
        }
      } else {  // GRU: dx rows [m0, m1) = dgx (T B, G H) W_ih (G H, I) (dx contiguous: the binding)
        const int64_t m0 = c * x_per, m1 = std::min(rows, m0 + x_per);
        gemm_packed<T>(m1 - m0, GH, dgx + m0 * GH, GH, 1, wip.data(), 1, I, 0, n_ip, in.dx + m0 * I, I, 0, false,
                       ap);
      }
    };
    // this step's pointwise part for the unit chunks among items [c0, c1) (a run of one owner's range: its
    // unit chunks come first there, side by side)
    auto finish = [&](int64_t phase, int64_t i0, int64_t i1) {
      if (phase < step0 || phase >= last) return;
      int64_t k1 = i0;
      const int64_t* items = phase > step0 ? steps.items.data() : nullptr;  // the first step: units only
      while (k1 < i1 && (items ? items[k1] : k1) < n_units) ++k1;
      if (k1 == i0) return;
      const int64_t j0 = (items ? items[i0] : i0) * U, j1 = std::min(H, j0 + (k1 - i0) * U);
      const int64_t t = step_of(phase), p = reverse ? t + 1 : t - 1;
      const int64_t n = sizes[t], npv = (p >= 0 && p < d.T) ? sizes[p] : 0;
      auto units = j1 - j0 == R ? backward_units<T, R> : backward_units<T>;
      units(mode, d, t, p, n, npv, j0, j1, dy, dyt, dyb, h0, c0, y, saved, dh, dc, dgx, dgh, hp, 0, B);
    };
    phases.run(tid, work, finish);
  }
  if (fused && in.db) std::copy(db, db + GH, in.db);  // LSTM / RNN: db_ih = db_hh (dgx is dgh)
}

// Zeroes rows b >= sizes[t] of a (T, B, width) array: the rows a packed sequence leaves inactive.
template <typename T>
void zero_inactive(T* a, const Dims& d, int64_t width, const std::vector<int64_t>& sizes) {
  for (int64_t t = 0; t < d.T; ++t)
    std::fill(a + (t * d.B + sizes[t]) * width, a + (t + 1) * d.B * width, T(0));
}

}  // namespace rnn_detail
