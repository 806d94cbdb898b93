//! Whole-scene prediction on the real GeoTIFFs and LEVIR tiles in ../shared/data: georeference
//! and nodata carried through, tiled = whole-image prediction away from the borders without
//! seams, shards + merge = one run, polygons consistent with the maps, bad input refused cleanly.

use std::path::{Path, PathBuf};

use gdal::{Dataset, Metadata};
use gdal::spatial_ref::SpatialRef;
use tch::{Device, Tensor};

use changedet_models::{LoadedModel, ModelSpec};
use changedet_raster::geo::PolygonOptions;
use changedet_scene::{SceneJob, Shard, VectorOutput, merge, predict_scene};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(rel)
}

fn cbers(date: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data(&format!("cbers4-awfi-2date/{date}"))).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort(); // B13 (blue), B14 (green), B15 (red), B16 (NIR)
    files
}

fn model(name: &str, config: Option<serde_json::Value>) -> LoadedModel {
    tch::manual_seed(7);
    LoadedModel::new(ModelSpec::new(name, config).unwrap(), Device::Cpu).unwrap()
}

fn read<T: Copy + gdal::raster::GdalType>(path: &Path) -> (Vec<T>, Dataset) {
    let ds = Dataset::open(path).unwrap();
    let size = ds.raster_size();
    let values = ds.rasterband(1).unwrap().read_as::<T>((0, 0), size, size, None).unwrap().into_shape_and_vec().1;
    (values, ds)
}

/// Files left in `dir`, hidden ones included.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    names.sort();
    names
}

#[test]
fn cbers_pair_keeps_crs_geotransform_and_nodata() {
    let dir = tempfile::tempdir().unwrap();
    // The real after date with a block of nodata written into its red band.
    let after_dir = dir.path().join("after");
    std::fs::create_dir(&after_dir).unwrap();
    let after: Vec<PathBuf> = cbers("B")
        .iter()
        .map(|f| {
            let copy = after_dir.join(f.file_name().unwrap());
            std::fs::copy(f, &copy).unwrap();
            copy
        })
        .collect();
    {
        let ds = Dataset::open_ex(&after[2], gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE, ..Default::default() }).unwrap();
        let mut band = ds.rasterband(1).unwrap();
        assert_eq!(band.no_data_value(), Some(-9999.0));
        let mut hole = gdal::raster::Buffer::new((7, 5), vec![-9999i16; 35]);
        band.write((10, 20), (7, 5), &mut hole).unwrap();
    }
    let out = dir.path().join("out");
    let job = SceneJob {
        bands: Some(vec![3, 2, 1]),
        tile: 64,
        overlap: 16,
        vector: Some(VectorOutput { path: out.join("changes.gpkg"), options: PolygonOptions::default() }),
        ..SceneJob::new(cbers("A"), after, out.clone())
    };
    let summary = predict_scene(&model("fc-siam-diff", None), Device::Cpu, &job).unwrap();
    assert_eq!((summary.width, summary.height), (50, 50));
    assert_eq!(summary.valid_pixels, 2500 - 35);

    let source = Dataset::open(&cbers("A")[0]).unwrap();
    let (change, ds) = read::<u8>(&out.join("change.tif"));
    for map in ["change.tif", "probability.tif"] {
        let ds = Dataset::open(out.join(map)).unwrap();
        assert_eq!(ds.projection(), source.projection(), "{map}: WKT");
        assert!(ds.spatial_ref().unwrap() == source.spatial_ref().unwrap());
        assert_eq!(ds.geo_transform().unwrap(), source.geo_transform().unwrap(), "{map}");
        assert_eq!(ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(), Some("COG"), "{map}");
    }
    assert_eq!(ds.rasterband(1).unwrap().no_data_value(), Some(255.0));
    let (probability, _) = read::<f32>(&out.join("probability.tif"));
    for y in 0..50 {
        for x in 0..50 {
            let hole = (10..17).contains(&x) && (20..25).contains(&y);
            let i = y * 50 + x;
            assert_eq!(change[i] == 255, hole, "change at ({x}, {y})");
            assert_eq!(probability[i].is_nan(), hole, "probability at ({x}, {y})");
            if !hole {
                assert_eq!(change[i], u8::from(probability[i] > 0.5));
            }
        }
    }
    // Polygons: in the scene's CRS, and their areas add up to the changed area.
    let vectors = Dataset::open(out.join("changes.gpkg")).unwrap();
    let mut layer = vectors.layer(0).unwrap();
    use gdal::vector::LayerAccess;
    assert!(layer.spatial_ref().unwrap() == SpatialRef::from_wkt(&source.projection()).unwrap());
    let areas: f64 = layer.features().map(|f| f.field_as_double(f.field_index("area_m2").unwrap()).unwrap().unwrap()).sum();
    let changed = summary.changed_area_m2.expect("a georeferenced scene has areas in m²");
    // The summary measures each row's middle pixel, the polygons their own outlines, both in
    // the same equal-area projection (raster/tests/geotiff.rs checks both against the ellipsoid).
    assert!((areas - changed).abs() < 1e-5 * changed.max(1.0), "{areas} vs {changed}");
    assert_eq!(summary.polygons, Some(layer.feature_count() as usize));
    assert_eq!(listing(&out), ["change.tif", "changes.gpkg", "probability.tif", "scene.json"]);
}

