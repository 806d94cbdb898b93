use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rayon::prelude::*;
use serde_json::{Value, json};

use changedet_data::semantic::second_class;
use changedet_data::LabelEncoding;
use changedet_metrics::{BinaryConfusion, ClearScdAccumulator, ScdAccumulator, ScdConvention, ScdMaps, ScdPair};
use changedet_raster::{Raster, read_gray, read_rgb};

/// Score prediction maps against ground-truth maps on disk, in the conventions papers use.
///
/// Files are matched by name (the extension may differ). Binary convention: each folder holds
/// change masks (or a change/ sub-folder). Semantic conventions: each folder holds A/ and B/
/// (class maps of the two dates) and change/ (change masks).
///
/// Encodings. Change masks: 0/1 or 0/255 (detected per folder); with --gt-encoding hiucd the
/// ground-truth mask is 0/1 with 255 = unlabelled. Class maps: predictions are indices 0..K−1;
/// ground truth is `hiucd` (indices 0..K−1, K = unlabelled: Hi-UCD after ClearSCD's
/// preparation) or `second` (SECOND's RGB palette, white = no change; its change/ folder may be
/// absent, the mask is then "not white").
///
/// Conventions: binary (changed-class P/R/F1/IoU/OA/kappa); second (Bi-SRNet/SCanNet: OA, mIoU,
/// SeK, Fscd, Score over both dates' maps); fromto (ChangeMamba/torchange: the same formulas on
/// one (K²+1)-class from-to matrix, plus mIoU over the from-to classes present); clearscd
/// (ClearSCD's test.py, quirks included); all.
#[derive(Parser)]
pub struct Args {
    #[arg(long)]
    pred: PathBuf,
    #[arg(long)]
    gt: PathBuf,
    #[arg(long, value_enum, default_value = "all")]
    convention: Convention,
    /// Number of land-cover classes (default: 9 for hiucd, 6 for second).
    #[arg(long)]
    classes: Option<usize>,
    #[arg(long, value_enum, default_value = "hiucd")]
    gt_encoding: GtEncoding,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw confusion-matrix and per-class IoU charts (PNG) into this folder.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Convention {
    Binary,
    Second,
    Fromto,
    Clearscd,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GtEncoding {
    Hiucd,
    Second,
}


const IMAGE_EXTENSIONS: [&str; 5] = ["png", "tif", "tiff", "jpg", "bmp"];

fn stem(path: &Path) -> Option<String> {
    path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
}

/// Image files of `dir` by stem.
fn files_by_stem(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the folder", dir.display()))?
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
        bail!("{}: no prediction for ground-truth map '{missing}'", pred.display());
    }
    if let Some(extra) = p.difference(&g).next() {
        bail!("{}: prediction '{extra}' has no ground-truth map in {}", pred.display(), gt.display());
    }
    if g.is_empty() {
        bail!("{}: no maps found", gt.display());
    }
    Ok(g.into_iter().collect())
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    IMAGE_EXTENSIONS
        .iter()
        .map(|e| dir.join(format!("{stem}.{e}")))
        .find(|p| p.is_file())
        .with_context(|| format!("{}: no map named '{stem}'", dir.display()))
}

fn same_size(a: &Raster, a_path: &Path, b: &Raster, b_path: &Path) -> Result<()> {
    if a.size() != b.size() {
        bail!("{} is {}×{} but {} is {}×{}", a_path.display(), a.width, a.height, b_path.display(), b.width, b.height);
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
    Ok(LabelEncoding::detect(&values, None)?)
}

fn read_classes(path: &Path, classes: usize, max: u8, what: &str) -> Result<Raster> {
    let map = read_gray(path)?;
    let bad: BTreeSet<u8> = map.data.iter().copied().filter(|&v| v > max).collect();
    if !bad.is_empty() {
        bail!("{}: {what} values {:?} outside 0..={max} ({classes} classes)", path.display(), bad);
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
        bail!("{}: colours {:?} are not in the SECOND palette", path.display(), shown);
    }
    Ok(Raster::new(rgb.width, rgb.height, 1, data))
}

struct ScdInputs<'a> {
    pred: &'a Path,
    gt: &'a Path,
    classes: usize,
    encoding: GtEncoding,
    pred_change: LabelEncoding,
    gt_change: Option<LabelEncoding>,
}

impl ScdInputs<'_> {
    fn load(&self, stem: &str) -> Result<ScdPair> {
        let k = self.classes;
        let gt_date = |date: &str| -> Result<(Raster, PathBuf)> {
            let path = find(&self.gt.join(date), stem)?;
            let map = match self.encoding {
                GtEncoding::Hiucd => read_classes(&path, k, k as u8, "ground-truth class")?,
                GtEncoding::Second => read_second_rgb(&path)?,
            };
            Ok((map, path))
        };
        let (gt_a, gt_a_path) = gt_date("A")?;
        let (gt_b, gt_b_path) = gt_date("B")?;
        same_size(&gt_a, &gt_a_path, &gt_b, &gt_b_path)?;
        let gt_change = match self.gt_change {
            Some(encoding) => {
                let path = find(&self.gt.join("change"), stem)?;
                let ignore = (self.encoding == GtEncoding::Hiucd).then_some(255);
                let mask = read_change(&path, encoding, ignore)?;
                same_size(&gt_a, &gt_a_path, &mask, &path)?;
                mask.data
            }
            // SECOND without a change folder: changed wherever the label is not white.
            None => gt_a.data.iter().map(|&c| u8::from(c != k as u8)).collect(),
        };
        let pred_date = |date: &str| -> Result<Raster> {
            let path = find(&self.pred.join(date), stem)?;
            let map = read_classes(&path, k, k as u8 - 1, "predicted class")?;
            same_size(&gt_a, &gt_a_path, &map, &path)?;
            Ok(map)
        };
        let change_path = find(&self.pred.join("change"), stem)?;
        let pred_change = read_change(&change_path, self.pred_change, None)?;
        same_size(&gt_a, &gt_a_path, &pred_change, &change_path)?;
        let (pred_a, pred_b) = (pred_date("A")?.data, pred_date("B")?.data);
        Ok(ScdPair { gt_a: gt_a.data, gt_b: gt_b.data, gt_change, pred_a, pred_b, pred_change: pred_change.data })
    }
}

