//! EfficientNet (Tan & Le, ICML 2019) as the `efficientnet_pytorch` package builds it and
//! segmentation-models-pytorch wraps it as an encoder: TensorFlow "same" padding frozen for a
//! 224 input (asymmetric on stride-2 layers), swish, squeeze-excitation, drop-connect, and
//! batch norm with eps 1e-3 / momentum 0.01. Variable names follow that package
//! (`_conv_stem`, `_blocks.N._depthwise_conv`, …) so its state dicts load unchanged.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::Encoder;
use crate::torch_init;

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

fn batch_norm(vs: nn::Path, c: i64) -> nn::BatchNorm {
    torch_init::batch_norm2d(vs, c, nn::BatchNormConfig { eps: 1e-3, momentum: 0.01, ..Default::default() })
}

fn conv(vs: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, bias: bool) -> nn::Conv2D {
    torch_init::conv2d(vs, c_in, c_out, k, nn::ConvConfig { stride, bias, ..Default::default() })
}

/// TF "same" padding as `Conv2dStaticSamePadding` freezes it for a 224 input: for inputs whose
/// sides are even at every stride-2 layer (any multiple of 32), left/top get ⌊(k−s)/2⌋ of the
/// k − s extra pixels and right/bottom the rest. Returned as `[left, right, top, bottom]`.
fn same_padding(kernel: i64, stride: i64) -> [i64; 4] {
    let total = (kernel - stride).max(0);
    let (before, after) = (total / 2, total - total / 2);
    [before, after, before, after]
}

/// A depthwise convolution with TF "same" padding: symmetric padding (stride 1) is the
/// convolution's own, which spares a padded copy of the input per call; asymmetric padding
/// (stride 2) stays an explicit zero pad.
#[derive(Debug)]
struct SamePaddedConv {
    conv: nn::Conv2D,
    explicit_pad: Option<[i64; 4]>,
}

impl SamePaddedConv {
    fn new(vs: nn::Path, channels: i64, kernel: i64, stride: i64) -> Self {
        let pad = same_padding(kernel, stride);
        let symmetric = pad[0] == pad[1];
        let config = nn::ConvConfig { stride, groups: channels, bias: false, padding: if symmetric { pad[0] } else { 0 }, ..Default::default() };
        SamePaddedConv { conv: torch_init::conv2d(vs, channels, channels, kernel, config), explicit_pad: (!symmetric).then_some(pad) }
    }
}

impl Module for SamePaddedConv {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self.explicit_pad {
            Some(pad) => x.constant_pad_nd(pad).apply(&self.conv),
            None => x.apply(&self.conv),
        }
    }
}

#[derive(Debug)]
struct MbConv {
    expand: Option<(nn::Conv2D, nn::BatchNorm)>,
    depthwise: SamePaddedConv,
    bn1: nn::BatchNorm,
    se_reduce: nn::Conv2D,
    se_expand: nn::Conv2D,
    project: nn::Conv2D,
    bn2: nn::BatchNorm,
    residual: bool,
    drop_connect: f64,
}

impl MbConv {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, expand: i64, drop_connect: f64) -> Self {
        let c_exp = c_in * expand;
        let n_se = (c_in / 4).max(1);
        MbConv {
            expand: (expand != 1).then(|| (conv(vs / "_expand_conv", c_in, c_exp, 1, 1, false), batch_norm(vs / "_bn0", c_exp))),
            depthwise: SamePaddedConv::new(vs / "_depthwise_conv", c_exp, kernel, stride),
            bn1: batch_norm(vs / "_bn1", c_exp),
            se_reduce: conv(vs / "_se_reduce", c_exp, n_se, 1, 1, true),
            se_expand: conv(vs / "_se_expand", n_se, c_exp, 1, 1, true),
            project: conv(vs / "_project_conv", c_exp, c_out, 1, 1, false),
            bn2: batch_norm(vs / "_bn2", c_out),
            residual: stride == 1 && c_in == c_out,
            drop_connect,
        }
    }

    fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        let x = match &self.expand {
            Some((conv, bn)) => input.apply(conv).apply_t(bn, train).silu(),
            None => input.shallow_clone(),
        };
        let x = x.apply(&self.depthwise).apply_t(&self.bn1, train).silu();
        let gate = x.adaptive_avg_pool2d([1, 1]).apply(&self.se_reduce).silu().apply(&self.se_expand).sigmoid();
        let x = (x * gate).apply(&self.project).apply_t(&self.bn2, train);
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
    stem: nn::Conv2D,
    bn0: nn::BatchNorm,
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
            stem: conv(vs / "_conv_stem", 3, stages[0].c_in, 3, 2, false),
            bn0: batch_norm(vs / "_bn0", stages[0].c_in),
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

    fn forward_t(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        debug_assert_eq!(x.kind(), Kind::Float);
        let stem = x.constant_pad_nd(same_padding(3, 2)).apply(&self.stem).apply_t(&self.bn0, train).silu(); // [n,32,h/2,w/2]
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
