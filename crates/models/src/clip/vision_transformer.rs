//! CLIP's vision transformer as ChangeCLIP's `CLIPVisionTransformer` runs it: patch tokens at
//! any grid (the positional grid is resized per forward), feature maps tapped after chosen
//! blocks and turned into a stride-4…32 pyramid by ChangeCLIP's necks (`fpn1`–`fpn4`), and the
//! global and per-patch embeddings (`ln_post`, `proj`).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use super::ImageFeatures;
use super::transformer::{Transformer, layer_norm, resize_positional_grid};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VitConfig {
    pub patch_size: i64,
    pub width: i64,
    pub layers: i64,
    pub heads: i64,
    /// Width of the joint image-text space (`proj`'s columns).
    pub output_dim: i64,
    /// Side of the stored positional grid (`input_resolution / patch_size`).
    pub positional_grid: i64,
    pub drop_path_rate: f64,
    /// Blocks whose patch tokens form the pyramid (ChangeCLIP: 3, 5, 7, 11).
    pub out_indices: Vec<usize>,
    /// ChangeCLIP's `fpn1`–`fpn4` necks (patch 16 only); plain CLIP has none.
    pub multi_scale_necks: bool,
    /// ChangeCLIP adds `class_embedding` to the class token twice (as its value and on top of
    /// positional row 0); trained ChangeCLIP weights expect it, OpenAI's CLIP does not.
    pub class_embedding_twice: bool,
}

impl Default for VitConfig {
    /// ChangeCLIP's ViT-B/16.
    fn default() -> Self {
        Self {
            patch_size: 16,
            width: 768,
            layers: 12,
            heads: 12,
            output_dim: 512,
            positional_grid: 16,
            drop_path_rate: 0.1,
            out_indices: vec![3, 5, 7, 11],
            multi_scale_necks: true,
            class_embedding_twice: true,
        }
    }
}

/// ChangeCLIP's per-level necks for patch 16: ×4 (two transposed convs), ×2, ×1, ½ (max pool),
/// each after a single-group GroupNorm.
#[derive(Debug)]
struct MultiScaleNecks {
    up4: (nn::GroupNorm, nn::ConvTranspose2D, nn::BatchNorm, nn::ConvTranspose2D),
    up2: (nn::GroupNorm, nn::ConvTranspose2D),
    same: nn::GroupNorm,
    down2: nn::GroupNorm,
}

impl MultiScaleNecks {
    fn new(vs: &nn::Path, c: i64) -> Self {
        let norm = |p: nn::Path| nn::group_norm(p, 1, c, Default::default());
        let up = |p: nn::Path| nn::conv_transpose2d(p, c, c, 2, nn::ConvTransposeConfig { stride: 2, ..Default::default() });
        Self {
            up4: (norm(vs / "fpn1" / 0), up(vs / "fpn1" / 1), nn::batch_norm2d(vs / "fpn1" / 2, c, Default::default()), up(vs / "fpn1" / 4)),
            up2: (norm(vs / "fpn2" / 0), up(vs / "fpn2" / 1)),
            same: norm(vs / "fpn3"),
            down2: norm(vs / "fpn4" / 0),
        }
    }

    fn forward_t(&self, maps: &[Tensor], train: bool) -> Vec<Tensor> {
        let (n1, t1, bn, t2) = &self.up4;
        let up4 = maps[0].apply(n1).apply(t1).apply_t(bn, train).gelu("none").apply(t2);
        let up2 = maps[1].apply(&self.up2.0).apply(&self.up2.1);
        let same = maps[2].apply(&self.same);
        let down2 = maps[3].apply(&self.down2).max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        vec![up4, up2, same, down2]
    }
}

/// Token sequences of one forward: what the goldens check before the necks.
pub struct VitTokens {
    /// After `ln_pre`: `[n, 1 + h·w, c]`, class token first.
    pub ln_pre: Tensor,
    /// Outputs of the `out_indices` blocks, `[n, 1 + h·w, c]` each.
    pub taps: Vec<Tensor>,
    /// Output of the last block.
    pub last: Tensor,
    /// Patch grid.
    pub grid: (i64, i64),
}

