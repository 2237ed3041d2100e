// The threshold of the streaming-store paths (csrc/stream_store.h), readable and settable from Python
// for tests and A/B measurements: _C.stream_min_bytes(), _C.set_stream_min_bytes(n).
#include "common.h"
#include "stream_store.h"

void init_stream_store(py::module_& m) {
  m.attr("STREAM_OUT_BYTES") = tinyml::kStreamOutBytes;
  m.def("stream_min_bytes", []() { return tinyml::stream_min_bytes(); },
        "Written bytes per call from which kernels stream their outputs (negative: never).");
  m.def("set_stream_min_bytes", [](int64_t n) {
    return tinyml::stream_min_bytes_v.exchange(n, std::memory_order_relaxed);
  }, py::arg("n"),
        "Set the streaming-store threshold in bytes (negative: plain stores at every size); returns the old one. "
        "The default, STREAM_OUT_BYTES, is what the kernels were measured with (docs/cpu_speed.md, session 13).");
}
