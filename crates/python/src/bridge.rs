//! Tensors across the Python boundary without copying: a torch.Tensor from Python becomes a tch
//! `Tensor` on the same `at::Tensor` (storage, device, autograd graph), and back
//! (shim/tensor_bridge.cpp).

use pyo3::ffi::PyObject;
use pyo3::prelude::*;
use tch::Tensor;
use torch_sys::C_tensor;

use crate::errors;

unsafe extern "C" {
    fn changedet_is_tensor(object: *mut PyObject) -> i32;
    fn changedet_tensor_from_python(object: *mut PyObject) -> *mut C_tensor;
    fn changedet_tensor_to_python(tensor: *const C_tensor) -> *mut PyObject;
}

/// The tensor `object` holds; `what` names the argument in the error when it holds none.
pub fn from_python(object: &Bound<'_, PyAny>, what: &str) -> PyResult<Tensor> {
    // SAFETY: `object` is a live Python object for as long as the GIL is held here.
    if unsafe { changedet_is_tensor(object.as_ptr()) } == 0 {
        let kind = object.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string());
        return Err(errors::input(format!("{what} must be a torch.Tensor or a numpy array, not {kind}")));
    }
    // SAFETY: checked to be a tensor; the shim returns a new heap handle that tch owns and frees.
    Ok(unsafe { Tensor::from_ptr(changedet_tensor_from_python(object.as_ptr())) })
}

/// `tensor` as a torch.Tensor (the same Python object where Python already holds one).
pub fn to_python<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the shim returns a new reference, or null with a Python exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, changedet_tensor_to_python(tensor.as_ptr())) }
}
