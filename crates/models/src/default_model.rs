//! Checkpoints as `predict` and `eval` load them (from the CLI and from Python alike): the
//! given file, or the shipped default model `models/default.safetensors` (written by
//! `scripts/train-default.sh`), with what the checkpoint records beside its weights.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::Device;

use crate::{Checkpoint, LoadedModel, ModelError, Result};

/// Overrides where the default model is looked for.
pub const ENV: &str = "CHANGEDET_DEFAULT_MODEL";
const RELATIVE: &str = "models/default.safetensors";

/// Where the default model is: `$CHANGEDET_DEFAULT_MODEL`, else `models/default.safetensors` in
/// a folder above the running executable (a build inside the repository, or a virtual
/// environment's Python in it) or in the repository this library was built from.
pub fn locate() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(ENV) {
        return Ok(PathBuf::from(path));
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| exe.ancestors().map(|dir| dir.join(RELATIVE)).find(|p| p.is_file()));
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(RELATIVE);
    beside_exe.or_else(|| built_from.is_file().then_some(built_from)).ok_or_else(|| ModelError::Checkpoint {
        path: PathBuf::from(RELATIVE),
        message: format!("the default model was not found above the executable or in the repository changedet was built from: give a checkpoint, or set {ENV}"),
    })
}

/// A model to predict or evaluate with, and where it came from.
pub struct Loaded {
    pub model: LoadedModel,
    pub path: PathBuf,
    /// The Sentinel-2 bands it was trained on, in its order (`None`: 8-bit RGB images).
    pub bands: Option<Vec<String>>,
    /// The trainer's record (recipe, epochs, scores), when the checkpoint has one.
    pub training: Option<Value>,
}

/// The checkpoint at `path` on `device`.
pub fn load(path: &Path, device: Device) -> Result<Loaded> {
    let checkpoint = Checkpoint::read(path)?;
    let model = checkpoint.load_model(path, device)?;
    let bands = checkpoint.training.as_ref().and_then(|t| t.get("bands")).and_then(|b| serde_json::from_value(b.clone()).ok());
    Ok(Loaded { model, path: path.to_owned(), bands, training: checkpoint.training })
}

impl Loaded {
    /// `dataset` read as this model needs it: with the bands it was trained on where the dates
    /// are band folders (models of RGB images read B04, B03, B02 there).
    pub fn dataset_for(&self, dataset: changedet_data::Dataset) -> Result<changedet_data::Dataset> {
        match &self.bands {
            Some(bands) => dataset.with_bands(bands).map_err(|e| ModelError::Checkpoint {
                path: self.path.clone(),
                message: format!("trained on Sentinel-2 bands {}: {e}", bands.join(",")),
            }),
            None => Ok(dataset),
        }
    }
}
