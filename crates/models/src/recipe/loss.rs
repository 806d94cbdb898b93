//! Change-detection losses. Targets are `[n, h, w]` int64 with 0/1 and [`IGNORE`] pixels, which
//! every loss leaves out.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::{ChangeOutput, ModelError, Result, clearscd_loss};

pub const IGNORE: i64 = changedet_data::IGNORE as i64;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Two-class cross-entropy, mean over the labelled pixels.
    CrossEntropy,
    /// Cross-entropy summed over the labelled pixels and divided by all pixels (mmseg's
    /// `avg_non_ignore=False`, which ChangeCLIP trains with).
    CrossEntropyAllPixels,
    /// Binary cross-entropy on the change log-odds plus Dice on the change probability.
    BceDice,
    /// Cross-entropy with class weights from the training split's change fraction p: no change
    /// `false_positive_modifier · 2p`, change `2(1 − p)`, averaged as `NLLLoss(weight=…)` does
    /// (Daudt et al.'s notebook, with its FP_MODIFIER of 10). The trainer fills
    /// `change_fraction` from the training split when a run starts.
    #[serde(rename = "class-weighted-ce")]
    ClassWeighted { false_positive_modifier: f64, change_fraction: Option<f64> },
    /// ClearSCD's own objective (semantic CE per date, BCE + Dice, SACL, BSCC), which needs its
    /// semantic outputs and labels; see `clearscd_loss`.
    #[serde(rename = "clearscd")]
    ClearScd(clearscd_loss::Config),
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ce" | "cross-entropy" => Ok(LossKind::CrossEntropy),
            "ce-all-pixels" => Ok(LossKind::CrossEntropyAllPixels),
            "bce-dice" => Ok(LossKind::BceDice),
            "class-weighted-ce" => Ok(LossKind::DAUDT_WEIGHTED),
            "clearscd" => Ok(LossKind::ClearScd(clearscd_loss::Config::default())),
            other => Err(format!("unknown loss '{other}' (known: ce, ce-all-pixels, bce-dice, class-weighted-ce, clearscd)")),
        }
    }
}

impl LossKind {
    /// Daudt et al.'s class weighting, its change fraction yet to be measured.
    pub const DAUDT_WEIGHTED: LossKind = LossKind::ClassWeighted { false_positive_modifier: 10.0, change_fraction: None };

    /// Whether the loss needs the training split's change fraction before it can be computed.
    pub fn needs_change_fraction(&self) -> bool {
        matches!(self, LossKind::ClassWeighted { change_fraction: None, .. })
    }

    /// The change fraction a class-weighted loss was given.
    pub fn change_fraction(&self) -> Option<f64> {
        match self {
            LossKind::ClassWeighted { change_fraction, .. } => *change_fraction,
            _ => None,
        }
    }

    /// The loss with its class weights to be measured again (other losses unchanged).
    pub fn unmeasured(self) -> Self {
        match self {
            LossKind::ClassWeighted { false_positive_modifier, .. } => LossKind::ClassWeighted { false_positive_modifier, change_fraction: None },
            other => other,
        }
    }

    /// The loss with its class weights fixed by the change fraction `p` (other losses unchanged).
    pub fn with_change_fraction(self, p: f64) -> Self {
        match self {
            LossKind::ClassWeighted { false_positive_modifier, .. } => LossKind::ClassWeighted { false_positive_modifier, change_fraction: Some(p) },
            other => other,
        }
    }

    /// The loss of change logits against change labels; a model's own objective is refused here.
    pub fn compute(self, output: &ChangeOutput, target: &Tensor) -> Result<Tensor> {
        Ok(match self {
            LossKind::CrossEntropy => cross_entropy(&output.logits, target),
            LossKind::CrossEntropyAllPixels => {
                output.logits.cross_entropy_loss::<Tensor>(target, None, Reduction::Sum, IGNORE, 0.0) / target.numel() as f64
            }
            LossKind::BceDice => {
                let logit = output.change_logit();
                bce_with_ignore(&logit, target) + dice_with_ignore(&logit, target)
            }
            LossKind::ClassWeighted { false_positive_modifier, change_fraction } => {
                let p = change_fraction.ok_or_else(|| ModelError::Recipe("class-weighted-ce needs the training split's change fraction".into()))?;
                let weights = Tensor::from_slice(&[(false_positive_modifier * 2.0 * p) as f32, (2.0 * (1.0 - p)) as f32]).to_device(output.logits.device());
                if target.ne(IGNORE).sum(Kind::Int64).int64_value(&[]) == 0 {
                    return Ok(zero_like_graph(&output.logits));
                }
                output.logits.cross_entropy_loss(target, Some(weights), Reduction::Mean, IGNORE, 0.0)
            }
            LossKind::ClearScd(_) => return Err(ModelError::Recipe("the clearscd loss is ClearSCD's own objective; other models train with ce, ce-all-pixels or bce-dice".into())),
        })
    }
}

/// A zero that keeps the graph connected when a batch has no labelled pixel, where PyTorch's
/// mean reductions would return NaN (0/0) and poison the weights.
fn zero_like_graph(x: &Tensor) -> Tensor {
    x.sum(Kind::Float) * 0.0
}

