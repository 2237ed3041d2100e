// The time loops of csrc/rnn.cpp (see its header for the scheme): the pointwise step of a block of
// hidden units, forward and backward, and the parallel loops over the T steps around them. With an
// Input (x, W_ih, b_ih), the loops also run the input projection's GEMMs on the same threads:
// xproj = x W_ih^T before the forward steps, and dx = dxproj W_ih, dW_ih = dxproj^T x after the
// backward steps (rows of x split between threads; each sum in one fixed order).
#pragma once
#include "simd_math.h"
#include "common.h"

#include <algorithm>
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

// Rows [r0, r1) of `rows`: thread tid's contiguous share of `team`.
inline void row_slice(int64_t rows, int tid, int team, int64_t* r0, int64_t* r1) {
  const int64_t per = (rows + team - 1) / team;
  *r0 = std::min(rows, per * tid);
  *r1 = std::min(rows, *r0 + per);
}

// Column sums of the (rows, n) row-major a, columns [c0, c1), into out[c0, c1) (one fixed order).
template <typename T>
void column_sums(const T* a, int64_t rows, int64_t n, int64_t c0, int64_t c1, T* out) {
  for (int64_t c = c0; c < c1; ++c) out[c] = T(0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = c0; c < c1; ++c) out[c] += a[r * n + c];
}

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

