//! Channels-last memory for inference on a CPU. oneDNN's convolutions run on NHWC memory, and a
//! network held in NCHW is reordered around every convolution. A tensor keeps its `[n, c, h, w]`
//! shape with NHWC strides after `permute → contiguous → permute`, and libtorch then keeps the
//! channels-last layout from layer to layer (convolutions, normalisation, activations, sums).
//! Moving the kernels is enough: a convolution whose kernel is channels-last returns a
//! channels-last map, so the first layer converts the input. Results equal NCHW's up to float
//! rounding (another summation order inside the kernels).

use tch::Tensor;
use tch::nn::VarStore;

/// `t` (4-d) with NHWC memory under its NCHW shape; other tensors as they are.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() == 4 { t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]) } else { t.shallow_clone() }
}

/// Moves every 4-d variable (convolution kernels) of `vs` to channels-last memory, in place.
pub fn weights_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut variable) in vs.variables() {
            if variable.dim() == 4 {
                let moved = channels_last(&variable);
                variable.set_data(&moved);
            }
        }
    });
}
