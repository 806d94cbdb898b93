//! Change polygons: GDAL's polygoniser over the change map (or the from→to map of semantic
//! models), in the maps' CRS, with a minimum-area filter, optional simplification and per-polygon
//! attributes (from/to classes, area in m² whatever the CRS, mean change probability).

use std::path::Path;

use gdal::spatial_ref::SpatialRef;
use gdal::vector::{Feature, FieldDefn, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType};
use gdal::{Dataset, DriverManager};

use super::{GdalContext, GeoError, Result, checked};

#[derive(Clone, Debug, Default)]
pub struct PolygonOptions {
    /// Polygons smaller than this (m², before simplification; pixels² for maps without a CRS)
    /// are dropped.
    pub min_area: f64,
    /// Douglas–Peucker tolerance in map units (topology-preserving); none when `None`.
    pub simplify: Option<f64>,
}

/// The GDAL driver for a polygon file, by its extension.
pub fn vector_driver(target: &Path) -> Result<&'static str> {
    match target.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("gpkg") => Ok("GPKG"),
        Some("geojson" | "json") => Ok("GeoJSON"),
        _ => Err(GeoError::Invalid(format!("{}: polygons are written as .gpkg or .geojson", target.display()))),
    }
}

/// Polygonises the changed pixels of `change` (uint8: 1 changed, 255 nodata) into `target`
/// (`.gpkg` or `.geojson`), written under a hidden name and renamed. With `fromto` (and the
/// class count), each polygon is one from→to transition. Returns the number of polygons.
pub fn polygonize(change: &Path, fromto: Option<(&Path, usize)>, probability: &Path, target: &Path, options: &PolygonOptions) -> Result<usize> {
    let driver_name = vector_driver(target)?;
    let change_ds = Dataset::open(change).at(change)?;
    let value_ds = match fromto {
        Some((path, _)) => Some(Dataset::open(path).at(path)?),
        None => None,
    };
    let probability_ds = Dataset::open(probability).at(probability)?;
    let measure = super::AreaMeasure::for_grid(&super::Grid::of(&change_ds))?;
    let wkt = change_ds.projection();
    let srs = if wkt.is_empty() { None } else { Some(SpatialRef::from_wkt(&wkt).at(change)?) };
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));

    let regions = checked(dir, "labelling the change regions", || Regions::label(&change_ds, value_ds.as_ref(), &probability_ds, dir).at(change))?;
    let labels = Dataset::open(&regions.labels).at(change)?;
    let label_band = labels.rasterband(1).at(change)?;

    // One polygon per region (polygonising is 4-connected, like the labelling), in memory.
    let memory = DriverManager::get_driver_by_name("Memory").at(change)?;
    let mut raw_ds = memory.create_vector_only("").at(change)?;
    let raw = raw_ds.create_layer(LayerOptions { name: "raw", srs: srs.as_ref(), ty: OGRwkbGeometryType::wkbPolygon, options: None }).at(change)?;
    FieldDefn::new("region", OGRFieldType::OFTInteger).and_then(|f| f.add_to_layer(&raw)).at(change)?;
    // SAFETY: the band and the layer stay alive for the call; the label band is its own mask.
    let status = unsafe {
        gdal_sys::GDALPolygonize(label_band.c_rasterband(), label_band.c_rasterband(), raw.c_layer(), 0, std::ptr::null_mut(), None, std::ptr::null_mut())
    };
    if status != gdal_sys::CPLErr::CE_None {
        return Err(GeoError::Invalid(format!("{}: polygonising failed", change.display())));
    }

    let temp = super::output::hidden_temp(target, &format!("partial.{}", target.extension().and_then(|e| e.to_str()).unwrap_or("gpkg")))?;
    // The drivers create their files themselves.
    std::fs::remove_file(&temp).map_err(|e| GeoError::Invalid(format!("{}: {e}", temp.display())))?;
    let mut out_ds = DriverManager::get_driver_by_name(driver_name).at(target)?.create_vector_only(&temp).at(target)?;
    let out = out_ds.create_layer(LayerOptions { name: "changes", srs: srs.as_ref(), ty: OGRwkbGeometryType::wkbPolygon, options: None }).at(target)?;
    let mut fields = vec![("area_m2", OGRFieldType::OFTReal), ("mean_probability", OGRFieldType::OFTReal)];
    if fromto.is_some() {
        fields.splice(0..0, [("class_from", OGRFieldType::OFTInteger), ("class_to", OGRFieldType::OFTInteger)]);
    }
    for (name, kind) in &fields {
        FieldDefn::new(name, *kind).and_then(|f| f.add_to_layer(&out)).at(target)?;
    }

    let mut raw = raw_ds.layer(0).at(change)?;
    let mut written = 0;
    for feature in raw.features() {
        let region = feature.field_as_integer(0).at(change)?.unwrap_or(0) as usize;
        let Some(geometry) = feature.geometry() else { continue };
        let area = match &measure {
            Some(measure) => measure.geometry_m2(geometry)?,
            None => geometry.area(),
        };
        if area < options.min_area {
            continue;
        }
        let shape = match options.simplify {
            Some(tolerance) => geometry.simplify_preserve_topology(tolerance).at(target)?,
            None => geometry.clone(),
        };
        let mut f = Feature::new(out.defn()).at(target)?;
        f.set_geometry(shape).at(target)?;
        let mut field = 0;
        if let Some((_, classes)) = fromto {
            // Regions hold changed pixels only, so their code is never 0 (unchanged).
            let (from, to) = crate::from_to::decode(regions.value[region], classes).unwrap_or_default();
            f.set_field_integer(0, from as i32).at(target)?;
            f.set_field_integer(1, to as i32).at(target)?;
            field = 2;
        }
        f.set_field_double(field, area).at(target)?;
        f.set_field_double(field + 1, regions.mean_probability(region)).at(target)?;
        f.create(&out).at(target)?;
        written += 1;
    }
    checked(target, "writing", || out_ds.close().at(target))?;
    super::output::commit(temp, target)?;
    Ok(written)
}

