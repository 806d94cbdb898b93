use changedet_raster::text::count;
use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;

use changedet_data::maps::{MapSet, PairMaps};
use changedet_data::{Dataset, DatasetSpec, LabelEncoding, PairPaths};
use changedet_metrics::BinaryConfusion;
use changedet_models::{Decision, tensor_io};
use changedet_raster::progress::Progress;
use changedet_train::{Protocol, SplitOptions};
use changedet_train::report::{Report, ReportJob};
use changedet_raster::read_rgb;

/// Predict change maps for one pair of images or for a dataset split.
///
/// For every pair NAME it writes to --out: NAME_change.png (0 unchanged / 255 changed),
/// NAME_probability.png (change probability × 255) and NAME_overlay.png (changes in red on the
/// after image; with a label: true positives white, false positives red, false negatives blue).
/// Semantic change models (clearscd) also write NAME_before_classes.png and
/// NAME_after_classes.png (each date's land cover in the class palette: Hi-UCD's for 9 classes,
/// SECOND's for 6) and NAME_fromto.png (0 where unchanged, else 1 + K·from + to).
#[derive(Parser)]
pub struct Args {
    /// changedet checkpoint (written by `train`); the shipped default model when left out.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Before-date image or scene (with --after); a scene may be several files, comma-separated,
    /// stacked as bands in that order.
    #[arg(long, requires = "after", conflicts_with = "dataset", value_delimiter = ',')]
    before: Vec<PathBuf>,
    /// After-date image or scene (with --before).
    #[arg(long, requires = "before", value_delimiter = ',')]
    after: Vec<PathBuf>,
    /// Optional label of the pair, for the error overlay.
    #[arg(long, requires = "before")]
    label: Option<PathBuf>,
    /// Dataset as NAME:PATH, instead of --before/--after.
    #[arg(long, required_unless_present = "before")]
    dataset: Option<DatasetSpec>,
    /// Split of --dataset: a name, `all`, or a .txt list of pair names.
    #[arg(long, default_value = "test")]
    split: String,
    /// Output folder for the maps (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// Also write the model's raw full-resolution outputs for the pair (--before/--after) to
    /// this safetensors file: `logits` [1, 2, H, W]; semantic change models write `seg_A`,
    /// `seg_B` [1, K, H, W] (class scores of each date) and `BCD` [1, 1, H, W] (change log-odds).
    #[arg(long, requires = "before")]
    raw: Option<PathBuf>,
    /// ChangeCLIP: class names of the before image, comma-separated, for its prompt [default:
    /// the class-list file beside the image's folder, see `clip-classes`].
    #[arg(long, value_delimiter = ',', requires = "before")]
    classes_before: Vec<String>,
    /// ChangeCLIP: class names of the after image (by default the reference's inference uses
    /// the before image's; see the model's `after_prompt_from_before_at_inference`).
    #[arg(long, value_delimiter = ',', requires = "before")]
    classes_after: Vec<String>,
    /// How the model covers each image: whole, slide:CROP:STRIDE, levir-tiles or
    /// tiles:CROP:STRIDE:PAD (see `eval --help`).
    #[arg(long, default_value = "whole")]
    protocol: Protocol,
    /// Pairs per forward pass (they must share a size).
    #[arg(long, default_value_t = 1, value_parser = crate::values::at_least_one)]
    batch_size: usize,
    /// Change probability above which a pixel is changed [default: the checkpoint's threshold
    /// (`info` shows it), else 0.5, the argmax].
    #[arg(long, value_parser = changedet_models::Decision::parse)]
    threshold: Option<f64>,
    /// Raw label value of unlabelled pixels (for the error overlay).
    #[arg(long)]
    ignore_value: Option<u8>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic of the forward passes: fp32, or autocast to bf16 or fp16 (convolutions and
    /// matrix products in the lower precision, as torch.autocast runs them; scores within about
    /// 1 % of fp32's). bf16 and fp16 pay off on GPUs with tensor cores.
    #[arg(long, default_value = "fp32")]
    precision: changedet_models::Precision,
    /// Also write an HTML report to this folder: a sortable gallery of every pair (before, after,
    /// prediction; with labels also the truth, the errors, the scores and the threshold curves).
    /// Binary change models.
    #[arg(long, conflicts_with = "scene")]
    report: Option<PathBuf>,
    /// Replace existing outputs (maps, raw outputs, the report; for scenes the COGs and polygons).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    scene: crate::scene::SceneArgs,
}

pub fn run(args: Args) -> Result<()> {
    let device = crate::device::parse(&args.device)?;
    let scene = args.scene.applies(&args.before);
    check_options(&args, scene)?;
    let loaded = crate::default_model::load(args.checkpoint.as_deref(), device)?;
    let dataset = match &args.dataset {
        Some(spec) if !scene => Some(loaded.dataset_for(Dataset::open(spec, &args.split, false, args.ignore_value)?)?),
        _ => None,
    };
    let crate::default_model::Loaded { model, path: checkpoint, .. } = loaded;
    let model = model.with_precision(args.precision).with_threshold(args.threshold);
    model.prepare_for_inference();
    if scene {
        let classes = [args.classes_before.clone(), args.classes_after.clone()];
        return crate::scene::predict(&args.scene, &model, device, &args.before, &args.after, &args.out, args.batch_size, classes, args.overwrite);
    }
    let dataset = match (args.before.as_slice(), args.after.as_slice(), dataset) {
        ([before], [after], _) => {
            let name = before.file_stem().and_then(|s| s.to_str()).unwrap_or("pair").to_owned();
            let pair = PairPaths { name, before: before.clone(), after: after.clone(), label: args.label.clone(), semantic: None, encoding: LabelEncoding::ZeroMax, classes: Default::default(), bands: None };
            let mut dataset = Dataset::from_pairs(vec![pair], None, args.ignore_value)?;
            dataset.attach_class_lists()?;
            for (date, given) in [&args.classes_before, &args.classes_after].into_iter().enumerate() {
                if !given.is_empty() {
                    dataset.pairs[0].classes[date] = given.iter().map(|c| c.trim().to_owned()).collect();
                }
            }
            dataset
        }
        (_, _, Some(dataset)) => dataset,
        _ => bail!("give either --before and --after (one image each), or --dataset"),
    };
    changedet_train::warn_without_class_lists(&model.spec, &dataset);
    let page = args.report.as_ref().map(|dir| dir.join("index.html"));
    let existing = dataset.pairs.iter().map(|p| args.out.join(format!("{}_change.png", p.name))).chain(args.raw.clone()).chain(page);
    changedet_raster::atomic::check_replaceable(existing, args.overwrite).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create the output folder", args.out.display()))?;
    let paths: HashMap<String, PathBuf> = dataset.pairs.iter().map(|p| (p.name.clone(), p.after.clone())).collect();
    let map_set = MapSet::new(model.spec.semantic_classes()).map_err(anyhow::Error::msg)?;

    if args.report.is_some() && model.spec.is_semantic() {
        bail!("--report covers binary change so far; for a semantic change model leave it out");
    }
    let options = SplitOptions { batch_size: args.batch_size, device, protocol: args.protocol };
    let report_job = args.report.as_deref().map(|dir| ReportJob {
        model: &model,
        dataset: &dataset,
        options,
        dir,
        checkpoint: &checkpoint,
        dataset_label: args.dataset.as_ref().map_or_else(|| "one pair".to_owned(), DatasetSpec::name),
    });
    let mut report = report_job.as_ref().map(Report::new).transpose()?;

    let mut changed_pixels = 0usize;
    let mut written = 0usize;
    let mut scored: Option<BinaryConfusion> = None;
    let progress = Progress::counting(dataset.len() as u64, "predict", "pairs", true);
    changedet_train::predict_dataset::<anyhow::Error>(&model, &dataset, options, &progress, |p| {
        changed_pixels += p.change.iter().filter(|&&c| c != 0).count();
        if let Some(label) = &p.label {
            scored.get_or_insert_default().accumulate(&p.change, label, Some(changedet_data::IGNORE)).map_err(|e| anyhow::anyhow!("{}: {e}", p.name))?;
        }
        if let Some(report) = &mut report {
            report.add(&p)?;
        }
        let after = read_rgb(&paths[&p.name])?;
        let overlay = match &p.label {
            Some(label) => changedet_raster::overlay_errors(&after, &p.change, label),
            None => changedet_raster::overlay_change(&after, &p.change),
        };
        let maps = PairMaps {
            width: p.width as u32,
            height: p.height as u32,
            change: &p.change,
            probability: &p.probability,
            classes: p.semantic.as_ref().map(|[before, after]| [before.classes.as_slice(), after.classes.as_slice()]),
            overlay: &overlay,
        };
        map_set.write_pair_pngs(&args.out, &p.name, &maps)?;
        if let Some(raw) = &args.raw {
            let logits = p.logits.unsqueeze(0);
            let tensors = match &p.semantic {
                Some([before, after]) => vec![
                    ("seg_A".to_owned(), before.logits.unsqueeze(0)),
                    ("seg_B".to_owned(), after.logits.unsqueeze(0)),
                    ("BCD".to_owned(), (logits.narrow(1, 1, 1) - logits.narrow(1, 0, 1))),
                ],
                None => vec![("logits".to_owned(), logits)],
            };
            let metadata = HashMap::from([("model".to_owned(), model.spec.name().to_owned())]);
            tensor_io::write(raw, tensors.iter().map(|(k, t)| (k.clone(), t)), metadata)?;
        }
        written += 1;
        Ok(())
    })?;
    progress.finish();
    let threshold = Decision::describe(model.decision.as_ref());
    println!("{} predicted, {} changed at threshold {threshold}; maps in {}", count(written as u64, "pair"), count(changed_pixels as u64, "pixel"), args.out.display());
    if let Some(confusion) = scored {
        let m = confusion.metrics();
        println!("against the labels: precision {:.4}, recall {:.4}, F1 {:.4}, IoU {:.4} (TP {}, FP {}, FN {})", m.precision, m.recall, m.f1, m.iou, confusion.tp, confusion.fp, confusion.fn_);
    }
    if let Some(report) = report {
        println!("report: {} (open it in a browser)", report.finish()?.1.display());
    }
    if let Some(raw) = &args.raw {
        println!("raw outputs in {}", raw.display());
    }
    Ok(())
}

/// Refuses options of pairs on scenes and of scenes on pairs, rather than ignoring them.
fn check_options(args: &Args, scene: bool) -> Result<()> {
    if scene {
        let pair_only = [(args.label.is_some(), "--label"), (args.raw.is_some(), "--raw"), (args.protocol != Protocol::Whole, "--protocol"), (args.ignore_value.is_some(), "--ignore-value")];
        if let Some((_, option)) = pair_only.iter().find(|(given, _)| *given) {
            bail!("{option} applies to image pairs, not to georeferenced scenes (which are covered by blended tiles: --tile, --overlap)");
        }
    } else if !args.scene.is_default() {
        bail!("the scene options (--tile, --bands, --vector...) apply to georeferenced scenes; add --scene to read these images as one");
    }
    Ok(())
}