/// A nodata value in a byte RGB scene (Landsat's 0 border in RGB.byte.tif) is nodata in the maps.
#[test]
fn nodata_border_of_a_byte_scene_stays_nodata() {
    let dir = tempfile::tempdir().unwrap();
    let scene = vec![data("geotiff-single/RGB.byte.tif")];
    let job = SceneJob { tile: 256, overlap: 32, ..SceneJob::new(scene.clone(), scene.clone(), dir.path().to_owned()) };
    predict_scene(&model("fc-siam-diff", None), Device::Cpu, &job).unwrap();
    let source = Dataset::open(&scene[0]).unwrap();
    let size = source.raster_size();
    let bands: Vec<Vec<u8>> = (1..=3).map(|b| source.rasterband(b).unwrap().read_as::<u8>((0, 0), size, size, None).unwrap().into_shape_and_vec().1).collect();
    let (change, _) = read::<u8>(&dir.path().join("change.tif"));
    let nodata = (0..change.len()).filter(|&i| bands.iter().any(|b| b[i] == 0)).count();
    assert!(nodata > 100_000, "the scene has a wide nodata border ({nodata})");
    for i in 0..change.len() {
        assert_eq!(change[i] == 255, bands.iter().any(|b| b[i] == 0), "pixel {i}");
    }
}

/// Whole-image probabilities of `model` on a PNG pair, computed the way `predict` does.
fn whole_image(model: &LoadedModel, before: &Path, after: &Path) -> (Vec<f32>, usize, usize) {
    let norm = model.spec.normalization();
    let image = |p: &Path| {
        let raster = changedet_raster::read_rgb(p).unwrap();
        let mut chw = vec![0f32; raster.data.len()];
        norm.write_chw(&raster.data, &mut chw);
        (Tensor::from_slice(&chw).view([1, 3, raster.height as i64, raster.width as i64]), raster.width as usize, raster.height as usize)
    };
    let ((b, w, h), (a, _, _)) = (image(before), image(after));
    let out = tch::no_grad(|| model.model.forward_t(&b, &a, false));
    (Vec::<f32>::try_from(out.probability().flatten(0, -1)).unwrap(), w, h)
}

