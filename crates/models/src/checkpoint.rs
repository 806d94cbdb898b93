//! changedet's checkpoint: one safetensors file holding the model's variables (`model.*`), the
//! optimiser state when saved by training (`optimizer.*`), and as metadata the model name, its
//! full configuration and the training state, so that `eval`, `predict` and `--resume` need
//! nothing but the file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use tch::{Device, Tensor};

use crate::decision::Decision;
use crate::registry::LoadedModel;
use crate::{ModelError, ModelSpec, Result, tensor_io};

pub const FORMAT: &str = "changedet-checkpoint/1";
const MODEL_PREFIX: &str = "model.";
const OPTIMIZER_PREFIX: &str = "optimizer.";

pub struct Checkpoint {
    pub spec: ModelSpec,
    pub model: BTreeMap<String, Tensor>,
    pub optimizer: BTreeMap<String, Tensor>,
    /// Free-form training state written by the trainer (epoch, step, metrics, recipe).
    pub training: Option<Value>,
    /// The decision threshold chosen for the model (`eval --choose-threshold`).
    pub decision: Option<Decision>,
}

fn error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Checkpoint { path: path.to_owned(), message: message.into() }
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Checkpoint> {
        let file = tensor_io::read(path)?;
        let meta = |key: &str| file.metadata.get(key).ok_or_else(|| error(path, format!("not a changedet checkpoint (no '{key}' metadata); convert foreign checkpoints with `changedet import`")));
        let format = meta("format")?;
        if format != FORMAT {
            return Err(error(path, format!("checkpoint format '{format}' is not supported (expected '{FORMAT}')")));
        }
        let name = meta("model")?;
        let config: Value = serde_json::from_str(meta("config")?).map_err(|e| error(path, format!("config metadata is not JSON: {e}")))?;
        let spec = ModelSpec::new(name, Some(config)).map_err(|e| error(path, e.to_string()))?;
        let training = match file.metadata.get("training") {
            Some(t) => Some(serde_json::from_str(t).map_err(|e| error(path, format!("training metadata is not JSON: {e}")))?),
            None => None,
        };
        let decision = match file.metadata.get("decision") {
            Some(d) => Some(read_decision(d).map_err(|e| error(path, format!("decision metadata: {e}")))?),
            None => None,
        };
        let (mut model, mut optimizer) = (BTreeMap::new(), BTreeMap::new());
        for (name, t) in file.tensors {
            if let Some(key) = name.strip_prefix(MODEL_PREFIX) {
                model.insert(key.to_owned(), t);
            } else if let Some(key) = name.strip_prefix(OPTIMIZER_PREFIX) {
                optimizer.insert(key.to_owned(), t);
            } else {
                return Err(error(path, format!("unexpected tensor '{name}' (neither model.* nor optimizer.*)")));
            }
        }
        Ok(Checkpoint { spec, model, optimizer, training, decision })
    }

    /// Saves a model's variables and decision threshold with optional optimiser state and
    /// training state.
    pub fn write(path: &Path, model: &LoadedModel, optimizer: &[(String, Tensor)], training: Option<&Value>) -> Result<()> {
        Self::write_variables(path, &model.spec, &model.vs, model.decision.as_ref(), optimizer, training)
    }

    /// [`Checkpoint::write`] for `spec`'s variables held in `vs`.
    pub fn write_variables(path: &Path, spec: &ModelSpec, vs: &tch::nn::VarStore, decision: Option<&Decision>, optimizer: &[(String, Tensor)], training: Option<&Value>) -> Result<()> {
        let mut metadata = HashMap::from([
            ("format".to_owned(), FORMAT.to_owned()),
            ("model".to_owned(), spec.name().to_owned()),
            ("config".to_owned(), spec.config_json().to_string()),
        ]);
        if let Some(t) = training {
            metadata.insert("training".to_owned(), t.to_string());
        }
        if let Some(d) = decision {
            metadata.insert("decision".to_owned(), serde_json::to_string(d).expect("plain fields"));
        }
        let variables = vs.variables();
        let tensors = variables
            .iter()
            .map(|(k, t)| (format!("{MODEL_PREFIX}{k}"), t))
            .chain(optimizer.iter().map(|(k, t)| (format!("{OPTIMIZER_PREFIX}{k}"), t)));
        tensor_io::write(path, tensors, metadata)
    }

    /// Builds the checkpoint's model on `device` and loads its weights.
    pub fn load_model(&self, path: &Path, device: Device) -> Result<LoadedModel> {
        let mut model = LoadedModel::new(self.spec.clone(), device)?;
        copy_into(&mut model.vs, &self.model, path, self.spec.name())?;
        model.decision = self.decision.clone();
        Ok(model)
    }
}

/// A stored decision, refused unless its threshold is a probability strictly between 0 and 1.
fn read_decision(text: &str) -> std::result::Result<Decision, String> {
    let decision: Decision = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Decision::parse(&decision.threshold.to_string())?;
    Ok(decision)
}

/// Refuses a stored tensor that would silently change the model: integers or booleans where
/// the model has floating-point weights (a valid file whose I32 weights would copy as whole
/// numbers and predict nothing), and NaN or ±∞ weights (which would otherwise surface later as
/// non-finite scores blamed on the model). Floating-point tensors of another width are
/// converted as they are copied: OpenAI's CLIP checkpoints store half precision.
fn check_values(src: &Tensor, expected: tch::Kind, path: &Path, key: &str) -> Result<()> {
    let floating = |kind| matches!(kind, tch::Kind::Half | tch::Kind::BFloat16 | tch::Kind::Float | tch::Kind::Double);
    let found = src.kind();
    if found != expected && !(floating(found) && floating(expected)) {
        return Err(ModelError::Dtype { path: path.to_owned(), key: key.to_owned(), expected: tensor_io::dtype_name(expected), found: tensor_io::dtype_name(found) });
    }
    if floating(found) && src.numel() > 0 && src.isfinite().all().int64_value(&[]) == 0 {
        return Err(ModelError::NonFinite { path: path.to_owned(), key: key.to_owned() });
    }
    Ok(())
}

/// Copies `tensors` into the variables of `vs`, requiring exactly the same names and shapes.
/// Missing and mis-shaped variables are reported before surplus entries: a checkpoint for
/// another configuration is best explained by the first shape that differs.
pub fn copy_into(vs: &mut tch::nn::VarStore, tensors: &BTreeMap<String, Tensor>, path: &Path, model: &str) -> Result<()> {
    let variables = vs.variables();
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    for &name in &names {
        let var = &variables[name];
        let src = tensors.get(name).ok_or_else(|| ModelError::MissingKey { path: path.to_owned(), key: name.clone() })?;
        if src.size() != var.size() {
            return Err(ModelError::ShapeMismatch { path: path.to_owned(), key: name.clone(), expected: var.size(), found: src.size() });
        }
        check_values(src, var.kind(), path, name)?;
    }
    if let Some(key) = tensors.keys().find(|k| !variables.contains_key(*k)) {
        return Err(ModelError::UnexpectedKey { path: path.to_owned(), key: key.clone(), model: model.to_owned() });
    }
    tch::no_grad(|| names.iter().try_for_each(|&name| variables[name].shallow_clone().f_copy_(&tensors[name])))?;
    Ok(())
}
