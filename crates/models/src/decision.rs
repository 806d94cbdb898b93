//! How a change probability becomes a change mask: changed where p > threshold. Without a
//! threshold the mask is the two-class argmax, which is p > ½. A checkpoint may carry a
//! threshold chosen for the best F1 on a validation split (`eval --choose-threshold`); `predict`
//! and `eval` use it unless `--threshold` says otherwise.

use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The decision threshold on the change probability, and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// In (0, 1): a pixel is changed where its change probability exceeds it.
    pub threshold: f64,
    /// Where it was chosen (`DATASET split SPLIT, F1 … (… at 0.5)`); `None` when a user gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_on: Option<String>,
}

impl Decision {
    pub const ARGMAX: f64 = 0.5;

    /// A threshold a user gives: a number strictly between 0 and 1.
    pub fn parse(text: &str) -> Result<f64, String> {
        match text.trim().parse::<f64>() {
            Ok(t) if t > 0.0 && t < 1.0 => Ok(t),
            _ => Err(format!("'{text}' is not a threshold: give a change probability strictly between 0 and 1 (0.5 is the argmax)")),
        }
    }

    /// The threshold as log-odds of change: p > t ⇔ l₁ − l₀ > ln(t / (1 − t)), so the mask is
    /// taken from the logits without a softmax, and t = ½ is exactly the argmax's `l₁ > l₀`.
    pub fn log_odds(threshold: f64) -> f64 {
        (threshold / (1.0 - threshold)).ln()
    }

    /// The change mask `[n, h, w]` (uint8 0/1) of change log-odds `[n, h, w]` at `threshold`.
    pub fn mask(change_logit: &Tensor, threshold: f64) -> Tensor {
        change_logit.gt(Self::log_odds(threshold)).to_kind(tch::Kind::Uint8)
    }

    /// How a log line states the threshold in use (`info` adds where it was chosen).
    pub fn describe(decision: Option<&Decision>) -> String {
        match decision {
            None => "0.5 (argmax)".to_owned(),
            Some(Decision { threshold, chosen_on: Some(_) }) => format!("{threshold} (the checkpoint's)"),
            Some(Decision { threshold, chosen_on: None }) => format!("{threshold} (given)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_is_the_argmax_and_other_thresholds_cut_the_probability() {
        let logits = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, -2.0, 0.5]).reshape([1, 2, 2, 2]);
        let change = logits.select(1, 1) - logits.select(1, 0);
        let probability = logits.softmax(1, tch::Kind::Float).select(1, 1);
        assert!(Decision::mask(&change, 0.5).equal(&logits.argmax(1, false).to_kind(tch::Kind::Uint8)));
        for threshold in [0.05, 0.3, 0.5, 0.7, 0.95] {
            let cut = probability.gt(threshold).to_kind(tch::Kind::Uint8);
            assert!(Decision::mask(&change, threshold).equal(&cut), "threshold {threshold}");
        }
        for bad in ["0", "1", "NaN", "-0.2", "inf", "half"] {
            assert!(Decision::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Decision::parse("0.25"), Ok(0.25));
    }
}
