//! Semantic change detection in the SECOND convention (Bi-SRNet `Eval_SCD.py`, SCanNet,
//! torchange `second.py`; `reference/anchors.md` §3.2) and the from-to convention (ChangeMamba,
//! torchange; §3.3). Both score a (C)×(C) confusion whose class 0 is "no change" with the same
//! formulas: binary IoU/mIoU, SeK = κ_n0·e^(IoU_c − 1), Fscd and Score = 0.3·mIoU + 0.7·SeK.
//!
//! - SECOND: per date a map with 0 = no change and 1..K = the class inside changed areas; the
//!   two dates' maps are accumulated into one (K+1)² matrix.
//! - From-to: one map per pair, 0 = no change and 1 + a·K + b for a change from class a to b;
//!   a (K²+1)² matrix. Not numerically identical to SECOND.

use std::f64::consts::E;

use serde::{Deserialize, Serialize};

use crate::confusion::Confusion;
use crate::{MetricsError, ScdMaps, ratio};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScdConvention {
    Second,
    #[serde(rename = "fromto")]
    FromTo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScdAccumulator {
    convention: ScdConvention,
    classes: usize,
    confusion: Confusion,
    /// Sum and count of per-map pixel accuracies (Bi-SRNet's reported OA).
    map_accuracy_sum: f64,
    maps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScdMetrics {
    pub convention: ScdConvention,
    /// Global pixel accuracy trace(Q)/ΣQ.
    pub oa: f64,
    /// Mean over maps of each map's pixel accuracy (Bi-SRNet's `acc_meter.avg`); maps without a
    /// labelled pixel are skipped.
    pub oa_mean_per_map: f64,
    pub iou_unchanged: f64,
    pub iou_changed: f64,
    pub miou: f64,
    pub kappa_n0: f64,
    pub sek: f64,
    pub precision_sc: f64,
    pub recall_sc: f64,
    pub fscd: f64,
    pub score: f64,
    /// Mean IoU over the classes (no change included) that occur in the ground truth: the
    /// from-to mIoU of torchange/ChangeMask; for SECOND, over 0..K.
    pub miou_classes_present: f64,
    pub confusion: Confusion,
}

/// The headline semantic-change scores of one convention, small enough for a training log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScdSummary {
    pub oa: f64,
    pub miou: f64,
    pub sek: f64,
    pub fscd: f64,
    pub score: f64,
}

impl ScdMetrics {
    pub fn summary(&self) -> ScdSummary {
        ScdSummary { oa: self.oa, miou: self.miou, sek: self.sek, fscd: self.fscd, score: self.score }
    }
}

const IGNORED: usize = usize::MAX;

impl ScdAccumulator {
    pub fn new(convention: ScdConvention, classes: usize) -> Self {
        let n = match convention {
            ScdConvention::Second => classes + 1,
            ScdConvention::FromTo => classes * classes + 1,
        };
        ScdAccumulator { convention, classes, confusion: Confusion::new(n), map_accuracy_sum: 0.0, maps: 0 }
    }

    /// Adds one pair (classes 0..K−1 with K = unlabelled; change 0/1 with 255 = ignore in the
    /// ground truth). Unlabelled ground truth inside a changed area is ignored.
    pub fn add(&mut self, maps: &ScdMaps) -> Result<(), MetricsError> {
        let k = self.classes;
        maps.check(k)?;
        let gt_code = |class: usize, change: u8| match change {
            0 => 0,
            1 if class < k => class + 1,
            _ => IGNORED,
        };
        let pred_code = |class: usize, change: u8| if change == 0 { 0 } else { class + 1 };
        match self.convention {
            ScdConvention::Second => {
                for (gt, pred) in [(maps.gt_a, maps.pred_a), (maps.gt_b, maps.pred_b)] {
                    let (mut right, mut labelled) = (0u64, 0u64);
                    for i in 0..maps.len() {
                        let g = gt_code(gt[i] as usize, maps.gt_change[i]);
                        let p = pred_code(pred[i] as usize, maps.pred_change[i]);
                        self.confusion.add(g, p);
                        if g != IGNORED {
                            labelled += 1;
                            right += u64::from(g == p);
                        }
                    }
                    self.add_map_accuracy(right, labelled);
                }
            }
            ScdConvention::FromTo => {
                let (mut right, mut labelled) = (0u64, 0u64);
                for i in 0..maps.len() {
                    let (a, b) = (maps.gt_a[i] as usize, maps.gt_b[i] as usize);
                    let g = match maps.gt_change[i] {
                        0 => 0,
                        1 if a < k && b < k => 1 + a * k + b,
                        _ => IGNORED,
                    };
                    let p = if maps.pred_change[i] == 0 { 0 } else { 1 + maps.pred_a[i] as usize * k + maps.pred_b[i] as usize };
                    self.confusion.add(g, p);
                    if g != IGNORED {
                        labelled += 1;
                        right += u64::from(g == p);
                    }
                }
                self.add_map_accuracy(right, labelled);
            }
        }
        Ok(())
    }

    fn add_map_accuracy(&mut self, right: u64, labelled: u64) {
        if labelled > 0 {
            self.map_accuracy_sum += right as f64 / labelled as f64;
            self.maps += 1;
        }
    }

    pub fn merge(&mut self, other: &ScdAccumulator) {
        assert_eq!((self.convention, self.classes), (other.convention, other.classes));
        self.confusion.merge(&other.confusion);
        self.map_accuracy_sum += other.map_accuracy_sum;
        self.maps += other.maps;
    }

    pub fn metrics(&self) -> ScdMetrics {
        let q = &self.confusion;
        let n = q.n;
        let tn = q.get(0, 0) as f64;
        let fp = (q.row_sum(0) - q.get(0, 0)) as f64; // unchanged in GT, predicted changed
        let fn_ = (q.col_sum(0) - q.get(0, 0)) as f64; // changed in GT, predicted unchanged
        let tp = (q.total() - q.row_sum(0) - q.col_sum(0) + q.get(0, 0)) as f64; // changed in both, any class
        let iou_unchanged = ratio(tn, tn + fp + fn_);
        let iou_changed = ratio(tp, tp + fp + fn_);
        let miou = (iou_unchanged + iou_changed) / 2.0;

        let mut without_tn = q.clone();
        without_tn.set(0, 0, 0);
        let kappa_n0 = without_tn.kappa();
        let sek = kappa_n0 * iou_changed.exp() / E;

        let correct_changed: f64 = (1..n).map(|i| q.get(i, i) as f64).sum();
        let predicted_changed: f64 = (1..n).map(|j| q.col_sum(j) as f64).sum();
        let gt_changed: f64 = (1..n).map(|i| q.row_sum(i) as f64).sum();
        let precision_sc = ratio(correct_changed, predicted_changed);
        let recall_sc = ratio(correct_changed, gt_changed);
        let fscd = ratio(2.0 * precision_sc * recall_sc, precision_sc + recall_sc);

        let iou = q.iou();
        let present: Vec<f64> = (0..n).filter(|&c| q.row_sum(c) > 0).map(|c| iou[c]).collect();
        ScdMetrics {
            convention: self.convention,
            oa: ratio(q.trace() as f64, q.total() as f64),
            oa_mean_per_map: ratio(self.map_accuracy_sum, self.maps as f64),
            iou_unchanged,
            iou_changed,
            miou,
            kappa_n0,
            sek,
            precision_sc,
            recall_sc,
            fscd,
            score: 0.3 * miou + 0.7 * sek,
            miou_classes_present: ratio(present.iter().sum(), present.len() as f64),
            confusion: q.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClearScdAccumulator, ScdPair};
    use proptest::prelude::*;

    const GT_A: [u8; 6] = [0, 1, 0, 1, 1, 2];
    const GT_B: [u8; 6] = [1, 0, 0, 1, 0, 2];
    const GT_C: [u8; 6] = [1, 1, 0, 0, 1, 255];
    const PRED_A: [u8; 6] = [0, 0, 1, 1, 1, 0];
    const PRED_B: [u8; 6] = [1, 1, 1, 0, 0, 1];
    const PRED_C: [u8; 6] = [1, 1, 0, 1, 1, 0];

    fn maps() -> ScdMaps<'static> {
        ScdMaps { gt_a: &GT_A, gt_b: &GT_B, gt_change: &GT_C, pred_a: &PRED_A, pred_b: &PRED_B, pred_change: &PRED_C }
    }

    fn near(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn second_convention_worked_by_hand() {
        // Per-date maps (0 = no change, 1 + class where changed; pixel 6 unlabelled):
        // GT A [1,2,0,0,2,-] B [2,1,0,0,1,-]; prediction A [1,1,0,2,2,0] B [2,2,0,1,1,0].
        // Q (rows GT) = [[2,1,1],[0,2,1],[0,1,2]]: TN 2, FP 2, FN 0, TP 6.
        let mut acc = ScdAccumulator::new(ScdConvention::Second, 2);
        acc.add(&maps()).unwrap();
        let m = acc.metrics();
        assert_eq!(m.confusion.counts, vec![2, 1, 1, 0, 2, 1, 0, 1, 2]);
        near(m.iou_unchanged, 0.5);
        near(m.iou_changed, 0.75);
        near(m.miou, 0.625);
        // Q̂: ρ = 4/8, η = (0·2 + 4·3 + 4·3)/64 = 0.375, κ = 0.125/0.625.
        near(m.kappa_n0, 0.2);
        near(m.sek, 0.2 * (-0.25f64).exp());
        near(m.precision_sc, 0.5);
        near(m.recall_sc, 4.0 / 6.0);
        near(m.fscd, 4.0 / 7.0);
        near(m.score, 0.3 * 0.625 + 0.7 * 0.2 * (-0.25f64).exp());
        near(m.oa, 0.6);
        near(m.oa_mean_per_map, 0.6);
        near(m.miou_classes_present, (0.5 + 0.4 + 0.4) / 3.0);
        // The same numbers as Bi-SRNet's Eval_SCD (numpy), which were computed independently:
        near(m.sek, 0.155760156614281);
        near(m.fscd, 0.5714285714285715);
    }

    #[test]
    fn from_to_convention_worked_by_hand() {
        // Codes 1 + a·2 + b: GT [2,3,0,0,3,-], prediction [2,2,0,3,3,0].
        let mut acc = ScdAccumulator::new(ScdConvention::FromTo, 2);
        acc.add(&maps()).unwrap();
        let m = acc.metrics();
        let mut expected = vec![0u64; 25];
        for (g, p) in [(2, 2), (3, 2), (0, 0), (0, 3), (3, 3)] {
            expected[g * 5 + p] += 1;
        }
        assert_eq!(m.confusion.counts, expected);
        near(m.iou_changed, 0.75);
        near(m.kappa_n0, 0.2);
        near(m.fscd, 4.0 / 7.0);
        // Classes present in the GT: 0 (TP 1, FN 1: IoU 1/2), 2 (TP 1, FP 1: 1/2), 3 (TP 1, FP 1, FN 1: 1/3).
        near(m.miou_classes_present, (0.5 + 0.5 + 1.0 / 3.0) / 3.0);
        near(m.oa_mean_per_map, 0.6);
    }

    fn all_finite(m: &ScdMetrics) -> bool {
        [m.oa, m.oa_mean_per_map, m.iou_unchanged, m.iou_changed, m.miou, m.kappa_n0, m.sek, m.fscd, m.score, m.miou_classes_present]
            .iter()
            .all(|v| v.is_finite())
    }

    #[test]
    fn absent_class_all_ignored_and_no_change_give_numbers_not_nan() {
        let zeros = [0u8; 6];
        let ignored = [255u8; 6];
        let unlabelled = [3u8; 6];
        let cases = [
            // class 2 of 3 never occurs anywhere
            ScdMaps { gt_a: &GT_A, gt_b: &GT_B, gt_change: &GT_C, pred_a: &PRED_A, pred_b: &PRED_B, pred_change: &PRED_C },
            // every pixel unlabelled
            ScdMaps { gt_a: &unlabelled, gt_b: &unlabelled, gt_change: &ignored, pred_a: &PRED_A, pred_b: &PRED_B, pred_change: &PRED_C },
            // no changed pixel in GT or prediction
            ScdMaps { gt_a: &zeros, gt_b: &zeros, gt_change: &zeros, pred_a: &zeros, pred_b: &zeros, pred_change: &zeros },
        ];
        for maps in &cases {
            for convention in [ScdConvention::Second, ScdConvention::FromTo] {
                let mut acc = ScdAccumulator::new(convention, 3);
                acc.add(maps).unwrap();
                assert!(all_finite(&acc.metrics()), "{convention:?}");
            }
            let mut clear = ClearScdAccumulator::new(3);
            clear.add(maps).unwrap();
            let m = clear.metrics();
            assert!(m.printed.iter().all(|(_, v)| v.is_finite()), "{:?}", m.printed);
        }
        // No change at all: binary IoU of the changed class 0, unchanged 1, SeK 0.
        let mut acc = ScdAccumulator::new(ScdConvention::Second, 3);
        acc.add(&cases[2]).unwrap();
        let m = acc.metrics();
        assert_eq!((m.iou_changed, m.iou_unchanged, m.sek, m.fscd), (0.0, 1.0, 0.0, 0.0));
    }

    #[test]
    fn invalid_values_are_errors() {
        let mut acc = ScdAccumulator::new(ScdConvention::Second, 2);
        let bad = [0u8, 0, 0, 0, 0, 7];
        let err = acc.add(&ScdMaps { gt_change: &bad, ..maps() }).unwrap_err();
        assert!(matches!(err, MetricsError::UnexpectedValue { which: "ground-truth change", value: 7, .. }));
        let err = acc.add(&ScdMaps { pred_a: &[0, 0, 2, 0, 0, 0], ..maps() }).unwrap_err();
        assert!(matches!(err, MetricsError::UnexpectedValue { which: "predicted before", value: 2, .. }));
        assert!(matches!(acc.add(&ScdMaps { pred_b: &[0], ..maps() }), Err(MetricsError::SizeMismatch { .. })));
    }

    fn pairs(k: u8) -> impl Strategy<Value = Vec<ScdPair>> {
        let pair = (1usize..40).prop_flat_map(move |n| {
            let v = |s: prop::sample::Select<u8>| prop::collection::vec(s, n);
            let classes: Vec<u8> = (0..=k).collect();
            let pred: Vec<u8> = (0..k).collect();
            (
                v(prop::sample::select(classes.clone())),
                v(prop::sample::select(classes)),
                v(prop::sample::select(vec![0u8, 1, 255])),
                v(prop::sample::select(pred.clone())),
                v(prop::sample::select(pred)),
                v(prop::sample::select(vec![0u8, 1])),
            )
                .prop_map(|(gt_a, gt_b, gt_change, pred_a, pred_b, pred_change)| ScdPair {
                    gt_a,
                    gt_b,
                    gt_change,
                    pred_a,
                    pred_b,
                    pred_change,
                })
        });
        prop::collection::vec(pair, 1..6)
    }

    proptest! {
        #[test]
        fn order_and_chunking_do_not_matter(pairs in pairs(3), split in 0usize..6) {
            let split = split.min(pairs.len());
            for convention in [ScdConvention::Second, ScdConvention::FromTo] {
                let run = |items: &mut dyn Iterator<Item = &ScdPair>| {
                    let mut acc = ScdAccumulator::new(convention, 3);
                    for p in items { acc.add(&p.maps()).unwrap(); }
                    acc
                };
                let all = run(&mut pairs.iter()).metrics();
                let mut halves = run(&mut pairs[..split].iter());
                halves.merge(&run(&mut pairs[split..].iter()));
                for other in [halves.metrics(), run(&mut pairs.iter().rev()).metrics()] {
                    // The per-map mean is a float sum, exact only up to summation order.
                    prop_assert!((other.oa_mean_per_map - all.oa_mean_per_map).abs() < 1e-12);
                    prop_assert_eq!(&ScdMetrics { oa_mean_per_map: all.oa_mean_per_map, ..other }, &all);
                }
            }
            let run = |items: &mut dyn Iterator<Item = &ScdPair>| {
                let mut acc = ClearScdAccumulator::new(3);
                for p in items { acc.add(&p.maps()).unwrap(); }
                acc
            };
            let all = run(&mut pairs.iter());
            let mut halves = run(&mut pairs[..split].iter());
            halves.merge(&run(&mut pairs[split..].iter()));
            prop_assert_eq!(&all.metrics(), &halves.metrics());
            prop_assert_eq!(all.metrics(), run(&mut pairs.iter().rev()).metrics());
        }
    }
}
