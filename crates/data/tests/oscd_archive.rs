//! OSCD read as its official archive ships it (`../shared/data/oscd-archive`: four training
//! cities' 13 bands, their 1/2 GeoTIFF labels and 0/255 PNGs): pairs of band folders, labels
//! decoded, any band list on the 10 m grid, batches of 16-bit bands z-scored per image.

use std::path::{Path, PathBuf};

use changedet_data::{Augment, BatchLoader, Dataset, DatasetSpec, Image, LabelEncoding, LoaderConfig, Normalization, PatchGrid, load_pair};

const IMAGES: &str = "Onera Satellite Change Detection dataset - Images";

fn archive() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/oscd-archive")
}

fn open(root: &Path, split: &str) -> Result<Dataset, changedet_data::DataError> {
    Dataset::open(&DatasetSpec { preset: "oscd".parse().unwrap(), root: root.to_owned() }, split, true, None)
}

fn all_bands() -> Vec<String> {
    changedet_raster::geo::sentinel2::DAUDT_ALL.iter().map(|b| b.to_string()).collect()
}

#[test]
fn the_archive_gives_pairs_of_band_folders_with_decoded_labels() {
    let dataset = open(&archive(), "all").unwrap();
    let names: Vec<&str> = dataset.pairs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["aguasclaras", "bercy", "paris", "rennes"]);
    assert_eq!(dataset.encodings(), [LabelEncoding::OneTwo], "the tifs hold 1/2");
    assert_eq!(dataset.bands().unwrap(), ["B04", "B03", "B02"], "red, green, blue by default");

    let paris = dataset.pairs.iter().position(|p| p.name == "paris").unwrap();
    let sample = load_pair(&dataset, paris).unwrap();
    let Image::U16(before) = &sample.before else { panic!("16-bit bands") };
    assert_eq!((before.width, before.height, before.channels), (390, 408, 3));
    let label = sample.label.unwrap();
    let changed = label.data.iter().filter(|&&v| v == 1).count();
    assert!(label.data.iter().all(|&v| v <= 1));
    // SOURCES.md: 0.29 % of Paris changed.
    assert!((changed as f64 / label.data.len() as f64 - 0.0029).abs() < 0.0005, "{changed} changed pixels");

    // The archive's own split lists cities it does not hold here: named, not skipped.
    let err = open(&archive(), "train").unwrap_err().to_string();
    assert!(err.contains("bordeaux") && err.contains("imgs_1"), "{err}");
}

#[test]
fn thirteen_bands_in_daudts_order_batch_as_z_scored_patches() {
    let dataset = open(&archive(), "all").unwrap().with_bands(&all_bands()).unwrap();
    let grid = PatchGrid { side: 96, stride: 47 };
    let samples = grid.samples(&dataset).unwrap();
    let config = LoaderConfig { batch_size: 8, augment: Augment::train(None), normalization: Normalization::PER_IMAGE, seed: 1, epoch: 0, cache: None };
    let batch = BatchLoader::samples(&dataset, samples[..8].to_vec(), config).next().unwrap().unwrap();
    assert_eq!((batch.bands, batch.height, batch.width), (13, 96, 96));
    assert_eq!(batch.before.len(), 8 * 13 * 96 * 96);
    assert!(batch.before.iter().chain(&batch.after).all(|v| v.is_finite()));
    // Each image is z-scored over all its pixels and bands: a patch is near, not at, zero mean.
    let mean = batch.before.iter().map(|&v| v as f64).sum::<f64>() / batch.before.len() as f64;
    assert!(mean.abs() < 1.0, "{mean}");

    // Fixed (ImageNet) statistics are RGB's: refused for 13 bands, naming the pair.
    let samples = grid.samples(&dataset).unwrap();
    let config = LoaderConfig { batch_size: 2, augment: Augment::default(), normalization: Normalization::IMAGENET, seed: 1, epoch: 0, cache: None };
    let err = BatchLoader::samples(&dataset, samples[..2].to_vec(), config).next().unwrap().unwrap_err().to_string();
    assert!(err.contains("3 bands (RGB)") && err.contains("13"), "{err}");
    // So are the 8-bit colour transforms.
    let augment = Augment { photometric: true, ..Augment::default() };
    let config = LoaderConfig { batch_size: 2, augment, normalization: Normalization::PER_IMAGE, seed: 1, epoch: 0, cache: None };
    let err = BatchLoader::samples(&dataset, samples[..2].to_vec(), config).next().unwrap().unwrap_err().to_string();
    assert!(err.contains("16-bit bands"), "{err}");
}

#[test]
fn missing_bands_labels_and_image_datasets_are_named() {
    // A copy of one city without its B8A and with only the PNG label.
    let dir = tempfile::tempdir().unwrap();
    let city = |root: &Path| root.join(IMAGES).join("paris");
    for date in ["imgs_1", "imgs_2"] {
        std::fs::create_dir_all(city(dir.path()).join(date)).unwrap();
        for entry in std::fs::read_dir(city(&archive()).join(date)).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with("_B8A.tif") {
                std::fs::copy(&path, city(dir.path()).join(date).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let labels = |root: &Path| root.join("Onera Satellite Change Detection dataset - Train Labels/paris/cm");
    std::fs::create_dir_all(labels(dir.path())).unwrap();
    std::fs::copy(labels(&archive()).join("cm.png"), labels(dir.path()).join("cm.png")).unwrap();

    let dataset = open(dir.path(), "all").unwrap();
    assert_eq!(dataset.encodings(), [LabelEncoding::NonZero], "cm.png: non-zero is change");
    let err = dataset.clone().with_bands(&all_bands()).unwrap_err().to_string();
    assert!(err.contains("band B8A is missing") && err.contains("paris/imgs_1"), "{err}");

    std::fs::remove_file(labels(dir.path()).join("cm.png")).unwrap();
    let err = open(dir.path(), "all").unwrap_err().to_string();
    assert!(err.contains("paris-cm.tif") && err.contains("label"), "{err}");

    let levir = DatasetSpec { preset: "levir-cd".parse().unwrap(), root: archive().join("../levir-cd-256") };
    let err = Dataset::open(&levir, "all", true, None).unwrap().with_bands(&all_bands()).unwrap_err().to_string();
    assert!(err.contains("image files, not folders of Sentinel-2 bands"), "{err}");
}
