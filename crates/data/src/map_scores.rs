//! Scores of prediction maps against ground-truth maps on disk (`changedet metrics`): files
//! matched by name, change masks and class maps decoded, and every pair accumulated into one
//! confusion per convention, pairs in parallel.
//!
//! Layouts. Binary: each folder holds change masks (or a `change/` sub-folder). Semantic: each
//! folder holds `A/` and `B/` (class maps of the two dates) and `change/` (change masks); a
//! SECOND ground truth may lack `change/` (the mask is then "not white").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use changedet_metrics::{BinaryConfusion, EveryConvention, ScdPair};
use changedet_raster::{Raster, read_gray, read_rgb};

use crate::dataset::IMAGE_EXTENSIONS;
use crate::semantic::second_class;
use crate::{DataError, LabelEncoding, Result};

/// How the ground truth's class maps are coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroundTruth {
    /// Indices 0..K−1, K = unlabelled; change masks 0/1 with 255 = unlabelled (Hi-UCD after
    /// ClearSCD's preparation).
    Hiucd,
    /// SECOND's RGB palette, white = no change.
    Second,
}

/// What [`score_maps`] compares.
pub struct MapFolders<'a> {
    pub pred: &'a Path,
    pub gt: &'a Path,
    /// Land-cover classes of semantic maps.
    pub classes: usize,
    pub ground_truth: GroundTruth,
    /// Score class maps too (`A/`, `B/`, `change/`), not only change masks.
    pub semantic: bool,
    /// Binary: read the predictions' probability maps (`predict`'s `NAME_probability.png`, or
    /// any gray map of probability × 255) and call a pixel changed above this probability.
    pub threshold: Option<f64>,
}

/// Every pair's name, and the accumulated scores (only `binary` for binary maps).
pub fn score_maps(folders: &MapFolders) -> Result<(Vec<String>, EveryConvention)> {
    match folders.semantic {
        true => score_semantic(folders),
        false => score_binary(folders),
    }
}

fn score_binary(folders: &MapFolders) -> Result<(Vec<String>, EveryConvention)> {
    let (pred_dir, gt_dir) = (binary_dir(folders.pred), binary_dir(folders.gt));
    let stems = match_files(&pred_dir, &gt_dir)?;
    let gt_encoding = detect_change_encoding(&gt_dir, &stems)?;
    let predictions = match folders.threshold {
        Some(threshold) => Predictions::Probabilities(threshold),
        None => Predictions::Masks(detect_change_encoding(&pred_dir, &stems)?),
    };
    let binary = stems
        .par_iter()
        .map(|stem| -> Result<BinaryConfusion> {
            let g_path = find(&gt_dir, stem)?;
            let (p_path, p) = predictions.read(&pred_dir, stem)?;
            let g = read_change(&g_path, gt_encoding, None)?;
            same_size(&p, &p_path, &g, &g_path)?;
            let mut c = BinaryConfusion::default();
            c.accumulate(&p.data, &g.data, None).map_err(|e| layout(&p_path, e.to_string()))?;
            Ok(c)
        })
        .try_reduce(BinaryConfusion::default, |mut a, b| {
            a.merge(&b);
            Ok(a)
        })?;
    Ok((stems, EveryConvention { binary, ..EveryConvention::new(folders.classes) }))
}

fn score_semantic(folders: &MapFolders) -> Result<(Vec<String>, EveryConvention)> {
    let stems = match_files(&folders.pred.join("A"), &folders.gt.join("A"))?;
    for sub in ["B", "change"] {
        match_files(&folders.pred.join(sub), &folders.gt.join("A"))?;
    }
    let gt_change_dir = folders.gt.join("change");
    let inputs = ScdInputs {
        folders,
        pred_change: detect_change_encoding(&folders.pred.join("change"), &stems)?,
        gt_change: match folders.ground_truth {
            GroundTruth::Hiucd => Some(LabelEncoding::ZeroOne),
            GroundTruth::Second if gt_change_dir.is_dir() => Some(detect_change_encoding(&gt_change_dir, &stems)?),
            GroundTruth::Second => None,
        },
    };
    let classes = folders.classes;
    let scores = stems
        .par_iter()
        .map(|stem| -> Result<EveryConvention> {
            let pair = inputs.load(stem)?;
            let mut acc = EveryConvention::new(classes);
            acc.add(&pair.maps()).map_err(|e| DataError::Maps(format!("pair '{stem}': {e}")))?;
            Ok(acc)
        })
        .try_reduce(|| EveryConvention::new(classes), |a, b| Ok(a.merge(b)))?;
    Ok((stems, scores))
}

