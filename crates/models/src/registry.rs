//! Models by name: the configuration enum that a checkpoint embeds, what each model says about
//! itself ([`ModelConfig`]), and building a model from it. Adding a model is one line in
//! [`registry!`] below; its file implements [`ModelConfig`] for its `Config`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Tensor, nn};

use changedet_data::{Normalization, Preset};

use crate::decision::Decision;
use crate::precision::{Autocast, Precision};
use crate::{ChangeModel, ModelError, Recipe, Result, changeclip, clearscd, fc_ef, fc_siam_conc, fc_siam_diff};

/// The model `train` builds and `bench` times when none is named.
pub const DEFAULT_MODEL: &str = "fc-siam-diff";

/// Most tensor elements (parameters and buffers) a configuration may ask for: 4 GiB in f32,
/// twice CLIP ViT-L/14 with its text tower. A checkpoint's configuration comes from a file, and
/// every field may be in range while their product asks for more memory than any machine has.
pub const MAX_MODEL_ELEMENTS: u64 = 1 << 30;

/// What a model says about itself besides its network; implemented by every model's `Config`,
/// so that training, evaluation, import and benchmarks ask the model instead of knowing it.
pub trait ModelConfig {
    /// Refuses, naming the field, sizes that build no network or one far beyond the paper's (a
    /// checkpoint's configuration comes from a file); [`ModelSpec::build`] asks before building.
    fn check(&self) -> Result<()>;

    /// Builds the network in `vs`, once [`ModelConfig::check`] passed.
    fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>>;

    /// Tensor elements (parameters and buffers) the network will hold, estimated from the
    /// configuration alone and never below half the truth, so that a configuration asking for
    /// too much is refused before anything is allocated.
    fn size_estimate(&self) -> u64;

    /// The input normalisation the model is trained with.
    fn normalization(&self) -> Normalization;

    /// Bands of each date's image the model takes (3: RGB).
    fn input_bands(&self) -> usize {
        3
    }

    /// The smallest image side the model can take (its pooling must leave a pixel).
    fn min_input_side(&self) -> usize {
        1
    }

    fn card(&self) -> ModelCard;

    /// Land-cover classes of each date's class map, for semantic change models.
    fn semantic_classes(&self) -> Option<usize> {
        None
    }

    /// The reference implementation's training recipe on `dataset`.
    fn reference_recipe(&self, dataset: Preset) -> Recipe;

    /// The configuration fields that a reference state dict's tensor shapes decide (`import`).
    fn config_from_reference(&self, state_dict: &BTreeMap<String, Tensor>, path: &Path) -> Result<Value> {
        let _ = (state_dict, path);
        Ok(Value::Object(Default::default()))
    }

    /// Why a reference state-dict entry is not imported; `None` when it must map onto a variable.
    fn unused_reference_entry(&self, key: &str) -> Option<&'static str> {
        let _ = key;
        None
    }

    /// Copies pretrained weights from `path` into a freshly built model (ChangeCLIP: CLIP's
    /// towers); `None` for models that start from scratch. Returns the tensors copied.
    fn load_pretrained(&self, vs: &mut nn::VarStore, path: &Path) -> Option<Result<usize>> {
        let _ = (vs, path);
        None
    }

    /// Whether the model reads each pair's class names (vision-language prompts).
    fn uses_class_lists(&self) -> bool {
        false
    }
}

/// Where a model comes from, for `info` and the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCard {
    pub paper: &'static str,
    pub summary: &'static str,
}

/// Declares the models: name, `ModelSpec` variant, configuration type and, where the defaults
/// of the type are not this model's, the configuration it starts from.
macro_rules! registry {
    ($($name:literal => $variant:ident($config:ty) $(= $base:expr)?,)+) => {
        /// Every model name, in the order of the help.
        pub const MODEL_NAMES: &[&str] = &[$($name),+];

        /// A model and its full configuration (every field, defaults filled in). Serialised as
        /// `{"model": NAME, "config": {...}}`, which is what checkpoints store.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "model", content = "config")]
        pub enum ModelSpec {
            $(#[serde(rename = $name)] $variant($config),)+
        }

        impl ModelSpec {
            pub fn name(&self) -> &'static str {
                match self {
                    $(ModelSpec::$variant(_) => $name,)+
                }
            }

            /// What the model says about itself.
            pub fn config(&self) -> &dyn ModelConfig {
                match self {
                    $(ModelSpec::$variant(config) => config,)+
                }
            }

            /// The configuration overrides apply to (an empty object: the type's defaults).
            fn base_config(name: &str) -> Value {
                match name {
                    $($name => { let _base = Value::Object(Default::default()); $(let _base = serde_json::to_value($base).expect("configs serialise");)? _base })+
                    _ => Value::Null,
                }
            }
        }
    };
}

registry! {
    "fc-ef" => FcEf(fc_ef::FcEfConfig),
    "fc-siam-conc" => FcSiamConc(fc_siam_conc::FcSiamConcConfig),
    "fc-siam-diff" => FcSiamDiff(fc_siam_diff::Config),
    "clearscd" => ClearScd(clearscd::Config),
    "changeclip-rn50" => ChangeClipRn50(changeclip::Config),
    "changeclip-vit" => ChangeClipVit(changeclip::Config) = changeclip::Config::vit_b16(),
}

