use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::class_lists::{self, ClassLists};
use crate::semantic::SemanticLabels;
use crate::{DataError, LabelEncoding, Result};

/// Extensions of the image files changedet reads as tiles, maps and labels, in the order a
/// file is looked for by its stem.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp"];

/// The folder names and label encoding of a published dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// LEVIR-CD, LEVIR-CD+, WHU-CD, DSIFN-CD and most re-distributions: `A/ B/ label/`.
    LevirCd,
    LevirCdPlus,
    WhuCd,
    DsifnCd,
    /// OSCD (Onera Satellite Change Detection) as RGB previews: `A/ B/ label/` PNGs named by
    /// city, 0/255 labels; the official splits `train`/`test` are `meta/train.txt`/`test.txt`
    /// (comma-separated city names).
    Oscd,
    /// SZTAKI AirChange: `A/ B/ label/` BMPs whose labels have a few stray grey pixels (changed
    /// where ≥ 128, as the benchmark's `> 127`).
    #[serde(rename = "airchange")]
    AirChange,
    /// SYSU-CD: `time1/ time2/ label/`.
    SysuCd,
    /// CDD (SVCD): `train|val|test/` each with `A/ B/ OUT/`, JPEG labels.
    Cdd,
    /// Any of the layouts above, found by looking at the folder names.
    Generic,
    /// Hi-UCD (mini) as ClearSCD's preparation (or `changedet prepare hiucd`) leaves it:
    /// `SPLIT/YEAR1_512/ SPLIT/YEAR2_512/ SPLIT/mask_512/`, RGB masks packing both dates' classes
    /// (0..8, 9 = unlabeled) and the change (0/1, 255 = unlabeled).
    Hiucd,
    /// SECOND: `SPLIT/im1/ im2/ label1/ label2/` with RGB palette labels (6 classes, white = no change).
    Second,
}

impl Preset {
    pub const NAMES: &'static str = "levir-cd, levir-cd-plus, whu-cd, dsifn-cd, oscd, airchange, sysu-cd, cdd, generic, hiucd, second";

    /// Land-cover classes of a semantic change dataset; `None` for binary change datasets.
    pub fn semantic_classes(self) -> Option<usize> {
        match self {
            Preset::Hiucd => Some(9),
            Preset::Second => Some(6),
            _ => None,
        }
    }

    /// (before, after, label) folder names this preset accepts, in the order they are tried.
    fn layouts(self) -> &'static [[&'static str; 3]] {
        const ABL: [&str; 3] = ["A", "B", "label"];
        const TIME: [&str; 3] = ["time1", "time2", "label"];
        const OUT: [&str; 3] = ["A", "B", "OUT"];
        match self {
            Preset::LevirCd | Preset::LevirCdPlus | Preset::WhuCd | Preset::DsifnCd | Preset::Oscd | Preset::AirChange => &[ABL],
            Preset::SysuCd => &[TIME],
            Preset::Cdd => &[OUT],
            Preset::Generic => &[ABL, TIME, OUT],
            Preset::Hiucd | Preset::Second => &[],
        }
    }

    /// The encoding a preset fixes, or `None` to detect it from the label values.
    fn encoding(self) -> Option<LabelEncoding> {
        match self {
            Preset::Cdd | Preset::AirChange => Some(LabelEncoding::Threshold128),
            _ => None,
        }
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "levir-cd" | "levir" => Preset::LevirCd,
            "levir-cd-plus" | "levir-cd+" => Preset::LevirCdPlus,
            "whu-cd" | "whu" => Preset::WhuCd,
            "dsifn-cd" | "dsifn" => Preset::DsifnCd,
            "oscd" => Preset::Oscd,
            "airchange" | "sztaki" | "sztaki-airchange" => Preset::AirChange,
            "sysu-cd" | "sysu" => Preset::SysuCd,
            "cdd" | "svcd" => Preset::Cdd,
            "generic" => Preset::Generic,
            "hiucd" | "hi-ucd" | "hiucd-mini" => Preset::Hiucd,
            "second" => Preset::Second,
            other => return Err(format!("unknown dataset preset '{other}' (known: {})", Preset::NAMES)),
        })
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        f.write_str(&name)
    }
}