template <typename T>
TINYML_CLONES void forward_units(Mode mode, const Dims& d, int64_t t, int64_t n, int64_t j0, int64_t j1,
                                 const T* __restrict x, const T* __restrict xb, const T* __restrict gb,
                                 const T* __restrict bias,
                                 const T* __restrict hc, T* __restrict hx, T* __restrict c, T* __restrict y,
                                 T* __restrict saved) {
  const int64_t H = d.H, GH = d.G * d.H, S = n_saved(mode) * H;
  for (int64_t b = 0; b < n; ++b) {  // bias is never null here (zeros when the layer has none)
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
  for (int64_t b = n; b < d.B; ++b)  // inactive rows keep their state
    for (int64_t j = j0; j < j1; ++j) hx[b * H + j] = hc[b * H + j];
}

// x is xproj (T, B, G H), or with in.x set for GRU, scratch of that size that the loop fills first. For
// LSTM and RNN with in.x set (x may be null), each step's GEMM also runs x_t W_ih^T (fused: K = I + H, two
// passes over the gate columns) and b_ih joins b_hh, so no xproj array goes through memory.
template <typename T>
void forward_loop(Mode mode, const Dims& d, const Input<T>& in, T* x, const T* h0, const T* c0, const T* w,
                  const T* bias, const std::vector<int64_t>& sizes, bool reverse, T* y, T* hn, T* cn, T* saved) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, P = panels<T>(H), rows = d.T * d.B, R = kNR<T>;
  const bool fused = in.x && mode != Mode::GRU;
  const int nt = fused ? threads_for(d, in.I + H)
                       : in.x ? std::max(threads_for(d), threads_for_rows(rows, GH, in.I)) : threads_for(d);
  Scratch<T> wt(d.G * P * H * R), hbuf(2 * B * H), gbuf(B * GH), zeros(GH), bsum(GH), apack(nt * kKc * kMc);
  Scratch<T> wi(fused ? d.G * P * in.I * R : in.x ? panels<T>(GH) * in.I * R : 0);
  std::fill_n(zeros.data(), GH, T(0));
  const T* xb = in.b ? in.b : zeros.data();
  for (int64_t k = 0; k < GH; ++k) bsum.data()[k] = (bias ? bias[k] : T(0)) + (fused ? xb[k] : T(0));
  std::copy(h0, h0 + B * H, hbuf.data());
  if (cn) std::copy(c0, c0 + B * H, cn);
  SpinBarrier barrier;
#pragma omp parallel num_threads(nt)
  {
    const int team = team_size(), tid = tinyml::thread_id();
    T* ap = apack.data() + tid * kKc * kMc;
    int64_t p0, p1;
    if (in.x && !fused) {  // W_ih^T (I, G H) as panels, split by panel; then xproj = x W_ih^T, split by rows
      row_slice(panels<T>(GH), tid, team, &p0, &p1);
      pack_b(in.w, 1, in.I, in.I, GH, wi.data(), p0, p1);
      barrier.wait(team);
      int64_t r0, r1;
      row_slice(rows, tid, team, &r0, &r1);
      if (in.st == B * in.sb && r1 > r0)  // x's rows one stride apart: one GEMM over this thread's rows
        gemm_packed<T>(r1 - r0, in.I, in.x + r0 * in.sb, in.sb, 1, wi.data(), 1, GH, 0, panels<T>(GH),
                       x + r0 * GH, GH, 0, false, ap);
      else if (in.st != B * in.sb)  // a strided x (batch-first): step by step over this thread's steps
        for (int64_t t = (r0 + B - 1) / std::max<int64_t>(B, 1); t * B < r1 && t < d.T; ++t)
          gemm_packed<T>(B, in.I, in.x + t * in.st, in.sb, 1, wi.data(), 1, GH, 0, panels<T>(GH), x + t * B * GH,
                         GH, 0, false, ap);
    }
    row_slice(d.G * P, tid, team, &p0, &p1);  // gate g's W_hh^T (H, H): B[k][n] = w[(g H + n) H + k]
    for (int64_t q = p0; q < p1; ++q) {
      pack_b(w + (q / P) * H * H, 1, H, H, H, wt.data() + (q / P) * P * H * R, q % P, q % P + 1);
      if (fused)  // and gate g's W_ih^T (I, H), panel by panel alike
        pack_b(in.w + (q / P) * H * in.I, 1, in.I, in.I, H, wi.data() + (q / P) * P * in.I * R, q % P, q % P + 1);
    }
    barrier.wait(team);
    int64_t j0, j1;
    unit_slice(H, tid, team, &j0, &j1);
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = reverse ? d.T - 1 - s : s, n = sizes[t];
      const T* hc = hbuf.data() + (s % 2) * B * H;
      T* hx = hbuf.data() + ((s + 1) % 2) * B * H;
      if (j1 > j0) {  // gates[:, g H + j0 : g H + j1] = h W_hh^T for every gate g, in one pass over h
        if (fused)  // (+ x_t W_ih^T first)
          gemm_packed<T>(n, in.I, in.x + t * in.st, in.sb, 1, wi.data(), d.G, H, j0 / R, panels<T>(j1), gbuf.data(),
                         GH, H, false, ap);
        gemm_packed<T>(n, H, hc, H, 1, wt.data(), d.G, H, j0 / R, panels<T>(j1), gbuf.data(), GH, H, fused, ap);
        if (fused) forward_units<T>(mode, d, t, n, j0, j1, nullptr, nullptr, gbuf.data(), bsum.data(), hc, hx, cn, y,
                                    saved);
        else forward_units<T>(mode, d, t, n, j0, j1, x, xb, gbuf.data(), bsum.data(), hc, hx, cn, y, saved);
      }
      barrier.wait(team);
    }
  }
  const int64_t final_buf = d.T % 2;
  std::copy(hbuf.data() + final_buf * B * H, hbuf.data() + (final_buf + 1) * B * H, hn);
}