#[test]
fn tiled_prediction_equals_whole_image_away_from_borders_without_seams() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (data("levir-cd-1024/A/test_1.png"), data("levir-cd-1024/B/test_1.png"));
    let m = model("fc-siam-diff", None);
    let (whole, w, h) = whole_image(&m, &before, &after);
    let (tile, overlap) = (256, 64);
    let job = SceneJob { tile, overlap, block_strides: 2, ..SceneJob::new(vec![before], vec![after], dir.path().to_owned()) };
    let summary = predict_scene(&m, Device::Cpu, &job).unwrap();
    assert_eq!((summary.width, summary.height), (w, h));
    let (tiled, _) = read::<f32>(&dir.path().join("probability.tif"));

    // Away from the scene border (where whole-image and tile padding see the same zeros anyway,
    // but only the tiled run has tapered weights) the two agree closely everywhere, seams included.
    let border = 16;
    let interior = |i: usize| (border..w - border).contains(&(i % w)) && (border..h - border).contains(&(i / w));
    let diffs: Vec<f32> = (0..w * h).filter(|&i| interior(i)).map(|i| (tiled[i] - whole[i]).abs()).collect();
    let max = diffs.iter().copied().fold(0f32, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    eprintln!("tiled vs whole: max {max}, mean {mean}");
    assert!(max < 2e-3 && mean < 5e-5, "tiled vs whole: max {max}, mean {mean}");

    // No seams: across every tile edge inside the scene, the tiled map steps no more than the
    // whole-image map does at the same place (plus the tolerance above).
    let stride = tile - overlap;
    let edges: Vec<usize> = (1..).map(|k| k * stride).take_while(|&e| e < w - border).chain((1..).map(|k| k * stride + tile).take_while(|&e| e < w - border)).collect();
    let mut worst = 0f32;
    for &e in &edges {
        for y in border..h - border {
            let (l, r) = (y * w + e - 1, y * w + e);
            worst = worst.max(((tiled[r] - tiled[l]) - (whole[r] - whole[l])).abs());
            let (u, d) = ((e - 1) * w + y, e * w + y);
            worst = worst.max(((tiled[d] - tiled[u]) - (whole[d] - whole[u])).abs());
        }
    }
    eprintln!("largest extra step across a tile edge: {worst}");
    assert!(worst < 4e-3, "largest extra step across a tile edge: {worst}");
}

#[test]
fn three_shards_merged_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (vec![data("levir-cd-1024/A/test_2.png")], vec![data("levir-cd-1024/B/test_2.png")]);
    let m = model("fc-siam-diff", None);
    let base = SceneJob { tile: 256, overlap: 32, block_strides: 2, ..SceneJob::new(before, after, dir.path().join("whole")) };
    predict_scene(&m, Device::Cpu, &base).unwrap();
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| {
            let out = dir.path().join(format!("shard{i}"));
            predict_scene(&m, Device::Cpu, &SceneJob { shard: Shard { index: i, count: 3 }, out: out.clone(), ..base.clone() }).unwrap();
            out
        })
        .collect();
    assert!(merge(&shards[..2], &dir.path().join("merged"), false, None).unwrap_err().to_string().contains("shard 3/3 is missing"));
    let merged = dir.path().join("merged");
    let summary = merge(&[shards[2].clone(), shards[0].clone(), shards[1].clone()], &merged, false, None).unwrap();
    assert_eq!(summary.blocks, TILE_BLOCKS);
    let (a, _) = read::<u8>(&dir.path().join("whole/change.tif"));
    let (b, ds) = read::<u8>(&merged.join("change.tif"));
    assert!(a == b, "change maps differ");
    let (a, _) = read::<f32>(&dir.path().join("whole/probability.tif"));
    let (b, _) = read::<f32>(&merged.join("probability.tif"));
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "probability maps differ");
    assert_eq!(ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(), Some("COG"));
    // Both build their overviews block by block (the shards' blocks taken in shard order).
    let overview = |path: &Path| {
        let dataset = Dataset::open(path).unwrap();
        let band = dataset.rasterband(1).unwrap().overview(0).unwrap();
        band.read_as::<f32>((0, 0), band.size(), band.size(), None).unwrap().into_shape_and_vec().1
    };
    let (a, b) = (overview(&dir.path().join("whole/probability.tif")), overview(&merged.join("probability.tif")));
    assert!(a.len() == 512 * 512 && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "probability overviews differ");
}

/// 1024 px with 224-px strides in blocks of 2 strides (448 px): 3 × 3 blocks.
const TILE_BLOCKS: usize = 9;

