// csrc/stream_store.h's stream_out paths, each called directly (this machine's dispatch runs only one
// of them): AVX-512 where the CPU has it, AVX where it has that, SSE2 always. For every destination
// offset 0..63 bytes and lengths 0..300 bytes and a few large ones, the destination must hold the
// source's bytes and the bytes around it must be untouched. Compiled by tests/ops/test_stream_store.py
// as the default build, -march=x86-64-v3 and baseline x86-64 (no pybind11 needed). Prints one line per
// path: "path <name> cases <n> bad <n>", or "path <name> skipped".
#include "stream_store.h"

#include <cstdio>
#include <cstring>
#include <vector>

namespace {

using Fn = void (*)(char*, const char*, int64_t);

int check(Fn fn, int64_t& cases) {
  int bad = 0;
  std::vector<char> src(70000), dst(70000 + 512);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>(i * 131 + 7);
  std::vector<int64_t> lengths;
  for (int64_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (int64_t n : {1023, 1024, 1025, 4096 + 12, 65536 + 36, 69999}) lengths.push_back(n);
  char* base = dst.data() + 128 - (reinterpret_cast<uintptr_t>(dst.data()) & 63);  // 64-byte aligned
  for (int off = 0; off < 64; ++off)
    for (int64_t n : lengths) {
      char* lo = base - 64;
      char* hi = base + off + n + 128;  // the window around the destination that is checked
      std::memset(lo, 0x5a, static_cast<size_t>(hi - lo));
      fn(base + off, src.data() + 3, n);  // a source at an odd address too
      tinyml::stream_sfence();
      ++cases;
      bool ok = std::memcmp(base + off, src.data() + 3, static_cast<size_t>(n)) == 0;
      for (char* p = lo; p < base + off; ++p) ok &= *p == 0x5a;
      for (char* p = base + off + n; p < hi; ++p) ok &= *p == 0x5a;
      bad += !ok;
    }
  return bad;
}

}  // namespace

int main() {
#if defined(TINYML_STREAM_X86)
  struct Path {
    const char* name;
    Fn fn;
    bool runs;
  } paths[] = {{"avx512", tinyml::stream_detail::out_avx512, __builtin_cpu_supports("avx512f") != 0},
               {"avx", tinyml::stream_detail::out_avx, __builtin_cpu_supports("avx") != 0},
               {"sse2", tinyml::stream_detail::out_sse2, true}};
  for (const Path& p : paths) {
    if (!p.runs) {
      std::printf("path %s skipped\n", p.name);
      continue;
    }
    int64_t cases = 0;
    const int bad = check(p.fn, cases);
    std::printf("path %s cases %lld bad %d\n", p.name, static_cast<long long>(cases), bad);
  }
  // the dispatching front end on floats, at the level this CPU picks
  std::vector<float> a(1000), b(1003, -1.0f);
  for (int i = 0; i < 1000; ++i) a[i] = static_cast<float>(i) * 0.5f;
  tinyml::stream_out(b.data() + 1, a.data(), 1000);
  tinyml::stream_sfence();
  std::printf("path dispatch cases 1 bad %d\n", std::memcmp(b.data() + 1, a.data(), 4000) != 0 || b[0] != -1.0f ||
                                                    b[1001] != -1.0f);
#else
  std::printf("path none skipped\n");
#endif
  return 0;
}
