//! Scores at every decision threshold: the change probabilities of labelled pixels, binned in
//! 256 steps for changed and unchanged pixels, give precision, recall and F1 at each bin's
//! lower edge. The report draws them; `eval --choose-threshold` keeps the best F1's threshold.

/// One threshold's scores (a pixel is changed when its probability reaches the threshold's bin).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdPoint {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

const BINS: usize = 256;

/// Labelled pixels' change probabilities, binned.
#[derive(Clone, Debug)]
pub struct ThresholdCurve {
    changed: [u64; BINS],
    unchanged: [u64; BINS],
}

impl Default for ThresholdCurve {
    fn default() -> Self {
        ThresholdCurve { changed: [0; BINS], unchanged: [0; BINS] }
    }
}

impl ThresholdCurve {
    /// Adds a pair's probabilities; labels are 0/1, anything else (unlabelled) is skipped.
    pub fn add(&mut self, probability: &[f32], label: &[u8]) {
        for (&p, &l) in probability.iter().zip(label) {
            let bin = ((p * BINS as f32) as usize).min(BINS - 1);
            match l {
                1 => self.changed[bin] += 1,
                0 => self.unchanged[bin] += 1,
                _ => {}
            }
        }
    }

    /// Scores at each bin's lower edge, in increasing threshold; thresholds at which nothing is
    /// predicted changed are left out (precision undefined).
    pub fn points(&self) -> Vec<ThresholdPoint> {
        let total_changed: u64 = self.changed.iter().sum();
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut points = Vec::with_capacity(BINS);
        for bin in (0..BINS).rev() {
            tp += self.changed[bin];
            fp += self.unchanged[bin];
            if tp + fp == 0 || total_changed == 0 {
                continue;
            }
            let (precision, recall) = (tp as f64 / (tp + fp) as f64, tp as f64 / total_changed as f64);
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            points.push(ThresholdPoint { threshold: bin as f64 / BINS as f64, precision, recall, f1 });
        }
        points.reverse();
        points
    }

    /// The point nearest `threshold`.
    pub fn at(&self, threshold: f64) -> Option<ThresholdPoint> {
        self.points().into_iter().min_by(|a, b| (a.threshold - threshold).abs().total_cmp(&(b.threshold - threshold).abs()))
    }

    /// The threshold with the highest F1 (the lowest of equals), above 0: a threshold of 0
    /// would call every pixel changed.
    pub fn best_f1(&self) -> Option<ThresholdPoint> {
        self.points().into_iter().filter(|p| p.threshold > 0.0).fold(None, |best, p| match best {
            Some(b) if b.f1 >= p.f1 => Some(b),
            _ => Some(p),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_threshold_separates_changed_from_unchanged_pixels() {
        let mut curve = ThresholdCurve::default();
        // Changed pixels at 0.3–0.4, unchanged at 0.1 and one stray at 0.35; 255 is unlabelled.
        curve.add(&[0.3, 0.32, 0.4, 0.1, 0.1, 0.35, 0.9], &[1, 1, 1, 0, 0, 0, 255]);
        let best = curve.best_f1().expect("labelled pixels");
        assert!(best.threshold > 0.1 && best.threshold <= 0.3, "{best:?}");
        assert_eq!(best.recall, 1.0);
        assert!((best.precision - 0.75).abs() < 1e-12);
        // At ½ nothing labelled is called changed: no point there, the nearest is lower.
        assert!(curve.at(0.5).expect("points").threshold < 0.41);
    }
}
