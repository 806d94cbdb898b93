//! A training run as a user asks for it (the options `changedet train` and the Python package's
//! `train()` share), made into a [`TrainJob`]: the splits opened, the model's reference recipe
//! (or a fine-tuned checkpoint's) with the options given, and a resumed run's own data and
//! recipe, which options may not change.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::Device;

use changedet_data::{Dataset, DatasetSpec, PatchGrid};
use changedet_models::recipe::{BestMetric, LossKind, OptimizerKind, Schedule};
use changedet_models::{Checkpoint, ModelSpec, Precision, Recipe};

use crate::trainer::{LAST, StepHook};
use crate::{Result, Sources, TrainError, TrainJob, TrainingState};

/// Everything left `None` comes from the model's reference recipe (or, with `from`, from the
/// recipe the checkpoint was trained with); with `resume`, from the run itself.
pub struct TrainRequest {
    pub model: String,
    /// Overrides of the model's configuration fields (a JSON object).
    pub model_config: Option<Value>,
    /// The datasets trained on together; empty with `resume`: the run's own.
    pub datasets: Vec<DatasetSpec>,
    /// One split for all datasets, or one per dataset.
    pub train_splits: Vec<String>,
    pub val_splits: Vec<String>,
    /// Sentinel-2 bands, for datasets of band folders, in the model's order.
    pub bands: Option<Vec<String>>,
    pub out: PathBuf,
    pub epochs: Option<usize>,
    pub iterations: Option<usize>,
    pub val_every: Option<usize>,
    pub best_by: Option<BestMetric>,
    pub batch_size: Option<usize>,
    /// Random square crop; 0: whole images.
    pub crop: Option<u32>,
    pub patches: Option<PatchGrid>,
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
    pub optimizer: Option<OptimizerKind>,
    pub schedule: Option<Schedule>,
    pub loss: Option<LossKind>,
    pub no_augment: bool,
    pub seed: Option<u64>,
    pub checkpoint_every: Option<usize>,
    pub eval_batch_size: Option<usize>,
    pub ignore_value: Option<u8>,
    pub resume: bool,
    pub overwrite: bool,
    pub max_steps: Option<usize>,
    /// CLIP weights for the models that start from them.
    pub clip: Option<PathBuf>,
    /// A changedet checkpoint to fine-tune.
    pub from: Option<PathBuf>,
    pub precision: Precision,
    pub device: Device,
    /// A terminal progress bar.
    pub progress: bool,
    /// Told of every step and validation; may stop the run (see [`StepHook`]).
    pub on_step: Option<StepHook>,
}

impl TrainRequest {
    /// A run of the default model into `out`, every option left to the recipe.
    pub fn new(out: PathBuf) -> Self {
        TrainRequest {
            model: changedet_models::DEFAULT_MODEL.to_owned(),
            model_config: None,
            datasets: Vec::new(),
            train_splits: vec!["train".into()],
            val_splits: vec!["val".into()],
            bands: None,
            out,
            epochs: None,
            iterations: None,
            val_every: None,
            best_by: None,
            batch_size: None,
            crop: None,
            patches: None,
            lr: None,
            weight_decay: None,
            optimizer: None,
            schedule: None,
            loss: None,
            no_augment: false,
            seed: None,
            checkpoint_every: None,
            eval_batch_size: None,
            ignore_value: None,
            resume: false,
            overwrite: false,
            max_steps: None,
            clip: None,
            from: None,
            precision: Precision::Fp32,
            device: Device::Cpu,
            progress: false,
            on_step: None,
        }
    }

