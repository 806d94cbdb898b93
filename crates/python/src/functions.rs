//! Functions of the package that need no model.

use pyo3::prelude::*;
use tch::{Device, Kind};

use changedet_metrics::BinaryConfusion;

use crate::bridge;
use crate::errors::{Failure, input};

/// Binary change scores (`reference/anchors.md` §3.1) of 0/1 maps `pred` against `gt` (uint8
/// tensors of one shape, any batch layout); `gt` pixels equal to `ignore` are left out. Returns
/// the scores as JSON.
#[pyfunction]
#[pyo3(signature = (pred, gt, ignore=None))]
pub fn binary_metrics(py: Python<'_>, pred: &Bound<'_, PyAny>, gt: &Bound<'_, PyAny>, ignore: Option<u8>) -> PyResult<String> {
    let (pred, gt) = (bridge::from_python(pred, "pred")?, bridge::from_python(gt, "gt")?);
    if pred.size() != gt.size() {
        return Err(input(format!("pred {:?} and gt {:?} differ in shape", pred.size(), gt.size())));
    }
    if !matches!((pred.f_kind(), gt.f_kind()), (Ok(Kind::Uint8), Ok(Kind::Uint8))) {
        return Err(input("pred and gt must be uint8 maps (0 unchanged, 1 changed)"));
    }
    py.detach(move || {
        let bytes = |t: &tch::Tensor| Vec::<u8>::try_from(t.to_device(Device::Cpu).contiguous().flatten(0, -1));
        let mut confusion = BinaryConfusion::default();
        confusion.accumulate(&bytes(&pred)?, &bytes(&gt)?, ignore).map_err(|e| Failure::input(e.to_string()))?;
        Ok::<_, Failure>(serde_json::to_string(&confusion.metrics()).expect("scores serialise"))
    })
    .map_err(PyErr::from)
}
