// Memory and synchronisation for csrc/rnn.cpp: 64-byte aligned buffers (the forward's outputs handed to
// numpy, and scratch; gradients are numpy's own arrays, which a leaf takes without a copy), and the
// work-conserving phases that the time loops' threads share (Phases, below).
//
// Buffers come from malloc: tinyml raises glibc's mmap and trim thresholds on its first cpu kernel
// (tinyml/_host_malloc.py), so a block freed at the end of one training step serves the next one
// instead of being unmapped and faulted in again page by page (about 1500 pages per LSTM layer's
// forward + backward at B16 T64 H128 before that change, 40% of the step on the 2-core VM).
#pragma once
#include "common.h"

#include <atomic>
#include <climits>
#include <cstdlib>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
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

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// Work-conserving phases for the threads of one parallel region (the time loops of csrc/rnn_loops.h).
// A loop is a sequence of phases (packing, one per time step, the weight gradients); phase p is
// counts[p] independent chunks (e.g. 16 hidden units of one step), and every chunk of phase p is
// done before any chunk of phase p + 1 starts. Of each phase, thread t of nt owns a contiguous range
// of chunks (by default [n t / nt, n (t + 1) / nt)) and takes them from the front, so in a balanced
// run every thread does the same chunks at every step (their weights stay in its cache); a thread
// whose own chunks are taken takes the others' from the back. No thread waits for another to arrive, only for chunks in
// progress: on a machine shared with other jobs, a descheduled thread delays a phase by the chunk
// it holds at most, its other chunks go to the threads that run, and a team smaller than nt still
// finishes. (With a barrier per step, one descheduled thread stopped the whole team: on the 2-core
// VM under load, 2 threads took longer than 1.) A thread with nothing left to take spins on the
// phase number for kSpins pauses (~50 us: longer than a balanced step's wait, so that it does not
// sleep between steps and wake late for the next), then sleeps on it (a futex), so that a thread
// sharing its core gets the core. The last chunk's finisher opens the next phase (sets its claims,
// wakes sleepers). (OpenMP's own barrier is no substitute: with OMP_WAIT_POLICY=passive, tinyml's
// default, every wait sleeps on a futex, and a wake-up costs about a step's GEMM slice at B16 H128.)
class Phases {
 public:
  // start(q, o): where owner o's range of phase q begins (start(q, 0) = 0, start(q, nt) = counts[q]), or
  // -1 for the even split counts[q] o / nt (also without a start function).
  using Start = std::function<int64_t(int64_t, int)>;

  // counts[p]: phase p's chunks, each < 2^16; nt: the owners the chunks are split between.
  Phases(int nt, std::vector<int64_t> counts, Start start = nullptr)
      : nt_(std::max(1, nt)), counts_(std::move(counts)), start_(std::move(start)), claims_(nt_) {
    if (counts_.size() >= size_t(INT_MAX))
      throw std::length_error("rnn: " + std::to_string(counts_.size()) + " phases (time steps) is too many");
    for (int64_t c : counts_)
      if (c < 0 || c > 0xffff) throw std::length_error("rnn: a phase of " + std::to_string(c) + " chunks");
    open(0);
  }

  // Called by every thread of the region (tid: its OpenMP thread number), phase after phase until the
  // last: work(p, c) for each chunk c of phase p this thread takes, then finish(p, c0, c1) once per run
  // [c0, c1) of them: all of its own chunks the thread took one after another (they are consecutive),
  // or one chunk of another thread's. So a part of each chunk that is cheaper over many chunks at once
  // (the pointwise step over a block of hidden units: rows of a few cache lines wait on memory) runs
  // once over a thread's whole share in a balanced step, and chunk by chunk only where chunks moved.
  template <class Work, class Finish>
  void run(int tid, Work&& work, Finish&& finish) {
    int32_t p = phase_.load(std::memory_order_acquire);
    while (p < int32_t(counts_.size())) {
      int64_t c0, c;
      if (tid < nt_ && claim(tid, p, true, &c0)) {
        int64_t c1 = c0 + 1;
        work(int64_t(p), c0);
        for (; claim(tid, p, true, &c); c1 = c + 1) work(int64_t(p), c);  // (the owner's claims are consecutive)
        finish(int64_t(p), c0, c1);
        complete(p, c1 - c0);
      }
      for (int k = 1; k < nt_; ++k)
        while (claim((tid + k) % nt_, p, false, &c)) {
          work(int64_t(p), c);
          finish(int64_t(p), c, c + 1);
          complete(p, 1);
        }
      p = wait_past(p);
    }
  }

