use changedet_raster::text::count;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};

use changedet_data::{Dataset, DatasetSpec};
use changedet_models::LoadedModel;
use changedet_train::Protocol;
use changedet_train::report::{ReportJob, write_report};

use crate::metrics::print_report;

/// Evaluate a checkpoint on a labelled split: one global confusion matrix over all pairs.
///
/// Metrics are those of the changed class (precision, recall, F1, IoU, OA, kappa) plus the
/// unchanged IoU and the two-class mean IoU, computed on whole images. A semantic change model
/// on a semantic change dataset (hiucd:, second:) is scored in every convention of
/// `changedet metrics` (binary, second, fromto, clearscd).
#[derive(Parser)]
pub struct Args {
    /// changedet checkpoint (written by `train`); the shipped default model when left out.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Dataset as NAME:PATH or a bare PATH.
    #[arg(long)]
    dataset: DatasetSpec,
    /// Split: a name (test: folder test/ or list/test.txt), `all`, or a .txt list of pair names.
    #[arg(long, default_value = "test")]
    split: String,
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
    let dataset = loaded.dataset_for(Dataset::open(&args.dataset, &args.split, true, args.ignore_value)?)?;
    let crate::default_model::Loaded { model, path: checkpoint, .. } = loaded;
    let model = model.with_precision(args.precision);
    model.prepare_for_inference();
    let page = args.report.as_ref().map(|dir| dir.join("index.html"));
    changedet_raster::atomic::check_replaceable(args.json.iter().chain(&page), args.overwrite).map_err(anyhow::Error::msg)?;
    changedet_train::warn_without_class_lists(&model.spec, &dataset);
    if let (Some(classes), true) = (dataset.semantic_classes, model.spec.is_semantic()) {
        if args.report.is_some() {
            anyhow::bail!("--report covers binary change so far; for a semantic change model leave it out (`changedet metrics --plot` charts its classes)");
        }
        return evaluate_semantic(&args, (&model, &checkpoint), &dataset, classes, device);
    }
    let confusion = match &args.report {
        Some(dir) => {
            let job = ReportJob {
                model: &model,
                dataset: &dataset,
                batch_size: args.batch_size,
                device,
                protocol: args.protocol,
                dir,
                checkpoint: &checkpoint,
                dataset_label: args.dataset.name(),
            };
            let (confusion, page) = write_report(&job)?;
            println!("report: {} (open it in a browser)", page.display());
            confusion
        }
        None => changedet_train::evaluate(&model, &dataset, args.batch_size, device, args.protocol)?,
    };
    let metrics = confusion.metrics();

    println!("{} on {} ({}, split '{}', protocol {})", model.spec.name(), args.dataset.root.display(), count(dataset.len() as u64, "pair"), args.split, args.protocol);
    println!("{:<15} {:>8}", "metric", "value");
    for (name, value) in metrics.rows() {
        println!("{name:<15} {:>8.4}", value);
    }
    println!("confusion: TP {}  FP {}  FN {}  TN {}", confusion.tp, confusion.fp, confusion.fn_, confusion.tn);
    write_json(&args, (&model, &checkpoint), &dataset, json!({ "convention": "binary", "metrics": metrics }))
}

/// Writes `--json`: what was evaluated, on what, and `results`.
fn write_json(args: &Args, (model, checkpoint): (&LoadedModel, &Path), dataset: &Dataset, results: Value) -> Result<()> {
    let Some(path) = &args.json else { return Ok(()) };
    let mut report = json!({
        "protocol": args.protocol.to_string(),
        "model": model.spec.name(),
        "checkpoint": checkpoint,
        "dataset": args.dataset.root,
        "split": args.split,
        "pairs": dataset.len(),
    });
    report.as_object_mut().expect("object").extend(results.as_object().cloned().unwrap_or_default());
    changedet_raster::atomic::write_bytes(path, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("{}: cannot write the JSON report", path.display()))?;
    println!("metrics written to {}", path.display());
    Ok(())
}

fn evaluate_semantic(args: &Args, (model, checkpoint): (&LoadedModel, &Path), dataset: &Dataset, classes: usize, device: tch::Device) -> Result<()> {
    let scores = changedet_train::evaluate_every_convention(model, dataset, classes, args.batch_size, device, args.protocol)?;
    println!("{} on {} ({}, split '{}', protocol {})", model.spec.name(), args.dataset.root.display(), count(dataset.len() as u64, "pair"), args.split, args.protocol);
    let results = print_report(&scores, |_| true, true)?;
    write_json(args, (model, checkpoint), dataset, json!({ "classes": classes, "conventions": Value::Object(results) }))
}
