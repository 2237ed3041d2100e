// Binary arithmetic: add, sub, mul, div (tinyml/backends/reference/elementwise.py does them with
// numpy's ufuncs, tinyml/backends/cpu/elementwise.py registers these bindings themselves).
//
//   add(a, b) -> a + b     sub(a, b) -> a - b     mul(a, b) -> a * b     div(a, b) -> a / b
//
// Each operation is IEEE-754's correctly rounded one in the operands' dtype (float32 or float64),
// the same operation numpy's loops do, so the result is the same bits: one rounding per element,
// no fused multiply-add (fp-contract is off below), no reciprocal for a division. A Python float
// beside a float32 array is rounded to float32 first, as numpy 2 does with a Python scalar (NEP 50).
//
// Why here and not numpy: on a small array numpy's ufunc call costs more than the arithmetic
// (about 0.7 us for 64 floats with a tensor, 1.3 us with a scalar; this binding about 0.25 us), and
// on a large one numpy runs on one thread; above kParallel elements these loops run on tinyml's
// OpenMP threads (a GPT's residual adds, the gradients' sums in backward), compiled for AVX-512,
// AVX2 and baseline x86-64 (target_clones), as numpy's own loops are dispatched at run time.
// One thread runs them about as fast as numpy (a 786k-float add: 118 against 109 us, 7.8 against
// 8.4 us at 65k); a loaded machine makes an OpenMP team's wait for a late thread the cost.
//
// What a binding takes: two operands of one shape and one dtype (float32 or float64), each either
//   - a C-contiguous aligned numpy array (not a subclass) with at least one dimension,
//   - a broadcast view of a contiguous block, as `expand` makes for a bias (strides 0 on leading
//     dimensions, then C-contiguous: the block repeats along the output), a single element included,
//   - or a Python float (exactly float: numpy's float64 scalar is not weak, it promotes) beside an array.
// For anything else (float16, bfloat16, integers, a transposed or sliced view, a 0-d array, a float too
// large for float32) it returns NotImplemented without touching memory, and the dispatcher runs the
// numpy reference. The checks read the array headers only.
#include <cfloat>
#include <cmath>
#include <algorithm>
#include <cstdint>

#include "common.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace {

// Elements above which the loop runs on the OpenMP threads: a team's start and barrier cost about
// as much as 30k float adds on one core, and a loaded machine makes the wait for a late thread worse.
constexpr int64_t kParallel = 1 << 17;
constexpr int64_t kChunk = 1 << 14;  // dynamic chunks: a thread that starts late takes fewer
constexpr int64_t kReleaseGil = 1 << 16;  // elements above which other Python threads may run meanwhile
constexpr int kMaxDims = 32;  // numpy's limit is 64; more dimensions than this decline

struct Add { template <typename T> static T f(T a, T b) { return a + b; } };
struct Sub { template <typename T> static T f(T a, T b) { return a - b; } };
struct Mul { template <typename T> static T f(T a, T b) { return a * b; } };
struct Div { template <typename T> static T f(T a, T b) { return a / b; } };

// One operand as the loops see it: element i of the output reads p[i % inner]; inner == 1 is a single
// value (a Python float, or an expand of one element), inner == n a contiguous array.
template <typename T>
struct Operand {
  const T* p;
  int64_t inner;
};

// out[lo:hi] = op(a, b), split where a broadcast operand's block repeats so that the inner loops are
// plain (and vectorised) runs over contiguous memory.
template <typename T, class Op>
__attribute__((always_inline)) inline void run_range(Operand<T> a, Operand<T> b, T* out, int64_t lo, int64_t hi) {
  int64_t block = hi;  // the shortest repeat among operands that are neither one value nor the whole array
  if (a.inner > 1 && a.inner < block) block = a.inner;
  if (b.inner > 1 && b.inner < block) block = b.inner;
  for (int64_t start = lo; start < hi;) {
    int64_t end = std::min(hi, (start / block + 1) * block);
    int64_t len = end - start;
    T* o = out + start;
    if (a.inner == 1 && b.inner == 1) {  // one value each (an expand of one element beside a float)
      const T v = Op::f(a.p[0], b.p[0]);
      for (int64_t i = 0; i < len; ++i) o[i] = v;
    } else if (a.inner == 1) {
      const T s = a.p[0];
      const T* y = b.p + start % b.inner;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) o[i] = Op::f(s, y[i]);
    } else if (b.inner == 1) {
      const T s = b.p[0];
      const T* x = a.p + start % a.inner;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) o[i] = Op::f(x[i], s);
    } else {
      const T* x = a.p + start % a.inner;
      const T* y = b.p + start % b.inner;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) o[i] = Op::f(x[i], y[i]);
    }
    start = end;
  }
}

