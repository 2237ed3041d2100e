// tinyml._C: one pybind11 module, one init_<family>(m) per kernel family file in csrc/.
#include "common.h"
#ifdef _OPENMP
#include <omp.h>
#endif

void init_softmax(py::module_& m);
void init_activation(py::module_& m);
void init_norm(py::module_& m);
void init_loss(py::module_& m);
void init_attention(py::module_& m);
void init_embedding(py::module_& m);
void init_optim(py::module_& m);
void init_scan(py::module_& m);
void init_conv(py::module_& m);

PYBIND11_MODULE(_C, m) {
  m.doc() = "tinyml C++ CPU kernels (pybind11 + OpenMP)";
  m.def("set_num_threads", [](int n) {
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
  init_loss(m);
  init_attention(m);
  init_embedding(m);
  init_optim(m);
  init_scan(m);
  init_conv(m);
}
