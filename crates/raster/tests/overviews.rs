//! Overviews built block by block as a staged map is written equal, bit for bit, those GDAL's COG
//! driver computes from the finished map.

use std::path::Path;

use gdal::Dataset;
use gdal::raster::GdalType;

use changedet_raster::Window;
use changedet_raster::geo::{Grid, Halve, MapKind, StagedRaster};

const WIDTH: usize = 1500;
const HEIGHT: usize = 1100;

/// Writes `values` as a COG at `path` in blocks of `block` pixels (odd, so that blocks start at
/// odd offsets), row-major, with the overviews built as it goes or left to GDAL.
fn write_cog<T: Halve>(path: &Path, kind: &MapKind, values: &[T], block: (usize, usize), ours: bool) {
    let grid = Grid { width: WIDTH, height: HEIGHT, transform: [500000.0, 1.0, 0.0, 4000000.0, 0.0, -1.0], wkt: String::new() };
    let mut staged = StagedRaster::create(path, &grid, kind, ours).unwrap();
    for y in (0..HEIGHT).step_by(block.1) {
        for x in (0..WIDTH).step_by(block.0) {
            let window = Window::new(x, y, block.0.min(WIDTH - x), block.1.min(HEIGHT - y));
            let part = (window.y..window.bottom()).flat_map(|r| values[r * WIDTH + window.x..r * WIDTH + window.right()].iter().copied()).collect();
            staged.write(&window, part).unwrap();
        }
    }
    staged.finish_cog(kind).unwrap();
}

/// Each overview level of the COG at `path`: its size and values.
fn levels<T: GdalType + Copy>(path: &Path) -> Vec<((usize, usize), Vec<T>)> {
    let dataset = Dataset::open(path).unwrap();
    let band = dataset.rasterband(1).unwrap();
    (0..band.overview_count().unwrap() as usize)
        .map(|i| {
            let level = band.overview(i).unwrap();
            let size = level.size();
            (size, level.read_as::<T>((0, 0), size, size, None).unwrap().into_shape_and_vec().1)
        })
        .collect()
}

/// A smooth field with noise, NaN over a disc and a band of rows, as a probability map.
fn probabilities() -> Vec<f32> {
    (0..WIDTH * HEIGHT)
        .map(|i| {
            let (x, y) = ((i % WIDTH) as f32, (i / WIDTH) as f32);
            let masked = (x - 700.0).powi(2) + (y - 400.0).powi(2) < 150.0f32.powi(2) || (901..=903).contains(&(i / WIDTH));
            if masked { f32::NAN } else { 0.5 + 0.4 * (x / 97.0).sin() * (y / 61.0).cos() + 0.05 * ((i * 7919) % 13) as f32 / 13.0 }
        })
        .collect()
}

#[test]
fn probability_overviews_are_gdals_averages() {
    let dir = tempfile::tempdir().unwrap();
    let values = probabilities();
    let (ours, gdals) = (dir.path().join("ours.tif"), dir.path().join("gdal.tif"));
    write_cog(&ours, &MapKind::Probability, &values, (333, 251), true);
    write_cog(&gdals, &MapKind::Probability, &values, (333, 251), false);
    let (ours, gdals) = (levels::<f32>(&ours), levels::<f32>(&gdals));
    assert_eq!(ours.iter().map(|l| l.0).collect::<Vec<_>>(), [(750, 550), (375, 275)]);
    assert_eq!(ours.iter().map(|l| l.0).collect::<Vec<_>>(), gdals.iter().map(|l| l.0).collect::<Vec<_>>());
    for (level, ((_, ours), (_, gdals))) in ours.iter().zip(&gdals).enumerate() {
        assert!(ours.iter().any(|v| v.is_nan()) && ours.iter().any(|v| !v.is_nan()));
        for (i, (a, b)) in ours.iter().zip(gdals).enumerate() {
            assert_eq!(a.is_nan(), b.is_nan(), "level {level}, pixel {i}: {a} against GDAL's {b}");
            assert!(a.is_nan() || a.to_bits() == b.to_bits(), "level {level}, pixel {i}: {a} against GDAL's {b}");
        }
    }
}

#[test]
fn class_overviews_are_gdals_nearest_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<u8> = probabilities().iter().map(|p| if p.is_nan() { 255 } else { (p * 6.0) as u8 }).collect();
    let kind = MapKind::Classes { colours: None };
    let gdals = dir.path().join("gdal.tif");
    write_cog(&gdals, &kind, &values, (333, 251), false);
    // Blocks 2 px wide complete no pixel of the second level at every other block.
    for block in [(333, 251), (2, HEIGHT)] {
        let ours = dir.path().join(format!("ours-{}.tif", block.0));
        write_cog(&ours, &kind, &values, block, true);
        assert_eq!(levels::<u8>(&ours), levels::<u8>(&gdals), "class overviews of {block:?} blocks differ from GDAL's");
    }
}
