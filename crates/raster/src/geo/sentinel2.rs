//! Sentinel-2 bands as users have them: a folder of one file per band (OSCD's `imgs_1/`, a SAFE
//! product's `IMG_DATA`, per-band downloads), each band found by the name that ends its file
//! name (`…_B04.tif`, `…_B8A.jp2`) and brought to the 10 m grid of B04.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gdal::Dataset;

use super::{GdalContext, GeoError, Result};
use crate::Raster;

/// The 13 bands of the MultiSpectral Instrument with their ground sampling distance in metres.
pub const BANDS: [(&str, u32); 13] = [
    ("B01", 60),
    ("B02", 10),
    ("B03", 10),
    ("B04", 10),
    ("B05", 20),
    ("B06", 20),
    ("B07", 20),
    ("B08", 10),
    ("B8A", 20),
    ("B09", 60),
    ("B10", 60),
    ("B11", 20),
    ("B12", 20),
];

/// The 13 bands in the order Daudt et al.'s OSCD code stacks them (`read_sentinel_img_leq60`).
pub const DAUDT_ALL: [&str; 13] = ["B04", "B03", "B02", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09", "B10"];

/// Red, green, blue (the paper's 3-band setting).
pub const RGB: [&str; 3] = ["B04", "B03", "B02"];

/// The band whose raster defines the 10 m grid (the official code's reference shape).
const GRID_BAND: &str = "B04";

const EXTENSIONS: [&str; 4] = ["tif", "tiff", "jp2", "j2k"];

/// A band name in its canonical spelling (`b4`, `B4`, `B04` → `B04`; `b8a` → `B8A`), or an
/// error listing the names.
pub fn band_name(name: &str) -> Result<&'static str> {
    let upper = name.trim().to_ascii_uppercase();
    let canonical = match upper.strip_prefix('B') {
        Some(digits) if digits.len() == 1 => format!("B0{digits}"),
        _ => upper,
    };
    BANDS.iter().map(|(n, _)| *n).find(|n| *n == canonical).ok_or_else(|| {
        let names: Vec<&str> = BANDS.iter().map(|(n, _)| *n).collect();
        GeoError::Invalid(format!("'{name}' is not a Sentinel-2 band (bands: {})", names.join(", ")))
    })
}

/// Comma-separated band names (`B04,B03,B02`), canonical, each once; or `all`: the 13 bands in
/// the order of Daudt et al.'s OSCD code.
pub fn parse_bands(list: &str) -> Result<Vec<String>> {
    if list.eq_ignore_ascii_case("all") {
        return Ok(DAUDT_ALL.iter().map(|b| b.to_string()).collect());
    }
    let mut bands = Vec::new();
    for name in list.split(',') {
        let band = band_name(name)?;
        if bands.iter().any(|b| b == band) {
            return Err(GeoError::Invalid(format!("band {band} is listed twice in '{list}'")));
        }
        bands.push(band.to_owned());
    }
    Ok(bands)
}

fn resolution(band: &str) -> u32 {
    BANDS.iter().find(|(n, _)| *n == band).map_or(10, |&(_, gsd)| gsd)
}

/// The band files of one acquisition, by band name.
#[derive(Debug, Clone)]
pub struct BandFolder {
    dir: PathBuf,
    files: BTreeMap<&'static str, PathBuf>,
}

impl BandFolder {
    /// The band files directly in `dir`: files whose name, before the extension (GeoTIFF or
    /// JPEG 2000), ends in `_B01` … `_B12` or `_B8A`. Two files of one band are an error.
    pub fn open(dir: &Path) -> Result<BandFolder> {
        let entries = std::fs::read_dir(dir).map_err(|e| GeoError::Invalid(format!("{}: cannot list the band files: {e}", dir.display())))?;
        let mut files: BTreeMap<&'static str, PathBuf> = BTreeMap::new();
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(band) = band_of_file(&path) else { continue };
            if let Some(first) = files.insert(band, path.clone()) {
                return Err(GeoError::Invalid(format!("{}: two files of band {band}: {} and {}", dir.display(), first.display(), path.display())));
            }
        }
        if files.is_empty() {
            return Err(GeoError::Invalid(format!("{}: no Sentinel-2 band files (names ending in _B01 … _B12 or _B8A, .tif or .jp2)", dir.display())));
        }
        Ok(BandFolder { dir: dir.to_owned(), files })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `band`, or an error naming the folder and the band.
    pub fn file(&self, band: &str) -> Result<&Path> {
        self.files.get(band).map(PathBuf::as_path).ok_or_else(|| {
            let present: Vec<&str> = self.files.keys().copied().collect();
            GeoError::Invalid(format!("{}: band {band} is missing (the folder has {})", self.dir.display(), present.join(", ")))
        })
    }

