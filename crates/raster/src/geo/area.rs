//! Areas in square metres whatever a grid's CRS. Geometries and pixels are measured in a Lambert
//! azimuthal equal-area projection centred on the grid: it keeps areas exact everywhere, so
//! geographic CRSs (EPSG:4326: degrees²) and conformal ones (Web Mercator: areas inflated
//! by 1/cos² of the latitude) report true m² like any UTM zone.

use std::path::Path;

use gdal::Dataset;
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::vector::Geometry;

use super::{GdalContext, GeoError, Grid, Result};

/// Measures areas of one grid's CRS in m².
pub struct AreaMeasure {
    to_equal_area: CoordTransform,
}

impl AreaMeasure {
    /// For `grid`'s CRS; `None` when the grid has no CRS (areas are then in pixels).
    pub fn for_grid(grid: &Grid) -> Result<Option<AreaMeasure>> {
        if grid.wkt.is_empty() {
            return Ok(None);
        }
        let invalid = |e: gdal::errors::GdalError| GeoError::Invalid(format!("the grid's CRS cannot be measured in metres: {e}"));
        let mut crs = SpatialRef::from_wkt(&grid.wkt).map_err(invalid)?;
        crs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let mut geographic = crs.geog_cs().map_err(invalid)?;
        geographic.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let (x, y) = grid.to_map(grid.width as f64 / 2.0, grid.height as f64 / 2.0);
        let (mut xs, mut ys) = ([x], [y]);
        CoordTransform::new(&crs, &geographic).map_err(invalid)?.transform_coords(&mut xs, &mut ys, &mut []).map_err(invalid)?;
        let (semi_major, semi_minor) = (geographic.semi_major().map_err(invalid)?, geographic.semi_minor().map_err(invalid)?);
        let definition = format!("+proj=laea +lat_0={} +lon_0={} +a={semi_major} +b={semi_minor} +units=m +no_defs", ys[0], xs[0]);
        let mut equal_area = SpatialRef::from_proj4(&definition).map_err(invalid)?;
        equal_area.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        Ok(Some(AreaMeasure { to_equal_area: CoordTransform::new(&crs, &equal_area).map_err(invalid)? }))
    }

    /// The area of `geometry` (in the grid's CRS) in m².
    pub fn geometry_m2(&self, geometry: &Geometry) -> Result<f64> {
        let projected = geometry.transform(&self.to_equal_area).map_err(|e| GeoError::Invalid(format!("cannot measure a polygon's area: {e}")))?;
        Ok(projected.area())
    }

    /// The area in m² of a pixel of each row of `grid` (its middle pixel: along a row, the
    /// scale of a north-up grid changes little, and not at all for geographic ones).
    pub fn row_pixel_areas(&self, grid: &Grid) -> Result<Vec<f64>> {
        let col = (grid.width / 2) as f64;
        let corners = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)];
        let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = (0..grid.height).flat_map(|row| corners.map(|(dx, dy)| grid.to_map(col + dx, row as f64 + dy))).unzip();
        self.to_equal_area.transform_coords(&mut xs, &mut ys, &mut []).map_err(|e| GeoError::Invalid(format!("cannot measure the pixels' area: {e}")))?;
        Ok(xs
            .chunks(4)
            .zip(ys.chunks(4))
            .map(|(x, y)| 0.5 * (0..4).map(|i| x[i] * y[(i + 1) % 4] - x[(i + 1) % 4] * y[i]).sum::<f64>().abs())
            .collect())
    }
}

/// The changed area of a finished change map (1 = changed) in m², row by row; `None` when the
/// map has no CRS.
pub fn changed_area_m2(change: &Path) -> Result<Option<f64>> {
    let dataset = Dataset::open(change).at(change)?;
    let grid = Grid::of(&dataset);
    let Some(measure) = AreaMeasure::for_grid(&grid)? else { return Ok(None) };
    let areas = measure.row_pixel_areas(&grid)?;
    let band = dataset.rasterband(1).at(change)?;
    let mut total = 0.0;
    for (row, area) in areas.iter().enumerate() {
        let values = band.read_as::<u8>((0, row as isize), (grid.width, 1), (grid.width, 1), None).at(change)?.into_shape_and_vec().1;
        total += values.iter().filter(|&&v| v == 1).count() as f64 * area;
    }
    Ok(Some(total))
}
