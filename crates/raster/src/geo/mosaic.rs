//! Large georeferenced test scenes made from one small image: a tiled GeoTIFF copy of it,
//! repeated over a grid by a VRT (0.5 m pixels in UTM 50N), so that a scene of any size costs no
//! disk and is read the way real scenes are (windowed, block by block). For benchmarks.

use std::path::{Path, PathBuf};

use gdal::raster::RasterCreationOptions;
use gdal::{Dataset, DriverManager};

use super::{GdalContext, GeoError, Result};

/// Writes `DIR/NAME.tif` (the tiled copy of `source`) and `DIR/NAME.vrt`, a `side × side`
/// mosaic of it; returns the VRT's path.
pub fn repeat_as_mosaic(source: &Path, side: usize, dir: &Path, name: &str) -> Result<PathBuf> {
    let tiled = dir.join(format!("{name}.tif"));
    let mut options = RasterCreationOptions::new();
    options.set_name_value("TILED", "YES").at(&tiled)?;
    let driver = DriverManager::get_driver_by_name("GTiff").at(&tiled)?;
    let copy = Dataset::open(source).at(source)?.create_copy(&driver, &tiled, &options).at(&tiled)?;
    let (width, height) = copy.raster_size();
    let bands = copy.raster_count();
    copy.close().at(&tiled)?;
    let vrt = dir.join(format!("{name}.vrt"));
    let xml = mosaic_xml(&tiled, (width, height), bands, side);
    std::fs::write(&vrt, xml).map_err(|e| GeoError::Invalid(format!("{}: cannot write: {e}", vrt.display())))?;
    Ok(vrt)
}

fn mosaic_xml(tile: &Path, (w, h): (usize, usize), bands: usize, side: usize) -> String {
    let mut xml = format!(
        "<VRTDataset rasterXSize=\"{side}\" rasterYSize=\"{side}\"><SRS>EPSG:32650</SRS><GeoTransform>500000, 0.5, 0, 4000000, 0, -0.5</GeoTransform>"
    );
    for band in 1..=bands {
        xml += &format!("<VRTRasterBand dataType=\"Byte\" band=\"{band}\">");
        for y in (0..side).step_by(h) {
            for x in (0..side).step_by(w) {
                xml += &format!(
                    "<SimpleSource><SourceFilename>{}</SourceFilename><SourceBand>{band}</SourceBand><SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{w}\" ySize=\"{h}\"/><DstRect xOff=\"{x}\" yOff=\"{y}\" xSize=\"{w}\" ySize=\"{h}\"/></SimpleSource>",
                    tile.display()
                );
            }
        }
        xml += "</VRTRasterBand>";
    }
    xml + "</VRTDataset>"
}
