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

// libtorch's CPU tensors from blocks the Rust side keeps for reuse (src/cpu_blocks.rs), while
// changedet computes: the logic is in Rust, this is only the c10 allocator interface.
#include <c10/core/CPUAllocator.h>

extern "C" void* changedet_block_take(size_t bytes);
extern "C" void changedet_block_give(void* block);

namespace {
struct ReusingCpuAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t bytes) override {
    void* block = bytes == 0 ? nullptr : changedet_block_take(bytes);
    TORCH_CHECK(bytes == 0 || block != nullptr, "out of memory: could not allocate ", bytes, " bytes");
    return {block, block, &changedet_block_give, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &changedet_block_give; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
};
ReusingCpuAllocator reusing;
}  // namespace

extern "C" {
// Where at::empty takes CPU memory: the reusing allocator (1), or libtorch's own (0).
void changedet_reuse_cpu_blocks(int on) { c10::SetCPUAllocator(on ? &reusing : c10::GetDefaultCPUAllocator(), 0); }
}
