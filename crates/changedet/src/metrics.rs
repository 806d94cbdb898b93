use changedet_raster::text::count;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use changedet_data::map_scores::{GroundTruth, MapFolders, score_maps};
use changedet_metrics::EveryConvention;

/// Score prediction maps against ground-truth maps on disk, in the conventions papers use.
///
/// With --threshold, binary predictions are read from probability maps and cut there, so one
/// `predict` run can be scored at any threshold.
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
    /// Folder of predicted maps (`predict`'s NAME_change.png, or any 0/1 or 0/255 masks named
    /// like the ground truth; A/ and B/ class maps for semantic conventions).
    #[arg(long)]
    pred: PathBuf,
    /// Folder of ground-truth maps, matched to the predictions by file name.
    #[arg(long)]
    gt: PathBuf,
    #[arg(long, value_enum, default_value = "all")]
    convention: Convention,
    /// Number of land-cover classes (default: 9 for hiucd, 6 for second).
    #[arg(long)]
    classes: Option<usize>,
    #[arg(long, value_enum, default_value = "hiucd")]
    gt_encoding: GtEncoding,
    /// Binary: score the predictions' probability maps (`predict`'s NAME_probability.png, or gray
    /// maps of probability × 255) cut at this change probability, instead of their change masks.
    #[arg(long, value_parser = changedet_models::Decision::parse)]
    threshold: Option<f64>,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw confusion-matrix and per-class IoU charts (PNG) into this folder.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Replace an existing --json file or charts.
    #[arg(long)]
    overwrite: bool,
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

pub fn run(args: Args) -> Result<()> {
    let wants = |c: Convention| args.convention == c || args.convention == Convention::All;
    // `all` on binary maps (no A/ folder of class maps) means every binary convention.
    let semantic_asked = [Convention::Second, Convention::Fromto, Convention::Clearscd].contains(&args.convention);
    let semantic = semantic_asked || (args.convention == Convention::All && args.pred.join("A").is_dir());
    let classes = args.classes.unwrap_or(match args.gt_encoding {
        GtEncoding::Hiucd => 9,
        GtEncoding::Second => 6,
    });
    if !(2..=254).contains(&classes) {
        bail!("--classes must be between 2 and 254");
    }
    if semantic && args.threshold.is_some() {
        bail!("--threshold scores binary probability maps; semantic conventions score the class and change maps as they are");
    }
    let charts = args.plot.iter().flat_map(|dir| [dir.join("confusion.png"), dir.join("iou.png")]);
    changedet_raster::atomic::check_replaceable(args.json.iter().cloned().chain(charts), args.overwrite).map_err(anyhow::Error::msg)?;
    let ground_truth = match args.gt_encoding {
        GtEncoding::Hiucd => GroundTruth::Hiucd,
        GtEncoding::Second => GroundTruth::Second,
    };
    let (stems, report) = score_maps(&MapFolders { pred: &args.pred, gt: &args.gt, classes, ground_truth, semantic, threshold: args.threshold })?;
    println!("{}: predictions {} against ground truth {}", count(stems.len() as u64, "pair"), args.pred.display(), args.gt.display());
    let results = print_report(&report, wants, semantic)?;
    if let Some(path) = &args.json {
        let mut report = json!({ "pairs": stems.len(), "conventions": Value::Object(results.clone()) });
        if semantic {
            report["classes"] = json!(classes);
        }
        changedet_raster::atomic::write_bytes(path, serde_json::to_string_pretty(&report)?.as_bytes())
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
pub fn print_report(report: &EveryConvention, wants: impl Fn(Convention) -> bool, semantic: bool) -> Result<serde_json::Map<String, Value>> {
    let mut results = serde_json::Map::new();
    if wants(Convention::Binary) {
        let m = report.binary.metrics();
        print_table("binary (scores of the changed class; mIoU over both classes)", m.rows().iter().map(|(k, v)| (k.to_string(), *v)));
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
        let name = Convention::Clearscd.to_possible_value().expect("a visible convention").get_name().to_owned();
        results.insert(name, serde_json::to_value(&m)?);
    }
    Ok(results)
}

fn print_table(title: &str, rows: impl Iterator<Item = (String, f64)>) {
    println!("\n{title}");
    for (name, value) in rows {
        println!("  {name:<22} {value:>10.4}");
    }
}
