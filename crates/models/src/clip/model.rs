//! A whole CLIP (image tower, text tower, logit scale) loaded from any layout [`super::weights`]
//! reads, for zero-shot scoring.

use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

use super::weights::{ClipStateDict, VisionConfig};
use super::{ImageFeatures, ModifiedResNet, TextConfig, TextEncoder, VisionTransformer};
use crate::checkpoint::copy_into;
use crate::import::read_state_dict;
use crate::{ModelError, Result};

/// Either CLIP image tower.
#[derive(Debug)]
pub enum ImageEncoder {
    ResNet(Box<ModifiedResNet>),
    Vit(Box<VisionTransformer>),
}

impl ImageEncoder {
    pub fn new(vs: nn::Path, config: &VisionConfig) -> Self {
        match config {
            VisionConfig::ResNet(c) => Self::ResNet(Box::new(ModifiedResNet::new(vs, c))),
            VisionConfig::Vit(c) => Self::Vit(Box::new(VisionTransformer::new(vs, c))),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> ImageFeatures {
        match self {
            Self::ResNet(m) => m.forward_t(x, train),
            Self::Vit(m) => m.forward_t(x, train),
        }
    }

    /// Folds the ResNet's batch norms (`ConvBn`); the ViT's one, in a neck, stays unfolded.
    pub fn freeze_for_inference(&self) {
        if let Self::ResNet(m) = self {
            m.freeze_for_inference();
        }
    }
}

pub struct Clip {
    pub visual: ImageEncoder,
    pub text: TextEncoder,
    logit_scale: Tensor,
    pub vision_config: VisionConfig,
    pub vs: VarStore,
}

impl Clip {
    /// CLIP's `logit_scale` at initialisation, ln(1/0.07).
    const INITIAL_LOGIT_SCALE: f64 = 2.659_260_036_932_778;

    pub fn new(vision: &VisionConfig, text: &TextConfig, device: Device) -> Self {
        let vs = VarStore::new(device);
        let root = vs.root();
        Self {
            visual: ImageEncoder::new(&root / "visual", vision),
            text: TextEncoder::new(root.clone(), text),
            logit_scale: root.var("logit_scale", &[], nn::Init::Const(Self::INITIAL_LOGIT_SCALE)),
            vision_config: vision.clone(),
            vs,
        }
    }

    /// Reads a CLIP checkpoint (`.pt`/`.pth`/`.bin`/`.safetensors`, any layout of
    /// [`super::weights`]), infers its architecture and loads it strictly: a missing, surplus or
    /// mis-shaped tensor is an error naming it. Returns the entries that were skipped, with why.
    pub fn load(path: &Path, device: Device) -> Result<(Clip, Vec<(String, &'static str)>)> {
        let state = ClipStateDict::new(read_state_dict(path)?, path)?;
        if !state.has_vision() || !state.has_text() {
            let missing = if state.has_vision() { "token_embedding.weight (text tower)" } else { "visual.conv1.weight (image tower)" };
            return Err(ModelError::MissingKey { path: path.to_owned(), key: missing.into() });
        }
        let mut clip = Clip::new(&state.vision_config(path)?, &state.text_config(path)?, device);
        let mut tensors: BTreeMap<String, Tensor> = state.tensors;
        tensors.entry("logit_scale".into()).or_insert_with(|| Tensor::from(Self::INITIAL_LOGIT_SCALE as f32));
        copy_into(&mut clip.vs, &tensors, path, "CLIP")?;
        Ok((clip, state.skipped))
    }

    /// Side of the square images the image tower was trained on (its positional grid's).
    pub fn input_resolution(&self) -> i64 {
        match &self.vision_config {
            VisionConfig::ResNet(c) => c.positional_grid * 32,
            VisionConfig::Vit(c) => c.positional_grid * c.patch_size,
        }
    }

    /// L2-normalised image embeddings `[n, d]` of CLIP-preprocessed images.
    pub fn encode_images(&self, images: &Tensor) -> Tensor {
        normalise(&self.visual.forward_t(images, false).global)
    }

    /// L2-normalised text embeddings `[n, d]` of token rows `[n, context_length]`.
    pub fn encode_texts(&self, tokens: &Tensor) -> Tensor {
        normalise(&self.text.forward_t(tokens, false))
    }

    /// `softmax(logit_scale · cos)` over the texts for each image: `[n_images, n_texts]`.
    pub fn probabilities(&self, image_embeddings: &Tensor, text_embeddings: &Tensor) -> Tensor {
        let logits = image_embeddings.matmul(&text_embeddings.transpose(0, 1)) * self.logit_scale.exp();
        logits.softmax(-1, Kind::Float)
    }
}

/// `x / ‖x‖` along the last axis.
fn normalise(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [-1], true)
}
