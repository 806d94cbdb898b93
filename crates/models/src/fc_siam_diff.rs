//! FC-Siam-diff (Daudt, Le Saux, Boulch, "Fully convolutional siamese networks for change
//! detection", ICIP 2018), as in the authors' `siamunet_diff.py`: a shared four-stage encoder
//! applied to both dates, and a U-Net decoder fed at every level with |features₁ − features₂|.
//! Layer names follow the original so that its state dicts map one to one.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use changedet_data::Normalization;

use crate::{ChangeModel, ChangeOutput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub in_channels: i64,
    pub num_classes: i64,
    /// Channels of the first encoder stage; the others have 2, 4 and 8 times as many (the
    /// paper's 16). Narrower networks serve quick experiments and pipeline benchmarks.
    pub width: i64,
    /// Channel-wise dropout after every encoder and decoder block (the paper's 0.2).
    pub dropout: f64,
    pub normalization: Normalization,
}

impl Default for Config {
    fn default() -> Self {
        Config { in_channels: 3, num_classes: 2, width: 16, dropout: 0.2, normalization: Normalization::IMAGENET }
    }
}

/// 3×3 conv → BN → ReLU → Dropout2d. The decoder's convs are stride-1 transposed convs in the
/// original; they are kept so, so that its weights load unchanged.
#[derive(Debug)]
struct Block {
    conv: Box<dyn Module>,
    bn: nn::BatchNorm,
    dropout: f64,
}

impl Block {
    fn new(vs: &nn::Path, name: &str, c_in: i64, c_out: i64, transposed: bool, dropout: f64) -> Self {
        let path = vs / format!("conv{name}");
        let conv: Box<dyn Module> = if transposed {
            Box::new(nn::conv_transpose2d(path, c_in, c_out, 3, nn::ConvTransposeConfig { padding: 1, ..Default::default() }))
        } else {
            Box::new(nn::conv2d(path, c_in, c_out, 3, nn::ConvConfig { padding: 1, ..Default::default() }))
        };
        Block { conv, bn: nn::batch_norm2d(vs / format!("bn{name}"), c_out, Default::default()), dropout }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.conv.forward(x).apply_t(&self.bn, train).relu().feature_dropout(self.dropout, train)
    }
}

fn run(blocks: &[Block], x: &Tensor, train: bool) -> Tensor {
    blocks.iter().fold(x.shallow_clone(), |x, b| b.forward_t(&x, train))
}

#[derive(Debug)]
pub struct FcSiamDiff {
    /// Encoder stages (width × 1, 2, 4, 8 channels: 16 … 128 in the paper), each followed by 2×2
    /// max-pooling.
    encoder: [Vec<Block>; 4],
    /// Stride-2 transposed convs that undo each pooling, deepest first.
    upconv: [nn::ConvTranspose2D; 4],
    /// Decoder stages, deepest first; each takes [upsampled, |skip₁ − skip₂|].
    decoder: [Vec<Block>; 4],
    /// Final 3×3 (transposed) conv to class scores, no normalisation.
    classifier: nn::ConvTranspose2D,
}

impl FcSiamDiff {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Self {
        let p = cfg.dropout;
        let [c1, c2, c3, c4] = [1, 2, 4, 8].map(|k| k * cfg.width);
        let enc = |name: &str, c_in, c_out| Block::new(vs, name, c_in, c_out, false, p);
        let dec = |name: &str, c_in, c_out| Block::new(vs, &format!("{name}d"), c_in, c_out, true, p);
        let up = |name: &str, c| {
            let cfg = nn::ConvTransposeConfig { stride: 2, padding: 1, output_padding: 1, ..Default::default() };
            nn::conv_transpose2d(vs / format!("upconv{name}"), c, c, 3, cfg)
        };
        FcSiamDiff {
            encoder: [
                vec![enc("11", cfg.in_channels, c1), enc("12", c1, c1)],
                vec![enc("21", c1, c2), enc("22", c2, c2)],
                vec![enc("31", c2, c3), enc("32", c3, c3), enc("33", c3, c3)],
                vec![enc("41", c3, c4), enc("42", c4, c4), enc("43", c4, c4)],
            ],
            upconv: [up("4", c4), up("3", c3), up("2", c2), up("1", c1)],
            decoder: [
                vec![dec("43", 2 * c4, c4), dec("42", c4, c4), dec("41", c4, c3)],
                vec![dec("33", 2 * c3, c3), dec("32", c3, c3), dec("31", c3, c2)],
                vec![dec("22", 2 * c2, c2), dec("21", c2, c1)],
                vec![dec("12", 2 * c1, c1)],
            ],
            classifier: nn::conv_transpose2d(
                vs / "conv11d",
                c1,
                cfg.num_classes,
                3,
                nn::ConvTransposeConfig { padding: 1, ..Default::default() },
            ),
        }
    }

    /// Encoder features of one date before each pooling (the skips), and the pooled deepest map.
    fn encode(&self, x: &Tensor, train: bool) -> (Vec<Tensor>, Tensor) {
        let mut skips = Vec::with_capacity(4);
        let mut x = x.shallow_clone();
        for stage in &self.encoder {
            let features = run(stage, &x, train);
            x = features.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            skips.push(features);
        }
        (skips, x)
    }
}

/// Replication-pads `x` on the right and bottom to the spatial size of `like` (odd sizes lose a
/// row or column to pooling; the original pads the same way).
fn pad_to(x: &Tensor, like: &Tensor) -> Tensor {
    let (h, w) = (like.size()[2], like.size()[3]);
    let (xh, xw) = (x.size()[2], x.size()[3]);
    if (xh, xw) == (h, w) { x.shallow_clone() } else { x.replication_pad2d([0, w - xw, 0, h - xh]) }
}

impl ChangeModel for FcSiamDiff {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        let (skips_1, _) = self.encode(before, train); //     [n,16,h,w] … [n,128,h/8,w/8]
        let (skips_2, bottom) = self.encode(after, train); // bottom: [n,128,h/16,w/16]
        let mut x = bottom;
        for (level, (up, stage)) in self.upconv.iter().zip(&self.decoder).enumerate() {
            let skip = 3 - level;
            let diff = (&skips_1[skip] - &skips_2[skip]).abs(); // [n,c,h/2^skip,w/2^skip]
            let upsampled = pad_to(&x.apply(up), &diff);
            x = run(stage, &Tensor::cat(&[upsampled, diff], 1), train);
        }
        ChangeOutput { logits: x.apply(&self.classifier), semantic: None } // [n,classes,h,w]
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_parameter_count() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = FcSiamDiff::new(&vs.root(), &Config::default());
        let x = Tensor::zeros([2, 3, 37, 50], (tch::Kind::Float, tch::Device::Cpu));
        let out = model.forward_t(&x, &x, false);
        assert_eq!(out.logits.size(), [2, 2, 37, 50]);
        let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        // Daudt et al. give 1.35 M parameters for FC-Siam-diff.
        assert_eq!(params, 1_350_146);
    }
}
