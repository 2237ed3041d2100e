// tinyml.distributed's blocking all_reduce on a numpy buffer: one MPI_Allreduce called straight from
// C, through the function pointer of the MPI library mpi4py loaded (tinyml/distributed/native_mpi.py
// finds it and the handles; the ABI is MPICH's, where MPI_Comm, MPI_Datatype and MPI_Op are ints).
//
// Not a kernel (nothing in the kernel registry runs it): the training loop's most frequent collective,
// whose Python cost (type lookup, buffer export, the watchdog's flag, the version bump) was larger than
// mpi4py's own call. The binding is a METH_FASTCALL function (no pybind11 argument conversion) that
// reads the array's fields directly and declines (returns False, the Python path then runs) anything
// but a C-contiguous, aligned, writeable ndarray of a registered dtype in native byte order with a
// registered op, so the MPI library never sees a buffer it cannot reduce in place.
//
// The GIL is released during the call (as mpi4py does), so the Python watchdog thread can see a call
// that outlives the group's timeout: distributed_mpi_busy() reports the call in flight (a sequence
// number, odd while busy, then the op and the array, which the caller's frame keeps alive for as long
// as the call runs: it cannot return without the GIL the watchdog holds while it reads them).
#include <Python.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <string>

#include "common.h"

namespace {

using MpichAllreduce = int (*)(const void* sendbuf, void* recvbuf, int count, int datatype, int op, int comm);
using MpichErrorString = int (*)(int errorcode, char* string, int* resultlen);

constexpr int kTypeNums = 32;  // numpy's built-in type numbers the table covers (NPY_ULONGLONG is 10)
constexpr int kMaxOps = 8;
// numpy's array flags (ndarraytypes.h), stable across numpy 1 and 2
constexpr int kNeededFlags = 0x0001 /*C_CONTIGUOUS*/ | 0x0100 /*ALIGNED*/ | 0x0400 /*WRITEABLE*/;

struct MpiState {
  MpichAllreduce allreduce = nullptr;
  MpichErrorString error_string = nullptr;
  void* in_place = nullptr;
  int comm = 0;
  int world_size = 1;
  bool enabled = false;
  PyTypeObject* ndarray_type = nullptr;
  int datatype[kTypeNums] = {};       // numpy type number -> MPI datatype handle (0: not served here)
  bool floating[kTypeNums] = {};      // whether AVG applies (it divides in place)
  int item_size[kTypeNums] = {};
  int n_ops = 0;
  PyObject* ops[kMaxOps] = {};        // the ReduceOp values, compared by identity (owned references)
  int op_handle[kMaxOps] = {};
  bool op_avg[kMaxOps] = {};
  // the call in flight, for the watchdog: `serial` is odd while a call runs
  std::atomic<uint64_t> serial{0};
  PyObject* busy_array = nullptr;
  PyObject* busy_op = nullptr;
};

MpiState state;

int to_handle(long long value, const char* what) {
  // MPICH handles are 32-bit patterns; mpi4py may give them signed or unsigned
  if (value < INT_MIN || value > static_cast<long long>(UINT32_MAX))
    throw py::value_error(std::string("distributed_mpi_open: ") + what + " handle " + std::to_string(value) +
                          " is not a 32-bit MPICH handle");
  return static_cast<int>(static_cast<uint32_t>(value));
}

template <typename T>
void divide_in_place(void* data, Py_ssize_t n, int world_size) {
  T* x = static_cast<T*>(data);
  const T d = static_cast<T>(world_size);
  for (Py_ssize_t i = 0; i < n; ++i) x[i] = x[i] / d;  // numpy's np.divide(x, size): exact division
}

// distributed_mpi_all_reduce(array, version, op) -> bool: True when reduced in place (and version[0]
// bumped), False when declined; RuntimeError when MPI_Allreduce returns an error.
PyObject* all_reduce(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_Format(PyExc_TypeError, "distributed_mpi_all_reduce(array, version, op) takes 3 arguments, got %zd",
                 nargs);
    return nullptr;
  }
  MpiState& s = state;
  PyObject* arr = args[0];
  PyObject* version = args[1];
  PyObject* op = args[2];
  if (!s.enabled || Py_TYPE(arr) != s.ndarray_type) Py_RETURN_FALSE;
  const auto* a = py::detail::array_proxy(arr);
  if ((a->flags & kNeededFlags) != kNeededFlags) Py_RETURN_FALSE;
  const auto* descr = py::detail::array_descriptor_proxy(a->descr);
  const int type_num = descr->type_num;
  if (type_num < 0 || type_num >= kTypeNums || s.datatype[type_num] == 0) Py_RETURN_FALSE;
  if (descr->byteorder != '=' && descr->byteorder != '|') Py_RETURN_FALSE;  // a byte-swapped dtype
  int k = 0;
  while (k < s.n_ops && s.ops[k] != op) ++k;
  if (k == s.n_ops) Py_RETURN_FALSE;
  const bool avg = s.op_avg[k];
  if (avg && !s.floating[type_num]) Py_RETURN_FALSE;  // the Python path raises the error naming the dtype
  Py_ssize_t count = 1;
  for (int i = 0; i < a->nd; ++i) {
    const Py_ssize_t dim = a->dimensions[i];
    if (dim == 0) {
      count = 0;
      break;
    }
    if (count > INT_MAX / dim) Py_RETURN_FALSE;  // over MPI's int count: mpi4py's large-count call serves it
    count *= dim;
  }
  if (!PyList_CheckExact(version) || PyList_GET_SIZE(version) < 1 ||
      !PyLong_CheckExact(PyList_GET_ITEM(version, 0))) {
    PyErr_SetString(PyExc_TypeError, "distributed_mpi_all_reduce: version must be a tensor's _version list");
    return nullptr;
  }
  const long long bumped = PyLong_AsLongLong(PyList_GET_ITEM(version, 0)) + 1;
  if (bumped == 0 && PyErr_Occurred()) return nullptr;

