//! A convolution followed by batch norm, as one part. Training runs the two in turn (the norm
//! uses batch statistics and updates its running ones); inference folds the norm's per-channel
//! affine map into the convolution's weight and bias, which spares a pass over every activation
//! (batch norm was 5 % of ClearSCD's inference). The folded weight is made on each call, a few
//! operations on weight-sized tensors, so no stale copy survives a weight update or a load.
//! Folding only happens where no gradient is recorded (under `no_grad`, or frozen weights and an
//! input without gradient): gradients through folded weights round differently, and ClearSCD's
//! eval-mode gradient golden moved by 1.1e-4 of its largest value, past its 1e-4 tolerance.
//! Variables keep the layers' own names, so state dicts load unchanged.

use tch::nn::{self, Module};
use tch::Tensor;

use crate::torch_init;

#[derive(Debug)]
enum Conv {
    Plain { layer: nn::Conv2D, config: nn::ConvConfig },
    Transposed { layer: nn::ConvTranspose2D, config: nn::ConvTransposeConfig },
}

#[derive(Debug)]
pub struct ConvBn {
    conv: Conv,
    bn: nn::BatchNorm,
    eps: f64,
}

impl ConvBn {
    /// A k×k convolution at `conv_vs` and its norm at `bn_vs`, initialised as PyTorch does.
    pub fn new(conv_vs: nn::Path, bn_vs: nn::Path, c_in: i64, c_out: i64, k: i64, config: nn::ConvConfig, bn: nn::BatchNormConfig) -> Self {
        assert!(matches!(config.padding_mode, nn::PaddingMode::Zeros), "the folded convolution pads with zeros only");
        let layer = torch_init::conv2d(conv_vs, c_in, c_out, k, config);
        ConvBn { conv: Conv::Plain { layer, config }, eps: bn.eps, bn: torch_init::batch_norm2d(bn_vs, c_out, bn) }
    }

    /// The same with a transposed convolution (ungrouped: its weight is `[c_in, c_out, k, k]`).
    pub fn transposed(conv_vs: nn::Path, bn_vs: nn::Path, c_in: i64, c_out: i64, k: i64, config: nn::ConvTransposeConfig, bn: nn::BatchNormConfig) -> Self {
        assert_eq!(config.groups, 1, "a grouped transposed convolution's weight does not fold per output channel");
        let layer = torch_init::conv_transpose2d(conv_vs, c_in, c_out, k, config);
        ConvBn { conv: Conv::Transposed { layer, config }, eps: bn.eps, bn: torch_init::batch_norm2d(bn_vs, c_out, bn) }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            return self.conv_then_norm(x, true);
        }
        let (scale, shift) = self.norm_as_affine(); // [c_out] each
        // These carry a gradient exactly when one is recorded for the norm's parameters.
        if scale.requires_grad() || shift.requires_grad() || x.requires_grad() {
            return self.conv_then_norm(x, false);
        }
        match &self.conv {
            Conv::Plain { layer, config: c } => {
                let (weight, bias) = fold(&layer.ws, layer.bs.as_ref(), &scale, &shift, [-1, 1, 1, 1]);
                x.conv2d(&weight, Some(&bias), [c.stride; 2], [c.padding; 2], [c.dilation; 2], c.groups)
            }
            Conv::Transposed { layer, config: c } => {
                let (weight, bias) = fold(&layer.ws, layer.bs.as_ref(), &scale, &shift, [1, -1, 1, 1]);
                x.conv_transpose2d(&weight, Some(&bias), [c.stride; 2], [c.padding; 2], [c.output_padding; 2], c.groups, [c.dilation; 2])
            }
        }
    }

    fn conv_then_norm(&self, x: &Tensor, train: bool) -> Tensor {
        let y = match &self.conv {
            Conv::Plain { layer, .. } => layer.forward(x),
            Conv::Transposed { layer, .. } => layer.forward(x),
        };
        y.apply_t(&self.bn, train)
    }

    /// The norm at inference as `y = scale · x + shift` per channel.
    fn norm_as_affine(&self) -> (Tensor, Tensor) {
        let bn = &self.bn;
        // Out of place throughout: rsqrt's backward needs its output, should gradients be on.
        let inv_std = (&bn.running_var + self.eps).rsqrt();
        let scale = match &bn.ws {
            Some(gamma) => inv_std * gamma,
            None => inv_std,
        };
        let centring = -(&bn.running_mean * &scale);
        let shift = match &bn.bs {
            Some(beta) => centring + beta,
            None => centring,
        };
        (scale, shift)
    }
}

