//! The real GeoTIFFs of ../shared/data/geotiff-single (striped, tiled, JPEG-YCbCr, 16-bit,
//! 4-band) read through `Scene` equal what GDAL's own `gdal_translate` extracts from the same
//! windows, values and masks alike.

use std::path::{Path, PathBuf};
use std::process::Command;

use changedet_raster::Window;
use changedet_raster::geo::Scene;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/geotiff-single").join(name)
}

/// `gdal_translate -srcwin` of `bands` (GDAL's `-b` syntax) to raw ENVI, as little-endian values.
fn gdal_translate(file: &Path, window: Window, bands: &[String], kind: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let mut cmd = Command::new("gdal_translate");
    cmd.args(["-q", "-of", "ENVI", "-co", "INTERLEAVE=BSQ", "-ot", kind, "-srcwin"]);
    cmd.args([window.x, window.y, window.width, window.height].map(|v| v.to_string()));
    for b in bands {
        cmd.args(["-b", b]);
    }
    assert!(cmd.arg(file).arg(&out).status().expect("gdal_translate (gdal-bin) is installed").success());
    std::fs::read(out).unwrap()
}

fn check(name: &str, bands: Option<&[usize]>, window: Window) -> (Vec<f32>, Vec<bool>) {
    let file = data(name);
    let scene = Scene::open(std::slice::from_ref(&file), bands).unwrap();
    let selected: Vec<usize> = bands.map(<[usize]>::to_vec).unwrap_or_else(|| (1..=scene.band_count()).collect());
    let mut values = vec![0f32; window.area() * selected.len()];
    let mut valid = vec![true; window.area()];
    scene.read(window, &mut values, &mut valid).unwrap();

    let expected = gdal_translate(&file, window, &selected.iter().map(|b| b.to_string()).collect::<Vec<_>>(), "Float32");
    let expected: Vec<f32> = expected.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(values.len(), expected.len());
    let wrong = values.iter().zip(&expected).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(wrong, 0, "{name}: values differing from GDAL's");
    // GDAL's mask of each selected band, ANDed.
    let masks = gdal_translate(&file, window, &selected.iter().map(|b| format!("mask,{b}")).collect::<Vec<_>>(), "Byte");
    let expected_valid: Vec<bool> = (0..window.area()).map(|p| (0..selected.len()).all(|b| masks[b * window.area() + p] != 0)).collect();
    let wrong = valid.iter().zip(&expected_valid).filter(|(a, b)| a != b).count();
    assert_eq!(wrong, 0, "{name}: validity differing from GDAL's masks");
    (values, valid)
}

#[test]
fn striped_byte_rgb_with_nodata() {
    // 791×3 strips: the window starts and ends mid-strip.
    let (values, valid) = check("RGB.byte.tif", None, Window::new(5, 7, 300, 400));
    assert!(valid.iter().any(|v| !v) && valid.iter().any(|v| *v), "the window holds nodata and data");
    assert!(values.iter().any(|&v| v > 0.0));
}

#[test]
fn tiled_jpeg_ycbcr_cog_reads_as_rgb() {
    // 512² JPEG tiles in YCbCr: the window straddles four tiles; GDAL converts to RGB.
    let (values, _) = check("cogeo.tif", None, Window::new(400, 450, 300, 200));
    let plane = 300 * 200;
    assert!((0..plane).any(|p| values[p] != values[plane + p]), "distinct R and G, not raw luma");
}

#[test]
fn tiled_uint16_pixel_is_point() {
    let file = data("LC08_L1TP_224077_20200518_20200518_01_RT_B2_60m.TIF");
    let scene = Scene::open(std::slice::from_ref(&file), None).unwrap();
    assert!(!scene.is_byte());
    // GDAL's origin: the PixelIsPoint tie point (694035) moved back by half a 60 m pixel.
    assert_eq!(scene.grid.transform[0], 694005.0);
    let (values, _) = check("LC08_L1TP_224077_20200518_20200518_01_RT_B2_60m.TIF", None, Window::new(200, 240, 320, 100));
    assert!(values.iter().any(|&v| v > 255.0), "16-bit values come through unscaled");
}

#[test]
fn four_band_tiled_with_band_selection() {
    // NIR first: the 4th (ExtraSamples) band must not be dropped.
    check("rgbn.tif", Some(&[4, 1, 2]), Window::new(60, 30, 130, 70));
    check("rgbn.tif", None, Window::new(0, 0, 515, 403));
}