  s.busy_array = arr;
  s.busy_op = op;
  const uint64_t serial = s.serial.load(std::memory_order_relaxed) + 1;  // odd: busy
  s.serial.store(serial, std::memory_order_release);
  void* data = a->data;
  const int size = s.world_size;
  PyThreadState* thread = PyEval_SaveThread();
  const int rc = s.allreduce(s.in_place, data, static_cast<int>(count), s.datatype[type_num], s.op_handle[k],
                             s.comm);
  if (rc == 0 && avg) {
    if (s.item_size[type_num] == 4)
      divide_in_place<float>(data, count, size);
    else
      divide_in_place<double>(data, count, size);
  }
  s.serial.store(serial + 1, std::memory_order_release);
  PyEval_RestoreThread(thread);

  if (rc != 0) {
    char message[4096] = "(no message)";
    int length = 0;
    if (s.error_string != nullptr && s.error_string(rc, message, &length) == 0 && length >= 0 &&
        length < static_cast<int>(sizeof(message)))
      message[length] = '\0';
    PyErr_Format(PyExc_RuntimeError, "all_reduce: MPI_Allreduce of %zd elements returned MPI error %d: %s", count,
                 rc, message);
    return nullptr;
  }
  PyObject* next = PyLong_FromLongLong(bumped);
  if (next == nullptr) return nullptr;
  PyList_SetItem(version, 0, next);  // steals `next`, releases the old count
  Py_RETURN_TRUE;
}

PyMethodDef all_reduce_def = {
    "distributed_mpi_all_reduce", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(all_reduce)),
    METH_FASTCALL,
    "distributed_mpi_all_reduce(array, version, op) -> bool\n\n"
    "x <- op over ranks of x, in place, by one blocking MPI_Allreduce (AVG: the sum divided by the world\n"
    "size). False when the array or op is not one the fast path serves (nothing was done)."};

void release_ops() {
  for (int k = 0; k < state.n_ops; ++k) Py_CLEAR(state.ops[k]);
  state.n_ops = 0;
}

}  // namespace

