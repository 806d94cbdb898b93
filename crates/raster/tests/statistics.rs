//! A scene's statistics (per-image normalisation, percentile scaling) read a bounded number of
//! pixels whatever its size (#28, item 6): every pixel of a small scene, the overviews of a large
//! one, else windows spread over it, never the whole of a large file without overviews.

use gdal::DriverManager;
use gdal::raster::Buffer;

use changedet_raster::geo::{Scene, StatisticsSource};

/// A `width`×`height` single-band tiled GeoTIFF whose value is its column index mod 1000.
fn scene(path: &std::path::Path, width: usize, height: usize, overviews: bool) -> Scene {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let options = gdal::raster::RasterCreationOptions::from_iter(["TILED=YES"]);
    let mut ds = driver.create_with_band_type_with_options::<u16, _>(path, width, height, 1, &options).unwrap();
    let row: Vec<u16> = (0..width).map(|x| (x % 1000) as u16).collect();
    let mut band = ds.rasterband(1).unwrap();
    for y in 0..height {
        let mut buffer = Buffer::new((width, 1), row.clone());
        band.write((0, y as isize), (width, 1), &mut buffer).unwrap();
    }
    if overviews {
        ds.build_overviews("AVERAGE", &[2, 4, 8], &[]).unwrap();
    }
    drop(ds);
    Scene::open(&[path.to_owned()], None).unwrap()
}

#[test]
fn statistics_read_a_bounded_sample_whatever_the_size() {
    let tmp = tempfile::tempdir().unwrap();
    let small = scene(&tmp.path().join("small.tif"), 300, 200, false);
    assert_eq!(small.statistics_source(0, 1024).unwrap(), StatisticsSource::Whole);
    assert_eq!(small.sample(0, 1024).unwrap().len(), 300 * 200);

    let large = scene(&tmp.path().join("large.tif"), 6000, 3000, false);
    assert_eq!(large.statistics_source(0, 1024).unwrap(), StatisticsSource::Windows { count: 256, side: 64 });
    let values = large.sample(0, 1024).unwrap();
    assert_eq!(values.len(), 256 * 64 * 64, "16 × 16 windows of 64² pixels");
    // Spread over the whole width: the columns' values cover 0..1000 (columns mod 1000).
    let (low, high) = values.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(low < 10.0 && high > 990.0, "values {low}..{high}");

    let with_overviews = scene(&tmp.path().join("overviews.tif"), 6000, 3000, true);
    assert_eq!(with_overviews.statistics_source(0, 1024).unwrap(), StatisticsSource::Overviews { side: 1024 });
    assert_eq!(with_overviews.sample(0, 1024).unwrap().len(), 1024 * 512);
}
