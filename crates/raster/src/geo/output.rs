//! Output maps: written block by block into a hidden tiled GeoTIFF beside the final path, then
//! turned into a Cloud-Optimised GeoTIFF under a second hidden name and renamed into place, so a
//! failure (a full disk, a crash) never leaves a half-written file under the final name.

use std::path::{Path, PathBuf};

use gdal::raster::{ColorEntry, ColorTable, PaletteInterpretation, RasterBand, RasterCreationOptions};
use gdal::{Dataset, DriverManager};
use tempfile::TempPath;

use super::overviews::{self, Halve};
use super::{GdalContext, GeoError, Grid, Result, checked};
use crate::{Window, atomic};

/// The kinds of map a scene run writes.
#[derive(Clone, Debug, PartialEq)]
pub enum MapKind {
    /// uint8 values with nodata 255 and an optional colour table.
    Classes { colours: Option<Vec<[u8; 3]>> },
    /// float32 in [0, 1], nodata NaN.
    Probability,
}

impl MapKind {
    fn nodata(&self) -> f64 {
        match self {
            MapKind::Classes { .. } => 255.0,
            MapKind::Probability => f64::NAN,
        }
    }
}

/// Block size of the intermediate and final GeoTIFFs.
const BLOCK: usize = 512;

/// A map being written: a hidden, tiled, sparse GeoTIFF next to `target`.
pub struct StagedRaster {
    target: PathBuf,
    temp: TempPath,
    dataset: Dataset,
    /// Overview levels built as blocks are written (none for a shard's part).
    levels: usize,
}

/// [`atomic::staged_path`] with the error naming the target.
pub(crate) fn hidden_temp(target: &Path, suffix: &str) -> Result<TempPath> {
    atomic::staged_path(target, suffix).map_err(|e| GeoError::Invalid(format!("{}: {e}", target.display())))
}

/// [`atomic::commit`] with the error naming the target.
pub(crate) fn commit(temp: TempPath, target: &Path) -> Result<()> {
    atomic::commit(temp, target).map_err(|e| GeoError::Invalid(format!("{}: {e}", target.display())))
}

fn options(pairs: &[(&str, &str)]) -> RasterCreationOptions {
    let mut list = RasterCreationOptions::new();
    for (k, v) in pairs {
        list.set_name_value(k, v).expect("ASCII creation option");
    }
    list
}

/// ZSTD level 1, which writes class maps in about half DEFLATE level 1's time, where this GDAL's
/// GeoTIFF driver has the codec; DEFLATE level 1 in GDAL builds without libzstd (such as the
/// bundled GDAL of `scripts/build-device.sh`).
fn fast_compression(gtiff: &gdal::Driver) -> &'static [(&'static str, &'static str)] {
    use gdal::Metadata;
    let options = gtiff.metadata_item("DMD_CREATIONOPTIONLIST", "").unwrap_or_default();
    if options.contains("<Value>ZSTD</Value>") { &[("COMPRESS", "ZSTD"), ("ZSTD_LEVEL", "1")] } else { &[("COMPRESS", "DEFLATE"), ("ZLEVEL", "1")] }
}

fn colour_table(colours: &[[u8; 3]]) -> ColorTable<'static> {
    let mut table = ColorTable::new(PaletteInterpretation::Rgba);
    for (i, [r, g, b]) in colours.iter().enumerate() {
        table.set_color_entry(i as u16, &ColorEntry::rgba(*r as i16, *g as i16, *b as i16, 255));
    }
    table
}

impl StagedRaster {
    /// With `overviews`, the COG's overview levels are made now and filled by [`StagedRaster::write`]
    /// (blocks must then be written in row-major order of a block grid).
    pub fn create(target: &Path, grid: &Grid, kind: &MapKind, overviews: bool) -> Result<Self> {
        let temp = hidden_temp(target, "partial.tif")?;
        let driver = DriverManager::get_driver_by_name("GTiff").at(target)?;
        let block = BLOCK.to_string();
        // Staged files are read once more, by the COG conversion or `merge`. Probabilities stay
        // uncompressed: their low mantissa bits are noise, so ZSTD saved only 10 % of a 4096²
        // scene's map (80 instead of 89 MB) for 0.1 s of the writer's time during inference and
        // 0.08 s more in the COG conversion.
        let compression = match kind {
            MapKind::Classes { .. } => fast_compression(&driver),
            MapKind::Probability => &[],
        };
        let options = options(
            &[
                ("TILED", "YES"),
                ("BLOCKXSIZE", block.as_str()),
                ("BLOCKYSIZE", block.as_str()),
                ("BIGTIFF", "IF_SAFER"),
                // Blocks never written (other shards' blocks) take no space and read as nodata.
                ("SPARSE_OK", "TRUE"),
            ]
            .iter()
            .chain(compression)
            .copied()
            .collect::<Vec<_>>(),
        );
        let mut dataset = match kind {
            MapKind::Classes { .. } => driver.create_with_band_type_with_options::<u8, _>(&temp, grid.width, grid.height, 1, &options),
            MapKind::Probability => driver.create_with_band_type_with_options::<f32, _>(&temp, grid.width, grid.height, 1, &options),
        }
        .at(target)?;
        dataset.set_geo_transform(&grid.transform).at(target)?;
        if !grid.wkt.is_empty() {
            dataset.set_projection(&grid.wkt).at(target)?;
        }
        let mut band = dataset.rasterband(1).at(target)?;
        band.set_no_data_value(Some(kind.nodata())).at(target)?;
        if let MapKind::Classes { colours: Some(colours) } = kind {
            band.set_color_table(&colour_table(colours));
        }
        let factors = if overviews { overviews::factors(grid.width, grid.height, BLOCK) } else { Vec::new() };
        if !factors.is_empty() {
            // "NONE" makes the levels without computing them.
            dataset.build_overviews("NONE", &factors.iter().map(|&f| f as i32).collect::<Vec<_>>(), &[]).at(target)?;
        }
        Ok(StagedRaster { target: target.to_owned(), temp, dataset, levels: factors.len() })
    }

