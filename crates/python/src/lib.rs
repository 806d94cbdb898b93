//! The native half of the `changedet` Python package (python/changedet/): models, prediction and
//! scores of the library crates, on PyTorch's own tensors. Every computation releases the GIL.

mod bridge;
mod cpu_blocks;
mod errors;
mod functions;
mod model;
mod options;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    keep_freed_memory();
    m.add("LIBTORCH_VERSION", env!("CHANGEDET_LIBTORCH_VERSION"))?;
    m.add("MODEL_NAMES", changedet_models::MODEL_NAMES.to_vec())?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(functions::binary_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    Ok(())
}

/// glibc's malloc hands large blocks back to the kernel on free (mmap above a threshold, trimming
/// the heap's top), so every forward pass faults its feature maps' pages in again: predict ran
/// 1.27× the CLI's model time (512² FC-Siam-diff, median of 3 rounds), where the CLI's jemalloc
/// keeps freed memory. Raising both thresholds keeps it in the process as jemalloc does (RSS stays
/// at its peak): 1.06–1.09× set here at import, 1.02–1.04× set before Python starts
/// (`MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184`;
/// `crates/python/bench/predict.py`, two runs of 3 rounds each). Blocks over 32 MiB are mapped
/// afresh whatever the threshold: `cpu_blocks.rs` keeps those (1.020× with both).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
