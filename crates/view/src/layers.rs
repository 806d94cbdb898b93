//! A scene run's layers, opened once and rendered as 256² map tiles on demand: the two dates
//! (scaled to 0–255 as the run scaled them for the model), and every map of the run styled by
//! what it holds.
//! Map coordinates are the maps' pixels: `x` = column, `y` = −row (north up), as Leaflet's
//! `CRS.Simple` takes them; at zoom `z` one pixel of the scene covers 2^z screen pixels.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gdal::{Dataset, GeoTransformEx};
use serde_json::{Value, json};

use changedet_raster::Window;
use changedet_raster::geo::{self, BandScale, Scaling, Scene, SceneRecord};

pub const TILE: usize = 256;
/// Deepest zoom served: 8 screen pixels per scene pixel.
pub const MAX_ZOOM: i32 = 3;
/// Most polygons sent to the page (the rest are counted, not drawn).
const MAX_POLYGONS: usize = 20_000;

/// The files of a scene run: from its `scene.json`, or named by the user.
#[derive(Clone, Debug)]
pub struct SceneFiles {
    pub dir: PathBuf,
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
    pub bands: Option<Vec<usize>>,
    /// How the dates' bands become 0–255 (the run's, so that the page shows what the model saw).
    pub scaling: Scaling,
    pub align: bool,
    pub maps: Vec<PathBuf>,
    pub polygons: Option<PathBuf>,
}

impl SceneFiles {
    pub fn from_record(dir: &Path) -> Result<Self> {
        let record = SceneRecord::read(dir)?;
        Ok(SceneFiles {
            dir: dir.to_owned(),
            before: record.before,
            after: record.after,
            bands: record.bands,
            scaling: record.scaling,
            align: record.align,
            maps: record.maps.iter().map(|m| dir.join(m)).collect(),
            polygons: record.polygons,
        })
    }

    /// The maps in `dir` over the dates given: a scene's (`change.tif`, ...) or, for a pair of
    /// `predict --dataset`, those named after the before image (`NAME_change.png`, ...).
    pub fn with_dates(dir: &Path, before: Vec<PathBuf>, after: Vec<PathBuf>, bands: Option<Vec<usize>>) -> Result<Self> {
        let pair = before.first().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let candidates = |name: &str| [dir.join(format!("{name}.tif")), dir.join(format!("{pair}_{name}.png"))];
        let maps: Vec<PathBuf> = MAP_NAMES.iter().filter_map(|name| candidates(name).into_iter().find(|p| p.exists())).collect();
        if maps.is_empty() {
            bail!("{}: no maps (change.tif, ... of a scene, or {pair}_change.png, ... of the pair {pair})", dir.display());
        }
        let polygons = ["changes.gpkg", "changes.geojson"].iter().map(|f| dir.join(f)).find(|p| p.exists());
        Ok(SceneFiles { dir: dir.to_owned(), before, after, bands, scaling: Scaling::Auto, align: false, maps, polygons })
    }
}

/// The maps `predict` writes, in the order the viewer lists them.
const MAP_NAMES: [&str; 5] = ["change", "probability", "before_classes", "after_classes", "fromto"];

/// How a map's values become colours.
enum Style {
    /// `changed` (1 in a scene's map, 255 in a pair's PNG) in red; the rest transparent.
    Change { changed: f32 },
    /// [0, `full`] through a colour ramp (`full` 1, or 255 in a pair's PNG); NaN transparent.
    Probability { full: f32 },
    /// Class codes through the file's colour table; code 0 transparent when `clear_zero`.
    Palette { colours: Vec<[u8; 3]>, clear_zero: bool },
}

struct MapLayer {
    name: String,
    scene: Scene,
    style: Style,
}

struct DateLayer {
    scene: Scene,
    /// Where the common grid starts in this date's pixels.
    offset: (usize, usize),
    /// Per band, the map of raw values onto 0–255 (`None`: 8-bit values as they are).
    scales: Vec<Option<BandScale>>,
}