    /// Width and height of the 10 m grid (B04's raster).
    pub fn size(&self) -> Result<(u32, u32)> {
        let path = self.file(GRID_BAND)?;
        let (w, h) = Dataset::open(path).at(path)?.raster_size();
        Ok((w as u32, h as u32))
    }

    /// `bands` in that order, interleaved, on the 10 m grid: 10 m bands as stored; 20 m and 60 m
    /// bands zoomed ×2 and ×6 by scipy's cubic spline ([`crate::spline_zoom`]), then cropped or
    /// edge-padded to B04's size, as the official OSCD code does (`zoom`, `adjust_shape`). `size`, when
    /// given, then crops or edge-pads the stack to another date's grid (the official code pads
    /// the second date to the first's shape).
    pub fn read(&self, bands: &[String], size: Option<(u32, u32)>) -> Result<Raster<u16>> {
        let (w, h) = self.size()?;
        let planes = bands.iter().map(|band| self.read_band(band, (w, h))).collect::<Result<Vec<_>>>()?;
        let (tw, th) = size.unwrap_or((w, h));
        let mut data = vec![0u16; tw as usize * th as usize * planes.len()];
        for (c, plane) in planes.iter().enumerate() {
            for y in 0..th as usize {
                let row = &plane[y.min(h as usize - 1) * w as usize..][..w as usize];
                for x in 0..tw as usize {
                    data[(y * tw as usize + x) * planes.len() + c] = row[x.min(w as usize - 1)];
                }
            }
        }
        Ok(Raster::new(tw, th, planes.len(), data))
    }

    /// One band on the `(w, h)` grid, row-major.
    fn read_band(&self, band: &str, (w, h): (u32, u32)) -> Result<Vec<u16>> {
        let path = self.file(band)?;
        let dataset = Dataset::open(path).at(path)?;
        if dataset.raster_count() != 1 {
            return Err(GeoError::Invalid(format!("{}: a band file must hold one band, this one has {}", path.display(), dataset.raster_count())));
        }
        let (bw, bh) = dataset.raster_size();
        let factor = (resolution(band) / 10) as usize;
        let (zw, zh) = (bw * factor, bh * factor);
        let stored = dataset.rasterband(1).at(path)?.read_as::<u16>((0, 0), (bw, bh), (bw, bh), None).at(path)?.into_shape_and_vec().1;
        let zoomed = if factor > 1 { crate::spline_zoom::zoom_u16(&stored, bw, bh, factor) } else { stored };
        if zw.abs_diff(w as usize) > factor || zh.abs_diff(h as usize) > factor {
            return Err(GeoError::Invalid(format!(
                "{}: band {band} is {bw}×{bh} at {} m, which does not cover B04's {w}×{h} grid at 10 m",
                path.display(),
                resolution(band)
            )));
        }
        let (w, h) = (w as usize, h as usize);
        Ok((0..h).flat_map(|y| (0..w).map(move |x| (x.min(zw - 1), y.min(zh - 1)))).map(|(x, y)| zoomed[y * zw + x]).collect())
    }
}

/// The band a file holds, from its name (`T31UDQ_20161130_B8A.jp2` → `B8A`).
fn band_of_file(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if !EXTENSIONS.contains(&ext.as_str()) || !path.is_file() {
        return None;
    }
    let stem = path.file_stem()?.to_str()?.to_ascii_uppercase();
    let (_, tail) = stem.rsplit_once('_')?;
    BANDS.iter().map(|(n, _)| *n).find(|n| *n == tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_names_are_canonical() {
        assert_eq!(band_name("b4").unwrap(), "B04");
        assert_eq!(band_name("B8a").unwrap(), "B8A");
        assert_eq!(parse_bands("B04, b3,B02").unwrap(), RGB);
        assert!(band_name("B13").unwrap_err().to_string().contains("B8A"));
        assert!(parse_bands("B04,B4").unwrap_err().to_string().contains("twice"));
        assert_eq!(band_of_file(Path::new("/nonexistent/x_B04.tif")), None, "only existing files");
    }
}
