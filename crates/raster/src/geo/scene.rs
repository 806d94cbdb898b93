//! One date of a scene: one raster, or several single- or multi-band files on one grid stacked
//! into a band list (CBERS and Landsat ship one file per band), with a band selection.

use std::path::{Path, PathBuf};

use gdal::Dataset;
use gdal::raster::{ColorInterpretation, GdalDataType};

use super::{GdalContext, GeoError, Grid, Result};
use crate::Window;

pub struct Scene {
    files: Vec<PathBuf>,
    datasets: Vec<Dataset>,
    bands: Vec<BandSource>,
    pub grid: Grid,
}

#[derive(Clone, Copy, Debug)]
struct BandSource {
    file: usize,
    band: usize,
    data_type: GdalDataType,
}

impl Scene {
    /// Opens `files` and selects `bands` (1-based, over the bands of all files in order, alpha
    /// bands excluded; all of them when `None`).
    pub fn open(files: &[PathBuf], bands: Option<&[usize]>) -> Result<Scene> {
        let Some(first) = files.first() else { return Err(GeoError::Invalid("a scene needs at least one file".into())) };
        let mut datasets = Vec::new();
        let mut available = Vec::new();
        let mut grid: Option<Grid> = None;
        for (file, path) in files.iter().enumerate() {
            let dataset = Dataset::open(path).at(path)?;
            let this = Grid::of(&dataset);
            match &grid {
                None => grid = Some(this),
                Some(g) => {
                    if (g.width, g.height, g.transform) != (this.width, this.height, this.transform) || !g.same_crs(&this)? {
                        return Err(GeoError::Invalid(format!(
                            "{} is not on the grid of {}; the files of one date must share size, geotransform and CRS",
                            path.display(),
                            first.display()
                        )));
                    }
                }
            }
            for band in 1..=dataset.raster_count() {
                let b = dataset.rasterband(band).at(path)?;
                if b.color_interpretation() != ColorInterpretation::AlphaBand {
                    available.push(BandSource { file, band, data_type: b.band_type() });
                }
            }
            datasets.push(dataset);
        }
        let selected = match bands {
            None => available,
            Some(list) => list
                .iter()
                .map(|&b| {
                    available.get(b.wrapping_sub(1)).copied().ok_or_else(|| {
                        GeoError::Invalid(format!("band {b} was asked for, but {} has bands 1 to {}", describe(files), available.len()))
                    })
                })
                .collect::<Result<_>>()?,
        };
        Ok(Scene { files: files.to_vec(), datasets, bands: selected, grid: grid.expect("one file at least") })
    }

    pub fn band_count(&self) -> usize {
        self.bands.len()
    }

    /// The file (or files) this date comes from, for messages.
    pub fn name(&self) -> String {
        describe(&self.files)
    }

    /// [`Scene::name`] with file names instead of paths, for pages shown to others.
    pub fn file_names(&self) -> String {
        let names: Vec<PathBuf> = self.files.iter().map(|f| f.file_name().map_or_else(|| f.clone(), PathBuf::from)).collect();
        describe(&names)
    }

    /// Whether every selected band holds 8-bit data.
    pub fn is_byte(&self) -> bool {
        self.bands.iter().all(|b| b.data_type == GdalDataType::UInt8)
    }

    pub fn data_types(&self) -> Vec<String> {
        self.bands.iter().map(|b| b.data_type.name()).collect()
    }

    fn path(&self, band: &BandSource) -> &Path {
        &self.files[band.file]
    }

    /// Reads `window` of the selected bands into `values` (planar `[bands, h, w]`, raw values as
    /// `T`: f32 for any band type, u8 for byte scenes, see [`Scene::is_byte`]) and clears `valid`
    /// where any band is masked (nodata, alpha, mask band) or not a finite number (NaN, ±∞: an
    /// infinite reflectance is a missing one, not a value for the model).
    pub fn read<T: Sample>(&self, window: Window, values: &mut [T], valid: &mut [bool]) -> Result<()> {
        self.read_resampled(window, (window.width, window.height), values, valid)
    }

    /// As [`Scene::read`], resampled to `size` (nearest neighbour; GDAL reads from overviews
    /// where the file has them, so that a coarse view of a large scene reads little).
    pub fn read_resampled<T: Sample>(&self, window: Window, size: (usize, usize), values: &mut [T], valid: &mut [bool]) -> Result<()> {
        super::checked(&self.files[0], "reading", || self.read_unchecked(window, size, values, valid))
    }

    fn read_unchecked<T: Sample>(&self, window: Window, size: (usize, usize), values: &mut [T], valid: &mut [bool]) -> Result<()> {
        let plane = size.0 * size.1;
        assert_eq!(values.len(), plane * self.bands.len());
        assert_eq!(valid.len(), plane);
        let at = ((window.x as isize), (window.y as isize));
        let extent = (window.width, window.height);
        let mut mask = vec![0u8; plane];
        for (band, out) in self.bands.iter().zip(values.chunks_mut(plane)) {
            let path = self.path(band);
            let raster = self.datasets[band.file].rasterband(band.band).at(path)?;
            raster.read_into_slice::<T>(at, extent, size, out, None).at(path)?;
            for (v, ok) in out.iter().zip(valid.iter_mut()) {
                *ok &= !v.is_missing();
            }
            if !raster.mask_flags().at(path)?.is_all_valid() {
                raster.open_mask_band().at(path)?.read_into_slice::<u8>(at, extent, size, &mut mask, None).at(path)?;
                for (m, ok) in mask.iter().zip(valid.iter_mut()) {
                    *ok &= *m != 0;
                }
            }
        }
        Ok(())
    }