impl ModelSpec {
    /// The named model with its reference defaults, overridden by the fields of `overrides`
    /// (a JSON object; unknown fields are an error).
    pub fn new(name: &str, overrides: Option<Value>) -> Result<Self> {
        if !MODEL_NAMES.contains(&name) {
            return Err(ModelError::UnknownModel(name.to_owned()));
        }
        let mut config = Self::base_config(name);
        if let Some(overrides) = overrides {
            if !overrides.is_object() {
                return Err(ModelError::Config {
                    model: name.to_owned(),
                    message: format!("the configuration must be a JSON object of fields (e.g. {{\"dropout\":0.1}}), not {overrides}"),
                });
            }
            merge(&mut config, overrides);
        }
        serde_json::from_value(serde_json::json!({ "model": name, "config": config }))
            .map_err(|e| ModelError::Config { model: name.to_owned(), message: e.to_string() })
    }

    /// The named model configured for a reference implementation's state dict: the sizes its
    /// tensor shapes decide, then `overrides`.
    pub fn for_reference_state_dict(name: &str, state_dict: &BTreeMap<String, Tensor>, path: &Path, overrides: Option<Value>) -> Result<Self> {
        let mut config = Self::new(name, None)?.config().config_from_reference(state_dict, path)?;
        if let Some(overrides) = overrides {
            merge(&mut config, overrides);
        }
        Self::new(name, Some(config))
    }

    /// Whether the model also segments each date (semantic change detection).
    pub fn is_semantic(&self) -> bool {
        self.semantic_classes().is_some()
    }

    /// The land-cover classes of a semantic change model.
    pub fn semantic_classes(&self) -> Option<usize> {
        self.config().semantic_classes()
    }

    pub fn config_json(&self) -> Value {
        serde_json::to_value(self).expect("configs serialise")["config"].clone()
    }

    pub fn normalization(&self) -> Normalization {
        self.config().normalization()
    }

    pub fn input_bands(&self) -> usize {
        self.config().input_bands()
    }

    pub fn reference_recipe(&self, dataset: Preset) -> Recipe {
        self.config().reference_recipe(dataset)
    }

    /// Builds the network, refusing first a configuration out of range, field by field, or larger
    /// than [`MAX_MODEL_ELEMENTS`] as a whole.
    pub fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>> {
        self.config().check()?;
        let estimate = self.config().size_estimate();
        if estimate > MAX_MODEL_ELEMENTS {
            let message = format!("the configuration asks for about {estimate} parameters and buffers; at most {MAX_MODEL_ELEMENTS} are built");
            return Err(ModelError::Config { model: self.name().to_owned(), message });
        }
        self.config().build(vs)
    }

    /// Starts a freshly built model from pretrained weights, for the models that have them.
    pub fn load_pretrained(&self, vs: &mut nn::VarStore, path: &Path) -> Result<usize> {
        self.config().load_pretrained(vs, path).unwrap_or_else(|| {
            Err(ModelError::Config { model: self.name().to_owned(), message: format!("{} starts from no pretrained weights", path.display()) })
        })
    }
}

/// `factors` multiplied without overflow, negative ones counting as 0 (range checks refuse
/// them when the model is built): the arithmetic of [`ModelConfig::size_estimate`].
pub fn elements(factors: &[i64]) -> u64 {
    factors.iter().fold(1u64, |product, &f| product.saturating_mul(f.max(0) as u64))
}

/// Overlays `overrides` on `base`, object fields recursively.
pub fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overrides) => *base = overrides,
    }
}

/// A model with its variables, ready to run or train.
pub struct LoadedModel {
    pub spec: ModelSpec,
    pub vs: nn::VarStore,
    pub model: Box<dyn ChangeModel>,
    /// The threshold its change masks use (a checkpoint's, or a user's); `None`: the argmax.
    pub decision: Option<Decision>,
}

impl LoadedModel {
    /// A freshly initialised model.
    pub fn new(spec: ModelSpec, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let model = spec.build(&vs.root())?;
        Ok(LoadedModel { spec, vs, model, decision: None })
    }

    /// Readies the model to predict: on a CPU, its convolution kernels move to channels-last
    /// memory (`layout.rs`: 0.6–0.9× the time, the same results up to float rounding). Training
    /// keeps the default layout, in which checkpoints are written.
    pub fn prepare_for_inference(&self) {
        if self.vs.device() == Device::Cpu {
            crate::layout::weights_channels_last(&self.vs);
        }
        self.model.freeze_for_inference();
    }

    /// Runs the model's forward passes (and training objective) under autocast to `precision`
    /// on its device (`precision.rs`); fp32 leaves it as it is.
    pub fn with_precision(self, precision: Precision) -> Self {
        if precision == Precision::Fp32 {
            return self;
        }
        let LoadedModel { spec, vs, model, decision } = self;
        let device = vs.device();
        LoadedModel { spec, vs, model: Box::new(Autocast { inner: model, precision, device }), decision }
    }

    /// Masks at `threshold` (a user's `--threshold`) instead of the checkpoint's; `None` keeps it.
    pub fn with_threshold(mut self, threshold: Option<f64>) -> Self {
        if let Some(threshold) = threshold {
            self.decision = Some(Decision { threshold, chosen_on: None });
        }
        self
    }

    /// The change probability above which a pixel is changed.
    pub fn threshold(&self) -> f64 {
        self.decision.as_ref().map_or(Decision::ARGMAX, |d| d.threshold)
    }

    pub fn parameter_count(&self) -> usize {
        self.vs.trainable_variables().iter().map(|t| t.numel()).sum()
    }
}
