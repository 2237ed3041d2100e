// The OpenMP team queries every kernel family uses, with the single-thread answers when tinyml is
// built without OpenMP. Two inline functions only, so that any header may include it (simd_math.h does,
// after its fp-contract pragma).
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tinyml {

// Threads a parallel region started here would get.
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// This thread's number in its team (0 outside a parallel region).
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace tinyml