/// Every convention's accumulator, fed the same maps.
#[derive(Clone)]
pub struct Accumulators {
    binary: BinaryConfusion,
    second: ScdAccumulator,
    fromto: ScdAccumulator,
    clearscd: ClearScdAccumulator,
}

impl Accumulators {
    pub fn new(classes: usize) -> Self {
        Accumulators {
            binary: BinaryConfusion::default(),
            second: ScdAccumulator::new(ScdConvention::Second, classes),
            fromto: ScdAccumulator::new(ScdConvention::FromTo, classes),
            clearscd: ClearScdAccumulator::new(classes),
        }
    }

    /// One pair's semantic-change maps, into every convention.
    pub fn add(&mut self, maps: &ScdMaps) -> std::result::Result<(), changedet_metrics::MetricsError> {
        self.binary.accumulate(maps.pred_change, maps.gt_change, Some(255))?;
        self.second.add(maps)?;
        self.fromto.add(maps)?;
        self.clearscd.add(maps)
    }

    fn merge(mut self, other: Accumulators) -> Self {
        self.binary.merge(&other.binary);
        self.second.merge(&other.second);
        self.fromto.merge(&other.fromto);
        self.clearscd.merge(&other.clearscd);
        self
    }
}

fn binary_dir(dir: &Path) -> PathBuf {
    if dir.join("change").is_dir() { dir.join("change") } else { dir.to_owned() }
}

