// clone(x) -> a C-contiguous copy of a C-contiguous array, on tinyml's OpenMP threads when it is
// large (tinyml/backends/reference/creation.py: np.array(x, copy=True, order="C") on one thread).
//
// A copy is memory-bound: out[i] = x[i] over n bytes, 2n bytes of traffic. One core does not
// saturate this machine's copy bandwidth, so above kParallelBytes the bytes are split in chunks
// of kChunkBytes over the threads (dynamic schedule, so a thread that starts late takes fewer).
// The backward engine clones every gradient that a leaf cannot take as it is (a gradient that also
// flows elsewhere, as both operands of an add receive the same array), so a step clones its
// parameters' gradients: a 2048 x 384 float32 gradient is 3 MiB.
//
// What the binding takes: an exact numpy array (not a subclass), C-contiguous and aligned, of a
// plain numeric dtype (bool, integers, floats, complex: kinds b, i, u, f, c without fields).
// Anything else (a strided view, object or structured dtypes, ml_dtypes' bfloat16) returns
// NotImplemented without touching memory, and the reference runs. The copy is bytes: every value,
// NaN payloads and -0 included, is reproduced exactly.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common.h"

namespace {

constexpr int64_t kParallelBytes = 1 << 19;  // 512 KiB: below, a team's start costs more than it saves
constexpr int64_t kChunkBytes = 1 << 16;
constexpr int64_t kReleaseGil = 1 << 18;  // bytes above which other Python threads may run meanwhile

py::object not_implemented() { return py::reinterpret_borrow<py::object>(Py_NotImplemented); }

void copy_bytes(char* out, const char* in, int64_t n) {
  if (n < kParallelBytes) {
    std::memcpy(out, in, static_cast<size_t>(n));
    return;
  }
  const int64_t chunks = (n + kChunkBytes - 1) / kChunkBytes;
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kChunkBytes, len = std::min(n, lo + kChunkBytes) - lo;
    std::memcpy(out + lo, in + lo, static_cast<size_t>(len));
  }
}

py::object clone_array(py::handle x_obj) {
  const auto& api = py::detail::npy_api::get();
  PyObject* x = x_obj.ptr();
  if (Py_TYPE(x) != api.PyArray_Type_) return not_implemented();
  auto* a = py::detail::array_proxy(x);
  constexpr int needed = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((a->flags & needed) != needed) return not_implemented();
  py::dtype dt = py::reinterpret_borrow<py::dtype>(a->descr);
  const char kind = dt.kind();
  if ((kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f' && kind != 'c') || dt.has_fields())
    return not_implemented();
  int64_t n = dt.itemsize();
  for (int d = 0; d < a->nd; ++d) n *= a->dimensions[d];
  Py_INCREF(a->descr);  // PyArray_NewFromDescr steals a reference to the descriptor
  PyObject* out = api.PyArray_NewFromDescr_(api.PyArray_Type_, a->descr, a->nd, a->dimensions, nullptr, nullptr,
                                            0, nullptr);
  if (!out) throw py::error_already_set();
  char* o = py::detail::array_proxy(out)->data;
  if (n < kReleaseGil) {
    copy_bytes(o, a->data, n);
  } else {
    py::gil_scoped_release release;
    copy_bytes(o, a->data, n);
  }
  return py::reinterpret_steal<py::object>(out);
}

}  // namespace

void init_creation(py::module_& m) {
  m.def("clone", &clone_array, py::arg("x"),
        "a C-contiguous copy of x; NotImplemented unless x is a C-contiguous aligned numpy array of a "
        "plain numeric dtype (bool, integer, float, complex)");
}
