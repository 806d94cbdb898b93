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

use changedet_raster::progress::Progress;
use serde::{Deserialize, Serialize};
use tch::Device;

use std::sync::Arc;

use changedet_data::{Augment, Batch, BatchLoader, Dataset, DecodedPairs, LoaderConfig, Sample, epoch_order};
use changedet_metrics::{BinaryMetrics, ScdSummary};
use changedet_models::input::BatchTensors;
use changedet_models::recipe::{BestMetric, Schedule, Validation};
use changedet_models::{Checkpoint, LoadedModel, ModelSpec, Precision, Recipe};

use changedet_raster::atomic;

use crate::optim::Adam;
use crate::protocol::Protocol;
use crate::{Result, SplitOptions, TrainError, evaluate, evaluate_every_convention, plot};

pub const LAST: &str = "last.safetensors";
pub const BEST: &str = "best.safetensors";
pub const LOG: &str = "metrics.jsonl";
pub const PLOT: &str = "curves.png";

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
    /// Semantic change models: the last validation's class-map scores (SECOND convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_semantic: Option<ScdSummary>,
    /// Pairs of the training split: a resumed run's data order depends on it.
    #[serde(default)]
    pub train_pairs: Option<usize>,
    /// Where the training and validation pairs came from (datasets and splits, as given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<String>,
    /// Wall-clock seconds of training and validation so far, over every resumption.
    #[serde(default)]
    pub seconds: f64,
    /// The datasets and splits the run trains and validates on, as `--dataset`, `--train-split`
    /// and `--val-split` take them (paths absolute), so that `--resume` needs none of them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Sources>,
    /// The input bands by name, in the model's order, for a model trained on Sentinel-2 band
    /// folders (`predict` and `eval` read the same bands); `None`: 8-bit RGB images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bands: Option<Vec<String>>,
}

/// Where a run's data comes from (see [`TrainingState::sources`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    pub datasets: Vec<String>,
    pub train_splits: Vec<String>,
    pub val_splits: Vec<String>,
    pub ignore_value: Option<u8>,
    pub bands: Option<Vec<String>>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val: BinaryMetrics,
    /// Semantic change models: class-map scores in the SECOND convention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_semantic: Option<ScdSummary>,
    pub seconds: f64,
}

pub struct TrainJob {
    pub model: ModelSpec,
    pub recipe: Recipe,
    pub train: Dataset,
    pub val: Dataset,
    pub out_dir: PathBuf,
    pub device: Device,
    /// Arithmetic of the forward passes and losses (fp32, or bf16 through autocast).
    pub precision: Precision,
    /// Continue from `out_dir/last.safetensors` with its recipe, weights and optimiser state.
    pub resume: bool,
    /// Start over in an `out_dir` that holds a run (its checkpoints and log are replaced).
    pub overwrite: bool,
    /// Stop after this many optimiser steps without saving, as a crash would.
    pub max_steps: Option<usize>,
    pub progress: bool,
    /// Pretrained weights the model starts from (ChangeCLIP: CLIP's towers).
    pub pretrained: Option<PathBuf>,
    /// A changedet checkpoint of the same model whose weights the run starts from (fine-tuning).
    pub init: Option<PathBuf>,
    /// Where the splits came from, recorded in the checkpoints (see [`TrainingState::data`]).
    pub data: Vec<String>,
    /// The same, as options a resumed run can take again (see [`TrainingState::sources`]).
    pub sources: Option<Sources>,
    /// With `resume`: train a finished (or unfinished) epoch-based run on to this many epochs.
    pub extend_to_epochs: Option<usize>,
    /// Told of every step and validation; may stop the run.
    pub on_step: Option<StepHook>,
}

/// What a run tells its [`StepHook`].
pub enum TrainEvent<'a> {
    /// An optimiser step finished; `loss` is the epoch's running mean.
    Step { step: usize, total_steps: usize, epoch: usize, epochs: usize, loss: f64, lr: f64 },
    /// A validation finished: its log entry and the line the CLI prints for it.
    Validation { entry: &'a EpochLog, line: &'a str },
}

