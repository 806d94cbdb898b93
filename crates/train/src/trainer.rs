//! The training loop: epochs of shuffled, augmented batches; validation after every epoch;
//! `last` and `best` checkpoints; a JSON-lines log; exact resumption.
//!
//! Reproducibility: the data order of an epoch and every sample's augmentation depend only on
//! (seed, epoch, sample), and the torch generator is re-seeded from (seed, step) before each
//! step, so a run resumed from a checkpoint continues exactly as the uninterrupted one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::Device;

use changedet_data::{Augment, BatchLoader, Dataset, LoaderConfig, Preset, epoch_order};
use changedet_metrics::BinaryMetrics;
use changedet_models::clearscd::ClearScd;
use changedet_models::input::BatchTensors;
use changedet_models::{Checkpoint, LoadedModel, ModelSpec};
use tch::Tensor;

use crate::clearscd_loss::{self, RandomPermutations, ScdLabels, clearscd_losses};
use crate::loss::LossKind;
use crate::optim::{Adam, OptimizerKind};
use crate::protocol::Protocol;
use crate::schedule::Schedule;
use crate::{Result, TrainError, evaluate, plot};

pub const LAST: &str = "last.safetensors";
pub const BEST: &str = "best.safetensors";
pub const LOG: &str = "metrics.jsonl";
pub const PLOT: &str = "curves.png";

/// Everything that decides the result of a training run besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    /// Random square crop for training (`None`: whole images, which must then share a size).
    pub crop: Option<u32>,
    pub lr: f64,
    pub weight_decay: f64,
    pub optimizer: OptimizerKind,
    pub schedule: Schedule,
    pub loss: LossKind,
    /// Random flips and (with `rot90`) 90° rotations, plus the options below.
    pub augment: bool,
    pub rot90: bool,
    /// With `augment`: also rotate by up to ± this many degrees (see `Augment::rotate_degrees`).
    pub rotate_degrees: Option<f32>,
    /// Rotate on the same canvas (ChangeCLIP) rather than an expanded one (ClearSCD).
    pub rotate_in_place: bool,
    /// With `augment`: photometric distortion of each date (see `Augment::photometric`).
    pub photometric: bool,
    /// Parameters whose name contains one of these get no weight decay.
    pub no_decay_keys: Vec<String>,
    /// Train for this many optimiser steps instead of `epochs` epochs (mmengine's iteration-based
    /// runs; the last epoch is cut short).
    pub iterations: Option<usize>,
    /// Validate every this many steps (and after the last) instead of after every epoch.
    pub val_every: Option<usize>,
    /// The validation score that picks `best.safetensors`.
    pub best_by: BestMetric,
    pub seed: u64,
    /// Also save `last` every this many optimiser steps (0: at epoch ends only).
    pub checkpoint_every: usize,
    pub eval_batch_size: usize,
    /// ClearSCD's objective (SACL, BSCC); used when the model is clearscd.
    pub clearscd: clearscd_loss::Config,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            epochs: 50,
            batch_size: 8,
            crop: Some(256),
            lr: 1e-3,
            weight_decay: 1e-4,
            optimizer: OptimizerKind::AdamW,
            schedule: Schedule::Constant,
            loss: LossKind::CrossEntropy,
            augment: true,
            rot90: true,
            rotate_degrees: None,
            rotate_in_place: false,
            photometric: false,
            no_decay_keys: Vec::new(),
            iterations: None,
            val_every: None,
            best_by: BestMetric::F1,
            seed: 0,
            checkpoint_every: 0,
            eval_batch_size: 4,
            clearscd: clearscd_loss::Config::default(),
        }
    }
}

