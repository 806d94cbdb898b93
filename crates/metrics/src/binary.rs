//! Binary change detection (`reference/anchors.md` §3.1): the changed class is the positive class.

use serde::{Deserialize, Serialize};

use crate::{MetricsError, ratio};

/// Pixel counts of the 2×2 confusion matrix, accumulated over any number of maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryConfusion {
    pub tp: u64,
    pub fp: u64,
    /// False negatives (`fn` in JSON).
    #[serde(rename = "fn", alias = "fn_")]
    pub fn_: u64,
    pub tn: u64,
}

impl BinaryConfusion {
    /// Adds one prediction/ground-truth pair. `pred` holds 0/1; `gt` holds 0/1 and, where
    /// `ignore` is given, that value, whose pixels are left out of every count.
    pub fn accumulate(&mut self, pred: &[u8], gt: &[u8], ignore: Option<u8>) -> Result<(), MetricsError> {
        if pred.len() != gt.len() {
            return Err(MetricsError::SizeMismatch { pred: pred.len(), gt: gt.len() });
        }
        // Counting into a 2×2 table indexed by (pred, gt) keeps the loop branch-free.
        let mut table = [[0u64; 2]; 2];
        for (&p, &g) in pred.iter().zip(gt) {
            if Some(g) == ignore {
                continue;
            }
            if p > 1 {
                return Err(MetricsError::UnexpectedValue { which: "prediction", value: p, allowed: "0, 1".into() });
            }
            if g > 1 {
                let allowed = match ignore {
                    Some(i) => format!("0, 1, {i} (ignored)"),
                    None => "0, 1".into(),
                };
                return Err(MetricsError::UnexpectedValue { which: "ground truth", value: g, allowed });
            }
            table[p as usize][g as usize] += 1;
        }
        self.tn += table[0][0];
        self.fn_ += table[0][1];
        self.fp += table[1][0];
        self.tp += table[1][1];
        Ok(())
    }

    pub fn merge(&mut self, other: &BinaryConfusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    pub fn metrics(&self) -> BinaryMetrics {
        let (tp, fp, fn_, tn) = (self.tp as f64, self.fp as f64, self.fn_ as f64, self.tn as f64);
        let n = tp + fp + fn_ + tn;
        let oa = ratio(tp + tn, n);
        let expected_agreement = ratio((tp + fp) * (tp + fn_) + (fn_ + tn) * (fp + tn), n * n);
        let kappa = ratio(oa - expected_agreement, 1.0 - expected_agreement);
        let iou = ratio(tp, tp + fp + fn_);
        let iou_unchanged = ratio(tn, tn + fn_ + fp);
        BinaryMetrics {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            iou,
            oa,
            kappa,
            iou_unchanged,
            miou: (iou + iou_unchanged) / 2.0,
            confusion: *self,
        }
    }
}

/// Scores of the changed class, plus the unchanged IoU and the two-class mean IoU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub iou: f64,
    pub oa: f64,
    pub kappa: f64,
    pub iou_unchanged: f64,
    pub miou: f64,
    pub confusion: BinaryConfusion,
}

impl BinaryMetrics {
    /// Rows of (name, value) in the order tables print them.
    pub fn rows(&self) -> [(&'static str, f64); 8] {
        [
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
            ("iou", self.iou),
            ("oa", self.oa),
            ("kappa", self.kappa),
            ("iou_unchanged", self.iou_unchanged),
            ("miou", self.miou),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_worked_case() {
        // pred: 1 1 0 0 1 0 ; gt: 1 0 1 0 1 255(ignored)
        let mut c = BinaryConfusion::default();
        c.accumulate(&[1, 1, 0, 0, 1, 0], &[1, 0, 1, 0, 1, 255], Some(255)).unwrap();
        assert_eq!(c, BinaryConfusion { tp: 2, fp: 1, fn_: 1, tn: 1 });
        let m = c.metrics();
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.iou - 0.5).abs() < 1e-15);
        assert!((m.oa - 0.6).abs() < 1e-15);
        // PE = (3·3 + 2·2) / 25 = 13/25; kappa = (0.6 − 0.52) / 0.48
        assert!((m.kappa - (0.6 - 0.52) / 0.48).abs() < 1e-12);
        assert!((m.iou_unchanged - 1.0 / 3.0).abs() < 1e-15);
        assert!((m.miou - (0.5 + 1.0 / 3.0) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn no_change_anywhere_gives_zeros_not_nan() {
        let mut c = BinaryConfusion::default();
        c.accumulate(&[0; 16], &[0; 16], None).unwrap();
        let m = c.metrics();
        assert_eq!((m.precision, m.recall, m.f1, m.iou, m.kappa), (0.0, 0.0, 0.0, 0.0, 0.0));
        assert_eq!(m.oa, 1.0);
        assert_eq!(m.iou_unchanged, 1.0);
        let empty = BinaryConfusion::default().metrics();
        assert!(empty.rows().iter().all(|(_, v)| v.is_finite()));
    }

    #[test]
    fn bad_values_and_sizes_are_errors() {
        let mut c = BinaryConfusion::default();
        assert_eq!(
            c.accumulate(&[0, 1], &[0], None),
            Err(MetricsError::SizeMismatch { pred: 2, gt: 1 })
        );
        assert!(matches!(
            c.accumulate(&[0, 1], &[0, 7], Some(255)),
            Err(MetricsError::UnexpectedValue { which: "ground truth", value: 7, .. })
        ));
        assert!(matches!(
            c.accumulate(&[2, 1], &[0, 1], None),
            Err(MetricsError::UnexpectedValue { which: "prediction", value: 2, .. })
        ));
    }

    fn maps() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        prop::collection::vec(
            (1usize..64).prop_flat_map(|n| {
                (prop::collection::vec(0u8..2, n), prop::collection::vec(prop::sample::select(vec![0u8, 1, 255]), n))
            }),
            1..8,
        )
    }

    proptest! {
        #[test]
        fn order_and_chunking_do_not_matter(pairs in maps(), split in 0usize..8) {
            let mut all = BinaryConfusion::default();
            for (p, g) in &pairs { all.accumulate(p, g, Some(255)).unwrap(); }
            let mut reversed = BinaryConfusion::default();
            for (p, g) in pairs.iter().rev() { reversed.accumulate(p, g, Some(255)).unwrap(); }
            let split = split.min(pairs.len());
            let (mut first, mut second) = (BinaryConfusion::default(), BinaryConfusion::default());
            for (p, g) in &pairs[..split] { first.accumulate(p, g, Some(255)).unwrap(); }
            for (p, g) in &pairs[split..] { second.accumulate(p, g, Some(255)).unwrap(); }
            first.merge(&second);
            prop_assert_eq!(all, reversed);
            prop_assert_eq!(all, first);
        }

        #[test]
        fn f1_is_a_function_of_iou(pairs in maps()) {
            let mut c = BinaryConfusion::default();
            for (p, g) in &pairs { c.accumulate(p, g, Some(255)).unwrap(); }
            let m = c.metrics();
            prop_assert!((m.f1 - 2.0 * m.iou / (1.0 + m.iou)).abs() < 1e-12);
        }
    }
}
