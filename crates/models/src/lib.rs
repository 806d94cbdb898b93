//! Change-detection networks written with tch's `nn` API, each describing itself (names,
//! recipe, objective, outputs, import rules), the registry that builds them by name, and
//! changedet's checkpoint format.
//!
//! Every model takes the two dates as separate normalised tensors `[n, 3, h, w]` and returns
//! full-resolution change logits. Adding a model: a file with its `Config` (defaults = the
//! reference hyper-parameters) implementing [`ModelConfig`] and a struct implementing
//! [`ChangeModel`], plus one line in [`registry`].

pub mod checkpoint;
pub mod changeclip;
pub mod clearscd;
pub mod clearscd_loss;
pub mod clip;
pub mod conv_bn;
pub mod decision;
pub mod decoders;
pub mod default_model;
pub mod encoders;
pub mod fc_ef;
pub mod fc_siam_conc;
pub mod fc_siam_diff;
pub mod fc_unet;
pub mod import;
pub mod input;
pub mod layout;
pub mod precision;
pub mod pth;
pub mod recipe;
pub mod registry;
pub mod tensor_io;
pub mod torch_init;

pub use checkpoint::Checkpoint;
pub use decision::Decision;
pub use precision::Precision;
pub use recipe::Recipe;
pub use registry::{DEFAULT_MODEL, LoadedModel, MODEL_NAMES, ModelCard, ModelConfig, ModelSpec};

use input::BatchTensors;

use std::path::PathBuf;

use tch::Tensor;

/// What a binary change-detection model returns.
#[derive(Debug)]
pub struct ChangeOutput {
    /// Unchanged/changed scores, `[n, 2, h, w]` at input resolution.
    pub logits: Tensor,
    /// Class scores `[n, K, h, w]` of each date, from semantic change models.
    pub semantic: Option<[Tensor; 2]>,
}

impl ChangeOutput {
    /// Probability of change, `[n, h, w]`.
    pub fn probability(&self) -> Tensor {
        self.logits.softmax(1, tch::Kind::Float).select(1, 1)
    }

    /// Log-odds of change, `[n, h, w]`: for two-class softmax scores, `l₁ − l₀`.
    pub fn change_logit(&self) -> Tensor {
        self.logits.select(1, 1) - self.logits.select(1, 0)
    }
}

/// A bi-temporal network. `train` switches dropout and batch statistics on.
pub trait ChangeModel: Send {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput;

    /// The same with each pair's class names per date (`[before, after]`, most likely first),
    /// which vision-language models turn into prompts; the others ignore them.
    fn forward_with_classes_t(&self, before: &Tensor, after: &Tensor, classes: &[[Vec<String>; 2]], train: bool) -> ChangeOutput {
        let _ = classes;
        self.forward_t(before, after, train)
    }

    /// The training objective on one batch, forward pass included: by default the recipe's loss
    /// on the change logits. Models with an objective of their own (ClearSCD) override it.
    /// `epoch` is 0-based.
    fn training_loss(&self, batch: &BatchTensors, recipe: &Recipe, epoch: usize) -> Result<Tensor> {
        let _ = epoch;
        let output = self.forward_with_classes_t(&batch.before, &batch.after, &batch.classes, true);
        recipe.loss.compute(&output, batch.change_label()?)
    }

    /// Image sides must be multiples of this (pyramid decoders add maps of matching sizes).
    fn size_multiple(&self) -> usize {
        1
    }

    /// Called once the weights are final for the rest of the process (`predict`, `eval` and
    /// `bench`'s inference, through `LoadedModel::prepare_for_inference`): a model may then keep
    /// what depends on its weights alone instead of computing it on every call.
    fn freeze_for_inference(&self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: key '{key}' is missing from the checkpoint")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: key '{key}' has shape {found:?} but the model expects {expected:?}")]
    ShapeMismatch { path: PathBuf, key: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("{path}: key '{key}' is stored as {found} but the model's weights are {expected}: the file is not a checkpoint of this model")]
    Dtype { path: PathBuf, key: String, expected: String, found: String },
    #[error("{path}: key '{key}' holds NaN or infinite values: the checkpoint is damaged (or its training diverged)")]
    NonFinite { path: PathBuf, key: String },
    #[error("{path}: key '{key}' does not belong to a {model} model")]
    UnexpectedKey { path: PathBuf, key: String, model: String },
    #[error("unknown model '{0}' (known: {known})", known = registry::MODEL_NAMES.join(", "))]
    UnknownModel(String),
    #[error("invalid configuration for {model}: {message}")]
    Config { model: String, message: String },
    #[error("{0}")]
    Recipe(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Tokenizer(#[from] clip::TokenizerError),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// A device as `--device` names it (`cpu`, `cuda:0`), for messages.
pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(index) => format!("cuda:{index}"),
        tch::Device::Mps => "mps".into(),
        tch::Device::Vulkan => "vulkan".into(),
        tch::Device::Cpu => "cpu".into(),
    }
}
