// Memory and synchronisation for csrc/rnn.cpp: 64-byte aligned buffers (the forward's outputs handed to
// numpy, and scratch; gradients are numpy's own arrays, which a leaf takes without a copy), and a spinning
// barrier for the per-step hand-offs.
//
// Buffers come from malloc: tinyml raises glibc's mmap and trim thresholds on its first cpu kernel
// (tinyml/_host_malloc.py), so a block freed at the end of one training step serves the next one
// instead of being unmapped and faulted in again page by page (about 1500 pages per LSTM layer's
// forward + backward at B16 T64 H128 before that change, 40% of the step on the 2-core VM).
//
// Why a barrier of our own: with OMP_WAIT_POLICY=passive (tinyml's default, DESIGN.md "One CPU
// thread pool") an omp barrier puts the waiting thread to sleep on a futex, and waking it costs about
// as much as a whole step's GEMM slice at B16 H128 (~10 us). Here a waiting thread spins on the
// step counter for ~50 us, then yields its core (so a loaded machine still makes progress).
#pragma once
#include "common.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace rnn_detail {

// At least `bytes` bytes, 64-byte aligned (whole cache lines: no false sharing between threads).
inline void* aligned_block(size_t bytes) {
  size_t total = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;  // aligned_alloc wants a multiple of 64
  void* p = std::aligned_alloc(64, total);
  if (!p) throw std::bad_alloc();
  return p;
}

// A C-contiguous numpy array over an aligned block (freed with the array); contents undefined.
template <typename T>
py::array_t<T> aligned_array(const std::vector<py::ssize_t>& shape) {
  size_t n = 1;
  for (py::ssize_t s : shape) n *= size_t(s);
  void* data = aligned_block(n * sizeof(T));
  py::capsule owner(data, [](void* p) { std::free(p); });
  return py::array_t<T>(shape, static_cast<T*>(data), owner);
}

// Scratch memory for one call (contents undefined), freed when it leaves scope.
template <typename T>
class Scratch {
 public:
  explicit Scratch(size_t n) : data_(static_cast<T*>(aligned_block(n * sizeof(T)))) {}
  ~Scratch() { std::free(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() const { return data_; }

 private:
  T* data_;
};

// The number of threads in the current parallel region (1 outside one, or without OpenMP).
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// A barrier for the `n` threads of one parallel region (n: the team's actual size, passed by every
// thread alike): the last thread to arrive advances the generation; the others spin on it (pause),
// then yield after kSpins rounds.
class SpinBarrier {
 public:
  void wait(int n) {
    if (n <= 1) return;
    const unsigned gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins < kSpins) cpu_relax();
      else std::this_thread::yield();
    }
  }

 private:
  static constexpr int kSpins = 2000;  // about 50 us of pause instructions on Zen 4 / recent Intel
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> generation_{0};
};

}  // namespace rnn_detail
