// csrc/pool_upsample.h's bilinear kernels (upsample_fwd / upsample_bwd) against a plain double
// reference, compiled by tests/ops/test_upsample_clones.py for each build a machine may run: the
// runtime-dispatched clones (AVX-512 where the CPU has it), x86-64-v3 and baseline x86-64.
//
//   y[i, j] = a_i (c_j x[h0_i, w0_j] + d_j x[h0_i, w1_j]) + b_i (c_j x[h1_i, w0_j] + d_j x[h1_i, w1_j])
//
// with a = 1 - lh, b = lh, c = 1 - lw, d = lw and PyTorch's source index (align_corners both ways);
// dx is the adjoint (a scatter of dy through the same taps), summed in double. Planes hold NaN, +inf,
// -inf and -0 in x and dy. Per case and dtype the program prints
//   case <h>x<w>-><oh>x<ow> ac=<0|1> <float|double> fwd_err E bwd_err E nan_wrong N threads_differ N
// with E the largest |kernel - reference| over the largest |reference| of the finite outputs, nan_wrong
// the outputs whose NaN / +-inf differs from the reference's, threads_differ the outputs whose bits
// differ between 1 and 2 OpenMP threads.
#include "simd_math.h"  // first: its fp-contract pragma applies to the kernels below

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "pool_upsample.h"

using tinyml_pool::ssize;

namespace {

// PyTorch's area_pixel_compute_source_index and upsample_bilinear2d's taps, the weight in T.
template <typename T>
void taps(ssize in, ssize out, bool ac, std::vector<int64_t>& i0, std::vector<int64_t>& i1, std::vector<T>& l) {
  i0.resize(out), i1.resize(out), l.resize(out);
  const double scale = ac ? (out > 1 ? double(in - 1) / double(out - 1) : 0.0) : double(in) / double(out);
  for (ssize i = 0; i < out; ++i) {
    double s = ac ? scale * double(i) : scale * (double(i) + 0.5) - 0.5;
    if (s < 0) s = 0;
    const ssize a = std::min<ssize>(static_cast<ssize>(s), in - 1);
    i0[i] = a, i1[i] = a + (a < in - 1 ? 1 : 0), l[i] = static_cast<T>(s - double(a));
  }
}

template <typename T>
void fill(std::vector<T>& v, unsigned seed) {
  for (size_t i = 0; i < v.size(); ++i) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = static_cast<T>(double(seed >> 8) / double(1u << 24) * 2.0 - 1.0);
  }
  const T special[4] = {T(NAN), T(INFINITY), -T(INFINITY), T(-0.0)};
  for (int s = 0; s < 4 && v.size() > 8; ++s) v[(v.size() / 5) * (s + 1) + s] = special[s];
}

// |a - r| / scale over the finite references; counts the outputs whose NaN / inf differs.
template <typename T>
double compare(const std::vector<T>& a, const std::vector<double>& r, long& wrong) {
  double scale = 0, err = 0;
  for (double v : r)
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < a.size(); ++i) {
    const double v = a[i];
    if (std::isnan(r[i]) != std::isnan(v) || (std::isinf(r[i]) && v != r[i])) ++wrong;
    else if (std::isfinite(r[i])) err = std::max(err, std::fabs(v - r[i]) / (scale > 0 ? scale : 1.0));
  }
  return err;
}

