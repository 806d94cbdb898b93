//! Areas are square metres whatever the maps' CRS: a change map on OSCD Paris's geographic grid
//! (EPSG:4326, as its bands ship) gives the changed area and each polygon's `area_m2` on the
//! ellipsoid, and `--min-area` is compared in m² (it used to be degrees², so 0.0 was printed).

use gdal::spatial_ref::SpatialRef;
use gdal::{Dataset, DriverManager};

use changedet_raster::geo::{AreaMeasure, Grid, PolygonOptions, changed_area_m2, polygonize};

/// Area between two latitudes over `dlon` degrees on WGS84 (Snyder, "Map projections", 3-12).
fn ellipsoid_cell(lat1: f64, lat2: f64, dlon: f64) -> f64 {
    let (a, f): (f64, f64) = (6_378_137.0, 1.0 / 298.257_223_563);
    let e2 = f * (2.0 - f);
    let e = e2.sqrt();
    let q = |lat: f64| {
        let s = lat.to_radians().sin();
        (1.0 - e2) * (s / (1.0 - e2 * s * s) - (1.0 / (2.0 * e)) * ((1.0 - e * s) / (1.0 + e * s)).ln())
    };
    a * a / 2.0 * dlon.to_radians() * (q(lat2) - q(lat1)).abs()
}

/// A 0.01° cell at the equator and at 60° N; Web Mercator's 100-unit pixels at 60° N, whose
/// true area is cos² 60° = a quarter of 100².
#[test]
fn pixels_are_measured_on_the_ellipsoid() {
    let wgs84 = SpatialRef::from_epsg(4326).unwrap().to_wkt().unwrap();
    for lat in [0.0, 60.0] {
        let grid = Grid { width: 3, height: 1, transform: [10.0, 0.01, 0.0, lat + 0.01, 0.0, -0.01], wkt: wgs84.clone() };
        let area = AreaMeasure::for_grid(&grid).unwrap().unwrap().row_pixel_areas(&grid).unwrap()[0];
        let expected = ellipsoid_cell(lat, lat + 0.01, 0.01);
        assert!((area / expected - 1.0).abs() < 1e-5, "at {lat}°: {area} m² vs {expected} m²");
    }
    let mercator = SpatialRef::from_epsg(3857).unwrap().to_wkt().unwrap();
    let grid = Grid { width: 1, height: 1, transform: [0.0, 100.0, 0.0, 8_399_737.89, 0.0, -100.0], wkt: mercator };
    let area = AreaMeasure::for_grid(&grid).unwrap().unwrap().row_pixel_areas(&grid).unwrap()[0];
    assert!((area / 2_500.0 - 1.0).abs() < 0.01, "{area} m²");
}

#[test]
fn geographic_maps_report_square_metres() {
    let dir = tempfile::tempdir().unwrap();
    // Paris at about 10 m: 1e-4° pixels, north-up, 60 × 60.
    let (lon0, lat0, step) = (2.3, 48.9, 1e-4);
    let transform = [lon0, step, 0.0, lat0, 0.0, -step];
    let wkt = SpatialRef::from_epsg(4326).unwrap().to_wkt().unwrap();
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let write = |name: &str, values: Vec<f32>, byte: bool| {
        let path = dir.path().join(name);
        let mut ds = if byte { driver.create_with_band_type::<u8, _>(&path, 60, 60, 1) } else { driver.create_with_band_type::<f32, _>(&path, 60, 60, 1) }.unwrap();
        ds.set_geo_transform(&transform).unwrap();
        ds.set_projection(&wkt).unwrap();
        let mut band = ds.rasterband(1).unwrap();
        if byte {
            band.write((0, 0), (60, 60), &mut gdal::raster::Buffer::new((60, 60), values.iter().map(|&v| v as u8).collect())).unwrap();
        } else {
            band.write((0, 0), (60, 60), &mut gdal::raster::Buffer::new((60, 60), values)).unwrap();
        }
        path
    };
    // A 20 × 10 block of change (rows 5..15) and a lone 2 × 2 one.
    let changed = |x: usize, y: usize| ((10..30).contains(&x) && (5..15).contains(&y)) || ((50..52).contains(&x) && (50..52).contains(&y));
    let change: Vec<f32> = (0..3600).map(|i| if changed(i % 60, i / 60) { 1.0 } else { 0.0 }).collect();
    let change_path = write("change.tif", change.clone(), true);
    let probability = write("probability.tif", change.iter().map(|&c| 0.25 + 0.5 * c).collect(), false);

    let block = ellipsoid_cell(lat0 - 5.0 * step, lat0 - 15.0 * step, 20.0 * step);
    let lone = ellipsoid_cell(lat0 - 50.0 * step, lat0 - 52.0 * step, 2.0 * step);
    let total = changed_area_m2(&change_path).unwrap().expect("a CRS");
    assert!((total / (block + lone) - 1.0).abs() < 1e-6, "{total} m² vs {} m²", block + lone);
    assert!(block > 10_000.0, "0.002° × 0.001° near Paris is about 1.5 ha: {block} m²");

    // --min-area between the two blocks' areas keeps the large one only, with its area in m².
    let target = dir.path().join("changes.geojson");
    let options = PolygonOptions { min_area: (block + lone) / 2.0, simplify: None };
    assert_eq!(polygonize(&change_path, None, &probability, &target, &options).unwrap(), 1);
    let vectors = Dataset::open(&target).unwrap();
    use gdal::vector::LayerAccess;
    let mut layer = vectors.layer(0).unwrap();
    let feature = layer.features().next().unwrap();
    let area = feature.field_as_double(feature.field_index("area_m2").unwrap()).unwrap().unwrap();
    assert!((area / block - 1.0).abs() < 1e-6, "{area} m² vs {block} m²");
}