/// Called after every step and validation (whose lines it then prints instead of the trainer).
/// Returning false after a step stops the run as `max_steps` does: the checkpoints written until
/// then stay and `resume` goes on from the last.
pub type StepHook = Box<dyn FnMut(TrainEvent<'_>) -> bool + Send>;

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

/// Trains `job.model` on `job.train` by `job.recipe` (or resumes the run in `job.out_dir`),
/// validating on `job.val`.
pub fn train(mut job: TrainJob) -> Result<TrainSummary> {
    check_job(&job)?;
    let (model, optimizer, state) = if job.resume { resume(&job)? } else { start(&job)? };
    let model = model.with_precision(job.precision);
    check_labels_fit(&model, &job.train, state.recipe.best_by)?;
    let on_step = job.on_step.take();
    let mut run = Run::new(&job, model, optimizer, state, on_step)?;
    while run.state.epoch < run.epochs {
        if run.train_epoch()? == EpochEnd::Stopped {
            return Ok(run.summary(None));
        }
    }
    run.bar.finish();
    run.keep_a_best()?;
    let plot_path = job.out_dir.join(PLOT);
    let plot = match plot::plot_curves(&run.log_path, &plot_path) {
        Ok(()) => Some(plot_path),
        Err(e) => {
            tracing::warn!("no training-curve plot: {e}");
            None
        }
    };
    Ok(run.summary(plot))
}

fn check_job(job: &TrainJob) -> Result<()> {
    fs::create_dir_all(&job.out_dir).map_err(|e| TrainError::Io(job.out_dir.clone(), e))?;
    probe_writable(&job.out_dir)?;
    let existing = [LAST, BEST, LOG].iter().map(|f| job.out_dir.join(f)).find(|p| p.exists());
    if let Some(existing) = existing.filter(|_| !job.resume && !job.overwrite) {
        return Err(TrainError::Config(format!(
            "{} holds a training run ({}): pass --resume to continue it or --overwrite to start over",
            job.out_dir.display(),
            existing.file_name().and_then(|n| n.to_str()).unwrap_or_default()
        )));
    }
    // A run killed while writing a checkpoint leaves its staged file: the run that takes over
    // removes it.
    for file in [LAST, BEST] {
        let target = job.out_dir.join(file);
        changedet_raster::atomic::remove_abandoned(&target).map_err(|e| TrainError::Io(target, e))?;
    }
    if job.train.is_empty() || job.val.is_empty() {
        return Err(TrainError::Config("the training and validation splits must not be empty".into()));
    }
    if job.train.bands() != job.val.bands() {
        return Err(TrainError::Config("the training and validation splits must be read with the same bands".into()));
    }
    let bands = job.train.bands().map_or(3, <[String]>::len);
    if bands != job.model.input_bands() {
        return Err(TrainError::Config(format!(
            "{} takes {} bands per date, but the data gives {bands}{}: set the model's in_channels (--model-config '{{\"in_channels\":{bands}}}') or choose --bands",
            job.model.name(),
            job.model.input_bands(),
            job.train.bands().map(|b| format!(" ({})", b.join(","))).unwrap_or_default()
        )));
    }
    if !job.train.has_labels() || !job.val.has_labels() {
        return Err(TrainError::Config("training and validation need labelled splits".into()));
    }
    Ok(())
}

/// A fresh model (from pretrained weights where the job names them), optimiser and state.
fn start(job: &TrainJob) -> Result<(LoadedModel, Adam, TrainingState)> {
    tch::manual_seed(job.recipe.seed as i64);
    let mut model = LoadedModel::new(job.model.clone(), job.device)?;
    if let Some(path) = &job.pretrained {
        let copied = job.model.load_pretrained(&mut model.vs, path)?;
        tracing::info!("{}: {copied} pretrained tensors copied into the model", path.display());
    }
    if let Some(path) = &job.init {
        let checkpoint = Checkpoint::read(path)?;
        if checkpoint.spec != job.model {
            return Err(TrainError::Config(format!("{} holds {} with another configuration than the model to train", path.display(), checkpoint.spec.name())));
        }
        changedet_models::checkpoint::copy_into(&mut model.vs, &checkpoint.model, path, job.model.name())?;
    }
    let optimizer = Adam::with_decay_exemptions(&model.vs, job.recipe.optimizer, job.recipe.weight_decay, &job.recipe.no_decay_keys);
    let _ = fs::remove_file(job.out_dir.join(LOG));
    let mut recipe = job.recipe.clone();
    if recipe.loss.needs_change_fraction() {
        let p = job.train.change_fraction()?;
        tracing::info!("training split: {:.2} % of labelled pixels changed (class weights)", 100.0 * p);
        recipe.loss = recipe.loss.with_change_fraction(p);
    }
    let state = TrainingState {
        recipe,
        step: 0,
        epoch: 0,
        epoch_loss_sum: 0.0,
        epoch_batches: 0,
        best_score: None,
        best_epoch: None,
        val_metrics: None,
        val_semantic: None,
        train_pairs: Some(job.train.len()),
        data: job.data.clone(),
        seconds: 0.0,
        sources: job.sources.clone(),
        bands: job.train.bands().map(<[String]>::to_vec),
    };
    Ok((model, optimizer, state))
}

/// A resumed run's recipe trained on to `epochs`: only an epoch-based one whose learning rate
/// does not depend on the total length (constant or step schedules) ends as a run started with
/// that many epochs would.
fn extend(recipe: &mut Recipe, epochs: usize) -> std::result::Result<(), String> {
    if recipe.iterations.is_some() {
        return Err("the run counts iterations, not epochs: it cannot be extended by --epochs".into());
    }
    if epochs < recipe.epochs {
        return Err(format!("--epochs {epochs} is fewer than the run's {}", recipe.epochs));
    }
    if matches!(recipe.schedule, Schedule::Poly { .. } | Schedule::WarmupLinear { .. }) {
        return Err("the run's learning-rate schedule (poly or warm-up + linear decay) depends on its length: it cannot be extended; start a new run with --from".into());
    }
    if epochs > recipe.epochs {
        tracing::info!("extending the run from {} to {epochs} epochs", recipe.epochs);
    }
    recipe.epochs = epochs;
    Ok(())
}

/// The model, optimiser and state of `last.safetensors`, with the log cut back to its step.
fn resume(job: &TrainJob) -> Result<(LoadedModel, Adam, TrainingState)> {
    let last_path = job.out_dir.join(LAST);
    let ckpt = Checkpoint::read(&last_path)?;
    let state: TrainingState = serde_json::from_value(
        ckpt.training.clone().ok_or_else(|| TrainError::Config(format!("{}: no training state to resume from", last_path.display())))?,
    )
    .map_err(|e| TrainError::Config(format!("{}: training state unreadable: {e}", last_path.display())))?;
    if ckpt.spec.name() != job.model.name() {
        return Err(TrainError::Config(format!("{} holds a {} model, not {}", last_path.display(), ckpt.spec.name(), job.model.name())));
    }
    if state.bands.as_deref() != job.train.bands() {
        return Err(TrainError::Config(format!(
            "{}: the run was trained on bands {} but the data is read as {}: resume with the run's own --bands",
            last_path.display(),
            state.bands.as_ref().map_or("RGB".into(), |b| b.join(",")),
            job.train.bands().map_or("RGB".into(), |b| b.join(","))
        )));
    }
    if let Some(pairs) = state.train_pairs.filter(|&pairs| pairs != job.train.len()) {
        return Err(TrainError::Config(format!(
            "{}: the run was trained on {pairs} pairs but this training split has {}: resume with the run's own split",
            last_path.display(),
            job.train.len()
        )));
    }
    let mut state = state;
    if let Some(epochs) = job.extend_to_epochs {
        extend(&mut state.recipe, epochs).map_err(|e| TrainError::Config(format!("{}: {e}", last_path.display())))?;
    }
    let model = ckpt.load_model(&last_path, job.device)?;
    let recipe = &state.recipe;
    let mut optimizer = Adam::with_decay_exemptions(&model.vs, recipe.optimizer, recipe.weight_decay, &recipe.no_decay_keys);
    optimizer.load_state(&ckpt.optimizer).map_err(|e| TrainError::Config(format!("{}: {e}", last_path.display())))?;
    keep_log_until(&job.out_dir.join(LOG), state.step)?;
    Ok((model, optimizer, state))
}

/// How an epoch of [`Run::train_epoch`] ended.
#[derive(PartialEq)]
enum EpochEnd {
    Finished,
    /// `max_steps` reached, or the step hook asked to stop: stop without saving, as a crash would.
    Stopped,
}

/// A training run in progress: the model, its optimiser and state, and the run's fixed plan.
struct Run<'a> {
    job: &'a TrainJob,
    model: LoadedModel,
    optimizer: Adam,
    state: TrainingState,
    recipe: Recipe,
    batch_size: usize,
    steps_per_epoch: usize,
    total_steps: usize,
    epochs: usize,
    augment: Augment,
    /// What one epoch visits: whole pairs, or the patches of the recipe's grid.
    samples: Vec<Sample>,
    cache: Option<Arc<DecodedPairs>>,
    bar: Progress,
    epoch_start: Instant,
    /// When this process took the run over, and the run's seconds before that.
    resumed_at: Instant,
    seconds_before: f64,
    last_path: PathBuf,
    log_path: PathBuf,
    on_step: Option<StepHook>,
}

