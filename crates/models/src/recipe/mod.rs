//! How a model is trained: the [`Recipe`] (optimiser, schedule, loss, augmentation, budget) that
//! each model declares as its reference's (see `ModelConfig::reference_recipe`) and that the
//! trainer in `changedet-train` carries out.

pub mod loss;
pub mod schedule;

use serde::{Deserialize, Serialize};

use changedet_data::PatchGrid;
use changedet_metrics::{BinaryMetrics, ScdSummary};

pub use loss::LossKind;
pub use schedule::Schedule;

/// Everything that decides the result of a training run besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    /// Random square crop for training (`None`: whole images, which must then share a size).
    pub crop: Option<u32>,
    /// Train on fixed patches on this grid instead of one (cropped) sample per pair: an epoch
    /// visits every patch of every pair (Daudt et al.'s recipe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_grid: Option<PatchGrid>,
    pub lr: f64,
    pub weight_decay: f64,
    pub optimizer: OptimizerKind,
    pub schedule: Schedule,
    /// The training objective: a loss on the change logits, or a model's own objective.
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
}

/// The baseline the FC models train with, and the base other models' recipes change.
impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            epochs: 50,
            batch_size: 8,
            crop: Some(256),
            patch_grid: None,
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// L2 penalty added to the gradient (`torch.optim.Adam(weight_decay=…)`).
    Adam,
    /// Decoupled weight decay (`torch.optim.AdamW`).
    AdamW,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            other => Err(format!("unknown optimiser '{other}' (known: adam, adamw)")),
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
    /// Separated kappa of semantic change models (SECOND convention).
    Sek,
    /// 0.3·mIoU + 0.7·SeK of semantic change models (SECOND convention).
    Score,
}

/// What one validation measured: the change masks always, semantic change models' class maps
/// in the SECOND convention too.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub binary: BinaryMetrics,
    pub semantic: Option<ScdSummary>,
}

impl BestMetric {
    /// The score, or `None` for a semantic score of a validation that has none.
    pub fn score(self, validation: &Validation) -> Option<f64> {
        match self {
            BestMetric::F1 => Some(validation.binary.f1),
            BestMetric::MeanIou => Some(validation.binary.miou),
            BestMetric::Sek => validation.semantic.map(|s| s.sek),
            BestMetric::Score => validation.semantic.map(|s| s.score),
        }
    }

    /// Whether a validation may give the best checkpoint: a model that marks no pixel changed,
    /// or most of them, is degenerate however it scores (early in training an all-change map
    /// can have the best F1 on sparse change).
    pub fn is_candidate(validation: &Validation) -> bool {
        let c = &validation.binary.confusion;
        let marked = c.tp + c.fp;
        marked > 0 && marked * 2 <= c.tp + c.fp + c.fn_ + c.tn
    }

    /// Whether the score needs semantic change labels and outputs.
    pub fn is_semantic(self) -> bool {
        matches!(self, BestMetric::Sek | BestMetric::Score)
    }

    pub fn name(self) -> &'static str {
        match self {
            BestMetric::F1 => "F1",
            BestMetric::MeanIou => "mIoU",
            BestMetric::Sek => "SeK",
            BestMetric::Score => "Score",
        }
    }
}

impl std::str::FromStr for BestMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f1" => Ok(BestMetric::F1),
            "miou" => Ok(BestMetric::MeanIou),
            "sek" => Ok(BestMetric::Sek),
            "score" => Ok(BestMetric::Score),
            other => Err(format!("unknown validation score '{other}' (f1, miou, sek, score)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changedet_metrics::BinaryConfusion;

    fn validation(tp: u64, fp: u64, fn_: u64, tn: u64) -> Validation {
        Validation { binary: BinaryConfusion { tp, fp, fn_, tn }.metrics(), semantic: None }
    }

    #[test]
    fn degenerate_maps_never_become_the_best_checkpoint() {
        // 5 % change: marking everything changed has F1 0.095, better than a poor real model's.
        assert!(!BestMetric::is_candidate(&validation(50, 950, 0, 0)), "all changed");
        assert!(!BestMetric::is_candidate(&validation(0, 0, 50, 950)), "nothing changed");
        assert!(!BestMetric::is_candidate(&validation(50, 600, 0, 350)), "most pixels changed");
        assert!(BestMetric::is_candidate(&validation(2, 10, 48, 940)), "a poor but real model");
    }
}