// The loops compiled for AVX-512, AVX2 and baseline x86-64, picked when the library loads (as
// csrc/simd_math.h's TINYML_CLONES; that header is not included here: it turns fp-contract on).
#if defined(__x86_64__) && defined(__linux__) && !defined(TINYML_NO_CLONES)
#define TINYML_ARITH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TINYML_ARITH_CLONES
#endif

// One function per (operation, dtype): target_clones needs plain functions, not templates.
#define TINYML_RANGE(name, T, Op)                                                                  \
  TINYML_ARITH_CLONES void name(Operand<T> a, Operand<T> b, T* out, int64_t lo, int64_t hi) { \
    run_range<T, Op>(a, b, out, lo, hi);                                                         \
  }
TINYML_RANGE(add_f32, float, Add)
TINYML_RANGE(add_f64, double, Add)
TINYML_RANGE(sub_f32, float, Sub)
TINYML_RANGE(sub_f64, double, Sub)
TINYML_RANGE(mul_f32, float, Mul)
TINYML_RANGE(mul_f64, double, Mul)
TINYML_RANGE(div_f32, float, Div)
TINYML_RANGE(div_f64, double, Div)
#undef TINYML_RANGE

template <typename T>
using RangeFn = void (*)(Operand<T>, Operand<T>, T*, int64_t, int64_t);

template <typename T>
void run_all(RangeFn<T> range, Operand<T> a, Operand<T> b, T* out, int64_t n) {
  if (n < kParallel) {
    range(a, b, out, 0, n);
    return;
  }
  int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < chunks; ++c) range(a, b, out, c * kChunk, std::min(n, (c + 1) * kChunk));
}

// 1: float32, 2: float64, 0: anything else (another type, a non-native byte order).
int float_kind(PyObject* descr) {
  auto* d = py::detail::array_descriptor_proxy(descr);
  if (d->byteorder == '>') return 0;  // '=' native, '<' little-endian (x86 and ARM here), '|' n/a
  if (d->type_num == py::detail::npy_api::NPY_FLOAT_) return 1;
  if (d->type_num == py::detail::npy_api::NPY_DOUBLE_) return 2;
  return 0;
}

// What an array operand is: its float kind (0: declined), shape, data and `inner` (see Operand).
struct ArrayInfo {
  int kind = 0;
  int nd = 0;
  const py::ssize_t* dims = nullptr;
  const char* data = nullptr;
  int64_t inner = 0;
  int64_t size = 0;
};

ArrayInfo inspect(PyObject* obj) {
  ArrayInfo info;
  const auto& api = py::detail::npy_api::get();
  if (Py_TYPE(obj) != api.PyArray_Type_) return info;  // subclasses (memmap, matrix) keep numpy's result type
  auto* a = py::detail::array_proxy(obj);
  constexpr int aligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if (a->nd < 1 || a->nd > kMaxDims || !(a->flags & aligned)) return info;
  int kind = float_kind(a->descr);
  if (!kind) return info;
  const py::ssize_t item = kind == 1 ? 4 : 8;
  // Walk the dimensions from the last: a C-contiguous trailing block, then only broadcast (stride 0)
  // dimensions before it. A size-1 dimension's stride does not matter.
  int64_t size = 1, inner = 1;
  bool in_block = true;
  for (int d = a->nd - 1; d >= 0; --d) {
    py::ssize_t n = a->dimensions[d], s = a->strides[d];
    size *= n;
    if (n == 1) continue;
    if (in_block && s == inner * item) {
      inner *= n;
    } else if (s == 0) {
      in_block = false;
    } else {
      return info;
    }
  }
  info.kind = kind;
  info.nd = a->nd;
  info.dims = a->dimensions;
  info.data = a->data;
  info.inner = size == 0 ? 0 : inner;
  info.size = size;
  return info;
}