impl<'a> Run<'a> {
    fn new(job: &'a TrainJob, model: LoadedModel, optimizer: Adam, state: TrainingState, on_step: Option<StepHook>) -> Result<Self> {
        let recipe = state.recipe.clone();
        let batch_size = recipe.batch_size.max(1);
        let (samples, cache) = match recipe.patch_grid {
            Some(grid) => (grid.samples(&job.train)?, Some(DecodedPairs::new(&job.train))),
            None => (Sample::pairs(0..job.train.len()), None),
        };
        if samples.is_empty() {
            return Err(TrainError::Config("no training patch fits: every image is smaller than the patch grid's side".into()));
        }
        let steps_per_epoch = samples.len().div_ceil(batch_size);
        let total_steps = recipe.iterations.unwrap_or(steps_per_epoch * recipe.epochs);
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
        let template = "{prefix} [{bar:30}] {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}";
        let bar = Progress::new(total_steps as u64, "training", "steps", template, job.progress);
        bar.set_position(state.step as u64);
        Ok(Run {
            epochs: total_steps.div_ceil(steps_per_epoch),
            last_path: job.out_dir.join(LAST),
            log_path: job.out_dir.join(LOG),
            epoch_start: Instant::now(),
            resumed_at: Instant::now(),
            seconds_before: state.seconds,
            job,
            model,
            optimizer,
            state,
            recipe,
            batch_size,
            steps_per_epoch,
            total_steps,
            augment,
            samples,
            cache,
            bar,
            on_step,
        })
    }

