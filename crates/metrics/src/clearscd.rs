//! The ClearSCD `test.py` convention (tangkai-RS/ClearSCD, `reference/clearscd.md` §5),
//! reproduced with its quirks so that Hi-UCD numbers compare with the paper's:
//!
//! - SeK uses the IoU of the binary-change *labels* (not of the from-to matrix), and the from-to
//!   matrix calls a pixel unchanged when both dates have the same class, whatever the BCD label.
//! - `_mod` variants move every true-positive change pixel whose two predicted classes agree
//!   from TP to FP.
//! - mIoU_sc codes a predicted change with equal classes i→i as 9i, which collides with the code
//!   of i→i+1 (and for i = K−1 with "no change"); its mean divides by (distinct GT codes − 1),
//!   which assumes the unlabelled code occurs.
//! - mIoU_nc replaces the IoU of its "changed" class by the BCD IoU and divides likewise.
//! - Several values are rounded to 5 decimals inside the reference evaluators (mIoU, F1); the
//!   printed table is ×100 rounded to 2 decimals (half to even), and Overall_Score is computed
//!   from those rounded values.
//!
//! Where the reference divides 0 by 0 (SEG mF1 and BCD F1 when a class never occurs, a mean
//! over no codes), it returns NaN; changedet returns 0 there instead and reports it in
//! `guarded`. Every other number is bit-for-bit the reference's.

use std::f64::consts::E;

use serde::{Deserialize, Serialize};

use crate::confusion::Confusion;
use crate::numpy;
use crate::{MetricsError, ScdMaps};

/// Accumulates the ClearSCD metrics over any number of pairs (order- and chunk-independent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClearScdAccumulator {
    classes: usize,
    seg_pair: Confusion,
    from_to: Confusion,
    bcd: Confusion,
    binary_consistency: Confusion,
    change_consistency: Confusion,
    /// Which ground-truth codes occurred (test.py counts the distinct ones), by code.
    change_codes: Vec<bool>,
    nochange_consistency: Confusion,
    nochange_codes: Vec<bool>,
    invalid_area: u64,
    right_bcd_area: u64,
}

/// Everything `test.py` computes, unrounded, and its printed table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClearScdMetrics {
    pub oa_scd: f64,
    pub kappa_trad: f64,
    pub kappa_nuc: f64,
    pub iou_mean: f64,
    pub iou_change: f64,
    pub iou_nochange: f64,
    pub f1_change: f64,
    pub sek: f64,
    pub iou_change_mod: f64,
    pub f1_change_mod: f64,
    pub sek_mod: f64,
    pub seg_pair_iou: f64,
    pub seg_pair_f1: f64,
    pub binary_consistency: f64,
    pub change_consistency: f64,
    pub nochange_consistency: f64,
    pub invalid_area_sum: u64,
    pub right_bcd_area_sum: u64,
    pub distinct_change_codes: usize,
    pub distinct_nochange_codes: usize,
    /// The table test.py prints: ×100, rounded to 2 decimals, in its order and names.
    pub printed: Vec<(String, f64)>,
    /// Names of values where the reference would give NaN (0/0) and changedet gives 0.
    pub guarded: Vec<String>,
    /// The 2×2 BCD confusion after the `_mod` move (rows GT, columns prediction).
    pub bcd_confusion_mod: Confusion,
    pub seg_pair_confusion: Confusion,
}

/// `t1·K + t2` minus the number of diagonal codes `i·(K+1)` below it (numpy `searchsorted`).
fn diagonals_below(from_to: usize, k: usize) -> usize {
    if from_to == 0 { 0 } else { ((from_to - 1) / (k + 1) + 1).min(k) }
}

fn is_diagonal(from_to: usize, k: usize) -> bool {
    from_to.is_multiple_of(k + 1) && from_to / (k + 1) < k
}

/// `cal_change_type`: 0..K(K−1)−1 from-to changes, K(K−1) no change, K(K−1)+1 unlabelled.
fn change_type(t1: usize, t2: usize, mask: u8, label: u8, k: usize) -> usize {
    let from_to = t1 * k + t2;
    let mut code = from_to - diagonals_below(from_to, k);
    if label == 255 {
        code = k * (k - 1) + 1;
    }
    if mask == 0 {
        code = k * (k - 1);
    }
    code
}

/// `cal_nochange_type`: 0..K−1 unchanged with that class, K changed, K+1 unlabelled.
fn nochange_type(t1: usize, t2: usize, mask: u8, label: u8, k: usize) -> usize {
    let from_to = t1 * k + t2;
    let mut code = diagonals_below(from_to, k);
    if !is_diagonal(from_to, k) && mask == 0 {
        code = k;
    }
    if label == 255 {
        code = k + 1;
    }
    if mask == 1 {
        code = k;
    }
    code
}