fn labelled(target: &Tensor) -> Tensor {
    target.ne(IGNORE)
}

/// Cross-entropy over class scores `[n, c, h, w]`, ignoring [`IGNORE`].
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Tensor {
    cross_entropy_ignoring(logits, target, IGNORE)
}

/// Cross-entropy, mean over the pixels whose target is not `ignore`.
pub fn cross_entropy_ignoring(logits: &Tensor, target: &Tensor, ignore: i64) -> Tensor {
    if target.ne(ignore).sum(Kind::Int64).int64_value(&[]) == 0 {
        return zero_like_graph(logits);
    }
    logits.cross_entropy_loss::<Tensor>(target, None, Reduction::Mean, ignore, 0.0)
}

/// Binary cross-entropy with logits `[n, h, w]`, mean over labelled pixels.
pub fn bce_with_ignore(logit: &Tensor, target: &Tensor) -> Tensor {
    let mask = labelled(target);
    let count = mask.sum(Kind::Float);
    if count.double_value(&[]) == 0.0 {
        return zero_like_graph(logit);
    }
    let per_pixel = logit.binary_cross_entropy_with_logits::<Tensor>(&target.clamp(0, 1).to_kind(Kind::Float), None, None, Reduction::None);
    (per_pixel * mask.to_kind(Kind::Float)).sum(Kind::Float) / count
}

/// Soft Dice loss on `sigmoid(logit)` over the whole batch, as segmentation-models-pytorch's
/// binary `DiceLoss(ignore_index=255)`: ignored pixels are zeroed in prediction and target, and a
/// batch with no changed pixel contributes 0.
pub fn dice_with_ignore(logit: &Tensor, target: &Tensor) -> Tensor {
    let mask = labelled(target).to_kind(Kind::Float);
    let prob = logit.log_sigmoid().exp() * &mask;
    let truth = target.clamp(0, 1).to_kind(Kind::Float) * &mask;
    let intersection = (&prob * &truth).sum(Kind::Float);
    let cardinality = (&prob + &truth).sum(Kind::Float);
    let score = (intersection * 2.0) / cardinality.clamp_min(1e-7);
    let has_positive = truth.sum(Kind::Float).gt(0.0).to_kind(Kind::Float);
    (1.0 - score) * has_positive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).view(shape)
    }

    #[test]
    fn class_weights_follow_daudts_notebook() {
        // Two labelled pixels, one per class, logits favouring no change: NLLLoss(weight=w) is
        // (w0·l0 + w1·l1) / (w0 + w1) with w = [10·2p, 2(1 − p)].
        let logits = t(&[2.0, 2.0, 0.0, 0.0, 0.0, 0.0], &[1, 2, 1, 3]);
        let target = Tensor::from_slice(&[0i64, 1, IGNORE]).view([1, 1, 3]);
        let p = 0.05;
        let output = ChangeOutput { logits, semantic: None };
        let loss = LossKind::DAUDT_WEIGHTED.with_change_fraction(p).compute(&output, &target).unwrap().double_value(&[]);
        let (l0, l1) = ((1.0 + (-2.0f64).exp()).ln(), (1.0 + 2.0f64.exp()).ln());
        let (w0, w1) = (10.0 * 2.0 * p, 2.0 * (1.0 - p));
        assert!((loss - (w0 * l0 + w1 * l1) / (w0 + w1)).abs() < 1e-6, "{loss}");
        assert!(LossKind::DAUDT_WEIGHTED.compute(&output, &target).is_err(), "no weights before the change fraction is known");
    }

    #[test]
    fn losses_ignore_pixels_and_never_return_nan() {
        let logit = t(&[2.0, -1.0, 0.5, 3.0], &[1, 2, 2]);
        let target = Tensor::from_slice(&[1i64, 0, IGNORE, IGNORE]).view([1, 2, 2]);
        // BCE over the two labelled pixels: softplus(−2) and softplus(−1)... = log(1+e^−2), log(1+e^−1)
        let expected = ((1.0f64 + (-2.0f64).exp()).ln() + (1.0f64 + (-1.0f64).exp()).ln()) / 2.0;
        assert!((bce_with_ignore(&logit, &target).double_value(&[]) - expected).abs() < 1e-6);
        // Dice: p = σ(2) on the positive, σ(−1) on the negative.
        let (p1, p0) = (1.0 / (1.0 + (-2.0f64).exp()), 1.0 / (1.0 + 1.0f64.exp()));
        let dice = 1.0 - 2.0 * p1 / (p1 + p0 + 1.0);
        assert!((dice_with_ignore(&logit, &target).double_value(&[]) - dice).abs() < 1e-6);

        let all_ignored = Tensor::full([1, 2, 2], IGNORE, (Kind::Int64, tch::Device::Cpu));
        let logits2 = Tensor::zeros([1, 2, 2, 2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let ce = cross_entropy(&logits2, &all_ignored);
        assert_eq!(ce.double_value(&[]), 0.0);
        ce.backward();
        assert_eq!(bce_with_ignore(&logit, &all_ignored).double_value(&[]), 0.0);
        assert_eq!(dice_with_ignore(&logit, &all_ignored).double_value(&[]), 0.0);
    }
}
