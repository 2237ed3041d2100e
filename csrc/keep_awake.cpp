// Keeping this machine's CPUs awake while a step runs: one lowest-priority spinning thread per CPU.
//
// tinyml's OpenMP threads wait passively (tinyml/backends/cpu/__init__.py): between two parallel
// regions the worker sleeps, and at a region's end the thread that arrives first sleeps until the other
// wakes it. A sleeping thread leaves its CPU idle, and an idle CPU of a VM halts (HLT: the vCPU leaves
// the host CPU; on the Firecracker VM of docs/gpt_step_cpu.md guest halt polling is off,
// guest_halt_poll_ns = 0), so every wake-up waits for the host to run the vCPU again: tens of
// microseconds, and more when the host is busy, about 110 times per baby GPT step.
//
// Here, while armed, one thread per CPU of the process's affinity mask spins on that CPU under
// SCHED_IDLE, the scheduling class of work that runs only where nothing else wants the CPU:
//  - an idle CPU of ours stays busy with the spinner instead of halting, so a wake-up of tinyml's
//    thread is a reschedule of a running CPU (a SCHED_IDLE task is preempted by any other task on the
//    spot) instead of the host restarting a halted vCPU;
//  - any other runnable thread, ours or another process's, takes the CPU from the spinner at once, so
//    the spin uses only time nobody else wanted (unlike a spinning OpenMP wait, which competes at
//    normal priority: docs/cpu_speed.md section 5).
// The spinners run only between keep_awake_begin and keep_awake_end (a compiled step's replay:
// tinyml/compile.py) and at most `max_seconds` after a begin, then sleep on a condition variable.
// They are made only where the OpenMP team covers the machine (allowed CPUs <= max_threads): on a
// larger machine the CPUs tinyml's threads use are not known, and spinning on all would burn many.
// Nothing here changes what a kernel computes.
#include "common.h"
#include "omp_threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

// Never destroyed (threads may still wait on it when the process exits); replaced after a fork,
// whose child has none of the parent's spinner threads.
struct Spinners {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> armed{false};
  int active = 0;                       // begins not yet ended (nested or from several threads), under mu
  std::atomic<int64_t> deadline_ns{0};  // Clock time (ns) after which a spin stops even if armed
  int64_t generation = 0;               // bumped by each begin, under mu
  int count = -1;                       // spinner threads started (-1: not decided yet)
  std::atomic<int64_t> spins{0};        // spin episodes started, for tests
  std::atomic<int> refused{0};          // spinners that could not take SCHED_IDLE and ended
};

Spinners* g_spinners = new Spinners();

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// A spinner's life: pin itself to its CPU, take SCHED_IDLE (or end at once: a spinner at normal priority
// would compete with the threads it is meant to serve), then spin in each armed episode.
void spin_loop(Spinners* s, int cpu) {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // a failure leaves it unpinned: still correct
  sched_param param{};
  param.sched_priority = 0;
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) {
    s->refused.fetch_add(1);
    return;
  }
#else
  (void)cpu;
  s->refused.fetch_add(1);
  return;
#endif
  int64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(s->mu);
      s->cv.wait(lock, [&] { return s->generation != seen && s->armed.load(); });
      seen = s->generation;
    }
    s->spins.fetch_add(1, std::memory_order_relaxed);
    while (s->armed.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 256; ++i) cpu_relax();  // ~a few microseconds between clock reads
      if (now_ns() > s->deadline_ns.load(std::memory_order_relaxed)) break;
    }
  }
}

// The CPUs this process may run on (sched_getaffinity), or none where that is unknown.
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
#endif
  return cpus;
}

void after_fork_in_child() { g_spinners = new Spinners(); }  // the parent's threads are not here

// Start the spinners once (under s->mu), one per allowed CPU, where the team covers the machine: at
// least 2 CPUs and no more than the threads a region would use now. Returns the spinners to arm (0: none).
int ensure_started(Spinners* s) {
  if (s->count >= 0) return s->count;
  const std::vector<int> cpus = allowed_cpus();
#ifndef __linux__
  return 0;  // no SCHED_IDLE: no spinners
#endif
  if (cpus.size() < 2 || int(cpus.size()) > tinyml::max_threads()) return 0;  // decided again next time
  s->count = 0;
  for (int cpu : cpus) {
    try {
      std::thread(spin_loop, s, cpu).detach();
      ++s->count;
    } catch (const std::system_error&) {  // no thread: fewer spinners, nothing else changes
      break;
    }
  }
  return s->count;
}

}  // namespace

void init_keep_awake(py::module_& m) {
#ifdef __linux__
  static bool registered = (pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0);
  (void)registered;
#endif
  m.def(
      "keep_awake_begin",
      [](double max_seconds) {
        if (!(max_seconds > 0))
          throw py::value_error("keep_awake_begin: expected max_seconds > 0, got " + std::to_string(max_seconds));
        Spinners* s = g_spinners;
        {
          std::lock_guard<std::mutex> lock(s->mu);
          if (ensure_started(s) == 0 || tinyml::max_threads() < 2) return 0;
          // the later of this begin's deadline and that of a begin still open (capped at a day: no overflow)
          const int64_t deadline = now_ns() + int64_t(std::min(max_seconds, 86400.0) * 1e9);
          const int64_t open = s->active > 0 ? s->deadline_ns.load(std::memory_order_relaxed) : 0;
          s->deadline_ns.store(std::max(deadline, open), std::memory_order_relaxed);
          ++s->active;
          s->armed.store(true);
          ++s->generation;
        }
        s->cv.notify_all();
        return s->count;
      },
      py::arg("max_seconds"),
      "Let one SCHED_IDLE thread per CPU spin (for at most max_seconds) until keep_awake_end, so idle CPUs "
      "do not halt between parallel regions. Returns the number of spinner threads (0: not used here).");
  m.def(
      "keep_awake_end",
      []() {
        Spinners* s = g_spinners;
        std::lock_guard<std::mutex> lock(s->mu);
        if (s->active > 0) --s->active;
        if (s->active == 0) s->armed.store(false);
      },
      "End one keep_awake_begin that returned > 0; the spinners stop (go back to sleep) when none is left.");
  m.def(
      "keep_awake_info",
      []() {
        Spinners* s = g_spinners;
        std::lock_guard<std::mutex> lock(s->mu);
        return py::make_tuple(s->count, s->armed.load(), s->spins.load(), s->refused.load());
      },
      "(spinner threads started, armed, spin episodes so far, spinners that could not take SCHED_IDLE and "
      "ended); spinner threads is -1 before the first begin.");
}