    /// Where [`Scene::sample`] takes band `index`'s values for at most `side`² pixels.
    pub fn statistics_source(&self, index: usize, side: usize) -> Result<StatisticsSource> {
        let (width, height) = (self.grid.width, self.grid.height);
        if width.max(height) <= side {
            return Ok(StatisticsSource::Whole);
        }
        let band = &self.bands[index];
        let path = self.path(band);
        let overviews = self.datasets[band.file].rasterband(band.band).at(path)?.overview_count().at(path)?;
        Ok(if overviews > 0 { StatisticsSource::Overviews { side } } else { StatisticsSource::Windows { count: SAMPLE_GRID * SAMPLE_GRID, side: side / SAMPLE_GRID } })
    }

    /// The valid values of band `index` (0-based in the selection) on at most `side`² pixels:
    /// every pixel of a scene that small, else a decimated view from the file's overviews, else
    /// (a file without overviews, whose decimated read would read it all) windows spread evenly
    /// over the scene, so that the time taken does not grow with the scene.
    pub fn sample(&self, index: usize, side: usize) -> Result<Vec<f32>> {
        let whole = Window::new(0, 0, self.grid.width, self.grid.height);
        let windows = match self.statistics_source(index, side)? {
            StatisticsSource::Whole | StatisticsSource::Overviews { .. } => vec![whole],
            StatisticsSource::Windows { side: w, .. } => {
                let spread = |len: usize, i: usize| (len.saturating_sub(w)) * i / (SAMPLE_GRID - 1);
                let grid = (0..SAMPLE_GRID).flat_map(|row| (0..SAMPLE_GRID).map(move |column| (row, column)));
                grid.map(|(row, column)| Window::new(spread(whole.width, column), spread(whole.height, row), w.min(whole.width), w.min(whole.height))).collect()
            }
        };
        let scale = (side as f64 / whole.width.max(whole.height) as f64).min(1.0);
        let mut kept = Vec::new();
        for window in windows {
            let size = match window == whole {
                true => (((window.width as f64 * scale).round() as usize).max(1), ((window.height as f64 * scale).round() as usize).max(1)),
                false => (window.width, window.height),
            };
            kept.extend(self.band_values(index, window, size)?);
        }
        Ok(kept)
    }

    /// Band `index`'s valid values over `window`, read at `size`.
    fn band_values(&self, index: usize, window: Window, size: (usize, usize)) -> Result<Vec<f32>> {
        let band = &self.bands[index];
        let path = self.path(band);
        let raster = self.datasets[band.file].rasterband(band.band).at(path)?;
        let (at, extent) = ((window.x as isize, window.y as isize), (window.width, window.height));
        let mut values = vec![0f32; size.0 * size.1];
        raster.read_into_slice::<f32>(at, extent, size, &mut values, None).at(path)?;
        let mut mask = vec![255u8; values.len()];
        if !raster.mask_flags().at(path)?.is_all_valid() {
            raster.open_mask_band().at(path)?.read_into_slice::<u8>(at, extent, size, &mut mask, None).at(path)?;
        }
        Ok(values.into_iter().zip(mask).filter(|(v, m)| *m != 0 && v.is_finite()).map(|(v, _)| v).collect())
    }
}

/// Windows per side of the sample of a scene without overviews.
const SAMPLE_GRID: usize = 16;

/// Where a scene's statistics (per-image normalisation, percentile scaling) come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatisticsSource {
    /// Every pixel: the scene is no larger than the sample.
    Whole,
    /// A view at most `side` pixels across, from the file's overviews.
    Overviews { side: usize },
    /// `count` full-resolution windows of `side`² pixels spread over the scene.
    Windows { count: usize, side: usize },
}

impl std::fmt::Display for StatisticsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatisticsSource::Whole => write!(f, "every pixel"),
            StatisticsSource::Overviews { side } => write!(f, "the file's overviews ({side} px across)"),
            StatisticsSource::Windows { count, side } => {
                write!(f, "{count} windows of {side}×{side} px spread over the scene (it has no overviews; `gdaladdo` adds them)")
            }
        }
    }
}

/// A pixel type [`Scene::read`] reads into.
pub trait Sample: gdal::raster::GdalType + Copy {
    /// NaN and ±∞ mark a pixel invalid.
    fn is_missing(self) -> bool;
}

impl Sample for f32 {
    fn is_missing(self) -> bool {
        !self.is_finite()
    }
}

/// Reading a wider band type into u8 would clamp it: only byte scenes read as u8.
impl Sample for u8 {
    fn is_missing(self) -> bool {
        false
    }
}

fn describe(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        many => format!("{} (+{} files)", many[0].display(), many.len() - 1),
    }
}
