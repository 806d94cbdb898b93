//! Adam and AdamW written over tch tensors, with the same update as `torch.optim.Adam(W)`, so
//! that their state (step count and moments) can be saved in a checkpoint and a resumed run
//! continues exactly. tch's own optimisers keep their state inside libtorch, out of reach.

use std::collections::BTreeMap;

use tch::{Kind, Tensor, nn::VarStore};

pub use changedet_models::recipe::OptimizerKind;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

pub struct Adam {
    kind: OptimizerKind,
    weight_decay: f64,
    step: i64,
    /// (name, parameter, first moment, second moment), in name order.
    params: Vec<(String, Tensor, Tensor, Tensor)>,
    /// Parameters exempt from weight decay (mmengine's `paramwise_cfg` `decay_mult=0`).
    no_decay: Vec<bool>,
}

impl Adam {
    pub fn new(vs: &VarStore, kind: OptimizerKind, weight_decay: f64) -> Self {
        Self::with_decay_exemptions(vs, kind, weight_decay, &[])
    }

    /// Like [`Adam::new`], without weight decay on parameters whose name contains one of
    /// `no_decay_keys` (ChangeCLIP: `norm`, `relative_position_bias_table`, `absolute_pos_embed`).
    pub fn with_decay_exemptions(vs: &VarStore, kind: OptimizerKind, weight_decay: f64, no_decay_keys: &[String]) -> Self {
        let mut named: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, p)| {
                let (m, v) = (p.zeros_like(), p.zeros_like());
                (name, p, m, v)
            })
            .collect::<Vec<_>>();
        let no_decay = params.iter().map(|(name, ..)| no_decay_keys.iter().any(|k| name.contains(k.as_str()))).collect();
        Adam { kind, weight_decay, step: 0, params, no_decay }
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _, _) in &self.params {
            let mut grad = p.grad();
            if grad.defined() {
                let _ = grad.detach_().zero_();
            }
        }
    }

    /// One update with learning rate `lr`; parameters without a gradient are left alone. The
    /// arithmetic is `torch.optim.Adam(W)`'s single-tensor path (lerp of the first moment, the
    /// second moment scaled and accumulated in place, the step divided in place): five in-place
    /// passes and three temporaries per parameter.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let step_size = lr / (1.0 - BETA1.powi(self.step as i32));
        let bias2_sqrt = (1.0 - BETA2.powi(self.step as i32)).sqrt();
        tch::no_grad(|| {
            for ((_, p, m, v), &exempt) in self.params.iter_mut().zip(&self.no_decay) {
                let wd = if exempt { 0.0 } else { self.weight_decay };
                let mut grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                match self.kind {
                    OptimizerKind::Adam if wd != 0.0 => grad = &grad + &*p * wd,
                    OptimizerKind::AdamW if wd != 0.0 => {
                        let _ = p.g_mul_scalar_(1.0 - lr * wd);
                    }
                    _ => {}
                }
                let _ = m.lerp_(&grad, 1.0 - BETA1);
                let _ = v.g_mul_scalar_(BETA2).addcmul_(&grad, &(&grad * (1.0 - BETA2)));
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bias2_sqrt).g_add_scalar_(EPS);
                let mut update = &*m * step_size;
                let _ = p.g_sub_(&update.g_div_(&denom));
            }
        });
    }

    /// The state to save: `step` and `exp_avg.NAME` / `exp_avg_sq.NAME` per parameter.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_owned(), Tensor::from(self.step))];
        for (name, _, m, v) in &self.params {
            out.push((format!("exp_avg.{name}"), m.shallow_clone()));
            out.push((format!("exp_avg_sq.{name}"), v.shallow_clone()));
        }
        out
    }

    pub fn load_state(&mut self, state: &BTreeMap<String, Tensor>) -> Result<(), String> {
        let get = |key: &str| state.get(key).ok_or_else(|| format!("optimizer state '{key}' is missing"));
        self.step = get("step")?.int64_value(&[]);
        tch::no_grad(|| {
            for (name, p, m, v) in &mut self.params {
                for (key, dst) in [(format!("exp_avg.{name}"), m), (format!("exp_avg_sq.{name}"), v)] {
                    let src = get(&key)?;
                    if src.size() != p.size() {
                        return Err(format!("optimizer state '{key}' has shape {:?}, parameter has {:?}", src.size(), p.size()));
                    }
                    dst.copy_(&src.to_kind(Kind::Float));
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Three steps of each optimiser on one parameter against Adam's update written out in f64.
    #[test]
    fn steps_follow_adams_update() {
        let grads = [[0.5, -1.0, 2.0], [0.1, 0.3, -0.2], [-1.5, 0.0, 0.7]];
        for (kind, wd) in [(OptimizerKind::Adam, 0.1), (OptimizerKind::AdamW, 0.1), (OptimizerKind::Adam, 0.0)] {
            let vs = VarStore::new(Device::Cpu);
            let p = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0, 0.5]));
            let mut adam = Adam::new(&vs, kind, wd);
            let (mut x, mut m, mut v) = ([1.0f64, -2.0, 0.5], [0.0; 3], [0.0; 3]);
            for (t, g) in grads.iter().enumerate() {
                adam.zero_grad();
                let loss = (&p * Tensor::from_slice(&g.map(|g| g as f32))).sum(Kind::Float);
                loss.backward();
                adam.step(0.01);
                let (b1, b2) = (1.0 - BETA1.powi(t as i32 + 1), 1.0 - BETA2.powi(t as i32 + 1));
                for i in 0..3 {
                    let mut g = g[i];
                    match kind {
                        OptimizerKind::Adam => g += wd * x[i],
                        OptimizerKind::AdamW => x[i] *= 1.0 - 0.01 * wd,
                    }
                    m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
                    v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
                    x[i] -= 0.01 / b1 * m[i] / ((v[i] / b2).sqrt() + EPS);
                }
            }
            let got = Vec::<f32>::try_from(&p).unwrap();
            for (a, b) in got.iter().zip(x) {
                assert!((*a as f64 - b).abs() < 1e-6, "{kind:?} wd {wd}: {got:?} vs {x:?}");
            }
        }
    }
}
