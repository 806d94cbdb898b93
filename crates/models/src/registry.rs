//! Models by name: the configuration enum that a checkpoint embeds, and building a model from it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, nn};

use changedet_data::Normalization;

use crate::{ChangeModel, ModelError, Result, changeclip, clearscd, fc_siam_diff};

pub const MODEL_NAMES: &[&str] = &["fc-siam-diff", "clearscd", "changeclip-rn50", "changeclip-vit"];

/// A model and its full configuration (every field, defaults filled in). Serialised as
/// `{"model": NAME, "config": {...}}`, which is what checkpoints store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", content = "config", rename_all = "kebab-case")]
pub enum ModelSpec {
    FcSiamDiff(fc_siam_diff::Config),
    #[serde(rename = "clearscd")]
    ClearScd(clearscd::Config),
    #[serde(rename = "changeclip-rn50")]
    ChangeClipRn50(changeclip::Config),
    #[serde(rename = "changeclip-vit")]
    ChangeClipVit(changeclip::Config),
}

impl ModelSpec {
    /// The named model with its reference defaults, overridden by the fields of `overrides`
    /// (a JSON object; unknown fields are an error).
    pub fn new(name: &str, overrides: Option<Value>) -> Result<Self> {
        if !MODEL_NAMES.contains(&name) {
            return Err(ModelError::UnknownModel(name.to_owned()));
        }
        let mut config = match name {
            // The two variants share one Config type with RN50 defaults.
            "changeclip-vit" => serde_json::to_value(changeclip::Config::vit_b16()).expect("configs serialise"),
            _ => Value::Object(Default::default()),
        };
        if let Some(overrides) = overrides {
            merge(&mut config, overrides);
        }
        serde_json::from_value(serde_json::json!({ "model": name, "config": config }))
            .map_err(|e| ModelError::Config { model: name.to_owned(), message: e.to_string() })
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelSpec::FcSiamDiff(_) => "fc-siam-diff",
            ModelSpec::ClearScd(_) => "clearscd",
            ModelSpec::ChangeClipRn50(_) => "changeclip-rn50",
            ModelSpec::ChangeClipVit(_) => "changeclip-vit",
        }
    }

    /// Whether the model also segments each date (semantic change detection).
    pub fn is_semantic(&self) -> bool {
        self.semantic_classes().is_some()
    }

    /// The land-cover classes of a semantic change model.
    pub fn semantic_classes(&self) -> Option<usize> {
        match self {
            ModelSpec::ClearScd(c) => Some(c.num_classes as usize),
            _ => None,
        }
    }

    pub fn config_json(&self) -> Value {
        serde_json::to_value(self).expect("configs serialise")["config"].clone()
    }

    pub fn normalization(&self) -> Normalization {
        match self {
            ModelSpec::FcSiamDiff(c) => c.normalization,
            ModelSpec::ClearScd(c) => c.normalization,
            ModelSpec::ChangeClipRn50(c) | ModelSpec::ChangeClipVit(c) => c.normalization,
        }
    }

    pub fn build(&self, vs: &nn::Path) -> Box<dyn ChangeModel> {
        match self {
            ModelSpec::FcSiamDiff(c) => Box::new(fc_siam_diff::FcSiamDiff::new(vs, c)),
            ModelSpec::ClearScd(c) => Box::new(clearscd::ClearScd::new(vs, c)),
            ModelSpec::ChangeClipRn50(c) | ModelSpec::ChangeClipVit(c) => Box::new(changeclip::ChangeClip::new(vs, c)),
        }
    }
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