impl Recipe {
    /// The training recipe of `model`'s reference implementation, for `dataset` where the
    /// reference's configs differ per dataset.
    pub fn for_model(model: &str, dataset: Preset) -> Recipe {
        match model {
            // ClearSCD's main.py and configs/hiucd_mini/ours.json.
            "clearscd" => Recipe {
                epochs: 100,
                batch_size: 8,
                crop: Some(512),
                lr: 2.5e-4,
                weight_decay: 5e-4,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Step { epochs: 10, gamma: 0.9 },
                rotate_degrees: Some(30.0),
                ..Recipe::default()
            },
            // ChangeCLIP's configs/0cd_ce/changeclip_*.py (the released runs: 20k iterations of
            // 2 GPUs × 20 pairs, RN50; ViT 2 × 12) and _base_/datasets/base_cd.py.
            "changeclip-rn50" | "changeclip-vit" => {
                let vit = model == "changeclip-vit";
                let lr = match dataset {
                    Preset::SysuCd => 3e-5,
                    Preset::LevirCdPlus | Preset::WhuCd if vit => 3e-5,
                    _ => 1e-4,
                };
                let val_every = match dataset {
                    Preset::WhuCd | Preset::SysuCd => 500,
                    Preset::Cdd => 2000,
                    _ => 1000,
                };
                Recipe {
                    batch_size: if vit { 24 } else { 40 },
                    crop: Some(256),
                    lr,
                    weight_decay: 0.01,
                    optimizer: OptimizerKind::AdamW,
                    schedule: Schedule::WarmupLinear { warmup: 1500 },
                    loss: LossKind::CrossEntropyAllPixels,
                    rot90: false,
                    rotate_degrees: Some(180.0),
                    rotate_in_place: true,
                    photometric: true,
                    no_decay_keys: ["norm", "relative_position_bias_table", "absolute_pos_embed"].map(String::from).to_vec(),
                    iterations: Some(20_000),
                    val_every: Some(val_every),
                    best_by: BestMetric::MeanIou,
                    ..Recipe::default()
                }
            }
            _ => Recipe::default(),
        }
    }
}

/// Validation score that selects the best checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BestMetric {
    /// F1 of the changed class.
    F1,
    /// Mean IoU of the two classes (mmseg's `IoUMetric`, ChangeCLIP's `save_best='mIoU'`).
    #[serde(rename = "miou")]
    MeanIou,
}

impl BestMetric {
    pub fn score(self, metrics: &BinaryMetrics) -> f64 {
        match self {
            BestMetric::F1 => metrics.f1,
            BestMetric::MeanIou => metrics.miou,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BestMetric::F1 => "F1",
            BestMetric::MeanIou => "mIoU",
        }
    }
}

impl std::str::FromStr for BestMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f1" => Ok(BestMetric::F1),
            "miou" => Ok(BestMetric::MeanIou),
            other => Err(format!("unknown validation score '{other}' (f1, miou)")),
        }
    }
}

/// What a checkpoint records about the run that wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingState {
    pub recipe: Recipe,
    /// Optimiser steps taken.
    pub step: usize,
    /// Epochs completed.
    pub epoch: usize,
    /// Running loss of the unfinished epoch (for checkpoints taken inside an epoch).
    pub epoch_loss_sum: f64,
    pub epoch_batches: usize,
    /// Best validation score so far (of `recipe.best_by`) and the epoch it came in.
    #[serde(alias = "best_f1")]
    pub best_score: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Validation metrics of the last validation.
    pub val_metrics: Option<BinaryMetrics>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val: BinaryMetrics,
    pub seconds: f64,
}

pub struct TrainJob {
    pub model: ModelSpec,
    pub recipe: Recipe,
    pub train: Dataset,
    pub val: Dataset,
    pub out_dir: PathBuf,
    pub device: Device,
    /// Continue from `out_dir/last.safetensors` with its recipe, weights and optimiser state.
    pub resume: bool,
    /// Stop after this many optimiser steps without saving, as a crash would.
    pub max_steps: Option<usize>,
    pub progress: bool,
    /// ChangeCLIP: CLIP weights its image and text encoders start from.
    pub clip_weights: Option<PathBuf>,
}

#[derive(Debug)]
pub struct TrainSummary {
    pub steps: usize,
    pub epochs: usize,
    /// Best validation score, of the recipe's `best_by`.
    pub best_score: Option<f64>,
    pub out_dir: PathBuf,
    pub plot: Option<PathBuf>,
}

