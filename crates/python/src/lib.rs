//! The native half of the `changedet` Python package (python/changedet/): models, prediction and
//! scores of the library crates, on PyTorch's own tensors. Every computation releases the GIL.

mod bridge;
mod errors;
mod functions;
mod model;
mod options;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LIBTORCH_VERSION", env!("CHANGEDET_LIBTORCH_VERSION"))?;
    m.add("MODEL_NAMES", changedet_models::MODEL_NAMES.to_vec())?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(functions::binary_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    Ok(())
}
