use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use changedet_data::{Dataset, DatasetSpec, PatchGrid};
use changedet_models::recipe::{BestMetric, LossKind, OptimizerKind, Schedule};
use changedet_models::{Checkpoint, ModelSpec, Recipe};
use changedet_train::{Sources, TrainJob, TrainingState};

/// Train a model; writes last/best checkpoints, metrics.jsonl and curves.png to --out.
///
/// Validation runs on whole images after every epoch (or every --val-every steps);
/// `best.safetensors` is the validation with the highest --best-by score (F1 of the changed class
/// or mIoU). --iterations sets a step budget instead of epochs. `--resume` continues an interrupted run from
/// `OUT/last.safetensors` with its own recipe, weights, optimiser state and data order.
///
/// Several --dataset options train on all of them together (each with its own label encoding);
/// each --train-split/--val-split then belongs to the --dataset at the same position, or a single
/// one applies to all.
///
/// Options left out take the model's reference recipe: fc-siam-diff (also fc-ef, fc-siam-conc)
/// Daudt et al.'s: 50 epochs of batch 32 over 96×96 patches every 47 px, Adam lr 1e-3, L2 1e-4,
/// step:1:0.95, class-weighted-ce, flips and 90° turns, each image z-scored; clearscd (on hiucd:/second: datasets, with its SACL and
/// BSCC losses, --loss clearscd) 100 epochs, batch 8, crop 512, Adam lr 2.5e-4, L2 5e-4, step:10:0.9;
/// changeclip-rn50/-vit 20000 iterations of batch 40 (ViT 24), validation every 1000 (WHU-CD,
/// SYSU-CD 500, CDD 2000) keeping the best mIoU, crop 256, AdamW lr 1e-4 (SYSU-CD 3e-5; ViT also
/// on LEVIR-CD+ and WHU-CD), decay 0.01 (none on norms and relative-position tables),
/// warmup-linear:1500, ce-all-pixels, flips, ±180° rotation, photometric distortion per date
/// (start it from CLIP weights with --clip).
#[derive(Parser)]
pub struct Args {
    /// Model to train (fc-ef, fc-siam-conc, fc-siam-diff, clearscd, changeclip-rn50,
    /// changeclip-vit; `changedet info --models` describes them).
    #[arg(long, default_value = changedet_models::DEFAULT_MODEL)]
    model: String,
    /// JSON object overriding fields of the model's configuration, e.g. '{"dropout":0.1}'.
    #[arg(long)]
    model_config: Option<String>,
    /// Dataset as NAME:PATH (e.g. levir-cd:/data/LEVIR-CD) or a bare PATH; repeat it to train
    /// on several datasets at once. With --resume, the run's own datasets, splits and bands are
    /// used when it is left out.
    #[arg(long, required_unless_present = "resume")]
    dataset: Vec<DatasetSpec>,
    /// Training split: a name (train: folder train/, list/train.txt or meta/train.txt), `all`,
    /// or a .txt list of pair names (one per line or comma-separated); one per --dataset, or one for all.
    #[arg(long, default_value = "train")]
    train_split: Vec<String>,
    /// Validation split, as --train-split.
    #[arg(long, default_value = "val")]
    val_split: Vec<String>,
    /// Sentinel-2 bands to train on, for datasets of band folders (OSCD's archive): names in
    /// the model's order (B04,B03,B02 by default), or `all` (the 13 bands in Daudt et al.'s
    /// order); set the model's in_channels to their number. The checkpoint records them.
    #[arg(long, value_parser = crate::values::sentinel2_bands)]
    bands: Option<crate::values::Bands>,
    /// Output folder for checkpoints, the metrics log and the plot.
    #[arg(long)]
    out: PathBuf,
    /// Epochs to train [default: the model's recipe]. With --resume, more epochs than the run
    /// had extend it (epoch-based runs with a constant or step schedule).
    #[arg(long, value_parser = crate::values::at_least_one)]
    epochs: Option<usize>,
    /// Train for this many optimiser steps instead of a number of epochs.
    #[arg(long, conflicts_with = "epochs", value_parser = crate::values::at_least_one)]
    iterations: Option<usize>,
    /// Validate every this many steps instead of after every epoch.
    #[arg(long, value_parser = crate::values::at_least_one)]
    val_every: Option<usize>,
    /// Validation score that picks best.safetensors: f1 (changed class), miou, or for semantic
    /// change models sek or score (SECOND convention).
    #[arg(long)]
    best_by: Option<BestMetric>,
    /// Pairs (or patches) per optimiser step [default: the model's recipe].
    #[arg(long, value_parser = crate::values::at_least_one)]
    batch_size: Option<usize>,
    /// Random square training crop in pixels; 0 trains on whole images.
    #[arg(long)]
    crop: Option<u32>,
    /// Train on the fixed patches of a grid, SIDE:STRIDE (e.g. 96:47), every patch once per
    /// epoch, instead of one random crop per pair.
    #[arg(long, conflicts_with = "crop")]
    patches: Option<PatchGrid>,
    /// Base learning rate [default: the model's recipe].
    #[arg(long)]
    lr: Option<f64>,
    /// Weight decay: L2 in the gradient for adam, decoupled for adamw [default: the model's recipe].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// adam (L2 in the gradient) or adamw (decoupled decay).
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// constant, step:EPOCHS:GAMMA, poly:POWER or warmup-linear:STEPS.
    #[arg(long)]
    schedule: Option<Schedule>,
    /// ce (two-class cross-entropy, mean over labelled pixels), ce-all-pixels (mean over all
    /// pixels, mmseg's default), bce-dice, class-weighted-ce (class weights from the training
    /// split's change fraction, Daudt et al.'s), or clearscd (ClearSCD's own objective, its only one).
    #[arg(long)]
    loss: Option<LossKind>,
    /// Disable the random flips and rotations (90° steps; also up to ±30° for clearscd).
    #[arg(long)]
    no_augment: bool,
    /// Seed of the initial weights, the data order and the augmentation [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Also save last.safetensors every N optimiser steps (0: at epoch ends only).
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Batch size for validation.
    #[arg(long, value_parser = crate::values::at_least_one)]
    eval_batch_size: Option<usize>,
    /// Raw label value of unlabelled pixels, left out of the loss and metrics.
    #[arg(long)]
    ignore_value: Option<u8>,
    /// Continue from OUT/last.safetensors, with the run's own recipe and data (options that
    /// would change them are refused; --epochs may extend it).
    #[arg(long)]
    resume: bool,
    /// Start over in an --out folder that holds a run, replacing its checkpoints and log.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Stop after this many optimiser steps, as a crash would: the checkpoints written until then
    /// (epoch ends, --checkpoint-every) stay, the steps since the last one are not saved; go on
    /// with --resume (time-boxed runs, crash tests).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Start from pretrained weights, for the models that have them: ChangeCLIP's image and text
    /// encoders from CLIP weights (OpenAI's RN50.pt or ViT-B-16.pt, or any layout
    /// `clip-classes` reads), as the reference does.
    #[arg(long, conflicts_with = "resume")]
    clip: Option<PathBuf>,
    /// Start from the weights of this changedet checkpoint (fine-tuning; the model, its
    /// configuration and, for options left out, the recipe it was trained with are the
    /// checkpoint's, so --model and --model-config are not needed).
    #[arg(long, conflicts_with_all = ["resume", "clip", "model", "model_config"])]
    from: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic of the training steps and validation: fp32, or autocast to bf16 (convolutions
    /// and matrix products in bf16, losses and optimiser state in fp32). fp16 would need loss
    /// scaling, which changedet does not do.
    #[arg(long, default_value = "fp32", value_parser = crate::values::training_precision)]
    precision: changedet_models::Precision,
}

pub fn run(mut args: Args) -> Result<()> {
    if args.resume && args.dataset.is_empty() {
        use_recorded_sources(&mut args)?;
    }
    let device = crate::device::parse(&args.device)?;
    let overrides = args
        .model_config
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--model-config is not valid JSON")?;
    let from = args.from.as_ref().map(|path| Checkpoint::read(path).map(|c| (path, c))).transpose()?;
    let model = match &from {
        Some((_, checkpoint)) => checkpoint.spec.clone(),
        None => ModelSpec::new(&args.model, overrides)?,
    };
    let bands = args.bands.as_ref().map(|b| b.0.as_slice());
    let train = open_splits(&args.dataset, &args.train_split, "--train-split", args.ignore_value, bands)?;
    let val = open_splits(&args.dataset, &args.val_split, "--val-split", args.ignore_value, bands)?;
    warn_without_class_lists(&model, &train);
    let roots: Vec<String> = args.dataset.iter().map(|d| d.root.display().to_string()).collect();
    tracing::info!(
        "{}: {} training pairs ({}), {} validation pairs ({}), labels {}, device {}",
        roots.join(" + "),
        train.len(),
        args.train_split.join(" + "),
        val.len(),
        args.val_split.join(" + "),
        match train.semantic_classes {
            Some(k) => format!("semantic, {k} classes"),
            None => train.encodings().iter().map(ToString::to_string).collect::<Vec<_>>().join(" + "),
        },
        crate::device::name(device)
    );
    if args.resume {
        refuse_changes_on_resume(&args, &model)?;
    }
    let base = match from.as_ref().and_then(|(path, checkpoint)| recipe_of(path, checkpoint)) {
        Some(theirs) => theirs,
        None => model.reference_recipe(args.dataset[0].preset),
    };
    let recipe = recipe(&args, base);
    let split = |splits: &[String], i: usize| splits[i.min(splits.len() - 1)].clone();
    let data = (args.dataset.iter().enumerate())
        .map(|(i, spec)| format!("{spec} (train {}, validation {})", split(&args.train_split, i), split(&args.val_split, i)))
        .collect();
    let best_by = recipe.best_by;
    let sources = sources(&args);
    crate::interrupt::set_next_step(format!(
        "the run's checkpoints up to its last epoch end (or --checkpoint-every) are kept: go on with `changedet train --out {} --resume`",
        args.out.display()
    ));
    let summary = changedet_train::train(TrainJob {
        model,
        recipe,
        train,
        val,
        out_dir: args.out,
        device,
        precision: args.precision,
        resume: args.resume,
        overwrite: args.overwrite,
        max_steps: args.max_steps,
        progress: true,
        pretrained: args.clip,
        init: args.from,
        data,
        sources: Some(sources),
        extend_to_epochs: args.epochs.filter(|_| args.resume),
    })?;
    println!(
        "trained {} epochs ({} steps); best validation {} {:.4}",
        summary.epochs,
        summary.steps,
        best_by.name(),
        summary.best_score.unwrap_or(f64::NAN)
    );
    println!("checkpoints: {}", summary.out_dir.join(changedet_train::trainer::BEST).display());
    println!("             {}", summary.out_dir.join(changedet_train::trainer::LAST).display());
    println!("metrics log: {}", summary.out_dir.join(changedet_train::trainer::LOG).display());
    if let Some(plot) = summary.plot {
        println!("curves:      {}", plot.display());
    }
    Ok(())
}

/// The run's data as options it can be given again: dataset roots and split lists absolute.
fn sources(args: &Args) -> Sources {
    let absolute = |path: &std::path::Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let split = |s: &String| if s.ends_with(".txt") { absolute(std::path::Path::new(s)).display().to_string() } else { s.clone() };
    Sources {
        datasets: args.dataset.iter().map(|d| DatasetSpec { root: absolute(&d.root), ..d.clone() }.to_string()).collect(),
        train_splits: args.train_split.iter().map(split).collect(),
        val_splits: args.val_split.iter().map(split).collect(),
        ignore_value: args.ignore_value,
        bands: args.bands.as_ref().map(|b| b.0.clone()),
    }
}

/// `--resume` without `--dataset`: the model, datasets, splits, ignored value and bands the run
/// recorded.
fn use_recorded_sources(args: &mut Args) -> Result<()> {
    let path = args.out.join(changedet_train::trainer::LAST);
    let checkpoint = Checkpoint::read(&path)?;
    args.model = checkpoint.spec.name().to_owned();
    let state = checkpoint.training.map(serde_json::from_value::<TrainingState>).transpose()?;
    let sources = state.and_then(|s| s.sources).with_context(|| {
        format!("{} does not record its datasets (written before they were recorded): give --dataset and its splits again", path.display())
    })?;
    args.dataset = sources.datasets.iter().map(|d| d.parse().map_err(anyhow::Error::msg)).collect::<Result<_>>()?;
    (args.train_split, args.val_split, args.ignore_value) = (sources.train_splits, sources.val_splits, sources.ignore_value);
    args.bands = sources.bands.map(crate::values::Bands);
    tracing::info!("resuming on the run's own data: {}", args.dataset.iter().map(ToString::to_string).collect::<Vec<_>>().join(" + "));
    Ok(())
}

/// The split `splits` names of each dataset (one split for all, or one per dataset), joined.
fn open_splits(datasets: &[DatasetSpec], splits: &[String], option: &str, ignore_value: Option<u8>, bands: Option<&[String]>) -> Result<Dataset> {
    if splits.len() != 1 && splits.len() != datasets.len() {
        anyhow::bail!("{} {option} options for {} --dataset options: give one for all, or one per dataset", splits.len(), datasets.len());
    }
    let opened = datasets
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let dataset = Dataset::open(spec, &splits[i.min(splits.len() - 1)], true, ignore_value)?;
            match bands {
                Some(bands) => dataset.with_bands(bands),
                None => Ok(dataset),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dataset::join(opened)?)
}

/// Vision-language models prompt with each image's class names: without them the prompts fall
/// back to the bare prefix, as the reference does, which is worth a warning.
pub fn warn_without_class_lists(model: &ModelSpec, dataset: &Dataset) {
    if model.config().uses_class_lists() && !dataset.has_class_lists() {
        tracing::warn!(
            "no class lists for these images (FOLDER_clipcls_56_vit16.json beside the image folders; `changedet clip-classes` writes them): {}'s prompts fall back to the bare prefix",
            model.name()
        );
    }
}

/// The recipe a checkpoint was trained with, for fine-tuning it (`--from`): what worked for the
/// model is a better start than its reference recipe. Class weights are measured again on the
/// new training split.
fn recipe_of(path: &std::path::Path, checkpoint: &Checkpoint) -> Option<Recipe> {
    let state: TrainingState = serde_json::from_value(checkpoint.training.clone()?).ok()?;
    let mut recipe = state.recipe;
    recipe.loss = recipe.loss.unmeasured();
    tracing::info!(
        "fine-tuning with the recipe of {} (loss {}, lr {}, {} epochs, batch {}); options given here replace its values",
        path.display(),
        serde_json::to_string(&recipe.loss).unwrap_or_default(),
        recipe.lr,
        recipe.epochs,
        recipe.batch_size
    );
    Some(recipe)
}

/// The model's reference recipe with the options given on the command line.
fn recipe(args: &Args, reference: Recipe) -> Recipe {
    Recipe {
        epochs: args.epochs.unwrap_or(reference.epochs),
        // --epochs asks for epochs: it replaces the reference's iteration budget and its
        // validation interval (validation then follows the epochs unless --val-every says otherwise).
        iterations: args.iterations.or(if args.epochs.is_some() { None } else { reference.iterations }),
        val_every: args.val_every.or(if args.epochs.is_some() { None } else { reference.val_every }),
        best_by: args.best_by.unwrap_or(reference.best_by),
        batch_size: args.batch_size.unwrap_or(reference.batch_size),
        crop: args.crop.map_or(if args.patches.is_some() { None } else { reference.crop }, |c| (c > 0).then_some(c)),
        patch_grid: if args.crop.is_some() { None } else { args.patches.or(reference.patch_grid) },
        lr: args.lr.unwrap_or(reference.lr),
        weight_decay: args.weight_decay.unwrap_or(reference.weight_decay),
        optimizer: args.optimizer.unwrap_or(reference.optimizer),
        schedule: args.schedule.unwrap_or(reference.schedule),
        loss: args.loss.unwrap_or(reference.loss),
        augment: !args.no_augment,
        seed: args.seed.unwrap_or_default(),
        checkpoint_every: args.checkpoint_every.unwrap_or_default(),
        eval_batch_size: args.eval_batch_size.unwrap_or(reference.eval_batch_size),
        ..reference
    }
}

/// A resumed run keeps its own model and recipe, so that it ends as the uninterrupted run would:
/// options given to change them are refused rather than silently dropped.
fn refuse_changes_on_resume(args: &Args, model: &ModelSpec) -> Result<()> {
    let path = args.out.join(changedet_train::trainer::LAST);
    // A missing or unreadable checkpoint is the trainer's to report.
    let Ok(checkpoint) = Checkpoint::read(&path) else { return Ok(()) };
    let Some(Ok(state)) = checkpoint.training.map(serde_json::from_value::<TrainingState>) else { return Ok(()) };
    let run = &state.recipe;
    let mut changed = Vec::new();
    if args.model_config.is_some() && checkpoint.spec != *model {
        changed.push("--model-config (the run's configuration differs)".to_owned());
    }
    let mut compare = |option: &str, given: Option<String>, theirs: String| {
        if let Some(given) = given.filter(|g| *g != theirs) {
            changed.push(format!("{option} {given} (the run's: {theirs})"));
        }
    };
    let text = |v: &dyn std::fmt::Debug| format!("{v:?}");
    compare("--iterations", args.iterations.map(|v| text(&Some(v))), text(&run.iterations));
    compare("--val-every", args.val_every.map(|v| text(&Some(v))), text(&run.val_every));
    compare("--best-by", args.best_by.map(|v| text(&v)), text(&run.best_by));
    compare("--batch-size", args.batch_size.map(|v| text(&v)), text(&run.batch_size));
    compare("--crop", args.crop.map(|c| text(&(c > 0).then_some(c))), text(&run.crop));
    compare("--patches", args.patches.map(|v| text(&Some(v))), text(&run.patch_grid));
    compare("--lr", args.lr.map(|v| text(&v)), text(&run.lr));
    compare("--weight-decay", args.weight_decay.map(|v| text(&v)), text(&run.weight_decay));
    compare("--optimizer", args.optimizer.map(|v| text(&v)), text(&run.optimizer));
    compare("--schedule", args.schedule.map(|v| text(&v)), text(&run.schedule));
    // The run's class weights were measured on its split; the kind of loss is what may differ.
    let measured = |loss: LossKind| run.loss.change_fraction().map_or(loss, |p| loss.with_change_fraction(p));
    compare("--loss", args.loss.map(|v| text(&measured(v))), text(&run.loss));
    compare("--no-augment", args.no_augment.then(|| text(&false)), text(&run.augment));
    compare("--seed", args.seed.map(|v| text(&v)), text(&run.seed));
    compare("--checkpoint-every", args.checkpoint_every.map(|v| text(&v)), text(&run.checkpoint_every));
    compare("--eval-batch-size", args.eval_batch_size.map(|v| text(&v)), text(&run.eval_batch_size));
    if changed.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{} is resumed with its own recipe, and these options would change it: {}; drop them, or start a new run (--overwrite)",
        path.display(),
        changed.join(", ")
    )
}