fn layout(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Layout { path: path.to_owned(), message: message.into() }
}

fn binary_dir(dir: &Path) -> PathBuf {
    if dir.join("change").is_dir() { dir.join("change") } else { dir.to_owned() }
}

fn stem(path: &Path) -> Option<String> {
    path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
}

/// Image files of `dir` by stem. In a folder `predict` wrote (`NAME_change.png` beside
/// `NAME_probability.png`, …) the change maps stand for their pairs, under `NAME`.
fn files_by_stem(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let files = image_files(dir)?;
    let written_by_predict = files.iter().any(|(s, _)| s.ends_with(PROBABILITY_SUFFIX)) && files.iter().any(|(s, _)| s.ends_with(CHANGE_SUFFIX));
    if !written_by_predict {
        return Ok(files);
    }
    Ok(files.into_iter().filter_map(|(s, p)| Some((s.strip_suffix(CHANGE_SUFFIX)?.to_owned(), p))).collect())
}

/// The names `predict` gives a pair's change and probability maps (see `MapSet::write_pair_pngs`).
const CHANGE_SUFFIX: &str = "_change";
const PROBABILITY_SUFFIX: &str = "_probability";

fn image_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| layout(dir, format!("cannot list the folder: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())))
        .filter_map(|p| Some((stem(&p)?, p)))
        .collect();
    files.sort();
    Ok(files)
}

/// The pairs of files with the same stem in `pred` and `gt`; a file on one side only is an error.
fn match_files(pred: &Path, gt: &Path) -> Result<Vec<String>> {
    let p: BTreeSet<String> = files_by_stem(pred)?.into_iter().map(|(s, _)| s).collect();
    let g: BTreeSet<String> = files_by_stem(gt)?.into_iter().map(|(s, _)| s).collect();
    if let Some(missing) = g.difference(&p).next() {
        return Err(layout(pred, format!("no prediction for ground-truth map '{missing}'")));
    }
    if let Some(extra) = p.difference(&g).next() {
        return Err(layout(pred, format!("prediction '{extra}' has no ground-truth map in {}", gt.display())));
    }
    if g.is_empty() {
        return Err(layout(gt, "no maps found"));
    }
    Ok(g.into_iter().collect())
}

/// The map of pair `stem` in `dir`: `stem.EXT`, or `stem_change.EXT` in a `predict` folder.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    first_image(dir, &[stem.to_owned(), format!("{stem}{CHANGE_SUFFIX}")]).ok_or_else(|| layout(dir, format!("no map named '{stem}'")))
}

/// The first image file of `dir` named one of `names` (any image extension).
fn first_image(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().flat_map(|name| IMAGE_EXTENSIONS.iter().map(move |e| dir.join(format!("{name}.{e}")))).find(|p| p.is_file())
}

/// How binary predictions are read: change masks, or probability maps cut at a threshold.
#[derive(Clone, Copy)]
enum Predictions {
    Masks(LabelEncoding),
    Probabilities(f64),
}

impl Predictions {
    /// Pair `stem`'s change mask (0/1) in `dir`, and the file it came from.
    fn read(self, dir: &Path, stem: &str) -> Result<(PathBuf, Raster)> {
        let (path, mask) = match self {
            Predictions::Masks(encoding) => {
                let path = find(dir, stem)?;
                let mask = read_change(&path, encoding, None)?;
                (path, mask)
            }
            Predictions::Probabilities(threshold) => {
                let path = find_probability(dir, stem)?;
                let mask = read_thresholded(&path, threshold)?;
                (path, mask)
            }
        };
        Ok((path, mask))
    }
}

/// The probability map of pair `stem` in `dir`: `stem_probability.EXT` in a `predict` folder,
/// else `stem.EXT`.
fn find_probability(dir: &Path, stem: &str) -> Result<PathBuf> {
    first_image(dir, &[format!("{stem}{PROBABILITY_SUFFIX}"), stem.to_owned()])
        .ok_or_else(|| layout(dir, format!("no probability map named '{stem}{PROBABILITY_SUFFIX}' or '{stem}'")))
}

/// A gray probability map (probability × 255) → 1 where the probability exceeds `threshold`.
fn read_thresholded(path: &Path, threshold: f64) -> Result<Raster> {
    let mut map = read_gray(path)?;
    map.data.iter_mut().for_each(|v| *v = u8::from(f64::from(*v) / 255.0 > threshold));
    Ok(map)
}

