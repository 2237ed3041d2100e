// conv2d forward and backward as implicit GEMMs: im2col straight into packed GEMM panels, a
// register-blocked micro-kernel, one OpenMP team for the whole convolution.
//
//   forward  y[n, g](Og x L)  = W[g](Og x K) @ cols[n, g](K x L)          K = C/G * kh * kw, L = oh * ow
//   dx       dcols(K x L)     = W[g]^T @ dy[n, g],  then col2im (scatter-add into dx[n])
//   dW[g]   += dy[n, g] @ cols[n, g]^T                                     (per-thread sums, reduced)
//
// Why not numpy's BLAS for the GEMMs: with two BLAS threads beside OpenMP threads (and other
// processes) on a small machine, OpenBLAS's thread handoff collapsed to ~4 GFLOP/s on the
// 64 x 576 x 3136 products of a ResNet layer, while one thread alone ran 74 GFLOP/s. Here every
// task is single-threaded and independent (a sample-group and a block of NB output columns), so
// the team never waits on another library's threads.
//
// The micro-kernel (conv_gemm.h): C[8 x NR] += A[8 x kc] B[kc x NR], NR one 64-byte vector.
// 3x3 stride-1 convolutions with enough channels run as Winograd F(2x2, 3x3) (conv_winograd.h),
// forward and input gradient; `algo` in the bindings picks a path explicitly (tests).
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "conv_winograd.h"

