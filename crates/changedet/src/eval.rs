use changedet_raster::text::count;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};

use changedet_data::{Dataset, DatasetSpec};
use changedet_models::{Checkpoint, Decision, LoadedModel};
use changedet_raster::progress::Progress;
use changedet_train::{Protocol, SplitOptions};
use changedet_train::threshold::ThresholdCurve;
use changedet_train::report::{ReportJob, write_report};

use crate::metrics::print_report;

/// Evaluate a checkpoint on a labelled split: one global confusion matrix over all pairs.
///
/// Metrics are those of the changed class (precision, recall, F1, IoU, OA, kappa) plus the
/// unchanged IoU and the two-class mean IoU, computed on whole images. A semantic change model
/// on a semantic change dataset (hiucd:, second:) is scored in every convention of
/// `changedet metrics` (binary, second, fromto, clearscd). Several --dataset options are scored
/// as one split (a model trained on several domains, validated on all of them).
///
/// A pixel is changed where its change probability exceeds the threshold: --threshold, else the
/// checkpoint's own (`info` shows it), else 0.5 (the argmax). --choose-threshold picks the
/// threshold with the best F1 on the split and writes a copy of the checkpoint that carries it:
/// choose on a validation split, never on the test split you report.
#[derive(Parser)]
pub struct Args {
    /// changedet checkpoint (written by `train`); the shipped default model when left out.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Dataset as NAME:PATH or a bare PATH; repeat it to score several datasets as one split.
    #[arg(long, required = true)]
    dataset: Vec<DatasetSpec>,
    /// Split: a name (test: folder test/ or list/test.txt), `all`, or a .txt list of pair names;
    /// one for every --dataset, or one per --dataset in the same order.
    #[arg(long, default_value = "test")]
    split: Vec<String>,
    /// Change probability above which a pixel is changed [default: the checkpoint's threshold,
    /// else 0.5, the argmax].
    #[arg(long, value_parser = changedet_models::Decision::parse)]
    threshold: Option<f64>,
    /// Choose the threshold with the best F1 on this split (binary change, whole or slide
    /// protocol) and write the checkpoint with it, without optimiser state, to this file;
    /// `predict` and `eval` then use it by default. Refused on a split named test.
    #[arg(long, conflicts_with = "threshold")]
    choose_threshold: Option<PathBuf>,
    /// Pairs per forward pass (they must share a size).
    #[arg(long, default_value_t = 1, value_parser = crate::values::at_least_one)]
    batch_size: usize,
    /// Raw label value of unlabelled pixels.
    #[arg(long)]
    ignore_value: Option<u8>,
    /// How the model covers each image: whole, slide:CROP:STRIDE (logits averaged over
    /// overlapping windows; ChangeCLIP's slide:256:128), levir-tiles (ChangeCLIP's LEVIR-CD
    /// evaluation: reflect-pad 96, 256 tiles every 192, OR-merged) or tiles:CROP:STRIDE:PAD.
    #[arg(long, default_value = "whole")]
    protocol: Protocol,
    /// Also write the metrics as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write an HTML report to this folder: metrics, confusion, precision–recall and F1
    /// against the threshold, a sortable gallery of every pair with its errors, and the training
    /// curves of the checkpoint's run. It opens from disk in any browser (DIR/index.html).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Replace an existing --json file or --report page.
    #[arg(long)]
    overwrite: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic of the forward passes: fp32, or autocast to bf16 or fp16 (convolutions and
    /// matrix products in the lower precision, as torch.autocast runs them; scores within about
    /// 1 % of fp32's). bf16 and fp16 pay off on GPUs with tensor cores.
    #[arg(long, default_value = "fp32")]
    precision: changedet_models::Precision,
}

pub fn run(args: Args) -> Result<()> {
    let device = crate::device::parse(&args.device)?;
    let loaded = crate::default_model::load(args.checkpoint.as_deref(), device)?;
    let dataset = loaded.dataset_for(changedet_train::open_splits(&args.dataset, &args.split, "--split", args.ignore_value, None)?)?;
    let crate::default_model::Loaded { model, path: checkpoint, .. } = loaded;
    let model = model.with_precision(args.precision).with_threshold(args.threshold);
    model.prepare_for_inference();
    let page = args.report.as_ref().map(|dir| dir.join("index.html"));
    let outputs = args.json.iter().chain(&page).chain(&args.choose_threshold);
    changedet_raster::atomic::check_replaceable(outputs, args.overwrite).map_err(anyhow::Error::msg)?;
    if args.choose_threshold.is_some() {
        check_choosing(&args, &model)?;
    }
    changedet_train::warn_without_class_lists(&model.spec, &dataset);
    if let (Some(classes), true) = (dataset.semantic_classes, model.spec.is_semantic()) {
        if args.report.is_some() {
            anyhow::bail!("--report covers binary change so far; for a semantic change model leave it out (`changedet metrics --plot` charts its classes)");
        }
        return evaluate_semantic(&args, (&model, &checkpoint), &dataset, classes, device);
    }
    let options = SplitOptions { batch_size: args.batch_size, device, protocol: args.protocol };
    let progress = Progress::counting(dataset.len() as u64, "eval", "pairs", true);
    let confusion = match &args.report {
        Some(dir) => {
            let job = ReportJob {
                model: &model,
                dataset: &dataset,
                options,
                dir,
                checkpoint: &checkpoint,
                dataset_label: names(&args.dataset, |d| d.name()),
            };
            let (confusion, page) = write_report(&job, &progress)?;
            println!("report: {} (open it in a browser)", page.display());
            (confusion, None)
        }
        None => {
            let (confusion, curve) = changedet_train::evaluate_with_curve(&model, &dataset, options, &progress)?;
            (confusion, Some(curve))
        }
    };
    progress.finish();
    let (confusion, curve) = confusion;
    let metrics = confusion.metrics();

    println!("{}", heading(&args, &model, &dataset));
    println!("{:<15} {:>8}", "metric", "value");
    for (name, value) in metrics.rows() {
        println!("{name:<15} {:>8.4}", value);
    }
    println!("confusion: TP {}  FP {}  FN {}  TN {}", confusion.tp, confusion.fp, confusion.fn_, confusion.tn);
    write_json(&args, (&model, &checkpoint), &dataset, json!({ "convention": "binary", "threshold": model.threshold(), "metrics": metrics }))?;
    match (&args.choose_threshold, curve) {
        (Some(out), Some(curve)) => write_chosen_threshold(&args, &checkpoint, &curve, out),
        _ => Ok(()),
    }
}

/// What was evaluated, how, for the printed heading.
fn heading(args: &Args, model: &LoadedModel, dataset: &Dataset) -> String {
    let roots = names(&args.dataset, |d| d.root.display().to_string());
    let (pairs, splits, threshold) = (count(dataset.len() as u64, "pair"), args.split.join("', '"), Decision::describe(model.decision.as_ref()));
    format!("{} on {roots} ({pairs}, split '{splits}', protocol {}, threshold {threshold})", model.spec.name(), args.protocol)
}

fn names(datasets: &[DatasetSpec], name: impl Fn(&DatasetSpec) -> String) -> String {
    datasets.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// A threshold is chosen for a binary change map that is the probability cut, on a split that
/// is not a test split.
fn check_choosing(args: &Args, model: &LoadedModel) -> Result<()> {
    if model.spec.is_semantic() || args.report.is_some() {
        anyhow::bail!("--choose-threshold works on binary change models, without --report");
    }
    if matches!(args.protocol, Protocol::Tiles { .. }) {
        anyhow::bail!("--choose-threshold: under protocol {} a pixel is changed when any tile says so, which no single probability threshold reproduces; use whole or slide", args.protocol);
    }
    if let Some(split) = args.split.iter().find(|s| Path::new(s).file_stem().is_some_and(|stem| stem.to_string_lossy().to_lowercase().contains("test"))) {
        anyhow::bail!("--choose-threshold: split '{split}' looks like a test split; choose the threshold on a validation split, so that test scores stay honest");
    }
    Ok(())
}

/// Writes the checkpoint again with the best-F1 threshold of `curve`, saying what it gains.
fn write_chosen_threshold(args: &Args, checkpoint: &Path, curve: &ThresholdCurve, out: &Path) -> Result<()> {
    let best = curve.best_f1().context("--choose-threshold: no labelled changed pixel in the split, so no threshold can be chosen")?;
    let at_half = curve.at(Decision::ARGMAX).map_or(0.0, |p| p.f1);
    let short = |path: &Path| path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
    let splits = args.dataset.iter().enumerate().map(|(i, d)| format!("{}/{}", short(&d.root), short(Path::new(&args.split[i.min(args.split.len() - 1)]))));
    let chosen_on = format!("{}: F1 {:.4}, against {at_half:.4} at 0.5", splits.collect::<Vec<_>>().join(", "), best.f1);
    let stored = Checkpoint::read(checkpoint)?;
    let mut model = stored.load_model(checkpoint, tch::Device::Cpu)?;
    model.decision = Some(Decision { threshold: best.threshold, chosen_on: Some(chosen_on) });
    Checkpoint::write(out, &model, &[], stored.training.as_ref()).with_context(|| format!("{}: cannot write the checkpoint", out.display()))?;
    println!(
        "threshold {:.4}: F1 {:.4} on this split (precision {:.4}, recall {:.4}), against {at_half:.4} at 0.5; {} carries it",
        best.threshold,
        best.f1,
        best.precision,
        best.recall,
        out.display()
    );
    Ok(())
}

/// Writes `--json`: what was evaluated, on what, and `results`.
fn write_json(args: &Args, (model, checkpoint): (&LoadedModel, &Path), dataset: &Dataset, results: Value) -> Result<()> {
    let Some(path) = &args.json else { return Ok(()) };
    let one_or_all = |values: Vec<Value>| if values.len() == 1 { values[0].clone() } else { Value::Array(values) };
    let mut report = json!({
        "protocol": args.protocol.to_string(),
        "model": model.spec.name(),
        "checkpoint": checkpoint,
        "dataset": one_or_all(args.dataset.iter().map(|d| json!(d.root)).collect()),
        "split": one_or_all(args.split.iter().map(|s| json!(s)).collect()),
        "pairs": dataset.len(),
    });
    report.as_object_mut().expect("object").extend(results.as_object().cloned().unwrap_or_default());
    changedet_raster::atomic::write_bytes(path, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("{}: cannot write the JSON report", path.display()))?;
    println!("metrics written to {}", path.display());
    Ok(())
}

fn evaluate_semantic(args: &Args, (model, checkpoint): (&LoadedModel, &Path), dataset: &Dataset, classes: usize, device: tch::Device) -> Result<()> {
    let options = SplitOptions { batch_size: args.batch_size, device, protocol: args.protocol };
    let progress = Progress::counting(dataset.len() as u64, "eval", "pairs", true);
    let scores = changedet_train::evaluate_every_convention(model, dataset, classes, options, &progress)?;
    progress.finish();
    println!("{}", heading(args, model, dataset));
    let results = print_report(&scores, |_| true, true)?;
    write_json(args, (model, checkpoint), dataset, json!({ "classes": classes, "conventions": Value::Object(results) }))
}
