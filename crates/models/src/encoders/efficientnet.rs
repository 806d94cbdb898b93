//! EfficientNet (Tan & Le, ICML 2019) as the `efficientnet_pytorch` package builds it and
//! segmentation-models-pytorch wraps it as an encoder: TensorFlow "same" padding frozen for a
//! 224 input (asymmetric on stride-2 layers), swish, squeeze-excitation, drop-connect, and
//! batch norm with eps 1e-3 / momentum 0.01. Variable names follow that package
//! (`_conv_stem`, `_blocks.N._depthwise_conv`, …) so its state dicts load unchanged.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use super::Encoder;
use crate::conv_bn::ConvBn;

/// One row of the EfficientNet block table: `repeats` MBConv blocks, the first of which changes
/// the width and applies the stride.
#[derive(Debug, Clone, Copy)]
struct StageArgs {
    repeats: usize,
    kernel: i64,
    stride: i64,
    expand: i64,
    c_in: i64,
    c_out: i64,
}

const fn stage(repeats: usize, kernel: i64, stride: i64, expand: i64, c_in: i64, c_out: i64) -> StageArgs {
    StageArgs { repeats, kernel, stride, expand, c_in, c_out }
}

/// EfficientNet-B0 (width and depth multipliers 1.0).
const B0: [StageArgs; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    #[serde(rename = "efficientnet-b0")]
    B0,
}

impl Variant {
    fn stages(self) -> &'static [StageArgs] {
        match self {
            Variant::B0 => &B0,
        }
    }

    /// The block indices after which smp taps a feature map (strides 4, 8, 16, 32).
    fn taps(self) -> [usize; 4] {
        match self {
            Variant::B0 => [3, 5, 9, 16],
        }
    }

    fn channels(self) -> [i64; 5] {
        match self {
            Variant::B0 => [32, 24, 40, 112, 320],
        }
    }
}

/// A k×k convolution without bias at `block/conv` and its norm at `block/bn` (TensorFlow's
/// batch-norm settings).
fn conv_bn(block: &nn::Path, conv: &str, bn: &str, c_in: i64, c_out: i64, k: i64, config: nn::ConvConfig) -> ConvBn {
    ConvBn::new(block / conv, block / bn, c_in, c_out, k, nn::ConvConfig { bias: false, ..config }, nn::BatchNormConfig { eps: 1e-3, momentum: 0.01, ..Default::default() })
}

/// The squeeze-excitation's 1×1 convolutions, with bias.
fn se_conv(vs: nn::Path, c_in: i64, c_out: i64) -> nn::Conv2D {
    crate::torch_init::conv2d(vs, c_in, c_out, 1, Default::default())
}

/// TF "same" padding as `Conv2dStaticSamePadding` freezes it for a 224 input: for inputs whose
/// sides are even at every stride-2 layer (any multiple of 32), left/top get ⌊(k−s)/2⌋ of the
/// k − s extra pixels and right/bottom the rest. Returned as `[left, right, top, bottom]`.
fn same_padding(kernel: i64, stride: i64) -> [i64; 4] {
    let total = (kernel - stride).max(0);
    let (before, after) = (total / 2, total - total / 2);
    [before, after, before, after]
}

/// A convolution with TF "same" padding and its norm: symmetric padding (stride 1) is the
/// convolution's own, which spares a padded copy of the input per call; asymmetric padding
/// (stride 2) stays an explicit zero pad.
#[derive(Debug)]
struct SamePaddedConvBn {
    conv_bn: ConvBn,
    explicit_pad: Option<[i64; 4]>,
}

impl SamePaddedConvBn {
    fn new(block: &nn::Path, names: [&str; 2], c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> Self {
        let pad = same_padding(kernel, stride);
        let symmetric = pad[0] == pad[1];
        let config = nn::ConvConfig { stride, groups, padding: if symmetric { pad[0] } else { 0 }, ..Default::default() };
        SamePaddedConvBn { conv_bn: conv_bn(block, names[0], names[1], c_in, c_out, kernel, config), explicit_pad: (!symmetric).then_some(pad) }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self.explicit_pad {
            Some(pad) => self.conv_bn.forward_t(&x.constant_pad_nd(pad), train),
            None => self.conv_bn.forward_t(x, train),
        }
    }
}

#[derive(Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: SamePaddedConvBn,
    se_reduce: nn::Conv2D,
    se_expand: nn::Conv2D,
    project: ConvBn,
    residual: bool,
    drop_connect: f64,
}