// One backward step's pointwise part for units [j0, j1) of the n active rows: the gates' gradients
// (dgx for xproj, dgh for the recurrent pre-activation; the same array except for GRU), h_prev into
// hp (for dW_hh, stored as the GEMM's packed panels: (j / NR, row, j % NR)), for GRU the part of dh_prev
// that bypasses W_hh (dh z) into dh, in place (LSTM, RNN: the step's GEMM overwrites dh's active rows), and
// dgh's rows added to db (when db is set).
template <typename T>
TINYML_CLONES void backward_units(Mode mode, const Dims& d, int64_t t, int64_t p, int64_t n, int64_t np,
                                  int64_t j0, int64_t j1, const T* __restrict dy, int64_t dyt, int64_t dyb,
                                  const T* __restrict h0,
                                  const T* __restrict c0, const T* __restrict y, const T* __restrict saved,
                                  T* __restrict dh, T* __restrict dc, T* __restrict dgx, T* __restrict dgh,
                                  T* __restrict hp, T* __restrict db) {
  const int64_t H = d.H, GH = d.G * d.H, S = n_saved(mode) * H;
  for (int64_t b = 0; b < n; ++b) {
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
    if (db)  // b_hh's gradient, summed here while the row is in L1 (not in a pass over all of dgh later)
      for (int64_t g = 0; g < d.G; ++g)
#pragma omp simd
        for (int64_t j = g * H + j0; j < g * H + j1; ++j) db[j] += gh[j];
    // h_prev into hp's panels in runs of R (j0 is a multiple of R; per element it became a scatter)
    for (int64_t j = j0; j < j1; j += R)
      std::copy(hsrc + j, hsrc + std::min(j1, j + R), hp + ((j / R) * rows + row) * R);
  }
}

// dgx, dgh, hp must be zero in inactive rows; dh/dc hold dh_n/dc_n and end as dh0/dc0. With in.x set,
// the loop also writes in.dx, in.dw and in.db from dgx (= dxproj).
template <typename T>
void backward_loop(Mode mode, const Dims& d, const Input<T>& in, const T* dy, int64_t dyt, int64_t dyb, const T* h0,
                   const T* c0, const T* w,
                   const std::vector<int64_t>& sizes, bool reverse, const T* y, const T* saved, T* dh, T* dc,
                   T* dgx, T* dgh, T* hp, T* dw, T* db) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, rows = d.T * d.B, I = in.I;
  const bool fused = in.x && mode != Mode::GRU;  // dx_t inside the steps, dW_ih beside dW_hh (dgx == dgh)
  const int nt = in.x ? std::max(threads_for(d), threads_for_rows(rows, GH, I)) : threads_for(d);
  Scratch<T> wp(panels<T>(H) * GH * kNR<T>), apack(nt * kKc * kMc);  // W_hh (GH, H) as GEMM panels
  Scratch<T> wip(in.x ? panels<T>(I) * GH * kNR<T> : 0), xp(in.x ? panels<T>(I) * rows * kNR<T> : 0);
  SpinBarrier barrier;
