//! Pixel grids (size, affine geotransform, CRS) and the co-registration of two dates.

use gdal::spatial_ref::SpatialRef;

use super::{GeoError, Result};
use crate::Window;

/// Where a raster's pixels lie: GDAL's geotransform (`x = t0 + col·t1 + row·t2`,
/// `y = t3 + col·t4 + row·t5`) and the CRS as WKT (empty when the file has none).
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub width: usize,
    pub height: usize,
    pub transform: [f64; 6],
    pub wkt: String,
}

impl Grid {
    /// The grid of an open raster; rasters without georeference (plain PNGs) get GDAL's
    /// identity transform.
    pub fn of(dataset: &gdal::Dataset) -> Grid {
        let (width, height) = dataset.raster_size();
        Grid { width, height, transform: dataset.geo_transform().unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]), wkt: dataset.projection() }
    }

    /// The grid of a window of this one.
    pub fn window(&self, w: &Window) -> Grid {
        let t = self.transform;
        let (x, y) = (w.x as f64, w.y as f64);
        Grid {
            width: w.width,
            height: w.height,
            transform: [t[0] + x * t[1] + y * t[2], t[1], t[2], t[3] + x * t[4] + y * t[5], t[4], t[5]],
            wkt: self.wkt.clone(),
        }
    }

    /// Area of one pixel in map units (m² for projected CRSs).
    pub fn pixel_area(&self) -> f64 {
        let t = self.transform;
        (t[1] * t[5] - t[2] * t[4]).abs()
    }

    /// The map coordinates of a pixel corner.
    pub fn to_map(&self, col: f64, row: f64) -> (f64, f64) {
        let t = self.transform;
        (t[0] + col * t[1] + row * t[2], t[3] + col * t[4] + row * t[5])
    }

    fn is_north_up(&self) -> bool {
        self.transform[2] == 0.0 && self.transform[4] == 0.0
    }

    /// Whether both grids are in the same CRS (OGR's `IsSame`; two grids without a CRS match).
    pub fn same_crs(&self, other: &Grid) -> Result<bool> {
        match (self.wkt.is_empty(), other.wkt.is_empty()) {
            (true, true) => Ok(true),
            (false, false) => {
                let parse = |wkt: &str| SpatialRef::from_wkt(wkt).map_err(|e| GeoError::Invalid(format!("unreadable CRS: {e}")));
                Ok(parse(&self.wkt)? == parse(&other.wkt)?)
            }
            _ => Ok(false),
        }
    }
}

/// Where two co-registered dates overlap: the output grid and each date's window onto it.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlap {
    pub grid: Grid,
    pub before: Window,
    pub after: Window,
}

/// Checks that `after` shares `before`'s CRS, pixel size and pixel lattice, and returns the
/// intersection of their footprints. The names are for the error messages.
pub fn overlap(before: &Grid, after: &Grid, before_name: &str, after_name: &str) -> Result<Overlap> {
    let hint = "co-register the dates first, or pass --align to warp the after scene onto the before grid";
    if !before.same_crs(after)? {
        return Err(GeoError::Invalid(format!("{after_name} is not in the CRS of {before_name}: {hint}")));
    }
    if !before.is_north_up() || !after.is_north_up() {
        return Err(GeoError::Invalid(format!("{before_name} or {after_name} has a rotated geotransform: {hint}")));
    }
    let (b, a) = (before.transform, after.transform);
    let close = |u: f64, v: f64| (u - v).abs() <= 1e-9 * u.abs().max(v.abs());
    if !close(a[1], b[1]) || !close(a[5], b[5]) {
        return Err(GeoError::Invalid(format!(
            "{after_name} has {}×{} pixels, {before_name} {}×{}: {hint}",
            a[1], -a[5], b[1], -b[5]
        )));
    }
    // The after grid's origin in before pixels must be a whole number of pixels.
    let (dx, dy) = ((a[0] - b[0]) / b[1], (a[3] - b[3]) / b[5]);
    if (dx - dx.round()).abs() > 1e-3 || (dy - dy.round()).abs() > 1e-3 {
        return Err(GeoError::Invalid(format!(
            "{after_name} is shifted by a fraction of a pixel ({dx:.4}, {dy:.4}) from {before_name}: {hint}"
        )));
    }
    let (dx, dy) = (dx.round() as i64, dy.round() as i64);
    let (x0, y0) = (dx.max(0), dy.max(0));
    let x1 = (before.width as i64).min(dx + after.width as i64);
    let y1 = (before.height as i64).min(dy + after.height as i64);
    if x0 >= x1 || y0 >= y1 {
        return Err(GeoError::Invalid(format!("the footprints of {before_name} and {after_name} do not overlap")));
    }
    let common = Window::new(x0 as usize, y0 as usize, (x1 - x0) as usize, (y1 - y0) as usize);
    Ok(Overlap {
        grid: before.window(&common),
        before: common,
        after: Window::new((x0 - dx) as usize, (y0 - dy) as usize, common.width, common.height),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(x: f64, y: f64, width: usize, height: usize) -> Grid {
        Grid { width, height, transform: [x, 10.0, 0.0, y, 0.0, -10.0], wkt: String::new() }
    }

    #[test]
    fn overlap_is_the_intersection_in_both_dates_pixels() {
        let o = overlap(&grid(0.0, 0.0, 100, 80), &grid(200.0, -100.0, 100, 100), "A", "B").unwrap();
        assert_eq!(o.before, Window::new(20, 10, 80, 70));
        assert_eq!(o.after, Window::new(0, 0, 80, 70));
        assert_eq!(o.grid.transform[0], 200.0);
        assert_eq!(o.grid.transform[3], -100.0);
    }

    #[test]
    fn misaligned_or_disjoint_grids_are_refused() {
        let err = overlap(&grid(0.0, 0.0, 10, 10), &grid(5.0, 0.0, 10, 10), "A", "B").unwrap_err().to_string();
        assert!(err.contains("fraction of a pixel") && err.contains("--align"), "{err}");
        let err = overlap(&grid(0.0, 0.0, 10, 10), &grid(1000.0, 0.0, 10, 10), "A", "B").unwrap_err().to_string();
        assert!(err.contains("do not overlap"), "{err}");
        let mut coarse = grid(0.0, 0.0, 10, 10);
        coarse.transform[1] = 20.0;
        assert!(overlap(&grid(0.0, 0.0, 10, 10), &coarse, "A", "B").unwrap_err().to_string().contains("pixels"));
    }
}