/// The 4-connected regions of changed pixels with equal value (from→to code, or 1), labelled
/// row by row in two passes with a union-find, so that only two rows of the scene are held.
/// Per region: its value and the sum and count of its probabilities.
struct Regions {
    /// uint32 region ids (0 outside changes), a temporary GeoTIFF.
    labels: tempfile::TempPath,
    value: Vec<u8>,
    sum: Vec<f64>,
    count: Vec<u64>,
}

impl Regions {
    fn mean_probability(&self, region: usize) -> f64 {
        if self.count[region] == 0 { f64::NAN } else { self.sum[region] / self.count[region] as f64 }
    }

    fn label(change: &Dataset, values: Option<&Dataset>, probability: &Dataset, dir: &Path) -> gdal::errors::Result<Regions> {
        let (width, height) = change.raster_size();
        let (labels, labels_ds) = label_raster(change, dir)?;
        let change_band = change.rasterband(1)?;
        let value_band = values.map(|v| v.rasterband(1)).transpose()?;
        let probability_band = probability.rasterband(1)?;
        let row_of = |band: &gdal::raster::RasterBand, y: usize| band.read_as::<u8>((0, y as isize), (width, 1), (width, 1), None).map(|b| b.into_shape_and_vec().1);

        // Pass 1: provisional labels, unions where regions meet, sums per provisional label.
        let mut labeller = Labeller::default();
        let (mut above, mut above_codes) = (vec![0u32; width], vec![0u8; width]);
        for y in 0..height {
            let changed = row_of(&change_band, y)?;
            let codes = match &value_band {
                Some(band) => row_of(band, y)?,
                None => changed.clone(),
            };
            let probabilities = probability_band.read_as::<f32>((0, y as isize), (width, 1), (width, 1), None)?.into_shape_and_vec().1;
            let current = labeller.row(&changed, &codes, &probabilities, (&above, &above_codes))?;
            let mut row = gdal::raster::Buffer::new((width, 1), current.clone());
            labels_ds.rasterband(1)?.write((0, y as isize), (width, 1), &mut row)?;
            above = current;
            above_codes = codes;
        }

        // Pass 2: every label to its root, and the raster rewritten with roots.
        labeller.resolve();
        let mut band = labels_ds.rasterband(1)?;
        for y in 0..height {
            let mut row = band.read_as::<u32>((0, y as isize), (width, 1), (width, 1), None)?;
            for l in row.data_mut() {
                *l = labeller.parent[*l as usize];
            }
            band.write((0, y as isize), (width, 1), &mut row)?;
        }
        labels_ds.close()?;
        let Labeller { value, sum, count, .. } = labeller;
        Ok(Regions { labels, value, sum, count })
    }
}