 private:
  struct alignas(64) Claim {
    std::atomic<uint64_t> word{0};  // phase << 32 | lo << 16 | hi: chunks [lo, hi) not yet taken
  };

  int64_t start(int32_t q, int o) const {
    const int64_t s = start_ ? start_(q, o) : -1;
    return s >= 0 ? s : counts_[q] * o / nt_;
  }

  // k more chunks of phase p are done; the last of them opens the next phase.
  void complete(int32_t p, int64_t k) {
    if (done_.fetch_add(k, std::memory_order_acq_rel) + k == counts_[p]) open(p + 1);
  }

  // One chunk of owner o's range in phase p: its first (the owner) or its last (another thread).
  bool claim(int o, int32_t p, bool front, int64_t* c) {
    std::atomic<uint64_t>& w = claims_[o].word;
    uint64_t v = w.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t lo = (v >> 16) & 0xffff, hi = v & 0xffff;
      if (uint32_t(v >> 32) != uint32_t(p) || lo >= hi) return false;
      const uint64_t next = front ? v + (uint64_t(1) << 16) : v - 1;
      if (w.compare_exchange_weak(v, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
        *c = int64_t(front ? lo : hi - 1);
        return true;
      }
    }
  }

  // Makes phase q (or the first non-empty one after it) current; every chunk before it is done.
  void open(int32_t q) {
    const int32_t n = int32_t(counts_.size());
    while (q < n && counts_[q] == 0) ++q;
    if (q < n) {
      for (int o = 0; o < nt_; ++o) {
        const uint64_t lo = uint64_t(start(q, o)), hi = uint64_t(start(q, o + 1));
        claims_[o].word.store(uint64_t(uint32_t(q)) << 32 | lo << 16 | hi, std::memory_order_relaxed);
      }
      done_.store(0, std::memory_order_relaxed);
    }
    phase_.store(q, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_all();
  }

  int32_t wait_past(int32_t p) {
    for (int i = 0; i < kSpins; ++i) {
      const int32_t q = phase_.load(std::memory_order_acquire);
      if (q != p) return q;
      cpu_relax();
    }
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    while (phase_.load(std::memory_order_seq_cst) == p) sleep_while(p);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return phase_.load(std::memory_order_acquire);
  }

#if defined(__linux__)
  // The futex re-checks phase_ == p in the kernel, so a wake between our load and the sleep is not lost.
  void sleep_while(int32_t p) {
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&phase_), FUTEX_WAIT_PRIVATE, p, nullptr, nullptr, 0);
  }
  void wake_all() {
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&phase_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  }
#else
  void sleep_while(int32_t) { std::this_thread::yield(); }
  void wake_all() {}
#endif

  static_assert(sizeof(std::atomic<int32_t>) == sizeof(int32_t) && std::atomic<int32_t>::is_always_lock_free,
                "the futex word is the atomic's own int");
  static constexpr int kSpins = 2000;  // ~50 us of pause instructions on Zen 4 (25 ns each, measured)
  const int nt_;
  const std::vector<int64_t> counts_;
  const Start start_;
  std::vector<Claim> claims_;
  alignas(64) std::atomic<int32_t> phase_{0};
  alignas(64) std::atomic<int64_t> done_{0};
  alignas(64) std::atomic<int32_t> sleepers_{0};
};

}  // namespace rnn_detail
