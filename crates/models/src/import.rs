//! Converting the reference implementations' PyTorch checkpoints into changedet models. Each
//! model names its variables as its reference does, so a state dict maps one to one, minus the
//! entries the reference stores but never uses (reported, not silently dropped).

use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::checkpoint::copy_into;
use crate::pth::PthFile;
use crate::{LoadedModel, ModelError, ModelSpec, Result, tensor_io};

/// What an import did besides copying weights.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// State-dict entries the changedet model has no use for, with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// Why a reference entry is not imported, or `None` when it must map onto a variable.
fn unused_entry(spec: &ModelSpec, key: &str) -> Option<&'static str> {
    if key.ends_with("num_batches_tracked") {
        return Some("BatchNorm step counter; the momentum is fixed, so it is never read");
    }
    spec.config().unused_reference_entry(key)
}

/// The shape of `key` in `tensors`, which must have exactly `N` dimensions (a crafted file may
/// hold anything under a known name).
pub fn dims<const N: usize>(tensors: &BTreeMap<String, Tensor>, key: &str, path: &Path) -> Result<[i64; N]> {
    let tensor = tensors.get(key).ok_or_else(|| ModelError::MissingKey { path: path.to_owned(), key: key.to_owned() })?;
    let size = tensor.size();
    size.as_slice().try_into().map_err(|_| ModelError::Checkpoint { path: path.to_owned(), message: format!("'{key}' has shape {size:?}, not {N} dimensions") })
}

/// Reads a state dict from a PyTorch checkpoint (`.pth`, `.pth.tar`, `.pt` written by
/// `torch.save`) or a safetensors file.
pub fn read_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    Ok(if is_safetensors { tensor_io::read(path)?.tensors } else { PthFile::open(path)?.state_dict()?.into_iter().collect() })
}

/// Fills the variables of `spec`'s model, built in `vs`, from `state_dict`: every variable must
/// be present with the same shape, and every entry must be a variable or a known unused one.
pub fn import_into(vs: &mut VarStore, spec: &ModelSpec, mut state_dict: BTreeMap<String, Tensor>, path: &Path) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    state_dict.retain(|key, _| match unused_entry(spec, key) {
        Some(why) => {
            report.skipped.push((key.clone(), why));
            false
        }
        None => true,
    });
    copy_into(vs, &state_dict, path, spec.name())?;
    Ok(report)
}

/// Builds `spec`'s model on `device` and imports `state_dict` into it.
pub fn import(spec: ModelSpec, state_dict: BTreeMap<String, Tensor>, path: &Path, device: Device) -> Result<(LoadedModel, ImportReport)> {
    let mut model = LoadedModel::new(spec, device)?;
    let report = import_into(&mut model.vs, &model.spec, state_dict, path)?;
    Ok((model, report))
}

/// [`read_state_dict`] then [`import`].
pub fn import_file(spec: ModelSpec, path: &Path, device: Device) -> Result<(LoadedModel, ImportReport)> {
    let state_dict = read_state_dict(path)?;
    if state_dict.is_empty() {
        return Err(ModelError::Checkpoint { path: path.to_owned(), message: "the state dict is empty".into() });
    }
    import(spec, state_dict, path, device)
}