pub struct SceneLayers {
    pub grid: geo::Grid,
    dates: [DateLayer; 2],
    maps: Vec<MapLayer>,
    polygons: Option<Value>,
    /// The after date warped onto the before grid (`--align` runs); read while serving.
    _warped: Vec<tempfile::TempPath>,
}

impl SceneLayers {
    pub fn open(files: &SceneFiles) -> Result<Self> {
        let dates = geo::open_registered(&files.before, &files.after, files.bands.as_deref(), files.align)?;
        let common = dates.overlap;
        let maps = files.maps.iter().map(|path| open_map(path)).collect::<Result<Vec<_>>>()?;
        if let Some(map) = maps.iter().find(|m| (m.scene.grid.width, m.scene.grid.height) != (common.grid.width, common.grid.height)) {
            bail!("{}: {}×{} pixels, but the dates overlap on {}×{}", map.name, map.scene.grid.width, map.scene.grid.height, common.grid.width, common.grid.height);
        }
        let polygons = files.polygons.as_deref().map(|path| read_polygons(path, &common.grid)).transpose()?;
        let date = |scene: Scene, offset: Window| -> Result<DateLayer> {
            Ok(DateLayer { scales: files.scaling.resolve(&scene)?, scene, offset: (offset.x, offset.y) })
        };
        Ok(SceneLayers {
            dates: [date(dates.before, common.before)?, date(dates.after, common.after)?],
            grid: common.grid,
            maps,
            polygons,
            _warped: dates.warped,
        })
    }

    /// What the page needs to set itself up.
    pub fn describe(&self, title: &str) -> Value {
        let (w, h) = (self.grid.width, self.grid.height);
        let levels = (w.max(h) as f64 / TILE as f64).log2().ceil().max(0.0) as i32;
        let crs = gdal::spatial_ref::SpatialRef::from_wkt(&self.grid.wkt).ok();
        json!({
            "title": title,
            "width": w,
            "height": h,
            "transform": self.grid.transform,
            "crs": crs.as_ref().and_then(|c| c.name()).unwrap_or_else(|| "pixels (no georeference)".into()),
            "min_zoom": -levels,
            "max_zoom": MAX_ZOOM,
            "dates": [self.dates[0].scene.file_names(), self.dates[1].scene.file_names()],
            "maps": self.maps.iter().map(|m| &m.name).collect::<Vec<_>>(),
            "polygons": self.polygons.as_ref().map(|p| p["features"].as_array().map_or(0, Vec::len)),
        })
    }

    pub fn polygons(&self) -> Option<&Value> {
        self.polygons.as_ref()
    }

    /// The RGBA tile of `layer` ("before", "after" or a map's name); `None` for no such layer.
    pub fn tile(&self, layer: &str, z: i32, x: i64, y: i64) -> Result<Option<Vec<u8>>> {
        let mut rgba = vec![0u8; TILE * TILE * 4];
        let date = match layer {
            "before" => Some(&self.dates[0]),
            "after" => Some(&self.dates[1]),
            _ => None,
        };
        let map = self.maps.iter().find(|m| m.name == layer);
        if date.is_none() && map.is_none() {
            return Ok(None);
        }
        if let Some(footprint) = Footprint::of(z, x, y, self.grid.width, self.grid.height) {
            match (date, map) {
                (Some(date), _) => date.render(&footprint, &mut rgba)?,
                (_, Some(map)) => map.render(&footprint, &mut rgba)?,
                _ => unreachable!("one of them is set"),
            }
        }
        Ok(Some(rgba))
    }

    /// Projected coordinates and longitude/latitude of a point given in map pixels.
    pub fn coordinates(&self, column: f64, row: f64) -> Result<Value> {
        let (x, y) = self.grid.transform.apply(column, row);
        let source = gdal::spatial_ref::SpatialRef::from_wkt(&self.grid.wkt).context("the scene has no coordinate system")?;
        let mut wgs84 = gdal::spatial_ref::SpatialRef::from_epsg(4326)?;
        wgs84.set_axis_mapping_strategy(gdal::spatial_ref::AxisMappingStrategy::TraditionalGisOrder);
        let mut source = source;
        source.set_axis_mapping_strategy(gdal::spatial_ref::AxisMappingStrategy::TraditionalGisOrder);
        let (mut lon, mut lat) = ([x], [y]);
        gdal::spatial_ref::CoordTransform::new(&source, &wgs84)?.transform_coords(&mut lon, &mut lat, &mut [])?;
        Ok(json!({"x": x, "y": y, "lon": lon[0], "lat": lat[0]}))
    }
}

