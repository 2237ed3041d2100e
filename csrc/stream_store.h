// Streaming (non-temporal) stores for large write-only outputs, and software prefetch.
//
// A plain store to a line that is not in the cache first reads the line from memory
// (read-for-ownership), so a kernel that reads R bytes and writes W fresh bytes moves R + 2W over the
// memory bus; a streaming store writes whole lines straight to memory (write-combining buffers), R + W.
// But the line then leaves the cache: an output the next op reads soon comes back from DRAM instead
// of L2/L3. So only calls that write at least stream_min_bytes() stream (the default, kStreamOutBytes,
// is half this machine's 32 MiB L3: an output that large has mostly left the cache by the time the
// next op reads it anyway; every tensor of the GPT baby/small steps is well below it).
//
// Kernels compute a block of output into a small buffer (L1) and stream_out() it: values are the
// same computations as on the plain path, only where the bytes go changes. stream_out takes any
// destination address: bytes before the first 16-byte boundary and after the last go with plain
// stores (memcpy), 16-byte pieces with SSE2 `movntps`, and the 64-byte-aligned middle with AVX-512
// (`vmovntps zmm`) or AVX (`ymm`) where the CPU has them, picked at run time (no -march needed; the
// baseline x86-64 path is SSE2). Consecutive calls on adjacent ranges (rows of one output) fill the
// same write-combining buffers, so a line split between two calls still goes out whole.
// Streaming stores are weakly ordered: a thread calls stream_sfence() after its last stream_out,
// before the parallel region (or its task) ends.
//
// Users: layer_norm's backward and add_layer_norm's forward (csrc/norm.cpp, a row at a time) and
// nearest upsampling's forward (csrc/pool_upsample.h). Measured and not kept (the plain path was as
// fast or faster, docs/cpu_speed.md "Session 13"): silu/gelu, layer_norm's forward, max_pool2d, and
// the AdamW step, whose p, m, v are read before they are written (no read-for-ownership to save).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TINYML_STREAM_X86 1
#endif

