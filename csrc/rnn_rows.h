// The fused time loops of csrc/rnn.cpp (LSTM and RNN with x, W_ih given: rnn_layer_*) split by batch rows
// instead of hidden units, when each thread gets at least kRowsPerThread rows. Thread o runs the whole
// recurrence of its rows [B o / nt, B (o + 1) / nt): a row's step t needs only its own h_{t-1} (forward)
// or its own dgates_{t+1} (backward), so the T steps need no synchronisation between threads at all (the
// unit split needs one per step, 2 T + 1 per forward + backward); each thread reads all of the packed
// W_ih, W_hh per step (from L3 when they exceed L2: at B64 H256 each panel of 16 columns is still used by
// 32 rows, 16 flops per byte). The packing before and the weight gradients after are the unit split's
// phases (csrc/rnn_loops.h). Every (row, unit) is computed by the same operations in the same order as in
// the unit split (db too: both sum dgates' columns while the dW GEMM packs dgates^T, rows ascending),
// so results do not depend on the thread count or the split.
#pragma once
#include "simd_math.h"
#include "common.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "rnn_common.h"
#include "rnn_loops.h"
#include "rnn_memory.h"

namespace rnn_detail {

// At fewer rows per thread the GEMMs' row tiles run partly empty and the weights are streamed from L3
// for too few rows: the unit split is used (B16 H128: every thread's weights stay in its L2).
constexpr int64_t kRowsPerThread = 24;

inline bool by_rows(const Dims& d, int nt) { return nt > 1 && d.B >= kRowsPerThread * nt; }

// The forward of forward_loop's fused case (x = in.x set, mode LSTM or RNN) on nt > 1 threads, by rows.
template <typename T>
void forward_rows(Mode mode, const Dims& d, const Input<T>& in, const T* h0, const T* c0, const T* w,
                  const T* bias, const std::vector<int64_t>& sizes, bool reverse, T* y, T* hn, T* cn, T* saved,
                  int nt) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, I = in.I, P = panels<T>(H), R = kNR<T>;
  const int64_t U = unit_chunk<T>(H, nt), n_units = (H + U - 1) / U;
  Phases phases(nt, {n_units, int64_t(nt)});  // the weights' packing by unit chunks, then a chunk per thread
  Scratch<T> wt(d.G * P * H * R), wi(d.G * P * I * R), hbuf(2 * B * H), gbuf(B * GH), bsum(GH);
  Scratch<T> apack(nt * kKc * kMc);
  for (int64_t k = 0; k < GH; ++k) bsum.data()[k] = (bias ? bias[k] : T(0)) + (in.b ? in.b[k] : T(0));
  std::copy(h0, h0 + B * H, hbuf.data());
  if (cn) std::copy(c0, c0 + B * H, cn);
  const bool h0_zero = all_zero(h0, B * H);
  std::atomic<bool> w_finite{true};  // (as forward_loop: the first step's h0 W_hh^T is left out when it is 0)
#pragma omp parallel num_threads(nt)
  {
    const int tid = tinyml::thread_id();
    T* ap = apack.data() + std::min(tid, nt - 1) * kKc * kMc;
    auto work = [&](int64_t phase, int64_t c) {
      if (phase == 0) {  // gate g's W_hh^T (H, H) and W_ih^T (I, H) panels of units [j0, j1)
        const int64_t j0 = c * U, j1 = std::min(H, j0 + U);
        for (int64_t g = 0; g < d.G; ++g) {
          pack_b(w + g * H * H, 1, H, H, H, wt.data() + g * P * H * R, j0 / R, panels<T>(j1));
          pack_b(in.w + g * H * I, 1, I, I, H, wi.data() + g * P * I * R, j0 / R, panels<T>(j1));
          if (h0_zero && !all_finite(w + (g * H + j0) * H, (j1 - j0) * H)) w_finite.store(false);
        }
        return;
      }
      const bool skip_h0 = h0_zero && w_finite.load();
      const int64_t r0 = B * c / nt, r1 = B * (c + 1) / nt;
      for (int64_t s = 0; s < d.T; ++s) {
        const int64_t t = reverse ? d.T - 1 - s : s, m = std::min(sizes[t], r1) - r0;
        const T* hc = hbuf.data() + (s % 2) * B * H;
        T* hx = hbuf.data() + ((s + 1) % 2) * B * H;
        if (m > 0) {  // gates of the active rows = x_t W_ih^T + h W_hh^T
          gemm_packed<T>(m, I, in.x + t * in.st + r0 * in.sb, in.sb, 1, wi.data(), d.G, H, 0, P,
                         gbuf.data() + r0 * GH, GH, H, false, ap);
          if (s > 0 || !skip_h0)
            gemm_packed<T>(m, H, hc + r0 * H, H, 1, wt.data(), d.G, H, 0, P, gbuf.data() + r0 * GH, GH, H, true, ap);
        }
        forward_units<T>(mode, d, t, sizes[t], 0, H, nullptr, nullptr, gbuf.data(), bsum.data(), hc, hx, cn, y, saved,
                         r0, r1);
      }
    };
    phases.run(tid, work, [](int64_t, int64_t, int64_t) {});
  }
  const int64_t final_buf = d.T % 2;
  std::copy(hbuf.data() + final_buf * B * H, hbuf.data() + (final_buf + 1) * B * H, hn);
}

