// When a one-pass kernel is worth a second thread, shared by the row kernels of csrc/norm.cpp and
// csrc/loss.cpp (and the parts of csrc/optim.cpp).
//
// tinyml's OpenMP threads wait passively (tinyml/backends/cpu/__init__.py): between kernels the worker
// sleeps, and a parallel region starts by waking it (a futex wake-up of a vCPU that may be halted: tens
// of microseconds on a VM) and ends at a barrier where the thread that arrives first sleeps and the
// last one wakes it. On a quiet machine that is the region's cost; on a loaded one the worker may not
// run at all for a time slice, and the region waits for it. A second thread saves half the pass, so it
// pays only when that half is larger than the hand-offs: at least kMinElementsPerThread elements each.
//
// Measured on the baby GPT step's shapes (Zen 5, one thread, best of 40 calls,
// `python bench/gpt_profile.py --split-ab`): add_layer_norm forward 48 us and backward 54 us per
// 768 x 128 call (0.5-0.55 ns per element), cross_entropy forward 60 us per 768 x 65 (1.2 ns).
// 64K elements of a norm pass are thus about 35 us of work, the order of one wake-up and one join;
// kernels that do about twice the work per element (exp and log) pass half of it.
// Splitting never changes a result here: each row is computed alone whatever thread runs it, and
// the column sums that do depend on the partition keep it (norm.cpp's backward).
#pragma once
#include <cstdint>

#include "omp_threads.h"

namespace tinyml {

constexpr int64_t kMinElementsPerThread = int64_t(1) << 16;

// Whether `elements` elements in `rows` rows go over more than one thread: at least two rows and
// min_per_thread elements for each of two threads.
inline bool worth_threads(int64_t elements, int64_t rows, int64_t min_per_thread = kMinElementsPerThread) {
  return rows > 1 && elements >= 2 * min_per_thread && max_threads() > 1;
}

}  // namespace tinyml
