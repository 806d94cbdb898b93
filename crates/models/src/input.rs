//! Batches of the data crate as tensors on a device.

use tch::{Device, Kind, Tensor};

use changedet_data::Batch;

/// Before and after images `[n, 3, h, w]` (float), change labels `[n, h, w]` (int64, 255 =
/// ignore) and, for semantic change data, each date's class maps `[n, h, w]` (int64, K = unlabeled).
pub struct BatchTensors {
    pub before: Tensor,
    pub after: Tensor,
    pub label: Option<Tensor>,
    pub semantic: Option<[Tensor; 2]>,
}

impl BatchTensors {
    pub fn new(batch: &Batch, device: Device) -> Self {
        let shape = [batch.len() as i64, 3, batch.height as i64, batch.width as i64];
        let image = |data: &[f32]| Tensor::from_slice(data).view(shape).to_device(device);
        let labels = |l: &[u8]| Tensor::from_slice(l).view([shape[0], shape[2], shape[3]]).to_kind(Kind::Int64).to_device(device);
        BatchTensors {
            before: image(&batch.before),
            after: image(&batch.after),
            label: batch.label.as_deref().map(labels),
            semantic: batch.semantic.as_ref().map(|[a, b]| [labels(a), labels(b)]),
        }
    }
}
