// exp(x) for arguments known to be <= 0 (or NaN): simd_math.h's fexp / fexp0 without the saturation
// selects that such an argument never needs, the same bits. Include it after simd_math.h (which sets
// fp-contract, so the FMAs are the ones fexp's own code gets).
//
// fexp clamps both ends with a select each (and fexp0 adds a third for its true 0); in a vectorised
// loop those are compares, mask operations and masked moves, about a fifth of the instructions of
// gelu's and cross_entropy's exp loops. Callers whose argument is a difference to a maximum (softmax,
// cross_entropy: x - max <= 0) or minus a square (gelu's -x^2/2) only need the bottom end:
//   fexp_nonpos(x)  = fexp(x) for x <= 0: its saturated 0x1.ffff98p-127 below -87.33654475
//   fexp0_nonpos(x) = fexp0(x) for x <= 0: 0 below -87
// Between -87.34 and +88.37 the arithmetic is fexp's exactly (so a positive argument in that range still
// gets fexp's value); above +88.37, which the callers never pass, the result is not defined. At -inf
// the arithmetic gives NaN, which the bottom select replaces; a NaN argument stays NaN.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd_math.h"  // fexp_core: fexp's arithmetic without its selects

namespace tinyml {

inline float fexp_nonpos(float x) { return x < -87.33654475f ? 0x1.ffff98p-127f : fexp_core(x); }
inline float fexp0_nonpos(float x) { return x < -87.0f ? 0.0f : fexp_core(x); }

// Type-generic front ends, as simd_math.h's vexp / vexp0: double uses libm.
template <typename T> inline T vexp_nonpos(T x);
template <> inline float vexp_nonpos<float>(float x) { return fexp_nonpos(x); }
template <> inline double vexp_nonpos<double>(double x) { return std::exp(x); }

}  // namespace tinyml
