use changedet_raster::text::count;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use changedet_data::{DatasetSpec, PatchGrid};
use changedet_models::recipe::{BestMetric, LossKind, OptimizerKind, Schedule};
use changedet_train::TrainRequest;

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
    #[arg(long, default_value = "fp32")]
    precision: changedet_models::Precision,
}

pub fn run(args: Args) -> Result<()> {
    let device = crate::device::parse(&args.device)?;
    let model_config = args.model_config.as_deref().map(serde_json::from_str).transpose().context("--model-config is not valid JSON")?;
    crate::interrupt::set_next_step(format!(
        "the run's checkpoints up to its last epoch end (or --checkpoint-every) are kept: go on with `changedet train --out {} --resume`",
        args.out.display()
    ));
    let request = TrainRequest {
        model: args.model,
        model_config,
        datasets: args.dataset,
        train_splits: args.train_split,
        val_splits: args.val_split,
        bands: args.bands.map(|b| b.0),
        out: args.out,
        epochs: args.epochs,
        iterations: args.iterations,
        val_every: args.val_every,
        best_by: args.best_by,
        batch_size: args.batch_size,
        crop: args.crop,
        patches: args.patches,
        lr: args.lr,
        weight_decay: args.weight_decay,
        optimizer: args.optimizer,
        schedule: args.schedule,
        loss: args.loss,
        no_augment: args.no_augment,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        eval_batch_size: args.eval_batch_size,
        ignore_value: args.ignore_value,
        resume: args.resume,
        overwrite: args.overwrite,
        max_steps: args.max_steps,
        clip: args.clip,
        from: args.from,
        precision: args.precision,
        device,
        progress: true,
        on_step: None,
    };
    let job = request.into_job()?;
    let best_by = job.recipe.best_by;
    let summary = changedet_train::train(job)?;
    println!(
        "trained {} ({}); best validation {} {:.4}",
        count(summary.epochs as u64, "epoch"),
        count(summary.steps as u64, "step"),
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
