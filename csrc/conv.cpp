// conv2d forward and backward as implicit GEMMs: a register-blocked micro-kernel reading its
// operands where they lie, one OpenMP team for the whole convolution.
//
//   forward  y[n, g](Og x L)  = W[g](Og x K) @ cols[n, g](K x L)          K = C/G * kh * kw, L = oh * ow
//   dx       dcols(K x L)     = W[g]^T @ dy[n, g],  then col2im (add into dx[n])
//   dW[g]^T += cols[n, g] @ dy[n, g]^T                                     (chunk sums, reduced in order)
//
// The forward builds an im2col block (K x NB) by runs of output rows (conv_im2col.h) and the GEMM
// reads its rows in place as B; the input gradient reads dy's rows in place as B; the weight
// gradient reads im2col rows in place as A from a zero-padded slab of the task's input rows (no
// im2col at all) and packs only dy^T. Measured (1 thread, 8x64x56x56, 64x64x3x3): dW 33 -> 22 ms,
// the stride-2 forward and input gradient ~15% faster than packing element by element.
//
// Why not numpy's BLAS for the GEMMs: with two BLAS threads beside OpenMP threads (and other
// processes) on a small machine, OpenBLAS's thread handoff collapsed to ~4 GFLOP/s on the
// 64 x 576 x 3136 products of a ResNet layer, while one thread alone ran 74 GFLOP/s. Here every
// task is single-threaded and independent, so the team never waits on another library's threads.
//
// The micro-kernel (conv_gemm.h): C[8 x NR] += A[8 x kc] B[kc x NR], NR one 64-byte vector; where the
// AVX-512 clone runs, two B tiles at once (8 x 2 NR) wherever two are at hand.
// 3x3 stride-1 convolutions with enough channels run as Winograd F(2x2, 3x3) (conv_winograd.h),
// forward and input gradient; wider kernels with the output channels to fill the vector lanes run the
// forward (and at stride 1 the input gradient) read from input slabs, without im2col (conv_slab.h);
// `algo` in the bindings picks a path explicitly (tests).
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "conv_im2col.h"
#include "conv_slab.h"
#include "conv_winograd.h"

