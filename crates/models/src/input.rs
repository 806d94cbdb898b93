//! Batches of the data crate as tensors on a device.

use tch::{Device, Kind, Tensor};

use changedet_data::{Batch, Normalization};

/// `[n, h, w, 3]` uint8 RGB pixels → the model input `[n, 3, h, w]` under `norm`.
pub fn normalise_pixels(pixels: &Tensor, norm: &Normalization) -> Tensor {
    let size = pixels.size();
    let bytes = Vec::<u8>::try_from(pixels.to_device(Device::Cpu).contiguous().flatten(0, -1)).expect("uint8 pixels");
    let plane = (size[1] * size[2] * 3) as usize;
    let mut out = vec![0f32; bytes.len()];
    for (src, dst) in bytes.chunks(plane).zip(out.chunks_mut(plane)) {
        norm.write_chw(src, dst);
    }
    Tensor::from_slice(&out).view([size[0], 3, size[1], size[2]]).to_device(pixels.device())
}

/// A CPU tensor on `device`. To a GPU through pinned host memory without blocking: the copy is
/// queued on the stream before the kernels that read it, and the CPU goes on to the next batch.
pub fn to_device(host: Tensor, device: Device) -> Tensor {
    if device.is_cuda() { host.pin_memory(device).to_device_(device, host.kind(), true, false) } else { host.to_device(device) }
}

/// Before and after images `[n, bands, h, w]` (float), change labels `[n, h, w]` (int64, 255 =
/// ignore) and, for semantic change data, each date's class maps `[n, h, w]` (int64, K = unlabeled).
pub struct BatchTensors {
    pub before: Tensor,
    pub after: Tensor,
    pub label: Option<Tensor>,
    pub semantic: Option<[Tensor; 2]>,
    /// Each pair's class names per date, for vision-language models.
    pub classes: Vec<[Vec<String>; 2]>,
}

impl BatchTensors {
    pub fn new(batch: &Batch, device: Device) -> Self {
        let shape = [batch.len() as i64, batch.bands as i64, batch.height as i64, batch.width as i64];
        let image = |data: &[f32]| to_device(Tensor::from_slice(data).view(shape), device);
        // Labels travel as bytes, an eighth of their int64 size.
        let labels = |l: &[u8]| to_device(Tensor::from_slice(l).view([shape[0], shape[2], shape[3]]), device).to_kind(Kind::Int64);
        BatchTensors {
            before: image(&batch.before),
            after: image(&batch.after),
            label: batch.label.as_deref().map(labels),
            semantic: batch.semantic.as_ref().map(|[a, b]| [labels(a), labels(b)]),
            classes: batch.classes.clone(),
        }
    }

    /// The change labels, which training needs.
    pub fn change_label(&self) -> crate::Result<&Tensor> {
        self.label.as_ref().ok_or_else(|| crate::ModelError::Recipe("training needs change labels".into()))
    }

    /// Both dates' class maps, which semantic change models train on.
    pub fn semantic_labels(&self) -> crate::Result<&[Tensor; 2]> {
        self.semantic.as_ref().ok_or_else(|| crate::ModelError::Recipe("semantic change models train on semantic labels (hiucd:PATH, second:PATH)".into()))
    }
}
