// Embedding: the row gather y[t] = weight[ids[t]] (any dtype: rows are copied as bytes) and its
// backward, the scatter-add dweight[ids[t]] += dy[t], float32 and float64.
//
//   y (ids.shape + (D,)) = weight[ids]                             (every id in [0, V), else IndexError)
//   dweight (V, D) = sum over tokens t with ids[t] = v of dy[t, :]   (rows at padding_idx stay 0)
//
// Forward: the threads split the tokens, each copying whole rows (independent writes). Every id
// is range-checked before the first row is read, so -1 raises instead of reading row V-1 or
// memory before the table (PyTorch raises IndexError too).
//
// Repeated ids make a row-parallel scatter race, so the threads split the embedding dimension
// instead: each owns a contiguous slice of columns (a multiple of 16 elements, so no two threads
// share a cache line) and walks every token, adding only its slice. No atomics, deterministic,
// the same summation order as a serial loop. Ids are range-checked before any write.
//
// Both go over the threads only when each thread's part is worth a wake-up of the sleeping worker
// (csrc/team_size.h): a baby GPT's 768 x 128 lookup and scatter take about 10 us each on one thread
// (bench/gpt_profile.py --split-ab), less than a parallel region's start and end.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"
#include "team_size.h"

#include <cstring>

namespace {

constexpr int64_t kMinCopyBytesPerThread = int64_t(1) << 19;  // rows copied: ~10 us of a core's copying
constexpr int64_t kMinAddsPerThread = 2 * tinyml::kMinElementsPerThread;  // one add per element: half a norm's work

template <typename T>
TINYML_CLONES void add_rows(const int64_t* __restrict ids, const T* __restrict dy, T* __restrict dw, int64_t n,
                            int64_t d, int64_t c0, int64_t c1, int64_t padding_idx) {
  for (int64_t t = 0; t < n; ++t) {
    int64_t id = ids[t];
    if (id == padding_idx) continue;
    T* dst = dw + id * d;
    const T* src = dy + t * d;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
  }
}

// One id out of [0, num_embeddings), as a Python IndexError naming the id and the table size.
void check_ids(const int64_t* ids, int64_t n, int64_t num_embeddings) {
  for (int64_t t = 0; t < n; ++t)
    if (ids[t] < 0 || ids[t] >= num_embeddings)
      throw py::index_error("index " + std::to_string(ids[t]) + " is out of range for an embedding of " +
                            std::to_string(num_embeddings) + " rows (ids must be in [0, " +
                            std::to_string(num_embeddings) + "))");
}

py::array forward(py::array weight, py::array ids) {
  if (!tinyml::has_dtype<int64_t>(ids))
    throw py::type_error("embedding_forward: indices must be int64, got " + std::string(py::str(ids.dtype())));
  if (!(ids.flags() & py::array::c_style))
    throw py::value_error("embedding_forward: indices must be C-contiguous, got shape " + tinyml::shape_str(ids));
  if (weight.ndim() != 2)
    throw py::value_error("embedding_forward: weight must be 2-D (num_embeddings, D), got shape " +
                          tinyml::shape_str(weight));
  if (!(weight.flags() & py::array::c_style))
    throw py::value_error("embedding_forward: weight must be C-contiguous, got shape " + tinyml::shape_str(weight));
  int64_t v = weight.shape(0), d = weight.shape(1), n = ids.size(), item = weight.itemsize();
  const int64_t* ip = static_cast<const int64_t*>(ids.data());
  check_ids(ip, n, v);
  std::vector<py::ssize_t> shape(ids.shape(), ids.shape() + ids.ndim());
  shape.push_back(d);
  py::array out(weight.dtype(), shape);
  const char* wp = static_cast<const char*>(weight.data());
  char* op = static_cast<char*>(out.mutable_data());
  int64_t row = d * item;
  {
    py::gil_scoped_release release;
    // align 1: each thread writes whole rows, so neighbours share at most one cache line
    const int64_t min_rows = 2 * kMinCopyBytesPerThread / (row ? row : 1) + 2;
    tinyml::parallel_ranges(row ? n : 0, min_rows, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) std::memcpy(op + t * row, wp + ip[t] * row, row);
    }, 1);
  }
  return out;
}

template <typename T>
py::array backward(py::array ids, py::array dy, int64_t num_embeddings, int64_t padding_idx) {
  tinyml::check_array<T>(dy, "embedding grad_output");
  if (!tinyml::has_dtype<int64_t>(ids))
    throw py::type_error("embedding_backward: indices must be int64, got " + std::string(py::str(ids.dtype())));
  if (!(ids.flags() & py::array::c_style))
    throw py::value_error("embedding_backward: indices must be C-contiguous, got shape " + tinyml::shape_str(ids));
  bool ok = dy.ndim() == ids.ndim() + 1;
  for (py::ssize_t i = 0; ok && i < ids.ndim(); ++i) ok = dy.shape(i) == ids.shape(i);
  if (!ok)
    throw py::value_error("embedding_backward: grad_output has shape " + tinyml::shape_str(dy) +
                          " but indices have shape " + tinyml::shape_str(ids) + " (expected indices.shape + (D,))");
  if (num_embeddings < 0) throw py::value_error("embedding_backward: num_embeddings must be >= 0");
  int64_t d = dy.shape(dy.ndim() - 1), n = ids.size();
  const int64_t* ip = static_cast<const int64_t*>(ids.data());
  check_ids(ip, n, num_embeddings);
  py::array_t<T> dw(std::vector<py::ssize_t>{num_embeddings, d});
  const T* gp = static_cast<const T*>(dy.data());
  T* wp = dw.mutable_data();
  {
    py::gil_scoped_release release;
    int64_t total = num_embeddings * d;
    tinyml::parallel_ranges(total, 1 << 18, [&](int64_t b, int64_t e) { std::memset(wp + b, 0, sizeof(T) * (e - b)); });
    // Threads split the columns; with few columns or few tokens one thread does all.
    const bool split = tinyml::worth_threads(n * d, d, kMinAddsPerThread);
    // (min_parallel 1: with no columns to split, parallel_ranges runs nothing instead of an empty region)
    tinyml::parallel_ranges(split ? d : 0, 1, [&](int64_t c0, int64_t c1) {
      add_rows<T>(ip, gp, wp, n, d, c0, c1, padding_idx);
    });
    if (!split && d > 0) add_rows<T>(ip, gp, wp, n, d, 0, d, padding_idx);
  }
  return dw;
}

}  // namespace

void init_embedding(py::module_& m) {
  m.def("embedding_forward", &forward, py::arg("weight"), py::arg("ids"));
  m.def("embedding_backward", [](py::array ids, py::array dy, int64_t num_embeddings, int64_t padding_idx) {
    if (tinyml::has_dtype<double>(dy)) return backward<double>(ids, dy, num_embeddings, padding_idx);
    if (tinyml::has_dtype<float>(dy)) return backward<float>(ids, dy, num_embeddings, padding_idx);
    throw py::type_error("embedding_backward: dtype " + std::string(py::str(dy.dtype())) +
                         " not supported (float32, float64)");
  }, py::arg("ids"), py::arg("dy"), py::arg("num_embeddings"), py::arg("padding_idx") = -1);
}
