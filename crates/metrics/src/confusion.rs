use serde::{Deserialize, Serialize};

use crate::ratio;

/// An n×n confusion matrix, rows = ground truth, columns = prediction. Ground-truth values
/// outside `0..n` are not counted, which is how every reference script implements "ignore".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub n: usize,
    pub counts: Vec<u64>,
}

impl Confusion {
    pub fn new(n: usize) -> Self {
        Confusion { n, counts: vec![0; n * n] }
    }

    #[inline]
    pub fn add(&mut self, gt: usize, pred: usize) {
        if gt < self.n {
            debug_assert!(pred < self.n, "prediction {pred} outside 0..{}", self.n);
            self.counts[gt * self.n + pred] += 1;
        }
    }

    pub fn merge(&mut self, other: &Confusion) {
        assert_eq!(self.n, other.n, "confusion matrices of different sizes");
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn get(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * self.n + pred]
    }

    pub fn set(&mut self, gt: usize, pred: usize, value: u64) {
        self.counts[gt * self.n + pred] = value;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn trace(&self) -> u64 {
        (0..self.n).map(|i| self.get(i, i)).sum()
    }

    pub fn row_sum(&self, i: usize) -> u64 {
        self.counts[i * self.n..(i + 1) * self.n].iter().sum()
    }

    pub fn col_sum(&self, j: usize) -> u64 {
        (0..self.n).map(|i| self.get(i, j)).sum()
    }

    /// Per class (TP, FP, FN).
    pub fn class_counts(&self, k: usize) -> (u64, u64, u64) {
        let tp = self.get(k, k);
        (tp, self.col_sum(k) - tp, self.row_sum(k) - tp)
    }

    /// Per-class IoU, 0 for a class absent from both prediction and ground truth.
    pub fn iou(&self) -> Vec<f64> {
        (0..self.n)
            .map(|k| {
                let (tp, fp, fn_) = self.class_counts(k);
                ratio(tp as f64, (tp + fp + fn_) as f64)
            })
            .collect()
    }

    /// Per-class F1, 0 for a class absent from both prediction and ground truth.
    pub fn f1(&self) -> Vec<f64> {
        (0..self.n)
            .map(|k| {
                let (tp, fp, fn_) = self.class_counts(k);
                ratio(2.0 * tp as f64, (2 * tp + fp + fn_) as f64)
            })
            .collect()
    }

    /// Cohen's kappa: (po − pe) / (1 − pe); 0 for an empty matrix or pe = 1.
    pub fn kappa(&self) -> f64 {
        let total = self.total() as f64;
        if total == 0.0 {
            return 0.0;
        }
        let po = self.trace() as f64 / total;
        // Integer products summed exactly, as the integer-valued float arithmetic of numpy is.
        let pe_num: f64 = (0..self.n).map(|i| self.row_sum(i) as f64 * self.col_sum(i) as f64).sum();
        let pe = pe_num / (total * total);
        if pe == 1.0 { 0.0 } else { (po - pe) / (1.0 - pe) }
    }
}