impl ClearScdAccumulator {
    /// `classes` land-cover classes (9 for Hi-UCD); the value `classes` marks unlabelled pixels.
    pub fn new(classes: usize) -> Self {
        let k = classes;
        ClearScdAccumulator {
            classes: k,
            seg_pair: Confusion::new(k),
            from_to: Confusion::new(k * k + 1),
            bcd: Confusion::new(2),
            binary_consistency: Confusion::new(2),
            change_consistency: Confusion::new(k * (k - 1) + 1),
            // Codes reach K²+K (unlabelled "from" classes are not remapped by test.py).
            change_codes: vec![false; k * k + k + 1],
            nochange_consistency: Confusion::new(k + 1),
            nochange_codes: vec![false; k + 2],
            invalid_area: 0,
            right_bcd_area: 0,
        }
    }

    /// Adds one pair. Ground-truth classes are 0..K−1 or K (unlabelled), the ground-truth change
    /// mask 0/1/255; predicted classes 0..K−1 and predicted change 0/1.
    pub fn add(&mut self, maps: &ScdMaps) -> Result<(), MetricsError> {
        let k = self.classes;
        maps.check(k)?;
        let unchanged = k * k;
        for i in 0..maps.len() {
            let (ya, yb, yc) = (maps.gt_a[i] as usize, maps.gt_b[i] as usize, maps.gt_change[i]);
            let (pa, pb, pc) = (maps.pred_a[i] as usize, maps.pred_b[i] as usize, maps.pred_change[i]);

            self.seg_pair.add(ya, pa);
            self.seg_pair.add(yb, pb);

            let gt_code = if ya == k || yb == k {
                usize::MAX // test.py's 999: outside the matrix
            } else if ya == yb {
                unchanged
            } else {
                ya * k + yb
            };
            let pred_code = if pc == 0 { unchanged } else { pa * k + pb };
            self.from_to.add(gt_code, pred_code);

            self.bcd.add(yc as usize, pc as usize);
            self.binary_consistency.add(pc as usize, usize::from(pa != pb));

            let gt_change_type = change_type(ya, yb, yc, yc, k);
            self.change_codes[gt_change_type] = true;
            self.change_consistency.add(gt_change_type, change_type(pa, pb, pc, yc, k));

            let gt_nochange_type = nochange_type(ya, yb, yc, yc, k);
            self.nochange_codes[gt_nochange_type] = true;
            self.nochange_consistency.add(gt_nochange_type, nochange_type(pa, pb, pc, yc, k));

            if yc == 1 && pc == 1 {
                self.right_bcd_area += 1;
                if pa == pb {
                    self.invalid_area += 1;
                }
            }
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &ClearScdAccumulator) {
        assert_eq!(self.classes, other.classes);
        self.seg_pair.merge(&other.seg_pair);
        self.from_to.merge(&other.from_to);
        self.bcd.merge(&other.bcd);
        self.binary_consistency.merge(&other.binary_consistency);
        self.change_consistency.merge(&other.change_consistency);
        for (a, b) in self.change_codes.iter_mut().zip(&other.change_codes) {
            *a |= b;
        }
        self.nochange_consistency.merge(&other.nochange_consistency);
        for (a, b) in self.nochange_codes.iter_mut().zip(&other.nochange_codes) {
            *a |= b;
        }
        self.invalid_area += other.invalid_area;
        self.right_bcd_area += other.right_bcd_area;
    }

    pub fn metrics(&self) -> ClearScdMetrics {
        let k = self.classes;
        let mut guard = Guard::default();
        let total = self.from_to.total() as f64;
        let oa_scd = guard.ratio("oa_scd", self.from_to.trace() as f64, total);
        let kappa_trad = self.from_to.kappa();
        let mut without_unchanged = self.from_to.clone();
        without_unchanged.set(k * k, k * k, 0);
        let kappa_nuc = without_unchanged.kappa();

        let bcd_iou = self.bcd.iou();
        let iou_mean = numpy::round(numpy::mean(&bcd_iou), 5);
        let (iou_nochange, iou_change) = (bcd_iou[0], bcd_iou[1]);
        let f1_change = f1(&self.bcd, 1, "f1_change", &mut guard);
        let sek = kappa_nuc * iou_change.exp() / E;

        // test.py's "mod" scores count changed pixels whose two predicted classes agree as misses.
        let (tp, ..) = self.bcd.class_counts(1);
        let mut bcd_mod = self.bcd.clone();
        bcd_mod.set(1, 1, tp - self.invalid_area);
        bcd_mod.set(0, 1, bcd_mod.get(0, 1) + self.invalid_area);
        let iou_change_mod = bcd_mod.iou()[1];
        let f1_change_mod = f1(&bcd_mod, 1, "f1_change_mod", &mut guard);
        let sek_mod = kappa_nuc * iou_change_mod.exp() / E;

        let seg_pair_iou = numpy::round(numpy::mean(&self.seg_pair.iou()), 5);
        let seg_f1: Vec<f64> = (0..k).map(|c| f1(&self.seg_pair, c, &format!("seg_f1[{c}]"), &mut guard)).collect();
        let seg_pair_f1 = numpy::mean(&seg_f1);
        let (binary_consistency, change_consistency, nochange_consistency) = self.consistencies(iou_change, &mut guard);

        let mut metrics = ClearScdMetrics {
            oa_scd,
            kappa_trad,
            kappa_nuc,
            iou_mean,
            iou_change,
            iou_nochange,
            f1_change,
            sek,
            iou_change_mod,
            f1_change_mod,
            sek_mod,
            seg_pair_iou,
            seg_pair_f1,
            binary_consistency,
            change_consistency,
            nochange_consistency,
            invalid_area_sum: self.invalid_area,
            right_bcd_area_sum: self.right_bcd_area,
            distinct_change_codes: self.change_codes.iter().filter(|&&seen| seen).count(),
            distinct_nochange_codes: self.nochange_codes.iter().filter(|&&seen| seen).count(),
            printed: Vec::new(),
            guarded: guard.names,
            bcd_confusion_mod: bcd_mod,
            seg_pair_confusion: self.seg_pair.clone(),
        };
        metrics.printed = printed(&metrics);
        metrics
    }

    /// Binary, change-type and no-change-type consistency between the change map and the two
    /// class maps.
    fn consistencies(&self, iou_change: f64, guard: &mut Guard) -> (f64, f64, f64) {
        let k = self.classes;
        let binary = numpy::round(numpy::mean(&self.binary_consistency.iou()), 5);
        let distinct_change_codes = self.change_codes.iter().filter(|&&seen| seen).count();
        let change_den = distinct_change_codes.saturating_sub(1) as f64;
        let change = numpy::round(guard.ratio("change_consistency", numpy::nansum(&self.change_consistency.iou()), change_den), 5);
        let mut nochange_iou = self.nochange_consistency.iou();
        nochange_iou[k] = iou_change;
        let distinct_nochange_codes = self.nochange_codes.iter().filter(|&&seen| seen).count();
        let nochange_den = distinct_nochange_codes.saturating_sub(1) as f64;
        let nochange = numpy::round(guard.ratio("nochange_consistency", numpy::nansum(&nochange_iou), nochange_den), 5);
        (binary, change, nochange)
    }
}

/// Ratios whose denominator may be 0: 0 instead of the reference's NaN, with the name noted.
#[derive(Default)]
struct Guard {
    names: Vec<String>,
}

impl Guard {
    fn ratio(&mut self, name: &str, num: f64, den: f64) -> f64 {
        if den == 0.0 {
            self.names.push(name.to_owned());
            0.0
        } else {
            num / den
        }
    }
}

/// F1 of `class` in `confusion`, rounded to 5 digits as test.py does.
fn f1(confusion: &Confusion, class: usize, name: &str, guard: &mut Guard) -> f64 {
    let (tp, fp, fn_) = confusion.class_counts(class);
    numpy::round(guard.ratio(name, 2.0 * tp as f64, (2 * tp + fp + fn_) as f64), 5)
}

/// The table test.py prints: scores × 100 rounded to 2 digits, in its order.
fn printed(m: &ClearScdMetrics) -> Vec<(String, f64)> {
    let pct = |x: f64| numpy::round(x * 100.0, 2);
    let (p_iou, p_sek, p_iou_mod, p_sek_mod) = (pct(m.iou_change), pct(m.sek), pct(m.iou_change_mod), pct(m.sek_mod));
    [
        ("BCD_IoU", p_iou),
        ("BCD_F1", pct(m.f1_change)),
        ("BCD_IoU_mod", p_iou_mod),
        ("BCD_F1_mod", pct(m.f1_change_mod)),
        ("SEG_mIoU", pct(m.seg_pair_iou)),
        ("SEG_mF1", pct(m.seg_pair_f1)),
        ("SCD_Sek", p_sek),
        ("SCD_Sek_mod", p_sek_mod),
        ("Kappa", pct(m.kappa_trad)),
        ("Overall_Score", numpy::round(0.3 * p_iou + 0.7 * p_sek, 2)),
        ("Overall_Score_mod", numpy::round(0.3 * p_iou_mod + 0.7 * p_sek_mod, 2)),
        ("binary_consistency", pct(m.binary_consistency)),
        ("change_consistency", pct(m.change_consistency)),
        ("nochange_consistency", pct(m.nochange_consistency)),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect()
}
