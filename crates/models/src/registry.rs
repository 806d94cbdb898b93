//! Models by name: the configuration enum that a checkpoint embeds, and building a model from it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, nn};

use changedet_data::Normalization;

use crate::{ChangeModel, ModelError, Result, clearscd, fc_siam_diff};

pub const MODEL_NAMES: &[&str] = &["fc-siam-diff", "clearscd"];

/// A model and its full configuration (every field, defaults filled in). Serialised as
/// `{"model": NAME, "config": {...}}`, which is what checkpoints store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", content = "config", rename_all = "kebab-case")]
pub enum ModelSpec {
    FcSiamDiff(fc_siam_diff::Config),
    #[serde(rename = "clearscd")]
    ClearScd(clearscd::Config),
}

impl ModelSpec {
    /// The named model with its reference defaults, overridden by the fields of `overrides`
    /// (a JSON object; unknown fields are an error).
    pub fn new(name: &str, overrides: Option<Value>) -> Result<Self> {
        if !MODEL_NAMES.contains(&name) {
            return Err(ModelError::UnknownModel(name.to_owned()));
        }
        let config = overrides.unwrap_or_else(|| Value::Object(Default::default()));
        serde_json::from_value(serde_json::json!({ "model": name, "config": config }))
            .map_err(|e| ModelError::Config { model: name.to_owned(), message: e.to_string() })
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelSpec::FcSiamDiff(_) => "fc-siam-diff",
            ModelSpec::ClearScd(_) => "clearscd",
        }
    }

    /// Whether the model also segments each date (semantic change detection).
    pub fn is_semantic(&self) -> bool {
        matches!(self, ModelSpec::ClearScd(_))
    }

    pub fn config_json(&self) -> Value {
        serde_json::to_value(self).expect("configs serialise")["config"].clone()
    }

    pub fn normalization(&self) -> Normalization {
        match self {
            ModelSpec::FcSiamDiff(c) => c.normalization,
            ModelSpec::ClearScd(c) => c.normalization,
        }
    }

    pub fn build(&self, vs: &nn::Path) -> Box<dyn ChangeModel> {
        match self {
            ModelSpec::FcSiamDiff(c) => Box::new(fc_siam_diff::FcSiamDiff::new(vs, c)),
            ModelSpec::ClearScd(c) => Box::new(clearscd::ClearScd::new(vs, c)),
        }
    }
}

/// A model with its variables, ready to run or train.
pub struct LoadedModel {
    pub spec: ModelSpec,
    pub vs: nn::VarStore,
    pub model: Box<dyn ChangeModel>,
}

impl LoadedModel {
    /// A freshly initialised model.
    pub fn new(spec: ModelSpec, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let model = spec.build(&vs.root());
        LoadedModel { spec, vs, model }
    }

    pub fn parameter_count(&self) -> usize {
        self.vs.trainable_variables().iter().map(|t| t.numel()).sum()
    }
}