impl DatasetSpec {
    /// A short name for titles: the root folder's, with the preset (`LEVIR-CD (levir-cd)`).
    pub fn name(&self) -> String {
        let folder = std::path::absolute(&self.root).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        format!("{} ({})", folder.unwrap_or_else(|| self.root.display().to_string()), self.preset)
    }
}

impl std::fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.preset, self.root.display())
    }
}

/// `NAME:PATH` (a preset and the dataset's root folder) or a bare `PATH` (generic layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    pub preset: Preset,
    pub root: PathBuf,
}

impl FromStr for DatasetSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((name, path)) if !name.contains('/') && !name.is_empty() => {
                Ok(DatasetSpec { preset: name.parse()?, root: PathBuf::from(path) })
            }
            _ => Ok(DatasetSpec { preset: Preset::Generic, root: PathBuf::from(s) }),
        }
    }
}

/// The files of one pair. `label` (binary change) and `semantic` are `None` for unlabelled
/// data (prediction only); semantic change datasets have `semantic`, which holds the change too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairPaths {
    pub name: String,
    pub before: PathBuf,
    pub after: PathBuf,
    pub label: Option<PathBuf>,
    pub semantic: Option<SemanticLabels>,
    /// How `label`'s pixel values encode change (pairs of one dataset share it; pairs of
    /// datasets joined for training keep their own).
    pub encoding: LabelEncoding,
    /// Class names of each date's image, most likely first (ChangeCLIP's prompts; empty when
    /// the dataset has no class-list files, see [`crate::class_lists`]).
    pub classes: [Vec<String>; 2],
    /// For dates stored as folders of Sentinel-2 band files (OSCD's archive): the bands read,
    /// in this order. `None`: `before` and `after` are 8-bit RGB image files.
    pub bands: Option<Vec<String>>,
}

impl PairPaths {
    /// Width and height of the first date (of its 10 m grid, for band folders).
    pub fn size(&self) -> Result<(u32, u32)> {
        crate::oscd::date_size(self, &self.before)
    }
}

/// The pairs of one split, validated: every file exists, the dates have the same size and the
/// labels decode under one encoding.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub pairs: Vec<PairPaths>,
    /// Raw label value that marks unlabelled pixels, if the dataset has one.
    pub ignore_value: Option<u8>,
    /// Land-cover classes, for semantic change datasets.
    pub semantic_classes: Option<usize>,
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `dir/name`, or `dir/<stem>.<ext>` for another image extension (CDD's labels are JPEG while
/// some re-distributions' images are PNG).
fn find_partner(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.is_file() {
        return Some(exact);
    }
    let stem = Path::new(name).file_stem()?.to_str()?;
    IMAGE_EXTENSIONS.iter().map(|ext| dir.join(format!("{stem}.{ext}"))).find(|p| p.is_file())
}

pub(crate) fn layout_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Layout { path: path.to_owned(), message: message.into() }
}