    /// Writes `values` over `window`, and the overview pixels it completes, and flushes them to
    /// the file, so that a write error (a full disk) surfaces here.
    pub fn write<T: Halve>(&mut self, window: &Window, values: Vec<T>) -> Result<()> {
        let StagedRaster { target, dataset, levels, .. } = self;
        checked(target, "writing", || {
            let band = |level: usize| match level {
                0 => dataset.rasterband(1),
                _ => dataset.rasterband(1)?.overview(level - 1),
            };
            let mut size = dataset.raster_size();
            let mut done = *window;
            let mut values = write_window(&mut band(0).at(target)?, &done, values).at(target)?;
            for level in 1..=*levels {
                let pixels = overviews::completed(&done, size);
                if pixels.area() == 0 {
                    break; // nor does it complete any pixel of the coarser levels
                }
                let children = overviews::children(&pixels, size);
                let inputs = if children == done { values } else { read_window(&band(level - 1).at(target)?, &children).at(target)? };
                values = T::halve(&inputs, children.width, children.height);
                (done, size) = (pixels, (size.0.div_ceil(2), size.1.div_ceil(2)));
                values = write_window(&mut band(level).at(target)?, &done, values).at(target)?;
            }
            dataset.flush_cache().at(target)
        })
    }

    /// Closes the file and renames it to the target as it is (a shard's part, merged later).
    pub fn finish_tiled(self) -> Result<()> {
        let StagedRaster { target, temp, dataset, .. } = self;
        checked(&target, "writing", || dataset.close().at(&target))?;
        commit(temp, &target)
    }

    /// Closes the file and writes the target as a COG from it.
    pub fn finish_cog(self, kind: &MapKind) -> Result<()> {
        let StagedRaster { target, temp, dataset, .. } = self;
        checked(&target, "writing", || dataset.close().at(&target))?;
        let source = Dataset::open(&temp).at(&target)?;
        translate_to_cog(&source, &target, kind)
    }
}

/// Writes `source` to `target` as a COG:
/// 512² DEFLATE tiles with a predictor, overviews (nearest for class maps, average for
/// probabilities), BigTIFF when needed. DEFLATE level 1: on a 4096² FC-Siam-diff scene the
/// conversion took 1.6 s instead of level 6's 2.7 s, for files 2 % (probability) to 9 % (change)
/// larger.
fn translate_to_cog(source: &Dataset, target: &Path, kind: &MapKind) -> Result<()> {
    let temp = hidden_temp(target, "cog.tif")?;
    let driver = DriverManager::get_driver_by_name("COG").at(target)?;
    let resampling = match kind {
        MapKind::Classes { .. } => "NEAREST",
        MapKind::Probability => "AVERAGE",
    };
    let block = BLOCK.to_string();
    let options = options(&[
        ("COMPRESS", "DEFLATE"),
        ("PREDICTOR", "YES"),
        ("LEVEL", "1"),
        ("BLOCKSIZE", &block),
        ("BIGTIFF", "IF_SAFER"),
        ("OVERVIEW_RESAMPLING", resampling),
        ("NUM_THREADS", "ALL_CPUS"),
    ]);
    checked(target, "writing the COG", || source.create_copy(&driver, &temp, &options).at(target)?.close().at(target))?;
    commit(temp, target)
}

fn read_window<T: Halve>(band: &RasterBand, window: &Window) -> gdal::errors::Result<Vec<T>> {
    let size = (window.width, window.height);
    Ok(band.read_as::<T>((window.x as isize, window.y as isize), size, size, None)?.into_shape_and_vec().1)
}

/// Writes `values` over `window` (nothing when it is empty) and gives them back.
fn write_window<T: Halve>(band: &mut RasterBand, window: &Window, values: Vec<T>) -> gdal::errors::Result<Vec<T>> {
    if window.area() == 0 {
        return Ok(values);
    }
    let mut buffer = gdal::raster::Buffer::new((window.width, window.height), values);
    band.write((window.x as isize, window.y as isize), (window.width, window.height), &mut buffer)?;
    Ok(buffer.into_shape_and_vec().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's GDAL, which CI and the usual build link, has libzstd: the check finds the codec
    /// in the GeoTIFF driver's option list (a wrong pattern would fall back to DEFLATE silently).
    #[test]
    fn zstd_is_found_where_gdal_has_it() {
        let gtiff = DriverManager::get_driver_by_name("GTiff").unwrap();
        assert_eq!(fast_compression(&gtiff)[0], ("COMPRESS", "ZSTD"));
    }
}
