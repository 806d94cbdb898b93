//! Feature Pyramid Network decoder for segmentation (Kirillov et al., "Panoptic FPN"), as
//! segmentation-models-pytorch 0.3's `FPNDecoder`: a nearest-neighbour top-down pathway over the
//! stride-4…32 features, a conv→GroupNorm→ReLU(→bilinear ×2) tower per level down to stride 4,
//! the four towers summed, then channel dropout. Names match smp (`p5`, `p4.skip_conv`,
//! `seg_blocks.S.block.U.block.0`).

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::torch_init;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub pyramid_channels: i64,
    pub segmentation_channels: i64,
    /// `Dropout2d` on the merged map, active in training.
    pub dropout: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config { pyramid_channels: 256, segmentation_channels: 128, dropout: 0.2 }
    }
}

/// conv3×3 (no bias) → GroupNorm(32) → ReLU, then ×2 bilinear (align_corners) if `upsample`.
#[derive(Debug)]
struct ConvGnRelu {
    conv: nn::Conv2D,
    norm: nn::GroupNorm,
    upsample: bool,
}

impl ConvGnRelu {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, upsample: bool) -> Self {
        let vs = vs / "block";
        ConvGnRelu {
            conv: torch_init::conv2d(&vs / 0, c_in, c_out, 3, nn::ConvConfig { padding: 1, bias: false, ..Default::default() }),
            norm: nn::group_norm(&vs / 1, 32, c_out, Default::default()),
            upsample,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x.apply(&self.conv).apply(&self.norm).relu();
        if self.upsample { upsample_bilinear(&x, 2) } else { x }
    }
}

/// Bilinear resize by an integer factor with `align_corners=True`, as PyTorch's
/// `UpsamplingBilinear2d` and smp's towers do.
pub fn upsample_bilinear(x: &Tensor, factor: i64) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    x.upsample_bilinear2d([h * factor, w * factor], true, None, None)
}

#[derive(Debug)]
pub struct Fpn {
    p5: nn::Conv2D,
    /// Lateral 1×1 convs for strides 16, 8, 4.
    skips: [nn::Conv2D; 3],
    /// One tower per level, deepest first; tower i upsamples 3 − i times.
    towers: [Vec<ConvGnRelu>; 4],
    dropout: f64,
}

impl Fpn {
    /// `encoder_channels`: the encoder's channels at strides 2…32 (only the last four are used).
    pub fn new(vs: &nn::Path, encoder_channels: &[i64], cfg: &Config) -> Self {
        let [c2, c3, c4, c5] = encoder_channels[encoder_channels.len() - 4..] else { unreachable!("slice of 4") };
        let (pyramid, seg) = (cfg.pyramid_channels, cfg.segmentation_channels);
        let lateral = |name: &str, c| torch_init::conv2d(vs / name / "skip_conv", c, pyramid, 1, Default::default());
        let tower = |s: usize| {
            let ups = 3 - s;
            let path = vs / "seg_blocks" / s / "block";
            (0..ups.max(1))
                .map(|u| ConvGnRelu::new(&(&path / u), if u == 0 { pyramid } else { seg }, seg, ups > 0))
                .collect()
        };
        Fpn {
            p5: torch_init::conv2d(vs / "p5", c5, pyramid, 1, Default::default()),
            skips: [lateral("p4", c4), lateral("p3", c3), lateral("p2", c2)],
            towers: [tower(0), tower(1), tower(2), tower(3)],
            dropout: cfg.dropout,
        }
    }

    /// `features`: the encoder's maps at strides 2…32. Returns `[n, seg, h/4, w/4]`.
    pub fn forward_t(&self, features: &[Tensor], train: bool) -> Tensor {
        let [c2, c3, c4, c5] = &features[features.len() - 4..] else { unreachable!("slice of 4") };
        let p5 = c5.apply(&self.p5); // [n,256,h/32,w/32]
        let top_down = |p: &Tensor, skip: &Tensor, lateral: &nn::Conv2D| {
            let (h, w) = (p.size()[2], p.size()[3]);
            p.upsample_nearest2d([h * 2, w * 2], None, None) + skip.apply(lateral)
        };
        let p4 = top_down(&p5, c4, &self.skips[0]); // [n,256,h/16,w/16]
        let p3 = top_down(&p4, c3, &self.skips[1]); // [n,256,h/8,w/8]
        let p2 = top_down(&p3, c2, &self.skips[2]); // [n,256,h/4,w/4]
        let merged = [p5, p4, p3, p2]
            .iter()
            .zip(&self.towers)
            .map(|(p, tower)| tower.iter().fold(p.shallow_clone(), |x, unit| unit.forward(&x)))
            .reduce(|a, b| a + b)
            .expect("four levels"); // [n,128,h/4,w/4]
        merged.feature_dropout(self.dropout, train)
    }
}