void init_distributed(py::module_& m) {
  m.def(
      "distributed_mpi_open",
      [](uintptr_t allreduce, uintptr_t error_string, long long in_place, long long comm, int world_size,
         py::list types, py::list ops, py::handle ndarray_type) {
        if (allreduce == 0) throw py::value_error("distributed_mpi_open: the MPI_Allreduce address is 0");
        if (world_size < 1)
          throw py::value_error("distributed_mpi_open: world_size must be positive, got " +
                                std::to_string(world_size));
        if (py::len(ops) > static_cast<size_t>(kMaxOps))
          throw py::value_error("distributed_mpi_open: at most " + std::to_string(kMaxOps) + " ops, got " +
                                std::to_string(py::len(ops)));
        if (!PyType_Check(ndarray_type.ptr()))
          throw py::type_error("distributed_mpi_open: ndarray_type must be numpy.ndarray");
        const int comm_handle = to_handle(comm, "communicator");
        state.enabled = false;
        MpiState fresh_types;
        for (py::handle entry : types) {
          auto pair = entry.cast<py::tuple>();
          if (pair.size() != 2) throw py::value_error("distributed_mpi_open: types holds (numpy dtype, handle) pairs");
          py::dtype dt = pair[0].cast<py::dtype>();
          const int type_num = dt.num();
          if (type_num < 0 || type_num >= kTypeNums || (dt.itemsize() != 4 && dt.itemsize() != 8) ||
              (dt.byteorder() != '=' && dt.byteorder() != '|'))
            throw py::value_error("distributed_mpi_open: dtype " + std::string(py::str(dt)) +
                                  " is not a 4- or 8-byte built-in numpy type in native byte order");
          fresh_types.datatype[type_num] = to_handle(pair[1].cast<long long>(), "datatype");
          fresh_types.floating[type_num] = dt.kind() == 'f';
          fresh_types.item_size[type_num] = static_cast<int>(dt.itemsize());
        }
        release_ops();
        for (py::handle entry : ops) {
          auto triple = entry.cast<py::tuple>();
          if (triple.size() != 3) throw py::value_error("distributed_mpi_open: ops holds (op, handle, is_avg) triples");
          const int k = state.n_ops;
          state.op_handle[k] = to_handle(triple[1].cast<long long>(), "op");
          state.op_avg[k] = triple[2].cast<bool>();
          state.ops[k] = py::object(triple[0]).release().ptr();
          state.n_ops = k + 1;
        }
        for (int t = 0; t < kTypeNums; ++t) {
          state.datatype[t] = fresh_types.datatype[t];
          state.floating[t] = fresh_types.floating[t];
          state.item_size[t] = fresh_types.item_size[t];
        }
        state.allreduce = reinterpret_cast<MpichAllreduce>(allreduce);
        state.error_string = reinterpret_cast<MpichErrorString>(error_string);
        state.in_place = reinterpret_cast<void*>(static_cast<intptr_t>(in_place));
        state.comm = comm_handle;
        state.world_size = world_size;
        state.ndarray_type = reinterpret_cast<PyTypeObject*>(ndarray_type.ptr());
        state.enabled = true;
      },
      "Point distributed_mpi_all_reduce at an MPICH-ABI MPI_Allreduce (its address, MPI_Error_string's, the "
      "MPI_IN_PLACE value, the communicator handle, the world size, [(dtype, datatype handle)], "
      "[(op, op handle, is_avg)], numpy.ndarray) and enable it.");
  m.def(
      "distributed_mpi_close", []() { state.enabled = false; },
      "Disable distributed_mpi_all_reduce (it then declines every call) until the next open.");
  m.def(
      "distributed_mpi_busy",
      []() -> py::object {
        const uint64_t before = state.serial.load(std::memory_order_acquire);
        if (!(before & 1)) return py::none();
        PyObject* arr = state.busy_array;
        PyObject* op = state.busy_op;
        if (state.serial.load(std::memory_order_acquire) != before) return py::none();
        return py::make_tuple(before, py::reinterpret_borrow<py::object>(op),
                              py::reinterpret_borrow<py::object>(arr));
      },
      "The blocking all_reduce in flight: (sequence number, op, array), or None.");
  PyObject* fn = PyCFunction_NewEx(&all_reduce_def, nullptr, nullptr);
  if (fn == nullptr) throw py::error_already_set();
  m.attr("distributed_mpi_all_reduce") = py::reinterpret_steal<py::object>(fn);
}
