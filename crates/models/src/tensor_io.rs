//! safetensors files ↔ tch tensors, with metadata, written atomically.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::{ModelError, Result};

fn error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Checkpoint { path: path.to_owned(), message: message.into() }
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

/// A tensor element type by the safetensors name users see in a file's header (`F32`, `I32`).
pub fn dtype_name(kind: Kind) -> String {
    dtype_of(kind).map_or_else(|| format!("{kind:?}"), |d| d.to_string())
}

/// A safetensors file's tensors (on the CPU) and its free-form metadata.
pub struct TensorFile {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

pub fn read(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| error(path, format!("cannot read: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| error(path, format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).map_err(|e| error(path, format!("not a valid safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| error(path, format!("tensor '{name}' has unsupported dtype {:?}", view.dtype())))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        tensors.insert(name, Tensor::f_from_data_size(view.data(), &shape, kind)?);
    }
    Ok(TensorFile { tensors, metadata })
}

struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_host(name: &str, t: &Tensor, path: &Path) -> Result<HostTensor> {
    let t = t.to_device(Device::Cpu).contiguous();
    let dtype = dtype_of(t.kind()).ok_or_else(|| error(path, format!("tensor '{name}' has unsupported kind {:?}", t.kind())))?;
    let numel = t.numel();
    let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, numel)?;
    Ok(HostTensor { dtype, shape: t.size().iter().map(|&d| d as usize).collect(), data })
}

/// Writes tensors and metadata to a temporary file beside `path`, then renames it into place.
pub fn write<'a>(path: &Path, tensors: impl IntoIterator<Item = (String, &'a Tensor)>, metadata: HashMap<String, String>) -> Result<()> {
    let host = tensors.into_iter().map(|(name, t)| Ok((name.clone(), to_host(&name, t, path)?))).collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(host.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(|e| error(path, format!("cannot serialise: {e}")))?;
    // Synced before the rename: a checkpoint must survive a crash right after it is written.
    changedet_raster::atomic::write_with(path, |file| {
        std::io::Write::write_all(file, &bytes)?;
        file.sync_all()
    })
    .map_err(|e| error(path, format!("cannot write: {e}")))
}
