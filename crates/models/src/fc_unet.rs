//! The parts shared by the three fully convolutional change-detection networks of Daudt, Le Saux
//! and Boulch ("Fully convolutional siamese networks for change detection", ICIP 2018): FC-EF,
//! FC-Siam-conc and FC-Siam-diff. They share a four-stage U-Net encoder and decoder and differ
//! only in what enters the encoder and what the skips carry. Layer names are the official
//! code's (`unet.py`, `siamunet_conc.py`, `siamunet_diff.py`), so its state dicts map one to one.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn;

use changedet_data::{Normalization, PatchGrid, Preset};

use crate::conv_bn::ConvBn;
use crate::recipe::{LossKind, OptimizerKind, Recipe, Schedule};
use crate::registry::elements;
use crate::torch_init;
use crate::{ChangeModel, ModelCard, ModelConfig, ModelError, Result};

/// What makes FC-EF, FC-Siam-conc or FC-Siam-diff of the shared network: its name, card and
/// how it joins the two dates (in its own file).
pub trait Fusion {
    const NAME: &'static str;
    const SUMMARY: &'static str;
    fn build(vs: &nn::Path, cfg: &Config) -> Box<dyn ChangeModel>;
}

/// One of the three networks' configuration: the shared [`Config`], typed by its [`Fusion`] so
/// that the registry tells the three apart (stored as the plain `Config`).
#[derive(Serialize, Deserialize)]
#[serde(from = "Config", into = "Config")]
pub struct FcConfig<F> {
    pub config: Config,
    fusion: PhantomData<fn() -> F>,
}

// By hand: derived ones would ask the same of the fusion type, a network.
impl<F> Clone for FcConfig<F> {
    fn clone(&self) -> Self {
        self.config.clone().into()
    }
}

impl<F> PartialEq for FcConfig<F> {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl<F> std::fmt::Debug for FcConfig<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

impl<F> Default for FcConfig<F> {
    fn default() -> Self {
        Config::default().into()
    }
}

impl<F> From<Config> for FcConfig<F> {
    fn from(config: Config) -> Self {
        FcConfig { config, fusion: PhantomData }
    }
}

impl<F> From<FcConfig<F>> for Config {
    fn from(config: FcConfig<F>) -> Self {
        config.config
    }
}

impl<F: Fusion> ModelConfig for FcConfig<F> {
    fn check(&self) -> Result<()> {
        self.config.check(F::NAME)
    }

    fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>> {
        Ok(F::build(vs, &self.config))
    }

    /// Stage widths w, 2w, 4w, 8w: 3×3 convolutions of up to 16·(8w)² weights dominate
    /// (about 5,270·w² in all, plus the first and last layers).
    fn size_estimate(&self) -> u64 {
        let c = &self.config;
        elements(&[5_300, c.width, c.width]).saturating_add(elements(&[18, c.width, c.in_channels.saturating_add(c.num_classes)]))
    }

    fn normalization(&self) -> Normalization {
        self.config.normalization
    }

    fn input_bands(&self) -> usize {
        self.config.in_channels as usize
    }

    /// Four 2×2 max-poolings.
    fn min_input_side(&self) -> usize {
        16
    }

    fn card(&self) -> ModelCard {
        ModelCard { paper: "Daudt, Le Saux, Boulch, Fully convolutional siamese networks for change detection, ICIP 2018", summary: F::SUMMARY }
    }

    fn reference_recipe(&self, dataset: Preset) -> Recipe {
        recipe(dataset)
    }
}

/// The configuration all three share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Bands of one date's image.
    pub in_channels: i64,
    pub num_classes: i64,
    /// Channels of the first encoder stage; the others have 2, 4 and 8 times as many (the
    /// paper's 16). Narrower networks serve quick experiments and pipeline benchmarks.
    pub width: i64,
    /// Channel-wise dropout after every encoder and decoder block (the paper's 0.2).
    pub dropout: f64,
    /// Each image z-scored over its pixels and bands, as the official code's data loader.
    pub normalization: Normalization,
}

impl Default for Config {
    fn default() -> Self {
        Config { in_channels: 3, num_classes: 2, width: 16, dropout: 0.2, normalization: Normalization::PER_IMAGE }
    }
}

