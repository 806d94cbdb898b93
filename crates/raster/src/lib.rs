//! Raster I/O: decoding image tiles (PNG, JPEG, TIFF) into plain interleaved buffers, and writing
//! change maps, probabilities and overlays so that no half-written file is ever left under its
//! final name; georeferenced scenes through GDAL (`geo`); covering scenes with blended tiles
//! (`tiling`).

pub mod atomic;
pub mod from_to;
pub mod geo;
mod image_io;
mod overlay;
pub mod progress;
pub mod spline_zoom;
pub mod text;
pub mod tiling;

pub use image_io::{Raster, dimensions, read_gray, read_rgb, write_gray_png, write_rgb_png};
pub use overlay::{Overlay, overlay_change, overlay_errors};
pub use tiling::Window;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    #[error("{path}: cannot read image: {source}")]
    Read { path: PathBuf, source: image::ImageError },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot encode image: {source}")]
    Encode { path: PathBuf, source: image::ImageError },
    #[error("{path}: expected {expected} bytes for a {width}×{height}×{channels} image, got {actual}")]
    BufferSize { path: PathBuf, width: u32, height: u32, channels: usize, expected: usize, actual: usize },
}
