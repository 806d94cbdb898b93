//! Change-detection metrics, computed exactly as the papers compute them.
//!
//! Every metric set accumulates one global confusion matrix over a whole test set (never a mean
//! of per-image scores), so accumulation is streaming: memory does not grow with the number of
//! images, and chunks can be accumulated separately and merged.

pub mod binary;

pub use binary::{BinaryConfusion, BinaryMetrics};

/// A map handed to a metric does not fit its partner or holds a value the convention forbids.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    #[error("prediction has {pred} pixels but ground truth has {gt}")]
    SizeMismatch { pred: usize, gt: usize },
    #[error("unexpected value {value} in the {which} map (allowed: {allowed})")]
    UnexpectedValue { which: &'static str, value: u8, allowed: String },
}

/// `num / den`, or 0 when the denominator is 0: a class that never occurs in either the
/// prediction or the ground truth contributes 0 rather than NaN (sklearn's `zero_division=0`).
pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}