fn save(path: &Path, model: &LoadedModel, optimizer: Option<&Adam>, state: &TrainingState) -> Result<()> {
    let training = serde_json::to_value(state).expect("state serialises");
    let optimizer_state = optimizer.map(Adam::state).unwrap_or_default();
    Checkpoint::write(path, model, &optimizer_state, Some(&training))?;
    Ok(())
}

pub fn train(job: TrainJob) -> Result<TrainSummary> {
    fs::create_dir_all(&job.out_dir).map_err(|e| TrainError::Io(job.out_dir.clone(), e))?;
    probe_writable(&job.out_dir)?;
    if job.train.is_empty() || job.val.is_empty() {
        return Err(TrainError::Config("the training and validation splits must not be empty".into()));
    }
    if !job.train.has_labels() || !job.val.has_labels() {
        return Err(TrainError::Config("training and validation need labelled splits".into()));
    }
    let last_path = job.out_dir.join(LAST);
    let log_path = job.out_dir.join(LOG);

    let (model, mut optimizer, mut state) = if job.resume {
        let ckpt = Checkpoint::read(&last_path)?;
        let state: TrainingState = serde_json::from_value(ckpt.training.clone().ok_or_else(|| {
            TrainError::Config(format!("{}: no training state to resume from", last_path.display()))
        })?)
        .map_err(|e| TrainError::Config(format!("{}: training state unreadable: {e}", last_path.display())))?;
        if ckpt.spec.name() != job.model.name() {
            return Err(TrainError::Config(format!(
                "{} holds a {} model, not {}",
                last_path.display(),
                ckpt.spec.name(),
                job.model.name()
            )));
        }
        let model = ckpt.load_model(&last_path, job.device)?;
        let mut optimizer = Adam::with_decay_exemptions(&model.vs, state.recipe.optimizer, state.recipe.weight_decay, &state.recipe.no_decay_keys);
        optimizer.load_state(&ckpt.optimizer).map_err(|e| TrainError::Config(format!("{}: {e}", last_path.display())))?;
        keep_log_until(&log_path, state.step)?;
        (model, optimizer, state)
    } else {
        tch::manual_seed(job.recipe.seed as i64);
        let mut model = LoadedModel::new(job.model.clone(), job.device);
        if let Some(path) = &job.clip_weights {
            if !matches!(job.model, ModelSpec::ChangeClipRn50(_) | ModelSpec::ChangeClipVit(_)) {
                return Err(TrainError::Config(format!("CLIP weights start ChangeCLIP models, not {}", job.model.name())));
            }
            let copied = changedet_models::changeclip::load_clip_towers(&mut model.vs, path)?;
            tracing::info!("{}: {copied} CLIP tensors copied into the image and text encoders", path.display());
        }
        let optimizer = Adam::with_decay_exemptions(&model.vs, job.recipe.optimizer, job.recipe.weight_decay, &job.recipe.no_decay_keys);
        let _ = fs::remove_file(&log_path);
        let state = TrainingState {
            recipe: job.recipe.clone(),
            step: 0,
            epoch: 0,
            epoch_loss_sum: 0.0,
            epoch_batches: 0,
            best_score: None,
            best_epoch: None,
            val_metrics: None,
        };
        (model, optimizer, state)
    };
    check_labels_fit(&model, &job.train)?;
    let recipe = state.recipe.clone();
    let batch_size = recipe.batch_size.max(1);
    let steps_per_epoch = job.train.len().div_ceil(batch_size);
    let total_steps = recipe.iterations.unwrap_or(steps_per_epoch * recipe.epochs);
    let epochs = total_steps.div_ceil(steps_per_epoch);
    let augment = match recipe.augment {
        true => Augment {
            rot90: recipe.rot90,
            rotate_degrees: recipe.rotate_degrees,
            rotate_in_place: recipe.rotate_in_place,
            photometric: recipe.photometric,
            unlabeled_class: job.train.semantic_classes.map_or(changedet_data::IGNORE, |k| k as u8),
            ..Augment::train(recipe.crop)
        },
        false => Augment { crop: recipe.crop, ..Augment::default() },
    };

    let bar = if job.progress { ProgressBar::new(total_steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_position(state.step as u64);

    let mut epoch_start = Instant::now();
    // Scores the model on the validation split, logs, and keeps `best`; `last` is the caller's.
    let validate = |state: &mut TrainingState, lr: f64, started: Instant, epoch: usize, train_loss: f64| -> Result<()> {
        let confusion = evaluate(&model, &job.val, recipe.eval_batch_size.max(1), job.device, Protocol::Whole)?;
        let metrics = confusion.metrics();
        let entry = EpochLog {
            epoch,
            step: state.step,
            lr,
            train_loss,
            val: metrics,
            seconds: started.elapsed().as_secs_f64(),
        };
        state.val_metrics = Some(metrics);
        let score = recipe.best_by.score(&metrics);
        let improved = state.best_score.is_none_or(|best| score > best);
        if improved {
            state.best_score = Some(score);
            state.best_epoch = Some(entry.epoch);
            save(&job.out_dir.join(BEST), &model, None, state)?;
        }
        append_log(&log_path, &entry)?;
        let line = format!(
            "epoch {:>3}/{epochs}  step {:>6}  loss {:.4}  val F1 {:.4}  IoU {:.4}  P {:.4}  R {:.4}  mIoU {:.4}{}",
            entry.epoch,
            entry.step,
            entry.train_loss,
            metrics.f1,
            metrics.iou,
            metrics.precision,
            metrics.recall,
            metrics.miou,
            if improved { "  (best)" } else { "" }
        );
        // `suspend` prints even when the bar is hidden (no terminal), unlike `println`.
        bar.suspend(|| eprintln!("{line}"));
        Ok(())
    };

    while state.epoch < epochs {
        let epoch = state.epoch;
        bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
        let done_in_epoch = state.step - epoch * steps_per_epoch;
        let order = epoch_order(job.train.len(), recipe.seed, epoch, true);
        let loader_config = LoaderConfig {
            batch_size,
            augment,
            normalization: model.spec.normalization(),
            seed: recipe.seed,
            epoch,
        };
        let remaining = order[(done_in_epoch * batch_size).min(order.len())..].to_vec();
        let mut lr = 0.0;
        for batch in BatchLoader::new(&job.train, remaining, loader_config) {
            if job.max_steps.is_some_and(|max| state.step >= max) {
                bar.abandon();
                return Ok(TrainSummary { steps: state.step, epochs: state.epoch, best_score: state.best_score, out_dir: job.out_dir, plot: None });
            }
            if state.step >= total_steps {
                break;
            }
            let batch = batch?;
            tch::manual_seed(recipe.seed.wrapping_mul(1_000_003).wrapping_add(state.step as u64) as i64);
            lr = recipe.schedule.lr(recipe.lr, state.step, total_steps, steps_per_epoch);
            let tensors = BatchTensors::new(&batch, job.device);
            let loss = step_loss(&model, &tensors, &recipe, epoch)?;
            let loss_value = loss.double_value(&[]);
            if !loss_value.is_finite() {
                return Err(TrainError::NonFinite(format!(
                    "loss became {loss_value} at step {} (batch {:?}); check the inputs for NaN and lower the learning rate",
                    state.step, batch.names
                )));
            }
            optimizer.zero_grad();
            loss.backward();
            optimizer.step(lr);
            state.step += 1;
            state.epoch_loss_sum += loss_value;
            state.epoch_batches += 1;
            bar.set_position(state.step as u64);
            bar.set_message(format!("loss {:.4}  lr {lr:.2e}", state.epoch_loss_sum / state.epoch_batches as f64));
            let at_epoch_end = state.step % steps_per_epoch == 0 || state.step == total_steps;
            if let Some(every) = recipe.val_every
                && (state.step % every == 0 || state.step == total_steps)
            {
                let running_loss = state.epoch_loss_sum / state.epoch_batches.max(1) as f64;
                validate(&mut state, lr, epoch_start, epoch + 1, running_loss)?;
                if !at_epoch_end {
                    save(&last_path, &model, Some(&optimizer), &state)?;
                }
            } else if recipe.checkpoint_every > 0 && state.step % recipe.checkpoint_every == 0 && !at_epoch_end {
                save(&last_path, &model, Some(&optimizer), &state)?;
            }
        }

        let epoch_loss = state.epoch_loss_sum / state.epoch_batches.max(1) as f64;
        state.epoch += 1;
        state.epoch_loss_sum = 0.0;
        state.epoch_batches = 0;
        if recipe.val_every.is_none() {
            let finished = state.epoch;
            validate(&mut state, lr, epoch_start, finished, epoch_loss)?;
        }
        save(&last_path, &model, Some(&optimizer), &state)?;
        epoch_start = Instant::now();
    }
    bar.finish_and_clear();
    let plot_path = job.out_dir.join(PLOT);
    let plot = match plot::plot_curves(&log_path, &plot_path) {
        Ok(()) => Some(plot_path),
        Err(e) => {
            tracing::warn!("no training-curve plot: {e}");
            None
        }
    };
    Ok(TrainSummary { steps: state.step, epochs: state.epoch, best_score: state.best_score, out_dir: job.out_dir, plot })
}

/// The model's training objective on one batch (forward included).
fn step_loss(model: &LoadedModel, batch: &BatchTensors, recipe: &Recipe, epoch: usize) -> Result<Tensor> {
    let change = batch.label.as_ref().expect("labelled split");
    match model.model.as_any().downcast_ref::<ClearScd>() {
        Some(net) => {
            let [a, b] = batch.semantic.as_ref().expect("checked by check_labels_fit");
            let out = net.forward_scd(&batch.before, &batch.after, true);
            let labels = ScdLabels { semantic: [a, b], change };
            // The reference's epochs are 1-based: epoch ≤ warmup_epoch is warm-up.
            let warmup = epoch < recipe.clearscd.warmup_epochs;
            Ok(clearscd_losses(net, &out, &labels, &recipe.clearscd, warmup, true, &mut RandomPermutations).total())
        }
        None => Ok(recipe.loss.compute(&model.model.forward_with_classes_t(&batch.before, &batch.after, &batch.classes, true), change)),
    }
}

/// Semantic change models need semantic labels with their number of classes (a larger class
/// value would index past the class scores).
fn check_labels_fit(model: &LoadedModel, data: &Dataset) -> Result<()> {
    let Some(net) = model.model.as_any().downcast_ref::<ClearScd>() else { return Ok(()) };
    match data.semantic_classes {
        Some(k) if k as i64 == net.num_classes => Ok(()),
        Some(k) => Err(TrainError::Config(format!(
            "the dataset has {k} land-cover classes but the model has {}: set --model-config '{{\"num_classes\": {k}}}'",
            net.num_classes
        ))),
        None => Err(TrainError::Config(format!(
            "{} learns from semantic change labels: train it on a semantic change dataset (hiucd:PATH, second:PATH)",
            model.spec.name()
        ))),
    }
}

fn probe_writable(dir: &Path) -> Result<()> {
    tempfile::tempfile_in(dir).map(drop).map_err(|e| TrainError::Io(dir.to_owned(), e))
}

fn append_log(path: &Path, entry: &EpochLog) -> Result<()> {
    let mut file = fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| TrainError::Io(path.to_owned(), e))?;
    writeln!(file, "{}", serde_json::to_string(entry).expect("log serialises")).map_err(|e| TrainError::Io(path.to_owned(), e))
}

pub fn read_log(path: &Path) -> Result<Vec<EpochLog>> {
    let text = fs::read_to_string(path).map_err(|e| TrainError::Io(path.to_owned(), e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| TrainError::Config(format!("{}: bad log line: {e}", path.display()))))
        .collect()
}

/// Drops log lines of epochs after the checkpoint a run resumes from (an interrupted run may
/// have logged an epoch whose checkpoint it never finished writing).
fn keep_log_until(path: &Path, steps: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EpochLog> = read_log(path)?.into_iter().filter(|e| e.step <= steps).collect();
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |e| TrainError::Io(path.to_owned(), e);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    for entry in &kept {
        writeln!(tmp, "{}", serde_json::to_string(entry).expect("log serialises")).map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