fn same_size(a: &Raster, a_path: &Path, b: &Raster, b_path: &Path) -> Result<()> {
    if a.size() != b.size() {
        let message = format!("{} is {}×{} but {} is {}×{}", a_path.display(), a.width, a.height, b_path.display(), b.width, b.height);
        return Err(DataError::Maps(message));
    }
    Ok(())
}

/// Reads change masks and decodes them to 0/1 (and 255 for unlabelled ground truth).
fn read_change(path: &Path, encoding: LabelEncoding, ignore: Option<u8>) -> Result<Raster> {
    let mut mask = read_gray(path)?;
    encoding.decode(path, &mut mask.data, ignore)?;
    Ok(mask)
}

fn detect_change_encoding(dir: &Path, stems: &[String]) -> Result<LabelEncoding> {
    let values = stems
        .par_iter()
        .map(|s| {
            let path = find(dir, s)?;
            let set: BTreeSet<u8> = read_gray(&path)?.data.into_iter().collect();
            Ok((path, set))
        })
        .collect::<Result<Vec<_>>>()?;
    LabelEncoding::detect(&values, None)
}

fn read_classes(path: &Path, classes: usize, max: u8, what: &str) -> Result<Raster> {
    let map = read_gray(path)?;
    let bad: BTreeSet<u8> = map.data.iter().copied().filter(|&v| v > max).collect();
    if !bad.is_empty() {
        return Err(layout(path, format!("{what} values {bad:?} outside 0..={max} ({classes} classes)")));
    }
    Ok(map)
}

/// SECOND RGB labels → class indices 0..5, with white (no change) as unlabelled (6).
fn read_second_rgb(path: &Path) -> Result<Raster> {
    let rgb = read_rgb(path)?;
    let mut unknown = BTreeSet::new();
    let data = rgb
        .data
        .chunks_exact(3)
        .map(|px| match second_class([px[0], px[1], px[2]]) {
            Some(class) => class,
            None => {
                unknown.insert([px[0], px[1], px[2]]);
                0
            }
        })
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<_> = unknown.iter().take(5).collect();
        return Err(layout(path, format!("colours {shown:?} are not in the SECOND palette")));
    }
    Ok(Raster::new(rgb.width, rgb.height, 1, data))
}

struct ScdInputs<'a> {
    folders: &'a MapFolders<'a>,
    pred_change: LabelEncoding,
    gt_change: Option<LabelEncoding>,
}

impl ScdInputs<'_> {
    fn load(&self, stem: &str) -> Result<ScdPair> {
        let (k, gt, pred) = (self.folders.classes, self.folders.gt, self.folders.pred);
        let gt_date = |date: &str| -> Result<(Raster, PathBuf)> {
            let path = find(&gt.join(date), stem)?;
            let map = match self.folders.ground_truth {
                GroundTruth::Hiucd => read_classes(&path, k, k as u8, "ground-truth class")?,
                GroundTruth::Second => read_second_rgb(&path)?,
            };
            Ok((map, path))
        };
        let (gt_a, gt_a_path) = gt_date("A")?;
        let (gt_b, gt_b_path) = gt_date("B")?;
        same_size(&gt_a, &gt_a_path, &gt_b, &gt_b_path)?;
        let gt_change = match self.gt_change {
            Some(encoding) => {
                let path = find(&gt.join("change"), stem)?;
                let ignore = (self.folders.ground_truth == GroundTruth::Hiucd).then_some(255);
                let mask = read_change(&path, encoding, ignore)?;
                same_size(&gt_a, &gt_a_path, &mask, &path)?;
                mask.data
            }
            // SECOND without a change folder: changed wherever the label is not white.
            None => gt_a.data.iter().map(|&c| u8::from(c != k as u8)).collect(),
        };
        let pred_date = |date: &str| -> Result<Raster> {
            let path = find(&pred.join(date), stem)?;
            let map = read_classes(&path, k, k as u8 - 1, "predicted class")?;
            same_size(&gt_a, &gt_a_path, &map, &path)?;
            Ok(map)
        };
        let change_path = find(&pred.join("change"), stem)?;
        let pred_change = read_change(&change_path, self.pred_change, None)?;
        same_size(&gt_a, &gt_a_path, &pred_change, &change_path)?;
        let (pred_a, pred_b) = (pred_date("A")?.data, pred_date("B")?.data);
        Ok(ScdPair { gt_a: gt_a.data, gt_b: gt_b.data, gt_change, pred_a, pred_b, pred_change: pred_change.data })
    }
}