#[test]
fn semantic_model_writes_class_maps_with_colour_tables_and_from_to_polygons() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (vec![data("levir-cd-256/A/test_102_0512_0000.png")], vec![data("levir-cd-256/B/test_102_0512_0000.png")]);
    let m = model("clearscd", None);
    let out = dir.path().to_owned();
    let job = SceneJob {
        tile: 256,
        overlap: 0,
        vector: Some(VectorOutput { path: out.join("changes.geojson"), options: PolygonOptions::default() }),
        ..SceneJob::new(before, after, out.clone())
    };
    let summary = predict_scene(&m, Device::Cpu, &job).unwrap();
    let (before_classes, ds) = read::<u8>(&out.join("before_classes.tif"));
    let band = ds.rasterband(1).unwrap();
    let table = band.color_table().unwrap();
    for (i, [r, g, b]) in changedet_data::palette::HIUCD.iter().enumerate() {
        let entry = table.entry_as_rgb(i).unwrap();
        assert_eq!((entry.r, entry.g, entry.b), (*r as i16, *g as i16, *b as i16), "colour {i}");
    }
    let (after_classes, _) = read::<u8>(&out.join("after_classes.tif"));
    let (change, _) = read::<u8>(&out.join("change.tif"));
    let (fromto, ds) = read::<u8>(&out.join("fromto.tif"));
    // Codes are coloured by their after class: 1 + 9·from + to → colour of `to`.
    let band = ds.rasterband(1).unwrap();
    let table = band.color_table().unwrap();
    let building = table.entry_as_rgb(1 + 9 * 4 + 2).unwrap();
    assert_eq!((building.r, building.g, building.b), (255, 0, 0));
    for i in 0..change.len() {
        let expected = if change[i] == 1 { 1 + 9 * before_classes[i] + after_classes[i] } else { 0 };
        assert_eq!(fromto[i], expected);
    }
    let vectors = Dataset::open(out.join("changes.geojson")).unwrap();
    let mut layer = vectors.layer(0).unwrap();
    use gdal::vector::LayerAccess;
    let mut n = 0;
    for f in layer.features() {
        let field = |name: &str| f.field_as_integer(f.field_index(name).unwrap()).unwrap().unwrap();
        let (from, to) = (field("class_from"), field("class_to"));
        assert!((0..9).contains(&from) && (0..9).contains(&to));
        n += 1;
    }
    assert_eq!(summary.polygons, Some(n));
    assert_eq!(n > 0, summary.changed_pixels > 0);
}

#[test]
fn bad_scenes_are_refused_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let m = model("fc-siam-diff", None);
    let run = |before: Vec<PathBuf>, after: Vec<PathBuf>, edit: &dyn Fn(&mut SceneJob)| {
        let mut job = SceneJob { tile: 64, overlap: 16, ..SceneJob::new(before, after, dir.path().join("out")) };
        edit(&mut job);
        predict_scene(&m, Device::Cpu, &job).map(|_| ()).map_err(|e| format!("{e:#}"))
    };
    let rgb = vec![data("geotiff-single/RGB.byte.tif")];
    let rgbn = vec![data("geotiff-single/rgbn.tif")];

    let err = run(cbers("A"), rgb.clone(), &|j| j.bands = Some(vec![3, 2, 1])).unwrap_err();
    assert!(err.contains("RGB.byte.tif is not in the CRS of") && err.contains("--align"), "{err}");
    let err = run(rgbn.clone(), rgbn.clone(), &|_| {}).unwrap_err();
    assert!(err.contains("rgbn.tif gives 4 bands") && err.contains("--bands"), "{err}");
    let err = run(rgbn.clone(), rgbn.clone(), &|j| j.bands = Some(vec![1, 2, 5])).unwrap_err();
    assert!(err.contains("band 5 was asked for") && err.contains("bands 1 to 4"), "{err}");

    // A copy of the after scene moved far away: no common footprint.
    let moved = dir.path().join("moved.tif");
    std::fs::copy(&rgb[0], &moved).unwrap();
    {
        let mut ds = Dataset::open_ex(&moved, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE, ..Default::default() }).unwrap();
        let mut t = ds.geo_transform().unwrap();
        t[0] += 1000.0 * t[1];
        ds.set_geo_transform(&t).unwrap();
    }
    let err = run(rgb.clone(), vec![moved], &|_| {}).unwrap_err();
    assert!(err.contains("do not overlap"), "{err}");

    // A COG cut short: its header and first tiles read, its later tiles cannot. The run fails
    // part-way and leaves nothing behind, not even its hidden partial files.
    let cog = vec![data("geotiff-single/cogeo.tif")];
    let cut = dir.path().join("cut.tif");
    let bytes = std::fs::read(&cog[0]).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = run(cog.clone(), vec![cut.clone()], &|j| {
        j.tile = 256;
        j.overlap = 32;
        j.block_strides = 1;
    })
    .unwrap_err();
    assert!(err.contains("cut.tif"), "{err}");
    assert_eq!(listing(&dir.path().join("out")), Vec::<String>::new());
    let garbage = dir.path().join("garbage.tif");
    std::fs::write(&garbage, b"II*\0not really a tiff").unwrap();
    let err = run(rgb.clone(), vec![garbage], &|_| {}).unwrap_err();
    assert!(err.contains("garbage.tif"), "{err}");

    // Existing outputs are kept unless --overwrite.
    run(cbers("A"), cbers("B"), &|j| j.bands = Some(vec![3, 2, 1])).unwrap();
    let err = run(cbers("A"), cbers("B"), &|j| j.bands = Some(vec![3, 2, 1])).unwrap_err();
    assert!(err.contains("change.tif exists") && err.contains("--overwrite"), "{err}");
    run(cbers("A"), cbers("B"), &|j| {
        j.bands = Some(vec![3, 2, 1]);
        j.overwrite = true;
    })
    .unwrap();
}