impl MbConv {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, expand: i64, drop_connect: f64) -> Self {
        let c_exp = c_in * expand;
        let n_se = (c_in / 4).max(1);
        MbConv {
            expand: (expand != 1).then(|| conv_bn(vs, "_expand_conv", "_bn0", c_in, c_exp, 1, Default::default())),
            depthwise: SamePaddedConvBn::new(vs, ["_depthwise_conv", "_bn1"], c_exp, c_exp, kernel, stride, c_exp),
            se_reduce: se_conv(vs / "_se_reduce", c_exp, n_se),
            se_expand: se_conv(vs / "_se_expand", n_se, c_exp),
            project: conv_bn(vs, "_project_conv", "_bn2", c_exp, c_out, 1, Default::default()),
            residual: stride == 1 && c_in == c_out,
            drop_connect,
        }
    }

    fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        let x = match &self.expand {
            Some(expand) => expand.forward_t(input, train).silu(),
            None => input.shallow_clone(),
        };
        let x = self.depthwise.forward_t(&x, train).silu();
        let gate = x.adaptive_avg_pool2d([1, 1]).apply(&self.se_reduce).silu().apply(&self.se_expand).sigmoid();
        let x = self.project.forward_t(&(x * gate), train);
        if !self.residual {
            return x;
        }
        drop_connect(&x, self.drop_connect, train) + input
    }
}

/// Stochastic depth per sample: keeps a block's residual branch with probability 1 − p and
/// rescales it, as `efficientnet_pytorch.utils.drop_connect` does.
fn drop_connect(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    let keep = 1.0 - p;
    let mask = (Tensor::rand([x.size()[0], 1, 1, 1], (x.kind(), x.device())) + keep).floor();
    x / keep * mask
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub variant: Variant,
    /// Largest drop-connect rate; block j of J uses rate · j / J.
    pub drop_connect_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config { variant: Variant::B0, drop_connect_rate: 0.2 }
    }
}

#[derive(Debug)]
pub struct EfficientNet {
    stem: SamePaddedConvBn,
    blocks: Vec<MbConv>,
    taps: [usize; 4],
    channels: [i64; 5],
}

impl EfficientNet {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Self {
        let stages = cfg.variant.stages();
        let total: usize = stages.iter().map(|s| s.repeats).sum();
        let mut blocks = Vec::with_capacity(total);
        for s in stages {
            for r in 0..s.repeats {
                let j = blocks.len();
                let (c_in, stride) = if r == 0 { (s.c_in, s.stride) } else { (s.c_out, 1) };
                let rate = cfg.drop_connect_rate * j as f64 / total as f64;
                blocks.push(MbConv::new(&(vs / "_blocks" / j), c_in, s.c_out, s.kernel, stride, s.expand, rate));
            }
        }
        EfficientNet {
            stem: SamePaddedConvBn::new(vs, ["_conv_stem", "_bn0"], 3, stages[0].c_in, 3, 2, 1),
            blocks,
            taps: cfg.variant.taps(),
            channels: cfg.variant.channels(),
        }
    }
}

impl Encoder for EfficientNet {
    fn channels(&self) -> &[i64] {
        &self.channels
    }

    fn freeze_for_inference(&self) {
        self.stem.conv_bn.freeze_for_inference();
        for block in &self.blocks {
            let parts = block.expand.iter().chain([&block.depthwise.conv_bn, &block.project]);
            parts.for_each(ConvBn::freeze_for_inference);
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        debug_assert_eq!(x.kind(), Kind::Float);
        let stem = self.stem.forward_t(x, train).silu(); // [n,32,h/2,w/2]
        let mut features = vec![stem];
        let mut x = features[0].shallow_clone();
        let mut start = 0;
        for &end in &self.taps {
            for block in &self.blocks[start..end] {
                x = block.forward_t(&x, train);
            }
            features.push(x.shallow_clone()); // strides 4, 8, 16, 32
            start = end;
        }
        features
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b0_shapes_and_parameter_count() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = EfficientNet::new(&vs.root(), &Config::default());
        let x = Tensor::zeros([1, 3, 64, 96], (Kind::Float, tch::Device::Cpu));
        let sizes: Vec<Vec<i64>> = tch::no_grad(|| net.forward_t(&x, false)).iter().map(Tensor::size).collect();
        assert_eq!(sizes, [[1, 32, 32, 48], [1, 24, 16, 24], [1, 40, 8, 12], [1, 112, 4, 6], [1, 320, 2, 3]]);
        let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        // efficientnet_pytorch's B0 without its head (`_conv_head`, `_bn1`) and classifier.
        assert_eq!(params, 3_595_388);
    }
}
