//! OSCD (Caye Daudt et al., IGARSS 2018) as its official archive ships it: the archive's folders
//! unzipped side by side under one root,
//!
//! ```text
//! Onera Satellite Change Detection dataset - Images/{train,test}.txt, <city>/imgs_1/*_B01.tif …, imgs_2/…
//! Onera Satellite Change Detection dataset - Train Labels/<city>/cm/{<city>-cm.tif, cm.png}
//! Onera Satellite Change Detection dataset - Test Labels/<city>/cm/…   (whichever exist)
//! ```
//!
//! Each date is a folder of 13 band files at 10, 20 and 60 m; pairs read the bands they are
//! given (by default red, green, blue) on the first date's 10 m grid.

use std::path::{Path, PathBuf};

use changedet_raster::geo::sentinel2::{self, BandFolder};

use crate::dataset::layout_error;
use crate::{DataError, Dataset, LabelEncoding, PairPaths, Result};

pub(crate) const IMAGES: &str = "Onera Satellite Change Detection dataset - Images";
const LABELS: [&str; 2] = ["Onera Satellite Change Detection dataset - Train Labels", "Onera Satellite Change Detection dataset - Test Labels"];

/// Whether `root` holds the official archive's image folder.
pub(crate) fn is_archive(root: &Path) -> bool {
    root.join(IMAGES).is_dir()
}

/// One split of the archive: `train` or `test` (the archive's `train.txt`/`test.txt`), `all`
/// (every city with both dates), or a `.txt` list of city names.
pub(crate) fn open_archive(root: &Path, split: &str, require_labels: bool, ignore_value: Option<u8>) -> Result<Dataset> {
    let images = root.join(IMAGES);
    let cities = match split {
        "all" => every_city(&images)?,
        list if list.ends_with(".txt") => crate::dataset::read_list(Path::new(list))?,
        name => {
            let list = images.join(format!("{name}.txt"));
            if !list.is_file() {
                return Err(layout_error(&images, format!("no split '{name}': the archive has train.txt and test.txt (or use 'all', or a .txt list of cities)")));
            }
            crate::dataset::read_list(&list)?
        }
    };
    let bands: Vec<String> = sentinel2::RGB.iter().map(|b| b.to_string()).collect();
    let mut pairs = Vec::with_capacity(cities.len());
    for city in cities {
        let dates = [1, 2].map(|d| images.join(&city).join(format!("imgs_{d}")));
        if let Some(missing) = dates.iter().find(|d| !d.is_dir()) {
            return Err(DataError::MissingFile { path: missing.clone(), role: "band folder", name: city });
        }
        let label = find_label(root, &city);
        if require_labels && label.is_none() {
            let expected = root.join(LABELS[0]).join(&city).join("cm").join(format!("{city}-cm.tif"));
            return Err(DataError::MissingFile { path: expected, role: "label (or cm.png beside it, in the Train or Test Labels folder)", name: city });
        }
        let encoding = match &label {
            Some(path) => label_encoding(path, ignore_value)?,
            None => LabelEncoding::ZeroMax,
        };
        let [before, after] = dates;
        pairs.push(PairPaths { name: city, before, after, label, semantic: None, encoding, classes: Default::default(), bands: Some(bands.clone()) });
    }
    if pairs.is_empty() {
        return Err(layout_error(&images, format!("no cities found for split '{split}'")));
    }
    for pair in &pairs {
        crate::dataset::check_sizes(pair)?;
    }
    Ok(Dataset { pairs, ignore_value, semantic_classes: None })
}

/// Cities with both dates' folders, sorted.
fn every_city(images: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(images).map_err(|e| layout_error(images, e.to_string()))?;
    let mut cities: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("imgs_1").is_dir() && p.join("imgs_2").is_dir())
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    cities.sort();
    Ok(cities)
}

/// `<labels>/<city>/cm/<city>-cm.tif` where present, else `cm.png`, in the train or test labels.
fn find_label(root: &Path, city: &str) -> Option<PathBuf> {
    LABELS.iter().map(|folder| root.join(folder).join(city).join("cm")).find_map(|cm| {
        [cm.join(format!("{city}-cm.tif")), cm.join("cm.png")].into_iter().find(|p| p.is_file())
    })
}

/// The archive's README says its tif labels are 0/1, but the distributed files hold 1 = no
/// change, 2 = change; the png is 0/255 (read as non-zero = change, as the official code does).
/// A tif holding a 0 is read as 0/1, one without as 1/2.
fn label_encoding(path: &Path, ignore_value: Option<u8>) -> Result<LabelEncoding> {
    if path.extension().is_some_and(|e| e == "png") {
        return Ok(LabelEncoding::NonZero);
    }
    let values: std::collections::BTreeSet<u8> = changedet_raster::read_gray(path)?.data.into_iter().filter(|&v| Some(v) != ignore_value).collect();
    let encoding = if values.contains(&0) { LabelEncoding::ZeroOne } else { LabelEncoding::OneTwo };
    let allowed: &[u8] = if encoding == LabelEncoding::ZeroOne { &[0, 1] } else { &[1, 2] };
    if values.iter().any(|v| !allowed.contains(v)) {
        return Err(DataError::LabelValues { path: path.to_owned(), found: values.into_iter().collect(), expected: "OSCD's 1/2 (or 0/1) change map".into() });
    }
    Ok(encoding)
}

/// Width and height of a pair's first date: its image, or its 10 m grid.
pub(crate) fn date_size(pair: &PairPaths, path: &Path) -> Result<(u32, u32)> {
    Ok(match pair.bands {
        Some(_) => BandFolder::open(path)?.size()?,
        None => changedet_raster::dimensions(path)?,
    })
}

/// Both dates' bands of a band-folder pair on the first date's 10 m grid (the second date
/// cropped or edge-padded to it, as the official code pads it).
pub(crate) fn read_dates(pair: &PairPaths, bands: &[String]) -> Result<[changedet_raster::Raster<u16>; 2]> {
    let before = BandFolder::open(&pair.before)?.read(bands, None)?;
    let after = BandFolder::open(&pair.after)?.read(bands, Some(before.size()))?;
    Ok([before, after])
}

/// Checks that every pair's folders hold `bands`, naming the first folder and band missing.
pub(crate) fn check_bands(dataset: &Dataset, bands: &[String]) -> Result<()> {
    for pair in &dataset.pairs {
        for dir in [&pair.before, &pair.after] {
            let folder = BandFolder::open(dir)?;
            for band in bands {
                folder.file(band)?;
            }
        }
    }
    Ok(())
}
