//! Bi-temporal change-detection datasets: where the files are (layouts and presets), what the
//! label pixels mean (encodings), and how pairs become normalised batches (augmentation, parallel
//! loading). Nothing here depends on a deep-learning framework: batches are plain `f32` buffers.

mod augment;
pub mod class_lists;
mod dataset;
mod image;
mod label;
mod loader;
mod normalization;
mod oscd;
mod photometric;
mod sampling;
pub mod map_scores;
pub mod maps;
pub mod palette;
pub mod prepare;
pub mod semantic;

pub use augment::{Augment, PairSample};
pub use dataset::{Dataset, DatasetSpec, PairPaths, Preset};
pub use image::Image;
pub use semantic::SemanticLabels;
pub use label::{IGNORE, LabelEncoding};
pub use loader::{Batch, BatchLoader, LoaderConfig, epoch_order, load_pair};
pub use normalization::{Normalization, PerImage};
pub use sampling::{DecodedPairs, PatchGrid, Sample};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Raster(#[from] changedet_raster::RasterError),
    #[error(transparent)]
    Geo(#[from] changedet_raster::geo::GeoError),
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("{path}: missing {role} file for pair '{name}'")]
    MissingFile { path: PathBuf, role: &'static str, name: String },
    #[error("pair '{name}': {before} is {bw}×{bh} but {other} is {ow}×{oh}")]
    SizeMismatch { name: String, before: PathBuf, bw: u32, bh: u32, other: PathBuf, ow: u32, oh: u32 },
    #[error("{path}: label values {found:?} do not fit {expected}")]
    LabelValues { path: PathBuf, found: Vec<u8>, expected: String },
    #[error("{message}")]
    Batch { message: String },
    #[error("{0}")]
    Maps(String),
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