namespace {

using namespace tinyml_conv;
constexpr ssize NB = 128;  // output columns per task (a B block: K x NB, L2-resident)

struct ConvGeo {
  ssize n, c, h, w, o, groups, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow;
  ssize cg() const { return c / groups; }
  ssize og() const { return o / groups; }
  ssize K() const { return cg() * kh * kw; }
  ssize L() const { return oh * ow; }
};

// Output position of column j: the input row/col where the kernel's (0, 0) tap lands.
inline void col_bases(const ConvGeo& g, ssize j0, ssize nb, ssize* hb, ssize* wb) {
  for (ssize jj = 0; jj < nb; ++jj) {
    const ssize j = j0 + jj;
    hb[jj] = (j / g.ow) * g.sh - g.pt;
    wb[jj] = (j % g.ow) * g.sw - g.pl;
  }
}

// The im2col values of channel group `grp` of sample n, columns [j0, j0 + nb): value(k, jj).
template <typename T, typename F>
inline void for_cols(const ConvGeo& g, const T* x, ssize n, ssize grp, ssize nb, const ssize* hb, const ssize* wb,
                     F store) {
  const ssize K = g.K();
  for (ssize k = 0; k < K; ++k) {
    const ssize c = k / (g.kh * g.kw), p = (k / g.kw) % g.kh, q = k % g.kw;
    const T* xc = x + ((n * g.c) + grp * g.cg() + c) * g.h * g.w;
    for (ssize jj = 0; jj < nb; ++jj) {
      const ssize hi = hb[jj] + p * g.dh, wi = wb[jj] + q * g.dw;
      const bool in = static_cast<size_t>(hi) < static_cast<size_t>(g.h) &&
                      static_cast<size_t>(wi) < static_cast<size_t>(g.w);
      store(k, jj, in ? xc[hi * g.w + wi] : T(0));
    }
  }
}

template <typename T>
void conv_forward(const ConvGeo& g, const T* x, const T* w, const T* bias, T* y) {
  constexpr int NR = Vec<T>::NR;
  const ssize K = g.K(), L = g.L(), Og = g.og(), jblocks = (L + NB - 1) / NB;
  std::vector<std::vector<T>> Ap(g.groups);
  for (ssize grp = 0; grp < g.groups; ++grp) Ap[grp] = pack_a(w + grp * Og * K, Og, K, K, false);
  const ssize tasks = g.n * g.groups * jblocks;
#pragma omp parallel
  {
    std::vector<T> Bp(((NB + NR - 1) / NR) * K * NR);
    std::vector<ssize> hb(NB), wb(NB);
#pragma omp for schedule(dynamic, 4)
    for (ssize task = 0; task < tasks; ++task) {
      const ssize jb = task % jblocks, grp = (task / jblocks) % g.groups, n = task / (jblocks * g.groups);
      const ssize j0 = jb * NB, nb = std::min(NB, L - j0), ntiles = (nb + NR - 1) / NR;
      col_bases(g, j0, nb, hb.data(), wb.data());
      T* B = Bp.data();
      std::fill(B, B + ntiles * K * NR, T(0));
      for_cols<T>(g, x, n, grp, nb, hb.data(), wb.data(),
                  [&](ssize k, ssize jj, T v) { B[((jj / NR) * K + k) * NR + jj % NR] = v; });
      T* yb = y + (n * g.o + grp * Og) * L + j0;
      for (ssize t = 0; t < ntiles; ++t)
        for (ssize mt = 0; mt * MR < Og; ++mt)
          micro<T>(K, Ap[grp].data() + mt * K * MR, B + t * K * NR, yb + mt * MR * L + t * NR, L,
                   static_cast<int>(std::min<ssize>(MR, Og - mt * MR)), static_cast<int>(std::min<ssize>(NR, nb - t * NR)),
                   false);
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
#pragma omp parallel
  {
    std::vector<T> Bp(((NB + NR - 1) / NR) * Og * NR), dcols(K * NB);
    std::vector<ssize> hb(NB), wb(NB);
#pragma omp for schedule(dynamic, 1)
    for (ssize task = 0; task < tasks; ++task) {  // one sample-group: its dx channels are this task's alone
      const ssize grp = task % g.groups, n = task / g.groups;
      T* dxc = dx + (n * g.c + grp * g.cg()) * g.h * g.w;
      std::fill(dxc, dxc + g.cg() * g.h * g.w, T(0));
      for (ssize jb = 0; jb < jblocks; ++jb) {
        const ssize j0 = jb * NB, nb = std::min(NB, L - j0), ntiles = (nb + NR - 1) / NR;
        T* B = Bp.data();
        const T* dyb = dy + (n * g.o + grp * Og) * L + j0;
        for (ssize t = 0; t < ntiles; ++t)
          for (ssize o = 0; o < Og; ++o) {
            T* dst = B + (t * Og + o) * NR;
            const ssize cnt = std::min<ssize>(NR, nb - t * NR);
            for (ssize jj = 0; jj < cnt; ++jj) dst[jj] = dyb[o * L + t * NR + jj];
            for (ssize jj = cnt; jj < NR; ++jj) dst[jj] = 0;
          }
        for (ssize t = 0; t < ntiles; ++t)
          for (ssize mt = 0; mt * MR < K; ++mt)
            micro<T>(Og, Ap[grp].data() + mt * Og * MR, B + t * Og * NR, dcols.data() + mt * MR * NB + t * NR, NB,
                     static_cast<int>(std::min<ssize>(MR, K - mt * MR)),
                     static_cast<int>(std::min<ssize>(NR, nb - t * NR)), false);
        col_bases(g, j0, nb, hb.data(), wb.data());
        for (ssize k = 0; k < K; ++k) {  // col2im of this block
          const ssize c = k / (g.kh * g.kw), p = (k / g.kw) % g.kh, q = k % g.kw;
          T* xc = dxc + c * g.h * g.w;
          const T* src = dcols.data() + k * NB;
          for (ssize jj = 0; jj < nb; ++jj) {
            const ssize hi = hb[jj] + p * g.dh, wi = wb[jj] + q * g.dw;
            if (static_cast<size_t>(hi) < static_cast<size_t>(g.h) && static_cast<size_t>(wi) < static_cast<size_t>(g.w))
              xc[hi * g.w + wi] += src[jj];
          }
        }
      }
    }
  }
}

template <typename T>
void conv_backward_weight(const ConvGeo& g, const T* x, const T* dy, T* dw) {
  constexpr int NR = Vec<T>::NR;
  const ssize K = g.K(), L = g.L(), Og = g.og(), jblocks = (L + NB - 1) / NB, ktiles = (K + NR - 1) / NR;
  const ssize tasks = g.n * g.groups * jblocks, wsize = g.o * K;
  const int nt = tinyml::max_threads();
  std::vector<std::vector<T>> acc(nt);
#pragma omp parallel num_threads(nt)
  {
    std::vector<T>& mine = acc[tinyml::thread_id()];
    mine.assign(wsize, T(0));
    std::vector<T> Ap(((Og + MR - 1) / MR) * NB * MR), Bp(ktiles * NB * NR);
    std::vector<ssize> hb(NB), wb(NB);
#pragma omp for schedule(static)  // static: each thread sums the same tasks every run (deterministic dW)
    for (ssize task = 0; task < tasks; ++task) {
      const ssize jb = task % jblocks, grp = (task / jblocks) % g.groups, n = task / (jblocks * g.groups);
      const ssize j0 = jb * NB, nb = std::min(NB, L - j0);
      // A = dy[n, grp][:, j0:j0+nb] as MR-row panels (nb x MR)
      const T* dyb = dy + (n * g.o + grp * Og) * L + j0;
      std::fill(Ap.begin(), Ap.end(), T(0));
      for (ssize mt = 0; mt * MR < Og; ++mt)
        for (int r = 0; r < MR && mt * MR + r < Og; ++r) {
          const T* src = dyb + (mt * MR + r) * L;
          T* dst = Ap.data() + mt * nb * MR + r;
          for (ssize jj = 0; jj < nb; ++jj) dst[jj * MR] = src[jj];
        }
      // B = cols^T block (nb x K) as NR-column panels: Bp[tk][jj][kk] = cols[tk*NR + kk][j0 + jj]
      col_bases(g, j0, nb, hb.data(), wb.data());
      T* B = Bp.data();
      std::fill(B, B + ktiles * nb * NR, T(0));
      for_cols<T>(g, x, n, grp, nb, hb.data(), wb.data(),
                  [&](ssize k, ssize jj, T v) { B[((k / NR) * nb + jj) * NR + k % NR] = v; });
      T* C = mine.data() + grp * Og * K;
      for (ssize tk = 0; tk < ktiles; ++tk)
        for (ssize mt = 0; mt * MR < Og; ++mt)
          micro<T>(nb, Ap.data() + mt * nb * MR, B + tk * nb * NR, C + mt * MR * K + tk * NR, K,
                   static_cast<int>(std::min<ssize>(MR, Og - mt * MR)), static_cast<int>(std::min<ssize>(NR, K - tk * NR)),
                   true);
    }
#pragma omp for schedule(static)
    for (ssize i = 0; i < wsize; ++i) {
      T s = 0;
      for (int t = 0; t < nt; ++t) s += acc[t].empty() ? T(0) : acc[t][i];
      dw[i] = s;
    }
  }
}

// ---- Winograd dispatch ------------------------------------------------------------------------------

// algo: 0 chooses, 1 forces the implicit GEMM, 2 / 4 force Winograd F(2x2, 3x3) / F(4x4, 3x3).
// `cin`/`cout` are the channel counts of the convolution actually run (swapped for the input gradient).
int winograd_tile(const ConvGeo& g, ssize cin, ssize cout, int algo) {
  const bool fits = g.groups == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 &&
                    g.pt >= 0 && g.pt <= 2 && g.pl >= 0 && g.pl <= 2;
  if (algo == 2 || algo == 4) {
    if (!fits)
      throw py::value_error("conv2d: algo=" + std::to_string(algo) +
                            " (Winograd) needs a 3x3 kernel, stride 1, dilation 1, groups 1 and top/left pads in "
                            "0..2; got kernel " + std::to_string(g.kh) + "x" + std::to_string(g.kw) + ", groups " +
                            std::to_string(g.groups) + ", pads (" + std::to_string(g.pt) + ", " +
                            std::to_string(g.pl) + ")");
    return algo;
  }
  if (algo != 0 && algo != 1) throw py::value_error("conv2d: algo must be 0, 1, 2 or 4, got " + std::to_string(algo));
  // Winograd pays once the GEMMs dominate its transforms: enough channels on both sides. F(2x2, 3x3)
  // by default: it rounds like direct summation; F(4x4, 3x3) (algo=4) is ~1.3x faster again but
  // about 10x less exact in float32 (tests/ops/test_conv_winograd.py measures both).
  return algo == 0 && fits && cin >= 16 && cout >= 16 ? 2 : 0;
}

template <typename T>
bool all_finite(const T* a, ssize n) {
  for (ssize i = 0; i < n; ++i)
    if (!std::isfinite(a[i])) return false;
  return true;
}

template <typename T>
void run_winograd(int m, const T* x, const T* w, const T* bias, T* y, ssize N, ssize C, ssize h, ssize wd, ssize O,
                  ssize pt, ssize pl, ssize oh, ssize ow) {
  if (m == 2) winograd_conv<T, 2>(x, w, bias, y, N, C, h, wd, O, pt, pl, oh, ow);
  else winograd_conv<T, 4>(x, w, bias, y, N, C, h, wd, O, pt, pl, oh, ow);
}

// dx = full correlation of dy (N, O, oh, ow) with w^T flipped: wf[c, o, p, q] = w[o, c, 2 - p, 2 - q]
template <typename T>
void winograd_backward_input(int m, const ConvGeo& g, const T* w, const T* dy, T* dx) {
  std::vector<T> wf(g.c * g.o * 9);
  for (ssize o = 0; o < g.o; ++o)
    for (ssize c = 0; c < g.c; ++c)
      for (int p = 0; p < 9; ++p) wf[(c * g.o + o) * 9 + p] = w[(o * g.c + c) * 9 + 8 - p];
  run_winograd<T>(m, dy, wf.data(), nullptr, dx, g.n, g.o, g.oh, g.ow, g.c, 2 - g.pt, 2 - g.pl, g.h, g.w);
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
      if (m && algo == 0 && !all_finite(wp, g.o * g.K())) m = 0;
      if (m) winograd_backward_input<T>(m, g, wp, gp, dxp);
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
     "bottom/right; algo: 0 chooses, 1 GEMM, 2/4 Winograd F(2,3)/F(4,3)",
     py::arg("x"), py::arg("w"), py::arg("b"), py::arg("sh"), py::arg("sw"), py::arg("pt"), py::arg("pl"),
     py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("oh"), py::arg("ow"), py::arg("algo") = 0);
  m.def("conv2d_backward", [](py::array x, py::array w, py::array dy, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh,
                              ssize dw, ssize groups, bool need_dx, bool need_dw, int algo) {
    return is64(x) ? backward<double>(x, w, dy, sh, sw, pt, pl, dh, dw, groups, need_dx, need_dw, algo)
                   : backward<float>(x, w, dy, sh, sw, pt, pl, dh, dw, groups, need_dx, need_dw, algo);
  }, "(dx, dw) of conv2d (None where not asked for); algo as for conv2d_forward (it picks dx's path)",
     py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("sh"), py::arg("sw"), py::arg("pt"), py::arg("pl"),
     py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("need_dx"), py::arg("need_dw"), py::arg("algo") = 0);
}
