//! Learning-rate schedules, evaluated per optimiser step.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Schedule {
    Constant,
    /// × `gamma` every `epochs` epochs (`torch.optim.lr_scheduler.StepLR`, stepped per epoch).
    Step { epochs: usize, gamma: f64 },
    /// `(1 − step/total)^power` (the mmseg/DeepLab "poly" rule).
    Poly { power: f64 },
    /// Linear warm-up over `warmup` steps from 10⁻⁶ of the rate, then linear decay to 0 at the
    /// last step (mmengine `LinearLR(start_factor=1e-6)` + `PolyLR(power=1, eta_min=0)`, as
    /// ChangeCLIP trains).
    WarmupLinear { warmup: usize },
}

/// mmengine `LinearLR`'s `start_factor` in ChangeCLIP's configs.
const WARMUP_START: f64 = 1e-6;

impl Schedule {
    /// Learning rate at 0-based optimiser `step` of `total` steps with `steps_per_epoch`.
    pub fn lr(&self, base: f64, step: usize, total: usize, steps_per_epoch: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { epochs, gamma } => base * gamma.powi((step / steps_per_epoch.max(1) / epochs.max(1)) as i32),
            Schedule::Poly { power } => base * (1.0 - step as f64 / total.max(1) as f64).max(0.0).powf(power),
            Schedule::WarmupLinear { warmup } if step < warmup => base * (WARMUP_START + (1.0 - WARMUP_START) * step as f64 / warmup as f64),
            Schedule::WarmupLinear { warmup } => {
                base * ((total.saturating_sub(step)) as f64 / (total.saturating_sub(warmup)).max(1) as f64)
            }
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    /// `constant`, `step:EPOCHS:GAMMA`, `poly:POWER`, `warmup-linear:STEPS`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<f64>().ok()).ok_or_else(|| format!("bad schedule '{s}'"));
        Ok(match parts[0] {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step { epochs: num(1)? as usize, gamma: num(2)? },
            "poly" => Schedule::Poly { power: num(1)? },
            "warmup-linear" => Schedule::WarmupLinear { warmup: num(1)? as usize },
            _ => return Err(format!("unknown schedule '{s}' (constant, step:EPOCHS:GAMMA, poly:POWER, warmup-linear:STEPS)")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let step: Schedule = "step:10:0.9".parse().unwrap();
        assert_eq!(step.lr(1.0, 0, 1000, 10), 1.0);
        assert_eq!(step.lr(1.0, 99, 1000, 10), 1.0);
        assert!((step.lr(1.0, 100, 1000, 10) - 0.9).abs() < 1e-12);
        assert!((step.lr(1.0, 250, 1000, 10) - 0.81).abs() < 1e-12);
        let poly: Schedule = "poly:0.9".parse().unwrap();
        assert!((poly.lr(2.0, 50, 100, 10) - 2.0 * 0.5f64.powf(0.9)).abs() < 1e-12);
        let warm: Schedule = "warmup-linear:10".parse().unwrap();
        assert!((warm.lr(1.0, 0, 110, 10) - 1e-6).abs() < 1e-12);
        assert!((warm.lr(1.0, 5, 110, 10) - (1e-6 + (1.0 - 1e-6) * 0.5)).abs() < 1e-12);
        assert!((warm.lr(1.0, 10, 110, 10) - 1.0).abs() < 1e-12);
        assert!((warm.lr(1.0, 60, 110, 10) - 0.5).abs() < 1e-12);
        assert!("cosine".parse::<Schedule>().is_err());
    }
}
