//! Georeferenced scenes through GDAL: reading windows of band stacks with their validity masks,
//! checking that two dates share a grid (or warping one onto the other), writing Cloud-Optimised
//! GeoTIFFs, and turning change maps into polygons.

mod align;
mod area;
mod grid;
mod mosaic;
mod output;
mod overviews;
mod polygons;
mod record;
mod scaling;
mod scene;
pub mod sentinel2;

pub use align::{RegisteredDates, open_registered, warp_onto};
pub use area::{AreaMeasure, changed_area_m2};
pub use grid::{Grid, Overlap, overlap};
pub use mosaic::repeat_as_mosaic;
pub use output::{MapKind, StagedRaster};
pub use overviews::Halve;
pub use polygons::{PolygonOptions, polygonize, vector_driver};
pub use record::{SceneRecord, absolute};
pub use scaling::{BandScale, Scaling};
pub use scene::{Sample, Scene, StatisticsSource};

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

/// Runs GDAL calls and also fails when GDAL recorded a failure in this thread's error state
/// without returning one: GDAL 3.6 reports write errors of flushes and closes (a full disk) only
/// there, and a read can evict another file's unwritten blocks and fail to write them.
pub(crate) fn checked<T>(path: &Path, what: &str, calls: impl FnOnce() -> Result<T>) -> Result<T> {
    // SAFETY: plain accessors of GDAL's thread-local error state.
    unsafe { gdal_sys::CPLErrorReset() };
    let value = calls()?;
    let class = unsafe { gdal_sys::CPLGetLastErrorType() };
    if class == gdal_sys::CPLErr::CE_Failure || class == gdal_sys::CPLErr::CE_Fatal {
        let message = unsafe { std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()) }.to_string_lossy().into_owned();
        return Err(GeoError::Invalid(format!("{}: {what} failed: {message}", path.display())));
    }
    Ok(value)
}

/// Process-wide GDAL settings for scene runs. The block cache is by default 5% of the RAM; a
/// fixed size keeps the peak memory independent of the machine and of the scene. GDAL's messages
/// go to the log instead of stderr: its failures reach the user as our errors (with the file),
/// its warnings as log warnings.
pub fn configure(cache_megabytes: usize) {
    // GDAL reads GDAL_CACHEMAX once, at the cache's first use; this applies at any time.
    // SAFETY: a plain setter of a process-wide limit.
    unsafe { gdal_sys::GDALSetCacheMax64(cache_megabytes as i64 * 1024 * 1024) };
    gdal::config::set_error_handler(|class, _, message| match class {
        gdal::errors::CplErrType::Warning => tracing::warn!("GDAL: {message}"),
        _ => tracing::debug!("GDAL: {message}"),
    });
}