#pragma omp parallel num_threads(nt)
  {
    const int team = team_size(), tid = tinyml::thread_id();
    T* ap = apack.data() + tid * kKc * kMc;
    int64_t p0, p1;
    row_slice(panels<T>(H), tid, team, &p0, &p1);
    pack_b(w, H, 1, GH, H, wp.data(), p0, p1);
    if (in.x) {  // W_ih (G H, I) and x (T B, I) as panels, for dx and dW_ih
      row_slice(panels<T>(I), tid, team, &p0, &p1);
      pack_b(in.w, I, 1, GH, I, wip.data(), p0, p1);
      pack_rows(in.x, in.st, in.sb, d.T, B, I, xp.data(), p0, p1);
    }
    barrier.wait(team);
    int64_t j0, j1, i0, i1;
    unit_slice(H, tid, team, &j0, &j1);
    row_slice(panels<T>(I), tid, team, &i0, &i1);  // fused: this thread's panels of dx's columns
    T* db_units = mode == Mode::GRU ? nullptr : db;  // LSTM / RNN: each thread sums db for its units
    if (db_units)
      for (int64_t g = 0; g < d.G; ++g) std::fill(db + g * H + j0, db + g * H + std::max(j0, j1), T(0));
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = reverse ? d.T - 1 - s : s, p = reverse ? t + 1 : t - 1, n = sizes[t];
      const int64_t np = (p >= 0 && p < d.T) ? sizes[p] : 0;
      if (j1 > j0) backward_units<T>(mode, d, t, p, n, np, j0, j1, dy, dyt, dyb, h0, c0, y, saved, dh, dc, dgx, dgh,
                                      hp, db_units);
      barrier.wait(team);
      // dh_prev[:, j0:j1] (+)= dgh_t (n, GH) W_hh[:, j0:j1]; fused, also dx_t[:, i0 R : i1 R] = dgh_t W_ih[:, ...]
      // from the same packed dgh_t (the inactive rows of dx_t are zero)
      Target<T> tg[2];
      int ntg = 0;
      if (j1 > j0)  // (GRU adds to dh z; LSTM and RNN overwrite, so their pointwise step need not zero dh)
        tg[ntg++] = Target<T>{wp.data(), 1, H, j0 / kNR<T>, panels<T>(j1), dh, H, 0, mode == Mode::GRU};
      if (fused && i1 > i0) {
        T* dxt = in.dx + t * in.dxt;
        tg[ntg++] = Target<T>{wip.data(), 1, I, i0, i1, dxt, in.dxb, 0, false};
        for (int64_t b = n; b < B; ++b)
          std::fill(dxt + b * in.dxb + i0 * kNR<T>, dxt + b * in.dxb + std::min(I, i1 * kNR<T>), T(0));
      }
      if (ntg) gemm_multi<T>(n, GH, dgh + t * B * GH, GH, 1, tg, ntg, ap);
    }  // (no barrier: the next step's phase 1 reads only this thread's units; the last barrier also
       // orders every dgh, dgx and hp write before the GEMMs below)
    // dW_hh = dgh^T (GH, T B) h_prev (T B, H): this thread's slice of W_hh's rows (hp is packed already);
    // fused, dW_ih = dgh^T x for the same rows from the same packed blocks of dgh^T
    int64_t r0, r1;
    row_slice(GH, tid, team, &r0, &r1);
    if (r1 > r0) {
      Target<T> tg[2] = {{hp, 1, H, 0, panels<T>(H), dw + r0 * H, H, 0, false},
                         {xp.data(), 1, I, 0, panels<T>(I), fused ? in.dw + r0 * I : nullptr, I, 0, false}};
      gemm_multi<T>(r1 - r0, rows, dgh + r0, 1, GH, tg, fused ? 2 : 1, ap);
    }
    if (db_units) {  // db_ih = db_hh (dgx is dgh): this thread's units, which it summed itself
      if (in.db)
        for (int64_t g = 0; g < d.G; ++g)
          std::copy(db + g * H + j0, db + g * H + std::max(j0, j1), in.db + g * H + j0);
    } else {
      column_sums(dgh, rows, GH, r0, r1, db);
    }
    if (in.x) {
      if (!fused && r1 > r0)  // dW_ih = dgx^T x, the same rows of W_ih
        gemm_packed<T>(r1 - r0, rows, dgx + r0, 1, GH, xp.data(), 1, I, 0, panels<T>(I), in.dw + r0 * I, I, 0,
                       false, ap);
      if (in.db && !db_units) column_sums(dgx, rows, GH, r0, r1, in.db);  // GRU
      int64_t m0, m1;  // GRU: dx = dgx (T B, G H) W_ih (G H, I), this thread's rows (dx contiguous: the binding)
      row_slice(rows, tid, team, &m0, &m1);
      if (!fused && m1 > m0)
        gemm_packed<T>(m1 - m0, GH, dgx + m0 * GH, GH, 1, wip.data(), 1, I, 0, panels<T>(I), in.dx + m0 * I, I, 0,
                       false, ap);
    }
  }
}

// Zeroes rows b >= sizes[t] of a (T, B, width) array: the rows a packed sequence leaves inactive.
template <typename T>
void zero_inactive(T* a, const Dims& d, int64_t width, const std::vector<int64_t>& sizes) {
  for (int64_t t = 0; t < d.T; ++t)
    std::fill(a + (t * d.B + sizes[t]) * width, a + (t + 1) * d.B * width, T(0));
}

}  // namespace rnn_detail