template <typename T>
void run(ssize planes, ssize h, ssize w, ssize oh, ssize ow, bool ac) {
  std::vector<int64_t> h0, h1, w0, w1;
  std::vector<T> lh, lw;
  taps(h, oh, ac, h0, h1, lh);
  taps(w, ow, ac, w0, w1, lw);
  const tinyml_pool::Taps<T> k{h0.data(), h1.data(), w0.data(), w1.data(), lh.data(), lw.data(), false};
  std::vector<T> x(planes * h * w), g(planes * oh * ow);
  fill(x, 7u + unsigned(h * 31 + w)), fill(g, 11u + unsigned(oh * 17 + ow));
  std::vector<double> yr(g.size(), 0.0), dr(x.size(), 0.0);
  for (ssize p = 0; p < planes; ++p)
    for (ssize i = 0; i < oh; ++i)
      for (ssize j = 0; j < ow; ++j) {
        const double b = lh[i], a = 1 - b, d = lw[j], c = 1 - d;
        const T* xp = x.data() + p * h * w;
        const double r0 = c * xp[h0[i] * w + w0[j]] + d * xp[h0[i] * w + w1[j]];
        const double r1 = c * xp[h1[i] * w + w0[j]] + d * xp[h1[i] * w + w1[j]];
        yr[(p * oh + i) * ow + j] = a * r0 + b * r1;
        const double gv = g[(p * oh + i) * ow + j];
        double* dp = dr.data() + p * h * w;
        dp[h0[i] * w + w0[j]] += a * c * gv, dp[h0[i] * w + w1[j]] += a * d * gv;
        dp[h1[i] * w + w0[j]] += b * c * gv, dp[h1[i] * w + w1[j]] += b * d * gv;
      }
  std::vector<T> y[2], dx[2];
  for (int t = 0; t < 2; ++t) {
    omp_set_num_threads(t + 1);
    y[t].assign(g.size(), T(0)), dx[t].assign(x.size(), T(0));
    tinyml_pool::upsample_fwd<T>(x.data(), y[t].data(), planes, h, w, oh, ow, k);
    tinyml_pool::upsample_bwd<T>(g.data(), dx[t].data(), planes, h, w, oh, ow, k);
  }
  long wrong = 0, differ = 0;
  const double fe = compare(y[0], yr, wrong), be = compare(dx[0], dr, wrong);
  for (int a = 0; a < 2; ++a) {
    const std::vector<T>& u = a ? dx[0] : y[0];
    const std::vector<T>& v = a ? dx[1] : y[1];
    differ += std::memcmp(u.data(), v.data(), u.size() * sizeof(T)) != 0;
  }
  std::printf("case %ldx%ld->%ldx%ld ac=%d %s fwd_err %.3g bwd_err %.3g nan_wrong %ld threads_differ %ld\n", long(h),
              long(w), long(oh), long(ow), int(ac), sizeof(T) == 4 ? "float" : "double", fe, be, wrong, differ);
}

}  // namespace

int main() {
  // 2x (the column stencil and its edges), widths around the 4-vector row blocks of 16 floats and
  // 8 doubles, odd and 1-pixel sizes, downsampling (input rows without sources), more planes than
  // one OpenMP chunk and a count that is not a multiple of it; below kPrefetchMin bytes
  const ssize cases[][4] = {{56, 56, 112, 112}, {5, 32, 10, 64}, {7, 33, 14, 66}, {3, 40, 6, 80},
                            {6, 57, 12, 114}, {4, 64, 8, 128}, {9, 65, 18, 130}, {1, 1, 2, 2},
                            {1, 1, 3, 5}, {5, 7, 10, 14}, {6, 20, 13, 63}, {4, 50, 9, 129},
                            {8, 70, 3, 31}, {12, 9, 5, 4}, {3, 4, 7, 97}, {2, 3, 4, 6}};
  for (const auto& c : cases)
    for (int ac = 0; ac < 2; ++ac) {
      run<float>(ac ? 13 : 3, c[0], c[1], c[2], c[3], ac);
      run<double>(ac ? 13 : 3, c[0], c[1], c[2], c[3], ac);
    }
  // above kPrefetchMin bytes: the prefetching paths, 81 planes (20 chunks and one plane)
  for (int ac = 0; ac < 2; ++ac) {
    run<float>(81, 56, 56, 112, 112, ac);
    run<double>(81, 56, 56, 112, 112, ac);
  }
  return 0;
}