namespace {

using namespace tinyml_conv;
constexpr ssize NB = 128;  // output columns per task (an im2col block: K x NB, L2-resident)

// The tasks of the weight gradient are summed in this many fixed chunks, each into its own
// accumulator, then the chunks in order: the same sums whichever thread ran a chunk, so dW is
// bit-identical for any thread count and schedule, and a dynamic schedule can balance a busy core.
constexpr ssize DW_CHUNKS = 8;
constexpr ssize DW_ACC_BUDGET = ssize(1) << 22;  // elements of all chunk accumulators together

template <typename T>
void conv_forward(const ConvGeo& g, const T* x, const T* w, const T* bias, T* y) {
  constexpr int NR = Vec<T>::NR;
  const ssize K = g.K(), L = g.L(), Og = g.og(), jblocks = (L + NB - 1) / NB;
  std::vector<std::vector<T>> Ap(g.groups);
  for (ssize grp = 0; grp < g.groups; ++grp) Ap[grp] = pack_a(w + grp * Og * K, Og, K, K, false);
  const ssize tasks = g.n * g.groups * jblocks;
  const bool wide = wide_kernels();
#pragma omp parallel
  {
    std::vector<T> cols(K * NB + NR, T(0));  // im2col block, row k at k * NB; B tiles read it in place
#pragma omp for schedule(dynamic, 4)
    for (ssize task = 0; task < tasks; ++task) {
      const ssize jb = task % jblocks, grp = (task / jblocks) % g.groups, n = task / (jblocks * g.groups);
      const ssize j0 = jb * NB, nb = std::min(NB, L - j0), ntiles = (nb + NR - 1) / NR;
      const T* xg = x + (n * g.c + grp * g.cg()) * g.h * g.w;
      for (ssize k = 0; k < K; ++k)
        im2col_row(g, xg + (k / (g.kh * g.kw)) * g.h * g.w, row_tap(g, k), j0, nb, cols.data() + k * NB);
      T* yb = y + (n * g.o + grp * Og) * L + j0;
      for (ssize t = 0; t < ntiles;) {  // lanes past nb compute on stale columns and are not stored
        const bool two = wide && t + 1 < ntiles;
        for (ssize mt = 0; mt * MR < Og; ++mt) {
          const int m = static_cast<int>(std::min<ssize>(MR, Og - mt * MR));
          const T* A = Ap[grp].data() + mt * K * MR;
          T* C = yb + mt * MR * L + t * NR;
          if (two)
            micro2<T>(K, A, cols.data() + t * NR, NB, C, L, m, static_cast<int>(std::min<ssize>(NR, nb - (t + 1) * NR)),
                      false);
          else
            micro<T>(K, A, cols.data() + t * NR, NB, C, L, m, static_cast<int>(std::min<ssize>(NR, nb - t * NR)), false);
        }
        t += two ? 2 : 1;
      }
      if (bias)
        for (ssize o = 0; o < Og; ++o) {
          const T b = bias[grp * Og + o];
          T* row = yb + o * L;
          for (ssize jj = 0; jj < nb; ++jj) row[jj] += b;
        }
    }
  }
}

template <typename T>
void conv_backward_input(const ConvGeo& g, const T* w, const T* dy, T* dx) {
  constexpr int NR = Vec<T>::NR;
  const ssize K = g.K(), L = g.L(), Og = g.og(), jblocks = (L + NB - 1) / NB;
  std::vector<std::vector<T>> Ap(g.groups);  // W[g]^T: K rows, contraction over Og
  for (ssize grp = 0; grp < g.groups; ++grp) Ap[grp] = pack_a(w + grp * Og * K, K, Og, K, true);
  const ssize tasks = g.n * g.groups;
  const bool wide = wide_kernels();
#pragma omp parallel
  {
    std::vector<T> tail(Og * NR), dcols(K * NB);
#pragma omp for schedule(dynamic, 1)
    for (ssize task = 0; task < tasks; ++task) {  // one sample-group: its dx channels are this task's alone
      const ssize grp = task % g.groups, n = task / g.groups;
      T* dxc = dx + (n * g.c + grp * g.cg()) * g.h * g.w;
      std::fill(dxc, dxc + g.cg() * g.h * g.w, T(0));
      for (ssize jb = 0; jb < jblocks; ++jb) {
        const ssize j0 = jb * NB, nb = std::min(NB, L - j0), ntiles = (nb + NR - 1) / NR;
        const T* dyb = dy + (n * g.o + grp * Og) * L + j0;
        for (ssize t = 0; t < ntiles; ++t) {
          const ssize cnt = std::min<ssize>(NR, nb - t * NR);
          const T* B = dyb + t * NR;  // dy rows in place (ldb = L); a partial tile is copied, zero-padded
          if (wide && cnt == NR && nb - (t + 1) * NR >= NR) {  // two full tiles at once
            for (ssize mt = 0; mt * MR < K; ++mt)
              micro2<T>(Og, Ap[grp].data() + mt * Og * MR, B, L, dcols.data() + mt * MR * NB + t * NR, NB,
                        static_cast<int>(std::min<ssize>(MR, K - mt * MR)), NR, false);
            ++t;
            continue;
          }
          ssize ldb = L;
          if (cnt < NR) {
            for (ssize o = 0; o < Og; ++o) {
              std::copy(B + o * L, B + o * L + cnt, tail.data() + o * NR);
              std::fill(tail.data() + o * NR + cnt, tail.data() + (o + 1) * NR, T(0));
            }
            B = tail.data(), ldb = NR;
          }
          for (ssize mt = 0; mt * MR < K; ++mt)
            micro<T>(Og, Ap[grp].data() + mt * Og * MR, B, ldb, dcols.data() + mt * MR * NB + t * NR, NB,
                     static_cast<int>(std::min<ssize>(MR, K - mt * MR)), static_cast<int>(cnt), false);
        }
        for (ssize k = 0; k < K; ++k)  // col2im of this block
          col2im_row(g, dxc + (k / (g.kh * g.kw)) * g.h * g.w, row_tap(g, k), j0, nb, dcols.data() + k * NB);
      }
    }
  }
}

// dW[g]^T (K x Og) += cols[n, g] (K x nb) @ dy[n, g]^T (nb x Og), a task being R output rows of one
// sample-group. A, the im2col rows, is read in place from the task's slab (micro_rows); B is the dy
// block transposed into NR-wide panels (the smaller operand).
template <typename T>
void conv_backward_weight(const ConvGeo& g, const T* x, const T* dy, T* dw) {
  constexpr int NR = Vec<T>::NR;
  const ssize K = g.K(), L = g.L(), Og = g.og(), otiles = (Og + NR - 1) / NR;
  const ssize R = std::max<ssize>(1, NB / g.ow), blocks = (g.oh + R - 1) / R;
  const Slab sl = slab_geometry(g, R);
  const ssize tasks = g.n * g.groups * blocks, wsize = g.groups * K * Og;  // accumulators: [grp][k][o]
  const ssize chunks = std::max<ssize>(1, std::min({DW_CHUNKS, tasks, DW_ACC_BUDGET / std::max<ssize>(wsize, 1)}));
  std::vector<T> acc(chunks * wsize, T(0));
  const bool wide = wide_kernels();
#pragma omp parallel
  {
    std::vector<T> slab(g.sw * sl.plane), Bp(otiles * R * g.ow * NR);
    std::vector<const T*> arows(K);
#pragma omp for schedule(dynamic, 1)
    for (ssize ch = 0; ch < chunks; ++ch) {
      T* mine = acc.data() + ch * wsize;
      for (ssize task = ch * tasks / chunks; task < (ch + 1) * tasks / chunks; ++task) {
        const ssize blk = task % blocks, grp = (task / blocks) % g.groups, n = task / (blocks * g.groups);
        const ssize i0 = blk * R, rows = std::min(R, g.oh - i0), j0 = i0 * g.ow, nb = rows * g.ow;
        const T* dyb = dy + (n * g.o + grp * Og) * L + j0;
        for (ssize o = 0; o < otiles * NR; ++o) {  // Bp[ot][jj][lane] = dy[ot * NR + lane][jj], zero past Og
          T* dst = Bp.data() + (o / NR) * nb * NR + o % NR;
          if (o < Og)
            for (ssize jj = 0; jj < nb; ++jj) dst[jj * NR] = dyb[o * L + jj];
          else
            for (ssize jj = 0; jj < nb; ++jj) dst[jj * NR] = T(0);
        }
        fill_slab(g, sl, x + (n * g.c + grp * g.cg()) * g.h * g.w, i0, (rows - 1) * g.sh + (g.kh - 1) * g.dh + 1,
                  slab.data());
        for (ssize k = 0; k < K; ++k) arows[k] = slab.data() + slab_tap_offset(g, sl, k);
        T* C = mine + grp * K * Og;
        for (ssize kt = 0; kt * MR < K; ++kt) {
          const int m = static_cast<int>(std::min<ssize>(MR, K - kt * MR));
          for (ssize ot = 0; ot < otiles; ++ot) {
            if (wide && ot + 1 < otiles) {  // two dy panels at once
              micro_rows2<T>(arows.data() + kt * MR, m, rows, g.ow, g.sh * sl.cols, Bp.data() + ot * nb * NR,
                             Bp.data() + (ot + 1) * nb * NR, C + kt * MR * Og + ot * NR, Og,
                             static_cast<int>(std::min<ssize>(NR, Og - (ot + 1) * NR)), true);
              ++ot;
              continue;
            }
            micro_rows<T>(arows.data() + kt * MR, m, rows, g.ow, g.sh * sl.cols, Bp.data() + ot * nb * NR,
                          C + kt * MR * Og + ot * NR, Og, static_cast<int>(std::min<ssize>(NR, Og - ot * NR)), true);
          }
        }
      }
    }
    // the chunks summed into chunk 0 in chunk order (contiguous, vectorised), then transposed into dw
#pragma omp for schedule(static)
    for (ssize b = 0; b < wsize; b += 1024)
      for (ssize ch = 1; ch < chunks; ++ch) {
        T* dst = acc.data() + b;
        const T* src = acc.data() + ch * wsize + b;
        for (ssize at = 0; at < std::min<ssize>(1024, wsize - b); ++at) dst[at] += src[at];
      }
#pragma omp for schedule(static)
    for (ssize i = 0; i < g.o * K; ++i) {  // dw[o, k] = acc[grp][k][o % Og]
      const ssize o = i / K, k = i % K;
      dw[i] = acc[((o / Og) * K + k) * Og + o % Og];
    }
  }
}

// ---- bindings ---------------------------------------------------------------------------------------

template <typename T>
ConvGeo check_conv(const py::array& x, const py::array& w, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh, ssize dw,
                   ssize groups, ssize oh, ssize ow) {
  tinyml::check_array<T>(x, "conv2d input");
  tinyml::check_array<T>(w, "conv2d weight");
  if (x.ndim() != 4 || w.ndim() != 4)
    throw py::value_error("conv2d: expected 4-D input and weight, got " + tinyml::shape_str(x) + " and " +
                          tinyml::shape_str(w));
  ConvGeo g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), groups, w.shape(2), w.shape(3),
            sh, sw, pt, pl, dh, dw, oh, ow};
  if (g.kh < 1 || g.kw < 1)
    throw py::value_error("conv2d: kernel size must be positive, got weight of shape " + tinyml::shape_str(w));
  if (groups < 1 || g.c % groups || g.o % groups || w.shape(1) * groups != g.c)
    throw py::value_error("conv2d: weight " + tinyml::shape_str(w) + " with groups=" + std::to_string(groups) +
                          " does not fit input " + tinyml::shape_str(x));
  // Reads of x are bounds-checked per element (padding), so any positive output size is safe.
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || pt < 0 || pl < 0 || oh < 1 || ow < 1)
    throw py::value_error("conv2d: stride and dilation must be positive, padding non-negative, output size positive");
  return g;
}

