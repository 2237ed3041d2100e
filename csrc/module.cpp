// tinyml._C: one pybind11 module, one init_<family>(m) per kernel family file in csrc/.
#include "common.h"
#ifdef _OPENMP
#include <omp.h>
#endif

void init_softmax(py::module_& m);
void init_activation(py::module_& m);
void init_norm(py::module_& m);
void init_batch_norm(py::module_& m);
void init_loss(py::module_& m);
void init_attention(py::module_& m);
void init_embedding(py::module_& m);
void init_optim(py::module_& m);
void init_scan(py::module_& m);
void init_causal_conv1d(py::module_& m);
void init_selective_state_update(py::module_& m);
void init_conv(py::module_& m);
void init_pool(py::module_& m);
void init_boxes(py::module_& m);
void init_sort(py::module_& m);
void init_search(py::module_& m);
void init_rnn(py::module_& m);
void init_matmul(py::module_& m);
void init_unary(py::module_& m);
void init_pointwise(py::module_& m);
void init_elementwise(py::module_& m);
void init_creation(py::module_& m);
void init_stream_store(py::module_& m);  // the streaming-store threshold: csrc/stream_store.cpp
void init_keep_awake(py::module_& m);   // thread control: csrc/keep_awake.cpp
void init_distributed(py::module_& m);  // not a kernel family: tinyml.distributed's MPI_Allreduce call

// The most OpenMP threads tinyml asks for (tinyml/threads.py MAX_THREADS is the same number;
// tests/test_threads.py checks that the two agree).
// libgomp starts a team by putting over 100 bytes per thread on the calling thread's stack
// (alloca) and creating every thread at once: 100000 threads overflowed an 8 MiB stack (a
// segfault) and 50000 failed thread creation, which libgomp answers by exiting the process.
// 1024 is 50x under both, and more threads than any CPU here has.
constexpr int kMaxThreads = 1024;

PYBIND11_MODULE(_C, m) {
  m.doc() = "tinyml C++ CPU kernels (pybind11 + OpenMP)";
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("set_num_threads", [](int n) {
    if (n < 1 || n > kMaxThreads)
      throw py::value_error("set_num_threads: expected a positive integer of at most " +
                            std::to_string(kMaxThreads) + " threads, got " + std::to_string(n));
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
  });
  m.def("get_num_threads", []() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  });
  init_softmax(m);
  init_activation(m);
  init_norm(m);
  init_batch_norm(m);
  init_loss(m);
  init_attention(m);
  init_embedding(m);
  init_optim(m);
  init_scan(m);
  init_causal_conv1d(m);
  init_selective_state_update(m);
  init_conv(m);
  init_pool(m);
  init_boxes(m);
  init_sort(m);
  init_search(m);
  init_rnn(m);
  init_matmul(m);
  init_unary(m);
  init_pointwise(m);
  init_elementwise(m);
  init_creation(m);
  init_stream_store(m);
  init_keep_awake(m);
  init_distributed(m);
}
