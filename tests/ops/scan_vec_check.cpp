// Accuracy of csrc/scan_vec.h's float exp2 / exp / softplus / silu against libm in double, over every
// float in a range (a stride through the bit patterns), on the ISA the loader picks (TINYML_CLONES).
// Built and run by tests/ops/test_scan_vec.py:  g++ -O2 -std=c++17 -Icsrc tests/ops/scan_vec_check.cpp
// Prints one line per function (name, range, max relative error, count of wrong special values), the
// transpose's misplaced entries and the scan decay's max relative error.
#include "simd_math.h"  // TINYML_CLONES
#include "scan_vec.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace v = tinyml::vec;

enum Fn { EXP2, EXP, SOFTPLUS, SILU };

TINYML_CLONES void apply(Fn fn, const float* x, float* y) {
  const v::vf16 a = v::load(x);
  v::vf16 r = fn == EXP2 ? v::exp2(a) : fn == EXP ? v::exp(a) : fn == SOFTPLUS ? v::softplus(a) : v::silu(a);
  v::store(y, r);
}

double truth(Fn fn, double x) {
  switch (fn) {
    case EXP2: return std::exp2(x);
    case EXP: return std::exp(x);
    case SOFTPLUS: return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    default: return x / (1 + std::exp(-x));
  }
}

// max |f(x) - truth| / |truth| over floats x in [lo, hi] (both signs of every exponent up to the
// stride); results below FLT_MIN count as absolute errors against FLT_MIN
double max_rel(Fn fn, float lo, float hi, int stride) {
  double worst = 0;
  float xs[16], ys[16];
  int k = 0;
  for (uint32_t bits = 0; bits < 0xFF800000u; bits += stride) {
    float x;
    std::memcpy(&x, &bits, 4);
    if (std::isnan(x)) continue;
    if (x >= lo && x <= hi) xs[k++] = x;
    if (-x >= lo && -x <= hi && x != 0) xs[k++] = -x;
    if (k < 15 && bits + stride < 0xFF800000u) continue;
    for (int i = k; i < 16; ++i) xs[i] = 0;
    apply(fn, xs, ys);
    for (int i = 0; i < k; ++i) {
      const double t = truth(fn, xs[i]);
      const double err = std::fabs(ys[i] - t) / std::fmax(std::fabs(t), std::numeric_limits<float>::min());
      if (!(err <= worst)) worst = err;  // NaN results count as infinite error
    }
    k = 0;
  }
  return worst;
}

int wrong_specials(Fn fn) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  float xs[16] = {inf, -inf, nan, 200.0f, -200.0f, 128.0f, -127.0f, 0.0f, 89.0f, -104.0f};
  float ys[16];
  apply(fn, xs, ys);
  int bad = 0;
  for (int i = 0; i < 10; ++i) {
    const double t = truth(fn, xs[i]);
    const float want = static_cast<float>(t);  // libm's ends: inf, 0, NaN
    const bool ok = std::isnan(want) ? std::isnan(ys[i])
                    : std::isinf(want) || want == 0 ? ys[i] == want
                                                     : std::fabs(ys[i] - t) <= 1e-5 * std::fabs(t) + 1.2e-38;
    if (!ok) {
      std::printf("special %s(%g) = %g, expected %g\n", fn == EXP2 ? "exp2" : fn == EXP ? "exp" : "other",
                  xs[i], ys[i], want);
      ++bad;
    }
  }
  return bad;
}

// The selective scan's decay as its kernel computes it: exp2(dt * (A log2 e)), A log2 e rounded once
// per block, against exp(dt A) in double; dt in [0, 2], A in [-10, 0] (|dt A| <= 20), 2^18 pairs.
TINYML_CLONES void decay(const float* dt, const float* a, float* y) {
  const v::vf16 a2 = v::load(a) * v::kLog2e;
  v::store(y, v::exp2_in_range(v::load(dt) * a2));
}

double decay_max_rel() {
  double worst = 0;
  uint32_t state = 12345;
  auto uniform = [&state]() {  // xorshift32 in [0, 1)
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;
    return static_cast<float>(state >> 8) * (1.0f / 16777216.0f);
  };
  float dt[16], a[16], y[16];
  for (int k = 0; k < (1 << 14); ++k) {
    for (int i = 0; i < 16; ++i) dt[i] = 2 * uniform(), a[i] = -10 * uniform();
    decay(dt, a, y);
    for (int i = 0; i < 16; ++i) {
      const double t = std::exp(static_cast<double>(dt[i]) * a[i]);
      worst = std::fmax(worst, std::fabs(y[i] - t) / t);
    }
  }
  return worst;
}

// vec::transpose16 on a tile of distinct values: the number of misplaced entries
TINYML_CLONES int transpose_errors() {
  v::vf16 r[16];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) r[i][j] = static_cast<float>(i * 16 + j);
  v::transpose16(r);
  int bad = 0;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) bad += r[i][j] != static_cast<float>(j * 16 + i);
  return bad;
}

// vec::reduce16 on integer-valued lanes (every partial sum exact): the number of wrong lane sums
TINYML_CLONES int reduce_errors() {
  v::vf16 r[16];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) r[i][j] = static_cast<float>((i + 1) * (j * j + 3 * j + 1));
  const v::vf16 sums = v::reduce16(r);
  int bad = 0;
  for (int i = 0; i < 16; ++i) {
    float want = 0;
    for (int j = 0; j < 16; ++j) want += static_cast<float>((i + 1) * (j * j + 3 * j + 1));
    bad += sums[i] != want;
  }
  return bad;
}

int main() {
  struct Row { const char* name; Fn fn; float lo, hi; };
  const Row rows[] = {{"exp2", EXP2, -125.0f, 127.0f}, {"exp", EXP, -86.0f, 88.0f}, {"exp", EXP, -1.0f, 1.0f},
                      {"softplus", SOFTPLUS, -80.0f, 80.0f}, {"silu", SILU, -80.0f, 80.0f}};
  for (const Row& r : rows)
    std::printf("%s [%g, %g] max_rel %.3g specials_wrong %d\n", r.name, r.lo, r.hi, max_rel(r.fn, r.lo, r.hi, 2999),
                wrong_specials(r.fn));
  std::printf("transpose16 misplaced %d\n", transpose_errors());
  std::printf("reduce16 wrong %d\n", reduce_errors());
  std::printf("decay exp2(dt (A log2 e)) |dt A| <= 20 max_rel %.3g\n", decay_max_rel());
  return 0;
}
