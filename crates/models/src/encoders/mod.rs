//! Backbones that turn one image into a feature pyramid. Decoders take any of them, as in
//! segmentation-models-pytorch: they only need the channel counts.

pub mod efficientnet;

use tch::Tensor;

pub trait Encoder: Send + std::fmt::Debug {
    /// Channels of the maps `forward_t` returns, finest first.
    fn channels(&self) -> &[i64];

    /// Feature maps at strides 2, 4, 8, 16 and 32.
    fn forward_t(&self, x: &Tensor, train: bool) -> Vec<Tensor>;

    /// The weights are final: fold what depends on them alone (`ChangeModel::freeze_for_inference`).
    fn freeze_for_inference(&self);
}