    /// The rest of the current epoch's batches, then its validation (unless the recipe
    /// validates by steps) and `last` checkpoint.
    fn train_epoch(&mut self) -> Result<EpochEnd> {
        let epoch = self.state.epoch;
        self.bar.bar().set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
        let done_in_epoch = self.state.step.checked_sub(epoch * self.steps_per_epoch).ok_or_else(|| {
            TrainError::Config(format!("step {} lies before epoch {epoch}: the run's training split must have changed size", self.state.step))
        })?;
        let order = epoch_order(self.samples.len(), self.recipe.seed, epoch, true);
        let loader_config = LoaderConfig {
            batch_size: self.batch_size,
            augment: self.augment,
            normalization: self.model.spec.normalization(),
            seed: self.recipe.seed,
            epoch,
            cache: self.cache.clone(),
        };
        let remaining = order[(done_in_epoch * self.batch_size).min(order.len())..].iter().map(|&i| self.samples[i]).collect();
        let mut lr = 0.0;
        for batch in BatchLoader::samples(&self.job.train, remaining, loader_config) {
            if self.job.max_steps.is_some_and(|max| self.state.step >= max) {
                self.bar.bar().abandon();
                return Ok(EpochEnd::Stopped);
            }
            if self.state.step >= self.total_steps {
                break;
            }
            lr = self.step(&batch?, epoch)?;
            self.after_step(lr, epoch)?;
            if !self.tell_step(lr, epoch) {
                self.bar.bar().abandon();
                return Ok(EpochEnd::Stopped);
            }
        }
        let epoch_loss = self.state.epoch_loss_sum / self.state.epoch_batches.max(1) as f64;
        self.state.epoch += 1;
        self.state.epoch_loss_sum = 0.0;
        self.state.epoch_batches = 0;
        if self.recipe.val_every.is_none() {
            self.validate(lr, self.state.epoch, epoch_loss)?;
        }
        self.update_clock();
        save(&self.last_path, &self.model, Some(&self.optimizer), &self.state)?;
        self.epoch_start = Instant::now();
        Ok(EpochEnd::Finished)
    }