    /// The job this request asks for, its data opened and its recipe settled.
    pub fn into_job(mut self) -> Result<TrainJob> {
        if self.precision == Precision::Fp16 {
            return Err(TrainError::Config("--precision fp16: training in fp16 needs loss scaling, which changedet does not do: use bf16".into()));
        }
        if self.resume && self.datasets.is_empty() {
            self.use_recorded_sources()?;
        }
        if self.datasets.is_empty() {
            return Err(TrainError::Config("no dataset given: training needs at least one".into()));
        }
        let from = self.from.as_ref().map(|path| Checkpoint::read(path).map(|c| (path.clone(), c))).transpose()?;
        let model = match &from {
            Some((_, checkpoint)) => checkpoint.spec.clone(),
            None => ModelSpec::new(&self.model, self.model_config.clone())?,
        };
        let bands = self.bands.as_deref();
        let train = open_splits(&self.datasets, &self.train_splits, "--train-split", self.ignore_value, bands)?;
        let val = open_splits(&self.datasets, &self.val_splits, "--val-split", self.ignore_value, bands)?;
        warn_without_class_lists(&model, &train);
        self.log_data(&train, &val);
        if self.resume {
            self.refuse_changes_on_resume(&model)?;
        }
        let base = match from.as_ref().and_then(|(path, checkpoint)| recipe_of(path, checkpoint)) {
            Some(theirs) => theirs,
            None => model.reference_recipe(self.datasets[0].preset),
        };
        let recipe = self.recipe(base);
        let split = |splits: &[String], i: usize| splits[i.min(splits.len() - 1)].clone();
        let data = (self.datasets.iter().enumerate())
            .map(|(i, spec)| format!("{spec} (train {}, validation {})", split(&self.train_splits, i), split(&self.val_splits, i)))
            .collect();
        let sources = self.sources();
        Ok(TrainJob {
            model,
            recipe,
            train,
            val,
            out_dir: self.out,
            device: self.device,
            precision: self.precision,
            resume: self.resume,
            overwrite: self.overwrite,
            max_steps: self.max_steps,
            progress: self.progress,
            pretrained: self.clip,
            init: self.from,
            data,
            sources: Some(sources),
            extend_to_epochs: self.epochs.filter(|_| self.resume),
            on_step: self.on_step,
        })
    }

    fn log_data(&self, train: &Dataset, val: &Dataset) {
        let roots: Vec<String> = self.datasets.iter().map(|d| d.root.display().to_string()).collect();
        let labels = match train.semantic_classes {
            Some(k) => format!("semantic, {k} classes"),
            None => train.encodings().iter().map(ToString::to_string).collect::<Vec<_>>().join(" + "),
        };
        tracing::info!(
            "{}: {} training pairs ({}), {} validation pairs ({}), labels {labels}, device {}",
            roots.join(" + "),
            train.len(),
            self.train_splits.join(" + "),
            val.len(),
            self.val_splits.join(" + "),
            changedet_models::device_name(self.device)
        );
    }

    /// The run's data as options it can be given again: dataset roots and split lists absolute.
    fn sources(&self) -> Sources {
        let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let split = |s: &String| if s.ends_with(".txt") { absolute(Path::new(s)).display().to_string() } else { s.clone() };
        Sources {
            datasets: self.datasets.iter().map(|d| DatasetSpec { root: absolute(&d.root), ..d.clone() }.to_string()).collect(),
            train_splits: self.train_splits.iter().map(split).collect(),
            val_splits: self.val_splits.iter().map(split).collect(),
            ignore_value: self.ignore_value,
            bands: self.bands.clone(),
        }
    }

    /// `resume` without datasets: the model, datasets, splits, ignored value and bands the run
    /// recorded.
    fn use_recorded_sources(&mut self) -> Result<()> {
        let path = self.out.join(LAST);
        let checkpoint = Checkpoint::read(&path)?;
        self.model = checkpoint.spec.name().to_owned();
        let state = checkpoint.training.map(serde_json::from_value::<TrainingState>).transpose().map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        let sources = state.and_then(|s| s.sources).ok_or_else(|| {
            TrainError::Config(format!("{} does not record its datasets (written before they were recorded): give --dataset and its splits again", path.display()))
        })?;
        self.datasets = sources.datasets.iter().map(|d| d.parse().map_err(TrainError::Config)).collect::<Result<_>>()?;
        (self.train_splits, self.val_splits, self.ignore_value) = (sources.train_splits, sources.val_splits, sources.ignore_value);
        self.bands = sources.bands;
        tracing::info!("resuming on the run's own data: {}", self.datasets.iter().map(ToString::to_string).collect::<Vec<_>>().join(" + "));
        Ok(())
    }

    /// The reference recipe with the options given.
    fn recipe(&self, reference: Recipe) -> Recipe {
        Recipe {
            epochs: self.epochs.unwrap_or(reference.epochs),
            // Epochs asked for replace the reference's iteration budget and its validation
            // interval (validation then follows the epochs unless val_every says otherwise).
            iterations: self.iterations.or(if self.epochs.is_some() { None } else { reference.iterations }),
            val_every: self.val_every.or(if self.epochs.is_some() { None } else { reference.val_every }),
            best_by: self.best_by.unwrap_or(reference.best_by),
            batch_size: self.batch_size.unwrap_or(reference.batch_size),
            crop: self.crop.map_or(if self.patches.is_some() { None } else { reference.crop }, |c| (c > 0).then_some(c)),
            patch_grid: if self.crop.is_some() { None } else { self.patches.or(reference.patch_grid) },
            lr: self.lr.unwrap_or(reference.lr),
            weight_decay: self.weight_decay.unwrap_or(reference.weight_decay),
            optimizer: self.optimizer.unwrap_or(reference.optimizer),
            schedule: self.schedule.unwrap_or(reference.schedule),
            loss: self.loss.unwrap_or(reference.loss),
            augment: !self.no_augment,
            seed: self.seed.unwrap_or_default(),
            checkpoint_every: self.checkpoint_every.unwrap_or_default(),
            eval_batch_size: self.eval_batch_size.unwrap_or(reference.eval_batch_size),
            ..reference
        }
    }