/// The weight scaled along its output-channel axis (`axis`: the view putting the channels there)
/// and the bias that the norm's shift and the convolution's own bias make together.
fn fold(weight: &Tensor, bias: Option<&Tensor>, scale: &Tensor, shift: &Tensor, axis: [i64; 4]) -> (Tensor, Tensor) {
    let weight = weight * scale.view(axis);
    let bias = match bias {
        Some(bias) => bias * scale + shift,
        None => shift.shallow_clone(),
    };
    (weight, bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Running statistics and affine parameters far from their initial values, so that folding
    /// them wrongly shows.
    fn perturb(vs: &nn::VarStore) {
        tch::manual_seed(3);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                let noise = t.rand_like();
                let value = if name.ends_with("running_var") { noise * 2.0 + 0.5 } else { t.randn_like() };
                t.copy_(&value);
            }
        });
    }

    fn assert_folds(part: &ConvBn, vs: &nn::VarStore, x: &Tensor) {
        perturb(vs);
        let (folded, plain) = tch::no_grad(|| (part.forward_t(x, false), part.conv_then_norm(x, false)));
        assert_eq!(folded.size(), plain.size());
        let error = f64::try_from((&folded - &plain).abs().max()).unwrap();
        let magnitude = f64::try_from(plain.abs().max()).unwrap();
        // Float reassociation only: the same sums, scaled before rather than after.
        assert!(error <= 1e-5 * magnitude, "folded differs by {error} at magnitude {magnitude}");
    }

    #[test]
    fn folded_inference_equals_conv_then_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = nn::ConvConfig { stride: 2, padding: 1, bias: true, ..Default::default() };
        let part = ConvBn::new(vs.root() / "conv", vs.root() / "bn", 6, 8, 3, config, nn::BatchNormConfig { eps: 1e-3, ..Default::default() });
        assert_folds(&part, &vs, &Tensor::randn([2, 6, 11, 9], (Kind::Float, Device::Cpu)));
    }

    #[test]
    fn folded_inference_equals_conv_then_norm_grouped_without_bias() {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = nn::ConvConfig { groups: 8, padding: 2, bias: false, ..Default::default() };
        let part = ConvBn::new(vs.root() / "conv", vs.root() / "bn", 8, 8, 5, config, Default::default());
        assert_folds(&part, &vs, &Tensor::randn([1, 8, 12, 12], (Kind::Float, Device::Cpu)));
    }

    #[test]
    fn folded_inference_equals_transposed_conv_then_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = nn::ConvTransposeConfig { stride: 2, padding: 1, output_padding: 1, ..Default::default() };
        let part = ConvBn::transposed(vs.root() / "conv", vs.root() / "bn", 4, 6, 3, config, Default::default());
        assert_folds(&part, &vs, &Tensor::randn([2, 4, 7, 5], (Kind::Float, Device::Cpu)));
    }

    #[test]
    fn recorded_gradients_come_from_conv_then_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let part = ConvBn::new(vs.root() / "conv", vs.root() / "bn", 3, 4, 3, Default::default(), Default::default());
        perturb(&vs);
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let gamma = part.bn.ws.as_ref().unwrap();
        let gradient = |y: Tensor| Tensor::run_backward(&[y.square().sum(Kind::Float)], &[gamma], false, false).remove(0);
        let through_part = gradient(part.forward_t(&x, false));
        let plain = gradient(part.conv_then_norm(&x, false));
        // Bit for bit: the same operations, not a folded equivalent.
        assert!(through_part.equal(&plain));
    }

    #[test]
    fn training_uses_batch_statistics() {
        let vs = nn::VarStore::new(Device::Cpu);
        let part = ConvBn::new(vs.root() / "conv", vs.root() / "bn", 3, 4, 1, Default::default(), Default::default());
        let y = part.forward_t(&(Tensor::randn([4, 3, 6, 6], (Kind::Float, Device::Cpu)) * 5.0 + 2.0), true);
        // BatchNorm at its initial scale 1 and shift 0 normalises every channel over the batch.
        let mean = f64::try_from(y.mean_dim(&[0i64, 2, 3][..], false, None).abs().max()).unwrap();
        assert!(mean < 1e-5, "channel means {mean}");
    }
}
