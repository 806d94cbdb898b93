//! CLIP's modified ResNet (RN50 family) as DenseCLIP/ChangeCLIP run it: a 3-conv stem with an
//! average pool, anti-aliased bottlenecks (average pooling before strided 1×1 convs), and an
//! attention pool that returns the global embedding *and* a per-location embedding map.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use super::ImageFeatures;
use crate::conv_bn::ConvBn;
use super::transformer::{attention, resize_positional_grid};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {
    /// Bottleneck blocks per stage.
    pub layers: [i64; 4],
    /// Stem width; stage `i` has `width · 2^i` planes and `4 ×` that many output channels.
    pub width: i64,
    /// Width of the joint image-text space.
    pub output_dim: i64,
    /// Attention-pool heads (ChangeCLIP fixes 32; OpenAI uses `width / 2`: equal for RN50).
    pub heads: i64,
    /// Side of the stored positional grid: `input_resolution / 32` (ChangeCLIP stores 512's 16×16,
    /// OpenAI 224's 7×7); it is resized to the actual feature grid on every forward.
    pub positional_grid: i64,
}

impl Default for ResNetConfig {
    /// ChangeCLIP's RN50.
    fn default() -> Self {
        Self { layers: [3, 4, 6, 3], width: 64, output_dim: 1024, heads: 32, positional_grid: 16 }
    }
}

impl ResNetConfig {
    /// Channels of the four stage outputs.
    pub fn stage_channels(&self) -> [i64; 4] {
        [1, 2, 4, 8].map(|m| self.width * m * 4)
    }
}

