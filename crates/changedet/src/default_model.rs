//! The model `predict` and `eval` use when no --checkpoint is given: the repository's
//! `models/default.safetensors` (written by `scripts/train-default.sh`).

use std::path::{Path, PathBuf};

use anyhow::Result;

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

/// The checkpoint at `given`, or the default model, saying so.
pub fn load(given: Option<&Path>, device: tch::Device) -> Result<(LoadedModel, PathBuf)> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => {
            let path = locate()?;
            eprintln!("using the default model {} (`changedet info` describes it; --checkpoint picks another)", path.display());
            path
        }
    };
    let model = Checkpoint::read(&path)?.load_model(&path, device)?;
    Ok((model, path))
}