template <typename T>
py::array forward(py::array x, py::array w, py::object b, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh, ssize dw,
                  ssize groups, ssize oh, ssize ow, int algo) {
  ConvGeo g = check_conv<T>(x, w, sh, sw, pt, pl, dh, dw, groups, oh, ow);
  const T* bp = nullptr;
  if (!b.is_none()) {
    py::array ba = b.cast<py::array>();
    tinyml::check_array<T>(ba, "conv2d bias");
    if (ba.ndim() != 1 || ba.shape(0) != g.o)
      throw py::value_error("conv2d: bias has shape " + tinyml::shape_str(ba) + ", expected (" + std::to_string(g.o) +
                            ",)");
    bp = static_cast<const T*>(ba.data());
  }
  py::array_t<T> y({g.n, g.o, oh, ow});
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = static_cast<const T*>(w.data());
  T* yp = y.mutable_data();
  int m = winograd_tile(g, g.c, g.o, algo);
  {
    py::gil_scoped_release release;  // ends before `return y` touches a reference count
    if (m && algo == 0 && !all_finite(wp, g.o * g.K())) m = 0;  // inf/NaN weights: the direct sums' propagation
    if (m) run_winograd<T>(m, xp, wp, bp, yp, g.n, g.c, g.h, g.w, g.o, g.pt, g.pl, oh, ow);
    else if (algo == 3 || (algo == 0 && slab_forward_pays<T>(g))) conv_forward_slab<T>(g, xp, wp, bp, yp);
    else conv_forward<T>(g, xp, wp, bp, yp);
  }
  return y;
}