/// A k×k convolution without bias (padding k/2) and its norm.
fn conv_bn(conv: nn::Path, bn: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> ConvBn {
    ConvBn::new(conv, bn, c_in, c_out, k, nn::ConvConfig { stride, padding: k / 2, bias: false, ..Default::default() }, Default::default())
}

fn avg_pool(x: &Tensor, k: i64) -> Tensor {
    if k == 1 { x.shallow_clone() } else { x.avg_pool2d([k, k], [k, k], [0, 0], false, true, None) }
}

#[derive(Debug)]
struct Bottleneck {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
    stride: i64,
    /// Average pool, 1×1 conv, BN: when the stride or channel count changes.
    downsample: Option<ConvBn>,
}

impl Bottleneck {
    fn new(vs: nn::Path, c_in: i64, planes: i64, stride: i64) -> Self {
        let c_out = 4 * planes;
        let downsample = (stride > 1 || c_in != c_out).then(|| conv_bn(&vs / "downsample" / 0, &vs / "downsample" / 1, c_in, c_out, 1, 1));
        Self {
            conv1: conv_bn(&vs / "conv1", &vs / "bn1", c_in, planes, 1, 1),
            conv2: conv_bn(&vs / "conv2", &vs / "bn2", planes, planes, 3, 1),
            conv3: conv_bn(&vs / "conv3", &vs / "bn3", planes, c_out, 1, 1),
            stride,
            downsample,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.conv1.forward_t(x, train).relu();
        let out = self.conv2.forward_t(&out, train).relu();
        let out = self.conv3.forward_t(&avg_pool(&out, self.stride), train);
        let identity = match &self.downsample {
            Some(downsample) => downsample.forward_t(&avg_pool(x, self.stride), train),
            None => x.shallow_clone(),
        };
        (out + identity).relu()
    }
}

/// Multi-head self-attention over `[mean token, h·w tokens]` with a resized positional grid.
#[derive(Debug)]
struct AttentionPool {
    positional_embedding: Tensor,
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    c_proj: nn::Linear,
    heads: i64,
}

impl AttentionPool {
    fn new(vs: nn::Path, grid: i64, embed_dim: i64, heads: i64, output_dim: i64) -> Self {
        let stdev = (embed_dim as f64).powf(-0.5);
        Self {
            positional_embedding: vs.var("positional_embedding", &[grid * grid + 1, embed_dim], nn::Init::Randn { mean: 0.0, stdev }),
            q_proj: nn::linear(&vs / "q_proj", embed_dim, embed_dim, Default::default()),
            k_proj: nn::linear(&vs / "k_proj", embed_dim, embed_dim, Default::default()),
            v_proj: nn::linear(&vs / "v_proj", embed_dim, embed_dim, Default::default()),
            c_proj: nn::linear(&vs / "c_proj", embed_dim, output_dim, Default::default()),
            heads,
        }
    }

    /// `[n, c, h, w]` → global `[n, d]` and dense `[n, d, h, w]` embeddings.
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (n, c, h, w) = x.size4().expect("[n, c, h, w]");
        let tokens = x.reshape([n, c, h * w]).transpose(1, 2); // [n, hw, c]
        let tokens = Tensor::cat(&[tokens.mean_dim(1, true, None), tokens], 1) + resize_positional_grid(&self.positional_embedding, h, w);
        let attended = attention(&self.q_proj.forward(&tokens), &self.k_proj.forward(&tokens), &self.v_proj.forward(&tokens), self.heads, false);
        let out = self.c_proj.forward(&attended); // [n, 1 + hw, d]
        let dense = out.narrow(1, 1, h * w).transpose(1, 2).reshape([n, -1, h, w]);
        (out.select(1, 0), dense)
    }
}

#[derive(Debug)]
pub struct ModifiedResNet {
    stem: [ConvBn; 3],
    stages: Vec<Vec<Bottleneck>>,
    attnpool: AttentionPool,
    pub config: ResNetConfig,
}

impl ModifiedResNet {
    pub fn new(vs: nn::Path, config: &ResNetConfig) -> Self {
        let width = config.width;
        let stem = [
            conv_bn(&vs / "conv1", &vs / "bn1", 3, width / 2, 3, 2),
            conv_bn(&vs / "conv2", &vs / "bn2", width / 2, width / 2, 3, 1),
            conv_bn(&vs / "conv3", &vs / "bn3", width / 2, width, 3, 1),
        ];
        let mut c_in = width;
        let stages = (0..4)
            .map(|i| {
                let planes = width << i;
                let layer = &vs / format!("layer{}", i + 1);
                (0..config.layers[i])
                    .map(|b| {
                        let stride = if i > 0 && b == 0 { 2 } else { 1 };
                        let block = Bottleneck::new(&layer / b, c_in, planes, stride);
                        c_in = 4 * planes;
                        block
                    })
                    .collect()
            })
            .collect();
        let attnpool = AttentionPool::new(&vs / "attnpool", config.positional_grid, width * 32, config.heads, config.output_dim);
        Self { stem, stages, attnpool, config: config.clone() }
    }

    /// Folds every batch norm into its convolution (`ConvBn::freeze_for_inference`).
    pub fn freeze_for_inference(&self) {
        let blocks = self.stages.iter().flatten();
        let block_parts = blocks.flat_map(|b| [&b.conv1, &b.conv2, &b.conv3].into_iter().chain(&b.downsample));
        self.stem.iter().chain(block_parts).for_each(ConvBn::freeze_for_inference);
    }

    /// The three stem convs and the 2×2 average pool: `[n, width, h/4, w/4]`.
    pub fn stem_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.stem.iter().fold(x.shallow_clone(), |x, conv_bn| conv_bn.forward_t(&x, train).relu());
        avg_pool(&x, 2)
    }

    /// `[n, 3, h, w]` (h, w multiples of 32) → stages at strides 4–32, global and dense embeddings.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> ImageFeatures {
        let mut x = self.stem_t(x, train); // [n, width, h/4, w/4]
        let mut levels = Vec::with_capacity(4);
        for stage in &self.stages {
            x = stage.iter().fold(x, |x, block| block.forward_t(&x, train));
            levels.push(x.shallow_clone()); // [n, 4·width·2^i, h/2^(i+2), w/2^(i+2)]
        }
        let (global, dense) = self.attnpool.forward(&x); // [n, d], [n, d, h/32, w/32]
        ImageFeatures { levels, global, dense }
    }
}
