// The same at::Tensor on both sides of the Python boundary: torch's own wrappers
// (THPVariable_Wrap/Unpack, as tch's python-extension uses them), behind a C ABI. A tensor
// handle is what tch's C_tensor points to, a heap-allocated torch::Tensor (at::Tensor).
#include <torch/csrc/autograd/python_variable.h>

extern "C" {

int changedet_is_tensor(PyObject* object) { return THPVariable_Check(object) ? 1 : 0; }

// A new handle on the tensor `object` wraps (same storage, device and autograd graph);
// the caller checked it with changedet_is_tensor.
at::Tensor* changedet_tensor_from_python(PyObject* object) {
  return new at::Tensor(THPVariable_Unpack(object));
}

// The Python object of `tensor` (a new reference; the existing object if Python already has
// one), or null with a Python exception set.
PyObject* changedet_tensor_to_python(const at::Tensor* tensor) {
  try {
    return THPVariable_Wrap(*tensor);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}
}