    /// A resumed run keeps its own model and recipe, so that it ends as the uninterrupted run
    /// would: options given to change them are refused rather than silently dropped.
    fn refuse_changes_on_resume(&self, model: &ModelSpec) -> Result<()> {
        let path = self.out.join(LAST);
        // A missing or unreadable checkpoint is the trainer's to report.
        let Ok(checkpoint) = Checkpoint::read(&path) else { return Ok(()) };
        let Some(Ok(state)) = checkpoint.training.map(serde_json::from_value::<TrainingState>) else { return Ok(()) };
        let run = &state.recipe;
        let mut changed = Vec::new();
        if self.model_config.is_some() && checkpoint.spec != *model {
            changed.push("--model-config (the run's configuration differs)".to_owned());
        }
        let mut compare = |option: &str, given: Option<String>, theirs: String| {
            if let Some(given) = given.filter(|g| *g != theirs) {
                changed.push(format!("{option} {given} (the run's: {theirs})"));
            }
        };
        let text = |v: &dyn std::fmt::Debug| format!("{v:?}");
        compare("--iterations", self.iterations.map(|v| text(&Some(v))), text(&run.iterations));
        compare("--val-every", self.val_every.map(|v| text(&Some(v))), text(&run.val_every));
        compare("--best-by", self.best_by.map(|v| text(&v)), text(&run.best_by));
        compare("--batch-size", self.batch_size.map(|v| text(&v)), text(&run.batch_size));
        compare("--crop", self.crop.map(|c| text(&(c > 0).then_some(c))), text(&run.crop));
        compare("--patches", self.patches.map(|v| text(&Some(v))), text(&run.patch_grid));
        compare("--lr", self.lr.map(|v| text(&v)), text(&run.lr));
        compare("--weight-decay", self.weight_decay.map(|v| text(&v)), text(&run.weight_decay));
        compare("--optimizer", self.optimizer.map(|v| text(&v)), text(&run.optimizer));
        compare("--schedule", self.schedule.map(|v| text(&v)), text(&run.schedule));
        // The run's class weights were measured on its split; the kind of loss is what may differ.
        let measured = |loss: LossKind| run.loss.change_fraction().map_or(loss, |p| loss.with_change_fraction(p));
        compare("--loss", self.loss.map(|v| text(&measured(v))), text(&run.loss));
        compare("--no-augment", self.no_augment.then(|| text(&false)), text(&run.augment));
        compare("--seed", self.seed.map(|v| text(&v)), text(&run.seed));
        compare("--checkpoint-every", self.checkpoint_every.map(|v| text(&v)), text(&run.checkpoint_every));
        compare("--eval-batch-size", self.eval_batch_size.map(|v| text(&v)), text(&run.eval_batch_size));
        if changed.is_empty() {
            return Ok(());
        }
        Err(TrainError::Config(format!(
            "{} is resumed with its own recipe, and these options would change it: {}; drop them, or start a new run (--overwrite)",
            path.display(),
            changed.join(", ")
        )))
    }
}

/// The split `splits` names of each dataset (one split for all, or one per dataset), joined.
/// (`option` names the splits in errors.)
pub fn open_splits(datasets: &[DatasetSpec], splits: &[String], option: &str, ignore_value: Option<u8>, bands: Option<&[String]>) -> Result<Dataset> {
    if splits.len() != 1 && splits.len() != datasets.len() {
        return Err(TrainError::Config(format!("{} {option} options for {} --dataset options: give one for all, or one per dataset", splits.len(), datasets.len())));
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

/// The recipe a checkpoint was trained with, for fine-tuning it (`from`): what worked for the
/// model is a better start than its reference recipe. Class weights are measured again on the
/// new training split.
fn recipe_of(path: &Path, checkpoint: &Checkpoint) -> Option<Recipe> {
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