template <typename T>
py::tuple backward(py::array x, py::array w, py::array dy, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh, ssize dw,
                   ssize groups, bool need_dx, bool need_dw, int algo) {
  tinyml::check_array<T>(dy, "conv2d grad_output");
  if (dy.ndim() != 4) throw py::value_error("conv2d: grad_output must be 4-D, got " + tinyml::shape_str(dy));
  ConvGeo g = check_conv<T>(x, w, sh, sw, pt, pl, dh, dw, groups, dy.shape(2), dy.shape(3));
  if (dy.shape(0) != g.n || dy.shape(1) != g.o)
    throw py::value_error("conv2d: grad_output has shape " + tinyml::shape_str(dy) + " for input " +
                          tinyml::shape_str(x) + " and weight " + tinyml::shape_str(w));
  py::object dx = py::none(), dwt = py::none();
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = static_cast<const T*>(w.data());
  const T* gp = static_cast<const T*>(dy.data());
  T *dxp = nullptr, *dwp = nullptr;
  if (need_dx) {
    py::array_t<T> a({g.n, g.c, g.h, g.w});
    dxp = a.mutable_data();
    dx = a;
  }
  if (need_dw) {
    py::array_t<T> a({g.o, g.cg(), g.kh, g.kw});
    dwp = a.mutable_data();
    dwt = a;
  }
  const int mdx = need_dx ? winograd_tile(g, g.o, g.c, algo) : 0;  // may throw: before the GIL goes
  {
    py::gil_scoped_release release;
    if (dxp) {
      int m = mdx;
      bool slab = algo == 3 ? g.dh == 1 && g.dw == 1 : algo == 0 && slab_backward_pays<T>(g);
      // inf/NaN weights: Winograd's transforms and the slab path's zero padding of dy (inf * 0) would
      // spread them past the taps direct summation (col2im, which drops padding taps) reaches
      if (algo == 0 && (m || slab) && !all_finite(wp, g.o * g.K())) m = 0, slab = false;
      if (m) winograd_backward_input<T>(m, g, wp, gp, dxp);
      else if (slab) conv_backward_input_slab<T>(g, wp, gp, dxp);
      else conv_backward_input<T>(g, wp, gp, dxp);
    }
    if (dwp) conv_backward_weight<T>(g, xp, gp, dwp);
  }
  return py::make_tuple(dx, dwt);
}