    /// The step hook's word on going on after a step.
    fn tell_step(&mut self, lr: f64, epoch: usize) -> bool {
        let Some(hook) = &mut self.on_step else { return true };
        let loss = self.state.epoch_loss_sum / self.state.epoch_batches.max(1) as f64;
        hook(TrainEvent::Step { step: self.state.step, total_steps: self.total_steps, epoch, epochs: self.epochs, loss, lr })
    }

    /// One optimiser step on `batch`; returns its learning rate.
    fn step(&mut self, batch: &Batch, epoch: usize) -> Result<f64> {
        let state = &mut self.state;
        tch::manual_seed(self.recipe.seed.wrapping_mul(1_000_003).wrapping_add(state.step as u64) as i64);
        let lr = self.recipe.schedule.lr(self.recipe.lr, state.step, self.total_steps, self.steps_per_epoch);
        let tensors = BatchTensors::new(batch, self.job.device);
        let loss = self.model.model.training_loss(&tensors, &self.recipe, epoch)?;
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            return Err(TrainError::NonFinite(format!(
                "loss became {loss_value} at step {} (batch {:?}); check the inputs for NaN and lower the learning rate",
                state.step, batch.names
            )));
        }
        self.optimizer.zero_grad();
        loss.backward();
        self.optimizer.step(lr);
        state.step += 1;
        state.epoch_loss_sum += loss_value;
        state.epoch_batches += 1;
        self.bar.bar().set_message(format!("loss {:.4}  lr {lr:.2e}", state.epoch_loss_sum / state.epoch_batches as f64));
        self.bar.set_position(state.step as u64);
        Ok(lr)
    }

    /// Validation every `val_every` steps, and `last` every `checkpoint_every` steps, inside an
    /// epoch (its end saves `last` anyway).
    fn after_step(&mut self, lr: f64, epoch: usize) -> Result<()> {
        let step = self.state.step;
        let at_epoch_end = step.is_multiple_of(self.steps_per_epoch) || step == self.total_steps;
        if let Some(every) = self.recipe.val_every
            && (step.is_multiple_of(every) || step == self.total_steps)
        {
            let running_loss = self.state.epoch_loss_sum / self.state.epoch_batches.max(1) as f64;
            self.validate(lr, epoch + 1, running_loss)?;
            if !at_epoch_end {
                self.update_clock();
        save(&self.last_path, &self.model, Some(&self.optimizer), &self.state)?;
            }
        } else if self.recipe.checkpoint_every > 0 && step.is_multiple_of(self.recipe.checkpoint_every) && !at_epoch_end {
            self.update_clock();
        save(&self.last_path, &self.model, Some(&self.optimizer), &self.state)?;
        }
        Ok(())
    }

    /// The validation split's scores: the change masks, and semantic models' class maps.
    fn scores(&self) -> Result<Validation> {
        let (model, val, device) = (&self.model, &self.job.val, self.job.device);
        let options = SplitOptions { batch_size: self.recipe.eval_batch_size.max(1), device, protocol: Protocol::Whole };
        // The training bar stays; validation's end is its own line.
        let hidden = Progress::hidden(val.len() as u64);
        Ok(match (model.spec.semantic_classes(), val.semantic_classes) {
            (Some(_), Some(classes)) => {
                let scores = evaluate_every_convention(model, val, classes, options, &hidden)?;
                Validation { binary: scores.binary.metrics(), semantic: Some(scores.second.metrics().summary()) }
            }
            _ => Validation { binary: evaluate(model, val, options, &hidden)?.metrics(), semantic: None },
        })
    }

    /// Scores the model on the validation split, logs, and keeps `best`.
    fn validate(&mut self, lr: f64, epoch: usize, train_loss: f64) -> Result<()> {
        let validation = self.scores()?;
        self.update_clock();
        let metrics = validation.binary;
        let state = &mut self.state;
        let seconds = self.epoch_start.elapsed().as_secs_f64();
        let entry = EpochLog { epoch, step: state.step, lr, train_loss, val: metrics, val_semantic: validation.semantic, seconds };
        state.val_metrics = Some(metrics);
        state.val_semantic = validation.semantic;
        let score = self.recipe.best_by.score(&validation).expect("checked by check_labels_fit");
        let candidate = BestMetric::is_candidate(&validation);
        let improved = candidate && state.best_score.is_none_or(|best| score > best);
        if improved {
            state.best_score = Some(score);
            state.best_epoch = Some(entry.epoch);
            save(&self.job.out_dir.join(BEST), &self.model, None, state)?;
        }
        append_log(&self.log_path, &entry)?;
        let semantic = validation.semantic.map(|s| format!("  SeK {:.4}  Score {:.4}", s.sek, s.score)).unwrap_or_default();
        let line = format!(
            "epoch {:>3}/{}  step {:>6}  loss {:.4}  val F1 {:.4}  IoU {:.4}  P {:.4}  R {:.4}  mIoU {:.4}{semantic}{}",
            entry.epoch,
            self.epochs,
            entry.step,
            entry.train_loss,
            metrics.f1,
            metrics.iou,
            metrics.precision,
            metrics.recall,
            metrics.miou,
            if improved {
                "  (best)"
            } else if !candidate {
                "  (degenerate: marks no pixel or most pixels changed; never kept as best)"
            } else {
                ""
            }
        );
        match &mut self.on_step {
            // The hook shows it (Python: in the notebook, not on the process's stderr); a stop
            // asked for here is honoured after the next step.
            Some(hook) => _ = hook(TrainEvent::Validation { entry: &entry, line: &line }),
            // `suspend` prints even when the bar is hidden (no terminal), unlike `println`.
            None => self.bar.bar().suspend(|| eprintln!("{line}")),
        }
        Ok(())
    }

    fn update_clock(&mut self) {
        self.state.seconds = self.seconds_before + self.resumed_at.elapsed().as_secs_f64();
    }

    /// A run whose every validation was degenerate still leaves a `best` checkpoint: its last
    /// weights, with a warning.
    fn keep_a_best(&self) -> Result<()> {
        let best = self.job.out_dir.join(BEST);
        if self.state.best_score.is_none() && !best.exists() {
            self.bar.bar().suspend(|| eprintln!("warning: every validation was degenerate; {} holds the last weights", best.display()));
            save(&best, &self.model, None, &self.state)?;
        }
        Ok(())
    }

    fn summary(&self, plot: Option<PathBuf>) -> TrainSummary {
        TrainSummary { steps: self.state.step, epochs: self.state.epoch, best_score: self.state.best_score, out_dir: self.job.out_dir.clone(), plot }
    }
}