/// An empty uint32 raster on the grid of `like`, a temporary file in `dir`.
fn label_raster(like: &Dataset, dir: &Path) -> gdal::errors::Result<(tempfile::TempPath, Dataset)> {
    let (width, height) = like.raster_size();
    let labels = tempfile::Builder::new().prefix(".regions.").suffix(".tif").tempfile_in(dir).map_err(|e| gdal::errors::GdalError::BadArgument(format!("{}: {e}", dir.display())))?.into_temp_path();
    let mut options = gdal::raster::RasterCreationOptions::new();
    for (k, v) in [("TILED", "YES"), ("COMPRESS", "DEFLATE"), ("ZLEVEL", "1"), ("BIGTIFF", "IF_SAFER")] {
        options.set_name_value(k, v)?;
    }
    let mut dataset = DriverManager::get_driver_by_name("GTiff")?.create_with_band_type_with_options::<u32, _>(&labels, width, height, 1, &options)?;
    // Polygons come out in the coordinates of this raster: the maps' own.
    dataset.set_geo_transform(&like.geo_transform()?)?;
    dataset.set_projection(&like.projection())?;
    Ok((labels, dataset))
}

/// Region labels with a union-find: per label its parent, code, and probability sum and count
/// (label 0: no region).
struct Labeller {
    parent: Vec<u32>,
    value: Vec<u8>,
    sum: Vec<f64>,
    count: Vec<u64>,
}

impl Default for Labeller {
    fn default() -> Self {
        Labeller { parent: vec![0], value: vec![0], sum: vec![0.0], count: vec![0] }
    }
}

impl Labeller {
    fn find(&mut self, mut l: u32) -> u32 {
        while self.parent[l as usize] != l {
            self.parent[l as usize] = self.parent[self.parent[l as usize] as usize];
            l = self.parent[l as usize];
        }
        l
    }

    fn new_label(&mut self, code: u8) -> gdal::errors::Result<u32> {
        let next = u32::try_from(self.parent.len()).ok().filter(|&n| n < i32::MAX as u32).ok_or_else(|| gdal::errors::GdalError::BadArgument("more than 2³¹ change regions".into()))?;
        self.parent.push(next);
        self.value.push(code);
        self.sum.push(0.0);
        self.count.push(0);
        Ok(next)
    }

    /// Labels one row's changed pixels (1 in `changed`) from their left and upper neighbours
    /// of the same code, uniting the two where both match; returns the row's labels.
    fn row(&mut self, changed: &[u8], codes: &[u8], probabilities: &[f32], (above, above_codes): (&[u32], &[u8])) -> gdal::errors::Result<Vec<u32>> {
        let mut current = vec![0u32; changed.len()];
        for x in (0..changed.len()).filter(|&x| changed[x] == 1) {
            let code = codes[x];
            let left = if x > 0 && current[x - 1] != 0 && codes[x - 1] == code { current[x - 1] } else { 0 };
            let up = if above[x] != 0 && above_codes[x] == code { above[x] } else { 0 };
            let label = match (left, up) {
                (0, 0) => self.new_label(code)?,
                (l, 0) | (0, l) => l,
                (l, u) => {
                    let (a, b) = (self.find(l), self.find(u));
                    self.parent[a.max(b) as usize] = a.min(b);
                    l
                }
            };
            current[x] = label;
            if probabilities[x].is_finite() {
                self.sum[label as usize] += probabilities[x] as f64;
                self.count[label as usize] += 1;
            }
        }
        Ok(current)
    }

    /// Points every label at its root and moves the sums onto the roots.
    fn resolve(&mut self) {
        for l in 1..self.parent.len() {
            let root = self.find(l as u32) as usize;
            self.parent[l] = root as u32;
            if root != l {
                self.sum[root] += std::mem::take(&mut self.sum[l]);
                self.count[root] += std::mem::take(&mut self.count[l]);
            }
        }
    }
}