impl Dataset {
    /// Opens one split of a dataset.
    ///
    /// `split` is `all` (every pair under the root), a split name (`train`, `val`, `test`: a
    /// sub-folder of that name, or `list/<name>.txt`), or the path of a `.txt` file listing
    /// pair file names, one per line (only the first whitespace-separated field's file name is
    /// used, so the path lists some repositories ship also work).
    pub fn open(spec: &DatasetSpec, split: &str, require_labels: bool, ignore_value: Option<u8>) -> Result<Dataset> {
        let root = &spec.root;
        if !root.is_dir() {
            return Err(layout_error(root, "dataset folder not found"));
        }
        if let Some(classes) = spec.preset.semantic_classes() {
            return open_semantic(spec.preset, root, split, classes);
        }
        if spec.preset == Preset::Oscd && crate::oscd::is_archive(root) {
            return crate::oscd::open_archive(root, split, require_labels, ignore_value);
        }
        let (base, names) = resolve_split(root, split)?;
        let [before_dir, after_dir, label_dir] = find_layout(spec.preset, &base)?;
        let names = match names {
            Some(names) => names,
            None => image_names(&before_dir)?,
        };
        if names.is_empty() {
            return Err(layout_error(&before_dir, format!("no image pairs found for split '{split}'")));
        }
        let has_labels = label_dir.is_dir();
        if require_labels && !has_labels {
            return Err(layout_error(&label_dir, "label folder not found (this command needs labels)"));
        }
        let pairs = names
            .iter()
            .map(|name| {
                let missing = |dir: &Path, role| DataError::MissingFile { path: dir.join(name), role, name: name.clone() };
                Ok(PairPaths {
                    name: Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name).to_owned(),
                    before: find_partner(&before_dir, name).ok_or_else(|| missing(&before_dir, "before-date"))?,
                    after: find_partner(&after_dir, name).ok_or_else(|| missing(&after_dir, "after-date"))?,
                    label: if has_labels {
                        Some(find_partner(&label_dir, name).ok_or_else(|| missing(&label_dir, "label"))?)
                    } else {
                        None
                    },
                    semantic: None,
                    encoding: LabelEncoding::ZeroMax,
                    classes: Default::default(),
                    bands: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let mut dataset = Dataset::from_pairs(pairs, spec.preset.encoding(), ignore_value)?;
        dataset.attach_class_lists()?;
        Ok(dataset)
    }

    /// A dataset of explicitly given pairs, validated like a folder: sizes must agree, and the
    /// label encoding (set on every pair) is `encoding` or, when `None`, detected from the label
    /// values.
    pub fn from_pairs(mut pairs: Vec<PairPaths>, encoding: Option<LabelEncoding>, ignore_value: Option<u8>) -> Result<Dataset> {
        pairs.par_iter().try_for_each(check_sizes)?;
        let labels: Vec<&PathBuf> = pairs.iter().filter_map(|p| p.label.as_ref()).collect();
        let encoding = match encoding {
            Some(fixed) => fixed,
            None if !labels.is_empty() => {
                let values = labels
                    .par_iter()
                    .map(|&path| {
                        let label = changedet_raster::read_gray(path)?;
                        Ok((path.clone(), label.data.iter().copied().collect::<BTreeSet<u8>>()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                LabelEncoding::detect(&values, ignore_value)?
            }
            None => LabelEncoding::ZeroMax,
        };
        pairs.iter_mut().for_each(|p| p.encoding = encoding);
        Ok(Dataset { pairs, ignore_value, semantic_classes: None })
    }

    /// The pairs of several datasets as one (training on several domains). Each pair keeps its
    /// label encoding; the datasets must agree on the kind of labels and the ignored value.
    pub fn join(datasets: Vec<Dataset>) -> Result<Dataset> {
        let mut datasets = datasets.into_iter();
        let mut joined = datasets.next().ok_or_else(|| layout_error(Path::new("."), "no dataset to join"))?;
        for next in datasets {
            if next.semantic_classes != joined.semantic_classes || next.ignore_value != joined.ignore_value {
                let first = next.pairs.first().map(|p| p.before.clone()).unwrap_or_default();
                return Err(layout_error(&first, "cannot join the other datasets: binary and semantic change labels (or ignored values) differ"));
            }
            joined.pairs.extend(next.pairs);
        }
        Ok(joined)
    }

    /// Fraction of the labelled pixels that changed, over the whole split (the class weights of
    /// Daudt et al.'s recipe come from it).
    pub fn change_fraction(&self) -> Result<f64> {
        let (changed, labelled) = (0..self.len())
            .into_par_iter()
            .map(|i| {
                let label = crate::load_pair(self, i)?.label.map(|l| l.data).unwrap_or_default();
                let changed = label.iter().filter(|&&v| v == 1).count();
                Ok::<_, DataError>((changed, label.iter().filter(|&&v| v != crate::IGNORE).count()))
            })
            .try_reduce(|| (0, 0), |a, b| Ok((a.0 + b.0, a.1 + b.1)))?;
        if labelled == 0 {
            return Err(layout_error(self.pairs.first().map_or(Path::new("."), |p| p.before.as_path()), "the split has no labelled pixel"));
        }
        Ok(changed as f64 / labelled as f64)
    }

    /// The Sentinel-2 bands the pairs are read with, for datasets of band folders.
    pub fn bands(&self) -> Option<&[String]> {
        self.pairs.first().and_then(|p| p.bands.as_deref())
    }

    /// The same pairs read with `bands` (canonical Sentinel-2 names, in the model's order),
    /// checked to be in every date's folder. Only datasets of band folders have bands to choose.
    pub fn with_bands(mut self, bands: &[String]) -> Result<Dataset> {
        if self.bands().is_none() {
            let first = self.pairs.first().map(|p| p.before.clone()).unwrap_or_default();
            return Err(layout_error(&first, format!("the dataset's dates are image files, not folders of Sentinel-2 bands: bands {} cannot be chosen", bands.join(","))));
        }
        crate::oscd::check_bands(&self, bands)?;
        self.pairs.iter_mut().for_each(|p| p.bands = Some(bands.to_vec()));
        Ok(self)
    }

    /// The distinct label encodings of the pairs, for reports.
    pub fn encodings(&self) -> Vec<LabelEncoding> {
        let mut seen = Vec::new();
        for pair in &self.pairs {
            if !seen.contains(&pair.encoding) {
                seen.push(pair.encoding);
            }
        }
        seen
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn has_labels(&self) -> bool {
        self.pairs.first().is_some_and(|p| p.label.is_some() || p.semantic.is_some())
    }

    /// Whether any pair has class lists (from `*_clipcls_*.json` files beside its folders).
    pub fn has_class_lists(&self) -> bool {
        self.pairs.iter().any(|p| p.classes.iter().any(|c| !c.is_empty()))
    }

    /// Fills each pair's `classes` with the top classes of ChangeCLIP's class-list file beside
    /// its image folders (`<folder>_clipcls_56_vit16.json`), where one exists.
    pub fn attach_class_lists(&mut self) -> Result<()> {
        let mut lists: std::collections::HashMap<PathBuf, Option<ClassLists>> = Default::default();
        for pair in &mut self.pairs {
            for (date, image) in [&pair.before, &pair.after].into_iter().enumerate() {
                let Some(folder) = image.parent() else { continue };
                let list = match lists.entry(folder.to_owned()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let file = class_lists::json_path(folder, class_lists::DEFAULT_TAG);
                        e.insert(if file.is_file() { Some(ClassLists::read(&file)?) } else { None })
                    }
                };
                if let Some(top) = list.as_ref().and_then(|l| l.top(image, class_lists::PROMPT_CLASSES)) {
                    pair.classes[date] = top.to_vec();
                }
            }
        }
        Ok(())
    }
}

/// Image files of a folder, by file name, sorted. Image names that are no readable file (a
/// broken symbolic link, a loop of links) are left out with a warning naming them.
fn image_names(dir: &Path) -> Result<Vec<String>> {
    let (files, unreadable): (Vec<PathBuf>, Vec<PathBuf>) = fs::read_dir(dir)
        .map_err(|e| layout_error(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_image(p) && !p.is_dir())
        .partition(|p| p.is_file());
    if !unreadable.is_empty() {
        let names: Vec<String> = unreadable.iter().map(|p| p.display().to_string()).collect();
        tracing::warn!("skipped {} entries that are not readable files (broken or looping symbolic links): {}", names.len(), names.join(", "));
    }
    let mut names: Vec<String> = files.iter().filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned)).collect();
    names.sort();
    Ok(names)
}

/// A split of a semantic change dataset (see [`Preset::Hiucd`], [`Preset::Second`]).
fn open_semantic(preset: Preset, root: &Path, split: &str, classes: usize) -> Result<Dataset> {
    let base = if split == "all" { root.to_owned() } else { root.join(split) };
    if !base.is_dir() {
        return Err(layout_error(&base, format!("no split '{split}': expected the folder {split}/ (or 'all' for a root holding the layout itself)")));
    }
    let (before_dir, after_dir, label_dirs) = match preset {
        Preset::Hiucd => {
            let mut years: Vec<PathBuf> = fs::read_dir(&base)
                .map_err(|e| layout_error(&base, e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_512") && n != "mask_512"))
                .collect();
            years.sort();
            if years.len() != 2 {
                return Err(layout_error(&base, "expected two image folders YEAR_512/ (earlier year = before) and mask_512/, as ClearSCD's preparation and `changedet prepare hiucd` write them"));
            }
            (years[0].clone(), years[1].clone(), vec![base.join("mask_512")])
        }
        Preset::Second => (base.join("im1"), base.join("im2"), vec![base.join("label1"), base.join("label2")]),
        _ => unreachable!("only semantic presets"),
    };
    let has_labels = label_dirs.iter().all(|d| d.is_dir());
    let labels = |name: &str| match label_dirs.as_slice() {
        [packed] => SemanticLabels::Packed(packed.join(name)),
        [first, second] => SemanticLabels::Palette([first.join(name), second.join(name)]),
        _ => unreachable!("one or two label folders"),
    };
    if !before_dir.is_dir() || !after_dir.is_dir() {
        return Err(layout_error(&base, format!("expected the image folders {} and {}", before_dir.display(), after_dir.display())));
    }
    let names = image_names(&before_dir)?;
    if names.is_empty() {
        return Err(layout_error(&before_dir, format!("no image pairs found for split '{split}'")));
    }
    let pairs = names
        .iter()
        .map(|name| {
            let pair = PairPaths {
                name: Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name).to_owned(),
                before: before_dir.join(name),
                after: after_dir.join(name),
                label: None,
                semantic: has_labels.then(|| labels(name)),
                encoding: LabelEncoding::ZeroOne,
                classes: Default::default(),
                bands: None,
            };
            let files = [&pair.before, &pair.after].into_iter().chain(pair.semantic.iter().flat_map(SemanticLabels::paths));
            if let Some(missing) = files.into_iter().find(|p| !p.is_file()) {
                return Err(DataError::MissingFile { path: missing.clone(), role: "pair", name: name.clone() });
            }
            Ok(pair)
        })
        .collect::<Result<Vec<_>>>()?;
    pairs.par_iter().try_for_each(check_sizes)?;
    Ok(Dataset { pairs, ignore_value: None, semantic_classes: Some(classes) })
}

/// Every file of a pair has the first date's size; a second date of band folders is brought to
/// the first's grid when read (see [`crate::oscd`]), so only its bands' presence is checked.
pub(crate) fn check_sizes(pair: &PairPaths) -> Result<()> {
    let (bw, bh) = pair.size()?;
    let after = match pair.bands {
        Some(_) => crate::oscd::date_size(pair, &pair.after).map(|_| None)?,
        None => Some(&pair.after),
    };
    let semantic = pair.semantic.iter().flat_map(SemanticLabels::paths);
    for other in [after, pair.label.as_ref()].into_iter().flatten().chain(semantic) {
        let (ow, oh) = changedet_raster::dimensions(other)?;
        if (ow, oh) != (bw, bh) {
            return Err(DataError::SizeMismatch {
                name: pair.name.clone(),
                before: pair.before.clone(),
                bw,
                bh,
                other: other.clone(),
                ow,
                oh,
            });
        }
    }
    Ok(())
}

/// Where the split's pairs live and, for list-based splits, which file names belong to it.
fn resolve_split(root: &Path, split: &str) -> Result<(PathBuf, Option<Vec<String>>)> {
    if split.ends_with(".txt") {
        return Ok((root.to_owned(), Some(read_list(Path::new(split))?)));
    }
    if split == "all" {
        return Ok((root.to_owned(), None));
    }
    let folder = root.join(split);
    if folder.is_dir() {
        return Ok((folder, None));
    }
    let lists = ["list", "meta"].map(|folder| root.join(folder).join(format!("{split}.txt")));
    if let Some(list) = lists.iter().find(|l| l.is_file()) {
        return Ok((root.to_owned(), Some(read_list(list)?)));
    }
    Err(layout_error(
        root,
        format!(
            "no split '{split}': neither a folder {split}/ nor list/{split}.txt (or meta/{split}.txt) exists; \
             use 'all' for every pair, or the path of a .txt file listing pair names"
        ),
    ))
}

pub(crate) fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).map_err(|e| layout_error(path, format!("cannot read split list: {e}")))?;
    let names: Vec<String> = text
        .lines()
        .flat_map(|line| line.split(','))
        .filter_map(|field| field.split_whitespace().next())
        .filter_map(|field| Path::new(field).file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    if names.is_empty() {
        return Err(layout_error(path, "split list is empty"));
    }
    Ok(names)
}

fn find_layout(preset: Preset, base: &Path) -> Result<[PathBuf; 3]> {
    for [before, after, label] in preset.layouts() {
        if base.join(before).is_dir() && base.join(after).is_dir() {
            return Ok([base.join(before), base.join(after), base.join(label)]);
        }
    }
    let expected: Vec<String> = preset.layouts().iter().map(|[b, a, l]| format!("{b}/ {a}/ {l}/")).collect();
    Err(layout_error(base, format!("expected the folders {}", expected.join(" or "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32, value: u8) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        changedet_raster::write_gray_png(path, w, h, &vec![value; (w * h) as usize]).unwrap();
    }

    #[test]
    fn presets_and_specs_parse() {
        let spec: DatasetSpec = "sysu-cd:/data/SYSU".parse().unwrap();
        assert_eq!(spec, DatasetSpec { preset: Preset::SysuCd, root: "/data/SYSU".into() });
        let spec: DatasetSpec = "/data/x".parse().unwrap();
        assert_eq!(spec.preset, Preset::Generic);
        assert!("nope:/x".parse::<DatasetSpec>().unwrap_err().contains("known"));
    }

    #[test]
    fn split_folders_lists_and_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for split in ["train", "test"] {
            for sub in ["time1", "time2", "label"] {
                png(&root.join(split).join(sub).join("p1.png"), 4, 4, 0);
            }
        }
        let spec = DatasetSpec { preset: Preset::SysuCd, root: root.to_owned() };
        let ds = Dataset::open(&spec, "train", true, None).unwrap();
        assert_eq!(ds.pairs.len(), 1);
        assert!(ds.pairs[0].before.ends_with("train/time1/p1.png"));
        let err = Dataset::open(&spec, "val", true, None).unwrap_err().to_string();
        assert!(err.contains("no split 'val'"), "{err}");
        let levir = DatasetSpec { preset: Preset::LevirCd, root: root.join("train") };
        assert!(Dataset::open(&levir, "all", true, None).unwrap_err().to_string().contains("A/ B/ label/"));
    }

    #[test]
    fn list_splits_missing_files_and_size_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["a.png", "b.png"] {
            png(&root.join("A").join(name), 4, 4, 0);
            png(&root.join("B").join(name), 4, 4, 0);
            png(&root.join("label").join(name), 4, 4, 255);
        }
        fs::create_dir_all(root.join("list")).unwrap();
        fs::write(root.join("list/val.txt"), "b.png\n").unwrap();
        let spec = DatasetSpec { preset: Preset::LevirCd, root: root.to_owned() };
        let ds = Dataset::open(&spec, "val", true, None).unwrap();
        assert_eq!(ds.pairs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(ds.encodings(), [LabelEncoding::ZeroMax]);

        fs::remove_file(root.join("B/a.png")).unwrap();
        let err = Dataset::open(&spec, "all", true, None).unwrap_err().to_string();
        assert!(err.contains("B/a.png") && err.contains("after-date"), "{err}");
        png(&root.join("B/a.png"), 5, 4, 0);
        let err = Dataset::open(&spec, "all", true, None).unwrap_err().to_string();
        assert!(err.contains("5×4") && err.contains("A/a.png"), "{err}");
    }

    #[test]
    fn oscd_splits_airchange_labels_and_joined_datasets() {
        let dir = tempfile::tempdir().unwrap();
        let oscd = dir.path().join("oscd");
        for city in ["paris", "rennes", "nantes"] {
            for sub in ["A", "B", "label"] {
                png(&oscd.join(sub).join(format!("{city}.png")), 4, 4, 0);
            }
        }
        fs::create_dir_all(oscd.join("meta")).unwrap();
        fs::write(oscd.join("meta/train.txt"), "paris,rennes").unwrap();
        let spec = DatasetSpec { preset: "oscd".parse().unwrap(), root: oscd.clone() };
        let train = Dataset::open(&spec, "train", true, None).unwrap();
        assert_eq!(train.pairs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["paris", "rennes"]);

        // AirChange's labels have stray grey values: thresholded, not refused.
        let air = dir.path().join("air");
        for sub in ["A", "B"] {
            png(&air.join(sub).join("Szada_2.png"), 4, 4, 0);
        }
        png(&air.join("label/Szada_2.png"), 4, 4, 200);
        let spec = DatasetSpec { preset: "airchange".parse().unwrap(), root: air };
        let air = Dataset::open(&spec, "all", true, None).unwrap();
        assert_eq!(air.encodings(), [LabelEncoding::Threshold128]);
        assert_eq!(crate::load_pair(&air, 0).unwrap().label.unwrap().data, vec![1; 16]);

        let joined = Dataset::join(vec![train, air]).unwrap();
        assert_eq!(joined.len(), 3);
        assert_eq!(joined.encodings(), [LabelEncoding::ZeroMax, LabelEncoding::Threshold128], "each pair keeps its encoding");
        assert_eq!(crate::load_pair(&joined, 2).unwrap().label.unwrap().data, vec![1; 16]);
        assert!((joined.change_fraction().unwrap() - 16.0 / 48.0).abs() < 1e-12);
    }
}