/// Semantic change models need semantic labels with their number of classes (a larger class
/// value would index past the class scores); a semantic validation score needs both.
fn check_labels_fit(model: &LoadedModel, data: &Dataset, best_by: BestMetric) -> Result<()> {
    if best_by.is_semantic() && (model.spec.semantic_classes().is_none() || data.semantic_classes.is_none()) {
        return Err(TrainError::Config(format!("--best-by {} scores semantic change models on semantic change labels", best_by.name().to_lowercase())));
    }
    let Some(classes) = model.spec.semantic_classes() else { return Ok(()) };
    match data.semantic_classes {
        Some(k) if k == classes => Ok(()),
        Some(k) => Err(TrainError::Config(format!(
            "the dataset has {k} land-cover classes but the model has {classes}: set --model-config '{{\"num_classes\": {k}}}'"
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

/// The log's entries. A last line cut short (a crash while appending it) is left out; any other
/// unreadable line is an error naming it.
pub fn read_log(path: &Path) -> Result<Vec<EpochLog>> {
    let text = fs::read_to_string(path).map_err(|e| TrainError::Io(path.to_owned(), e))?;
    let lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let mut entries = Vec::with_capacity(lines.len());
    for (i, &(number, line)) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            Err(e) if i + 1 == lines.len() && !text.ends_with('\n') => {
                tracing::warn!("{}: ignoring the torn last line {} ({e})", path.display(), number + 1);
            }
            Err(e) => return Err(TrainError::Config(format!("{}: bad log line {}: {e}", path.display(), number + 1))),
        }
    }
    Ok(entries)
}

/// Drops log lines of epochs after the checkpoint a run resumes from (an interrupted run may
/// have logged an epoch whose checkpoint it never finished writing).
fn keep_log_until(path: &Path, steps: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EpochLog> = read_log(path)?.into_iter().filter(|e| e.step <= steps).collect();
    let lines: String = kept.iter().map(|entry| serde_json::to_string(entry).expect("log serialises") + "\n").collect();
    atomic::write_bytes(path, lines.as_bytes()).map_err(|e| TrainError::Io(path.to_owned(), e))
}