/// `--align`: the after date in another CRS is refused as it is, and warped onto the before grid
/// with `align`; the maps then have the before grid.
#[test]
fn align_warps_the_after_date_onto_the_before_grid() {
    let dir = tempfile::tempdir().unwrap();
    let warped: Vec<PathBuf> = cbers("B")
        .iter()
        .map(|f| {
            let out = dir.path().join(f.file_name().unwrap());
            let status = std::process::Command::new("gdalwarp").args(["-q", "-t_srs", "EPSG:4326"]).arg(f).arg(&out).status().unwrap();
            assert!(status.success());
            out
        })
        .collect();
    let m = model("fc-siam-diff", None);
    let job = SceneJob { bands: Some(vec![3, 2, 1]), tile: 64, overlap: 16, ..SceneJob::new(cbers("A"), warped, dir.path().join("out")) };
    let err = predict_scene(&m, Device::Cpu, &job).unwrap_err().to_string();
    assert!(err.contains("not in the CRS") && err.contains("--align"), "{err}");
    let summary = predict_scene(&m, Device::Cpu, &SceneJob { align: true, ..job }).unwrap();
    assert_eq!((summary.width, summary.height), (50, 50));
    let source = Dataset::open(&cbers("A")[0]).unwrap();
    let ds = Dataset::open(dir.path().join("out/change.tif")).unwrap();
    assert_eq!(ds.geo_transform().unwrap(), source.geo_transform().unwrap());
    assert_eq!(ds.projection(), source.projection());
    // Warping leaves some edge pixels outside the after footprint: masked, not guessed.
    assert!(summary.valid_pixels > 2000 && summary.valid_pixels <= 2500, "{}", summary.valid_pixels);
}

/// ±∞ in a float scene is missing data, like NaN: those pixels are nodata in the maps, and the
/// run is not stopped as if the model had produced non-finite scores.
#[test]
fn infinite_pixels_of_a_float_scene_are_nodata() {
    let dir = tempfile::tempdir().unwrap();
    let source = Dataset::open(data("geotiff-single/RGB.byte.tif")).unwrap();
    let (w, h) = source.raster_size();
    let path = dir.path().join("float.tif");
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut float = driver.create_with_band_type::<f32, _>(&path, w, h, 3).unwrap();
    float.set_geo_transform(&source.geo_transform().unwrap()).unwrap();
    float.set_projection(&source.projection()).unwrap();
    let (x0, y0, side) = (w / 2, h / 2, 40);
    for b in 1..=3 {
        let values = source.rasterband(b).unwrap().read_as::<u8>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1;
        let mut values: Vec<f32> = values.iter().map(|&v| f32::from(v) * 100.0 + 1.0).collect();
        for y in y0..y0 + side {
            for x in x0..x0 + side {
                values[y * w + x] = if b == 1 { f32::INFINITY } else if x % 2 == 0 { f32::NEG_INFINITY } else { values[y * w + x] };
            }
        }
        let mut buffer = gdal::raster::Buffer::new((w, h), values);
        float.rasterband(b).unwrap().write((0, 0), (w, h), &mut buffer).unwrap();
    }
    drop(float);
    let out = dir.path().join("out");
    let scene = vec![path];
    let job = SceneJob { tile: 256, overlap: 32, ..SceneJob::new(scene.clone(), scene, out.clone()) };
    predict_scene(&model("fc-siam-diff", None), Device::Cpu, &job).unwrap();
    let (change, _) = read::<u8>(&out.join("change.tif"));
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            assert_eq!(change[y * w + x], 255, "({x}, {y}) is nodata");
        }
    }
    assert!(change.iter().filter(|&&c| c != 255).count() > w * h / 2, "the finite pixels are predicted");
}
