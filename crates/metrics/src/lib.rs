//! Change-detection metrics, computed exactly as the papers compute them.
//!
//! Every metric set accumulates global confusion matrices over a whole test set (never a mean of
//! per-image scores), so accumulation is streaming: memory does not depend on the number of
//! images, and chunks can be accumulated separately and merged.
//!
//! Conventions:
//! - [`binary`]: binary change detection, changed class positive (`reference/anchors.md` §3.1).
//! - [`scd`]: semantic change detection, SECOND (Bi-SRNet) and from-to conventions (§3.2, §3.3).
//! - [`clearscd`]: ClearSCD's `test.py`, quirks included (`reference/clearscd.md` §5).

pub mod binary;
pub mod clearscd;
pub mod confusion;
pub mod every;
pub mod numpy;
pub mod scd;

pub use binary::{BinaryConfusion, BinaryMetrics};
pub use clearscd::{ClearScdAccumulator, ClearScdMetrics};
pub use confusion::Confusion;
pub use every::EveryConvention;
pub use scd::{ScdAccumulator, ScdConvention, ScdMetrics, ScdSummary};

/// A map handed to a metric does not fit its partner or holds a value the convention forbids.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    #[error("prediction has {pred} pixels but ground truth has {gt}")]
    SizeMismatch { pred: usize, gt: usize },
    #[error("unexpected value {value} in the {which} map (allowed: {allowed})")]
    UnexpectedValue { which: &'static str, value: u8, allowed: String },
}

/// One pair's semantic-change maps, all of the same length (row-major pixels). Ground truth:
/// classes 0..K−1 per date with K = unlabelled, change 0/1 with 255 = unlabelled. Prediction:
/// classes 0..K−1, change 0/1.
#[derive(Debug, Clone, Copy)]
pub struct ScdMaps<'a> {
    pub gt_a: &'a [u8],
    pub gt_b: &'a [u8],
    pub gt_change: &'a [u8],
    pub pred_a: &'a [u8],
    pub pred_b: &'a [u8],
    pub pred_change: &'a [u8],
}

/// The owned form of [`ScdMaps`], for code that decodes or generates maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScdPair {
    pub gt_a: Vec<u8>,
    pub gt_b: Vec<u8>,
    pub gt_change: Vec<u8>,
    pub pred_a: Vec<u8>,
    pub pred_b: Vec<u8>,
    pub pred_change: Vec<u8>,
}

impl ScdPair {
    pub fn maps(&self) -> ScdMaps<'_> {
        ScdMaps {
            gt_a: &self.gt_a,
            gt_b: &self.gt_b,
            gt_change: &self.gt_change,
            pred_a: &self.pred_a,
            pred_b: &self.pred_b,
            pred_change: &self.pred_change,
        }
    }
}

impl ScdMaps<'_> {
    pub fn len(&self) -> usize {
        self.gt_a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gt_a.is_empty()
    }

    fn check(&self, classes: usize) -> Result<(), MetricsError> {
        let n = self.gt_a.len();
        for map in [self.gt_b, self.gt_change, self.pred_a, self.pred_b, self.pred_change] {
            if map.len() != n {
                return Err(MetricsError::SizeMismatch { pred: map.len(), gt: n });
            }
        }
        let bad = |which, map: &[u8], ok: &dyn Fn(u8) -> bool, allowed: String| match map.iter().find(|&&v| !ok(v)) {
            Some(&value) => Err(MetricsError::UnexpectedValue { which, value, allowed }),
            None => Ok(()),
        };
        let k = classes as u8;
        bad("ground-truth before", self.gt_a, &|v| v <= k, format!("0..{} classes, {k} unlabelled", k - 1))?;
        bad("ground-truth after", self.gt_b, &|v| v <= k, format!("0..{} classes, {k} unlabelled", k - 1))?;
        bad("ground-truth change", self.gt_change, &|v| v <= 1 || v == 255, "0, 1, 255 (unlabelled)".into())?;
        bad("predicted before", self.pred_a, &|v| v < k, format!("0..{}", k - 1))?;
        bad("predicted after", self.pred_b, &|v| v < k, format!("0..{}", k - 1))?;
        bad("predicted change", self.pred_change, &|v| v <= 1, "0, 1".into())
    }
}

/// `num / den`, or 0 when the denominator is 0: a class that never occurs in either the
/// prediction or the ground truth contributes 0 rather than NaN (sklearn's `zero_division=0`).
pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}