impl VitTokens {
    /// Patch tokens of `tokens` as a map `[n, c, h, w]`.
    pub fn patch_map(&self, tokens: &Tensor) -> Tensor {
        let (n, l, c) = tokens.size3().expect("[n, l, c]");
        tokens.narrow(1, 1, l - 1).transpose(1, 2).reshape([n, c, self.grid.0, self.grid.1])
    }
}

#[derive(Debug)]
pub struct VisionTransformer {
    conv1: nn::Conv2D,
    class_embedding: Tensor,
    positional_embedding: Tensor,
    ln_pre: nn::LayerNorm,
    transformer: Transformer,
    ln_post: nn::LayerNorm,
    proj: Tensor,
    necks: Option<MultiScaleNecks>,
    pub config: VitConfig,
}

impl VisionTransformer {
    pub fn new(vs: nn::Path, config: &VitConfig) -> Self {
        let VitConfig { patch_size, width, layers, heads, output_dim, positional_grid, drop_path_rate, .. } = *config;
        let stdev = (width as f64).powf(-0.5);
        let randn = nn::Init::Randn { mean: 0.0, stdev };
        Self {
            conv1: nn::conv2d(&vs / "conv1", 3, width, patch_size, nn::ConvConfig { stride: patch_size, bias: false, ..Default::default() }),
            class_embedding: vs.var("class_embedding", &[width], randn),
            positional_embedding: vs.var("positional_embedding", &[positional_grid * positional_grid + 1, width], randn),
            ln_pre: layer_norm(&vs / "ln_pre", width),
            transformer: Transformer::new(&vs / "transformer", width, layers, heads, drop_path_rate, false),
            ln_post: layer_norm(&vs / "ln_post", width),
            proj: vs.var("proj", &[width, output_dim], randn),
            necks: config.multi_scale_necks.then(|| MultiScaleNecks::new(&vs, width)),
            config: config.clone(),
        }
    }

    pub fn tokens_t(&self, x: &Tensor, train: bool) -> VitTokens {
        let patches = x.apply(&self.conv1); // [n, c, h, w]
        let (n, c, h, w) = patches.size4().expect("[n, c, h, w]");
        let class_token = self.class_embedding.reshape([1, 1, c]).expand([n, 1, c], false);
        let tokens = Tensor::cat(&[class_token, patches.reshape([n, c, h * w]).transpose(1, 2)], 1); // [n, 1 + hw, c]
        let mut positions = resize_positional_grid(&self.positional_embedding, h, w);
        if self.config.class_embedding_twice {
            positions = Tensor::cat(&[positions.narrow(0, 0, 1) + &self.class_embedding, positions.narrow(0, 1, h * w)], 0);
        }
        let ln_pre = self.ln_pre.forward(&(tokens + positions));
        let mut taps = Vec::with_capacity(self.config.out_indices.len());
        let last = self.transformer.forward_tapped(&ln_pre, train, |i, x| {
            if self.config.out_indices.contains(&i) {
                taps.push(x.shallow_clone());
            }
        });
        VitTokens { ln_pre, taps, last, grid: (h, w) }
    }

    /// `[n, 3, h, w]` (multiples of the patch) → pyramid (with necks; otherwise the tapped maps
    /// at stride `patch`), global and dense embeddings.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> ImageFeatures {
        let tokens = self.tokens_t(x, train);
        let maps: Vec<Tensor> = tokens.taps.iter().map(|t| tokens.patch_map(t)).collect(); // [n, c, h, w] each
        let levels = match &self.necks {
            Some(necks) => necks.forward_t(&maps, train), // strides 4, 8, 16, 32 for patch 16
            None => maps,
        };
        let embedded = self.ln_post.forward(&tokens.last).matmul(&self.proj); // [n, 1 + hw, d]
        let global = embedded.select(1, 0);
        let dense = tokens.patch_map(&embedded);
        ImageFeatures { levels, global, dense }
    }
}
