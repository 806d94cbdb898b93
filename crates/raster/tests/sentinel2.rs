//! Sentinel-2 band folders as OSCD's official archive ships them (`../shared/data/oscd-archive`):
//! bands found by name, the 20 m and 60 m ones brought to 10 m exactly as the official code's
//! `scipy.ndimage.zoom` does (fixtures written by `scripts/fixtures/oscd_zoom.py`).

use std::path::{Path, PathBuf};

use changedet_raster::geo::sentinel2::{self, BandFolder};
use changedet_raster::spline_zoom::zoom_u16;

fn paris(date: u8) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/oscd-archive/Onera Satellite Change Detection dataset - Images/paris")
        .join(format!("imgs_{date}"))
}

fn scipy_zoom(name: &str) -> Vec<u16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    image::open(&path).unwrap().into_luma16().into_raw()
}

fn stored_band(folder: &BandFolder, band: &str) -> (Vec<u16>, usize, usize) {
    let dataset = gdal::Dataset::open(folder.file(band).unwrap()).unwrap();
    let (w, h) = dataset.raster_size();
    (dataset.rasterband(1).unwrap().read_as::<u16>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1, w, h)
}

#[test]
fn twenty_and_sixty_metre_bands_zoom_as_scipy_does() {
    let folder = BandFolder::open(&paris(1)).unwrap();
    for (band, factor, fixture) in [("B05", 2, "paris_B05_zoom2.png"), ("B01", 6, "paris_B01_zoom6.png")] {
        let (stored, w, h) = stored_band(&folder, band);
        let ours = zoom_u16(&stored, w, h, factor);
        let scipy = scipy_zoom(fixture);
        assert_eq!(ours.len(), scipy.len(), "{band}: size");
        let differing = ours.iter().zip(&scipy).filter(|(a, b)| a != b).count();
        let largest = ours.iter().zip(&scipy).map(|(&a, &b)| a.abs_diff(b)).max().unwrap();
        eprintln!("{band} ×{factor}: {differing} of {} pixels differ from scipy's, by at most {largest}", ours.len());
        // Both round a float64 sum half up; only a sum within float rounding of .5 may land
        // on the other integer (measured: none on these bands).
        assert!(largest <= 1 && differing * 10_000 <= ours.len(), "{band}: {differing} pixels differ, by up to {largest}");
    }
}

#[test]
fn a_folder_reads_the_bands_asked_for_on_the_ten_metre_grid() {
    let folder = BandFolder::open(&paris(1)).unwrap();
    assert_eq!(folder.size().unwrap(), (390, 408));
    let bands: Vec<String> = sentinel2::DAUDT_ALL.iter().map(|b| b.to_string()).collect();
    let stack = folder.read(&bands, None).unwrap();
    assert_eq!((stack.width, stack.height, stack.channels), (390, 408, 13));
    let plane = |c: usize| -> Vec<u16> { stack.data.iter().skip(c).step_by(13).copied().collect() };
    assert_eq!(plane(0), stored_band(&folder, "B04").0, "B04 first, as stored");
    assert_eq!(plane(3), stored_band(&folder, "B08").0, "B08 fourth");
    let (b05, w, h) = stored_band(&folder, "B05");
    assert_eq!(plane(4), zoom_u16(&b05, w, h, 2), "B05 zoomed ×2");

    // Another grid: cropped or edge-padded to it, as the official code pads the second date.
    let padded = folder.read(&bands[..1], Some((392, 407))).unwrap();
    assert_eq!((padded.width, padded.height), (392, 407));
    let b04 = plane(0);
    assert_eq!(padded.data[..390], b04[..390]);
    assert_eq!(padded.data[390..392], [b04[389], b04[389]], "edge-padded");
}

#[test]
fn a_missing_band_is_named_with_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    for band in ["B02", "B03", "B04"] {
        let source = BandFolder::open(&paris(2)).unwrap().file(band).unwrap().to_owned();
        std::fs::copy(&source, dir.path().join(source.file_name().unwrap())).unwrap();
    }
    let folder = BandFolder::open(dir.path()).unwrap();
    let err = folder.read(&["B04".into(), "B8A".into()], None).unwrap_err().to_string();
    assert!(err.contains("band B8A is missing") && err.contains(&dir.path().display().to_string()) && err.contains("B02, B03, B04"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = BandFolder::open(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no Sentinel-2 band files"), "{err}");
}
