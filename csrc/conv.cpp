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
// Micro-kernel: C[8 x NR] += A[8 x kc] B[kc x NR] with NR one 64-byte vector (16 floats / 8
// doubles), A packed as kc x 8 (broadcast scalars), B as kc x NR; GCC vector extensions, compiled
// for AVX-512 / AVX2 / baseline through TINYML_CLONES.
#include "simd_math.h"

#include <cstring>
#include <vector>

#include "common.h"

namespace {

using ssize = py::ssize_t;
constexpr int MR = 8;  // 8 independent FMA chains: enough to cover the FMA latency
constexpr ssize NB = 128;  // output columns per task (a B block: K x NB, L2-resident)

template <typename T>
struct Vec {
  typedef T v __attribute__((vector_size(64)));
  static constexpr int NR = 64 / sizeof(T);
};

// C (m x nr rows/cols valid, leading dim ldc) = or += A panel (kc x MR) @ B panel (kc x NR).
template <typename T>
TINYML_CLONES void micro(ssize kc, const T* __restrict Ap, const T* __restrict Bp, T* __restrict C, ssize ldc, int m,
                         int nr, bool accumulate) {
  using V = typename Vec<T>::v;
  constexpr int NR = Vec<T>::NR;
  V c[MR] = {};
  for (ssize k = 0; k < kc; ++k) {
    V b;
    std::memcpy(&b, Bp + k * NR, sizeof b);
    const T* a = Ap + k * MR;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) c[r] += a[r] * b;
  }
  const V* cs = c;
  for (int r = 0; r < m; ++r) {
    T* row = C + r * ldc;
    if (accumulate)
      for (int j = 0; j < nr; ++j) row[j] += cs[r][j];
    else
      for (int j = 0; j < nr; ++j) row[j] = cs[r][j];
  }
}

struct ConvGeo {
  ssize n, c, h, w, o, groups, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow;
  ssize cg() const { return c / groups; }
  ssize og() const { return o / groups; }
  ssize K() const { return cg() * kh * kw; }
  ssize L() const { return oh * ow; }
};

// Rows r0.. of an (rows x cols) row-major matrix M as MR-row panels: P[t][k][r] = M[t*MR + r][k]
// (transposed = false), or of M^T: P[t][k][r] = M[k][t*MR + r] (transposed = true). Zero-padded.
template <typename T>
std::vector<T> pack_a(const T* M, ssize rows, ssize cols, ssize ld, bool transposed) {
  // (rows, cols) are those of the operand A; with transposed, A = M^T and M is (cols x rows).
  const ssize tiles = (rows + MR - 1) / MR;
  std::vector<T> P(tiles * cols * MR, T(0));
  for (ssize t = 0; t < tiles; ++t)
    for (ssize k = 0; k < cols; ++k)
      for (int r = 0; r < MR; ++r) {
        const ssize i = t * MR + r;
        if (i < rows) P[(t * cols + k) * MR + r] = transposed ? M[k * ld + i] : M[i * ld + k];
      }
  return P;
}

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
#pragma omp for schedule(dynamic, 4)
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
                  ssize groups, ssize oh, ssize ow) {
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
  py::gil_scoped_release release;
  conv_forward<T>(g, xp, wp, bp, yp);
  return y;
}

template <typename T>
py::tuple backward(py::array x, py::array w, py::array dy, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh, ssize dw,
                   ssize groups, bool need_dx, bool need_dw) {
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
  {
    py::gil_scoped_release release;
    if (dxp) conv_backward_input<T>(g, wp, gp, dxp);
    if (dwp) conv_backward_weight<T>(g, xp, gp, dwp);
  }
  return py::make_tuple(dx, dwt);
}

bool is64(const py::array& a) { return tinyml::has_dtype<double>(a); }

}  // namespace

void init_conv(py::module_& m) {
  m.def("conv2d_forward", [](py::array x, py::array w, py::object b, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh,
                             ssize dw, ssize groups, ssize oh, ssize ow) {
    return is64(x) ? forward<double>(x, w, b, sh, sw, pt, pl, dh, dw, groups, oh, ow)
                   : forward<float>(x, w, b, sh, sw, pt, pl, dh, dw, groups, oh, ow);
  }, "y = conv2d(x, w) + b (implicit GEMM); pads are top/left, oh/ow fix the bottom/right");
  m.def("conv2d_backward", [](py::array x, py::array w, py::array dy, ssize sh, ssize sw, ssize pt, ssize pl, ssize dh,
                              ssize dw, ssize groups, bool need_dx, bool need_dw) {
    return is64(x) ? backward<double>(x, w, dy, sh, sw, pt, pl, dh, dw, groups, need_dx, need_dw)
                   : backward<float>(x, w, dy, sh, sw, pt, pl, dh, dw, groups, need_dx, need_dw);
  }, "(dx, dw) of conv2d (None where not asked for)");
}
