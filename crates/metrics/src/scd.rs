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