namespace tinyml {

// Written bytes per call from which the kernels that support it stream their outputs. 16 MiB: half
// the L3 (docs/cpu_speed.md "Session 13: streaming stores" has the measurements on both sides).
constexpr int64_t kStreamOutBytes = int64_t(16) << 20;

// Bytes a kernel builds in its L1 buffer before each stream_out: the computation's loads and the
// streamed lines then alternate finely. A 1-thread copy-like kernel over 25-100 MB (x * a + b into a
// buffer, then stream_out) ran fastest with 1-4 KiB per call and lost its gain with 8 KiB.
constexpr int64_t kStreamChunkBytes = 2048;

// The threshold in use: kStreamOutBytes unless set through _C.set_stream_min_bytes (tests and A/B
// measurements lower or raise it; a negative value turns streaming off).
inline std::atomic<int64_t> stream_min_bytes_v{kStreamOutBytes};
inline int64_t stream_min_bytes() { return stream_min_bytes_v.load(std::memory_order_relaxed); }
inline bool stream_worth(int64_t written_bytes) {
  const int64_t m = stream_min_bytes();
  return m >= 0 && written_bytes >= m;
}

#if defined(TINYML_STREAM_X86)
namespace stream_detail {

// Plain bytes up to dst's 16-byte boundary; returns how many.
inline int64_t head16(char* dst, const char* src, int64_t n) {
  int64_t h = static_cast<int64_t>((16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15);
  h = h < n ? h : n;
  std::memcpy(dst, src, static_cast<size_t>(h));
  return h;
}

// dst 16-byte aligned from i on: 16-byte streams while fewer than `align` bytes from a boundary.
inline int64_t sse_until(char* dst, const char* src, int64_t i, int64_t n, uintptr_t align) {
  for (; i + 16 <= n && (reinterpret_cast<uintptr_t>(dst + i) & (align - 1)); i += 16)
    _mm_stream_ps(reinterpret_cast<float*>(dst + i), _mm_loadu_ps(reinterpret_cast<const float*>(src + i)));
  return i;
}

inline int64_t sse_rest(char* dst, const char* src, int64_t i, int64_t n) {
  for (; i + 16 <= n; i += 16)
    _mm_stream_ps(reinterpret_cast<float*>(dst + i), _mm_loadu_ps(reinterpret_cast<const float*>(src + i)));
  std::memcpy(dst + i, src + i, static_cast<size_t>(n - i));
  return n;
}

__attribute__((target("avx512f"), noinline)) inline void out_avx512(char* dst, const char* src, int64_t n) {
  int64_t i = head16(dst, src, n);
  i = sse_until(dst, src, i, n, 64);
  for (; i + 64 <= n; i += 64)
    _mm512_stream_ps(reinterpret_cast<float*>(dst + i), _mm512_loadu_ps(reinterpret_cast<const float*>(src + i)));
  sse_rest(dst, src, i, n);
}

__attribute__((target("avx"), noinline)) inline void out_avx(char* dst, const char* src, int64_t n) {
  int64_t i = head16(dst, src, n);
  i = sse_until(dst, src, i, n, 32);
  for (; i + 32 <= n; i += 32)
    _mm256_stream_ps(reinterpret_cast<float*>(dst + i), _mm256_loadu_ps(reinterpret_cast<const float*>(src + i)));
  sse_rest(dst, src, i, n);
}

__attribute__((noinline)) inline void out_sse2(char* dst, const char* src, int64_t n) {
  sse_rest(dst, src, head16(dst, src, n), n);
}

// 2: AVX-512F, 1: AVX, 0: SSE2 (every x86-64)
inline int level() {
  static const int l = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx") ? 1 : 0;
  return l;
}

}  // namespace stream_detail
#endif

// Software prefetch of a stream of `bytes` bytes from p, read (RW = 0) or written (RW = 1) front to
// back: ahead(n) asks for every cache line of [p, p + n) not asked for yet, clipped to the stream.
// The pool and upsample kernels (pool_max.h, pool_upsample.h) use it on calls that move at least
// kPrefetchMinBytes, kPrefetchAhead bytes ahead of the lines they are working on.
template <int RW>
struct Prefetch {
  const char* line;      // the line that holds p
  int64_t off, end, done;  // p's offset in it; the stream's end and the lines asked for, in bytes from `line`
  Prefetch(const void* p, int64_t bytes, int64_t from = 0)  // from: the first bytes are not asked for
      : line(static_cast<const char*>(p) - (reinterpret_cast<uintptr_t>(p) & 63)),
        off(static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) & 63)),
        end(bytes > 0 ? off + bytes : 0),
        done((off + from) & ~int64_t(63)) {}
  void ahead(int64_t n) {
    for (const int64_t to = std::min(off + n, end); done < to; done += 64) __builtin_prefetch(line + done, RW, 3);
  }
};
constexpr int64_t kPrefetchAhead = 8192;  // bytes (4-16 KiB measured alike on the bilinear kernels)
// Calls that move fewer bytes than this ask for nothing: their arrays are likely still in L2 or L3
// from the op before, where the requests only cost instructions (bilinear in L2: forward 1.2 -> 1.4 us
// a plane; measured break-even: 4-8 MB forward, 2-4 MB backward).
constexpr int64_t kPrefetchMinBytes = int64_t(4) << 20;

// Copies n elements of src (a buffer the kernel just wrote, ideally in L1) to dst with streaming
// stores where dst's alignment allows, plain stores at the ends. The bits are src's.
template <typename T>
inline void stream_out(T* dst, const T* src, int64_t n) {
  if (n <= 0) return;
  char* d = reinterpret_cast<char*>(dst);
  const char* s = reinterpret_cast<const char*>(src);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
#if defined(TINYML_STREAM_X86)
  switch (stream_detail::level()) {
    case 2: stream_detail::out_avx512(d, s, bytes); break;
    case 1: stream_detail::out_avx(d, s, bytes); break;
    default: stream_detail::out_sse2(d, s, bytes);
  }
#else
  std::memcpy(d, s, static_cast<size_t>(bytes));
#endif
}

// Orders this thread's streaming stores before whatever follows (the end of the parallel region).
inline void stream_sfence() {
#if defined(TINYML_STREAM_X86)
  _mm_sfence();
#endif
}

}  // namespace tinyml