bool same_shape(const ArrayInfo& x, const ArrayInfo& y) {
  if (x.nd != y.nd) return false;
  for (int d = 0; d < x.nd; ++d)
    if (x.dims[d] != y.dims[d]) return false;
  return true;
}

py::object not_implemented() { return py::reinterpret_borrow<py::object>(Py_NotImplemented); }

template <typename T>
py::object compute(RangeFn<T> range, const ArrayInfo& shape_of, Operand<T> a, Operand<T> b) {
  const auto& api = py::detail::npy_api::get();
  int typenum = sizeof(T) == 4 ? py::detail::npy_api::NPY_FLOAT_ : py::detail::npy_api::NPY_DOUBLE_;
  // PyArray_NewFromDescr steals the descriptor reference DescrFromType returns
  PyObject* out = api.PyArray_NewFromDescr_(api.PyArray_Type_, api.PyArray_DescrFromType_(typenum), shape_of.nd,
                                            const_cast<Py_intptr_t*>(shape_of.dims), nullptr, nullptr, 0,
                                            nullptr);
  if (!out) throw py::error_already_set();
  T* o = reinterpret_cast<T*>(py::detail::array_proxy(out)->data);
  int64_t n = shape_of.size;
  if (n < kReleaseGil) {
    run_all<T>(range, a, b, o, n);
  } else {
    py::gil_scoped_release release;
    run_all<T>(range, a, b, o, n);
  }
  return py::reinterpret_steal<py::object>(out);
}

// A Python float as the operand of an array of kind `kind`: false if it is not exactly a float, or
// (float32) a finite value beyond float32's range, whose cast numpy warns about.
bool scalar_value(PyObject* obj, int kind, double* v) {
  if (!PyFloat_CheckExact(obj)) return false;
  *v = PyFloat_AS_DOUBLE(obj);
  return kind == 2 || !std::isfinite(*v) || std::fabs(*v) <= double(FLT_MAX);
}

template <RangeFn<float> range32, RangeFn<double> range64>
py::object binary(py::handle a_obj, py::handle b_obj) {
  ArrayInfo a = inspect(a_obj.ptr()), b;
  double s = 0;
  if (a.kind) {
    b = inspect(b_obj.ptr());
    if (b.kind) {
      if (b.kind != a.kind || !same_shape(a, b)) return not_implemented();
    } else if (!scalar_value(b_obj.ptr(), a.kind, &s)) {
      return not_implemented();
    }
  } else {
    b = inspect(b_obj.ptr());
    if (!b.kind || !scalar_value(a_obj.ptr(), b.kind, &s)) return not_implemented();
  }
  const ArrayInfo& shape_of = a.kind ? a : b;
  if (shape_of.kind == 1) {
    float sf = static_cast<float>(s);  // round to nearest, as numpy's cast of the scalar
    Operand<float> x{a.kind ? reinterpret_cast<const float*>(a.data) : &sf, a.kind ? a.inner : 1};
    Operand<float> y{b.kind ? reinterpret_cast<const float*>(b.data) : &sf, b.kind ? b.inner : 1};
    return compute<float>(range32, shape_of, x, y);
  }
  Operand<double> x{a.kind ? reinterpret_cast<const double*>(a.data) : &s, a.kind ? a.inner : 1};
  Operand<double> y{b.kind ? reinterpret_cast<const double*>(b.data) : &s, b.kind ? b.inner : 1};
  return compute<double>(range64, shape_of, x, y);
}

}  // namespace

#pragma GCC pop_options

// What each binding takes, in its docstring.
#define TINYML_TAKES                                                                                       \
  "; NotImplemented unless a and b are float32 or float64 arrays of one shape and dtype, each C-contiguous " \
  "or a broadcast (expand) of a contiguous block, or one of them a Python float"

void init_elementwise(py::module_& m) {
  m.def("add", &binary<add_f32, add_f64>, py::arg("a"), py::arg("b"), "a + b" TINYML_TAKES);
  m.def("sub", &binary<sub_f32, sub_f64>, py::arg("a"), py::arg("b"), "a - b" TINYML_TAKES);
  m.def("mul", &binary<mul_f32, mul_f64>, py::arg("a"), py::arg("b"), "a * b" TINYML_TAKES);
  m.def("div", &binary<div_f32, div_f64>, py::arg("a"), py::arg("b"), "a / b" TINYML_TAKES);
}