impl Config {
    /// Refuses sizes that build no network, or one far beyond the paper's (a checkpoint's
    /// configuration comes from a file).
    pub fn check(&self, model: &str) -> Result<()> {
        let fits = |v: i64, max: i64| (1..=max).contains(&v);
        if fits(self.in_channels, 64) && fits(self.num_classes, 255) && fits(self.width, 512) && (0.0..1.0).contains(&self.dropout) {
            return Ok(());
        }
        Err(ModelError::Config {
            model: model.to_owned(),
            message: format!(
                "in_channels {} (1–64), num_classes {} (1–255), width {} (1–512) and dropout {} (0–1) must be in range",
                self.in_channels, self.num_classes, self.width, self.dropout
            ),
        })
    }
}

/// Daudt et al.'s recipe as their official code runs it (`fully_convolutional_change_detection`,
/// the OSCD notebook): 96×96 patches every 47 pixels (`PATCH_SIDE / 2 − 1`), random flips and
/// 90° turns, class-weighted NLL loss (FP_MODIFIER 10), Adam at 1e-3 with L2 1e-4, the rate
/// × 0.95 after every epoch, 50 epochs of batch 32, whole-image validation by argmax. The
/// paper does not give the class weights or the schedule; the code is followed.
pub fn recipe(_dataset: Preset) -> Recipe {
    Recipe {
        epochs: 50,
        batch_size: 32,
        crop: None,
        patch_grid: Some(PatchGrid { side: 96, stride: 47 }),
        lr: 1e-3,
        weight_decay: 1e-4,
        optimizer: OptimizerKind::Adam,
        schedule: Schedule::Step { epochs: 1, gamma: 0.95 },
        loss: LossKind::DAUDT_WEIGHTED,
        // Whole images of different sizes cannot share a batch.
        eval_batch_size: 1,
        ..Recipe::default()
    }
}

/// 3×3 conv → BN → ReLU → Dropout2d. The decoder's convs are stride-1 transposed convs in the
/// original; they are kept so, so that its weights load unchanged.
#[derive(Debug)]
struct Block {
    conv_bn: ConvBn,
    dropout: f64,
}

impl Block {
    fn new(vs: &nn::Path, name: &str, c_in: i64, c_out: i64, transposed: bool, dropout: f64) -> Self {
        let (conv, bn) = (vs / format!("conv{name}"), vs / format!("bn{name}"));
        let conv_bn = if transposed {
            ConvBn::transposed(conv, bn, c_in, c_out, 3, nn::ConvTransposeConfig { padding: 1, ..Default::default() }, Default::default())
        } else {
            ConvBn::new(conv, bn, c_in, c_out, 3, nn::ConvConfig { padding: 1, ..Default::default() }, Default::default())
        };
        Block { conv_bn, dropout }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.conv_bn.forward_t(x, train).relu().feature_dropout(self.dropout, train)
    }
}

fn run(blocks: &[Block], x: &Tensor, train: bool) -> Tensor {
    blocks.iter().fold(x.shallow_clone(), |x, b| b.forward_t(&x, train))
}

/// Folds every block's batch norm for inference (`ConvBn::freeze_for_inference`).
pub fn freeze_for_inference(encoder: &Encoder, decoder: &Decoder) {
    for block in encoder.stages.iter().chain(&decoder.stages).flatten() {
        block.conv_bn.freeze_for_inference();
    }
}

/// The encoder: stages of width × 1, 2, 4, 8 channels (16 … 128 in the paper), each followed
/// by 2×2 max-pooling.
#[derive(Debug)]
pub struct Encoder {
    stages: [Vec<Block>; 4],
}

impl Encoder {
    /// `input_channels`: what enters the first stage (both dates stacked for FC-EF).
    pub fn new(vs: &nn::Path, cfg: &Config, input_channels: i64) -> Self {
        let [c1, c2, c3, c4] = [1, 2, 4, 8].map(|k| k * cfg.width);
        let enc = |name: &str, c_in, c_out| Block::new(vs, name, c_in, c_out, false, cfg.dropout);
        Encoder {
            stages: [
                vec![enc("11", input_channels, c1), enc("12", c1, c1)],
                vec![enc("21", c1, c2), enc("22", c2, c2)],
                vec![enc("31", c2, c3), enc("32", c3, c3), enc("33", c3, c3)],
                vec![enc("41", c3, c4), enc("42", c4, c4), enc("43", c4, c4)],
            ],
        }
    }

