//! Georeferenced scenes through GDAL: reading windows of band stacks with their validity masks,
//! checking that two dates share a grid (or warping one onto the other), writing Cloud-Optimised
//! GeoTIFFs, and turning change maps into polygons.

mod align;
mod grid;
mod output;
mod polygons;
mod scaling;
mod scene;

pub use align::warp_onto;
pub use grid::{Grid, Overlap, overlap};
pub use output::{MapKind, StagedRaster};
pub use polygons::{PolygonOptions, polygonize};
pub use scaling::{BandScale, Scaling};
pub use scene::Scene;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{path}: {source}")]
    Gdal { path: PathBuf, source: gdal::errors::GdalError },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = GeoError> = std::result::Result<T, E>;

/// Attaches the file a GDAL call was about to a GDAL error.
pub(crate) trait GdalContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> GdalContext<T> for gdal::errors::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| GeoError::Gdal { path: path.to_owned(), source })
    }
}

/// GDAL's block cache is process-wide and by default 5% of the RAM; a fixed size keeps the
/// peak memory of a scene run independent of the machine and of the scene.
pub fn limit_gdal_cache(megabytes: usize) {
    // Setting a known configuration key cannot fail.
    let _ = gdal::config::set_config_option("GDAL_CACHEMAX", &megabytes.to_string());
}
