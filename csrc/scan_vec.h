// Sixteen float lanes as one value (GCC vector extensions) and the math the state space kernels run
// on them: exp2/exp with IEEE ends, softplus, sigmoid and silu, as straight-line arithmetic. Written
// once; every function that uses them is compiled per ISA by TINYML_CLONES (simd_math.h:
// target_clones for x86-64-v4, v3 and baseline, picked at load time through the CPU's features, no
// -march=native), so a vf16 is one AVX-512 register, two AVX2 registers or four SSE registers.
//
// exp2(x) = 2^n q(f), n = round(x), f = x - n in [-0.5, 0.5]; q is a degree-5 minimax polynomial
// for 2^f (fitted in relative error, 9.1e-8 in exact arithmetic; every coefficient doubled, exactly,
// so q = 2 * 2^f) and 2^(n-1) is built in the exponent bits. x is clamped to [-126, 128] first by
// compare-and-select (false for NaN, so NaN stays NaN): 2^(n-1) then spans the biased exponents 0
// (the number 0: exp2(-inf) = 0, and exp2(x) = 0 for x < -125.5, where the true value is below
// 1.7e-38) to 254, and q 2^(n-1) overflows to +inf exactly where 2^x exceeds FLT_MAX.
// exp(x) reduces by ln 2 in two parts (Cody-Waite) and uses Cephes expf's degree-6 polynomial.
// Measured max relative error against libm in double (tests/ops/scan_vec_check.cpp, run by
// tests/ops/test_scan_vec.py on the AVX-512, AVX2 and baseline builds; every 2999th float bit
// pattern of the range): exp2 on [-125, 127] 1.6e-7 (1.8e-7 baseline x86-64); exp on [-86, 88]
// 1.2e-7; softplus 2.4e-7 and silu 1.7e-7 on [-80, 80]. The scan's decay exp(dt A), computed as
// exp2(dt (A log2 e)) with A log2 e rounded once per block: 1.0e-6 for |dt A| <= 20 (from that
// rounding, |dt A| 2^-24 relative; 1.6e-6 on baseline x86-64, which cannot fuse dt (A log2 e) into
// the reduction); the tests' float32 tolerance is 1e-4.
#pragma once
#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte vectors never cross a call: see TINYML_VEC
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tinyml::vec {

// Every helper is inlined into its caller, so it is compiled for the caller's ISA: an out-of-line
// copy would be built for baseline x86-64 and take its vectors through memory (and another ABI).
#define TINYML_VEC inline __attribute__((always_inline))

typedef float vf16 __attribute__((vector_size(64)));  // 64-byte aligned, as every vector type
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef float vf16u __attribute__((vector_size(64), aligned(4)));  // unaligned loads and stores

constexpr int kLanes = 16;
constexpr float kLog2e = 1.44269504088896341f;

TINYML_VEC vf16 splat(float v) { return vf16{} + v; }
TINYML_VEC vf16 load(const float* p) { return *reinterpret_cast<const vf16u*>(p); }
TINYML_VEC void store(float* p, vf16 v) { *reinterpret_cast<vf16u*>(p) = v; }

// a < b ? a : b and a > b ? a : b lane by lane, false (keep a) where a is NaN
TINYML_VEC vf16 clamp_keep_nan(vf16 a, float lo, float hi) {
  a = a < lo ? splat(lo) : a;
  return a > hi ? splat(hi) : a;
}

// q 2^(n-1) for t = n + 1.5 * 2^23 (n in [-126, 128] in t's low mantissa bits, two's complement):
// 2^(n-1) has the biased exponent n + 126, from 0 (the number 0) to 254 (2^127)
TINYML_VEC vf16 scale_by_pow2(vf16 q, vf16 t) { return q * (vf16)(((vi16)t - 0x4B400000 + 126) << 23); }

// 2^x for x already in [-126, 128] (or NaN): no clamp. The selective scan proves the range for a
// whole chunk of steps at once and runs this in its inner loop.
TINYML_VEC vf16 exp2_in_range(vf16 x) {
  const vf16 magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vf16 t = x + magic;
  const vf16 f = x - (t - magic);
  vf16 q = splat(2 * 1.3264727867099216e-3f);
  q = q * f + 2 * 9.67151292475119e-3f;
  q = q * f + 2 * 5.55073374338617e-2f;
  q = q * f + 2 * 2.402224208078552e-1f;
  q = q * f + 2 * 6.931469775981468e-1f;
  q = q * f + 2.0f;
  return scale_by_pow2(q, t);
}

TINYML_VEC vf16 exp2(vf16 x) { return exp2_in_range(clamp_keep_nan(x, -126.0f, 128.0f)); }

// exp(x) = 2^n e^r, n = round(x log2 e), r = x - n ln 2 in two parts (Cody-Waite, exact products),
// e^r by Cephes expf's polynomial (doubled, as in exp2). Same ends as exp2 (x clamped to
// [-126 ln 2, 128 ln 2]).
TINYML_VEC vf16 exp(vf16 x) {
  x = clamp_keep_nan(x, -87.33654475f, 88.72283906f);
  const vf16 magic = splat(12582912.0f);
  const vf16 t = x * kLog2e + magic;
  const vf16 n = t - magic;
  const vf16 r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  vf16 p = splat(2 * 1.9875691500e-4f);
  p = p * r + 2 * 1.3981999507e-3f;
  p = p * r + 2 * 8.3334519073e-3f;
  p = p * r + 2 * 4.1665795894e-2f;
  p = p * r + 2 * 1.6666665459e-1f;
  p = p * r + 2 * 5.0000001201e-1f;
  const vf16 q = p * r * r + (r + r + 2.0f);
  return scale_by_pow2(q, t);
}

// log1p(w) for w = e^-|v| in [0, 1]: 2 atanh(s) with s = w / (2 + w) in [0, 1/3] (no cancellation
// for tiny w), atanh by its series to s^13 (relative error < 2e-8 at s = 1/3).
TINYML_VEC vf16 log1p_unit(vf16 w) {
  const vf16 s = w / (2.0f + w), s2 = s * s;
  vf16 p = splat(2.0f / 13);
  p = p * s2 + 2.0f / 11;
  p = p * s2 + 2.0f / 9;
  p = p * s2 + 2.0f / 7;
  p = p * s2 + 2.0f / 5;
  p = p * s2 + 2.0f / 3;
  p = p * s2 + 2.0f;
  return p * s;
}

// softplus(v) = max(v, 0) + log1p(e^-|v|). Equals v in float for v > ~17, like PyTorch's;
// softplus(-inf) = 0, softplus(NaN) = NaN.
TINYML_VEC vf16 softplus(vf16 v) {
  const vf16 a = v < 0 ? -v : v;
  return (v < 0 ? splat(0.0f) : v) + log1p_unit(exp(-a));
}

TINYML_VEC vf16 sigmoid(vf16 v) { return 1.0f / (1.0f + exp(-v)); }

// softplus(v), and its derivative sigmoid(v) into sig, from one w = e^-|v|: sigmoid(v) = 1 / (1 + w)
// for v >= 0 and w / (1 + w) below (1 at +inf, 0 at -inf; NaN stays NaN).
TINYML_VEC vf16 softplus_and_sigmoid(vf16 v, vf16& sig) {
  const vf16 a = v < 0 ? -v : v;
  const vf16 w = exp(-a), r = 1.0f / (1.0f + w);
  sig = v < 0 ? w * r : r;
  return (v < 0 ? splat(0.0f) : v) + log1p_unit(w);
}

// PyTorch's silu, v / (1 + e^-v): NaN at v = -inf (-inf / inf)
TINYML_VEC vf16 silu(vf16 v) { return v / (1.0f + exp(-v)); }

// The two-input shuffles of a butterfly stage K (8, 4, 2 or 1) on a pair (a, b): lo takes a's lanes
// where bit K of the lane index is clear and b's lanes m - K where it is set; hi takes a's lanes
// m + K where it is clear and b's lanes where it is set (vpermt2ps on AVX-512).
template <int K>
TINYML_VEC void butterfly(vf16 a, vf16 b, vf16& lo_out, vf16& hi_out) {
  constexpr vi16 lo = {0 & K ? 16 + 0 - K : 0,   1 & K ? 16 + 1 - K : 1,   2 & K ? 16 + 2 - K : 2,
                       3 & K ? 16 + 3 - K : 3,   4 & K ? 16 + 4 - K : 4,   5 & K ? 16 + 5 - K : 5,
                       6 & K ? 16 + 6 - K : 6,   7 & K ? 16 + 7 - K : 7,   8 & K ? 16 + 8 - K : 8,
                       9 & K ? 16 + 9 - K : 9,   10 & K ? 16 + 10 - K : 10, 11 & K ? 16 + 11 - K : 11,
                       12 & K ? 16 + 12 - K : 12, 13 & K ? 16 + 13 - K : 13, 14 & K ? 16 + 14 - K : 14,
                       15 & K ? 16 + 15 - K : 15};
  constexpr vi16 hi = {0 & K ? 16 + 0 : 0 + K,   1 & K ? 16 + 1 : 1 + K,   2 & K ? 16 + 2 : 2 + K,
                       3 & K ? 16 + 3 : 3 + K,   4 & K ? 16 + 4 : 4 + K,   5 & K ? 16 + 5 : 5 + K,
                       6 & K ? 16 + 6 : 6 + K,   7 & K ? 16 + 7 : 7 + K,   8 & K ? 16 + 8 : 8 + K,
                       9 & K ? 16 + 9 : 9 + K,   10 & K ? 16 + 10 : 10 + K, 11 & K ? 16 + 11 : 11 + K,
                       12 & K ? 16 + 12 : 12 + K, 13 & K ? 16 + 13 : 13 + K, 14 & K ? 16 + 14 : 14 + K,
                       15 & K ? 16 + 15 : 15 + K};
#if defined(__clang__)  // no __builtin_shuffle with a mask vector: lane by lane (correct, slower)
  for (int j = 0; j < kLanes; ++j) {
    lo_out[j] = lo[j] < kLanes ? a[lo[j]] : b[lo[j] - kLanes];
    hi_out[j] = hi[j] < kLanes ? a[hi[j]] : b[hi[j] - kLanes];
  }
#else
  lo_out = __builtin_shuffle(a, b, lo);
  hi_out = __builtin_shuffle(a, b, hi);
#endif
}

// In-register transpose of a 16 x 16 tile, r[i][j] -> r[j][i]: four butterfly stages (K = 8, 4, 2, 1)
// that swap the off-diagonal K x K blocks of every 2K x 2K block; 64 two-input shuffles instead of
// 256 scalar loads and stores.
template <int K>
TINYML_VEC void transpose16_stage(vf16* r) {
  for (int i = 0; i < kLanes; ++i) {
    if (i & K) continue;
    butterfly<K>(r[i], r[i + K], r[i], r[i + K]);
  }
}

TINYML_VEC void transpose16(vf16* r) {
  transpose16_stage<8>(r);
  transpose16_stage<4>(r);
  transpose16_stage<2>(r);
  transpose16_stage<1>(r);
}

// The lane sums of sixteen vectors, as one vector: lane j = r[j][0] + ... + r[j][15] (r is
// overwritten). The transpose's stages, but each pair becomes one vector, the sum of its two
// shuffles (lane m then holds a partial sum of r[j] where bit K of m is clear, of r[j + K] where it
// is set): 30 shuffles and 15 adds, where a transpose and adding its rows take 64 and 15.
template <int K>
TINYML_VEC void reduce16_stage(vf16* r) {
  for (int j = 0; j < K; ++j) {
    vf16 lo, hi;
    butterfly<K>(r[j], r[j + K], lo, hi);
    r[j] = lo + hi;
  }
}

TINYML_VEC vf16 reduce16(vf16* r) {
  reduce16_stage<8>(r);
  reduce16_stage<4>(r);
  reduce16_stage<2>(r);
  reduce16_stage<1>(r);
  return r[0];
}

// buf[t * 16 + v] = rows[v * l + t] for t < tc, v < nv; lanes nv.. get 0 (a block of channels'
// rows, lane-major). Tiles of 16 x 16 through registers; a tile past the rows' end is zero-padded.
TINYML_VEC void rows_to_lanes(const float* rows, std::ptrdiff_t l, std::ptrdiff_t nv, std::ptrdiff_t tc, float* buf) {
  for (std::ptrdiff_t t = 0; t < tc; t += kLanes) {
    const std::ptrdiff_t w = tc - t < kLanes ? tc - t : kLanes;
    vf16 r[kLanes];
    for (std::ptrdiff_t v = 0; v < kLanes; ++v) {
      if (v < nv && w == kLanes) {
        r[v] = load(rows + v * l + t);
      } else {
        float part[kLanes] = {};
        if (v < nv) std::memcpy(part, rows + v * l + t, w * sizeof(float));
        r[v] = load(part);
      }
    }
    transpose16(r);
    for (std::ptrdiff_t j = 0; j < w; ++j) store(buf + (t + j) * kLanes, r[j]);
  }
}

// The inverse: rows[v * l + t] = buf[t * 16 + v] for t < tc, v < nv.
TINYML_VEC void lanes_to_rows(const float* buf, std::ptrdiff_t l, std::ptrdiff_t nv, std::ptrdiff_t tc, float* rows) {
  for (std::ptrdiff_t t = 0; t < tc; t += kLanes) {
    const std::ptrdiff_t w = tc - t < kLanes ? tc - t : kLanes;
    vf16 r[kLanes];
    for (std::ptrdiff_t j = 0; j < kLanes; ++j) r[j] = j < w ? load(buf + (t + j) * kLanes) : splat(0.0f);
    transpose16(r);
    for (std::ptrdiff_t v = 0; v < nv; ++v) {
      if (w == kLanes) {
        store(rows + v * l + t, r[v]);
      } else {
        float part[kLanes];
        store(part, r[v]);
        std::memcpy(rows + v * l + t, part, w * sizeof(float));
      }
    }
  }
}

// The largest |dt| for which exp2(dt a2) stays in exp2_in_range for every one of the n state rows
// a2 (A log2 e, 16 channels each): |dt a2| <= 125. NaN if any a2 is NaN, so that no chunk takes the
// unclamped path then (every comparison with the limit is false).
TINYML_VEC float dt_limit(const vf16* a2, std::ptrdiff_t n) {
  float a2_max = 0.0f;
  for (std::ptrdiff_t i = 0; i < n; ++i)
    for (int v = 0; v < kLanes; ++v) {
      const float a = a2[i][v] < 0.0f ? -a2[i][v] : a2[i][v];
      a2_max = a > a2_max || a != a ? a : a2_max;
    }
  return 125.0f / a2_max;
}

}  // namespace tinyml::vec