bool is64(const py::array& a) { return tinyml::has_dtype<double>(a); }

}  // namespace

void init_conv(py::module_& m) {
  m.def("conv2d_forward", [](py::array x, py::array w, py::object b, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh,
                             ssize dw, ssize groups, ssize oh, ssize ow, int algo) {
    return is64(x) ? forward<double>(x, w, b, sh, sw, pt, pl, dh, dw, groups, oh, ow, algo)
                   : forward<float>(x, w, b, sh, sw, pt, pl, dh, dw, groups, oh, ow, algo);
  }, "y = conv2d(x, w) + b (implicit GEMM, or Winograd for 3x3 stride 1); pads are top/left, oh/ow fix the "
     "bottom/right; algo: 0 chooses, 1 GEMM over im2col blocks, 3 GEMM read from input slabs (conv_slab.h), "
     "2/4 Winograd F(2,3)/F(4,3)",
     py::arg("x"), py::arg("w"), py::arg("b"), py::arg("sh"), py::arg("sw"), py::arg("pt"), py::arg("pl"),
     py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("oh"), py::arg("ow"), py::arg("algo") = 0);
  m.def("conv2d_backward", [](py::array x, py::array w, py::array dy, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh,
                              ssize dw, ssize groups, bool need_dx, bool need_dw, int algo) {
    return is64(x) ? backward<double>(x, w, dy, sh, sw, pt, pl, dh, dw, groups, need_dx, need_dw, algo)
                   : backward<float>(x, w, dy, sh, sw, pt, pl, dh, dw, groups, need_dx, need_dw, algo);
  }, "(dx, dw) of conv2d (None where not asked for); algo as for conv2d_forward (it picks dx's path)",
     py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("sh"), py::arg("sw"), py::arg("pt"), py::arg("pl"),
     py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("need_dx"), py::arg("need_dw"), py::arg("algo") = 0);
  m.def("conv2d_wide_kernels", [](int mode) {
    if (mode < -1 || mode > 1) throw py::value_error("conv2d_wide_kernels: mode must be -1, 0 or 1, got " +
                                                     std::to_string(mode));
    wide_kernels_override().store(mode);
    return wide_kernels();
  }, "two-tile GEMM micro-kernels: -1 where the CPU has AVX-512 (x86-64-v4, the default), 0 never, 1 always; "
     "returns whether they are now used (same results either way: tests compare the paths)",
     py::arg("mode") = -1);
}
