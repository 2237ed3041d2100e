// Vectorizable math for the fused kernels: exp / erfc / sigmoid written as plain arithmetic (no
// libm calls), so GCC turns loops over them into SIMD code; a target_clones macro so each hot loop
// is compiled for AVX-512, AVX2+FMA and baseline x86-64 and picked at load time (wheels stay
// portable, -march=native is not needed to beat PyTorch's runtime-dispatched kernels); and the
// OpenMP helpers the kernel files share.
//
// Include this header FIRST in a kernel file: its `#pragma GCC optimize("fp-contract=fast")` lets
// GCC fuse a*b+c into FMA instructions (-std=c++17 turns contraction off by default); results then
// differ from the numpy reference by rounding only, as PyTorch's FMA kernels do.
#pragma once
#pragma GCC optimize("fp-contract=fast")

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "omp_threads.h"  // tinyml::max_threads, thread_id

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__x86_64__) && defined(__linux__) && !defined(TINYML_NO_CLONES)
#define TINYML_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TINYML_CLONES
#endif

namespace tinyml {

// exp(x) in float, Cephes expf: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, and
// 2^n built in the exponent bits. Max relative error ~2 ulp. Outside the finite range the result
// saturates: exp(-inf) gives ~1e-38 (not 0) and exp(+inf) ~2.4e38, which callers only ever divide
// by or multiply into values that make the result 0 or saturate, as the exact function would.
// NaN stays NaN: the polynomial runs on x as given and the saturation is selected after it, by
// comparisons that are false for NaN (a clamp of x first would turn NaN into a number). n is read
// back from the rounding sum's bits, so no float -> int conversion sees a NaN or a huge value
// (undefined in C++); whatever garbage those give outside the range is replaced by the selects.
// fexp's arithmetic without its range selects (csrc/exp_nonpos.h and activation.cpp build on it).
static inline float fexp_core(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer without a libm call
  float t = x * 1.44269504088896341f + magic;
  float n = t - magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // in range, t's low mantissa bits hold n (two's complement, |n| <= 127): 2^n is (n + 127) << 23
  uint32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  uint32_t e = (tb - 0x4B400000u + 127u) << 23;
  float s;
  std::memcpy(&s, &e, sizeof s);
  return p * s;
}

static inline float fexp(float x) {
  float y = fexp_core(x);
  // the values at the ends of the range, bit for bit what clamping x there used to give
  y = x > 88.3762626647949f ? 0x1.6a0948p+127f : y;
  y = x < -87.33654475f ? 0x1.ffff98p-127f : y;
  return y;
}

// exp(x) with a true 0 for x = -inf / very negative (softmax probabilities of masked entries).
static inline float fexp0(float x) { return x < -87.0f ? 0.0f : fexp(x); }

// exp(x) with IEEE ends, as libm's: +inf above log(FLT_MAX) = 88.7228... and 0 below the normal range,
// where fexp saturates at ~2.4e38 and ~1e-38. The activations' sigmoid denominators 1 + exp(-x) need
// the true inf (silu(-inf) = -inf / inf = NaN, as in PyTorch) and the selective scan's exp(dt A) the
// true 0. Both comparisons are false for NaN: it stays NaN.
static inline float fexp_ieee(float x) {
  const float y = x > 88.72283935546875f ? std::numeric_limits<float>::infinity() : fexp(x);
  return x < -87.33654475f ? 0.0f : y;
}

// erfc(x) in float: Numerical Recipes' Chebyshev fit, erfc(|x|) = t exp(-x^2 + P(t)),
// t = 1 / (1 + |x|/2), fractional error < 1.2e-7 everywhere, so gelu's tails stay accurate.
static inline float ferfc(float x) {
  float z = x < 0 ? -x : x;
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float r = t * fexp(-z * z + p);
  return x < 0 ? 2.0f - r : r;
}

// Type-generic front ends: float uses the vectorizable versions above, double the libm ones
// (correctly rounded enough to be the float64 oracle's match).
template <typename T> inline T vexp(T x);
template <> inline float vexp<float>(float x) { return fexp(x); }
template <> inline double vexp<double>(double x) { return std::exp(x); }
template <typename T> inline T vexp0(T x);
template <> inline float vexp0<float>(float x) { return fexp0(x); }
template <> inline double vexp0<double>(double x) { return std::exp(x); }
template <typename T> inline T vexp_ieee(T x);
template <> inline float vexp_ieee<float>(float x) { return fexp_ieee(x); }
template <> inline double vexp_ieee<double>(double x) { return std::exp(x); }
template <typename T> inline T verfc(T x);
template <> inline float verfc<float>(float x) { return ferfc(x); }
template <> inline double verfc<double>(double x) { return std::erfc(x); }

// In-place IEEE sqrt of n values with SSE sqrtps/sqrtpd. setup.py passes -fno-math-errno, but a
// user kernel built by tinyml.utils.cpp_extension may include this header without it; there a plain
// std::sqrt loop keeps a libm call for negative arguments (for errno) and stays scalar.
inline void sqrt_inplace(float* v, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(v + i, _mm_sqrt_ps(_mm_loadu_ps(v + i)));
#endif
  for (; i < n; ++i) v[i] = std::sqrt(v[i]);
}
inline void sqrt_inplace(double* v, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 2 <= n; i += 2) _mm_storeu_pd(v + i, _mm_sqrt_pd(_mm_loadu_pd(v + i)));
#endif
  for (; i < n; ++i) v[i] = std::sqrt(v[i]);
}

// Accumulator type for long reductions across rows (dweight, dbias): double for float inputs.
template <typename T> struct acc_type { using type = double; };

// Elements of the L1 row buffer a kernel fills before handing it to stream_store.h's streaming
// stores (norm.cpp: layer_norm / rms_norm rows up to this length).
constexpr int64_t kStreamBlock = 2048;

// Split [0, n) into one contiguous range per thread, each a multiple of `align` elements (so
// threads never share a cache line of the output), and call body(begin, end) in parallel.
// Small n runs on the calling thread: a parallel region costs a few microseconds.
template <typename F>
inline void parallel_ranges(int64_t n, int64_t min_parallel, F body, int64_t align = 16) {
  int nt = max_threads();
  if (n < min_parallel || nt <= 1) {
    if (n > 0) body(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    int t = omp_get_thread_num(), k = omp_get_num_threads();
#else
    int t = 0, k = 1;
#endif
    int64_t per = (n + k - 1) / k;
    per = (per + align - 1) / align * align;
    int64_t b = per * t, e = b + per < n ? b + per : n;
    if (b < e) body(b, e);
  }
}

}  // namespace tinyml