/// The part of a tile that falls on the scene: the scene window it shows and where that lands
/// in the tile.
struct Footprint {
    window: Window,
    at: (usize, usize),
    size: (usize, usize),
}

impl Footprint {
    fn of(z: i32, x: i64, y: i64, width: usize, height: usize) -> Option<Footprint> {
        let scale = 2f64.powi(z.clamp(-30, MAX_ZOOM));
        let span = TILE as f64 / scale;
        // Scene pixels [first, end) under the tile along one axis, and their tile pixels.
        let axis = |index: i64, limit: usize| {
            let start = index as f64 * span;
            let (first, end) = (start.max(0.0).floor() as usize, (start + span).min(limit as f64).ceil().max(0.0) as usize);
            (first < end).then(|| {
                let to_tile = |v: usize| (((v as f64 - start) * scale).round() as usize).min(TILE);
                let at = to_tile(first).min(TILE - 1);
                (first, end - first, at, (to_tile(end) - at).max(1))
            })
        };
        let ((left, columns, at_x, size_x), (top, rows, at_y, size_y)) = (axis(x, width)?, axis(y, height)?);
        Some(Footprint { window: Window::new(left, top, columns, rows), at: (at_x, at_y), size: (size_x, size_y) })
    }

    /// Sets every tile pixel of the footprint to `colour(i)` (`i` indexing the footprint's
    /// resampled values) where that gives one.
    fn paint(&self, rgba: &mut [u8], mut colour: impl FnMut(usize) -> Option<[u8; 4]>) {
        for row in 0..self.size.1 {
            for col in 0..self.size.0 {
                if let Some(c) = colour(row * self.size.0 + col) {
                    let p = ((self.at.1 + row) * TILE + self.at.0 + col) * 4;
                    rgba[p..p + 4].copy_from_slice(&c);
                }
            }
        }
    }
}

impl DateLayer {
    fn render(&self, footprint: &Footprint, rgba: &mut [u8]) -> Result<()> {
        let w = footprint.window;
        let window = Window::new(w.x + self.offset.0, w.y + self.offset.1, w.width, w.height);
        let plane = footprint.size.0 * footprint.size.1;
        let bands = self.scene.band_count();
        let (mut values, mut valid) = (vec![0f32; plane * bands], vec![true; plane]);
        self.scene.read_resampled(window, footprint.size, &mut values, &mut valid)?;
        // Grey scenes repeat their band; colour scenes show their first three.
        let channel = |c: usize| c.min(bands - 1);
        footprint.paint(rgba, |i| {
            valid[i].then(|| {
                let byte = |c: usize| {
                    let value = values[channel(c) * plane + i];
                    self.scales[channel(c)].map_or(value, |scale| scale.apply(value)).clamp(0.0, 255.0) as u8
                };
                [byte(0), byte(1), byte(2), 255]
            })
        });
        Ok(())
    }
}

impl MapLayer {
    fn render(&self, footprint: &Footprint, rgba: &mut [u8]) -> Result<()> {
        let plane = footprint.size.0 * footprint.size.1;
        let (mut values, mut valid) = (vec![0f32; plane], vec![true; plane]);
        self.scene.read_resampled(footprint.window, footprint.size, &mut values, &mut valid)?;
        footprint.paint(rgba, |i| {
            let v = values[i];
            if !valid[i] {
                return None;
            }
            match &self.style {
                Style::Change { changed } => (v == *changed).then_some([255, 32, 32, 255]),
                Style::Probability { full } => {
                    let c = colorous::INFERNO.eval_continuous((v / full).clamp(0.0, 1.0) as f64);
                    Some([c.r, c.g, c.b, 255])
                }
                Style::Palette { colours, clear_zero } => {
                    let code = v as usize;
                    (!(*clear_zero && code == 0)).then(|| colours.get(code).map(|c| [c[0], c[1], c[2], 255])).flatten()
                }
            }
        });
        Ok(())
    }
}