pub fn run(args: Args) -> Result<()> {
    let wants = |c: Convention| args.convention == c || args.convention == Convention::All;
    let semantic = [Convention::Second, Convention::Fromto, Convention::Clearscd].into_iter().any(wants);
    let classes = args.classes.unwrap_or(match args.gt_encoding {
        GtEncoding::Hiucd => 9,
        GtEncoding::Second => 6,
    });
    if !(2..=254).contains(&classes) {
        bail!("--classes must be between 2 and 254");
    }
    let gt_change_dir = args.gt.join("change");
    let (stems, report) = if semantic {
        let stems = match_files(&args.pred.join("A"), &args.gt.join("A"))?;
        for sub in ["B", "change"] {
            match_files(&args.pred.join(sub), &args.gt.join("A"))?;
        }
        let inputs = ScdInputs {
            pred: &args.pred,
            gt: &args.gt,
            classes,
            encoding: args.gt_encoding,
            pred_change: detect_change_encoding(&args.pred.join("change"), &stems)?,
            gt_change: match args.gt_encoding {
                GtEncoding::Hiucd => Some(LabelEncoding::ZeroOne),
                GtEncoding::Second if gt_change_dir.is_dir() => Some(detect_change_encoding(&gt_change_dir, &stems)?),
                GtEncoding::Second => None,
            },
        };
        let acc = stems
            .par_iter()
            .map(|stem| -> Result<Accumulators> {
                let m = inputs.load(stem)?;
                let mut acc = Accumulators::new(classes);
                acc.add(&m.maps()).map_err(|e| anyhow::anyhow!("pair '{stem}': {e}"))?;
                Ok(acc)
            })
            .try_reduce(|| Accumulators::new(classes), |a, b| Ok(a.merge(b)))?;
        (stems, acc)
    } else {
        let (pred_dir, gt_dir) = (binary_dir(&args.pred), binary_dir(&args.gt));
        let stems = match_files(&pred_dir, &gt_dir)?;
        let (pred_encoding, gt_encoding) = (detect_change_encoding(&pred_dir, &stems)?, detect_change_encoding(&gt_dir, &stems)?);
        let binary = stems
            .par_iter()
            .map(|stem| -> Result<BinaryConfusion> {
                let (p_path, g_path) = (find(&pred_dir, stem)?, find(&gt_dir, stem)?);
                let (p, g) = (read_change(&p_path, pred_encoding, None)?, read_change(&g_path, gt_encoding, None)?);
                same_size(&p, &p_path, &g, &g_path)?;
                let mut c = BinaryConfusion::default();
                c.accumulate(&p.data, &g.data, None).map_err(|e| anyhow::anyhow!("{}: {e}", p_path.display()))?;
                Ok(c)
            })
            .try_reduce(BinaryConfusion::default, |mut a, b| {
                a.merge(&b);
                Ok(a)
            })?;
        (stems, Accumulators { binary, ..Accumulators::new(classes) })
    };

    println!("{} pairs: predictions {} against ground truth {}", stems.len(), args.pred.display(), args.gt.display());
    let results = print_report(&report, wants, semantic)?;
    if let Some(path) = &args.json {
        let report = json!({ "pairs": stems.len(), "classes": classes, "conventions": Value::Object(results.clone()) });
        crate::predict::write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())
            .with_context(|| format!("{}: cannot write the JSON report", path.display()))?;
        println!("metrics written to {}", path.display());
    }
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the plot folder", dir.display()))?;
        if semantic {
            let q = report.second.metrics().confusion;
            let labels: Vec<String> = std::iter::once("no change".to_owned()).chain((0..classes).map(|c| format!("class {c}"))).collect();
            changedet_train::plot::plot_confusion(&q, &labels, "SECOND convention confusion (rows: ground truth)", &dir.join("confusion.png"))?;
            changedet_train::plot::plot_bars(&labels, &q.iou(), "per-class IoU (SECOND convention)", &dir.join("iou.png"))?;
        } else {
            let c = report.binary;
            let q = changedet_metrics::Confusion { n: 2, counts: vec![c.tn, c.fp, c.fn_, c.tp] };
            let labels = ["unchanged".to_owned(), "changed".to_owned()];
            changedet_train::plot::plot_confusion(&q, &labels, "binary confusion (rows: ground truth)", &dir.join("confusion.png"))?;
            changedet_train::plot::plot_bars(&labels, &q.iou(), "per-class IoU", &dir.join("iou.png"))?;
        }
        println!("charts written to {}", dir.display());
    }
    Ok(())
}

/// Prints the tables of the wanted conventions and returns them as JSON, by convention name.
pub fn print_report(report: &Accumulators, wants: impl Fn(Convention) -> bool, semantic: bool) -> Result<serde_json::Map<String, Value>> {
    let mut results = serde_json::Map::new();
    if wants(Convention::Binary) {
        let m = report.binary.metrics();
        print_table("binary (changed class; anchors §3.1)", m.rows().iter().map(|(k, v)| (k.to_string(), *v)));
        results.insert("binary".into(), serde_json::to_value(m)?);
    }
    for (convention, acc, label) in [
        (Convention::Second, &report.second, "second (Bi-SRNet/SCanNet: both dates' maps; OA = global, oa_mean_per_map = Bi-SRNet's)"),
        (Convention::Fromto, &report.fromto, "fromto (ChangeMamba/torchange: one from-to map per pair)"),
    ] {
        if wants(convention) && semantic {
            let m = acc.metrics();
            let rows = [
                ("oa", m.oa),
                ("oa_mean_per_map", m.oa_mean_per_map),
                ("miou", m.miou),
                ("iou_changed", m.iou_changed),
                ("iou_unchanged", m.iou_unchanged),
                ("kappa_n0", m.kappa_n0),
                ("sek", m.sek),
                ("fscd", m.fscd),
                ("score", m.score),
                ("miou_classes_present", m.miou_classes_present),
            ];
            print_table(label, rows.iter().map(|(k, v)| (k.to_string(), *v)));
            results.insert(serde_json::to_value(m.convention)?.as_str().unwrap_or_default().to_owned(), serde_json::to_value(&m)?);
        }
    }
    if wants(Convention::Clearscd) && semantic {
        let m = report.clearscd.metrics();
        print_table("clearscd (ClearSCD test.py, ×100 rounded as it prints)", m.printed.iter().cloned());
        if !m.guarded.is_empty() {
            println!("  (0 instead of the reference's NaN for: {})", m.guarded.join(", "));
        }
        results.insert("clearscd".into(), serde_json::to_value(&m)?);
    }
    Ok(results)
}

fn print_table(title: &str, rows: impl Iterator<Item = (String, f64)>) {
    println!("\n{title}");
    for (name, value) in rows {
        println!("  {name:<22} {value:>10.4}");
    }
}