    /// The features before each pooling (the skips, finest first), and the pooled deepest map.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Vec<Tensor>, Tensor) {
        let mut skips = Vec::with_capacity(4);
        let mut x = x.shallow_clone();
        for stage in &self.stages {
            let features = run(stage, &x, train);
            x = features.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            skips.push(features);
        }
        (skips, x)
    }
}

/// The decoder: per level, deepest first, a stride-2 transposed conv that undoes the pooling,
/// then blocks over [upsampled, skip]; a final 3×3 (transposed) conv to class scores.
#[derive(Debug)]
pub struct Decoder {
    upconv: [nn::ConvTranspose2D; 4],
    stages: [Vec<Block>; 4],
    classifier: nn::ConvTranspose2D,
}

impl Decoder {
    /// `skip_factor`: the skip's channels as a multiple of its level's (1 for one encoder's or
    /// a difference of two, 2 for both dates concatenated).
    pub fn new(vs: &nn::Path, cfg: &Config, skip_factor: i64) -> Self {
        let [c1, c2, c3, c4] = [1, 2, 4, 8].map(|k| k * cfg.width);
        let dec = |name: &str, c_in, c_out| Block::new(vs, &format!("{name}d"), c_in, c_out, true, cfg.dropout);
        let up = |name: &str, c| {
            let cfg = nn::ConvTransposeConfig { stride: 2, padding: 1, output_padding: 1, ..Default::default() };
            torch_init::conv_transpose2d(vs / format!("upconv{name}"), c, c, 3, cfg)
        };
        let joined = |c: i64| (1 + skip_factor) * c;
        Decoder {
            upconv: [up("4", c4), up("3", c3), up("2", c2), up("1", c1)],
            stages: [
                vec![dec("43", joined(c4), c4), dec("42", c4, c4), dec("41", c4, c3)],
                vec![dec("33", joined(c3), c3), dec("32", c3, c3), dec("31", c3, c2)],
                vec![dec("22", joined(c2), c2), dec("21", c2, c1)],
                vec![dec("12", joined(c1), c1)],
            ],
            classifier: torch_init::conv_transpose2d(vs / "conv11d", c1, cfg.num_classes, 3, nn::ConvTransposeConfig { padding: 1, ..Default::default() }),
        }
    }

    /// `bottom`: the pooled deepest map; `skips`: finest first, as the encoder returns them.
    pub fn forward_t(&self, bottom: &Tensor, skips: &[Tensor], train: bool) -> Tensor {
        let mut x = bottom.shallow_clone();
        for ((up, stage), skip) in self.upconv.iter().zip(&self.stages).zip(skips.iter().rev()) {
            let upsampled = pad_to(&x.apply(up), skip);
            x = run(stage, &Tensor::cat(&[&upsampled, skip], 1), train);
        }
        x.apply(&self.classifier)
    }
}

/// Replication-pads `x` on the right and bottom to the spatial size of `like` (odd sizes lose a
/// row or column to pooling; the original pads the same way).
fn pad_to(x: &Tensor, like: &Tensor) -> Tensor {
    let (h, w) = (like.size()[2], like.size()[3]);
    let (xh, xw) = (x.size()[2], x.size()[3]);
    if (xh, xw) == (h, w) { x.shallow_clone() } else { x.replication_pad2d([0, w - xw, 0, h - xh]) }
}

/// Output shape on an odd-sized pair and trainable parameters of `F` at the paper's size.
#[cfg(test)]
pub(crate) fn shape_and_parameters<F: Fusion>() -> (Vec<i64>, i64) {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = F::build(&vs.root(), &Config::default());
    let x = Tensor::zeros([2, 3, 37, 50], (tch::Kind::Float, tch::Device::Cpu));
    let shape = model.forward_t(&x, &x, false).logits.size();
    (shape, vs.trainable_variables().iter().map(|t| t.numel() as i64).sum())
}

/// Every parameter of `F` at the paper's size against PyTorch's default rules.
#[cfg(test)]
pub(crate) fn assert_pytorch_initialisation<F: Fusion>() {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _model = F::build(&vs.root(), &Config::default());
    torch_init::assert_pytorch_defaults(&vs);
}