// The backward of backward_loop's fused case (in.x set, mode LSTM or RNN; dgx == dgh == dg) on nt > 1 threads,
// by rows: per step (in backward order) a thread finishes its rows of dh_prev = dgates_prev W_hh and
// dx_prev = dgates_prev W_ih for the step before, then runs this step's pointwise part for its rows; then
// dW_hh, dW_ih and db by chunks of their rows as in backward_loop.
template <typename T>
void backward_rows(Mode mode, const Dims& d, const Input<T>& in, const T* dy, int64_t dyt, int64_t dyb, const T* h0,
                   const T* c0, const T* w, const std::vector<int64_t>& sizes, bool reverse, const T* y,
                   const T* saved, T* dh, T* dc, T* dg, T* hp, T* dw, T* db, int nt) {
  const int64_t H = d.H, GH = d.G * d.H, B = d.B, rows = d.T * d.B, I = in.I, R = kNR<T>, P = panels<T>(H);
  const int64_t U = unit_chunk<T>(H, nt), n_units = (H + U - 1) / U, n_ip = panels<T>(I);
  const int64_t dw_per = dw_chunk(GH, nt);
  Phases phases(nt, {n_units + n_ip, int64_t(nt), (GH + dw_per - 1) / dw_per});
  Scratch<T> wp(P * GH * R), apack(nt * kKc * kMc), wip(n_ip * GH * R), xp(n_ip * rows * R);
  auto step_of = [&](int64_t k) { const int64_t s = d.T - 1 - k; return reverse ? d.T - 1 - s : s; };
  const bool h0_zero = all_zero(h0, B * H);
#pragma omp parallel num_threads(nt)
  {
    const int tid = tinyml::thread_id();
    T* ap = apack.data() + std::min(tid, nt - 1) * kKc * kMc;
    auto work = [&](int64_t phase, int64_t c) {
      if (phase == 0) {
        if (c < n_units)  // W_hh (GH, H) panels of units [c U, (c + 1) U)
          pack_b(w, H, 1, GH, H, wp.data(), c * U / R, panels<T>(std::min(H, (c + 1) * U)));
        else {  // W_ih (G H, I) and x (T B, I) panel c - n_units, for dx and dW_ih
          pack_b(in.w, I, 1, GH, I, wip.data(), c - n_units, c - n_units + 1);
          pack_rows(in.x, in.st, in.sb, d.T, B, I, xp.data(), c - n_units, c - n_units + 1);
        }
      } else if (phase == 1) {
        const int64_t r0 = B * c / nt, r1 = B * (c + 1) / nt;
        for (int64_t k = 0; k <= d.T; ++k) {
          if (k > 0) {  // the step before (in backward order): dh_prev and dx of its rows
            const int64_t tp = step_of(k - 1), m = std::min(sizes[tp], r1) - r0;
            const T* dgp = dg + (tp * B + r0) * GH;
            T* dxt = in.dx + tp * in.dxt;
            if (m > 0) {  // (LSTM and RNN overwrite dh's active rows: their pointwise step need not zero dh)
              gemm_packed<T>(m, GH, dgp, GH, 1, wp.data(), 1, H, 0, P, dh + r0 * H, H, 0, false, ap);
              gemm_packed<T>(m, GH, dgp, GH, 1, wip.data(), 1, I, 0, n_ip, dxt + r0 * in.dxb, in.dxb, 0, false, ap);
            }
            for (int64_t b = std::max(r0, sizes[tp]); b < r1; ++b)  // inactive rows: dx 0
              std::fill(dxt + b * in.dxb, dxt + b * in.dxb + I, T(0));
          }
          if (k < d.T) {
            const int64_t t = step_of(k), p = reverse ? t + 1 : t - 1;
            const int64_t npv = (p >= 0 && p < d.T) ? sizes[p] : 0;
            backward_units<T>(mode, d, t, p, sizes[t], npv, 0, H, dy, dyt, dyb, h0, c0, y, saved, dh, dc, dg, dg, hp,
                              r0, r1);
          }
        }
      } else {  // dW_hh, dW_ih rows [q0, q1) = dg^T h_prev, dg^T x from the same packed blocks of dg^T; db alike
        const int64_t q0 = c * dw_per, q1 = std::min(GH, q0 + dw_per);
        const auto [k_lo, k_hi] = dw_hh_rows(d, h0_zero, reverse, dg, GH, q0, q1);  // (as backward_loop)
        Target<T> tg[2] = {{hp, 1, H, 0, P, dw + q0 * H, H, 0, false, k_lo, k_hi},
                           {xp.data(), 1, I, 0, n_ip, in.dw + q0 * I, I, 0, false}};
        std::fill(db + q0, db + q1, T(0));
        gemm_multi<T>(q1 - q0, rows, dg + q0, 1, GH, tg, 2, ap, db + q0);
      }
    };
    phases.run(tid, work, [](int64_t, int64_t, int64_t) {});
  }
  if (in.db) std::copy(db, db + GH, in.db);  // db_ih = db_hh (dgx is dgh)
}

}  // namespace rnn_detail
