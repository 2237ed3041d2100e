// tinyml._C: one pybind11 module, one init_<family>(m) per kernel family file in csrc/.
#include "common.h"
#ifdef _OPENMP
#include <omp.h>
#endif

void init_softmax(py::module_& m);

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
}
