//! The model `predict` and `eval` use when no --checkpoint is given: the repository's
//! `models/default.safetensors` (written by `scripts/train-default.sh`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use changedet_data::Dataset;
use changedet_models::{Checkpoint, LoadedModel};

/// Overrides where the default model is looked for.
pub const ENV: &str = "CHANGEDET_DEFAULT_MODEL";
const RELATIVE: &str = "models/default.safetensors";

/// Where the default model is: `$CHANGEDET_DEFAULT_MODEL`, else `models/default.safetensors`
/// in a folder above the executable (a build inside the repository) or in the repository this
/// binary was built from.
fn locate() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(ENV) {
        return Ok(PathBuf::from(path));
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| exe.ancestors().map(|dir| dir.join(RELATIVE)).find(|p| p.is_file()));
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(RELATIVE);
    beside_exe.or_else(|| built_from.is_file().then_some(built_from)).ok_or_else(|| {
        anyhow::anyhow!("no --checkpoint given and the default model ({RELATIVE}) was not found above the executable or in the repository it was built from: pass --checkpoint, or set {ENV}")
    })
}

/// A model to predict or evaluate with, and where it came from.
pub struct Loaded {
    pub model: LoadedModel,
    pub path: PathBuf,
    /// The Sentinel-2 bands it was trained on, in its order (`None`: 8-bit RGB images).
    pub bands: Option<Vec<String>>,
}

/// `dataset` read as a model trained on `bands` (from `checkpoint`) needs it: with those bands
/// where its dates are band folders; models of RGB images read B04, B03, B02 there.
pub fn with_model_bands(bands: Option<&[String]>, checkpoint: &Path, dataset: Dataset) -> Result<Dataset> {
    match bands {
        Some(bands) => dataset.with_bands(bands).with_context(|| format!("{} was trained on Sentinel-2 bands {}", checkpoint.display(), bands.join(","))),
        None => Ok(dataset),
    }
}

/// The checkpoint at `given`, or the default model, saying so.
pub fn load(given: Option<&Path>, device: tch::Device) -> Result<Loaded> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => {
            let path = locate()?;
            eprintln!("using the default model {} (`changedet info` describes it; --checkpoint picks another)", path.display());
            path
        }
    };
    let checkpoint = Checkpoint::read(&path)?;
    let model = checkpoint.load_model(&path, device)?;
    let bands = checkpoint.training.as_ref().and_then(|t| t.get("bands")).and_then(|b| serde_json::from_value(b.clone()).ok());
    Ok(Loaded { model, path, bands })
}