fn open_map(path: &Path) -> Result<MapLayer> {
    let stem = path.file_stem().and_then(|s| s.to_str()).with_context(|| format!("{}: not a map file name", path.display()))?;
    let name = MAP_NAMES.iter().find(|n| stem == **n || stem.ends_with(&format!("_{n}"))).map_or(stem, |n| n).to_owned();
    // A pair's PNG maps are 8-bit pictures: change 0/255, probability × 255.
    let full = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) { 255.0 } else { 1.0 };
    let scene = Scene::open(&[path.to_owned()], None)?;
    let style = match name.as_str() {
        "change" => Style::Change { changed: full },
        "probability" => Style::Probability { full },
        _ => {
            let dataset = Dataset::open(path).with_context(|| format!("{}: unreadable", path.display()))?;
            let band = dataset.rasterband(1)?;
            let table = band.color_table().with_context(|| format!("{}: a class map without a colour table", path.display()))?;
            let colours = (0..table.entry_count()).map(|i| table.entry_as_rgb(i).map_or([0, 0, 0], |e| [e.r as u8, e.g as u8, e.b as u8])).collect();
            // From→to maps code "no change" as 0.
            Style::Palette { colours, clear_zero: name == "fromto" }
        }
    };
    Ok(MapLayer { name, scene, style })
}

/// The polygon file as GeoJSON in map coordinates (column, −row), with every attribute.
fn read_polygons(path: &Path, grid: &geo::Grid) -> Result<Value> {
    let dataset = Dataset::open(path).with_context(|| format!("{}: unreadable polygons", path.display()))?;
    let inverse = grid.transform.invert().with_context(|| format!("{}: the maps' geotransform cannot be inverted", path.display()))?;
    let mut features = Vec::new();
    let mut skipped = 0usize;
    for mut layer in dataset.layers() {
        use gdal::vector::LayerAccess;
        for feature in layer.features() {
            if features.len() >= MAX_POLYGONS {
                skipped += 1;
                continue;
            }
            let Some(geometry) = feature.geometry() else { continue };
            let mut geometry: Value = serde_json::from_str(&geometry.json()?)?;
            to_map_coordinates(&mut geometry["coordinates"], &inverse);
            let properties: serde_json::Map<String, Value> = feature.fields().map(|(name, value)| (name, field_json(value))).collect();
            features.push(json!({"type": "Feature", "geometry": geometry, "properties": properties}));
        }
    }
    if skipped > 0 {
        tracing::warn!("{}: showing the first {MAX_POLYGONS} polygons of {}", path.display(), MAX_POLYGONS + skipped);
    }
    Ok(json!({"type": "FeatureCollection", "features": features}))
}

/// Rewrites every `[x, y]` position in GeoJSON coordinates as `[column, −row]`.
fn to_map_coordinates(coordinates: &mut Value, inverse: &[f64; 6]) {
    let Value::Array(items) = coordinates else { return };
    if let [Value::Number(x), Value::Number(y), ..] = items.as_slice() {
        let (column, row) = inverse.apply(x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
        *coordinates = json!([column, -row]);
        return;
    }
    items.iter_mut().for_each(|item| to_map_coordinates(item, inverse));
}

fn field_json(value: Option<gdal::vector::FieldValue>) -> Value {
    use gdal::vector::FieldValue::*;
    match value {
        None => Value::Null,
        Some(IntegerValue(v)) => json!(v),
        Some(Integer64Value(v)) => json!(v),
        Some(RealValue(v)) => json!(v),
        Some(StringValue(v)) => json!(v),
        Some(other) => json!(format!("{other:?}")),
    }
}
