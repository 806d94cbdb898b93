//! A convolution followed by batch norm, as one part. Training and unfrozen evaluation run the
//! two in turn, as the references do. Once the weights are final (`freeze_for_inference`), the
//! norm's per-channel affine map is folded into the convolution's weight and bias, once, which
//! spares a pass over every activation (batch norm was 5 % of ClearSCD's inference). Folding on
//! every call instead cost as much as it saved: RN50's last stage on a 256² pair has 8×8 maps
//! and convolutions of a million weights. Variables keep the layers' own names, so state dicts
//! load unchanged.

use std::sync::OnceLock;

use tch::nn::{self, Module};
use tch::Tensor;

use crate::torch_init;

#[derive(Debug)]
enum Conv {
    Plain { layer: nn::Conv2D, config: nn::ConvConfig },
    Transposed { layer: nn::ConvTranspose2D, config: nn::ConvTransposeConfig },
}

/// The convolution's weight and bias with the norm folded in.
#[derive(Debug)]
struct Folded {
    weight: Tensor,
    bias: Tensor,
}

#[derive(Debug)]
pub struct ConvBn {
    conv: Conv,
    bn: nn::BatchNorm,
    eps: f64,
    folded: OnceLock<Folded>,
}

impl ConvBn {
    /// A k×k convolution at `conv_vs` and its norm at `bn_vs`, initialised as PyTorch does.
    pub fn new(conv_vs: nn::Path, bn_vs: nn::Path, c_in: i64, c_out: i64, k: i64, config: nn::ConvConfig, bn: nn::BatchNormConfig) -> Self {
        assert!(matches!(config.padding_mode, nn::PaddingMode::Zeros), "the folded convolution pads with zeros only");
        let layer = torch_init::conv2d(conv_vs, c_in, c_out, k, config);
        Self::with(Conv::Plain { layer, config }, bn_vs, c_out, bn)
    }

    /// The same with a transposed convolution (ungrouped: its weight is `[c_in, c_out, k, k]`).
    pub fn transposed(conv_vs: nn::Path, bn_vs: nn::Path, c_in: i64, c_out: i64, k: i64, config: nn::ConvTransposeConfig, bn: nn::BatchNormConfig) -> Self {
        assert_eq!(config.groups, 1, "a grouped transposed convolution's weight does not fold per output channel");
        let layer = torch_init::conv_transpose2d(conv_vs, c_in, c_out, k, config);
        Self::with(Conv::Transposed { layer, config }, bn_vs, c_out, bn)
    }

    fn with(conv: Conv, bn_vs: nn::Path, c_out: i64, bn: nn::BatchNormConfig) -> Self {
        ConvBn { conv, eps: bn.eps, bn: torch_init::batch_norm2d(bn_vs, c_out, bn), folded: OnceLock::new() }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match (self.folded.get(), &self.conv) {
            (Some(f), Conv::Plain { config: c, .. }) if !train => x.conv2d(&f.weight, Some(&f.bias), [c.stride; 2], [c.padding; 2], [c.dilation; 2], c.groups),
            (Some(f), Conv::Transposed { config: c, .. }) if !train => {
                x.conv_transpose2d(&f.weight, Some(&f.bias), [c.stride; 2], [c.padding; 2], [c.output_padding; 2], c.groups, [c.dilation; 2])
            }
            _ => self.conv_then_norm(x, train),
        }
    }

    /// Folds the norm into the convolution for every later inference call: the weights must
    /// not change afterwards (`ChangeModel::freeze_for_inference`).
    pub fn freeze_for_inference(&self) {
        self.folded.get_or_init(|| tch::no_grad(|| self.fold()));
    }

    fn conv_then_norm(&self, x: &Tensor, train: bool) -> Tensor {
        let y = match &self.conv {
            Conv::Plain { layer, .. } => layer.forward(x),
            Conv::Transposed { layer, .. } => layer.forward(x),
        };
        y.apply_t(&self.bn, train)
    }

    /// The norm at inference is `y = scale · x + shift` per output channel: the weight is scaled
    /// along that axis (kept in its own memory layout, channels-last on a CPU) and the shift and
    /// the convolution's own bias make the bias.
    fn fold(&self) -> Folded {
        let bn = &self.bn;
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
        let (weight, bias, axis) = match &self.conv {
            Conv::Plain { layer, .. } => (&layer.ws, layer.bs.as_ref(), [-1, 1, 1, 1]),
            Conv::Transposed { layer, .. } => (&layer.ws, layer.bs.as_ref(), [1, -1, 1, 1]),
        };
        let mut folded_weight = weight.empty_like();
        folded_weight.copy_(&(weight * scale.view(axis)));
        let bias = match bias {
            Some(bias) => bias * &scale + shift,
            None => shift,
        };
        Folded { weight: folded_weight, bias }
    }
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

    /// Before freezing, inference is conv-then-norm bit for bit; after, the folded convolution,
    /// equal up to float reassociation; training is unchanged by freezing.
    fn assert_folds(part: &ConvBn, vs: &nn::VarStore, x: &Tensor) {
        perturb(vs);
        let plain = tch::no_grad(|| part.conv_then_norm(x, false));
        assert!(tch::no_grad(|| part.forward_t(x, false)).equal(&plain), "unfrozen inference is conv then norm");
        part.freeze_for_inference();
        let folded = tch::no_grad(|| part.forward_t(x, false));
        assert_eq!(folded.size(), plain.size());
        let error = f64::try_from((&folded - &plain).abs().max()).unwrap();
        let magnitude = f64::try_from(plain.abs().max()).unwrap();
        // The same sums, scaled before rather than after: float rounding only.
        assert!(error <= 1e-5 * magnitude, "folded differs by {error} at magnitude {magnitude}");
        let trained = tch::no_grad(|| part.forward_t(x, true));
        assert!(trained.equal(&tch::no_grad(|| part.conv_then_norm(x, true))), "training ignores the folding");
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
    fn the_folded_weight_keeps_channels_last_memory() {
        let vs = nn::VarStore::new(Device::Cpu);
        let part = ConvBn::new(vs.root() / "conv", vs.root() / "bn", 4, 6, 3, Default::default(), Default::default());
        crate::layout::weights_channels_last(&vs);
        part.freeze_for_inference();
        let Conv::Plain { layer, .. } = &part.conv else { unreachable!() };
        assert_eq!(part.folded.get().unwrap().weight.stride(), layer.ws.stride());
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
